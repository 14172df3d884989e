"""Settings and calibration files: atomic saves, fallbacks that are reported, power cuts."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from neurorave.firmware import state_files as sf


def _settings(counter):
    data = sf.default_settings()
    data["model"] = f"model-{counter}"
    data["output_level"] = 0.5
    return data


def test_first_start_gives_defaults_and_says_so(tmp_path):
    result = sf.settings_file(str(tmp_path)).load()
    assert result.source == sf.SOURCE_DEFAULTS and result.fell_back
    assert result.data == sf.default_settings()
    assert result.message == "settings: first start" and result.problems == {}
    assert not result.damaged and result.report == ""  # a first start is no fault


def test_save_then_load_and_previous_copy_kept(tmp_path):
    f = sf.settings_file(str(tmp_path))
    f.save(_settings(1))
    f.save(_settings(2))
    result = f.load()
    assert result.source == sf.SOURCE_CURRENT and result.message == ""
    assert result.data["model"] == "model-2"
    with open(f.backup_path) as b:
        assert json.load(b)["data"]["model"] == "model-1"
    with open(f.path) as current:
        doc = json.load(current)
    assert doc["format"] == "neurorave-settings" and doc["version"] == sf.SETTINGS_VERSION
    assert sorted(os.listdir(tmp_path)) == ["settings.json", "settings.json.bak"]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "wrong-format",
                                    "newer-version", "no-data"])
def test_damaged_file_falls_back_to_the_previous_copy(tmp_path, damage):
    f = sf.settings_file(str(tmp_path))
    f.save(_settings(1))
    f.save(_settings(2))
    with open(f.path, "rb") as current:
        good = current.read()
    doc = json.loads(good)
    bad = {
        "truncated": good[: len(good) // 2],
        "garbage": os.urandom(200),
        "empty": b"",
        "wrong-format": json.dumps(dict(doc, format="something-else")).encode(),
        "newer-version": json.dumps(dict(doc, version=sf.SETTINGS_VERSION + 1)).encode(),
        "no-data": json.dumps(dict(doc, data=[1, 2])).encode(),
    }[damage]
    with open(f.path, "wb") as out:
        out.write(bad)
    result = f.load()
    assert result.source == sf.SOURCE_BACKUP
    assert result.data["model"] == "model-1"
    assert result.message == "settings from .bak" and result.damaged
    assert list(result.problems) == [f.path]
    # One line for stderr: the file, why, and what was used instead.
    assert result.report.startswith(f"{f.path}: ") and "\n" not in result.report
    assert result.report.endswith(f"using {f.backup_path}")


def test_both_copies_damaged_gives_defaults_and_names_the_problems(tmp_path):
    f = sf.calibration_file(str(tmp_path))
    for path in (f.path, f.backup_path):
        with open(path, "wb") as out:
            out.write(b'{"format": "neurorave-calib')
    result = f.load()
    assert result.source == sf.SOURCE_DEFAULTS
    assert result.data == sf.default_calibration()
    assert result.message == "calibration: defaults"
    assert set(result.problems) == {f.path, f.backup_path}
    assert "torn" in result.problems[f.path]
    assert f.path in result.report and f.backup_path in result.report
    assert result.report.endswith("using defaults")


def test_missing_current_with_a_backup_uses_the_backup(tmp_path):
    f = sf.settings_file(str(tmp_path))
    f.save(_settings(1))
    f.save(_settings(2))
    os.unlink(f.path)
    result = f.load()
    assert result.source == sf.SOURCE_BACKUP and result.data["model"] == "model-1"


def test_a_torn_current_file_never_replaces_a_good_backup(tmp_path):
    f = sf.settings_file(str(tmp_path))
    f.save(_settings(1))
    f.save(_settings(2))
    with open(f.path, "wb") as out:
        out.write(b"{")
    f.save(_settings(3))
    assert f.load().data["model"] == "model-3"
    os.unlink(f.path)
    assert f.load().data["model"] == "model-1"  # the torn file did not become the backup


def test_previous_copy_is_kept_where_hard_links_are_refused(tmp_path, monkeypatch):
    def no_links(*args, **kwargs):
        raise PermissionError("hard links not supported")

    f = sf.settings_file(str(tmp_path))
    f.save(_settings(1))
    monkeypatch.setattr(os, "link", no_links)
    f.save(_settings(2))
    assert f.load().data["model"] == "model-2"
    os.unlink(f.path)
    assert f.load().data["model"] == "model-1"
    assert sorted(os.listdir(tmp_path)) == ["settings.json.bak"]


def test_settings_and_calibration_are_separate_files(tmp_path):
    settings, calibration = sf.settings_file(str(tmp_path)), sf.calibration_file(str(tmp_path))
    settings.save(_settings(1))
    cal = sf.default_calibration()
    cal["cv_offset_v"] = [0.01, -0.02, 0.0, 0.003]
    calibration.save(cal)
    os.unlink(settings.path)
    assert calibration.load().data["cv_offset_v"] == [0.01, -0.02, 0.0, 0.003]
    assert settings.path != calibration.path


def test_invalid_data_is_refused_before_anything_is_written(tmp_path):
    f = sf.settings_file(str(tmp_path))
    f.save(_settings(1))
    bad = dict(_settings(2), macro_mode="sideways")
    with pytest.raises(ValueError, match="macro_mode"):
        f.save(bad)
    bad_cal = dict(sf.default_calibration(), cv_scale=[1.0, 0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="cv_scale"):
        sf.calibration_file(str(tmp_path)).save(bad_cal)
    assert f.load().data["model"] == "model-1"
    assert sorted(os.listdir(tmp_path)) == ["settings.json"]


def test_older_version_is_migrated(tmp_path):
    def migrate(version, data):
        assert version == 1
        return dict(data, added=True)

    old = sf.StateFile(str(tmp_path), "x.json", "settings", 1, dict)
    old.save({"a": 1})
    new = sf.StateFile(str(tmp_path), "x.json", "settings", 2, dict, migrate=migrate)
    result = new.load()
    assert result.source == sf.SOURCE_CURRENT and result.data == {"a": 1, "added": True}
    no_migration = sf.StateFile(str(tmp_path), "x.json", "settings", 2, dict)
    assert no_migration.load().source == sf.SOURCE_DEFAULTS


def test_state_dir_override_and_home_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv(sf.STATE_DIR_ENV, str(tmp_path / "override"))
    assert sf.default_state_dir() == str(tmp_path / "override")
    monkeypatch.delenv(sf.STATE_DIR_ENV)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(sf, "SYSTEM_STATE_DIR", str(tmp_path / "absent"))
    assert sf.default_state_dir() == str(tmp_path / ".local" / "state" / "neurorave")
    (tmp_path / "system").mkdir()
    monkeypatch.setattr(sf, "SYSTEM_STATE_DIR", str(tmp_path / "system"))
    assert sf.default_state_dir() == str(tmp_path / "system")
    # The folder is made on the first save.
    f = sf.settings_file(str(tmp_path / "new" / "dir"))
    f.save(_settings(1))
    assert f.load().source == sf.SOURCE_CURRENT


def test_leftover_temporary_files_are_removed(tmp_path):
    f = sf.settings_file(str(tmp_path))
    f.save(_settings(1))
    (tmp_path / ".settings.json.abc.tmp").write_bytes(b"{")
    (tmp_path / "unrelated.tmp").write_bytes(b"x")
    assert f.remove_leftovers() == 1
    assert sorted(os.listdir(tmp_path)) == ["settings.json", "unrelated.tmp"]


# ---- power cuts ------------------------------------------------------------------------
def _ours(frame):
    # Lines of state_files.py and the C calls it makes (write, fsync, link, rename...).
    return frame.f_code.co_filename == sf.__file__


def _count_events(folder):
    """How many line and C-call events one save takes (the places a cut can land)."""
    f = sf.settings_file(folder)
    f.save(_settings(0))
    events = [0]

    def tracer(frame, event, arg):
        if not _ours(frame):
            return None
        events[0] += 1
        return tracer

    def profiler(frame, event, arg):
        if event == "c_call" and _ours(frame):
            events[0] += 1

    sys.settrace(tracer)
    sys.setprofile(profiler)
    try:
        f.save(_settings(1))
    finally:
        sys.settrace(None)
        sys.setprofile(None)
    return events[0]


def _save_and_die_at(folder, counter, cut_at):
    """In a forked child: save, but _exit at event number `cut_at` (a power cut)."""
    pid = os.fork()
    if pid == 0:
        events = [0]

        def cut():
            events[0] += 1
            if events[0] >= cut_at:
                os._exit(3)

        def tracer(frame, event, arg):
            if not _ours(frame):
                return None
            cut()
            return tracer

        def profiler(frame, event, arg):
            if event == "c_call" and _ours(frame):
                cut()

        try:
            f = sf.settings_file(folder)
            sys.settrace(tracer)
            sys.setprofile(profiler)
            f.save(_settings(counter))
            sys.settrace(None)
            sys.setprofile(None)
        except BaseException:
            os._exit(4)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") \
        else status >> 8


@pytest.mark.parametrize("hard_links", [True, False])
def test_a_cut_at_any_point_of_a_save_keeps_the_last_good_settings(tmp_path, monkeypatch,
                                                                   hard_links):
    if not hard_links:
        def no_links(*args, **kwargs):
            raise PermissionError("hard links not supported")

        monkeypatch.setattr(os, "link", no_links)
    folder = str(tmp_path)
    total = _count_events(str(tmp_path / "count"))
    assert total > 30
    f = sf.settings_file(folder)
    f.save(_settings(0))
    last_good = 0
    cuts = 0
    rng = random.Random(1234)
    # Every event position once, then random ones: the cut lands everywhere in save().
    positions = list(range(1, total + 2)) + [rng.randint(1, total + 1) for _ in range(40)]
    for counter, cut_at in enumerate(positions, start=1):
        code = _save_and_die_at(folder, counter, cut_at)
        assert code in (0, 3), code
        cuts += code == 3
        result = f.load()
        # The current file is always complete: no fallback is ever needed.
        assert result.source == sf.SOURCE_CURRENT, (cut_at, result.problems)
        loaded = int(result.data["model"].split("-")[1])
        if code == 0:
            assert loaded == counter
        else:
            assert loaded in (last_good, counter), (cut_at, loaded, last_good)
        last_good = loaded
    assert cuts > total // 2  # most positions really were cut mid-save


CHILD = r"""
import sys
from neurorave.firmware import state_files as sf
f = sf.settings_file(sys.argv[1])
counter = int(sys.argv[2])
while True:
    counter += 1
    data = sf.default_settings()
    data["model"] = "model-%d" % counter
    f.save(data)
    print(counter, flush=True)
"""


def test_sigkill_while_saving_in_a_loop_never_loses_the_last_save(tmp_path):
    folder = str(tmp_path)
    f = sf.settings_file(folder)
    f.save(_settings(0))
    rng = random.Random(99)
    last = 0
    for _ in range(8):
        child = subprocess.Popen([sys.executable, "-c", CHILD, folder, str(last)],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        first = child.stdout.readline()  # it is saving in a loop now
        assert first.strip()
        time.sleep(rng.uniform(0.0, 0.05))
        os.kill(child.pid, signal.SIGKILL)
        rest = child.stdout.read()
        child.wait()
        printed = [int(x) for x in (first + rest).split()]
        result = f.load()
        assert result.source == sf.SOURCE_CURRENT, result.problems
        loaded = int(result.data["model"].split("-")[1])
        # At least the last save it reported, at most the one it was in.
        assert printed[-1] <= loaded <= printed[-1] + 1
        last = loaded
    assert last > 8


@pytest.mark.parametrize("key,value", [
    ("cv_assign", {"cv1": 0}), ("cv_assign", {"cv2": "rms"}), ("cv_assign", {"cv2": -1}),
    ("attribute_ranges", {"rms": [0.5, 0.2]}), ("attribute_ranges", {"rms": [0, 2]}),
    ("snapshots", [[0.5, "x"]]), ("snapshots", [0.5]), ("pitch_mode", 1),
    ("output_level", float("nan")), ("model", 3), ("cv_mode", "wobble"),
    ("gate_mode", "roll")])
def test_settings_the_daemon_could_not_use_are_refused(tmp_path, key, value):
    with pytest.raises(ValueError, match=key):
        sf.validate_settings(dict(sf.default_settings(), **{key: value}))
    # Written by hand into the file, only that value is reset; the others are kept.
    f = sf.settings_file(str(tmp_path))
    f.save(_settings(1))
    doc = json.loads(f.encode(dict(_settings(2), **{key: value})))
    with open(f.path, "w") as out:
        json.dump(doc, out)
    result = f.load()
    assert result.source == sf.SOURCE_CURRENT and list(result.dropped) == [key]
    assert result.data == dict(_settings(2), **{key: sf.default_settings()[key]})
    sf.validate_settings(result.data)


def test_settings_written_before_the_cv_mode_existed_load_as_they_are(tmp_path):
    from neurorave.firmware.controls import ControlSettings

    f = sf.settings_file(str(tmp_path))
    older = dict(_settings(5))
    older.pop("cv_mode")
    older.pop("gate_mode")
    with open(f.path, "w") as out:
        json.dump(json.loads(f.encode(older)), out)
    result = f.load()
    assert result.source == sf.SOURCE_CURRENT and result.data["model"] == "model-5"
    controls = ControlSettings.from_settings(result.data)
    assert controls.cv_mode == "slide" and controls.gate_mode is None  # the model's own


@pytest.mark.parametrize("pitch", [
    {"cv": 4, "semitones_per_volt": 12.0, "reading_at_1v": 1.0},
    {"cv": 0, "semitones_per_volt": 30.0, "reading_at_1v": 1.0},
    {"cv": 0, "semitones_per_volt": 12.0, "reading_at_1v": 3.0},
    {"cv": 0}, "12 st/V"])
def test_a_pitch_calibration_this_firmware_would_not_make_is_refused(pitch):
    with pytest.raises(ValueError, match="pitch"):
        sf.validate_calibration(dict(sf.default_calibration(), pitch=pitch))
    good = {"cv": 0, "semitones_per_volt": 12.0, "reading_at_1v": 1.0}
    sf.validate_calibration(dict(sf.default_calibration(), pitch=good))


# ---- files the firmware cannot read in full: kept, reported, never destroyed ---------
def _write_doc(f, data, **doc_fields):
    doc = json.loads(f.encode(data))
    doc.update(doc_fields)
    raw = json.dumps(doc, indent=1).encode()
    with open(f.path, "wb") as out:
        out.write(raw)
    return raw


def test_a_partly_bad_settings_file_keeps_every_good_value_and_names_the_bad(tmp_path):
    f = sf.settings_file(str(tmp_path))
    mine = dict(_settings(7), prior_temperature=0.7, pitch_mode=True,
                cv_assign={"cv2": 3, "cv3": None, "cv4": 1}, snapshots=[[0.1, 0.9]])
    bad = dict(mine, macro_mode="randm", output_level="0.5")
    _write_doc(f, bad)
    result = f.load()
    assert result.source == sf.SOURCE_CURRENT and result.damaged
    assert sorted(result.dropped) == ["macro_mode", "output_level"]
    defaults = sf.default_settings()
    assert result.data == dict(mine, macro_mode=defaults["macro_mode"],
                               output_level=defaults["output_level"])
    # One line naming the file and each bad value; a short one for the OLED.
    assert result.report.startswith(f"{f.path}: ") and "\n" not in result.report
    assert "macro_mode must be one of" in result.report
    assert "output_level must be a number" in result.report
    assert result.message == "settings: 2 reset" and len(result.message) <= 21


def test_missing_values_are_filled_from_the_defaults(tmp_path):
    f = sf.settings_file(str(tmp_path))
    partial = _settings(3)
    del partial["macro_glide_s"], partial["cv_mode"], partial["model"]
    _write_doc(f, partial)
    result = f.load()
    assert result.data == dict(_settings(3), model=None)
    # cv_mode and model are absent from older files by right; the glide is not.
    assert list(result.dropped) == ["macro_glide_s"]
    assert "macro_glide_s is missing" in result.report


def test_a_partly_bad_calibration_keeps_the_good_values(tmp_path):
    f = sf.calibration_file(str(tmp_path))
    offsets = [0.01, 0.02, 0.03, 0.04]
    pitch = {"cv": 0, "semitones_per_volt": 12.0, "reading_at_1v": 1.0}
    _write_doc(f, {"cv_offset_v": offsets, "cv_scale": [1.0, 0.0, 1.0, 1.0], "pitch": pitch})
    result = f.load()
    assert result.source == sf.SOURCE_CURRENT and list(result.dropped) == ["cv_scale"]
    assert result.data == {"cv_offset_v": offsets, "cv_scale": [1.0] * 4, "pitch": pitch}
    assert result.message == "calibration: 1 reset"


@pytest.mark.parametrize("damage", ["bad-value", "torn", "newer-version", "garbage"])
@pytest.mark.parametrize("hard_links", [True, False])
def test_a_file_not_read_in_full_is_kept_aside_before_it_is_rewritten(
        tmp_path, monkeypatch, damage, hard_links):
    if not hard_links:
        def no_links(*args, **kwargs):
            raise PermissionError("hard links not supported")

        monkeypatch.setattr(os, "link", no_links)
    f = sf.settings_file(str(tmp_path))
    f.save(_settings(1))
    f.save(_settings(2))
    with open(f.backup_path, "rb") as b:
        backup = b.read()
    raw = {
        "bad-value": lambda: _write_doc(f, dict(_settings(3), macro_mode="randm")),
        "torn": lambda: _write_doc(f, _settings(3))[:60],
        "newer-version": lambda: _write_doc(f, _settings(3), version=sf.SETTINGS_VERSION + 1),
        "garbage": lambda: b"\x00\x01garbage",
    }[damage]()
    with open(f.path, "wb") as out:
        out.write(raw)
    assert f.load().damaged
    aside = f.save(_settings(4))
    # The user's file, byte for byte, beside the new one; the good backup untouched.
    assert aside is not None and os.path.dirname(aside) == str(tmp_path)
    assert os.path.basename(aside).startswith("settings.json.bad-")
    with open(aside, "rb") as kept:
        assert kept.read() == raw
    with open(f.backup_path, "rb") as b:
        assert b.read() == backup
    result = f.load()
    assert result.source == sf.SOURCE_CURRENT and not result.damaged
    assert result.data["model"] == "model-4"
    # A good file is not set aside again: it becomes the backup as usual.
    assert f.save(_settings(5)) is None
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["settings.json", "settings.json.bak", os.path.basename(aside)])


def test_two_files_kept_aside_within_a_second_do_not_replace_each_other(tmp_path):
    f = sf.settings_file(str(tmp_path))
    kept = []
    for counter in range(3):
        with open(f.path, "wb") as out:
            out.write(b"{torn %d" % counter)
        kept.append(f.save(_settings(counter)))
    assert len(set(kept)) == 3
    for counter, path in enumerate(kept):
        with open(path, "rb") as aside:
            assert aside.read() == b"{torn %d" % counter
