"""A small but real streaming bundle for runtime tests, built with onnx.helper.

The decoder is a causal FIR over latent frames: each call concatenates a two-frame
cache with the new frame (z and attributes stacked), maps the three frames to one
block of audio through a fixed matrix, and returns the last two frames as the next
cache. `offline_decode` computes the same thing over a whole sequence in numpy, so
the engine's frame-by-frame state handling can be checked against it.
"""
import hashlib
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HISTORY = 2  # cached frames


def _weights(latent, attrs, frame, seed):
    rng = np.random.default_rng(seed)
    channels = latent + attrs
    return (rng.standard_normal(((HISTORY + 1) * channels, frame)) * 0.1).astype(np.float32)


def decoder_model(latent=4, attrs=2, frame=64, opset=13, seed=0, poison_nan=False):
    channels = latent + attrs
    weight = _weights(latent, attrs, frame, seed)
    if poison_nan:
        weight[0, 0] = np.nan
    nodes = [
        helper.make_node("Concat", ["z", "attributes"], ["frame_in"], axis=1),
        helper.make_node("Concat", ["cache_in", "frame_in"], ["window"], axis=2),
        helper.make_node("Slice", ["window", "starts", "ends", "axes"], ["cache_out"]),
        # [1, C, 3] -> [1, 3, C] -> [1, 3C]: frames oldest first, channels inside.
        helper.make_node("Transpose", ["window"], ["window_t"], perm=[0, 2, 1]),
        helper.make_node("Reshape", ["window_t", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "weight"], ["block"]),
        helper.make_node("Reshape", ["block", "audio_shape"], ["audio"]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([1], np.int64), "starts"),
        numpy_helper.from_array(np.array([HISTORY + 1], np.int64), "ends"),
        numpy_helper.from_array(np.array([2], np.int64), "axes"),
        numpy_helper.from_array(np.array([1, (HISTORY + 1) * channels], np.int64), "flat_shape"),
        numpy_helper.from_array(np.array([1, 1, frame], np.int64), "audio_shape"),
        numpy_helper.from_array(weight, "weight"),
    ]
    graph = helper.make_graph(
        nodes, "toy_decoder",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, latent, 1]),
         helper.make_tensor_value_info("attributes", TensorProto.FLOAT, [1, attrs, 1]),
         helper.make_tensor_value_info("cache_in", TensorProto.FLOAT, [1, channels, HISTORY])],
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, 1, frame]),
         helper.make_tensor_value_info("cache_out", TensorProto.FLOAT, [1, channels, HISTORY])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7  # readable by old runtimes (JetPack 4.6's onnxruntime)
    onnx.checker.check_model(model)
    return model


def offline_decode(z, attributes, frame=64, seed=0):
    """z [L, T], attributes [A, T] -> audio [T * frame], the whole sequence at once."""
    latent, frames = z.shape
    attrs = attributes.shape[0]
    weight = _weights(latent, attrs, frame, seed)
    stacked = np.concatenate([z, attributes], axis=0).astype(np.float32)
    padded = np.concatenate([np.zeros((latent + attrs, HISTORY), np.float32), stacked], axis=1)
    blocks = []
    for t in range(frames):
        window = padded[:, t:t + HISTORY + 1]          # [C, 3]
        blocks.append(window.T.reshape(-1) @ weight)
    return np.concatenate(blocks)


def sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def write_toy_bundle(folder, latent=4, attrs=2, frame=64, sample_rate=16000, opset=13,
                     poison_nan=False, name="toy"):
    os.makedirs(folder, exist_ok=True)
    model = decoder_model(latent, attrs, frame, opset, poison_nan=poison_nan)
    path = os.path.join(folder, "decoder.onnx")
    onnx.save(model, path)
    channels = latent + attrs
    meta = {
        "format": "neurorave-bundle",
        "format_version": 1,
        "name": name,
        "sample_rate": sample_rate,
        "frame_size": frame,
        "latent_size": latent,
        "opset": opset,
        "attributes": [{"name": f"attr{i}", "min": 0.0, "max": 1.0, "unit": ""}
                       for i in range(attrs)],
        "graphs": {
            "decoder": {
                "file": "decoder.onnx",
                "sha256": sha256(path),
                "frames_per_call": 1,
                "inputs": [{"name": "z", "shape": [1, latent, 1]},
                           {"name": "attributes", "shape": [1, attrs, 1]}],
                "outputs": [{"name": "audio", "shape": [1, 1, frame]}],
                "states": [{"input": "cache_in", "output": "cache_out",
                            "shape": [1, channels, HISTORY]}],
            }
        },
    }
    with open(os.path.join(folder, "model.json"), "w") as handle:
        json.dump(meta, handle, indent=2)
    return folder


def rewrite_meta(folder, change):
    """Apply `change(meta)` to a bundle's model.json."""
    path = os.path.join(folder, "model.json")
    with open(path) as handle:
        meta = json.load(handle)
    change(meta)
    with open(path, "w") as handle:
        json.dump(meta, handle)


def rehash(folder):
    rewrite_meta(folder, lambda m: m["graphs"]["decoder"].__setitem__(
        "sha256", sha256(os.path.join(folder, "decoder.onnx"))))


def oscillator_model(frame=64, sample_rate=16000, follow_f0=True, gain=1.0, opset=13,
                     nan_below_zero=False):
    """A sine at attribute 1 (f0, Hz) with amplitude attribute 0 (rms): an ideal pitched
    voice. The phase is the streaming state. `follow_f0=False` plays 440 Hz whatever f0
    asks; `gain` scales the level (0: silent, large: clipping); `nan_below_zero` breaks
    down (NaN) whenever latent 0 goes negative, which silence at load does not show."""
    two_pi = float(2 * np.pi)
    nodes = [
        helper.make_node("Slice", ["attributes", "a0", "a1", "axis1"], ["rms"]),
        helper.make_node("Slice", ["attributes", "a1", "a2", "axis1"], ["f0_in"]),
        helper.make_node("Mul", ["f0_in" if follow_f0 else "fixed_f0", "rad_per_hz"], ["inc"]),
        helper.make_node("Mul", ["inc", "ramp"], ["advance"]),
        helper.make_node("Add", ["phase_in", "advance"], ["phase"]),
        helper.make_node("Sin", ["phase"], ["sine"]),
        helper.make_node("Mul", ["rms", "peak_per_rms"], ["amplitude"]),
        helper.make_node("Mul", ["sine", "amplitude"], ["clean" if nan_below_zero else "audio"]),
        helper.make_node("Mul", ["inc", "frame_len"], ["frame_advance"]),
        helper.make_node("Add", ["phase_in", "frame_advance"], ["phase_end"]),
        helper.make_node("Mod", ["phase_end", "two_pi"], ["phase_out"], fmod=1),
    ]
    if nan_below_zero:  # audio + sqrt(z0) * 0: NaN exactly when z0 < 0
        nodes += [helper.make_node("Slice", ["z", "a0", "a1", "axis1"], ["z0"]),
                  helper.make_node("Sqrt", ["z0"], ["root"]),
                  helper.make_node("Mul", ["root", "zero"], ["poison"]),
                  helper.make_node("Add", ["clean", "poison"], ["audio"])]
    f32 = np.float32
    initializers = [
        numpy_helper.from_array(np.array([0], np.int64), "a0"),
        numpy_helper.from_array(np.array([1], np.int64), "a1"),
        numpy_helper.from_array(np.array([2], np.int64), "a2"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.full((1, 1, 1), 440.0, f32), "fixed_f0"),
        numpy_helper.from_array(np.full((1, 1, 1), two_pi / sample_rate, f32), "rad_per_hz"),
        numpy_helper.from_array(np.arange(1, frame + 1, dtype=f32).reshape(1, 1, frame), "ramp"),
        numpy_helper.from_array(np.full((1, 1, 1), np.sqrt(2) * gain, f32), "peak_per_rms"),
        numpy_helper.from_array(np.full((1, 1, 1), frame, f32), "frame_len"),
        numpy_helper.from_array(np.full((1, 1, 1), two_pi, f32), "two_pi"),
    ]
    if nan_below_zero:
        initializers.append(numpy_helper.from_array(np.zeros((1, 1, 1), f32), "zero"))
    graph = helper.make_graph(
        nodes, "oscillator",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2, 1]),
         helper.make_tensor_value_info("attributes", TensorProto.FLOAT, [1, 2, 1]),
         helper.make_tensor_value_info("phase_in", TensorProto.FLOAT, [1, 1, 1])],
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, 1, frame]),
         helper.make_tensor_value_info("phase_out", TensorProto.FLOAT, [1, 1, 1])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


def write_oscillator_bundle(folder, follow_f0=True, gain=1.0, frame=64, sample_rate=16000,
                            name="oscillator", nan_below_zero=False):
    """A bundle whose voice is `oscillator_model`: attributes rms (0..0.5) and f0 (Hz)."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "decoder.onnx")
    onnx.save(oscillator_model(frame, sample_rate, follow_f0, gain,
                               nan_below_zero=nan_below_zero), path)
    meta = {
        "format": "neurorave-bundle", "format_version": 1, "name": name,
        "sample_rate": sample_rate, "frame_size": frame, "latent_size": 2, "opset": 13,
        "attributes": [{"name": "rms", "min": 0.0, "max": 0.5, "unit": ""},
                       {"name": "f0", "min": 50.0, "max": 2000.0, "unit": "Hz"}],
        "graphs": {"decoder": {
            "file": "decoder.onnx", "sha256": sha256(path), "frames_per_call": 1,
            "inputs": [{"name": "z", "shape": [1, 2, 1]},
                       {"name": "attributes", "shape": [1, 2, 1]}],
            "outputs": [{"name": "audio", "shape": [1, 1, frame]}],
            "states": [{"input": "phase_in", "output": "phase_out", "shape": [1, 1, 1]}],
        }},
    }
    with open(os.path.join(folder, "model.json"), "w") as handle:
        json.dump(meta, handle, indent=2)
    return folder
