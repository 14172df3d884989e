"""A training run's decoder on its test split, offline: where its energy lies, whether
it buzzes at the frame rate, whether a band's waveform head is stuck.

    .venv/bin/python benchmarks/decoder_probe.py --run build/pretrained/runs/gm-drums-48k \
        --data build/pretrained/data/gm-drums-48k [--chunks 10] [--weights last.pt] [--json]

For a run in progress (no export needed): each of `--chunks` test chunks is encoded
(latent mean) and decoded with its own attribute curves, as `FaderRave.forward` does.
Reported beside the data's own figures on the same chunks:
- energy share per frequency band (SHARE_EDGES_HZ): a decoder that thumps puts its
  energy under 100 Hz where the data has little;
- frame buzz: the share of the rms that repeats every latent frame (as in
  `spectrum_check.py`);
- stuck heads: bands whose tanh waveform head sits beyond +-STUCK over half
  the time (a saturated head plays its amplitude envelope as a thump or a band-edge
  line), and the largest |mean| of a head over the chunks.
Pause trainers on the same cores first: this runs torch on one thread.
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np

SHARE_EDGES_HZ = [0, 20, 100, 500, 2000, 8000, 24000]
STUCK = float(np.tanh(3.0))  # a head beyond this (0.995) sits on the tanh's rail
CHUNK_S = 3.0


def energy_shares(audio: np.ndarray, sr: int) -> List[float]:
    power = np.abs(np.fft.rfft(np.asarray(audio, np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1.0 / sr)
    total = max(float(power.sum()), 1e-30)
    edges = [e for e in SHARE_EDGES_HZ if e < sr / 2] + [sr / 2 + 1]
    return [float(power[(freqs >= lo) & (freqs < hi)].sum()) / total
            for lo, hi in zip(edges[:-1], edges[1:])]


def probe(run_path: str, data_path: str, chunks: int, weights: str) -> Dict:
    import torch
    from neurorave.models.datastore import open_dataset
    from neurorave.models.training.run import load_run

    sys.path.insert(0, str(Path(__file__).parent))
    from spectrum_check import frame_synchronous

    torch.set_num_threads(1)
    run = load_run(run_path, weights)
    dataset = open_dataset(data_path)
    sr = run.config.model.sample_rate
    if dataset.sr != sr:
        raise ValueError(f"the data is at {dataset.sr} Hz, the run at {sr} Hz")
    decoder = run.module.decoder
    hop = decoder.hop
    test = np.asarray(dataset.split("test").audio[:], dtype=np.float32).reshape(-1)
    length = min(int(CHUNK_S * sr), len(test)) // hop * hop
    if length == 0:
        raise ValueError("the test split is shorter than one latent frame")
    starts = np.linspace(0, max(len(test) - length, 0), chunks).astype(int)
    played, original, stuck, means = [], [], [], []
    with torch.no_grad():
        for start in starts:
            x = torch.from_numpy(test[start:start + length].copy())[None]
            z, _ = run.module.encoder(x)
            attrs = run.module.normalise(run.module.attribute_curves(x))
            y, heads = decoder(z, attrs, with_heads=True)
            heads = heads[0]                                # [bands, T], after the tanh
            stuck.append((heads.abs() > STUCK).float().mean(-1).numpy())
            means.append(heads.mean(-1).numpy())
            played.append(y.reshape(-1).numpy()[:length])
            original.append(test[start:start + length])
    out, data = np.concatenate(played), np.concatenate(original)
    stuck_share = np.mean(stuck, axis=0)
    head_means = np.mean(means, axis=0)
    history = Path(run_path) / "history.json"
    step = json.loads(history.read_text())[-1].get("last_step") if history.exists() else None
    return {"run": run_path, "weights": run.weights.name, "last_session_step": step,
            "sample_rate": sr, "hop": hop, "chunks": chunks, "seconds": len(out) / sr,
            "edges_hz": [e for e in SHARE_EDGES_HZ if e < sr / 2] + [sr // 2],
            "energy_share": [round(s, 4) for s in energy_shares(out, sr)],
            "data_energy_share": [round(s, 4) for s in energy_shares(data, sr)],
            "frame_buzz": round(frame_synchronous(out, hop), 4),
            "data_frame_buzz": round(frame_synchronous(data, hop), 4),
            "rms_db": round(float(20 * np.log10(np.sqrt(np.mean(out ** 2)) + 1e-12)), 1),
            "data_rms_db": round(float(20 * np.log10(np.sqrt(np.mean(data ** 2)) + 1e-12)), 1),
            "heads_stuck": [int(b) for b in np.flatnonzero(stuck_share > 0.5)],
            "head_mean": [round(float(m), 3) for m in head_means],
            "largest_head_mean": round(float(np.abs(head_means).max()), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="training run folder")
    parser.add_argument("--data", required=True, help="dataset folder: its test split")
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--weights", default="last.pt", help="a file in the run's weights/")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from neurorave.common.errors import UserError

    try:
        report = probe(args.run, args.data, args.chunks, args.weights)
    except (UserError, OSError, ValueError) as exc:
        sys.exit(f"decoder_probe: {exc}")
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    edges = report["edges_hz"]
    print(f"{args.run} ({report['weights']}): {report['chunks']} test chunks, "
          f"{report['seconds']:.0f} s at {report['sample_rate']} Hz")
    print(f"  rms {report['rms_db']} dBFS (data {report['data_rms_db']})")
    for lo, hi, ours, theirs in zip(edges[:-1], edges[1:], report["energy_share"],
                                    report["data_energy_share"]):
        print(f"  {lo:>5}-{hi:<5} Hz: {100 * ours:5.1f}% of the energy (data {100 * theirs:5.1f}%)")
    print(f"  frame buzz {100 * report['frame_buzz']:.1f}% (data "
          f"{100 * report['data_frame_buzz']:.1f}%)")
    print(f"  heads stuck: {report['heads_stuck'] or 'none'}; largest |head mean| "
          f"{report['largest_head_mean']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
