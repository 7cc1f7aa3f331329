"""Passcrow from Python: protect a secret 2-of-3, then recover it.

Start a server that writes codes to a file, then run this with its URL:

    passcrow-server init /tmp/pcs
    passcrow-server --data /tmp/pcs --deliver-to-file /tmp/codes.txt &
    python examples/python/quickstart.py http://127.0.0.1:8451 /tmp/codes.txt

Without the codes file it asks for the codes on the terminal. Every call
blocks; in asyncio code use ``await asyncio.to_thread(...)``.
"""

import sys
import tempfile

import passcrow


def main() -> None:
    server = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8451"
    codes_file = sys.argv[2] if len(sys.argv) > 2 else None
    home = tempfile.mkdtemp(prefix="passcrow-quickstart-")
    client = passcrow.PasscrowClient(f"{home}/config", f"{home}/data")

    people = ["alice", "bob", "carol"]
    ids = [f"{who}@example.org via {server}" for who in people]
    client.protect("wallet", b"correct horse", ids, n=2, m=3)
    print(f"protected 'wallet' with 2 of {len(ids)} identities")

    pack = client.pack("wallet")
    for hint in client.verify(pack).hints:
        print(f"code {hint.prefix}... sent to {hint.hint}")

    def code_for(who: str) -> str:
        if codes_file is None:
            return input(f"code for {who}: ")
        lines = open(codes_file).read().splitlines()
        return [ln.split("\t")[1] for ln in lines if ln.startswith(f"email:{who}@")][-1]

    try:
        result = client.recover(pack, [code_for(w) for w in people[:2]])
        print("recovered:", result.secret.decode())
    except passcrow.PasscrowError.WrongCode as e:
        print(f"wrong code ({e.attempts_left} attempts left)")
    client.forget("wallet")
    print("forgot 'wallet'")


if __name__ == "__main__":
    main()
