"""The prior as a stateless ONNX graph for the bundle (`neurorave export RUN --prior P`).

One call is one frame. Inputs, in the bundle's raw units (PCA coordinates, then raw
attribute values): `prev` (the previous frame; at a phrase start the training mean,
model.json's `prior.start`), `pinned` and `mask` (what the controls hold), and
`temperature`; the uniform noise `u_mix`, `u1`, `u2` is drawn by the engine (declared
as noise in model.json); the GRU state is `h_in` -> `h_out`. Output `x`: the whole
frame, pinned dimensions exactly as given. Standardisation is baked in.
"""
from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np
import onnx
import torch
from neurorave.common.errors import UserError, first_line
from neurorave.models.prior.net import PriorNet, sample_from
from neurorave.models.prior.train import PRIOR_FILE
from neurorave.models.runtime.bundle import sha256_of
from torch import nn

OPSET = 13
IR_VERSION = 7
NOISE_INPUTS = ("u_mix", "u1", "u2")


class ExportPrior(nn.Module):
    def __init__(self, net: PriorNet, mean: np.ndarray, std: np.ndarray):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32)[None])
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32)[None])

    def forward(self, prev, pinned, mask, temperature, u_mix, u1, u2, h_in):
        p = ((prev - self.mean) / self.std)[:, None]
        q = ((pinned - self.mean) / self.std)[:, None]
        logits, mu, log_sigma, h_out = self.net(p, q, mask[:, None], h_in)
        x = sample_from(logits[:, 0], mu[:, 0], log_sigma[:, 0], temperature, u_mix, u1, u2)
        raw = x * self.std + self.mean
        return mask * pinned + (1 - mask) * raw, h_out


def load_prior(path: str) -> Tuple[Dict[str, Any], PriorNet]:
    folder = Path(path)
    meta_path, weights = folder / PRIOR_FILE, folder / "weights" / "last.pt"
    if not meta_path.exists() or not weights.exists():
        raise UserError(f"{path}: not a trained prior ({PRIOR_FILE} or weights/last.pt missing)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: bad JSON, or not UTF-8 at all
        raise UserError(f"{meta_path}: unreadable ({exc}); train the prior again") from None
    try:
        p = meta["config"]["prior"]
        net = PriorNet(int(meta["dims"]), int(p["hidden"]), int(p["layers"]), int(p["mixtures"]))
        # What export reads later, checked now: a gap is then one line, not a traceback.
        list(meta["attributes"])
        int(meta["latent_size"])
        for table, keys in (("pca", ("mean", "components")), ("standardiser", ("mean", "std"))):
            for key in keys:
                np.asarray(meta[table][key], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        what = f"lacks {exc}" if isinstance(exc, KeyError) else f"has a bad value ({exc})"
        raise UserError(f"{meta_path}: not a prior's description: it {what}") from None
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch's loader fails in many ways; each means: damaged
        raise UserError(f"{weights}: damaged or truncated ({first_line(exc, 160)})") from None
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError):
        raise UserError(f"{weights}: does not fit the network {PRIOR_FILE} describes (weights "
                        "of another prior?)") from None
    return meta, net.eval()


def check_matches(meta: Dict[str, Any], pca: Dict[str, np.ndarray], attributes, path: str
                  ) -> None:
    """A prior plays only with the latent space and attributes it was trained on."""
    if list(meta["attributes"]) != list(attributes):
        raise UserError(f"{path}: the prior models attributes {meta['attributes']}, the run "
                        f"has {list(attributes)}")
    theirs = np.asarray(meta["pca"]["components"])
    if theirs.shape != pca["components"].shape or not np.allclose(
            theirs, pca["components"], atol=1e-4) or not np.allclose(
            meta["pca"]["mean"], pca["mean"], atol=1e-4):
        raise UserError(f"{path}: the prior was trained on another latent space (its PCA "
                        "differs: another run, other weights or other data)")


def export_prior(meta: Dict[str, Any], net: PriorNet, path: str) -> Dict[str, Any]:
    """Write prior.onnx; return its model.json graph entry."""
    d, layers, hidden = int(meta["dims"]), net.layers, net.hidden
    wrapper = ExportPrior(net, np.asarray(meta["standardiser"]["mean"]),
                          np.asarray(meta["standardiser"]["std"])).eval()
    inputs = [("prev", (1, d)), ("pinned", (1, d)), ("mask", (1, d)), ("temperature", (1, 1)),
              ("u_mix", (1, 1)), ("u1", (1, d)), ("u2", (1, d))]
    example = tuple(torch.full(s, 0.5) for _, s in inputs) + (torch.zeros(layers, 1, hidden),)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, example, buffer, opset_version=OPSET,
                          input_names=[n for n, _ in inputs] + ["h_in"],
                          output_names=["x", "h_out"], dynamo=False, do_constant_folding=True)
    model = onnx.load_from_string(buffer.getvalue())
    model.ir_version = IR_VERSION
    model.producer_name = "neurorave"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    # The GRU dominates: 3 gates of (input + hidden) x hidden per layer, and the head.
    macs = layers * 3 * (2 * hidden) * hidden + 3 * d * hidden + hidden * net.head.out_features
    return {
        "file": os.path.basename(path), "sha256": sha256_of(path), "frames_per_call": 1,
        "inputs": [{"name": n, "shape": list(s)} for n, s in inputs],
        "outputs": [{"name": "x", "shape": [1, d]}],
        "states": [{"input": "h_in", "output": "h_out", "shape": [layers, 1, hidden],
                    "module": "prior.gru"}],
        "noise": [{"input": n, "distribution": "uniform", "low": 0.0, "high": 1.0}
                  for n in NOISE_INPUTS],
        "macs_per_frame": int(macs),
    }


def prior_meta(meta: Dict[str, Any], path: str) -> Dict[str, Any]:
    """What model.json says of the prior beyond its graph."""
    return {"dims": int(meta["dims"]), "latent_dims": int(meta["latent_size"]),
            "attributes": list(meta["attributes"]), "source": str(Path(path).resolve()),
            "start": [float(v) for v in meta["standardiser"]["mean"]],
            "metrics": meta.get("metrics", {})}
