"""`neurorave dataset build`: tiny real builds from every source (FluidSynth, espeak-ng,
a folder of files), the split without leaks, idempotence, resuming, and clear errors."""
import json

import numpy as np
import pytest
import soundfile
from neurorave.common.errors import UserError
from neurorave.firmware import cli
from neurorave.models import dataset_build, datastore, descriptors
from neurorave.models.dataset_sources import chunk_length

SR = 16000


def build(capsys, *argv):
    status = cli.main(["dataset", "build", *argv])
    return status, capsys.readouterr().err


def all_items(ds):
    return {name: ds.split(name).items for name in datastore.SPLITS}


def check_store(path, expected_chunks):
    ds = datastore.open_dataset(path)
    assert sum(len(ds.split(s)) for s in datastore.SPLITS) == expected_chunks
    sources = {}
    for name in datastore.SPLITS:
        split = ds.split(name)
        assert len(split.items) == len(split)
        for k, item in enumerate(split.items):
            sources.setdefault(item["source"], set()).add(name)
            audio = np.asarray(split.audio[k])
            assert np.isfinite(audio).all() and np.abs(audio).max() < 1.0
            assert np.abs(audio).max() > 1e-3, f"silent chunk {item}"
        if len(split):  # stored curves are the descriptors of the stored audio
            expected = descriptors.stack(descriptors.compute(split.audio[0], ds.sr, ds.hop))
            np.testing.assert_allclose(split.curves[0], expected, rtol=1e-5, atol=1e-6)
    assert all(len(s) == 1 for s in sources.values()), "a source is in two splits"
    return ds


def test_gm_notes_tiny_build(tmp_path, capsys):
    status, err = build(capsys, "--source", "gm-notes", "--out", str(tmp_path / "d"),
                        "--limit", "5")
    assert status == 0, err
    ds = check_store(tmp_path / "d", 5)
    assert ds.chunk == chunk_length(SR) == 65536
    items = [it for split in all_items(ds).values() for it in split]
    assert len({it["program"] for it in items}) >= 3  # a limit still spans programs
    for name in datastore.SPLITS:
        split = ds.split(name)
        for k, it in enumerate(split.items):
            assert {"program", "instrument", "family", "pitch", "velocity"} <= set(it)
            assert it["source"] == f"gm-notes/p{it['program']:03d}-n{it['pitch']:03d}"
            # The note sounds from the start of its chunk.
            audio = np.asarray(split.audio[k])
            assert np.sqrt(np.mean(audio[: SR * 2] ** 2)) > 1e-3
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["command"].startswith("neurorave dataset build --source gm-notes")
    assert manifest["sr"] == SR and manifest["skipped_count"] == 0


def test_gm_notes_have_the_pitch_they_claim(tmp_path):
    dataset_build.build("gm-notes", tmp_path / "d", limit=8, progress=False)
    ds = datastore.open_dataset(tmp_path / "d")
    f0_row = ds.attributes.index("f0")
    checked = 0
    for name in datastore.SPLITS:
        split = ds.split(name)
        for k, it in enumerate(split.items):
            curves = descriptors.compute(split.audio[k], ds.sr, ds.hop)
            held = slice(8, int(2.5 * SR) // ds.hop)  # within the held part of the note
            voiced = curves["voicing"][held] >= 0.9
            if voiced.mean() < 0.5:
                continue  # e.g. a very low bass note whose fundamental is weak
            f0 = split.curves[k, f0_row][held][voiced]
            cents = 1200 * np.log2(np.median(f0) / it["f0_hz"])
            assert abs(cents) < 10, (it, cents)
            checked += 1
    assert checked >= 5


def test_gm_drums_tiny_build(tmp_path, capsys):
    status, err = build(capsys, "--source", "gm-drums", "--out", str(tmp_path / "d"),
                        "--limit", "4")
    assert status == 0, err
    ds = check_store(tmp_path / "d", 4)
    for items in all_items(ds).values():
        for it in items:
            assert it["kind"] in ("hit", "pattern") and "kit_name" in it


def test_speech_digits_tiny_build_and_sample_rate(tmp_path, capsys):
    status, err = build(capsys, "--source", "speech-digits", "--out", str(tmp_path / "d"),
                        "--limit", "3", "--sr", "22050")
    assert status == 0, err
    ds = check_store(tmp_path / "d", 6)  # two chunks per speaker
    assert ds.sr == 22050 and ds.chunk == chunk_length(22050) and ds.chunk % 2048 == 0
    speakers = {}
    for name, items in all_items(ds).items():
        for it in items:
            assert len(it["digits"]) == 4
            speakers.setdefault(it["source"], set()).add(name)
    assert len(speakers) == 3 and all(len(v) == 1 for v in speakers.values())


def write_user_folder(root):
    rng = np.random.default_rng(0)
    t = np.arange(SR * 10) / SR
    music = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
             + 0.02 * rng.standard_normal(len(t)))
    (root / "sub" / "deeper").mkdir(parents=True)
    soundfile.write(root / "a.wav", music, SR)
    # 44.1 kHz stereo flac, 9 s of sound with a 5 s silence in the middle.
    t44 = np.arange(int(44100 * 4.5)) / 44100
    tone44 = 0.2 * np.sin(2 * np.pi * 330 * t44)
    gap = np.zeros(44100 * 5)
    stereo = np.stack([np.concatenate([tone44, gap, tone44])] * 2, axis=1)
    soundfile.write(root / "sub" / "b.FLAC", stereo, 44100)
    soundfile.write(root / "sub" / "deeper" / "c.ogg", music[: SR * 5], SR, format="OGG")
    soundfile.write(root / "sub" / "d.mp3", music[: SR * 6], SR, format="MP3")
    soundfile.write(root / "silent.wav", np.zeros(SR * 5), SR)
    soundfile.write(root / "empty.wav", np.zeros(0), SR)
    (root / "broken.mp3").write_bytes(b"this is not audio at all" * 10)
    (root / "notes.txt").write_text("not audio, not counted")


def test_user_folder_build(tmp_path, capsys):
    root = tmp_path / "mine"
    write_user_folder(root)
    status, err = build(capsys, "--source", str(root), "--out", str(tmp_path / "d"))
    assert status == 0, err
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    reasons = {s["file"]: s["reason"] for s in manifest["skipped"]}
    assert set(reasons) == {"silent.wav", "empty.wav", "broken.mp3"}
    assert reasons["silent.wav"] == "silent" and reasons["empty.wav"].startswith("empty")
    assert reasons["broken.mp3"].startswith("unreadable")
    assert manifest["skipped_count"] == 3
    ds = datastore.open_dataset(tmp_path / "d")
    per_file = {}
    for items in all_items(ds).values():
        for it in items:
            per_file[it["file"]] = per_file.get(it["file"], 0) + 1
    # a.wav: 10 s -> 2 full chunks + a 1.8 s rest (< half a chunk, dropped);
    # b.FLAC: 9 s of sound once the long silence is gone -> 2 chunks + 0.8 s (dropped);
    # c.ogg: 5 s -> 1 chunk + 0.9 s (dropped); d.mp3: 6 s -> 1 chunk + 1.9 s (dropped).
    assert per_file == {"a.wav": 2, "sub/b.FLAC": 2, "sub/deeper/c.ogg": 1, "sub/d.mp3": 1}
    check_store(tmp_path / "d", 6)


def test_folder_with_nothing_usable_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "nothing").mkdir()
    status, err = build(capsys, "--source", str(tmp_path / "nothing"), "--out",
                        str(tmp_path / "d"))
    assert status == 2 and err.count("\n") == 1 and "no audio files" in err
    (tmp_path / "bad").mkdir()
    soundfile.write(tmp_path / "bad" / "quiet.wav", np.zeros(SR), SR)
    status, err = build(capsys, "--source", str(tmp_path / "bad"), "--out", str(tmp_path / "e"))
    last = err.strip().splitlines()[-1]  # after the progress bar: one line
    assert status == 2 and "nothing usable" in last and "quiet.wav: silent" in last
    assert "Traceback" not in err
    status, err = build(capsys, "--source", "gm-nope", "--out", str(tmp_path / "f"))
    assert status == 2 and "not gm-notes, gm-drums, speech-digits or a folder" in err


def test_missing_soundfont_or_espeak_is_one_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NEURORAVE_SOUNDFONT", str(tmp_path / "none.sf2"))
    status, err = build(capsys, "--source", "gm-notes", "--out", str(tmp_path / "d"))
    assert status == 2 and "soundfont" in err and err.strip().count("\n") == 0
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng (nor fluidsynth) on the PATH
    status, err = build(capsys, "--source", "speech-digits", "--out", str(tmp_path / "d"))
    assert status == 2 and "espeak-ng is not installed" in err
    status, err = build(capsys, "--source", "gm-drums", "--out", str(tmp_path / "d"))
    assert status == 2 and "fluidsynth is not installed" in err


def test_building_again_is_idempotent_and_foreign_folders_are_refused(tmp_path, capsys):
    out = tmp_path / "d"
    assert build(capsys, "--source", "gm-drums", "--out", str(out), "--limit", "3")[0] == 0
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    status, err = build(capsys, "--source", "gm-drums", "--out", str(out), "--limit", "3")
    assert status == 0 and "nothing to do" in err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamp
    status, err = build(capsys, "--source", "gm-drums", "--out", str(out), "--limit", "4")
    assert status == 2 and "already holds a different dataset" in err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("precious")
    status, err = build(capsys, "--source", "gm-drums", "--out", str(tmp_path / "mine"),
                        "--limit", "2")
    assert status == 2 and "not a NeuroRave dataset" in err
    assert (tmp_path / "mine" / "keep.txt").read_text() == "precious"


def test_an_interrupted_build_resumes_to_the_same_dataset(tmp_path, monkeypatch):
    dataset_build.build("speech-digits", tmp_path / "clean", limit=3, workers=1,
                        progress=False)
    real_store = dataset_build._store
    calls = []

    def store_then_crash(*args, **kwargs):
        real_store(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(dataset_build, "_store", store_then_crash)
    with pytest.raises(KeyboardInterrupt):
        dataset_build.build("speech-digits", tmp_path / "d", limit=3, workers=1,
                            progress=False)
    with pytest.raises(UserError, match="unfinished build"):
        datastore.open_dataset(tmp_path / "d")
    monkeypatch.setattr(dataset_build, "_store", real_store)
    rendered = []
    real_run = dataset_build._run_unit
    monkeypatch.setattr(dataset_build, "_run_unit",
                        lambda job: rendered.append(job[0].key) or real_run(job))
    dataset_build.build("speech-digits", tmp_path / "d", limit=3, workers=1, progress=False)
    assert len(rendered) == 1  # only the unit that had not been stored
    a, b = datastore.open_dataset(tmp_path / "clean"), datastore.open_dataset(tmp_path / "d")
    for name in datastore.SPLITS:
        np.testing.assert_array_equal(np.asarray(a.split(name).audio),
                                      np.asarray(b.split(name).audio))
        assert a.split(name).items == b.split(name).items
    assert a.stats == b.stats


def test_the_split_is_the_same_in_every_build(tmp_path):
    dataset_build.build("gm-drums", tmp_path / "a", limit=6, progress=False)
    dataset_build.build("gm-drums", tmp_path / "b", limit=6, workers=1, progress=False)
    a, b = datastore.open_dataset(tmp_path / "a"), datastore.open_dataset(tmp_path / "b")
    assert all_items(a) == all_items(b)
    for name in datastore.SPLITS:
        np.testing.assert_array_equal(np.asarray(a.split(name).audio),
                                      np.asarray(b.split(name).audio))


def test_long_files_are_read_in_segments_of_one_source(tmp_path, monkeypatch):
    from neurorave.models.dataset_sources import user_folder

    monkeypatch.setattr(user_folder, "SEGMENT_SECONDS", 9.0)
    root = tmp_path / "long"
    root.mkdir()
    t = np.arange(SR * 30) / SR
    soundfile.write(root / "long.wav", 0.3 * np.sin(2 * np.pi * 440 * t), SR)
    soundfile.write(root / "short.wav", 0.3 * np.sin(2 * np.pi * 440 * t[: SR * 9]), SR)
    units = user_folder.units(root, SR)
    assert [u.key for u in units] == ["long.wav", "long.wav#1", "long.wav#2", "long.wav#3",
                                      "short.wav"]
    assert all(u.sources == ("long.wav",) for u in units[:4])
    dataset_build.build(str(root), tmp_path / "d", progress=False)
    ds = datastore.open_dataset(tmp_path / "d")
    found = {}
    for name, items in all_items(ds).items():
        for it in items:
            found.setdefault(it["file"], set()).add((name, it["segment"], it["piece"]))
    # 9 s segments -> 2 chunks each (+ 0.8 s dropped); the 3 s tail -> 1 (zero-padded).
    assert len(found["long.wav"]) == 7 and len({s for s, _, _ in found["long.wav"]}) == 1
    assert len(found["short.wav"]) == 2
