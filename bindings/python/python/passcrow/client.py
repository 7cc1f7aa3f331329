"""Drop-in for python-passcrow 0.0.7's ``passcrow.client``.

Apps written to python-passcrow's integration guide (Mailpile among them)
run unchanged on libpasscrow: ``PasscrowClient``, ``PasscrowRecoveryPolicy``,
``PasscrowIdentityPolicy`` and ``PasscrowServerPolicy`` take the same
arguments and return the same kinds of values. This layer only adapts
calling conventions; policies are parsed, packs made, shares split, escrows
paid for and every request sent by libpasscrow (Rust) through the UniFFI
bindings in :mod:`passcrow` (``CompatClient`` and the functions of the
wheel-only ``python-compat`` feature). The module constants, the default
directories and the ``PASSCROW_HOME``/``PASSCROW_CONFIG``/``PASSCROW_DATA``
overrides come from Rust too; ``appdirs`` is not needed.

Differences from python-passcrow, where its behaviour is a bug (see the
README's "Migrating from python-passcrow"):

* thresholds of 3 or more work (python-passcrow crashes);
* ``protect`` of an existing name replaces the pack and, once the new one
  is written, deletes the old escrows (python-passcrow orphans them);
* packs are written atomically with mode 0600;
* the policy's ``timeout_minutes`` reaches the servers;
* requests to different servers go out concurrently; with ``quick=False``
  the anonymity delay (``sleep_min``..``sleep_max`` seconds through
  ``sleep_func``) is kept between requests to each server.
"""

import os
import sys
import urllib.error
import urllib.request

from ._uniffi import passcrow as _gen
from .proto import EscrowRecord, Identity, RecoveryPack, VerificationResponse

__all__ = [
    'PasscrowClient', 'PasscrowRecoveryPolicy', 'PasscrowIdentityPolicy',
    'PasscrowServerPolicy', 'ServerError', 'EPHEMERAL_ONLY', 'EPHEMERAL_BOTH',
]


# appdirs' user_config_dir('passcrow', roaming=False) and user_data_dir,
# as python-passcrow finds them (libpasscrow computes the same paths).
_DIRS = _gen.default_dirs()
SHARED_CONFIG_DIR = _DIRS.config_dir
SHARED_DATA_DIR = _DIRS.data_dir

# python-passcrow's values, from libpasscrow.
_DEFAULTS = _gen.compat_defaults()
DEFAULT_N = _DEFAULTS.n
DEFAULT_M = _DEFAULTS.m
DEFAULT_SLEEP_MIN = _DEFAULTS.sleep_min
DEFAULT_SLEEP_MAX = _DEFAULTS.sleep_max
DEFAULT_PACK_DESC = _DEFAULTS.pack_description
DEFAULT_VERIFY_DESC = _DEFAULTS.verify_description
DEFAULT_EXP_DAYS = _DEFAULTS.expiration_days
DEFAULT_TMO_MINS = _DEFAULTS.timeout_minutes
del _DIRS, _DEFAULTS

EPHEMERAL_ONLY = 1
EPHEMERAL_BOTH = 2


class ServerError(Exception):
    pass


class PasscrowServerPolicy(object):
    """``<KIND_LIST> via <SERVER_NAME>``, e.g. ``email, tel via srv.org``."""

    def __init__(self):
        self.kinds = []
        self.server = None

    def __repr__(self):
        return '<%s=%s>' % (type(self).__name__, self)

    def __str__(self):
        return '%s via %s' % (', '.join(self.kinds), self.server)

    def parse(self, text):
        try:
            choice = _gen.parse_server_choice(str(text))
        except _gen.PasscrowError as e:
            raise ValueError(str(e)) from None
        self.kinds, self.server = list(choice.kinds), choice.server
        return self


class PasscrowIdentityPolicy(object):
    """``<ID>[, notify=<ID>][ via <SERVER>]``; without a server one is
    chosen from the defaults (rotating through them as python-passcrow
    does)."""

    def __init__(self):
        self.id = None
        self.notify = None
        self.server = None
        self.timeout = None
        self.expiration = None

    usable = property(lambda s: s.server and s.id)

    def __repr__(self):
        return '<%s=%s>' % (type(self).__name__, self)

    def __str__(self):
        txt = self.id
        if self.notify:
            txt += ', notify=' + self.notify
        if self.server:
            txt += ' via ' + self.server
        return txt

    def get_timeout(self):
        if self.timeout is not None:
            return self.timeout
        return DEFAULT_TMO_MINS * 60

    def parse(self, txt, defaults=None):
        record = _defaults_record(defaults) if defaults is not None else None
        try:
            parsed = _gen.parse_identity_policy(str(txt), record)
        except _gen.PasscrowError as e:
            raise ValueError(str(e)) from None
        self.id = Identity(parsed.id)
        self.notify = Identity(parsed.notify) if parsed.notify else None
        self.server = parsed.server
        if defaults is not None:
            # libpasscrow rotated the defaults as python-passcrow does and
            # says how: rearrange the app's own objects (the same lists).
            _rearrange(defaults.idps, parsed.identity_order)
            _rearrange(defaults.servers, parsed.server_order)
        return self


def _rearrange(objs, order):
    """Put OBJS (in place) in ORDER, a list of their indices."""
    if len(order) == len(objs):
        objs[:] = [objs[i] for i in order]


def _defaults_record(policy):
    return _gen.PolicyDefaults(
        n=int(policy.n or DEFAULT_N), m=int(policy.m or DEFAULT_M),
        identities=[str(i) for i in policy.idps],
        servers=[str(s) for s in policy.servers],
        expiration_days=int(policy.expiration_days or DEFAULT_EXP_DAYS),
        timeout_minutes=int(policy.timeout_minutes or DEFAULT_TMO_MINS))


class PasscrowRecoveryPolicy(object):
    """Identities, an n-of-m ratio and lifetimes; with ``defaults`` (a
    client's ``default_policy``) the blanks are filled in from it."""

    def __init__(self, idps=None, n=None, m=None, expiration_days=None,
                 timeout_minutes=None, servers=None, defaults=None,
                 default_policy=False):
        self.n = DEFAULT_N if n is None else n
        self.m = DEFAULT_M if m is None else m
        self.expiration_days = expiration_days or DEFAULT_EXP_DAYS
        self.timeout_minutes = timeout_minutes or DEFAULT_TMO_MINS

        if not default_policy:
            if defaults:
                if not expiration_days:
                    self.expiration_days = defaults.expiration_days
                if not timeout_minutes:
                    self.timeout_minutes = defaults.timeout_minutes
            elif servers:
                defaults = PasscrowRecoveryPolicy(
                    servers=servers, default_policy=True)

        self.idps = []
        if idps:
            self.idps = [
                (i if isinstance(i, PasscrowIdentityPolicy)
                 else PasscrowIdentityPolicy().parse(i, defaults=defaults))
                for i in idps]

        self.servers = []
        if default_policy and servers:
            self.servers = [
                (s if isinstance(s, PasscrowServerPolicy)
                 else PasscrowServerPolicy().parse(s))
                for s in servers]

    def absolute_ratio(self, reserve=0):
        try:
            r = _gen.absolute_ratio(int(self.n), int(self.m),
                                    max(0, len(self.idps) - reserve))
        except _gen.PasscrowError as e:
            raise ValueError(str(e)) from None
        return r.n, r.m

    def __repr__(self):
        return '<%s=%s>' % (type(self).__name__, self)

    def __str__(self):
        text = '%d/%d of %s' % (
            self.n, self.m,
            (', '.join(str(i) for i in self.idps)) if self.idps else '(ids)')
        if self.servers:
            text += ' servers=(%s)' % ', '.join(str(sp) for sp in self.servers)
        return text


def _policy_from_record(d):
    p = PasscrowRecoveryPolicy(
        n=d.n, m=d.m, servers=list(d.servers), default_policy=True,
        expiration_days=d.expiration_days, timeout_minutes=d.timeout_minutes)
    p.idps = [PasscrowIdentityPolicy().parse(i) for i in d.identities]
    return p


def _path_or(given, resolved):
    """GIVEN (the app's object, str or path-like) unless the environment
    replaced it with RESOLVED."""
    return given if os.fsdecode(given) == resolved else resolved


def _default_urlopen(url, data=None, headers={}):
    return urllib.request.urlopen(
        urllib.request.Request(url, data=data, headers=headers))


class _UrlopenTransport(_gen.HttpTransport):
    """python-passcrow's ``urlopen_func`` as libpasscrow's HTTP transport."""

    def __init__(self, urlopen):
        self._urlopen = urlopen

    def post(self, url, body):
        headers = {'Content-type': 'application/json'}
        try:
            resp = self._urlopen(url, data=bytes(body), headers=headers)
            status = getattr(resp, 'status', None) or resp.getcode() or 200
            return _gen.HttpResponse(status=int(status), body=resp.read())
        except urllib.error.HTTPError as e:
            return _gen.HttpResponse(status=int(e.code), body=e.read() or b'')
        except Exception as e:  # no answer at all
            raise _gen.PasscrowError.Transport(
                detail='%s: %s' % (type(e).__name__, e)) from None


class _Log(_gen.LogSink):
    def __init__(self, func):
        self._func = func

    def log(self, message):
        try:
            self._func(message)
        except Exception:
            pass


class _Sleep(_gen.CompatSleeper):
    def __init__(self, func):
        self._func = func

    def sleep(self, seconds):
        # An exception cannot cross back into Rust here: fall back to a
        # plain sleep so the pacing still happens.
        try:
            self._func(seconds)
        except Exception:
            import time
            time.sleep(seconds)


class PasscrowClient(object):
    """python-passcrow's client, on libpasscrow. Every call blocks (network,
    hashcash, scrypt): run it on a background thread, as the guide says."""

    PACK_SUFFIX = b'.passcrow'

    def __init__(self, config_dir=None, data_dir=None, env_override=True,
                 create_dirs=False, load_defaults=True,
                 default_ids=None, default_servers=None,
                 default_n=None, default_m=None,
                 default_expiration_days=None, default_timeout_minutes=None,
                 sleep_min=None, sleep_max=None, sleep_func=None,
                 logging_func=None, urlopen_func=None):
        self.config_dir = config_dir or SHARED_CONFIG_DIR
        self.data_dir = data_dir or SHARED_DATA_DIR
        self.sleep_min = DEFAULT_SLEEP_MIN if sleep_min is None else sleep_min
        self.sleep_max = DEFAULT_SLEEP_MAX if sleep_max is None else sleep_max
        self.log = logging_func or print
        self.sleep = sleep_func
        self.urlopen = urlopen_func

        self.default_policy = PasscrowRecoveryPolicy(
            idps=default_ids, servers=default_servers,
            n=default_n, m=default_m,
            expiration_days=default_expiration_days,
            timeout_minutes=default_timeout_minutes,
            default_policy=True)

        if env_override:
            d = _gen.resolve_dirs(os.fsdecode(self.config_dir),
                                  os.fsdecode(self.data_dir), True)
            self.config_dir = _path_or(self.config_dir, d.config_dir)
            self.data_dir = _path_or(self.data_dir, d.data_dir)

        just_created = False
        for path in (self.config_dir, self.data_dir):
            if not os.path.exists(path):
                if not create_dirs:
                    raise OSError('Directory not found: %s' % path)
                os.makedirs(path, 0o700, exist_ok=True)
                self.log('%s: Created %s' % (self, path))
                just_created = True

        try:
            self._core = _gen.CompatClient(
                config_dir=str(self.config_dir), data_dir=str(self.data_dir),
                transport=_UrlopenTransport(self.urlopen) if self.urlopen else None,
                log=_Log(self.log),
                sleeper=_Sleep(self.sleep) if self.sleep else None,
                sleep_min=int(self.sleep_min), sleep_max=int(self.sleep_max),
                language=self.wanted_language())
        except _gen.PasscrowError as e:
            raise OSError(str(e)) from None

        try:
            if load_defaults:
                self.load_default_policy()
        except (OSError, IOError):
            pass
        if just_created:
            self.save_default_policy()

    def __str__(self):
        if self.config_dir != self.data_dir:
            where = 'config=%s, data=%s' % (self.config_dir, self.data_dir)
        else:
            where = 'home=%s' % self.config_dir
        return 'PasscrowClient(%s)' % where

    # -- defaults (policy.rc) -------------------------------------------

    def default_policy_filename(self):
        return os.path.join(self.config_dir, 'policy.rc')

    def load_default_policy(self):
        try:
            d = self._core.load_defaults()
        except _gen.PasscrowError.BadInput as e:
            raise ValueError(str(e)) from None
        except _gen.PasscrowError as e:
            raise OSError(str(e)) from None
        self.default_policy = _policy_from_record(d)

    def save_default_policy(self):
        try:
            self._core.set_defaults(_defaults_record(self.default_policy), True)
        except _gen.PasscrowError as e:
            raise OSError(str(e)) from None

    # -- packs ----------------------------------------------------------

    def __iter__(self):
        for s in self._core.list():
            if s.error:
                self.log('%s: %s' % (s.name, s.error))
                continue
            yield (s.name, self.pack(s.name))

    def pack(self, name):
        try:
            return RecoveryPack(self._core.pack(name))
        except _gen.PasscrowError as e:
            raise OSError(str(e)) from None

    def wanted_language(self):
        return os.getenv('PASSCROW_LANGUAGE', 'en')

    # -- operations -----------------------------------------------------

    def protect(self, name, secret, policy, quick=False, ephemeral=False,
                pack_description=DEFAULT_PACK_DESC,
                verify_description=DEFAULT_VERIFY_DESC):
        """Protect SECRET (bytes or str) under NAME. Returns True, False
        when too few servers accepted an escrow, or with ``ephemeral`` the
        escrow record whose ``server`` and ``recovery_key`` recover it."""
        if isinstance(secret, str):
            secret = secret.encode('utf-8')
        if ephemeral == EPHEMERAL_BOTH:
            mode = _gen.EphemeralMode.BOTH
        elif ephemeral:
            mode = _gen.EphemeralMode.ONLY
        else:
            mode = _gen.EphemeralMode.NO
        try:
            # Fewer than 2 identities for ephemeral protection, or one
            # without a server: BadInput, a ValueError as in python-passcrow.
            r = self._core.protect(
                name=name, secret=bytes(secret),
                identities=[str(i) for i in policy.idps],
                n=int(policy.n), m=int(policy.m),
                expiration_days=int(policy.expiration_days),
                timeout_minutes=int(policy.timeout_minutes),
                ephemeral=mode, quick=bool(quick),
                pack_description=pack_description,
                verify_description=verify_description)
        except _gen.PasscrowError.BadInput as e:
            raise ValueError(str(e)) from None
        except (_gen.PasscrowError, _gen.InternalError) as e:
            self.log('protect %s: %s' % (name, e))
            return False
        if r.ephemeral is not None:
            e = r.ephemeral
            return EscrowRecord(kind='ephemeral', server=e.server,
                                recovery_key=e.user_key.expose(),
                                expiration=e.expiration)
        return True

    def verify(self, pack, quick=False, now=None):
        """Ask the servers to send codes. Returns the responses, or None
        when fewer than the pack needs could be started."""
        try:
            v = self._core.verify(pack._pack, bool(quick))
        except (_gen.PasscrowError, _gen.InternalError) as e:
            self.log('verify %s: %s' % (pack._label, e))
            return None
        for f in v.failures:
            self.log('%s on %s: %s' % (f.escrow_id or '-', f.server, f.message))
        if len(v.hints) < v.min_shares:
            return None
        return [VerificationResponse(
                    passcrow_verification_response='1.0',
                    hint=h.hint, action_url=h.action_url,
                    expiration=h.expiration, kind=h.kind, prefix=h.prefix)
                for h in v.hints]

    def recover(self, pack, codes, quick=False):
        """Recover with the codes the user typed. Returns the secret
        (bytes), or for an ephemeral recovery id the restored pack (now
        saved locally) to verify and recover next. Raises KeyError when
        recovery fails, as python-passcrow does."""
        try:
            r = self._core.recover(pack._pack, [str(c) for c in codes],
                                   bool(quick))
        except (_gen.PasscrowError, _gen.InternalError) as e:
            raise KeyError('Recovery failed: %s' % e) from None
        if isinstance(r, _gen.RecoveryResult.SECRET):
            return bytes(r.secret)
        return RecoveryPack(r.pack)

    def delete(self, name, remote=True, quick=False):
        """Delete the pack NAME: its escrows on the servers (with
        ``remote``), then the file. Returns True when all went well."""
        try:
            self._core.forget(name, not remote, bool(quick))
        except _gen.PasscrowError.NotFound as e:
            if remote:
                raise OSError(str(e)) from None
        except (_gen.PasscrowError, _gen.InternalError) as e:
            self.log('delete %s: %s' % (name, e))
            return False
        return True


if sys.version_info < (3, 7):  # pragma: no cover
    raise ImportError('passcrow.client needs Python 3.7 or newer')
