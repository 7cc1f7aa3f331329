"""The few ``passcrow.proto`` names python-passcrow's client API hands back.

Apps written to python-passcrow's integration guide receive identities,
verification responses and recovery packs from :mod:`passcrow.client`; this
module gives them the same shape. There is no protocol logic here: parsing,
normalising and everything on the wire happen in libpasscrow (Rust).
"""

from ._uniffi import passcrow as _gen

PASSCROW_PROTO_VERSION = '1.0'


class Identity(str):
    """``kind:address``, such as ``email:bre@example.org`` or
    ``tel:+3545885522``. Bare e-mail addresses and phone numbers get their
    kind added, as python-passcrow does."""

    def __new__(cls, other):
        try:
            text = _gen.normalize_identity(str(other))
        except _gen.PasscrowError as e:
            raise ValueError(str(e)) from None
        return str.__new__(cls, text)

    kind = property(lambda s: s.split(':', 1)[0])
    address = property(lambda s: s.split(':', 1)[1])


class _Record(object):
    """A dict-like record with attribute access, like python-passcrow's
    ``_json_object``: ``'action-url' in vfy`` and ``vfy.action_url`` both
    work."""

    _KEYS = ()

    def __init__(self, **values):
        self._dict = {}
        for k, v in values.items():
            if v is not None:
                self._dict[k.replace('_', '-')] = v

    def __contains__(self, key):
        return key in self._dict

    def __getitem__(self, key):
        return self._dict[key]

    def get(self, key, default=None):
        return self._dict.get(key, default)

    def items(self):
        return self._dict.items()

    def keys(self):
        return self._dict.keys()

    def __getattr__(self, name):
        if name.startswith('_'):
            raise AttributeError(name)
        key = name.replace('_', '-')
        if key in self._KEYS:
            return self._dict.get(key)
        raise AttributeError(name)

    def __repr__(self):
        return '<%s %s>' % (type(self).__name__, sorted(self._dict))


class VerificationResponse(_Record):
    """One verification started: where a code went (``kind``, masked
    ``hint``, ``prefix``, ``expiration``) or where to go (``action_url``)."""

    _KEYS = ('passcrow-verification-response', 'hint', 'action-url',
             'escrow-data-id', 'expiration', 'kind', 'prefix', 'error')

    def get_hints(self):
        hints = dict((k, v) for k, v in self._dict.items()
                     if k in ('prefix', 'kind', 'expiration', 'hint', 'action-url'))
        if 'kind' in hints:
            hints['kind'] = _gen.explain_kind(hints['kind'])
        return hints


class EscrowRecord(_Record):
    """What an ephemeral ``protect`` returns: ``server`` and
    ``recovery_key`` make the recovery id ``SERVER:KEY``."""

    _KEYS = ('kind', 'server', 'recovery-key', 'expiration')


class RecoveryPack(object):
    """A recovery pack as loaded by :meth:`passcrow.client.PasscrowClient.pack`.
    It holds key material; the contents stay inside libpasscrow."""

    def __init__(self, pack):
        self._pack = pack

    name = property(lambda s: s._pack.name())
    description = property(lambda s: s._pack.description())
    min_shares = property(lambda s: s._pack.min_shares())
    created_ts = property(lambda s: s._pack.created_ts())

    def __contains__(self, key):
        if key == 'is-ephemeral':
            return self._pack.is_ephemeral_stub()
        return key in ('name', 'min-shares', 'escrow', 'secret', 'shares')

    @property
    def _label(self):
        # An ephemeral recovery id (SERVER:USER_KEY) is a secret.
        if self._pack.is_ephemeral_stub():
            return '[ephemeral recovery id]'
        return repr(self.name)

    def __repr__(self):
        return '<RecoveryPack %s>' % self._label
