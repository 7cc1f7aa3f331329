"""The bindings' story against a real passcrow-server: protect 2-of-3,
verify, read the codes, recover, compare bytes; a wrong code raises the
typed error with attempts left; forget removes the pack."""

import threading
import urllib.error
import urllib.request

import pytest

import passcrow

SECRET = b"correct horse \x00\xff battery staple"


def mangle(code: str) -> str:
    """The same prefix, a different code."""
    last = "1" if code[-1] != "1" else "2"
    return code[:-1] + last


def test_protect_verify_recover_forget(server, client):
    ids = server.identities("alice", "bob", "carol")
    res = client.protect("wallet", SECRET, ids, n=2, m=3)
    assert isinstance(res, passcrow.ProtectResult)
    assert (res.name, res.min_shares, res.escrows) == ("wallet", 2, 3)
    assert res.path and res.path.endswith("wallet.passcrow")
    assert res.ephemeral is None

    [summary] = client.list()
    assert (summary.name, summary.min_shares, summary.escrows) == ("wallet", 2, 3)
    assert summary.kinds == ["email", "email", "email"]
    assert summary.error is None

    pack = client.pack("wallet")
    assert (pack.name(), pack.min_shares(), pack.escrows()) == ("wallet", 2, 3)
    v = client.verify(pack)
    assert v.min_shares == 2 and v.failures == []
    assert [h.kind for h in v.hints] == ["email"] * 3
    assert all(h.server == server.url for h in v.hints)
    assert all("@" in h.hint and "alice" not in h.hint for h in v.hints)

    codes = [server.code_for(n) for n in ("alice", "bob", "carol")]
    assert [c[0] for c in codes] == [h.prefix for h in v.hints]

    # Two wrong codes: typed error, attempts left, nothing consumed.
    with pytest.raises(passcrow.PasscrowError.WrongCode) as ei:
        client.recover(pack, [mangle(codes[0]), mangle(codes[1])])
    err = ei.value
    assert isinstance(err, passcrow.PasscrowError)
    assert err.attempts_left == 2
    assert err.prefix in (codes[0][0], codes[1][0])
    assert "wrong verification code" in str(err) and "2 attempts left" in str(err)
    assert codes[0] not in str(err) and codes[1] not in str(err)

    # The right codes (typed loosely: blanks, dashes, lower case).
    typed = [codes[2][:3] + " " + codes[2][3:], "-".join([codes[0][:4], codes[0][4:]])]
    result = client.recover(pack, typed)
    assert isinstance(result, passcrow.RecoveryResult.SECRET)
    assert result.is_secret()
    assert isinstance(result.secret, bytes) and result.secret == SECRET
    assert "battery" not in repr(result)

    assert client.forget("wallet") == 3
    assert client.list() == []
    with pytest.raises(passcrow.PasscrowError.NotFound):
        client.pack("wallet")
    # The escrows are gone from the server too: a copy of the pack cannot
    # start verification any more.
    with pytest.raises(passcrow.PasscrowError.Incomplete) as ei:
        client.verify(pack)
    assert ei.value.operation == "verify" and ei.value.got == 0
    assert len(ei.value.failures) == 3


def test_bad_input(server, client):
    ids = server.identities("alice", "bob", "carol")
    with pytest.raises(passcrow.PasscrowError.BadInput):
        client.protect("x", b"s", ids, n=4, m=3)
    with pytest.raises(passcrow.PasscrowError.BadInput):
        client.protect("x", b"s", ["not an identity"], n=1, m=1)
    with pytest.raises(passcrow.PasscrowError.BadInput):
        client.protect("", b"s", ids, n=2, m=3)
    with pytest.raises(TypeError):
        client.protect("x", "not bytes", ids)  # type: ignore[arg-type]
    client.protect("dup", b"s", ids, n=2, m=3)
    with pytest.raises(passcrow.PasscrowError.BadInput):
        client.protect("dup", b"s", ids, n=2, m=3)
    pack = client.pack("dup")
    with pytest.raises(passcrow.PasscrowError.BadInput):
        client.recover(pack, ["1234567"])  # too few codes
    upside_down = passcrow.DelayRange(min_seconds=2, max_seconds=1)
    with pytest.raises(passcrow.PasscrowError.BadInput):
        client.verify(pack, passcrow.CallOptions(anonymity_delay=upside_down))
    assert client.forget("dup", local_only=False) == 3


class UrllibTransport(passcrow.HttpTransport):
    """An app's own HTTP stack (here urllib), counting requests."""

    def __init__(self):
        self.urls = []
        self.lock = threading.Lock()

    def post(self, url, body):
        assert isinstance(body, bytes)
        with self.lock:
            self.urls.append(url)
        req = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return passcrow.HttpResponse(status=r.status, body=r.read())
        except urllib.error.HTTPError as e:
            return passcrow.HttpResponse(status=e.code, body=e.read())
        except OSError as e:
            raise passcrow.PasscrowError.Transport(str(e)) from e


class Lines(passcrow.LogSink):
    def __init__(self):
        self.lines = []

    def log(self, message):
        self.lines.append(message)


def test_foreign_transport_and_log(server, tmp_path):
    t, log = UrllibTransport(), Lines()
    c = passcrow.PasscrowClient(tmp_path / "c", tmp_path / "d", transport=t, log=log)
    ids = server.identities("dora", "emil", "fay")
    c.protect("notes", SECRET, ids, n=2, m=3)
    pack = c.pack("notes")
    c.verify(pack)
    got = c.recover(pack, [server.code_for("emil"), server.code_for("fay")])
    assert got.secret == SECRET
    assert c.forget("notes") == 3
    methods = {u.rsplit("/", 1)[1] for u in t.urls}
    assert {"policy", "escrowrequest", "verificationrequest",
            "recoveryrequest", "deletionrequest"} <= methods
    assert all(u.startswith(server.url + "/passcrow/") for u in t.urls)
    assert any("escrowed share" in line for line in log.lines)
    assert not any(SECRET.decode("latin-1") in line for line in log.lines)


class Broken(passcrow.HttpTransport):
    def __init__(self, exc):
        self.exc = exc

    def post(self, url, body):
        raise self.exc


@pytest.mark.parametrize("exc", [
    passcrow.PasscrowError.Transport("no route (test)"),
    RuntimeError("unexpected (test)"),
])
def test_transport_failures_are_typed(server, tmp_path, exc):
    c = passcrow.PasscrowClient(tmp_path / "c", tmp_path / "d", transport=Broken(exc),
                                retry_backoff_ms=10, max_backoff_ms=20)
    with pytest.raises(passcrow.PasscrowError.Incomplete) as ei:
        c.protect("x", b"s", server.identities("a", "b", "c"), n=2, m=3)
    assert ei.value.operation == "protect"
    assert all("transport" in f.message for f in ei.value.failures)
    assert c.list() == []


def test_defaults_renew_expiring(server, tmp_path):
    c = passcrow.PasscrowClient(tmp_path / "c", tmp_path / "d")
    d = c.defaults()
    d.n, d.m = 2, 3
    d.identities = server.identities("gus", "hal", "ivy")
    c.set_defaults(d, save=True)
    assert (tmp_path / "c" / "policy.rc").exists()
    d = c.defaults()
    assert d.identities == [f"email:{n}@example.org via {server.url}"
                            for n in ("gus", "hal", "ivy")]
    c2 = passcrow.PasscrowClient(tmp_path / "c", tmp_path / "d")
    assert c2.defaults() == d

    first = c2.protect("diary", SECRET, [])  # identities and ratio from defaults
    assert (first.min_shares, first.escrows) == (2, 3)
    assert [p.name for p in c2.expiring(400 * 86400)] == ["diary"]
    assert c2.expiring(0) == []
    renewed = c2.renew("diary", SECRET + b"!")
    assert renewed.cleanup_failures == []
    pack = c2.pack("diary")
    c2.verify(pack)
    got = c2.recover(pack, [server.code_for("gus"), server.code_for("ivy")])
    assert got.secret == SECRET + b"!"
    assert c2.forget("diary") == 3


def test_ephemeral_recovery_without_the_pack(server, tmp_path):
    c = passcrow.PasscrowClient(tmp_path / "c", tmp_path / "d")
    ids = server.identities("jo", "kim", "lee")
    res = c.protect("phone", SECRET, ids, n=1, m=2,
                    ephemeral=passcrow.EphemeralMode.ONLY)
    assert res.path is None and c.list() == []
    eph = res.ephemeral
    assert eph is not None and eph.server == server.url
    user_key, recovery_id = eph.user_key.expose(), eph.recovery_id.expose()
    assert recovery_id == f"{eph.server}:{user_key}"
    for shown in (repr(res), str(res), repr(eph), str(eph)):
        assert user_key not in shown, shown

    # On a new device: the recovery id alone.
    c2 = passcrow.PasscrowClient(tmp_path / "c2", tmp_path / "d2")
    stub = c2.pack(recovery_id)
    assert stub.is_ephemeral_stub()
    c2.verify(stub)
    step = c2.recover(stub, [server.code_for("jo")])
    assert isinstance(step, passcrow.RecoveryResult.PACK)
    real = step.pack
    assert real.min_shares() == 1 and real.escrows() == 2
    c2.verify(real)
    got = c2.recover(real, [server.code_for("kim")])
    assert got.secret == SECRET


def test_helpers():
    assert passcrow.normalize_code(" a12o45l ") == "A120451"
    assert passcrow.__version__ == passcrow.library_version()
    e = passcrow.PasscrowError.WrongCode("wrong code", "2", 1)
    assert str(e) == "wrong code" and "attempts_left=1" in repr(e)


def test_calls_run_in_threads(server, tmp_path):
    """One client, used from several threads at once (GIL released)."""
    c = passcrow.PasscrowClient(tmp_path / "c", tmp_path / "d")
    errors = []

    def work(i):
        try:
            ids = server.identities(f"t{i}a", f"t{i}b")
            c.protect(f"p{i}", SECRET, ids, n=1, m=2)
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(p.name for p in c.list()) == ["p0", "p1", "p2"]


def test_call_options_anonymity_delay(server, client):
    """Per-call options: an anonymity delay between the requests to one
    server, for this call only; without options there is none."""
    import time

    ids = server.identities("lou", "max", "ned")
    client.protect("paced", SECRET, ids, n=2, m=3, options=passcrow.CallOptions())
    pack = client.pack("paced")
    one_second = passcrow.CallOptions(
        anonymity_delay=passcrow.DelayRange(min_seconds=1, max_seconds=1))
    assert passcrow.CallOptions().anonymity_delay is None
    start = time.monotonic()
    v = client.verify(pack, options=one_second)
    # Three requests to the same server: two delays between them.
    assert time.monotonic() - start >= 2.0
    assert len(v.hints) == 3
    got = client.recover(pack, [server.code_for("lou"), server.code_for("ned")],
                         options=passcrow.CallOptions(anonymity_delay=None))
    assert got.secret == SECRET
    assert client.forget("paced", options=passcrow.CallOptions()) == 3


def test_check_and_renewal_due(server, client):
    """The health check sends no code: every escrow is held and proven,
    and the pack is due for review only when its escrows expire within
    the window asked for."""
    before = server.codes_file.read_text() if server.codes_file.exists() else ""
    ids = server.identities("dora", "emil", "finn")
    res = client.protect("health", SECRET, ids, n=2, m=3)
    assert res.warnings  # one server holds every share
    check = client.check(client.pack("health"))
    assert isinstance(check, passcrow.PackCheck)
    assert check.recoverable == passcrow.Recoverability.YES
    assert (check.healthy, check.margin, check.min_shares) == (3, 1, 2)
    assert [e.status for e in check.escrows] == [passcrow.EscrowStatus.HELD] * 3
    assert all(e.proven and e.server == server.url for e in check.escrows)
    [advice] = [a for a in client.renewal_due(within_seconds=400 * 86400) if a.name == "health"]
    assert advice.due
    assert [r.kind for r in advice.reasons] == [passcrow.RenewalReasonKind.EXPIRING]
    [advice] = [a for a in client.renewal_due(within_seconds=60) if a.name == "health"]
    assert not advice.due and advice.reasons == [], [r.text for r in advice.reasons]
    client.mark_reviewed("health")
    after = server.codes_file.read_text() if server.codes_file.exists() else ""
    assert after == before
    client.forget("health")
