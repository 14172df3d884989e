"""Bad bundles give one clear error naming the problem; good ones load."""
import os

import pytest
from neurorave.models.runtime.bundle import BundleError, find_bundles, load_bundle
from neurorave.models.runtime.engines import open_engine
from neurorave.models.runtime.onnx_info import OnnxInfoError, read_opsets
from toy_bundle import rehash, rewrite_meta, write_toy_bundle


@pytest.fixture
def bundle_dir(tmp_path):
    return write_toy_bundle(str(tmp_path / "toy"))


def test_good_bundle_loads(bundle_dir):
    bundle = load_bundle(bundle_dir)
    assert bundle.name == "toy"
    assert bundle.sample_rate == 16000 and bundle.frame_size == 64
    assert [a.name for a in bundle.attributes] == ["attr0", "attr1"]
    assert bundle.graphs["decoder"].states[0].shape == (1, 6, 2)
    assert not bundle.has_prior
    assert bundle.latency_ms == pytest.approx(4.0)


def test_read_opsets(bundle_dir):
    assert read_opsets(os.path.join(bundle_dir, "decoder.onnx"))[""] == 13


def _expect(bundle_dir, *words, engine=False):
    with pytest.raises(BundleError) as info:
        bundle = load_bundle(bundle_dir)
        if engine:
            open_engine(bundle, "ort-cpu")
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message


def test_missing_folder(tmp_path):
    _expect(str(tmp_path / "nope"), "no such folder")


def test_missing_model_json(bundle_dir):
    os.remove(os.path.join(bundle_dir, "model.json"))
    _expect(bundle_dir, "model.json is missing")


def test_model_json_not_json(bundle_dir):
    with open(os.path.join(bundle_dir, "model.json"), "w") as handle:
        handle.write("{ not json")
    _expect(bundle_dir, "not valid JSON")


def test_missing_graph_file(bundle_dir):
    os.remove(os.path.join(bundle_dir, "decoder.onnx"))
    _expect(bundle_dir, "decoder.onnx is missing")


def test_hash_mismatch(bundle_dir):
    with open(os.path.join(bundle_dir, "decoder.onnx"), "ab") as handle:
        handle.write(b"\0")
    _expect(bundle_dir, "decoder.onnx", "sha256")


def test_unknown_format_version(bundle_dir):
    rewrite_meta(bundle_dir, lambda m: m.__setitem__("format_version", 99))
    _expect(bundle_dir, "format version 99")


@pytest.mark.parametrize("field,value,words", [
    ("sample_rate", "fast", ["sample_rate", "wrong type"]),
    ("frame_size", 0, ["frame_size", "positive"]),
    ("latent_size", True, ["latent_size", "wrong type"]),
    ("opset", 17, ["opset 17"]),
])
def test_bad_fields(bundle_dir, field, value, words):
    rewrite_meta(bundle_dir, lambda m: m.__setitem__(field, value))
    _expect(bundle_dir, *words)


def test_missing_field(bundle_dir):
    rewrite_meta(bundle_dir, lambda m: m.pop("attributes"))
    _expect(bundle_dir, "lacks 'attributes'")


def test_graph_file_outside_bundle(bundle_dir):
    rewrite_meta(bundle_dir, lambda m: m["graphs"]["decoder"].__setitem__("file", "../x.onnx"))
    _expect(bundle_dir, "inside the bundle")


def test_wrong_opset_in_file(tmp_path):
    folder = write_toy_bundle(str(tmp_path / "b"), opset=17)
    rewrite_meta(folder, lambda m: m.__setitem__("opset", 13))
    _expect(folder, "opset 17")


def test_truncated_onnx(bundle_dir):
    path = os.path.join(bundle_dir, "decoder.onnx")
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])
    rehash(bundle_dir)
    with pytest.raises(OnnxInfoError):
        read_opsets(path)
    _expect(bundle_dir, "decoder.onnx", "not a readable ONNX model")


def test_nan_weights(tmp_path):
    folder = write_toy_bundle(str(tmp_path / "b"), poison_nan=True)
    _expect(folder, "NaN", "weights are broken", engine=True)


def test_wrong_shapes(bundle_dir):
    rewrite_meta(bundle_dir, lambda m: m["graphs"]["decoder"]["inputs"][0].__setitem__(
        "shape", [1, 5, 1]))
    _expect(bundle_dir, "'z'", "[1, 5, 1]", engine=True)


def test_unnamed_tensor(bundle_dir):
    rewrite_meta(bundle_dir, lambda m: m["graphs"]["decoder"]["inputs"][0].__setitem__(
        "name", "latent"))
    _expect(bundle_dir, "no input 'latent'", engine=True)


def test_find_bundles_reports_each(tmp_path):
    write_toy_bundle(str(tmp_path / "a-good"))
    bad = write_toy_bundle(str(tmp_path / "b-bad"))
    os.remove(os.path.join(bad, "decoder.onnx"))
    os.makedirs(tmp_path / "c-not-a-bundle")
    found = find_bundles(str(tmp_path))
    assert [os.path.basename(p) for p, _, _ in found] == ["a-good", "b-bad"]
    assert found[0][1] is not None and found[0][2] is None
    assert found[1][1] is None and "missing" in found[1][2]


def test_bundle_json_never_executes_code(bundle_dir, tmp_path):
    # A bundle is data only: a Python file beside model.json is never imported.
    marker = tmp_path / "ran"
    with open(os.path.join(bundle_dir, "model.py"), "w") as handle:
        handle.write(f"open({str(marker)!r}, 'w').write('x')\n")
    load_bundle(bundle_dir)
    assert not marker.exists()


def _set(path, value):
    """A change to model.json at a dotted path ("pca.std"), for rewrite_meta."""
    def change(meta):
        *parents, last = path.split(".")
        node = meta
        for key in parents:
            node = node.setdefault(key, {}) if isinstance(node, dict) else node[int(key)]
        node[last] = value
    return change


@pytest.mark.parametrize("path, value, words", [
    # Fields the player reads beyond the basics: each wrong one is named, never a
    # traceback or a Python internal ("'str' object has no attribute 'get'").
    ("pca", "oops", ["bundle ", "model.json 'pca'", "wrong type"]),
    ("pca.std", ["a", 1.0, 1.0, 1.0], ["'pca.std'", "finite numbers"]),
    ("pca.std", [1.0, 1.0], ["'pca.std' has 2 values", "4 exposed latent dims"]),
    ("pca.explained_variance_ratio", [0.5, float("nan"), 0.2, 0.1], ["'pca.explained"]),
    ("pca.components", [[1.0, 0.0], "x"], ["'pca.components[1]'"]),
    ("latent_size", 99, ["'latent_size' says 99", "'z' has shape [1, 4, 1]"]),
    ("graphs.decoder.frames_per_call", 5, ["frames_per_call' is 5", "[1, 4, 1]"]),
    ("frame_size", 128, ["'frame_size' 128", "'audio' [1, 1, 64]"]),
])
def test_fields_the_player_reads_are_checked(bundle_dir, path, value, words):
    rewrite_meta(bundle_dir, _set(path, value))
    message = _expect(bundle_dir, *words)
    assert bundle_dir in message


def _with_prior(dims=6, latent_dims=4, width=6, **prior):
    """A prior graph in model.json as export writes it (the file itself is not read);
    `width`: the graph's frame size, which `dims` must match."""
    def change(meta):
        vec = [1, width]
        meta["graphs"]["prior"] = {
            "file": "prior.onnx", "sha256": "0" * 64, "frames_per_call": 1,
            "inputs": [{"name": n, "shape": vec} for n in ("prev", "pinned", "mask")]
            + [{"name": "temperature", "shape": [1, 1]}],
            "outputs": [{"name": "x", "shape": vec}], "states": []}
        meta["prior"] = {"dims": dims, "latent_dims": latent_dims, "start": [0.0] * width,
                         **prior}
    return change


def test_a_consistent_prior_loads(bundle_dir):
    rewrite_meta(bundle_dir, _with_prior())
    assert load_bundle(bundle_dir, verify_files=False).has_prior
    rewrite_meta(bundle_dir, _with_prior(lead=0))  # a bundle may name its phrase lead
    assert load_bundle(bundle_dir, verify_files=False).meta["prior"]["lead"] == 0


@pytest.mark.parametrize("change, words", [
    (_with_prior(dims="x"), ["'prior.dims' has the wrong type"]),
    (_with_prior(start=[1, 2, 3]), ["'prior.start' has 3 values, not 6"]),
    (_with_prior(start="zeros"), ["'prior.start' must be a list of finite numbers"]),
    (_with_prior(dims=7, latent_dims=5), ["the prior's 'prev' has shape [1, 6], not [1, 7]"]),
    (_with_prior(dims=6, latent_dims=5), ["'prior.dims' is 6, not 5 latent + 2 attributes"]),
    (_with_prior(dims=4, latent_dims=2, width=4), ["'prior.latent_dims' is 2, fewer than"]),
    (_with_prior(lead=-1), ["'prior.lead' must be 0 to 4, not -1"]),
    (_with_prior(lead=1.5), ["'prior.lead' has the wrong type"]),
])
def test_prior_fields_are_checked(bundle_dir, change, words):
    rewrite_meta(bundle_dir, change)
    with pytest.raises(BundleError) as info:
        load_bundle(bundle_dir, verify_files=False)
    for word in words:
        assert word in str(info.value), str(info.value)
