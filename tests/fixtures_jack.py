"""A real JACK server with the dummy driver, for audio tests (DESIGN.md "Testing on a host").

`jack_server` (pytest fixture) starts `jackd --no-realtime -d dummy -r 48000 -p 256`
under a unique server name, waits until clients can connect, and kills it afterwards.
Tests that need to kill and restart it mid-stream use the `JackServer` object the
fixture yields. Import the fixture into a test module with
`from fixtures_jack import jack_server_fixture  # noqa: F401`.

Clients reach the server through `server.env()`: JACK_DEFAULT_SERVER names it and
JACK_NO_START_SERVER keeps libjack from starting a server of its own when ours is
down. Audio code runs in a child process (`spawn_child`): PortAudio's device list and
its JACK host API are per process, and PortAudio 19.6 aborts the process that
terminates a JACK host API whose server died, which must not be pytest itself.
"""
import contextlib
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Dict, List, Optional

import pytest

RATE = 48000
PERIOD = 256


class JackServer:
    def __init__(self, folder: str, rate: int = RATE, period: int = PERIOD):
        self.name = TEST_PREFIX + uuid.uuid4().hex[:10]
        self.folder = folder
        self.rate = rate
        self.period = period
        self.process: Optional[subprocess.Popen] = None
        self.log_path = os.path.join(folder, "jackd.log")
        self.starts = 0
        self.killed = False

    def env(self) -> Dict[str, str]:
        env = dict(os.environ)
        env["JACK_DEFAULT_SERVER"] = self.name
        env["JACK_NO_START_SERVER"] = "1"
        return env

    def start(self, timeout: float = 15.0) -> None:
        assert not self.running, "already running"
        try:
            self._launch(timeout)
        except RuntimeError as exc:
            # Test servers killed by an interrupted run may fill JACK's registry.
            if "Too many servers" not in str(exc) or not release_stale_test_servers():
                raise
            self._launch(timeout)

    def _launch(self, timeout: float) -> None:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                ["jackd", "--no-realtime", "-n", self.name, "-d", "dummy",
                 "-r", str(self.rate), "-p", str(self.period)],
                stdout=log, stderr=subprocess.STDOUT, env=self.env(), cwd=self.folder)
        self.starts += 1
        self.killed = False
        self.wait_up(timeout)

    def wait_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"jackd exited: {self.log()[-500:]}")
            # jack_wait -c checks whether a client can reach the server, then exits.
            probe = subprocess.run(["jack_wait", "-c"], env=self.env(), capture_output=True,
                                   text=True, timeout=10)
            if "running" in probe.stdout and "not" not in probe.stdout:
                return
            time.sleep(0.1)
        raise RuntimeError(f"jackd {self.name} did not come up in {timeout} s: {self.log()[-500:]}")

    def kill(self) -> None:
        """SIGKILL, as a crash or a pulled device would: no goodbye to clients."""
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)
            self.killed = True

    def stop(self) -> None:
        """End the server cleanly, so it leaves JACK's server registry.

        jackd2 keeps at most 8 servers in a registry in /dev/shm that every user of the
        machine shares; a killed server's entry stays taken until a server of the same
        name starts again. So a server that was killed is started once more under its
        name and then ended with SIGTERM.
        """
        for _ in range(2):
            if self.killed and not self.running:
                try:
                    self._launch(15.0)
                except RuntimeError:
                    return
            if not self.running:
                return
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(20)
                return
            except subprocess.TimeoutExpired:
                self.kill()

    def remove_leftovers(self) -> None:
        """Semaphores and sockets that a killed server and its clients leave in /dev/shm."""
        if self.running:
            return
        for path in (glob.glob(f"/dev/shm/jack_sem.*_{self.name}_*")
                     + glob.glob(f"/dev/shm/jack_{self.name}_*")):
            with contextlib.suppress(OSError):
                os.unlink(path)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ports(self) -> List[str]:
        out = subprocess.run(["jack_lsp"], env=self.env(), capture_output=True, text=True,
                             timeout=10)
        return [line.strip() for line in out.stdout.splitlines() if line.strip()]

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


TEST_PREFIX = "nrtest-"


def release_stale_test_servers() -> bool:
    """Free registry entries of this suite's servers (names "nrtest-...") that are gone.

    Each is started once more under its name and ended cleanly, which is how jackd2
    gives an entry back. Servers of other names are left alone. True if any was freed.
    """
    try:
        with open("/dev/shm/jack-shm-registry", "rb") as f:
            registry = f.read().decode("latin-1")
    except OSError:
        return False
    running = subprocess.run(["pgrep", "-a", "jackd"], capture_output=True, text=True).stdout
    freed = False
    for name in sorted(set(re.findall(TEST_PREFIX + r"[0-9a-f]{10}", registry))):
        if name in running:
            continue
        folder = tempfile.mkdtemp(prefix="nr-jack-")
        server = JackServer(folder)
        server.name = name
        try:
            server._launch(10.0)
            server.stop()
            freed = True
        except RuntimeError:
            pass
        server.remove_leftovers()
        shutil.rmtree(folder, ignore_errors=True)
    return freed


@pytest.fixture(name="jack_server")
def jack_server_fixture():
    if not shutil.which("jackd"):
        pytest.fail("jackd is not installed (make test installs jackd2)")
    folder = tempfile.mkdtemp(prefix="nr-jack-")
    server = JackServer(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.remove_leftovers()
        shutil.rmtree(folder, ignore_errors=True)


def spawn_child(code: str, server: JackServer, *args: str) -> subprocess.Popen:
    """Run Python `code` in a child that talks to `server`; text lines on its stdin/stdout."""
    return subprocess.Popen([sys.executable, "-u", "-c", code, *args], env=server.env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=server.folder)


def read_until(child: subprocess.Popen, marker: str, timeout: float) -> List[str]:
    """Lines from the child up to and including one that starts with `marker`."""
    import selectors

    lines: List[str] = []
    selector = selectors.DefaultSelector()
    assert child.stdout is not None
    selector.register(child.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise AssertionError(f"child did not say {marker!r} in {timeout} s; "
                                     f"said {lines[-10:]}")
            line = child.stdout.readline()
            if not line:
                err = child.stderr.read() if child.stderr else ""
                raise AssertionError(f"child ended before {marker!r}: {lines[-10:]} {err[-2000:]}")
            lines.append(line.rstrip("\n"))
            if line.startswith(marker):
                return lines
    finally:
        selector.close()
