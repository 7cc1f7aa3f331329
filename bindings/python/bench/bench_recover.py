"""Recover through the Python and Kotlin bindings against the same call
from Rust, across a network's latency.

One passcrow-server on loopback sits behind examples/delay_proxy.rs, which
delays every chunk by --one-way-ms (default 10 ms each way, a 20 ms round
trip) in both directions and charges a new connection the TCP handshake's
round trip. Each side has its own pack (2 of 3: alice, bob, carol; the
same shape for all) whose server is its own port of the proxy, so the
proxy counts each side's connections: every side must reuse one
keep-alive connection (the core's ureq agent) for the whole measured run,
or the run fails.

Every side is a long-lived child process driven the same way over pipes:
examples/bench_recover.rs (Rust, Client::recover), this script with
--worker (Python, PasscrowClient.recover) and
bindings/kotlin/src/bench/kotlin/BenchRecover.kt (Kotlin on the JVM, its
JIT warmed first). Each round asks for fresh codes (verify, untimed: codes
are one-shot) and times recover() alone (2 codes: two requests to the
server, one after the other); the order of the sides rotates from round to
round, so load and drift hit all alike.

Before the rounds it measures the round trip the proxy adds, with a tiny
HTTP request on one kept-alive connection, direct and through the proxy.

    python bench_recover.py RUST_BENCH_EXE --proxy DELAY_PROXY_EXE
        [--one-way-ms MS] [--rounds N] [--warmup N]
        [--kotlin-classpath CP --kotlin-libdir DIR] [--kotlin-jit N]
        [--max-overhead PCT]

RUST_BENCH_EXE and DELAY_PROXY_EXE are `cargo build --release --example
bench_recover --example delay_proxy`'s; the server is $PASSCROW_SERVER
(release too: a debug server makes the call slower and the overhead look
smaller). scripts/bench-bindings.sh builds everything and runs this. Exits
1 when a binding's median overhead exceeds --max-overhead percent (default:
report only) or a side opened a connection during the measured rounds.
"""

import argparse
import http.client
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

    print("ready", flush=True)
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
        # out), right after recover.
        t = time.perf_counter()
        passcrow.normalize_code(codes[0])
        floor = time.perf_counter() - t
        print(f"{dt:.9f} {floor:.9f}", flush=True)
    return 0


def pct(xs, q):
    """The q-quantile (0..1) of xs, by linear interpolation."""
    s = sorted(xs)
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def rtts(hostport: str, n: int):
    """Seconds of n tiny HTTP requests on one kept-alive connection (after
    one unmeasured request that opens it), and that first request's."""
    host, port = hostport.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    times = []
    try:
        for _ in range(n + 1):
            t = time.perf_counter()
            conn.request("GET", "/passcrow/about")
            conn.getresponse().read()
            times.append(time.perf_counter() - t)
    finally:
        conn.close()
    return times[1:], times[0]


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker(*sys.argv[2:])
    ap = argparse.ArgumentParser()
    ap.add_argument("rust_exe")
    ap.add_argument("--proxy", required=True, help="examples/delay_proxy's executable")
    ap.add_argument("--one-way-ms", type=float, default=10.0,
                    help="the delay the proxy adds each way (0: loopback through the proxy)")
    ap.add_argument("--rounds", type=int, default=100, help="measured rounds, each side")
    ap.add_argument("--warmup", type=int, default=10, help="unmeasured rounds first, each side")
    ap.add_argument("--kotlin-classpath", help="the jar with BenchRecoverKt, and JNA's")
    ap.add_argument("--kotlin-libdir", help="the directory of the libpasscrow.so Kotlin loads")
    ap.add_argument("--kotlin-jit", type=int, default=20000,
                    help="the Kotlin worker's JIT warm-up (local calls, no network)")
    ap.add_argument("--max-overhead", type=float, default=None)
    ap.add_argument("--tmpdir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                    help="where the server's and the clients' files go (default: /dev/shm, "
                         "a tmpfs: the server's and the client's fsyncs are the same work "
                         "for every side, but on a disk their noise swamps the constant)")
    a = ap.parse_args()
    if bool(a.kotlin_classpath) != bool(a.kotlin_libdir):
        ap.error("--kotlin-classpath and --kotlin-libdir go together")

    sides = ["Rust", "Python"] + (["Kotlin"] if a.kotlin_classpath else [])
    with tempfile.TemporaryDirectory(prefix="bench-bindings-", dir=a.tmpdir) as tmp:
        tmp = pathlib.Path(tmp)
        srv = Server(tmp, unlimited=True)
        children = []
        try:
            upstream = srv.url.removeprefix("http://")
            proxy = subprocess.Popen(
                [a.proxy, upstream, str(a.one_way_ms), str(len(sides) + 1)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
            children.append(proxy)
            line = proxy.stdout.readline()
            if not line.startswith("listening on "):
                raise RuntimeError(f"delay_proxy did not start: {line!r}")
            ports = line.split()[2:]
            side_port = dict(zip(sides, ports))
            calibration_port = ports[-1]

            def conns():
                proxy.stdin.write("stats\n")
                proxy.stdin.flush()
                counts = [int(x) for x in proxy.stdout.readline().split()[1:]]
                return dict(zip(sides, counts))

            # The added delay, measured: tiny requests direct and proxied.
            direct, _ = rtts(upstream, 30)
            proxied, first = rtts(calibration_port, 30)
            added = statistics.median(proxied) - statistics.median(direct)

            cfg, data = tmp / "config", tmp / "data"
            client = passcrow.PasscrowClient(cfg, data)
            for s in sides:
                ids = [f"{n}@example.org via http://{side_port[s]}"
                       for n in ("alice", "bob", "carol")]
                client.protect(f"bench-{s.lower()}", SECRET, ids, n=2, m=3)
            before = conns()

            def spawn(cmd):
                p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
                children.append(p)
                return p

            def args(s):
                return [str(cfg), str(data), f"bench-{s.lower()}", str(srv.codes_file), *NAMES]

            workers = {"Rust": spawn([a.rust_exe, *args("Rust")]),
                       "Python": spawn([sys.executable, __file__, "--worker", *args("Python")])}
            if "Kotlin" in sides:
                workers["Kotlin"] = spawn([
                    "java", f"-Djna.library.path={a.kotlin_libdir}",
                    f"-Dbench.jit={a.kotlin_jit}", "-cp", a.kotlin_classpath,
                    "BenchRecoverKt", *args("Kotlin")])
            jit_started = time.monotonic()
            for s in ("Python", "Kotlin"):  # their setup and the JIT warm-up
                if s in workers and not workers[s].stdout.readline().startswith("ready"):
                    raise RuntimeError(f"the {s} worker failed (exit {workers[s].wait()})")
            jit_seconds = time.monotonic() - jit_started

            floors = {s: [] for s in sides}

            def round_of(s):
                child = workers[s]
                child.stdin.write("go 0\n")
                child.stdin.flush()
                line = child.stdout.readline()
                if not line:
                    raise RuntimeError(f"the {s} worker failed (exit {child.wait()})")
                fields = [float(x) for x in line.split()]
                floors[s].extend(fields[1:])
                return fields[0]

            times = {s: [] for s in sides}
            for i in range(a.warmup):
                for s in sides:
                    round_of(s)
            warm = conns()
            for s in sides:
                floors[s].clear()
            started = time.monotonic()
            for i in range(a.rounds):  # each side first in turn
                k = i % len(sides)
                for s in sides[k:] + sides[:k]:
                    times[s].append(round_of(s))
            wall = time.monotonic() - started
            after = conns()
            for child in workers.values():
                child.stdin.close()
                if child.wait() != 0:
                    raise RuntimeError(f"{child.args[0]} exited {child.returncode}")
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                child.wait()
            srv.stop()

    server = pathlib.Path(os.environ.get("PASSCROW_SERVER", "passcrow-server"))
    print(f"recover (2 codes: two requests in turn, 2-of-3 pack), {a.rounds} rounds each side "
          f"after {a.warmup} unmeasured, sides alternated, {wall:.0f} s; "
          f"passcrow-server on loopback ({server}) behind delay_proxy, "
          f"{a.one_way_ms:g} ms each way; files in {a.tmpdir or tempfile.gettempdir()}")
    print(f"  added round trip, measured (a tiny GET, 30 on one kept-alive connection): "
          f"{added * 1e3:.2f} ms median (through the proxy {statistics.median(proxied) * 1e3:.2f}"
          f" ms, p90 {pct(proxied, 0.9) * 1e3:.2f}; direct {statistics.median(direct) * 1e3:.2f}"
          f" ms); a new connection's first: {first * 1e3:.2f} ms")
    opened_warm = {s: warm[s] - before[s] for s in sides}
    opened_run = {s: after[s] - warm[s] for s in sides}
    print("  connections each side opened: " + ", ".join(
        f"{s} {opened_warm[s]} in the warm-up, {opened_run[s]} in the measured rounds"
        for s in sides))
    if "Kotlin" in sides:
        print(f"  Kotlin JIT warm-up: {a.kotlin_jit} local rounds, {jit_seconds:.1f} s")
    rust = statistics.median(times["Rust"])
    print()
    print("| side | median | p90 | overhead (medians) | per-call constant |")
    print("|---|---|---|---|---|")
    over = {}
    for s in sides:
        t = times[s]
        med = statistics.median(t)
        label = {"Rust": "Rust `Client::recover`", "Python": "Python `PasscrowClient.recover`",
                 "Kotlin": "Kotlin `PasscrowClient.recover` (JVM)"}[s]
        if s == "Rust":
            print(f"| {label} | {med * 1e3:.3f} ms | {pct(t, 0.9) * 1e3:.3f} ms | | |")
            continue
        over[s] = (med / rust - 1) * 100
        print(f"| {label} | {med * 1e3:.3f} ms | {pct(t, 0.9) * 1e3:.3f} ms | "
              f"{over[s]:+.2f}% | {(med - rust) * 1e3:+.3f} ms |")
    print()
    for s in sides[1:]:
        print(f"  {s} floor, a binding call doing no work (normalize_code, right after "
              f"recover): {statistics.median(floors[s]) * 1e6:.1f} us median")
    size = installed_size()
    print(f"installed size of the passcrow package: {size / 1e6:.1f} MB "
          f"({size} bytes, {pathlib.Path(passcrow.__file__).parent})")
    failed = False
    for s in sides:
        if opened_run[s]:
            print(f"FAIL: {s} opened {opened_run[s]} connection(s) during the measured rounds: "
                  f"its keep-alive connection was not reused")
            failed = True
    if a.max_overhead is not None:
        for s, o in over.items():
            if o > a.max_overhead:
                print(f"FAIL: {s} overhead {o:+.2f}% > {a.max_overhead}%")
                failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
