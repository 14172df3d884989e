"""Reading a model bundle: the only contract between learning and playing (DESIGN.md).

A bundle is a folder holding `model.json` and the ONNX graphs it names. Loading
checks everything it can before a graph is run: the format version, every field's
type, each file's presence and sha256, each graph's ONNX opset. It never executes
code from the bundle (JSON and ONNX only). Every problem is one `BundleError`
naming the bundle and the fault.

model.json, format version 1:
    {
      "format": "neurorave-bundle", "format_version": 1,
      "name": "gm-notes-small",
      "sample_rate": 16000,            # Hz, the model's own rate
      "frame_size": 1024,              # samples per latent frame
      "latent_size": 8,                # latent dimensions exposed (after PCA/fidelity)
      "opset": 13,
      "attributes": [{"name": "rms", "min": 0.0, "max": 0.5, "unit": ""}, ...],
      "graphs": {
        "decoder": {
          "file": "decoder.onnx", "sha256": "...", "frames_per_call": 1,
          "inputs":  [{"name": "z", "shape": [1, 8, 1]}, ...],     # float32
          "outputs": [{"name": "audio", "shape": [1, 1, 1024]}],
          "states":  [{"input": "cache_in_0", "output": "cache_out_0",
                       "shape": [1, 32, 2]}]
        },
        "encoder": {...}, "prior": {...}               # optional
      }
    }
`inputs` and `outputs` list the graph's signal tensors; `states` pair each cache
input with the output that carries it to the next call (zeros after a reset).

Optional fields (written by `neurorave export`; older bundles without them still load):
    top level:
      "latent_full_size": 16,          # the network's latent dims before PCA/fidelity
      "fidelity": 0.95,                # share of latent variance the exposed dims keep
      "pca": {"mean": [L], "components": [[L] x L], "explained_variance_ratio": [L],
              "frames": N, "fitted_on": "..."}
                                       # baked into the graphs already: the decoder's `z`
                                       # holds PCA coordinates (dim 0 = first component;
                                       # unexposed ones are 0 = the training mean) and the
                                       # encoder returns them. For information and tools.
      "source": {...}, "reference": {...}   # provenance, free-form
    attributes: min/max are the RAW descriptor range of the training set, in `unit`;
      the decoder graph normalises raw values itself (device feeds raw values).
    per graph:
      "macs_per_frame": 123456,        # multiply-accumulates per latent frame, counted
                                       # in torch at export (convolutions, matmuls)
      "noise": [{"input": "noise", "distribution": "uniform", "low": -1.0, "high": 1.0}]
                                       # inputs the player fills with fresh white noise
                                       # every call (the engine's `fill_noise`); the
                                       # graph itself stays deterministic
      states[i].module: the network module the cache belongs to (information)
"""
import hashlib
import json
import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from neurorave.common.errors import UserError
from neurorave.models.runtime.onnx_info import OnnxInfoError, read_opsets

BUNDLE_FORMAT = "neurorave-bundle"
FORMAT_VERSION = 1
# The opsets our engines accept: TensorRT 8.2 and JetPack 4.6's ONNX Runtime want 13.
SUPPORTED_OPSETS = (13,)
GRAPH_NAMES = ("decoder", "encoder", "prior")
# Decoder calls run unheard at the start of a phrase (firmware/voice.py, VoiceModel.render)
# when a call is one frame (a call of several frames would skip all of them): a bundle may
# name its own in "prior": {"lead": N}.
DEFAULT_PHRASE_LEAD = 1
MAX_PHRASE_LEAD = 4
# What a gate starts by default (firmware/controls.py GATE_MODES): "prior": {"gate": ...}.
PRIOR_GATE_MODES = ("phrase", "hit", "note")


class BundleError(UserError):
    """A bundle that cannot be played; the message names the bundle and the fault."""


class TensorSpec:
    """One named float32 tensor of fixed shape."""

    def __init__(self, name: str, shape: Tuple[int, ...]):
        self.name = name
        self.shape = shape

    def __repr__(self) -> str:
        return f"TensorSpec({self.name!r}, {self.shape})"


class StateSpec:
    """A streaming cache: fed as `input`, returned as `output`, zeros after reset."""

    def __init__(self, input: str, output: str, shape: Tuple[int, ...]):
        self.input = input
        self.output = output
        self.shape = shape

    def __repr__(self) -> str:
        return f"StateSpec({self.input!r} -> {self.output!r}, {self.shape})"


class NoiseSpec:
    """An input the player fills with white noise, uniform in [low, high), every call."""

    def __init__(self, input: str, low: float, high: float):
        self.input = input
        self.low = low
        self.high = high

    def __repr__(self) -> str:
        return f"NoiseSpec({self.input!r}, uniform {self.low}..{self.high})"


class GraphSpec:
    def __init__(self, role: str, path: str, sha256: str, frames_per_call: int,
                 inputs: List[TensorSpec], outputs: List[TensorSpec], states: List[StateSpec],
                 noise: Optional[List[NoiseSpec]] = None, macs_per_frame: Optional[int] = None):
        self.role = role
        self.path = path
        self.sha256 = sha256
        self.frames_per_call = frames_per_call
        self.inputs = inputs
        self.outputs = outputs
        self.states = states
        self.noise = noise or []
        self.macs_per_frame = macs_per_frame


class Attribute:
    def __init__(self, name: str, minimum: float, maximum: float, unit: str):
        self.name = name
        self.min = minimum
        self.max = maximum
        self.unit = unit

    def __repr__(self) -> str:
        return f"Attribute({self.name!r}, {self.min}..{self.max} {self.unit})"


class Bundle:
    def __init__(self, path: str, meta: Dict[str, Any], graphs: Dict[str, GraphSpec],
                 attributes: List[Attribute]):
        self.path = path
        self.meta = meta
        self.name: str = meta["name"]
        self.sample_rate: int = meta["sample_rate"]
        self.frame_size: int = meta["frame_size"]
        self.latent_size: int = meta["latent_size"]
        self.opset: int = meta["opset"]
        self.graphs = graphs
        self.attributes = attributes

    @property
    def has_prior(self) -> bool:
        return "prior" in self.graphs

    @property
    def latency_ms(self) -> float:
        """The model's own share of control-to-sound latency: one latent frame."""
        return 1000.0 * self.frame_size / self.sample_rate

    def __repr__(self) -> str:
        return (f"Bundle({self.name!r}, {self.sample_rate} Hz, {self.frame_size} samples/frame, "
                f"graphs={sorted(self.graphs)})")


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _Reader:
    """Typed access to model.json fields, each failure naming the field."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, message: str) -> BundleError:
        return BundleError(f"{self.where}: {message}")

    def get(self, obj: Dict[str, Any], key: str, kind: Any, ctx: str = "") -> Any:
        field = f"{ctx}{key}"
        if not isinstance(obj, dict) or key not in obj:
            raise self.fail(f"model.json lacks '{field}'")
        value = obj[key]
        # bool is an int in Python; a flag is never a valid number here.
        if isinstance(value, bool) or not isinstance(value, kind):
            raise self.fail(f"model.json '{field}' has the wrong type ({type(value).__name__})")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(f"model.json '{field}' is not a finite number")
        return value

    def positive_int(self, obj: Dict[str, Any], key: str, ctx: str = "") -> int:
        value = self.get(obj, key, int, ctx)
        if value <= 0:
            raise self.fail(f"model.json '{ctx}{key}' must be positive, not {value}")
        return int(value)

    def numbers(self, values: Any, field: str, at_least: int = 0) -> List[float]:
        """`values` (model.json's `field`) as a list of finite numbers."""
        if not isinstance(values, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for v in values):
            raise self.fail(f"model.json '{field}' must be a list of finite numbers")
        if len(values) < at_least:
            raise self.fail(f"model.json '{field}' has {len(values)} values; the "
                            f"{at_least} exposed latent dims need one each")
        return [float(v) for v in values]

    def shape(self, obj: Dict[str, Any], ctx: str) -> Tuple[int, ...]:
        dims = self.get(obj, "shape", list, ctx)
        if not dims or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                               for d in dims):
            raise self.fail(f"model.json '{ctx}shape' must list positive integers, not {dims}")
        return tuple(dims)


def _read_tensors(reader: _Reader, graph: Dict[str, Any], key: str,
                  ctx: str) -> List[TensorSpec]:
    specs = []
    for i, item in enumerate(reader.get(graph, key, list, ctx)):
        where = f"{ctx}{key}[{i}]."
        specs.append(TensorSpec(reader.get(item, "name", str, where), reader.shape(item, where)))
    return specs


def _read_graph(reader: _Reader, folder: str, role: str, graph: Dict[str, Any]) -> GraphSpec:
    ctx = f"graphs.{role}."
    file_name = reader.get(graph, "file", str, ctx)
    if os.path.isabs(file_name) or os.path.normpath(file_name).startswith(".."):
        raise reader.fail(f"model.json '{ctx}file' must stay inside the bundle: {file_name}")
    states = []
    for i, item in enumerate(reader.get(graph, "states", list, ctx)):
        where = f"{ctx}states[{i}]."
        states.append(StateSpec(reader.get(item, "input", str, where),
                                reader.get(item, "output", str, where),
                                reader.shape(item, where)))
    inputs = _read_tensors(reader, graph, "inputs", ctx)
    noise = []
    noise_items = reader.get(graph, "noise", list, ctx) if "noise" in graph else []
    for i, item in enumerate(noise_items):
        where = f"{ctx}noise[{i}]."
        name = reader.get(item, "input", str, where)
        if name not in [t.name for t in inputs]:
            raise reader.fail(f"model.json '{where}input' names no input of the graph: {name}")
        if reader.get(item, "distribution", str, where) != "uniform":
            raise reader.fail(f"model.json '{where}distribution' must be 'uniform'")
        low = float(reader.get(item, "low", (int, float), where))
        high = float(reader.get(item, "high", (int, float), where))
        if not low < high:
            raise reader.fail(f"model.json '{where}' range is empty ({low} .. {high})")
        noise.append(NoiseSpec(name, low, high))
    macs = reader.positive_int(graph, "macs_per_frame", ctx) if "macs_per_frame" in graph \
        else None
    return GraphSpec(
        role=role,
        path=os.path.join(folder, file_name),
        sha256=reader.get(graph, "sha256", str, ctx).lower(),
        frames_per_call=reader.positive_int(graph, "frames_per_call", ctx),
        inputs=inputs,
        outputs=_read_tensors(reader, graph, "outputs", ctx),
        states=states,
        noise=noise,
        macs_per_frame=macs,
    )


def _check_file(reader: _Reader, spec: GraphSpec, expected_opsets: Sequence[int]) -> None:
    name = os.path.basename(spec.path)
    if not os.path.isfile(spec.path):
        raise reader.fail(f"{spec.role} graph file {name} is missing")
    if sha256_of(spec.path) != spec.sha256:
        raise reader.fail(f"{name} does not match its sha256 in model.json "
                          "(the file is damaged or was changed)")
    try:
        opsets = read_opsets(spec.path)
    except OnnxInfoError as exc:
        raise reader.fail(f"{name} is not a readable ONNX model ({exc})") from None
    default = opsets.get("", opsets.get("ai.onnx"))
    if default not in expected_opsets:
        raise reader.fail(f"{name} uses ONNX opset {default}; this player supports "
                          f"{', '.join(str(o) for o in expected_opsets)}")


def _check_pca(reader: _Reader, meta: Dict[str, Any], latent_size: int) -> None:
    """The player reads the spread of each exposed coordinate from `pca`."""
    if "pca" not in meta:
        return
    pca = reader.get(meta, "pca", dict)
    for key in ("mean", "std", "explained_variance_ratio"):
        if key in pca:
            reader.numbers(pca[key], f"pca.{key}", at_least=latent_size)
    rows = reader.get(pca, "components", list, "pca.") if "components" in pca else []
    for i, row in enumerate(rows):
        reader.numbers(row, f"pca.components[{i}]")


def _check_decoder(reader: _Reader, meta: Dict[str, Any], decoder: GraphSpec,
                   n_attributes: int) -> None:
    """The top-level sizes must be those of the decoder's tensors: the player sizes its
    buffers from one and the engine from the other."""
    frames = decoder.frames_per_call
    inputs = {t.name: t.shape for t in decoder.inputs}
    for name, field, size in (("z", "'latent_size'", meta["latent_size"]),
                              ("attributes", "'attributes'", n_attributes)):
        shape = inputs.get(name)
        if shape is None:  # a graph without it is the engine's to report (names in the ONNX)
            continue
        if len(shape) != 3 or shape[1] != size:
            raise reader.fail(f"model.json {field} says {size} but the decoder's input "
                              f"'{name}' has shape {list(shape)}")
        if shape[2] != frames:
            raise reader.fail(f"model.json 'graphs.decoder.frames_per_call' is {frames} but "
                              f"the decoder's input '{name}' has shape {list(shape)}")
    audio = decoder.outputs[0].shape if decoder.outputs else None
    if audio is not None and math.prod(audio) != meta["frame_size"] * frames:
        raise reader.fail(f"model.json 'frame_size' {meta['frame_size']} x frames_per_call "
                          f"{frames} does not match the decoder's output "
                          f"'{decoder.outputs[0].name}' {list(audio)}")


def _check_prior(reader: _Reader, meta: Dict[str, Any], prior: Optional[GraphSpec],
                 n_attributes: int) -> None:
    """What the prior generator reads: `prior` in model.json and the prior graph's tensors."""
    info = reader.get(meta, "prior", dict) if "prior" in meta else {}
    if prior is None:
        return
    inputs = {t.name: t.shape for t in prior.inputs}
    outputs = {t.name: t.shape for t in prior.outputs}
    for name, names, kind in (("prev", inputs, "input"), ("pinned", inputs, "input"),
                              ("mask", inputs, "input"), ("temperature", inputs, "input"),
                              ("x", outputs, "output")):
        if name not in names:
            raise reader.fail(f"model.json 'graphs.prior.{kind}s' has no '{name}'")
    dims = reader.positive_int(info, "dims", "prior.") if "dims" in info \
        else inputs["prev"][-1]
    full = reader.positive_int(meta, "latent_full_size") if "latent_full_size" in meta \
        else meta["latent_size"]
    latent_dims = reader.positive_int(info, "latent_dims", "prior.") if "latent_dims" in info \
        else full
    if dims != latent_dims + n_attributes:
        raise reader.fail(f"model.json 'prior.dims' is {dims}, not {latent_dims} latent "
                          f"+ {n_attributes} attributes")
    if latent_dims < meta["latent_size"]:
        raise reader.fail(f"model.json 'prior.latent_dims' is {latent_dims}, fewer than "
                          f"'latent_size' ({meta['latent_size']})")
    for name, shape in (("prev", inputs["prev"]), ("pinned", inputs["pinned"]),
                        ("mask", inputs["mask"]), ("x", outputs["x"])):
        if shape != (1, dims):
            raise reader.fail(f"model.json: the prior's '{name}' has shape {list(shape)}, "
                              f"not [1, {dims}] (prior.dims)")
    if inputs["temperature"] != (1, 1):
        raise reader.fail(f"model.json: the prior's 'temperature' has shape "
                          f"{list(inputs['temperature'])}, not [1, 1]")
    if "lead" in info:
        lead = reader.get(info, "lead", int, "prior.")
        if not 0 <= lead <= MAX_PHRASE_LEAD:
            raise reader.fail(f"model.json 'prior.lead' must be 0 to {MAX_PHRASE_LEAD}, "
                              f"not {lead}")
    if "gate" in info and info["gate"] not in PRIOR_GATE_MODES:
        raise reader.fail(f"model.json 'prior.gate' must be one of "
                          f"{', '.join(PRIOR_GATE_MODES)}, not {info['gate']!r}")
    if "start" in info:
        start = reader.numbers(info["start"], "prior.start")
        if len(start) != dims:
            raise reader.fail(f"model.json 'prior.start' has {len(start)} values, not "
                              f"{dims} (prior.dims)")


def load_bundle(path: str, verify_files: bool = True) -> Bundle:
    """Read and check a bundle folder; raise BundleError naming the first fault."""
    where = f"bundle {path}"
    reader = _Reader(where)
    if not os.path.isdir(path):
        raise reader.fail("no such folder")
    meta_path = os.path.join(path, "model.json")
    if not os.path.isfile(meta_path):
        raise reader.fail("model.json is missing")
    try:
        with open(meta_path, encoding="utf-8") as handle:
            meta = json.load(handle)
    except (ValueError, UnicodeDecodeError) as exc:
        raise reader.fail(f"model.json is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise reader.fail("model.json must hold a JSON object")
    if meta.get("format") != BUNDLE_FORMAT:
        raise reader.fail(f"model.json 'format' must be '{BUNDLE_FORMAT}'")
    version = reader.get(meta, "format_version", int)
    if version != FORMAT_VERSION:
        raise reader.fail(f"format version {version} is not supported "
                          f"(this player reads version {FORMAT_VERSION})")
    reader.get(meta, "name", str)
    for key in ("sample_rate", "frame_size", "latent_size", "opset"):
        reader.positive_int(meta, key)
    if meta["opset"] not in SUPPORTED_OPSETS:
        raise reader.fail(f"opset {meta['opset']} is not supported "
                          f"(supported: {', '.join(str(o) for o in SUPPORTED_OPSETS)})")

    attributes = []
    for i, item in enumerate(reader.get(meta, "attributes", list)):
        ctx = f"attributes[{i}]."
        low = float(reader.get(item, "min", (int, float), ctx))
        high = float(reader.get(item, "max", (int, float), ctx))
        if not low < high:
            raise reader.fail(f"model.json '{ctx}' range is empty ({low} .. {high})")
        attributes.append(Attribute(reader.get(item, "name", str, ctx), low, high,
                                    reader.get(item, "unit", str, ctx)))

    graphs_meta = reader.get(meta, "graphs", dict)
    unknown = sorted(set(graphs_meta) - set(GRAPH_NAMES))
    if unknown:
        raise reader.fail(f"model.json names unknown graph(s): {', '.join(unknown)}")
    if "decoder" not in graphs_meta:
        raise reader.fail("model.json has no decoder graph")
    graphs = {role: _read_graph(reader, path, role, graph)
              for role, graph in graphs_meta.items()}
    _check_decoder(reader, meta, graphs["decoder"], len(attributes))
    _check_pca(reader, meta, meta["latent_size"])
    _check_prior(reader, meta, graphs.get("prior"), len(attributes))
    if verify_files:
        for spec in graphs.values():
            _check_file(reader, spec, (meta["opset"],))
    return Bundle(path, meta, graphs, attributes)


def find_bundles(folder: str, verify_files: bool = True
                 ) -> List[Tuple[str, Optional[Bundle], Optional[str]]]:
    """Every sub-folder with a model.json: (path, bundle or None, error or None), by name."""
    found: List[Tuple[str, Optional[Bundle], Optional[str]]] = []
    if not os.path.isdir(folder):
        return found
    for entry in sorted(os.listdir(folder)):
        candidate = os.path.join(folder, entry)
        if not os.path.isfile(os.path.join(candidate, "model.json")):
            continue
        try:
            found.append((candidate, load_bundle(candidate, verify_files=verify_files), None))
        except BundleError as exc:
            found.append((candidate, None, str(exc)))
    return found
