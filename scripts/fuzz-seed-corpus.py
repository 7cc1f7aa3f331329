#!/usr/bin/env python3
"""Write the fuzz targets' seed corpus, fuzz/corpus/<target>/, from the test
vectors (python-passcrow 0.0.7's, in tests/data/ and ../shared/vectors/) and
a few hand-written messages of each kind. Standard library only.

Each seed is named by the SHA-1 of its bytes (as libFuzzer names its own),
so running this again changes nothing unless the seeds do. The input
layout of each target (a selector byte, a NUL-separated part) is described
at the top of its fuzz/fuzz_targets/<target>.rs.

    python3 scripts/fuzz-seed-corpus.py [--clean]
"""

import base64
import glob
import hashlib
import json
import os
import sys
import zlib

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")

# The fixed values the targets use (see the targets' sources).
NOW = 1_800_000_000  # server_request, hashcash: the server's clock
KNOWN_ID = "f00d" * 8  # server_request: the escrow every fresh server holds
KNOWN_KEY = base64.b64encode(bytes([5] * 32)).decode()


def load_vectors():
    paths = sorted(glob.glob(os.path.join(ROOT, "tests", "data", "*.json")))
    shared = os.path.join(ROOT, "..", "shared", "vectors", "python-passcrow-0.0.7.json")
    if os.path.exists(shared):
        paths.append(shared)
    out, seen = [], set()
    for p in paths:
        with open(p, "rb") as f:
            raw = f.read()
        h = hashlib.sha1(raw).hexdigest()
        if h not in seen:
            seen.add(h)
            out.append(json.loads(raw))
    return out


def j(v):
    return json.dumps(v).encode()


def seeds(vectors):
    s = {t: [] for t in (
        "server_request", "client_answer", "pack", "ephemeral_pack",
        "policy_text", "hashcash", "shares", "c_api", "identity",
    )}

    packs, escrow_data, shares, tokens, responses = [], [], [], [], []
    for v in vectors:
        for pr in v.get("pack_recovery", []):
            packs.append(pr["pack_file_text"].encode())
            pack = json.loads(pr["pack_file_text"])
            shares.extend(pack.get("shares", []))
            for e in pack.get("escrow", []):
                responses.append(e["response"])
        for er in v.get("escrow_request", []):
            escrow_data.append(er["decrypted"])
        for sh in v.get("shamir", []):
            shares.append("\n".join(sh["shares"]))
            shares.append("\n".join(sh["shares"][: sh["threshold"]]))
            shares.extend(sh["shares"])
        for hc in v.get("hashcash", []):
            tokens.append((hc["token"], hc["data"]))

    # Packs of other shapes: an ephemeral stub, one with an ephemeral copy.
    if packs:
        p = json.loads(packs[0])
        eph = dict(p)
        eph["ephemeral-id"] = "127.0.0.1:8451"
        eph["escrow"] = p["escrow"] + [dict(p["escrow"][0], kind="ephemeral")]
        packs.append(json.dumps(eph, indent=2).encode())
    packs.append(j({
        "name": "srv.example:AbCd-EfGh-JkMn-PqRs", "shares": [],
        "escrow": [{"kind": "ephemeral", "server": "srv.example",
                    "recovery-key": "A" * 43 + "=",
                    "response": {"passcrow-escrow-response": "1.0", "expiration": 0,
                                 "escrow-data-id": "0123abcd"}}],
        "is-ephemeral": True, "min-shares": 1}))

    # pack, c_api (pack file, list), ephemeral_pack (JSON / zlib of it).
    for p in packs:
        s["pack"].append(p)
        s["c_api"].append(b"\x03" + p)
        s["c_api"].append(b"\x04" + p)
        s["ephemeral_pack"].append(b"\x01" + p)
        s["ephemeral_pack"].append(b"\x00" + zlib.compress(p, 9))

    # client_answer: the first byte '{' (0x7b & 7 = 3) gives status 200.
    policy = {
        "passcrow-versions": ["1.0"], "country-code": "??",
        "about-url": "https://passcrow.org/", "kinds": ["email", "tel"],
        "max-request-bytes": 4096, "max-expiration-seconds": 316224000,
        "max-timeout-seconds": 1800,
        "payment-schemes": [
            {"scheme": "free", "scheme-id": "free", "description": "Free",
             "expiration-seconds": 90000},
            {"scheme": "hashcash", "scheme-id": "hashcash-11",
             "description": "Proof of work", "expiration-seconds": 15811200,
             "hashcash-bits": 11},
        ],
    }
    answers = [policy]
    answers += responses[:2]
    answers += [
        {"passcrow-verification-response": "1.0",
         "escrow-data-id": "6b04c1d5-00000000000000000000000000000000",
         "expiration": 2000000000, "hint": "a*@e*ple.org"},
        {"passcrow-verification-response": "1.0", "escrow-data-id": "ab",
         "expiration": 1, "hint": "+354***22", "action-url": "https://x.example/"},
        {"passcrow-recovery-response": "1.0", "escrow-secret": "1-abc"},
        {"passcrow-deletion-response": "1.0"},
        {"passcrow-deletion-response": "1.0", "escrow-data-id": "ab-cd"},
        {"error": "Wrong code", "error-kind": "wrong-code", "attempts-left": 2},
        {"error": "Sorry, rate limited."},
    ]
    for a in answers:
        s["client_answer"].append(j(a))
    s["client_answer"].append(b" " + j({"error": "x"}))  # status 400

    # server_request: selector byte = method (policy 0, stats 1, escrow 2,
    # verification 3, recovery 4, deletion 5), | 0x80 for the sealed mode.
    sr = s["server_request"]
    sr += [b"\x00", b"\x01", b"\x00{}"]
    sr.append(b"\x02" + j({
        "passcrow-escrow-request": "1.0", "parameters": "AAAA",
        "parameters-key": KNOWN_KEY, "escrow-data": ["AAAA"]}))
    params = {"kind": "email", "expiration": NOW + 3600, "payment": "free:0"}
    sr.append(b"\x82" + j(params))
    sr.append(b"\x82" + j(dict(params, **{"prefer-id": "abc123"})))
    sr.append(b"\x82" + j(dict(params, payment="hashcash-11:1762-6b49d200")))
    sr.append(b"\x82" + j(dict(params, kind="tel", expiration=NOW - 1)))
    verify = {"passcrow-verification-request": "1.0", "prefix": "A",
              "escrow-data-id": KNOWN_ID, "escrow-data-key": KNOWN_KEY}
    sr.append(b"\x03" + j(verify))
    sr.append(b"\x03" + j(dict(verify, language="is", prefix="7")))
    sr.append(b"\x03" + j(dict(verify, **{"escrow-data-id": "6b49d200-" + KNOWN_ID})))
    sr.append(b"\x04" + j({"passcrow-recovery-request": "1.0", "verification": "A123456",
                           "escrow-data-id": KNOWN_ID, "escrow-data-key": KNOWN_KEY}))
    sr.append(b"\x05" + j({"passcrow-deletion-request": "1.0", "escrow-data-id": "abcdef"}))
    sr.append(b"\x05" + j({"passcrow-deletion-request": "1.0", "escrow-data-id": KNOWN_ID}))
    esd = list(escrow_data) or [{"description": "d", "secret": "1-abc",
                                 "verify": "email:a@example.org", "timeout": 1800}]
    esd.append(dict(esd[0], notify="email:b@example.org"))
    esd.append(dict(esd[0], verify="tel:+354 588 5522", timeout=60))
    esd.append(dict(esd[0], verify="sms:5885522"))
    for e in esd:
        sr.append(b"\x83" + j(e))
        sr.append(b"\x84" + j(e))
    for r in answers[1:3]:
        sr.append(b"\x05" + j({"passcrow-deletion-request": "1.0",
                               "escrow-data-id": r.get("escrow-data-id", "x")}))

    # policy_text: "RC \0 LINES".
    rc = (
        "ratio: 2/3\n"
        "id: user@example.org, notify=friend@example.org\n"
        "id: +9995885522 via sms.passcrow.example.org\n"
        "server: email via passcrow-test.mailpile.is\n"
        "server: sms, tel via sms.passcrow.example.org\n"
        "expiration_days: 365   # how long\n"
        "timeout_minutes: 30\n"
    )
    lines = [
        "2/3", "3", "a@example.org", "a@example.org via http://127.0.0.1:8451",
        "b@example.org, notify=c@example.org via srv.example",
        "tel:+354 588 5522, notify=- via sms.example", "email, tel via srv.example",
    ]
    pt = s["policy_text"]
    pt.append(rc.encode())
    pt.append((rc + "\0" + "\n".join(lines)).encode())
    pt.append(("\0" + "\n".join(lines)).encode())
    for line in lines:
        pt.append(line.encode())

    # hashcash: "TOKEN \0 DATA"; tokens at the targets' clock for the
    # server's 1- and 2-bit offers (about half and a quarter pass).
    hc = s["hashcash"]
    for tok, data in tokens:
        hc.append(f"{tok}\0{data}".encode())
    for c in range(4):
        hc.append(f"hashcash-1:{c:x}-{NOW:x}\0AAAA".encode())
        hc.append(f"hashcash-2:{c:x}-{NOW:x}\0escrow".encode())
    hc += [b"free:0", b"hashcash-11:1762-6b037331", b"hashcash-99:0-0"]

    # shares: share strings at newlines.
    s["shares"] += [x.encode() for x in shares]

    # c_api: 0 ratio (count byte, text), 1 policy (n, m, ids), 2 pack name.
    ca = s["c_api"]
    ca += [b"\x00\x00" + b"2/3", b"\x00\x04" + b"3", b"\x00\x00" + b"0/0"]
    ca.append(b"\x01\x02\x03" + b"a@example.org via http://127.0.0.1:1\n"
              b"b@example.org via srv.example\n+3545885522 via sms.example")
    ca.append(b"\x01\x00\x00" + b"a@example.org, notify=b@example.org via srv.example")
    ca += [b"\x02vector pack", b"\x02fuzz", b"\x02../x"]

    # identity.
    s["identity"] += [x.encode() for x in (
        "a@example.org", "email:a@example.org", "mailto:b.c@d-e.example",
        "+354 588 5522", "tel:+354-588-5522", "sms:5885522", "  x@y.z  ",
        "webhook+v1:https://x.example/hook", "ephemeral:abc",
    )]
    return s


def main():
    vectors = load_vectors()
    if not vectors:
        sys.exit("no test vectors found under tests/data/")
    total = 0
    for target, items in seeds(vectors).items():
        d = os.path.join(CORPUS, target)
        os.makedirs(d, exist_ok=True)
        if "--clean" in sys.argv:
            for f in os.listdir(d):
                os.remove(os.path.join(d, f))
        for b in items:
            with open(os.path.join(d, hashlib.sha1(b).hexdigest()), "wb") as f:
                f.write(b)
            total += len(b)
        print(f"{target}: {len(items)} seeds")
    print(f"{total} bytes in {CORPUS}")


if __name__ == "__main__":
    main()
