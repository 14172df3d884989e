"""The daemon with damaged state: settings and calibration files it cannot read in full,
a damaged bundle named in the settings, and its own lines while PortAudio re-scans.

No sound device is needed: the audio keeper retries a device that is not there (and
re-scans the device list meanwhile, as on a module whose DAC is unplugged) while the
voice and the scheduler run as usual."""
import json
import os
import subprocess
import sys

import pytest
from neurorave.firmware import state_files as sf
from neurorave.firmware.stats import read_stats
from toy_bundle import write_toy_bundle

NO_DEVICE = "no-such-sound-device"

# A short press opens the main menu, one more opens "Model"; one step down from a is b.
CHOOSE_B = """
[[encoder.press]]
at = 0.5
kind = "short"
[[encoder.press]]
at = 0.8
kind = "short"
[[encoder.turn]]
at = 1.1
steps = 1
[[encoder.press]]
at = 1.4
kind = "short"
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("state-models")
    write_toy_bundle(str(root / "a"), frame=64, name="a")
    write_toy_bundle(str(root / "b"), frame=64, name="b")
    # A decoder cut short by a failed copy: scanned fine (model.json reads), refused at load.
    write_toy_bundle(str(root / "bad"), frame=64, name="bad")
    decoder = root / "bad" / "decoder.onnx"
    decoder.write_bytes(decoder.read_bytes()[:100])
    return root


def _state(tmp_path, settings=None, calibration_raw=None):
    folder = tmp_path / "state"
    folder.mkdir()
    if settings is not None:
        doc = json.loads(sf.settings_file(str(folder)).encode(sf.default_settings()))
        doc["data"].update(settings)
        (folder / "settings.json").write_text(json.dumps(doc, indent=1))
    if calibration_raw is not None:
        (folder / "calibration.json").write_bytes(calibration_raw)
    return folder


def _snapshot(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def _run(tmp_path, models, state, patch="", seconds=2.5):
    (tmp_path / "patch.toml").write_text(patch)
    env = dict(os.environ, NEURORAVE_STATE_DIR=str(state), NEURORAVE_NO_RT="1")
    return subprocess.run(
        [sys.executable, "-m", "neurorave.firmware.cli", "run", "--board", "sim",
         "--headless", "--patch", str(tmp_path / "patch.toml"), "--seconds", str(seconds),
         "--models", str(models), "--audio-device", NO_DEVICE,
         "--stats", str(tmp_path / "stats.json")],
        env=env, capture_output=True, text=True, timeout=120, cwd=str(tmp_path))


def _lines(stderr, *words):
    return [line for line in stderr.splitlines() if all(w in line for w in words)]


@pytest.mark.parametrize("wanted", ["bad", "gone"])
def test_a_bundle_the_settings_name_that_cannot_play_gives_way_and_stays_chosen(
        tmp_path, models, wanted):
    state = _state(tmp_path, {"model": wanted, "output_level": 0.5})
    before = _snapshot(state)
    result = _run(tmp_path, models, state)
    assert result.returncode == 0, result.stderr
    stats = read_stats(str(tmp_path / "stats.json"))
    # The module plays the next good bundle rather than staying silent...
    assert stats["state"] == "playing" and stats["model"] == "a", result.stderr
    assert "playing a" in result.stderr
    # ...says so in one line...
    said = _lines(result.stderr, f"model {wanted}", "trying a instead",
                  f"the settings keep {wanted}")
    assert len(said) == 1, result.stderr
    assert any(f"model {wanted}" in e for e in stats["errors"]["last"])
    # ...and the player's choice stays in the settings, which nothing else changed.
    assert _snapshot(state) == before


def test_a_player_choice_replaces_the_one_that_could_not_play(tmp_path, models):
    state = _state(tmp_path, {"model": "bad"})
    result = _run(tmp_path, models, state, CHOOSE_B, seconds=3.0)
    assert result.returncode == 0, result.stderr
    assert read_stats(str(tmp_path / "stats.json"))["model"] == "b", result.stderr
    assert json.loads((state / "settings.json").read_text())["data"]["model"] == "b"


def test_a_model_chosen_while_another_loads_is_loaded_next(tmp_path, models):
    """The player picks b while the start-up load of a is still running: b is loaded
    after a, and the settings name what plays (before, the choice was dropped while the
    settings kept naming it)."""
    import asyncio

    from neurorave.firmware.daemon import Daemon

    daemon = Daemon("sim", str(models), NO_DEVICE, headless=True,
                    state_dir=str(_state(tmp_path)), log=lambda text: None)
    daemon._open()

    async def start_then_choose():
        daemon.loader.loop = asyncio.get_running_loop()
        daemon.loader.load(str(models / "a"), at_start=True)
        daemon.settings["model"] = "b"    # what the menu does when the player picks b
        daemon.loader.load(str(models / "b"))
        for _ in range(500):
            if daemon.loader.loading is None and daemon.loader.current == "b":
                return
            await asyncio.sleep(0.01)

    try:
        asyncio.run(start_then_choose())
    finally:
        daemon.loader.worker.shutdown()
        daemon.panel.close()
    assert daemon.loader.current == "b" and daemon.settings["model"] == "b"


CHILD = r"""
import json, sys
from neurorave.firmware.daemon import Daemon

models, state, stats, patch = sys.argv[1:5]
daemon = Daemon("sim", models, "no-such-sound-device", headless=True, patch=patch,
                seconds=2.0, stats_path=stats, state_dir=state)
status = daemon.run()
print(json.dumps({"status": status, "notice": daemon.menu.notice,
                  "settings": daemon.settings, "calibration": daemon.calibration.to_state()}))
"""


@pytest.mark.parametrize("damage", ["settings-values", "settings-newer", "calibration-torn",
                                    "calibration-values"])
def test_a_damaged_state_file_is_reported_used_as_far_as_it_goes_and_left_alone(
        tmp_path, models, damage):
    mine = {"model": "a", "output_level": 0.5, "prior_temperature": 0.7}
    good_cal = json.loads(sf.calibration_file("x").encode(
        dict(sf.default_calibration(), cv_offset_v=[0.01, 0.02, 0.03, 0.04])))
    settings, cal_raw, words, notice = {
        "settings-values": (dict(mine, macro_mode="randm", cv_mode=3), None,
                            ["settings.json: ", "macro_mode must be", "cv_mode must be"],
                            "settings: 2 reset"),
        "settings-newer": (dict(mine), None, ["settings.json: version 2 is newer",
                                              "using defaults"], "settings: defaults"),
        "calibration-torn": (mine, json.dumps(good_cal).encode()[:50],
                             ["calibration.json: not valid JSON", "using defaults"],
                             "calibration: defaults"),
        "calibration-values": (mine, json.dumps(dict(good_cal, data=dict(
            good_cal["data"], cv_scale=[1, 0, 1, 1]))).encode(),
            ["calibration.json: cv_scale must be"], "calibration: 1 reset"),
    }[damage]
    state = _state(tmp_path, settings, cal_raw)
    if damage == "settings-newer":
        doc = json.loads((state / "settings.json").read_text())
        (state / "settings.json").write_text(json.dumps(dict(doc, version=2)))
    before = _snapshot(state)
    (tmp_path / "patch.toml").write_text("")
    child = subprocess.run([sys.executable, "-c", CHILD, str(models), str(state),
                            str(tmp_path / "stats.json"), str(tmp_path / "patch.toml")],
                           env=dict(os.environ, NEURORAVE_NO_RT="1"), capture_output=True,
                           text=True, timeout=120, cwd=str(tmp_path))
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout.strip().splitlines()[-1])
    # One line on stderr naming the file and why; the same in the stats; the OLED
    # names the file.
    said = _lines(child.stderr, str(state), *words)
    assert len(said) == 1, child.stderr
    errors = read_stats(str(tmp_path / "stats.json"))["errors"]["last"]
    assert said[0].split("neurorave run: ", 1)[1] in errors
    assert result["notice"] == notice
    # Every good value still in use.
    if damage.startswith("calibration"):
        assert result["settings"]["output_level"] == 0.5
    if damage == "settings-values":
        assert result["settings"]["prior_temperature"] == 0.7
        assert result["settings"]["macro_mode"] == "random"
    if damage == "calibration-values":
        assert result["calibration"]["cv_offset_v"] == [0.01, 0.02, 0.03, 0.04]
    # Nothing changed, so nothing was written: the user's files are as they were.
    assert _snapshot(state) == before


def test_a_change_keeps_the_unreadable_file_aside_and_every_good_value(tmp_path, models):
    mine = {"model": "a", "output_level": 0.5, "prior_temperature": 0.7,
            "cv_assign": {"cv2": 1, "cv3": None, "cv4": 0}}
    state = _state(tmp_path, dict(mine, macro_mode="randm"))
    original = (state / "settings.json").read_bytes()
    result = _run(tmp_path, models, state, CHOOSE_B, seconds=3.0)
    assert result.returncode == 0, result.stderr
    # The player chose b: written, with every good value of the old file.
    data = json.loads((state / "settings.json").read_text())["data"]
    assert data == dict(sf.default_settings(), **dict(mine, model="b"))
    # The old file, as it was, beside it; said once.
    aside = [name for name in os.listdir(state) if name.startswith("settings.json.bad-")]
    assert len(aside) == 1 and (state / aside[0]).read_bytes() == original
    assert len(_lines(result.stderr, "kept it as", aside[0])) == 1, result.stderr


RESCAN_CHILD = r"""
import sys, threading, time
from neurorave.firmware.audio_out import jack_host_api_loaded, rescan_devices
from neurorave.firmware.daemon import Daemon

assert not jack_host_api_loaded()  # no server reachable: re-scans are made
say = Daemon().log  # the daemon's own writer
done = threading.Event()
sent = []

def talk():
    while not done.is_set() or len(sent) < 50:
        sent.append(len(sent))
        say("line %d" % sent[-1])
        time.sleep(0.0002)

talker = threading.Thread(target=talk)
talker.start()
rescans = sum(rescan_devices() for _ in range(10))
done.set()
talker.join()
print(rescans, len(sent))
"""


def test_the_daemons_lines_survive_a_device_rescan():
    """sounddevice points fd 2 at /dev/null while it re-initialises PortAudio; a line
    the daemon writes from another thread meanwhile must still arrive. (A child of its
    own: a real fd 2, which pytest's capture would replace.)"""
    # No JACK server reachable (PortAudio refuses to re-scan while its JACK API is up).
    env = dict(os.environ, JACK_NO_START_SERVER="1", JACK_DEFAULT_SERVER="nr-none")
    child = subprocess.run([sys.executable, "-c", RESCAN_CHILD], capture_output=True,
                           text=True, timeout=120, env=env)
    assert child.returncode == 0, child.stderr[-2000:]
    rescans, sent = (int(v) for v in child.stdout.split())
    assert rescans == 10
    got = [line for line in child.stderr.splitlines() if " line " in line]
    assert got == [f"neurorave run: line {i}" for i in range(sent)]


def test_a_patch_with_settings_plays_them_and_never_writes_the_players_files(tmp_path,
                                                                             models):
    """The virtual board honours a patch's [settings] (here: model b, a lower output
    level) for that run only: the player's own settings file stays as it was, even when
    the encoder in the same patch changes a setting."""
    state = _state(tmp_path, {"model": "a", "output_level": 0.7})
    before = _snapshot(state)
    patch = '[settings]\nmodel = "b"\noutput_level = 0.4\n' + CHOOSE_B
    result = _run(tmp_path, models, state, patch, seconds=3.5)
    assert result.returncode == 0, result.stderr
    playing = _lines(result.stderr, "playing ")
    assert playing and playing[0].split("playing ")[1].startswith("b:"), result.stderr
    # The encoder then chose a model again (b, one below a), and the patch's settings
    # differ from the file's anyway: each would be written at exit. Nothing was.
    assert len(playing) == 2, result.stderr
    assert _snapshot(state) == before


def test_a_bad_patch_setting_is_one_line_before_anything_starts(tmp_path, models):
    state = _state(tmp_path)
    result = _run(tmp_path, models, state, '[settings]\nmacro_mode = "randm"\n')
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "macro_mode" in lines[0] and "Traceback" not in result.stderr
