"""Dataset store: layout, memory mapping, stats, deterministic leak-free split, errors."""
import json

import numpy as np
import pytest
from neurorave.common.errors import UserError
from neurorave.models import datastore, descriptors

SR = 16000


def make_chunks(n, length=8192, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(length) / SR
    freqs = rng.uniform(100, 2000, n)
    return (0.3 * np.sin(2 * np.pi * freqs[:, None] * t)
            + 0.05 * rng.standard_normal((n, length))).astype(np.float32)


def test_write_and_open_round_trip(tmp_path):
    chunks = make_chunks(30)
    sources = [f"file{i // 3}.wav" for i in range(30)]  # three pieces per source file
    metas = [{"index": i} for i in range(30)]
    path = datastore.write_dataset(tmp_path / "ds", chunks, SR, sources, hop=256, metas=metas)
    ds = datastore.open_dataset(path)
    assert (ds.sr, ds.hop, ds.chunk) == (SR, 256, 8192)
    assert ds.attributes == descriptors.ATTRIBUTES
    manifest = json.loads((path / "manifest.json").read_text())
    assert sum(manifest["counts"].values()) == 30
    assert manifest["duration_s"]["total"] == pytest.approx(30 * 8192 / SR)
    seen = {}
    for name in datastore.SPLITS:
        split = ds.split(name)
        assert len(split) == manifest["counts"][name] > 0
        assert isinstance(split.audio, np.memmap) and isinstance(split.curves, np.memmap)
        assert split.audio.dtype == np.float32 and split.audio.shape == (len(split), 8192)
        assert split.curves.shape == (len(split), 6, 8192 // 256)
        for k, item in enumerate(split.items):
            i = item["index"]
            seen[i] = name
            np.testing.assert_array_equal(split.audio[k], chunks[i])
            expected = descriptors.stack(descriptors.compute(chunks[i], SR, 256))
            np.testing.assert_allclose(split.curves[k], expected, rtol=1e-6)
            assert item["source"] == sources[i]
    assert sorted(seen) == list(range(30))
    # No source file has pieces in two splits.
    for s in set(sources):
        assert len({seen[i] for i in range(30) if sources[i] == s}) == 1


def test_stats_are_on_the_train_split(tmp_path):
    chunks = make_chunks(40, seed=1)
    path = datastore.write_dataset(tmp_path / "ds", chunks, SR, [f"s{i}" for i in range(40)])
    ds = datastore.open_dataset(path)
    train = np.asarray(ds.split("train").curves, dtype=np.float64)
    for i, a in enumerate(ds.attributes):
        st = ds.stats[a]
        values = train[:, i].reshape(-1)
        assert st["min"] == pytest.approx(values.min(), rel=1e-6)
        assert st["max"] == pytest.approx(values.max(), rel=1e-6)
        assert st["mean"] == pytest.approx(values.mean(), rel=1e-6)
        assert st["std"] == pytest.approx(values.std(), rel=1e-4, abs=1e-9)
        bins = np.array(st["bins"])
        assert len(bins) == 17 and bins[0] == st["min"] and bins[-1] == st["max"]
        assert np.all(np.diff(bins) >= 0)
        # Each of the 16 bins holds about 1/16 of the train frames.
        counts = np.histogram(values, bins=bins)[0]
        if np.all(np.diff(bins) > 0):
            assert counts.min() > 0.5 * len(values) / 16


def test_split_is_deterministic_and_depends_only_on_the_source():
    ids = [f"gm-notes/p{p}-n{n}" for p in range(10) for n in range(40, 80)]
    first = datastore.assign_splits(ids)
    again = datastore.assign_splits(list(reversed(ids)))
    assert first == again
    shares = {s: sum(v == s for v in first.values()) / len(ids) for s in datastore.SPLITS}
    assert 0.74 < shares["train"] < 0.86 and 0.06 < shares["valid"] < 0.14
    # Large sets never need the small-set fallback: every id keeps its hash split,
    # so adding sources never moves an existing one.
    assert all(first[i] == datastore.split_of(i) for i in ids)


def test_tiny_sets_still_get_every_split():
    for prefix in ("x", "y", "speaker-"):
        for n in range(1, 12):
            split = datastore.assign_splits([f"{prefix}{i}" for i in range(n)])
            assert set(split.values()) == set(datastore.SPLITS[:min(n, 3)]), (prefix, n)


def test_bad_folders_are_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="no such dataset"):
        datastore.open_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="manifest.json is missing"):
        datastore.open_dataset(tmp_path / "empty")
    path = datastore.write_dataset(tmp_path / "ds", make_chunks(6), SR, list("abcdef"))
    (path / "train" / "audio.npy").write_bytes(b"garbage")
    with pytest.raises(UserError, match="audio.npy"):
        datastore.open_dataset(path).split("train")
    with pytest.raises(UserError, match="unknown split"):
        datastore.open_dataset(path).split("dev")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a NeuroRave dataset"):
        datastore.write_dataset(tmp_path / "other", make_chunks(3), SR, list("abc"))


def test_writer_resumes_after_an_interruption(tmp_path):
    chunks = make_chunks(8, seed=2)
    params = {"source": "test"}
    w = datastore.StoreWriter(tmp_path / "ds", SR, 8192, params=params)
    for i in range(4):
        w.add("train", chunks[i], f"s{i}")
    w.checkpoint("first-half")
    w.add("train", chunks[4], "s4")  # added but never checkpointed: lost in the "crash"
    del w
    w = datastore.StoreWriter(tmp_path / "ds", SR, 8192, params=params)
    assert w.done_units == ["first-half"] and w.counts["train"] == 4
    for i in range(4, 8):
        w.add("train", chunks[i], f"s{i}")
    w.finish()
    split = datastore.open_dataset(tmp_path / "ds").split("train")
    np.testing.assert_array_equal(np.asarray(split.audio), chunks)
    assert [it["source"] for it in split.items] == [f"s{i}" for i in range(8)]


def test_non_finite_samples_are_stored_as_zero(tmp_path):
    chunks = make_chunks(3)
    chunks[1, 100:200] = np.nan
    chunks[2, 5] = np.inf
    path = datastore.write_dataset(tmp_path / "ds", chunks, SR, ["a", "b", "c"])
    ds = datastore.open_dataset(path)
    for name in datastore.SPLITS:
        split = ds.split(name)
        assert np.isfinite(split.audio).all() and np.isfinite(split.curves).all()
