"""The whole daemon while its JACK server dies and comes back (issue 24).

A real JACK server (dummy driver) is killed under a running `neurorave run` and started
again: the daemon keeps running, pinging the systemd watchdog every second, says one
line when the audio goes and one when it is back, plays again within 2 s of the
server's return, and exits 0 when its time is up.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from fixtures_jack import jack_server_fixture  # noqa: F401
from neurorave.firmware.stats import read_stats
from toy_bundle import write_toy_bundle

ALSA_JACK = "jack, ALSA"  # the ALSA path the module plays through, over JACK
PATCH = """
[cv.1]
shape = "sine"
rate = 0.5
range = [-3.0, 3.0]
[gate.1]
clock = 4.0
"""
SECONDS = 20


class Lines:
    """Lines (or datagrams) with the monotonic time each arrived."""

    def __init__(self):
        self.items = []
        self.lock = threading.Lock()

    def add(self, text):
        with self.lock:
            self.items.append((time.monotonic(), text))

    def wait_for(self, words, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for at, text in self.items:
                    if words in text:
                        return at
            time.sleep(0.02)
        raise AssertionError(f"no {words!r} in {timeout} s: {[t for _, t in self.items]}")

    def texts(self):
        with self.lock:
            return [t for _, t in self.items]


@pytest.mark.slow
def test_the_daemon_rides_out_its_jack_server_dying_and_coming_back(jack_server, tmp_path):
    models = tmp_path / "models"
    write_toy_bundle(str(models / "a"), frame=64, name="a")
    patch = tmp_path / "patch.toml"
    patch.write_text(PATCH)
    short = tempfile.mkdtemp(prefix="nr-notify-")  # AF_UNIX paths are short
    notify_path = os.path.join(short, "notify")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(notify_path)
    listener.settimeout(0.2)
    pings, errors = Lines(), Lines()
    stop = threading.Event()

    def listen():
        while not stop.is_set():
            try:
                data = listener.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            for item in data.decode("utf-8", "replace").split("\n"):
                pings.add(item)

    env = jack_server.env()
    env["NEURORAVE_STATE_DIR"] = str(tmp_path / "state")
    env["NOTIFY_SOCKET"] = notify_path
    stats_path = str(tmp_path / "stats.json")
    threading.Thread(target=listen, daemon=True).start()
    child = subprocess.Popen(
        [sys.executable, "-m", "neurorave.firmware.cli", "run", "--board", "sim",
         "--headless", "--patch", str(patch), "--models", str(models), "--audio-device",
         ALSA_JACK, "--seconds", str(SECONDS), "--stats", stats_path],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        cwd=str(tmp_path))
    assert child.stderr is not None
    reader = threading.Thread(target=lambda: [errors.add(line.rstrip("\n"))
                                              for line in child.stderr], daemon=True)
    reader.start()
    try:
        errors.wait_for("audio playing", 30)
        pings.wait_for("READY=1", 10)
        time.sleep(1.5)
        playing = read_stats(stats_path)["audio"]
        assert playing["state"] == "playing" and playing["frames_played"] > 0, playing
        jack_server.kill()
        killed = time.monotonic()
        lost_at = errors.wait_for("audio device lost", 5)
        time.sleep(3.0)  # the server stays away
        assert child.poll() is None, "the daemon died with its server"
        down = read_stats(stats_path)["audio"]
        jack_server.start()
        up = time.monotonic()
        back_at = errors.wait_for("audio device back", 10)
        time.sleep(1.5)
        resumed = read_stats(stats_path)["audio"]
        time.sleep(1.5)
        later = read_stats(stats_path)["audio"]
        child.wait(timeout=SECONDS + 30)
        reader.join(10)
    finally:
        stop.set()
        if child.poll() is None:
            child.kill()
        listener.close()
        shutil.rmtree(short, ignore_errors=True)
    assert child.returncode == 0, errors.texts()[-10:]
    lines = errors.texts()
    # One line when it went, one when it came back: no flood, no PortAudio assertion.
    assert len([t for t in lines if "audio device lost" in t]) == 1, lines
    assert len([t for t in lines if "audio device back" in t]) == 1, lines
    assert not [t for t in lines if "Expression" in t or "Assertion" in t], lines
    assert len(lines) < 15, lines
    assert lost_at - killed < 2.0
    # Sound again within 2 s of the server's return.
    assert back_at - up < 2.0, (back_at - up)
    # The stats saw it go and come back; blocks flow again after the return.
    assert down["state"] == "retrying" and down["losses"] == 1, down
    assert down["summary"].startswith("no audio device: retrying"), down
    assert resumed["state"] == "playing" and resumed["returns"] == 1, resumed
    assert resumed["opens"] == 2 and resumed["losses"] == 1, resumed
    assert later["frames_played"] - resumed["frames_played"] > 0.5 * 48000 * 1.5, later
    assert later["underflows"] - resumed["underflows"] < 20, (resumed, later)
    final = read_stats(stats_path)
    assert any("audio device lost" in e for e in final["errors"]["last"]), final["errors"]
    assert final["audio"]["state"] in ("playing", "stopped")
    # The watchdog kept being pinged every second, while the audio was away too.
    watchdog = [at for at, text in pings.items if text == "WATCHDOG=1"]
    gaps = [b - a for a, b in zip(watchdog, watchdog[1:])]
    assert len(watchdog) >= SECONDS - 5, len(watchdog)
    assert max(gaps) < 2.5, max(gaps)
    assert len([at for at in watchdog if lost_at <= at <= back_at]) >= 3
    print(f"lost {lost_at - killed:.2f} s after the kill; back {back_at - up:.2f} s after "
          f"the server; watchdog gap max {max(gaps):.2f} s")
