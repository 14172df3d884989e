"""`neurorave run`, the whole daemon, against a real JACK server (dummy driver, 48 kHz,
256 frames): the virtual board played by a patch, headless, with a stats file.

The machine is shared and loaded, so these tests check behaviour (it plays, reports,
switches models from the menu, refuses a bad one while the old one plays on, exits
cleanly on SIGTERM) and leave zero-underflow goals to the benchmark."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures_jack import jack_server_fixture  # noqa: F401
from neurorave.firmware.stats import read_stats
from toy_bundle import rewrite_meta, write_toy_bundle

JACK_DIRECT = "JACK Audio Connection Kit"

PATCH = """
[cv.1]
shape = "sine"
rate = 0.5
range = [-3.0, 3.0]
[cv.2]
shape = "triangle"
rate = 1.0
range = [-5.0, 5.0]
[cv.3]
shape = "saw"
rate = 0.7
range = [-2.0, 2.0]
[cv.4]
shape = "square"
rate = 0.3
range = [0.0, 4.0]
[gate.1]
clock = 4.0
[gate.2]
times = [0.7, 1.9]
"""

# Menu: a short press opens the main menu, one more opens "Model"; turn to an entry
# and press to load it. Models are listed by folder: a, b, c.
SWITCH = PATCH + """
[[encoder.press]]
at = 0.6
kind = "short"
[[encoder.press]]
at = 0.9
kind = "short"
[[encoder.turn]]
at = 1.2
steps = 1
[[encoder.press]]
at = 1.5
kind = "short"
[[encoder.press]]
at = 2.4
kind = "short"
[[encoder.press]]
at = 2.7
kind = "short"
[[encoder.turn]]
at = 3.0
steps = 2
[[encoder.press]]
at = 3.3
kind = "short"
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("daemon-models")
    write_toy_bundle(str(root / "a"), frame=64, name="a")
    write_toy_bundle(str(root / "b"), frame=128, sample_rate=24000, name="b")
    write_toy_bundle(str(root / "c"), frame=64, name="c")
    # c's decoder does not match its recorded hash: scanned fine, refused at load.
    rewrite_meta(str(root / "c"), lambda m: m["graphs"]["decoder"].update(sha256="0" * 64))
    return root


def _run(server, tmp_path, models, patch_text, *extra, seconds=None):
    patch = tmp_path / "patch.toml"
    patch.write_text(patch_text)
    env = server.env()
    env["NEURORAVE_STATE_DIR"] = str(tmp_path / "state")
    args = [sys.executable, "-m", "neurorave.firmware.cli", "run", "--headless",
            "--patch", str(patch), "--models", str(models), "--audio-device", JACK_DIRECT,
            "--stats", str(tmp_path / "stats.json"), *extra]
    if seconds is not None:
        args += ["--seconds", str(seconds)]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=str(tmp_path))


def _settings(tmp_path):
    with open(tmp_path / "state" / "settings.json") as handle:
        return json.load(handle)["data"]


def test_the_daemon_plays_a_patch_and_reports(jack_server, tmp_path, models):
    # No --seconds: the patch says how long it lasts.
    child = _run(jack_server, tmp_path, models, "seconds = 4\n" + PATCH)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert "playing a" in err
    stats = read_stats(str(tmp_path / "stats.json"))
    assert stats["model"] == "a" and stats["state"] == "playing"
    assert stats["engine"] == "ort-cpu" and stats["provider"] == "CPUExecutionProvider"
    assert stats["audio"]["state"] in ("playing", "stopped") and stats["audio"]["opens"] == 1
    # 4 s of 4 ms frames; the voice kept up with the callback.
    assert stats["frames"] > 500 and stats["blocks_rendered"] > 500
    assert stats["bad_frames"] == 0 and stats["errors"]["count"] == 0
    assert stats["inference_ms"]["count"] > 500
    # A 4 Hz clock on gate 1: each rise is measured from the edge to the DAC.
    latency = stats["latency_ms"]
    assert latency["count"] >= 8
    assert 0 < latency["p50"] < 200
    # The player changed nothing: nothing was written.
    assert not (tmp_path / "state" / "settings.json").exists()


def test_menu_switches_models_and_a_bad_one_leaves_the_old_playing(jack_server, tmp_path,
                                                                    models):
    child = _run(jack_server, tmp_path, models, SWITCH, seconds=4.5)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert "playing a" in err and "playing b" in err
    stats = read_stats(str(tmp_path / "stats.json"))
    # c was refused (its decoder fails its hash) and b played on.
    assert stats["model"] == "b" and stats["state"] == "playing"
    assert any("model c" in e and "sha256" in e for e in stats["errors"]["last"])
    assert _settings(tmp_path)["model"] == "b"


def test_sigterm_fades_out_and_exits_zero_within_two_seconds(jack_server, tmp_path,
                                                             models):
    child = _run(jack_server, tmp_path, models, PATCH)
    deadline = time.monotonic() + 30
    line = ""
    while "playing a" not in line:
        assert time.monotonic() < deadline, "the daemon never started playing"
        line = child.stderr.readline()
        assert line or child.poll() is None, child.stderr.read()
    time.sleep(0.5)
    sent = time.monotonic()
    child.send_signal(signal.SIGTERM)
    child.wait(timeout=10)
    assert time.monotonic() - sent < 2.0
    assert child.returncode == 0
    assert not (tmp_path / "state" / "settings.json").exists()  # nothing changed
    assert read_stats(str(tmp_path / "stats.json"))["blocks_rendered"] > 0


def test_with_nothing_playable_it_runs_and_says_why(jack_server, tmp_path, models):
    only_bad = tmp_path / "models"
    only_bad.mkdir()
    os.symlink(models / "c", only_bad / "c")
    (only_bad / "junk").mkdir()
    (only_bad / "junk" / "model.json").write_text("{not json")
    child = _run(jack_server, tmp_path, only_bad, PATCH, seconds=1.5)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    stats = read_stats(str(tmp_path / "stats.json"))
    assert stats["state"] == "error" and stats["blocks_rendered"] > 0  # silence, no underrun
    assert any("model" in e for e in stats["errors"]["last"])


@pytest.mark.parametrize("argv, words", [
    (["run", "--headless", "--models", "{tmp}/nowhere"], "no such models folder"),
    (["run", "--headless", "--patch", "{tmp}/none.toml"], "no such patch"),
    (["run", "--headless", "--seconds", "-1"], "--seconds"),
    (["run", "--headless", "--board", "{tmp}/board.toml"], "board"),
    # A real board whose I2C bus is not there: a missing part, not a traceback.
    (["run", "--headless", "--board", "{tmp}/nobus.toml", "--seconds", "1"],
     "/dev/i2c-99 does not exist"),
])
def test_bad_run_requests_are_one_line(tmp_path, argv, words):
    (tmp_path / "board.toml").write_text("[i2c]\nbus = 'one'\n")
    real = (Path(__file__).parents[1] / "hardware" / "boards" / "jetson-nano.toml").read_text()
    (tmp_path / "nobus.toml").write_text(real.replace("bus = 1 ", "bus = 99 ", 1))
    env = dict(os.environ, NEURORAVE_STATE_DIR=str(tmp_path / "state"))
    result = subprocess.run([sys.executable, "-m", "neurorave.firmware.cli",
                             *[a.format(tmp=tmp_path) for a in argv]],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode != 0
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1, \
        result.stderr


# The daemon on the module's board, its real drivers over models of the chips (an
# ADS1115 and an SSD1306 on a simulated I2C bus, Jetson.GPIO lines): the bus sticks
# (errno 110, a held SDA line) for a second, then comes back with CV2 moved.
I2C_FAULT_CHILD = r"""
import json, sys, threading, time
from neurorave.firmware.daemon import Daemon
from neurorave.hardware.board import load_board
from neurorave.hardware.panel import open_real_panel
from neurorave.hardware.patch import parse_patch
from neurorave.hardware.sim.bench import SimBench

models, device, state = sys.argv[1], sys.argv[2], sys.argv[3]
board = load_board("jetson-nano")
bench = SimBench(board, parse_patch({"cv": {"2": {"volts": 2.0}}}, "before"))
panel = open_real_panel(board, smbus=bench.bus, gpio=bench.gpio)
lines = []
daemon = Daemon("jetson-nano", models, device, headless=True, seconds=4.0, state_dir=state,
                panel=panel, log=lines.append)
seen = {}

def world():
    start = time.monotonic()
    while time.monotonic() - start < 4.0:
        t = time.monotonic() - start
        bench.stimulate(t)
        if t > 0.9 and "before" not in seen:
            seen["before"] = list(daemon.voice.volts)
            bench.bus.stuck_errno = 110
        if t > 1.6 and "during" not in seen:
            seen["during"] = list(daemon.voice.volts)
            seen["failing_notice"] = daemon.menu.notice
        if t > 2.0 and "cleared" not in seen:
            seen["cleared"] = True
            bench.patch = parse_patch({"cv": {"2": {"volts": -3.0}}}, "after")
            bench.bus.stuck_errno = None
        if t > 3.6 and "after" not in seen:
            seen["after"] = list(daemon.voice.volts)
        time.sleep(0.01)

threading.Thread(target=world, daemon=True).start()
status = daemon.run()
errors = daemon.stats.as_dict()["errors"]["last"]
print(json.dumps({"status": status, "seen": seen, "errors": errors, "log": lines,
                  "state": daemon.state, "frames": daemon.voice.frames}))
"""


def test_an_i2c_fault_holds_the_cvs_says_so_and_recovers(jack_server, tmp_path, models):
    child = subprocess.run([sys.executable, "-c", I2C_FAULT_CHILD, str(models),
                            JACK_DIRECT, str(tmp_path / "state")], env=jack_server.env(),
                           capture_output=True, text=True, timeout=90, cwd=str(tmp_path))
    assert child.returncode == 0, child.stderr[-3000:]
    result = json.loads(child.stdout.strip().splitlines()[-1])
    seen = result["seen"]
    assert result["status"] == 0 and result["frames"] > 300 and result["state"] == "playing"
    assert seen["before"][1] == pytest.approx(2.0, abs=0.05)
    # While the bus is stuck: the last good volts, and the screen says so.
    assert seen["during"] == seen["before"]
    assert "CV input fault" in seen["failing_notice"]
    assert any(e.startswith("CV:") and "110" in e for e in result["errors"])
    assert any(e.startswith("display:") for e in result["errors"])
    # Back by itself, reading the new volts.
    assert seen["after"][1] == pytest.approx(-3.0, abs=0.05)
    assert "CV inputs back" in result["log"] and "display back" in result["log"]


ALSA_JACK = "jack, ALSA"  # ALSA's jack plugin: the path the module's ALSA device takes


def test_a_lost_audio_device_is_reopened_while_the_voice_plays_on(jack_server, tmp_path,
                                                                 models):
    patch = tmp_path / "patch.toml"
    patch.write_text(PATCH)
    env = jack_server.env()
    env["NEURORAVE_STATE_DIR"] = str(tmp_path / "state")
    child = subprocess.Popen(
        [sys.executable, "-m", "neurorave.firmware.cli", "run", "--headless", "--patch",
         str(patch), "--models", str(models), "--audio-device", ALSA_JACK, "--stats",
         str(tmp_path / "stats.json")], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=str(tmp_path))
    try:
        deadline = time.monotonic() + 30
        line = ""
        while "audio playing" not in line:
            assert time.monotonic() < deadline, "no sound"
            line = child.stderr.readline()
            assert line or child.poll() is None
        time.sleep(1.0)
        before = read_stats(str(tmp_path / "stats.json"))
        jack_server.kill()             # the device disappears under the daemon
        time.sleep(1.5)
        assert child.poll() is None    # still running
        jack_server.start()
        deadline = time.monotonic() + 30
        while True:
            stats = read_stats(str(tmp_path / "stats.json"))
            if stats["audio"]["opens"] >= 2 and stats["audio"]["state"] == "playing":
                break
            assert time.monotonic() < deadline, stats["audio"]
            time.sleep(0.5)
        time.sleep(1.0)
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0
    after = read_stats(str(tmp_path / "stats.json"))
    assert after["audio"]["losses"] >= 1 and after["audio"]["opens"] >= 2
    assert after["audio"]["frames_played"] > before["audio"]["frames_played"] + 24000
    assert any("audio" in e for e in after["errors"]["last"])


def test_the_first_model_is_the_chosen_one_then_the_bundled_default():
    from neurorave.firmware.menu import ModelEntry
    from neurorave.firmware.model_loading import DEFAULT_MODEL, first_model

    models = [ModelEntry("/m/broken", "broken", error="hash mismatch"),
              ModelEntry("/m/gm-drums", "drums"), ModelEntry(f"/m/{DEFAULT_MODEL}", "notes"),
              ModelEntry("/m/mine", "mine")]
    assert first_model(models, "mine").folder == "/m/mine"
    assert first_model(models, None).folder == f"/m/{DEFAULT_MODEL}"
    assert first_model(models, "gone").folder == f"/m/{DEFAULT_MODEL}"
    assert first_model(models, "broken").folder == f"/m/{DEFAULT_MODEL}"
    assert first_model(models[:2], None).folder == "/m/gm-drums"
    assert first_model(models[:1], None) is None


def test_the_voice_reads_each_cv_over_the_board_files_range(tmp_path):
    """A 0-10 V build's board file reaches the control mapping (a CV slides up all the
    way at 10 V), not the ±5 V of the standard build."""
    from neurorave.firmware.daemon import cv_ranges
    from neurorave.hardware.board import load_board

    real = (Path(__file__).parents[1] / "hardware" / "boards" / "jetson-nano.toml").read_text()
    unipolar = real.replace("offset = 5.0", "offset = 10.0").replace("min = -5.0", "min = 0.0") \
        .replace("max = 5.0", "max = 10.0")
    (tmp_path / "unipolar.toml").write_text(unipolar)
    assert cv_ranges(load_board(str(tmp_path / "unipolar.toml"))) == [(0.0, 10.0)] * 4
    assert cv_ranges(load_board("jetson-nano")) == [(-5.0, 5.0)] * 4
