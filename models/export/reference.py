"""RAVE-v1-sized reference decoder for `neurorave bench`'s side-by-side ratio.

Built with our own nets and random weights (speed does not depend on training): 16
PQMF bands, 2048 samples per latent frame at 48 kHz, capacity 64 (RAVE v1's default
decoder: ratios 4, 4, 4, 2, 1024 channels at the latent rate, residual stacks with
dilations 1, 3, 9). No PCA (identity); 16 exposed latent dims of 128, the 5 paper
attributes with a unit range. Decoder only.
"""
from __future__ import annotations

import os
from typing import Any, Dict

import numpy as np
import torch
from neurorave.models.config import PAPER_ATTRIBUTES
from neurorave.models.export.bundle_writer import NOISE, decoder_signals, write_bundle
from neurorave.models.export.onnx_step import OPSET, export_graph
from neurorave.models.export.pca import identity_pca
from neurorave.models.export.wrappers import ExportDecoder
from neurorave.models.nets.decoder import Decoder
from neurorave.models.runtime.bundle import BUNDLE_FORMAT, FORMAT_VERSION

REFERENCES = {
    "rave-v1": {"sample_rate": 48000, "bands": 16, "ratios": [4, 4, 4, 2], "capacity": 64,
                "latent_size": 128, "exposed": 16},
}


def export_reference(name: str, out: str, frames_per_call: int = 1) -> str:
    spec = REFERENCES[name]
    torch.manual_seed(0)
    n_attr = len(PAPER_ATTRIBUTES)
    net = Decoder(spec["bands"], spec["ratios"], spec["capacity"], spec["latent_size"], n_attr)
    pca = identity_pca(spec["latent_size"])
    decoder = ExportDecoder(net, np.zeros(n_attr), np.ones(n_attr), pca, spec["exposed"])

    def build(folder: str) -> Dict[str, Any]:
        d_in, d_out = decoder_signals(net, spec["exposed"], n_attr, frames_per_call)
        graph = export_graph(decoder, d_in, d_out, os.path.join(folder, "decoder.onnx"),
                             frames_per_call)
        graph["noise"] = [dict(NOISE)]
        return {
            "format": BUNDLE_FORMAT, "format_version": FORMAT_VERSION,
            "name": f"reference-{name}", "sample_rate": spec["sample_rate"],
            "frame_size": net.hop, "latent_size": spec["exposed"],
            "latent_full_size": spec["latent_size"], "opset": OPSET,
            "attributes": [{"name": n, "min": 0.0, "max": 1.0, "unit": ""}
                           for n in PAPER_ATTRIBUTES],
            "graphs": {"decoder": graph},
            "reference": {"name": name, "weights": "random (seed 0)", **spec},
        }

    return write_bundle(out, build)
