"""Recover through the Python binding against the same call from Rust.

Both sides run against one passcrow-server on loopback, on the same pack:
each round asks for fresh codes (verify, untimed: codes are one-shot) and
times recover() alone. Both sides are long-lived child processes driven the
same way over pipes (this script with --worker, and the Rust example), and
rounds alternate between them, so load and drift hit both alike. Also
reports the installed size of the package.

    python bench_recover.py RUST_BENCH_EXE [--rounds N] [--max-overhead PCT]

RUST_BENCH_EXE is `cargo build --release --example bench_recover`'s
target/release/examples/bench_recover. Exits 1 when the overhead of the
fastest Python round over the fastest Rust round exceeds --max-overhead
percent (default: report only).
"""

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import passcrow

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from conftest import Server  # noqa: E402

NAMES = ["alice", "bob"]
SECRET = b"benchmark secret"
PAUSE = 0.005  # = PAUSE_MS in examples/bench_recover.rs


def installed_size() -> int:
    root = pathlib.Path(passcrow.__file__).parent
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def worker(cfg: str, data: str, name: str, codes_file: str, *names: str) -> int:
    """The Python side: one round per stdin line, as examples/bench_recover.rs."""
    client = passcrow.PasscrowClient(cfg, data)
    pack = client.pack(name)

    def newest(who):
        want = f"{who}@example.org"
        lines = pathlib.Path(codes_file).read_text().splitlines()
        return [ln.split("\t")[1].strip() for ln in lines
                if ln.split("\t")[0].split(":")[-1] == want][-1]

    for _ in sys.stdin:
        client.verify(pack)
        codes = [newest(w) for w in names]
        time.sleep(PAUSE)  # as the Rust side does: an equally idle server
        t = time.perf_counter()
        r = client.recover(pack, codes)
        dt = time.perf_counter() - t
        assert r.secret == SECRET
        print(f"{dt:.9f}", flush=True)
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker(*sys.argv[2:])
    ap = argparse.ArgumentParser()
    ap.add_argument("rust_exe")
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--max-overhead", type=float, default=None)
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        srv = Server(tmp, unlimited=True)
        try:
            cfg, data = tmp / "config", tmp / "data"
            client = passcrow.PasscrowClient(cfg, data)
            client.protect("bench", SECRET, srv.identities("alice", "bob", "carol"),
                           n=2, m=3)
            pack = client.pack("bench")

            def spawn(cmd):
                return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, bufsize=1)

            # Both sides are child processes driven the same way over pipes,
            # so neither shares a process (caches, allocator) with the driver.
            args = [str(cfg), str(data), "bench", str(srv.codes_file), *NAMES]
            py_child = spawn([sys.executable, __file__, "--worker", *args])
            rs_child = spawn([a.rust_exe, *args])

            def round_of(child):
                child.stdin.write("go\n")
                child.stdin.flush()
                line = child.stdout.readline()
                if not line:
                    raise RuntimeError(f"{child.args[0]} failed (exit {child.wait()})")
                return float(line)

            def py_round():
                return round_of(py_child)

            def rust_round():
                return round_of(rs_child)

            try:
                for _ in range(5):  # warm up both
                    py_round(), rust_round()
                py, rs = [], []
                for i in range(a.rounds):  # alternate, each side first in turn
                    if i % 2:
                        py.append(py_round())
                        rs.append(rust_round())
                    else:
                        rs.append(rust_round())
                        py.append(py_round())
            finally:
                for child in (py_child, rs_child):
                    child.stdin.close()
                    child.wait()
        finally:
            srv.stop()

    def ms(xs):
        return f"{statistics.median(xs) * 1e3:8.3f} ms median, {min(xs) * 1e3:8.3f} ms min"

    over = (statistics.median(py) / statistics.median(rs) - 1) * 100
    over_min = (min(py) / min(rs) - 1) * 100
    size = installed_size()
    print(f"recover, 2 codes, {len(py)} rounds each, passcrow-server on loopback")
    print(f"  Rust   (Client::recover)        {ms(rs)}")
    print(f"  Python (PasscrowClient.recover) {ms(py)}")
    print(f"  binding overhead: {over:+.1f}% (medians), {over_min:+.1f}% (minima), "
          f"{(statistics.median(py) - statistics.median(rs)) * 1e6:+.0f} us per call")
    print(f"installed size of the passcrow package: {size / 1e6:.1f} MB "
          f"({size} bytes, {pathlib.Path(passcrow.__file__).parent})")
    # The gate uses the minima: the least disturbed rounds of each side.
    if a.max_overhead is not None and over_min > a.max_overhead:
        print(f"FAIL: overhead {over_min:.1f}% > {a.max_overhead}%")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
