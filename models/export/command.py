"""`neurorave export RUN --out BUNDLE [--fidelity F] [--frames-per-call N] [--data DATA]`
and `neurorave export --reference rave-v1 --out BUNDLE`.

A run becomes a bundle (format in `neurorave.models.runtime.bundle`): the decoder and
the encoder as stateless ONNX opset-13 graphs at batch 1, attribute normalisation and
the latent PCA (fitted here on the run's training split) baked in. The decoder's noise
is an explicit input, white and uniform in [-1, 1], declared under the graph's `noise`
key: the device draws it (the engine has `fill_noise`), so a graph stays a pure
function that TensorRT and every ONNX Runtime run alike, and a reset can replay it.
The bundle is written to a temporary folder and moved into place when complete.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch
from neurorave.common.errors import UserError
from neurorave.models.descriptors import UNITS
from neurorave.models.export.bundle_writer import NOISE, decoder_signals, write_bundle
from neurorave.models.export.onnx_step import OPSET, export_graph
from neurorave.models.export.pca import exposed_dims, fit_pca, latent_means
from neurorave.models.export.wrappers import ExportDecoder, ExportEncoder
from neurorave.models.runtime.bundle import (
    BUNDLE_FORMAT,
    FORMAT_VERSION,
    MAX_PHRASE_LEAD,
    load_bundle,
)

DEFAULT_FIDELITY = 0.95  # RAVE's default
def _pca_meta(pca: Dict[str, np.ndarray], frames: int, source: str) -> Dict[str, Any]:
    return {"mean": [float(v) for v in pca["mean"]],
            "components": [[float(v) for v in row] for row in pca["components"]],
            "explained_variance_ratio": [float(v) for v in pca["explained_variance_ratio"]],
            "std": [float(v) for v in pca["std"]],
            "frames": frames, "fitted_on": source}


def export_run(run_path: str, out: str, fidelity: float = DEFAULT_FIDELITY,
               frames_per_call: int = 1, data: Optional[str] = None,
               weights: Optional[str] = None, prior: Optional[str] = None,
               gate: Optional[str] = None, lead: Optional[int] = None) -> str:
    from neurorave.models.datastore import open_dataset
    from neurorave.models.training.run import DATASET_FILE, load_run

    if frames_per_call < 1:
        raise UserError(f"--frames-per-call must be >= 1, got {frames_per_call}")
    if gate is not None and prior is None:
        raise UserError("--gate says what gate 1 starts in the prior: give --prior too")
    if lead is not None and prior is None:
        raise UserError("--lead is the prior's phrase lead: give --prior too")
    if lead is not None and not 0 <= lead <= MAX_PHRASE_LEAD:
        raise UserError(f"--lead must be 0 to {MAX_PHRASE_LEAD}, got {lead}")
    if not 0.0 < fidelity <= 1.0:
        raise UserError(f"--fidelity must be in (0, 1], got {fidelity}")
    run = load_run(run_path, weights)
    cfg, m = run.config, run.config.model
    if data is None:
        try:
            data = json.loads((run.path / DATASET_FILE).read_text(encoding="utf-8"))["path"]
        except (OSError, ValueError, KeyError):
            raise UserError(f"{run.path}: {DATASET_FILE} does not name the training data; "
                            "pass --data DATA") from None
    train = open_dataset(data).split("train")
    torch.manual_seed(0)
    latents = latent_means(run.module.encoder, train.audio, m.hop)
    pca = fit_pca(latents)
    exposed = exposed_dims(pca["explained_variance_ratio"], fidelity)
    names = list(m.attributes)
    lo = [run.stats["attributes"][n]["min"] for n in names]
    hi = [run.stats["attributes"][n]["max"] for n in names]
    decoder = ExportDecoder(run.module.decoder, lo, hi, pca, exposed, names, m.log_rms)
    encoder = ExportEncoder(run.module.encoder, pca, exposed)
    prior_parts = None
    if prior is not None:
        from neurorave.models.prior.export import check_matches, load_prior

        prior_parts = load_prior(prior)
        check_matches(prior_parts[0], pca, names, prior)

    def build(folder: str) -> Dict[str, Any]:
        d_in, d_out = decoder_signals(run.module.decoder, exposed, len(names), frames_per_call)
        graphs = {"decoder": export_graph(decoder, d_in, d_out,
                                          os.path.join(folder, "decoder.onnx"), frames_per_call)}
        graphs["decoder"]["noise"] = [dict(NOISE)]
        hop = frames_per_call * m.hop
        graphs["encoder"] = export_graph(encoder, [("audio", (1, 1, hop))],
                                         [("z", (1, exposed, frames_per_call))],
                                         os.path.join(folder, "encoder.onnx"), frames_per_call)
        extra: Dict[str, Any] = {}
        if prior_parts is not None:
            from neurorave.models.prior.export import export_prior, prior_meta

            graphs["prior"] = export_prior(prior_parts[0], prior_parts[1],
                                           os.path.join(folder, "prior.onnx"))
            extra["prior"] = prior_meta(prior_parts[0], str(prior))
            if gate is not None:
                extra["prior"]["gate"] = gate
            if lead is not None:
                extra["prior"]["lead"] = lead
        return {
            "format": BUNDLE_FORMAT, "format_version": FORMAT_VERSION,
            "name": Path(out).name, "sample_rate": m.sample_rate, "frame_size": m.hop,
            "latent_size": exposed, "latent_full_size": m.latent_size, "opset": OPSET,
            "fidelity": fidelity,
            "attributes": [{"name": n, "min": float(a), "max": float(b), "unit": UNITS.get(n, "")}
                           for n, a, b in zip(names, lo, hi)],
            "pca": _pca_meta(pca, len(latents), f"train split of {data}"),
            "graphs": graphs,
            "source": {"run": str(run.path.resolve()), "weights": run.weights.name,
                       "config": cfg.name, "variant": cfg.variant},
            **extra,
        }

    return write_bundle(out, build)


def main(args) -> int:
    from neurorave.models.export.reference import REFERENCES, export_reference

    reference = getattr(args, "reference", None)
    if reference is not None:
        if args.run is not None:
            raise UserError("give either a RUN folder or --reference, not both")
        if reference not in REFERENCES:
            raise UserError(f"unknown reference '{reference}' (known: {', '.join(REFERENCES)})")
        path = export_reference(reference, args.out, getattr(args, "frames_per_call", 1) or 1)
    else:
        if args.run is None:
            raise UserError("name the training RUN folder to export (or --reference rave-v1)")
        fidelity = DEFAULT_FIDELITY if args.fidelity is None else args.fidelity
        path = export_run(args.run, args.out, fidelity, args.frames_per_call, args.data,
                          prior=getattr(args, "prior", None), gate=getattr(args, "gate", None),
                          lead=getattr(args, "lead", None))
    bundle = load_bundle(path)
    print(f"wrote {path}: {', '.join(sorted(bundle.graphs))}; latent {bundle.latent_size} dims, "
          f"{bundle.frame_size} samples/frame at {bundle.sample_rate} Hz")
    return 0
