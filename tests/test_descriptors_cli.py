"""`neurorave describe`: summary, JSON curves, the figure, and one-line errors."""
import json

import numpy as np
import pytest
import soundfile
from neurorave.firmware import cli
from neurorave.models import descriptors


@pytest.fixture
def wav(tmp_path):
    sr = 22050
    t = np.arange(int(1.5 * sr)) / sr
    left = 0.4 * np.sin(2 * np.pi * 220 * t)
    path = tmp_path / "tone.wav"
    soundfile.write(path, np.stack([left, left], axis=1), sr)
    return path


def test_summary_names_every_descriptor(wav, capsys):
    assert cli.main(["describe", str(wav)]) == 0
    out = capsys.readouterr().out
    assert "22050 Hz" in out
    for name in descriptors.ATTRIBUTES + ("voicing",):
        assert any(line.split()[0] == name for line in out.splitlines()[1:] if line.strip())


def test_json_holds_the_curves(wav, capsys):
    assert cli.main(["describe", str(wav), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["sr"] == 22050 and data["hop"] == 256
    n = int(1.5 * 22050) // 256
    assert set(data["curves"]) == set(descriptors.ATTRIBUTES) | {"voicing"}
    assert all(len(v) == n for v in data["curves"].values())
    assert np.median(data["curves"]["f0"]) == pytest.approx(220, rel=0.005)
    assert data["units"]["sharpness"] == "acum"


def test_plot_writes_a_png(wav, tmp_path, capsys):
    out = tmp_path / "fig.png"
    assert cli.main(["describe", str(wav), "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000


@pytest.mark.parametrize("content", [None, b"", b"RIFF garbage that is not a wave file"])
def test_bad_files_are_one_line(tmp_path, capsys, content):
    path = tmp_path / "bad.wav"
    if content is not None:
        path.write_bytes(content)
    assert cli.main(["describe", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("neurorave describe: ")


def test_a_figure_format_matplotlib_lacks_is_one_line_before_any_work(wav, tmp_path, capsys):
    out = tmp_path / "fig.xyz"
    assert cli.main(["describe", str(wav), "--plot", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fig.xyz: cannot draw a .xyz figure" in err and "png" in err
    assert not out.exists()


def test_folders_are_called_folders(wav, tmp_path, capsys):
    assert cli.main(["describe", str(tmp_path)]) == 2
    assert "is a folder; give an audio file" in capsys.readouterr().err
    assert cli.main(["describe", str(wav), "--plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a folder; give a file name for the figure" in err
