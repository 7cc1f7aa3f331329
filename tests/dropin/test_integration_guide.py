"""python-passcrow's integration guide, as tests.

Every call here is one the guide (docs/INTEGRATION.md of python-passcrow)
tells apps to make. The same file runs against python-passcrow 0.0.7 and
against libpasscrow's wheel; see conftest.py.
"""
import json
import os
import stat

import pytest

from passcrow.client import (
    PasscrowClient, PasscrowRecoveryPolicy, PasscrowIdentityPolicy)


def recovery_data():
    # The guide's get_recovery_data(): JSON with a marker and a key.
    return json.dumps({'marker': 'FooApp Recovery Data', 'version': '1.0',
                       'key': 'c2VjcmV0IGtleSBtYXRlcmlhbA=='})


def ask_codes(client, server, pack, identities):
    before = {i: server.count_for('email:' + i) for i in identities}
    verifications = client.verify(pack, quick=True)
    return verifications, before


def read_codes(server, identities, before):
    return [server.code_for('email:' + i, after=before[i]) for i in identities]


def test_protect_verify_recover_delete(make_client, server, ids):
    client = make_client()
    policy = PasscrowRecoveryPolicy(
        idps=ids[:3], n=2, m=3, expiration_days=1,
        defaults=client.default_policy)
    data = recovery_data()
    name = 'FooApp Data'
    assert client.protect(name, data, policy,
                          pack_description=name, verify_description=name,
                          quick=True) is True
    assert [n for n, _ in client] == [name]

    pack = client.pack(name)
    verifications, before = ask_codes(client, server, pack, ids[:3])
    assert verifications and len(verifications) == 3
    for vfy in verifications:
        assert 'action-url' not in vfy
        assert vfy.kind == 'email'
        assert vfy.hint and '@' in vfy.hint
        assert vfy.prefix and len(vfy.prefix) == 1
        assert vfy.expiration > 0
        hints = vfy.get_hints()
        assert hints['prefix'] == vfy.prefix and hints['hint'] == vfy.hint
        assert isinstance(hints['kind'], str) and hints['kind']
    codes = read_codes(server, ids[:2], before)
    all_codes = codes + read_codes(server, ids[2:3], before)
    assert sorted(v.prefix for v in verifications) == sorted(c[:1] for c in all_codes)

    secret = client.recover(client.pack(name), codes, quick=True)
    assert secret == data.encode('utf-8')

    assert client.delete(name, remote=True, quick=True) is True
    with pytest.raises(OSError):
        client.pack(name)
    assert list(client) == []
    # The servers forgot the escrows too: verification now fails.
    assert client.verify(pack, quick=True) is None


def test_codes_typed_sloppily(make_client, server, ids):
    client = make_client()
    policy = PasscrowRecoveryPolicy(idps=ids[:3], n=2, m=3,
                                    defaults=client.default_policy)
    data = b'\x00binary\xffsecret'
    assert client.protect('sloppy', data, policy, quick=True)
    pack = client.pack('sloppy')
    _, before = ask_codes(client, server, pack, ids[:3])
    codes = read_codes(server, ids[:2], before)
    sloppy = [c.lower().replace('0', 'o') for c in codes]
    assert client.recover(pack, sloppy, quick=True) == data


def test_wrong_codes_fail(make_client, server, ids):
    client = make_client()
    policy = PasscrowRecoveryPolicy(idps=ids[:3], n=2, m=3,
                                    defaults=client.default_policy)
    assert client.protect('wrong', b'secret', policy, quick=True)
    pack = client.pack('wrong')
    _, before = ask_codes(client, server, pack, ids[:3])
    good = read_codes(server, ids[:2], before)
    bad = [c[:1] + ('000000' if c[1:] != '000000' else '111111') for c in good]
    with pytest.raises(KeyError):
        client.recover(pack, bad, quick=True)
    # Nothing was changed by the failure: the pack is still there.
    assert [n for n, _ in client] == ['wrong']


def test_identity_policy_text_and_objects(make_client, server, ids):
    client = make_client()
    text = '%s, notify=%s via %s' % (ids[0], ids[3], server.name)
    idp = PasscrowIdentityPolicy().parse(text)
    assert str(idp.id) == 'email:' + ids[0]
    assert str(idp.notify) == 'email:' + ids[3]
    assert idp.server == server.name
    policy = PasscrowRecoveryPolicy(
        idps=[idp, ids[1], '%s via %s' % (ids[2], server.name)],
        n=2, m=3, defaults=client.default_policy)
    assert [str(i.id) for i in policy.idps] == ['email:' + i for i in ids[:3]]
    assert all(i.server == server.name for i in policy.idps)
    assert policy.absolute_ratio() == (2, 3)
    assert client.protect('objects', b'x', policy, quick=True)


def test_defaults_in_policy_rc(tmp_path, make_client, server, ids):
    first = make_client('home', default_n=2, default_m=3,
                        default_expiration_days=7, default_timeout_minutes=20)
    rc = os.path.join(str(tmp_path / 'home'), 'policy.rc')
    assert os.path.exists(rc)       # created on first run (create_dirs)
    text = open(rc).read()
    assert 'ratio: 2/3' in text
    assert 'server: email via %s' % server.name in text
    assert 'expiration_days: 7' in text

    # Later runs: policy.rc wins over the code's defaults.
    second = make_client('home', default_n=5, default_m=9,
                         default_expiration_days=99,
                         default_servers=['email via other.example.org'])
    dp = second.default_policy
    assert (dp.n, dp.m, dp.expiration_days, dp.timeout_minutes) == (2, 3, 7, 20)
    assert [s.server for s in dp.servers] == [server.name]

    # Power users edit it; apps may save it back.
    dp.expiration_days = 3
    second.save_default_policy()
    third = make_client('home')
    assert third.default_policy.expiration_days == 3
    third.load_default_policy()
    policy = PasscrowRecoveryPolicy(idps=ids[:3], defaults=third.default_policy)
    assert policy.expiration_days == 3
    assert all(i.server == server.name for i in policy.idps)


def test_ephemeral(make_client, server, ids):
    client = make_client()
    policy = PasscrowRecoveryPolicy(idps=ids[:3], n=2, m=3,
                                    defaults=client.default_policy)
    data = b'ephemeral secret'
    before0 = server.count_for('email:' + ids[0])
    erec = client.protect('eph', data, policy, quick=True, ephemeral=True)
    assert erec, 'ephemeral protect returns the escrow record'
    assert list(client) == []       # ephemeral only: no local pack
    recovery_id = '%s:%s' % (erec.server, erec.recovery_key)

    # A fresh device: nothing on disk but the recovery id.
    other = make_client('other-device')
    pack = other.pack(recovery_id)
    verifications = other.verify(pack, quick=True)
    assert len(verifications) == 1
    code = server.code_for('email:' + ids[0], after=before0)
    restored = other.recover(pack, [code], quick=True)
    # The pack is back on this device (python-passcrow names it after the
    # recovery key); recover the secret with it.
    names = [n for n, _ in other]
    assert len(names) == 1
    pack = other.pack(names[0])
    _, before = ask_codes(other, server, pack, ids[1:3])
    codes = read_codes(server, ids[1:2], before)
    assert other.recover(pack, codes, quick=True) == data


def test_unknown_pack(make_client):
    client = make_client()
    with pytest.raises(OSError):
        client.pack('no such pack')


@pytest.mark.reference_bug
def test_threshold_of_three(make_client, server, ids):
    """COMPAT.md: a threshold of 3 or more crashes the reference client."""
    client = make_client()
    policy = PasscrowRecoveryPolicy(idps=ids[:3], n=3, m=3,
                                    defaults=client.default_policy)
    assert client.protect('three', b'three of three', policy, quick=True)
    pack = client.pack('three')
    _, before = ask_codes(client, server, pack, ids[:3])
    codes = read_codes(server, ids[:3], before)
    assert client.recover(pack, codes, quick=True) == b'three of three'


@pytest.mark.reference_bug
def test_pack_is_private(make_client, server, ids, tmp_path):
    """COMPAT.md: the reference writes packs world-readable."""
    client = make_client()
    policy = PasscrowRecoveryPolicy(idps=ids[:3], n=2, m=3,
                                    defaults=client.default_policy)
    assert client.protect('private', b'x', policy, quick=True)
    d = str(tmp_path / 'passcrow')
    packs = [f for f in os.listdir(d) if f.endswith('.passcrow')]
    assert packs
    for f in packs:
        mode = stat.S_IMODE(os.stat(os.path.join(d, f)).st_mode)
        assert mode & 0o077 == 0, oct(mode)


def test_sleep_and_logging_funcs(make_client, server, ids):
    """quick=False keeps the anonymity delay between requests, slept by
    the app's sleep_func; logging_func receives progress lines."""
    from conftest import short_sleep
    slept = []

    def sleep_func(seconds):
        slept.append(seconds)
        short_sleep(seconds)     # really pause: the server rate-limits

    client = make_client(sleep_min=1, sleep_max=2, sleep_func=sleep_func)
    policy = PasscrowRecoveryPolicy(idps=ids[:3], n=2, m=3,
                                    defaults=client.default_policy)
    assert client.protect('slow', b'x', policy, quick=False)
    delays = [s for s in slept if 1 <= s <= 2]
    assert delays, slept
    assert make_client.logs, 'logging_func received nothing'
    assert not any('x' == line for line in make_client.logs)


def test_ephemeral_needs_two_identities(make_client, server, ids):
    client = make_client()
    policy = PasscrowRecoveryPolicy(idps=ids[:1], n=1, m=1,
                                    defaults=client.default_policy)
    with pytest.raises(ValueError):
        client.protect('eph1', b'x', policy, quick=True, ephemeral=True)


def test_identity_without_server(make_client, ids):
    # No defaults to choose a server from.
    client = make_client()
    policy = PasscrowRecoveryPolicy(idps=ids[:2], n=1, m=2)
    assert all(not i.server for i in policy.idps)
    with pytest.raises(ValueError):
        client.protect('noserver', b'x', policy, quick=True)
    assert list(client) == []


def test_module_defaults():
    import passcrow.client as pc
    assert (pc.DEFAULT_N, pc.DEFAULT_M) == (3, 4)
    assert (pc.DEFAULT_EXP_DAYS, pc.DEFAULT_TMO_MINS) == (365, 30)
    assert (pc.DEFAULT_SLEEP_MIN, pc.DEFAULT_SLEEP_MAX) == (0, 600)
    assert pc.DEFAULT_PACK_DESC == 'Created using python Passcrow'
    assert pc.DEFAULT_VERIFY_DESC == 'Passcrow Data'


def test_shared_dirs_are_appdirs():
    appdirs = pytest.importorskip('appdirs')
    import passcrow.client as pc
    assert pc.SHARED_CONFIG_DIR == appdirs.user_config_dir(
        'passcrow', roaming=False)
    assert pc.SHARED_DATA_DIR == appdirs.user_data_dir(
        'passcrow', roaming=False)


def test_environment_overrides_directories(make_client, tmp_path, monkeypatch):
    home, data = str(tmp_path / 'home'), str(tmp_path / 'data')
    monkeypatch.setenv('PASSCROW_HOME', home)
    monkeypatch.setenv('PASSCROW_DATA', data)
    monkeypatch.delenv('PASSCROW_CONFIG', raising=False)
    client = make_client(env_override=True)
    assert (client.config_dir, client.data_dir) == (home, data)
    assert os.path.exists(os.path.join(home, 'policy.rc'))
    given = str(tmp_path / 'passcrow')
    client = make_client(env_override=False)
    assert (client.config_dir, client.data_dir) == (given, given)


def test_client_needs_no_appdirs():
    """Ours only: passcrow.client imports without appdirs (python-passcrow
    needs it), and finds the same directories."""
    import subprocess
    import sys
    from conftest import IS_LIBPASSCROW
    if not IS_LIBPASSCROW:
        pytest.skip('python-passcrow imports appdirs')
    code = ("import sys; sys.modules['appdirs'] = None\n"
            "import passcrow.client as pc\n"
            "print(pc.SHARED_CONFIG_DIR); print(pc.SHARED_DATA_DIR)")
    out = subprocess.run([sys.executable, '-c', code], check=True,
                         capture_output=True, text=True).stdout.split('\n')
    import passcrow.client as pc
    assert out[:2] == [pc.SHARED_CONFIG_DIR, pc.SHARED_DATA_DIR]
