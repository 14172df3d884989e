"""Damaged or wrong inputs across the learning side: each is one line naming the file and
what is wrong, with a non-zero exit, never a traceback (no training here: every check
fires before any)."""
import json
import shutil

import numpy as np
import pytest
import soundfile
from neurorave.common.errors import UserError
from neurorave.firmware import cli
from neurorave.models.config import load_config, save_config

SR = 16000


def _one_line(capsys, argv, *words, status=2):
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own refusals (a bad --seed) end this way
        code = exc.code
    assert code == status
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _config(tmp_path, text, name="cfg.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --- configurations ---------------------------------------------------------------

@pytest.mark.parametrize("section", ["training", "fader", "discriminator"])
@pytest.mark.parametrize("value, why", [("-1e-4", "must be >= 0, got -0.0001"),
                                        ("nan", "must be a finite number, got nan"),
                                        ("inf", "must be a finite number, got inf")])
def test_every_learning_rate_is_checked(tmp_path, section, value, why):
    # torch's optimisers refuse them only once training has started: a traceback.
    path = _config(tmp_path, f'extends = "tiny"\n[{section}]\nlearning_rate = {value}\n')
    with pytest.raises(UserError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: '{section}.learning_rate' {why}"


def test_a_config_that_is_not_utf8_text(tmp_path, capsys):
    path = tmp_path / "binary.toml"
    path.write_bytes(b'extends = "tiny"\n\xab\xcd')
    _one_line(capsys, ["train", "--config", str(path), "--data", str(tmp_path), "--out",
                       str(tmp_path / "run")], "binary.toml: not a text file", "not UTF-8")
    assert not (tmp_path / "run").exists()


def test_an_empty_config_is_refused_not_trained(tmp_path):
    # An empty file would train the dataclass defaults for a million steps and exit 0.
    with pytest.raises(UserError, match=r"cfg\.toml: the configuration is empty; start it "
                                        r"with extends = \"NAME\" \(one of base, "):
        load_config(_config(tmp_path, "# nothing yet\n"))
    assert load_config(_config(tmp_path, 'name = "mine"\n')).name == "mine"  # one key will do


def test_a_wrong_parent_names_the_file_that_asks_for_it(tmp_path):
    path = _config(tmp_path, 'extends = "tinyy"\n')
    with pytest.raises(UserError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: 'extends': no configuration named 'tinyy'")


def test_a_folder_is_not_a_configuration(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    with pytest.raises(UserError, match="configs: is a folder; built in: "):
        load_config("configs")
    (tmp_path / "tiny").mkdir()
    assert load_config("tiny").name  # a folder never hides a built-in name


# --- training and export ------------------------------------------------------------

@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 cut short"])
def test_resume_from_a_damaged_checkpoint(tmp_path, capsys, content):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    save_config(load_config("tiny"), run / "config.json")
    (run / "checkpoints" / "last.ckpt").write_bytes(content)
    _one_line(capsys, ["train", "--config", "tiny", "--data", str(tmp_path / "no-data"),
                       "--out", str(run), "--resume"],
              "checkpoints/last.ckpt: damaged or truncated checkpoint")


@pytest.fixture
def prior_folder(tmp_path):
    folder = tmp_path / "prior"
    (folder / "weights").mkdir(parents=True)
    (folder / "weights" / "last.pt").write_bytes(b"")
    return folder


@pytest.mark.parametrize("text, words", [
    ("{bad", ["prior.json: unreadable (Expecting property name"]),
    ('{"dims": 5}', ["prior.json: not a prior's description: it lacks 'config'"]),
    ('{"dims": "x", "config": {"prior": {"hidden": 4, "layers": 1, "mixtures": 2}}}',
     ["prior.json: not a prior's description: it has a bad value"]),
])
def test_a_damaged_prior_is_named(prior_folder, text, words):
    from neurorave.models.prior.export import load_prior

    (prior_folder / "prior.json").write_text(text)
    with pytest.raises(UserError) as caught:
        load_prior(str(prior_folder))
    for word in words:
        assert word in str(caught.value)


def test_damaged_prior_weights_are_named(prior_folder):
    from neurorave.models.prior.export import load_prior

    (prior_folder / "prior.json").write_text(json.dumps({
        "dims": 3, "attributes": ["rms"], "latent_size": 2,
        "config": {"prior": {"hidden": 4, "layers": 1, "mixtures": 2}},
        "pca": {"mean": [0, 0], "components": [[1, 0], [0, 1]]},
        "standardiser": {"mean": [0, 0, 0], "std": [1, 1, 1]}}))
    (prior_folder / "weights" / "last.pt").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(UserError, match=r"weights/last\.pt: damaged or truncated"):
        load_prior(str(prior_folder))


# --- datasets ----------------------------------------------------------------------

def test_a_dataset_folder_that_cannot_be_made(tmp_path):
    from neurorave.models import datastore

    (tmp_path / "a-file").write_text("")
    with pytest.raises(UserError, match=r"a-file/ds: cannot create the dataset folder "
                                        r"\(Not a directory\)"):
        datastore.write_dataset(tmp_path / "a-file" / "ds", np.zeros((3, 4096), np.float32),
                                SR, list("abc"))


@pytest.mark.parametrize("content, words", [
    (b'{"par', ["manifest.json: unreadable (", "damaged: delete it"]),
    (b"\xab\xcd", ["manifest.json: unreadable ("]),
    (b"[1, 2]", ["manifest.json: not a NeuroRave dataset manifest"]),
])
def test_an_unreadable_manifest_is_not_called_another_dataset(tmp_path, capsys, content,
                                                              words):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "manifest.json").write_bytes(content)
    (tmp_path / "src").mkdir()
    line = _one_line(capsys, ["dataset", "build", "--source", str(tmp_path / "src"), "--out",
                              str(out)], *words)
    assert "different dataset" not in line


def test_a_skipped_file_says_why(tmp_path):
    from neurorave.models.dataset_sources.user_folder import read_file

    noise = tmp_path / "noise.wav"
    noise.write_bytes(np.random.default_rng(0).bytes(3000))
    result = read_file(str(noise), "noise.wav", 0, 0, None, SR)
    assert result.skipped == [{"file": "noise.wav",
                               "reason": "unreadable: Format not recognised"}]


@pytest.mark.parametrize("content, words", [
    (b"\xda\x14" * 2500, "not a SoundFont 2 file"),
    (b"RIFF\x00\x00\x10\x00sfbkLIST", "truncated (its header gives 1048584 bytes, the file "
                                      "has 16)"),
])
def test_a_damaged_soundfont_is_refused(tmp_path, monkeypatch, content, words):
    # FluidSynth quietly renders with its default soundfont (or none) and exits 0.
    from neurorave.models.dataset_sources import fluid

    sf2 = tmp_path / "bad.sf2"
    sf2.write_bytes(content)
    monkeypatch.setenv(fluid.SOUNDFONT_ENV, str(sf2))
    with pytest.raises(UserError, match=f"soundfont {sf2}: {words}".replace("(", r"\(")
                       .replace(")", r"\)")):
        fluid.check_soundfont(sf2)


@pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="needs fluidsynth")
def test_fluidsynth_failing_to_load_the_soundfont_is_an_error(tmp_path, monkeypatch):
    # Past the header check (a damaged body): FluidSynth's own words are the only sign.
    from neurorave.models.dataset_sources import fluid
    from neurorave.models.dataset_sources.midi import MidiTrack

    sf2 = tmp_path / "body.sf2"
    sf2.write_bytes(b"RIFF\x08\x00\x00\x00sfbkjunk")
    monkeypatch.setenv(fluid.SOUNDFONT_ENV, str(sf2))
    track = MidiTrack()
    track.note(0.0, 0.2, 0, 60, 100)
    with pytest.raises(UserError, match="fluidsynth could not load the soundfont"):
        fluid.render(track, 0.5, SR)


def test_a_good_wav_still_reads(tmp_path):
    from neurorave.models.dataset_sources.user_folder import read_file

    path = tmp_path / "tone.wav"
    soundfile.write(path, 0.5 * np.sin(np.arange(3 * SR) * 0.05), SR)
    result = read_file(str(path), "tone.wav", 0, 0, None, SR)
    assert result.pieces and not result.skipped


# --- render and run -----------------------------------------------------------------

@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from toy_bundle import write_toy_bundle

    root = tmp_path_factory.mktemp("render")
    (root / "p.toml").write_text("seconds = 1\n[gate.1]\nclock = 2.0\n")
    return write_toy_bundle(str(root / "toy"), name="toy"), str(root / "p.toml")


@pytest.mark.parametrize("extra, words", [
    (["--seconds", "inf"], ["--seconds", "at most 3600"]),
    (["--seconds", "1e9"], ["--seconds", "at most 3600"]),
    (["--seed", "-5"], ["--seed", "must be 0 or more"]),
    (["--seed", "x"], ["--seed", "not a whole number"]),
])
def test_render_refuses_bad_numbers(toy, tmp_path, capsys, extra, words):
    bundle, patch = toy
    _one_line(capsys, ["render", bundle, "--patch", patch, "--out", str(tmp_path / "o.wav"),
                       *extra], *words)


@pytest.mark.parametrize("out, words", [("o.mp4", "known extension"), ("take", "known extension"),
                                        ("dir.wav/", "is a folder"),
                                        ("missing/o.wav", "does not exist")])
def test_render_checks_where_it_writes_before_rendering(toy, tmp_path, capsys, out, words):
    bundle, patch = toy
    (tmp_path / "dir.wav").mkdir()
    _one_line(capsys, ["render", bundle, "--patch", patch, "--out", str(tmp_path / out)],
              words)
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "take").exists()


def test_a_folder_is_not_a_patch(toy, tmp_path, capsys):
    bundle, _ = toy
    for argv in (["render", bundle, "--patch", str(tmp_path), "--out", str(tmp_path / "o.wav")],
                 ["run", "--board", "sim", "--headless", "--patch", str(tmp_path)]):
        _one_line(capsys, argv, "is a folder")


def test_render_writes_other_formats_too(toy, tmp_path, capsys):
    bundle, patch = toy
    assert cli.main(["render", bundle, "--patch", patch, "--out", str(tmp_path / "o.flac")]) == 0
    audio, rate = soundfile.read(tmp_path / "o.flac")
    assert rate == 16000 and len(audio) == 16000 and np.abs(audio).max() > 0
