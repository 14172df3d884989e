"""`neurorave transfer`: a generated recording through a committed bundle's real encoder
and decoder (ONNX Runtime), and every bad file or argument as one line."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from neurorave.firmware import cli
from neurorave.models import descriptors
from neurorave.models import transfer_command as tc
from neurorave.models.runtime.bundle import load_bundle

ROOT = Path(__file__).resolve().parent.parent
NOTES = ROOT / "models" / "pretrained" / "gm-notes"
RATE = 44100          # not the bundle's 16 kHz: the transfer resamples both ways
SECONDS = 3.0
HOP = 1024            # contours measured at ~23 ms at 44.1 kHz


def _recording(rate=RATE, seconds=SECONDS, channels=2):
    """A 220 Hz harmonic tone (1/k partials up to 6.6 kHz, so there is brightness to
    move both ways) under a slow raised-cosine swell from -34 dB to full, twice."""
    t = np.arange(int(rate * seconds)) / rate
    envelope = 0.02 + 0.6 * 0.5 * (1 - np.cos(2 * np.pi * t / 1.5))
    tone = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 31))
    mono = (0.25 * envelope * tone).astype(np.float32)
    if channels == 1:
        return mono
    return np.stack([mono * (1.0 - 0.2 * c) for c in range(channels)], axis=1)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("transfer") / "in.wav"
    soundfile.write(path, _recording(), RATE, subtype="FLOAT")
    return path


def _transfer(recording, out, *extra):
    status = cli.main(["transfer", str(recording), str(out), "--bundle", str(NOTES), *extra])
    assert status == 0
    audio, rate = soundfile.read(out, dtype="float32")
    return audio, rate


def _curves(audio, rate):
    return descriptors.compute(audio, rate, HOP, ["rms", "centroid", "f0"])


def _corr(a, b):
    return float(np.corrcoef(a, b)[0, 1])


def test_output_follows_the_input_loudness(recording, tmp_path, capsys):
    audio, rate = _transfer(recording, tmp_path / "out.wav")
    source, source_rate = soundfile.read(recording, dtype="float32")
    assert rate == source_rate == RATE and audio.ndim == 1 and len(audio) == len(source)
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'out.wav'}: 3.00 s at "
                                              "44100 Hz (mono) through gm-notes")
    corr = _corr(_curves(audio, rate)["rms"], _curves(source, rate)["rms"])
    with capsys.disabled():
        print(f"\nrms contour correlation {corr:.4f}")
    assert corr >= 0.8


def test_pinned_centroid_moves_as_asked(recording, tmp_path):
    free = np.median(_curves(*_transfer(recording, tmp_path / "free.wav"))["centroid"])
    measured = {}
    for position in (0.1, 0.8):
        audio, rate = _transfer(recording, tmp_path / f"c{position}.wav",
                                "--set", f"centroid={position}")
        curves = _curves(audio, rate)
        measured[position] = float(np.median(curves["centroid"]))
        # The loudness still comes from the input.
        assert _corr(curves["rms"], _curves(*soundfile.read(recording))["rms"]) >= 0.8
    print(f"centroid: free {free:.0f} Hz, set 0.1 -> {measured[0.1]:.0f} Hz, "
          f"set 0.8 -> {measured[0.8]:.0f} Hz")
    assert measured[0.1] < free < measured[0.8]
    assert measured[0.8] >= 1.5 * measured[0.1]


def test_a_value_in_the_attributes_unit_pins_it(recording, tmp_path):
    audio, rate = _transfer(recording, tmp_path / "fifth.wav", "--set", "f0=330Hz")
    f0 = float(np.median(_curves(audio, rate)["f0"]))
    assert abs(f0 / 330.0 - 1) < 0.03, f0   # the input plays 220 Hz


def test_any_rate_and_channel_count(tmp_path):
    path = tmp_path / "mono22k.flac"
    soundfile.write(path, _recording(rate=22050, seconds=1.0, channels=1), 22050)
    audio, rate = _transfer(path, tmp_path / "out.flac")
    assert rate == 22050 and audio.ndim == 1 and len(audio) == 22050
    six = tmp_path / "six.wav"
    soundfile.write(six, _recording(rate=48000, seconds=0.5, channels=6), 48000)
    audio, rate = _transfer(six, tmp_path / "six-out.wav")
    assert rate == 48000 and audio.ndim == 1 and len(audio) == 24000


def test_set_means_a_position_or_a_value_in_the_unit():
    attributes = load_bundle(str(NOTES)).attributes
    centroid = next(a for a in attributes if a.name == "centroid")
    pins = tc.parse_sets(["centroid=0.8", "f0=220Hz", "rms=0"], attributes)
    names = [a.name for a in attributes]
    assert pins == {names.index("centroid"): pytest.approx(0.8 * centroid.max),
                    names.index("f0"): 220.0, names.index("rms"): 0.0}
    assert tc.parse_sets(["centroid = 1000 hz"], attributes) == {names.index("centroid"): 1000.0}


# ---------------------------------------------------------------------------------------
# Bad files and arguments: one line, non-zero, nothing lost.

def _one_line(capsys, argv, *expected):
    status = cli.main(argv)
    err = capsys.readouterr().err
    assert status != 0
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("neurorave transfer: ")
    for word in expected:
        assert word in lines[0], lines[0]
    return lines[0]


def _args(source, out, *extra, bundle=NOTES):
    return ["transfer", str(source), str(out), "--bundle", str(bundle), *extra]


@pytest.fixture
def no_encoder(tmp_path):
    folder = tmp_path / "decoder-only"
    folder.mkdir()
    meta = json.loads((NOTES / "model.json").read_text())
    del meta["graphs"]["encoder"], meta["graphs"]["prior"]
    (folder / "model.json").write_text(json.dumps(meta))
    shutil.copy(NOTES / "decoder.onnx", folder)
    return folder


def test_bad_files_are_one_line(recording, tmp_path, capsys, no_encoder):
    out = tmp_path / "out.wav"
    text = tmp_path / "notes.wav"
    text.write_text("not audio\n")
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros((0, 2), np.float32), RATE)
    nan = tmp_path / "nan.wav"
    broken = _recording(seconds=0.5)
    broken[RATE // 4, 1] = np.nan
    soundfile.write(nan, broken, RATE, subtype="FLOAT")
    cases = [
        (_args(tmp_path / "missing.wav", out), ["missing.wav", "no such file"]),
        (_args(tmp_path, out), ["is a folder"]),
        (_args(text, out), ["notes.wav", "not a readable audio file"]),
        (_args(empty, out), ["empty.wav", "no audio"]),
        (_args(nan, out), ["nan.wav", "NaN", "0.250 s"]),
        (_args(recording, out, bundle=tmp_path / "nowhere"), ["nowhere", "no such folder"]),
        (_args(recording, out, bundle=no_encoder), ["decoder-only", "no encoder"]),
        (_args(recording, tmp_path / "no" / "out.wav"), ["does not exist"]),
        (_args(recording, tmp_path), ["extension"]),
        (_args(recording, tmp_path / "out.txt"), ["out.txt", "extension"]),
        (_args(recording, tmp_path / "folder.wav"), ["folder.wav", "is a folder"]),
    ]
    (tmp_path / "folder.wav").mkdir()
    for argv, expected in cases:
        _one_line(capsys, argv, *expected)
    assert not out.exists()


def test_the_input_is_never_overwritten(recording, capsys):
    before = recording.read_bytes()
    _one_line(capsys, _args(recording, recording), "is the input")
    # The same file by another name.
    _one_line(capsys, _args(recording, recording.parent / "." / recording.name), "is the input")
    assert recording.read_bytes() == before


@pytest.mark.parametrize("setting, expected", [
    ("colour=0.5", ["colour", "valid names: rms, centroid, bandwidth"]),
    ("centroid", ["centroid", "NAME=VALUE"]),
    ("centroid=bright", ["bright", "not a number"]),
    ("centroid=nan", ["not a finite number"]),
    ("centroid=1.5", ["centroid=1.5", "within 0..1"]),
    ("centroid=-0.1", ["within 0..1"]),
    ("f0=9000Hz", ["f0=9000Hz", "Hz", "range"]),
    ("rms=0.1Hz", ["0.1Hz", "not a number"]),
])
def test_bad_settings_are_one_line(recording, tmp_path, capsys, setting, expected):
    out = tmp_path / "out.wav"
    out.write_bytes(b"an earlier take")
    _one_line(capsys, _args(recording, out, "--set", setting), "--set", *expected)
    assert out.read_bytes() == b"an earlier take"


def test_a_setting_given_twice_is_refused(recording, tmp_path, capsys):
    _one_line(capsys, _args(recording, tmp_path / "o.wav", "--set", "centroid=0.2",
                            "--set", "centroid=0.8"), "centroid", "twice")


def test_a_failed_write_leaves_the_old_output(recording, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out.wav"
    out.write_bytes(b"an earlier take")
    real_write = soundfile.write

    def full_disk(path, *args, **kwargs):
        real_write(path, *args, **kwargs)        # a part is written, then the disk fills
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(soundfile, "write", full_disk)
    _one_line(capsys, _args(recording, out), "out.wav", "cannot write", "No space left")
    assert out.read_bytes() == b"an earlier take"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]  # no temporary file


def test_a_bar_only_for_long_files_on_a_terminal(monkeypatch):
    assert tc._progress_bar(5.0) is None
    monkeypatch.setattr(tc.sys.stderr, "isatty", lambda: False, raising=False)
    assert tc._progress_bar(600.0) is None
    monkeypatch.setattr(tc.sys.stderr, "isatty", lambda: True, raising=False)
    bar = tc._progress_bar(600.0)
    assert bar is not None
    report = tc._reporter(bar)
    report(1, 100)
    report(1, 100)
    assert (bar.n, bar.total) == (2, 100)
    bar.close()
