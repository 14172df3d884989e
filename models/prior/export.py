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
import math
import os
import warnings
from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np
import onnx
import torch
from neurorave.common.errors import UserError, first_line
from neurorave.models.prior.net import LOG_SIGMA_MAX, LOG_SIGMA_MIN, PriorNet
from neurorave.models.prior.train import PRIOR_FILE
from neurorave.models.runtime.bundle import sha256_of
from torch import nn

OPSET = 13
IR_VERSION = 7
NOISE_INPUTS = ("u_mix", "u1", "u2")


def _linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    layer.weight.data, layer.bias.data = weight.float().contiguous(), bias.float().contiguous()
    return layer


class ExportPrior(nn.Module):
    """`PriorNet` then `sample_from` for one frame at batch 1, rewritten for a small graph:
    every node costs ONNX Runtime about a microsecond a call whatever its size, and the
    prior runs once per latent frame (187 times a second at 256 samples, 48 kHz). The
    standardisation is folded into the first and last layers, tensors stay 2-D, and the
    mixture choice is matrix products with constant matrices. Same arithmetic as the
    training net up to float rounding (tests/test_prior.py holds the two together)."""

    def __init__(self, net: PriorNet, mean: np.ndarray, std: np.ndarray):
        super().__init__()
        d, k = net.dims, net.mixtures
        m = torch.tensor(mean, dtype=torch.float64)
        s = torch.tensor(std, dtype=torch.float64)
        w, b = net.embed.weight.detach().double(), net.embed.bias.detach().double()
        w_prev, w_pin, w_mask = w[:, :d], w[:, d:2 * d], w[:, 2 * d:]
        # embed([(prev-m)/s, (pinned-m)/s * mask, mask]) on [prev, pinned * mask, mask].
        self.embed = nn.Linear(3 * d, net.hidden)
        self.embed.weight.data = torch.cat([w_prev / s, w_pin / s, w_mask - w_pin * (m / s)],
                                           1).float()
        self.embed.bias.data = (b - w_prev @ (m / s)).float()
        self.gru = nn.GRU(net.hidden, net.hidden, net.layers)  # [T, B, H]: no transposes
        self.gru.load_state_dict(net.gru.state_dict())
        # The head as three layers (no slicing of one output), the means in raw units.
        hw, hb = net.head.weight.detach().double(), net.head.bias.detach().double()
        self.logits = _linear(hw[:k], hb[:k])
        self.mu = _linear((hw[k:k + k * d].reshape(k, d, -1) * s[None, :, None]
                           ).reshape(k * d, -1), (hb[k:k + k * d].reshape(k, d) * s + m
                                                  ).reshape(-1))
        self.log_sigma = _linear(hw[k + k * d:], hb[k + k * d:])
        self.k, self.d = k, d
        idx = torch.arange(k)
        # cumsum as probs @ upper; the last component closes the range (cum + 2 > u).
        self.register_buffer("upper", (idx[:, None] <= idx[None, :]).float())
        self.register_buffer("close", (idx == k - 1).float()[None] * 2.0)
        # onehot_j = above_j - above_{j-1}, as above @ first_difference.
        self.register_buffer("first_difference", (idx[:, None] == idx[None, :]).float()
                             - (idx[:, None] + 1 == idx[None, :]).float())
        # Box-Muller's -2, with the spread in raw units squared under the root.
        self.register_buffer("minus_two_var", (-2.0 * s * s).float()[None])

    def forward(self, prev, pinned, mask, temperature, u_mix, u1, u2, h_in):
        k, d = self.k, self.d
        held = pinned * mask
        e = torch.tanh(self.embed(torch.cat([prev, held, mask], -1)))  # [1, H]
        y, h_out = self.gru(e[None], h_in)
        y = y.reshape(1, -1)
        mu = self.mu(y).reshape(k, d)
        sigma = self.log_sigma(y).reshape(k, d).clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX).exp()
        probs = torch.softmax(self.logits(y) / temperature.clamp_min(1e-3), -1)
        above = (torch.matmul(probs, self.upper) + self.close > u_mix).float()
        onehot = torch.matmul(above, self.first_difference)  # [1, K]
        eps = torch.sqrt(self.minus_two_var * torch.log(u1.clamp(1e-7, 1.0))) \
            * torch.cos(2 * math.pi * u2)
        x = torch.matmul(onehot, mu) + temperature * torch.matmul(onehot, sigma) * eps
        return held + (1 - mask) * x, h_out


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
