"""Recover through the Python binding against the same call from Rust.

Both sides run against one passcrow-server on loopback, on the same pack:
each round asks for fresh codes (verify, untimed: codes are one-shot) and
times recover() alone. Both sides are long-lived child processes driven the
same way over pipes (this script with --worker, and the Rust example), and
rounds alternate between them, so load and drift hit both alike.

Two kinds of round, interleaved:

* warm: recover() follows verify() and the reading of the codes at once,
  as in an app that makes several calls in a row (steady state);
* idle: an idle pause (--idle-ms) comes first, as when a user has just
  typed the codes: the call starts with cold CPU caches, which costs the
  larger Python process more than the Rust one.

Also reports the installed size of the package.

    python bench_recover.py RUST_BENCH_EXE [--rounds N] [--idle-ms MS]
                            [--max-overhead PCT]

RUST_BENCH_EXE is `cargo build --release --example bench_recover`'s
target/release/examples/bench_recover; the server is $PASSCROW_SERVER
(build it with --release too: a debug server makes the call slower and
the overhead look smaller). Exits 1 when the median overhead of the warm
rounds exceeds --max-overhead percent (default: report only).
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

    for line in sys.stdin:  # "go PAUSE_MS", as examples/bench_recover.rs
        pause = int(line.split()[1]) / 1000
        client.verify(pack)
        codes = [newest(w) for w in names]
        if pause:
            time.sleep(pause)
        t = time.perf_counter()
        r = client.recover(pack, codes)
        dt = time.perf_counter() - t
        assert r.secret == SECRET
        # The floor: a binding call that does no work (a str in, a str
        # out), right after recover; its own path last ran a round ago.
        t = time.perf_counter()
        passcrow.normalize_code(codes[0])
        floor = time.perf_counter() - t
        print(f"{dt:.9f} {floor:.9f}", flush=True)
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker(*sys.argv[2:])
    ap = argparse.ArgumentParser()
    ap.add_argument("rust_exe")
    ap.add_argument("--rounds", type=int, default=60, help="rounds of each kind, each side")
    ap.add_argument("--idle-ms", type=int, default=5, help="the idle rounds' pause")
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

            def round_of(child, pause_ms):
                child.stdin.write(f"go {pause_ms}\n")
                child.stdin.flush()
                line = child.stdout.readline()
                if not line:
                    raise RuntimeError(f"{child.args[0]} failed (exit {child.wait()})")
                fields = [float(x) for x in line.split()]
                floors.extend(fields[1:])
                return fields[0]

            floors = []  # Python only
            kinds = {"warm": 0, "idle": a.idle_ms}
            py = {k: [] for k in kinds}
            rs = {k: [] for k in kinds}
            try:
                for _ in range(5):  # warm up both
                    for pause in kinds.values():
                        round_of(py_child, pause), round_of(rs_child, pause)
                floors.clear()
                for i in range(a.rounds):  # interleave kinds; each side first in turn
                    for kind, pause in kinds.items():
                        if i % 2:
                            py[kind].append(round_of(py_child, pause))
                            rs[kind].append(round_of(rs_child, pause))
                        else:
                            rs[kind].append(round_of(rs_child, pause))
                            py[kind].append(round_of(py_child, pause))
            finally:
                for child in (py_child, rs_child):
                    child.stdin.close()
                    child.wait()
        finally:
            srv.stop()

    def ms(xs):
        return f"{statistics.median(xs) * 1e3:7.3f} ms median, {min(xs) * 1e3:7.3f} ms min"

    server = pathlib.Path(os.environ.get("PASSCROW_SERVER", "passcrow-server"))
    print(f"recover, 2 codes, {a.rounds} rounds of each kind and side, "
          f"passcrow-server on loopback ({server})")
    over = {}
    for kind in py:
        p, r = py[kind], rs[kind]
        over[kind] = (statistics.median(p) / statistics.median(r) - 1) * 100
        label = "warm" if kind == "warm" else f"idle {a.idle_ms} ms first"
        print(f"  {label}:")
        print(f"    Rust   (Client::recover)        {ms(r)}")
        print(f"    Python (PasscrowClient.recover) {ms(p)}")
        print(f"    binding overhead: {over[kind]:+.1f}% (medians), "
              f"{(min(p) / min(r) - 1) * 100:+.1f}% (minima), "
              f"{(statistics.median(p) - statistics.median(r)) * 1e6:+.0f} us per call")
    floor = statistics.median(floors)
    print(f"  floor: a binding call doing no work (normalize_code, right after recover) takes "
          f"{floor * 1e6:.1f} us median = "
          f"{floor / statistics.median(rs['warm']) * 100:.1f}% of the warm Rust recover")
    size = installed_size()
    print(f"installed size of the passcrow package: {size / 1e6:.1f} MB "
          f"({size} bytes, {pathlib.Path(passcrow.__file__).parent})")
    if a.max_overhead is not None and over["warm"] > a.max_overhead:
        print(f"FAIL: warm overhead {over['warm']:.1f}% > {a.max_overhead}%")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
