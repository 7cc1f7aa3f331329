"""An authenticator app (a `totp:` identity) and a release delay, through
the bindings against a real passcrow-server: the enrolment URI comes back
from protect, the code an app would show opens the escrow once; a delayed
escrow answers the right code with the typed PasscrowError.Pending and
the time the release is due, after telling every identity."""

import base64
import hashlib
import hmac
import struct
import time
import urllib.parse

import pytest

import passcrow

from conftest import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("server"), delays=True)
    yield s
    s.stop()


def app_code(uri: str, at: float) -> str:
    """The 6 digits an authenticator app enrolled with `uri` shows at `at`
    (RFC 6238: HMAC-SHA-1, 30 s steps)."""
    q = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)
    assert (q["algorithm"], q["digits"], q["period"]) == (["SHA1"], ["6"], ["30"])
    s = q["secret"][0].upper()
    key = base64.b32decode(s + "=" * (-len(s) % 8))
    h = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    o = h[-1] & 15
    return "%06d" % ((struct.unpack(">I", h[o:o + 4])[0] & 0x7FFFFFFF) % 1000000)


def test_an_authenticator_app_enrols_and_recovers_once(server, client):
    ids = [f"totp:phone via {server.url}", f"alice@example.org via {server.url}"]
    res = client.protect("wallet", b"seed words", ids, n=1, m=2)
    [e] = res.totp
    assert (e.label, e.server, e.prefix) == ("phone", server.url, "1")
    uri = e.uri.expose()
    assert uri.startswith("otpauth://totp/Passcrow:phone?secret=")
    assert "issuer=Passcrow" in uri
    # The secret never shows when the result is printed (logs).
    for shown in (repr(e), str(e), repr(res), str(res)):
        assert "secret=" not in shown, shown

    pack = client.pack("wallet")
    v = client.verify(pack)
    totp_hint = [h for h in v.hints if h.kind == "totp"]
    assert len(totp_hint) == 1 and "authenticator" in totp_hint[0].hint
    code = app_code(uri, time.time())
    result = client.recover(pack, [code])
    assert result.is_secret() and result.secret == b"seed words"

    # The same code in a new recovery: refused, it opens once.
    client.verify(pack)
    with pytest.raises(passcrow.PasscrowError.WrongCode):
        client.recover(pack, [code])


def test_a_delayed_recovery_is_pending_until_its_time(server, client):
    ids = [f"carol@example.org, notify=dave@example.org, delay=1h via {server.url}"]
    client.protect("diary", b"diary key", ids, n=1, m=1)
    pack = client.pack("diary")
    client.verify(pack)
    code = server.code_for("carol")
    before = time.time()
    with pytest.raises(passcrow.PasscrowError.Pending) as ei:
        client.recover(pack, [code])
    err = ei.value
    assert isinstance(err, passcrow.PasscrowError)
    assert before + 3500 <= err.release_at <= time.time() + 3700
    assert err.server == server.url
    assert "pending" in str(err) and code not in str(err)
    # Both identities were told, the notify one too.
    told = server.codes_file.read_text()
    assert "dave@example.org" in told
