"""The model under evaluation, behind one small interface, from a run or from a bundle.

- A training run folder (config.json + weights/): the trained networks in torch, on the
  CPU or a GPU (`device`), decoding whole chunks at once.
- A model bundle (model.json + ONNX graphs): the exported graphs in ONNX Runtime, run
  one call at a time with their streaming caches, exactly as the module plays them.

Both take and give raw descriptor values (the dataset's units): the run path normalises
with the run's statistics, a bundle's decoder graph normalises by itself. Latent codes
are the network's latent means (a bundle's are its exposed PCA coordinates).
"""
from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np
import torch
from neurorave.common.errors import UserError
from neurorave.models.descriptors_torch import compute_batch


class Synth:
    name: str
    variant: str           # "frave", "crave" or "unknown"
    kind: str              # what runs it, for the report
    sample_rate: int
    hop: int
    step: int              # samples per decoder call: audio lengths are multiples of it
    attributes: List[str]
    attr_min: np.ndarray   # raw range [A] (the normalisation the decoder uses)
    attr_max: np.ndarray

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """[N, T] -> latent means [N, L, T // hop]."""
        raise NotImplementedError

    def decode(self, z: np.ndarray, raw_curves: np.ndarray, seed: int = 0) -> np.ndarray:
        """z [N, L, F], raw attribute curves [N, A, F] -> audio [N, F * hop]."""
        raise NotImplementedError

    def describe(self, audio: np.ndarray) -> np.ndarray:
        """Raw descriptor curves [N, A, T // hop] of audio [N, T], at the model's hop."""
        device = self.torch_device
        dtype = torch.float64 if device.type == "cpu" else torch.float32
        x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).to(device)
        with torch.no_grad():
            curves = compute_batch(x, self.sample_rate, self.hop, self.attributes, dtype=dtype)
        return curves.float().cpu().numpy()

    def normalise(self, raw: np.ndarray) -> np.ndarray:
        """Raw curves [..., A, F] -> [-1, 1] by the model's own range (clipped)."""
        lo, hi = self.attr_min[:, None], self.attr_max[:, None]
        return np.clip(2 * (raw - lo) / np.maximum(hi - lo, 1e-8) - 1, -1, 1)

    def denormalise(self, norm: np.ndarray) -> np.ndarray:
        lo, hi = self.attr_min[:, None], self.attr_max[:, None]
        return lo + (norm + 1) / 2 * (hi - lo)

    torch_device = torch.device("cpu")


class RunSynth(Synth):
    """A training run's checkpoint in torch (`weights/last.pt`)."""

    def __init__(self, path: str, device: str = "cpu", batch: int = 8):
        from neurorave.models.training.run import load_run

        run = load_run(path)
        self.torch_device = torch.device(device)
        self.module = run.module.to(self.torch_device).eval()
        m = run.config.model
        self.name = Path(path).name
        self.variant = run.config.variant
        self.kind = f"checkpoint {run.weights.name} (torch, {device})"
        self.sample_rate, self.hop = m.sample_rate, m.hop
        self.step = m.hop
        self.attributes = list(m.attributes)
        self.attr_min = self.module.attr_min.double().cpu().numpy()
        self.attr_max = self.module.attr_max.double().cpu().numpy()
        self.batch = batch

    def _batches(self, n: int):
        for start in range(0, n, self.batch):
            yield slice(start, min(n, start + self.batch))

    def encode(self, audio: np.ndarray) -> np.ndarray:
        usable = (audio.shape[1] // self.hop) * self.hop
        out = []
        with torch.no_grad():
            for s in self._batches(len(audio)):
                x = torch.from_numpy(np.array(audio[s, :usable], dtype=np.float32))
                mean, _ = self.module.encoder(x.to(self.torch_device))
                out.append(mean.float().cpu().numpy())
        return np.concatenate(out)

    def decode(self, z: np.ndarray, raw_curves: np.ndarray, seed: int = 0) -> np.ndarray:
        gen = torch.Generator(device=self.torch_device)
        gen.manual_seed(seed)
        out = []
        dec = self.module.decoder
        with torch.no_grad():
            for s in self._batches(len(z)):
                zz = torch.from_numpy(np.ascontiguousarray(z[s], np.float32)).to(self.torch_device)
                raw = torch.from_numpy(np.ascontiguousarray(raw_curves[s], np.float32))
                attrs = self.module.normalise(raw.to(self.torch_device))
                shape = dec.noise_shape(zz.shape[0], zz.shape[-1])
                noise = torch.rand(shape, generator=gen, device=self.torch_device) * 2 - 1
                out.append(dec(zz, attrs, noise)[:, 0].float().cpu().numpy())
        return np.concatenate(out)


class BundleSynth(Synth):
    """A model bundle's ONNX graphs in ONNX Runtime, streamed call by call."""

    def __init__(self, path: str, device: str = "cpu"):
        from neurorave.models.runtime.bundle import load_bundle
        from neurorave.models.runtime.engines import EngineUnavailable, open_engine

        bundle = load_bundle(path)
        for role in ("encoder", "decoder"):
            if role not in bundle.graphs:
                raise UserError(f"{path}: the bundle has no {role} graph; evaluation needs both")
        kind = "ort-gpu" if device.startswith("cuda") else "ort-cpu"
        try:
            self.engine = open_engine(bundle, kind, roles=("encoder", "decoder"))
        except EngineUnavailable as exc:
            raise UserError(str(exc)) from None
        self.bundle = bundle
        self.name = bundle.name
        self.variant = str(bundle.meta.get("source", {}).get("variant", "unknown"))
        self.kind = f"bundle ({self.engine.describe()})"
        self.sample_rate, self.hop = bundle.sample_rate, bundle.frame_size
        self.step = self.hop * max(bundle.graphs["decoder"].frames_per_call,
                                   bundle.graphs["encoder"].frames_per_call)
        self.attributes = [a.name for a in bundle.attributes]
        self.attr_min = np.array([a.min for a in bundle.attributes], dtype=np.float64)
        self.attr_max = np.array([a.max for a in bundle.attributes], dtype=np.float64)

    def encode(self, audio: np.ndarray) -> np.ndarray:
        graph = self.engine.graphs["encoder"]
        x_in = graph.inputs[graph.spec.inputs[0].name]
        z_out = graph.outputs[graph.spec.outputs[0].name]
        step = x_in.shape[-1]
        frames_per_call = step // self.hop
        calls = audio.shape[1] // step
        out = np.zeros((len(audio), z_out.shape[1], calls * frames_per_call), np.float32)
        for i, row in enumerate(audio):
            graph.reset()
            for c in range(calls):
                x_in[...] = row[c * step:(c + 1) * step].reshape(x_in.shape)
                graph.run()
                out[i, :, c * frames_per_call:(c + 1) * frames_per_call] = z_out[0]
        return out

    def decode(self, z: np.ndarray, raw_curves: np.ndarray, seed: int = 0) -> np.ndarray:
        graph = self.engine.graphs["decoder"]
        z_in, a_in = graph.inputs["z"], graph.inputs["attributes"]
        y_out = graph.outputs[graph.spec.outputs[0].name]
        fpc = z_in.shape[-1]
        calls = z.shape[-1] // fpc
        step = y_out.shape[-1]
        out = np.zeros((len(z), calls * step), np.float32)
        for i in range(len(z)):
            graph.reset()  # reseeds the engine's own noise: every item starts alike
            for c in range(calls):
                z_in[...] = z[i, :, c * fpc:(c + 1) * fpc]
                a_in[...] = raw_curves[i, :, c * fpc:(c + 1) * fpc]
                graph.fill_noise()
                graph.run()
                out[i, c * step:(c + 1) * step] = y_out.reshape(-1)
        return out


def open_synth(path: str, device: str = "cpu") -> Synth:
    """A run folder or a bundle folder, by what it holds."""
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"{path}: no such folder (give a model bundle or a training run)")
    if (folder / "model.json").exists():
        return BundleSynth(path, device)
    if (folder / "config.json").exists():
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA GPU is available here")
        return RunSynth(path, device)
    raise UserError(f"{path}: neither a model bundle (model.json) nor a training run "
                    "(config.json)")
