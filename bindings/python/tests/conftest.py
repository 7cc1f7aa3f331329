"""Fixtures: a real passcrow-server on loopback, started per test module.

The server binary comes from $PASSCROW_SERVER, else the repository's
target/debug/passcrow-server (`cargo build --features server --bin
passcrow-server`). Codes are delivered to a file (`identity<TAB>code`).
"""

import os
import pathlib
import re
import subprocess
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]


def server_binary() -> str:
    exe = os.environ.get("PASSCROW_SERVER") or str(REPO / "target/debug/passcrow-server")
    if not os.path.exists(exe):
        pytest.fail(f"{exe} missing: cargo build --features server --bin passcrow-server")
    return exe


class Server:
    """A passcrow-server process and the file its codes go to."""

    def __init__(self, root: pathlib.Path, unlimited: bool = False, delays: bool = False):
        exe = server_binary()
        data = root / "server"
        self.codes_file = root / "codes.txt"
        subprocess.run([exe, "init", str(data)], check=True, capture_output=True)
        conf = data / "config.toml"
        # One client address makes every request of a module in quick
        # succession: the per-address request rate is off (its limits have
        # their own tests over HTTP, tests/server_connections.rs and
        # tests/server_http.rs), as in scripts/test.d/30-bindings.sh.
        conf.write_text("rate_limit_burst = 0\n" + conf.read_text())
        if delays:  # release delays are offered only with a public_url
            text = conf.read_text().replace(
                "[outbound]\n", '[outbound]\npublic_url = "http://127.0.0.1:9"\n', 1)
            assert "public_url = " in text, "no [outbound] in the sample config"
            conf.write_text(text)
        if unlimited:  # benchmarks: no per-escrow limits
            # ... nor delivery budgets (every round mails the same people).
            text = conf.read_text().replace(
                "[outbound]\n",
                "[outbound]\nper_recipient_per_hour = 1000000\n"
                "per_recipient_per_day = 1000000\n"
                "per_kind_per_hour = { email = 1000000000 }\n", 1)
            assert "per_recipient_per_hour = 1000000" in text, "no [outbound] in the sample config"
            conf.write_text("verifications_per_hour = 1000000\n" + text)
        # Output goes to a file (no pipe to drain from this process).
        self.log_file = root / "server.log"
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(
                [exe, "--listen", "127.0.0.1:0", "--data", str(data),
                 "--deliver-to-file", str(self.codes_file)],
                stdout=log, stderr=subprocess.STDOUT,
            )
        self.url = None
        deadline = time.monotonic() + 30
        while self.url is None and time.monotonic() < deadline:
            m = re.search(r"listening on (http://[0-9.:]+)", self.log_file.read_text())
            if m:
                self.url = m.group(1)
            elif self.proc.poll() is not None:
                break
            else:
                time.sleep(0.05)
        if self.url is None:
            self.stop()
            raise RuntimeError("passcrow-server did not start: " + self.log_file.read_text())

    def identities(self, *names: str) -> list:
        return [f"{n}@example.org via {self.url}" for n in names]

    def code_for(self, name: str) -> str:
        """The newest code delivered to NAME@example.org."""
        want = f"{name}@example.org"
        code = None
        for line in self.codes_file.read_text().splitlines():
            ident, _, c = line.partition("\t")
            if ident.split(":", 1)[-1] == want:
                code = c.strip()
        assert code, f"no code for {want}"
        return code

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("server"))
    yield s
    s.stop()


@pytest.fixture
def client(tmp_path):
    import passcrow
    return passcrow.PasscrowClient(tmp_path / "config", tmp_path / "data")
