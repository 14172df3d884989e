"""One streaming step of a network -> a stateless ONNX opset-13 graph and its model.json entry.

`StreamingStep` (nets/streaming.py) turns the network's caches into inputs and outputs;
tracing it at batch 1 and a fixed number of frames per call gives fixed shapes, which
TensorRT and JetPack's ONNX Runtime want. Multiply-accumulates are counted in torch
(convolutions and matrix products, `torch.utils.flop_counter`) on the same step.
"""
from __future__ import annotations

import io
import os
import warnings
from typing import Any, Dict, List, Sequence, Tuple

import onnx
import torch
from neurorave.models.nets.streaming import StreamingStep, cache_specs, init_caches
from neurorave.models.runtime.bundle import sha256_of
from torch.utils.flop_counter import FlopCounterMode

OPSET = 13
# IR 7 is ONNX 1.8's, the first with opset 13: the oldest runtimes (JetPack 4.6) read it.
IR_VERSION = 7

Signal = Tuple[str, Tuple[int, ...]]


def count_macs(step: torch.nn.Module, example: Sequence[torch.Tensor]) -> int:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        step(*example)
    return int(counter.get_total_flops() // 2)


def export_graph(module: torch.nn.Module, inputs: Sequence[Signal], outputs: Sequence[Signal],
                 path: str, frames_per_call: int) -> Dict[str, Any]:
    """Write `module`'s streaming step to `path`; return its model.json graph entry."""
    module = module.eval()
    specs = cache_specs(module, 1)
    step = StreamingStep(module, n_inputs=len(inputs)).eval()
    example = tuple(torch.zeros(shape) for _, shape in inputs) + tuple(init_caches(module, 1))
    in_names = [name for name, _ in inputs] + [f"cache_in_{i}" for i in range(len(specs))]
    out_names = [name for name, _ in outputs] + [f"cache_out_{i}" for i in range(len(specs))]
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about Python control flow on shapes
        torch.onnx.export(step, example, buffer, opset_version=OPSET, input_names=in_names,
                          output_names=out_names, dynamo=False, do_constant_folding=True)
    model = onnx.load_from_string(buffer.getvalue())
    model.ir_version = IR_VERSION
    model.producer_name = "neurorave"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    macs = count_macs(step, example)
    states: List[Dict[str, Any]] = [
        {"input": f"cache_in_{i}", "output": f"cache_out_{i}", "shape": list(shape),
         "module": name}
        for i, (name, shape) in enumerate(specs)]
    return {
        "file": os.path.basename(path), "sha256": sha256_of(path),
        "frames_per_call": frames_per_call,
        "inputs": [{"name": n, "shape": list(s)} for n, s in inputs],
        "outputs": [{"name": n, "shape": list(s)} for n, s in outputs],
        "states": states,
        "macs_per_frame": macs // frames_per_call,
    }
