"""Steady tones at the PQMF band edges: how often a bundle whistles at k * sr / bands.

    .venv/bin/python benchmarks/band_edge_tones.py --bundle models/pretrained/gm-notes \
        [--seconds 120] [--data build/pretrained/data/gm-notes] [--bands 8]

A decoder that puts a constant (or slowly moving) offset into a band signal is heard
as a pure tone at that band's edge once the PQMF merges the bands: at 16 kHz with 8
bands, 2, 4 and 6 kHz. Neither the reconstruction loss nor the control loss stops it
(asked for a brighter sound, gm-notes' decoder put offsets of up to half their rms
into its band signals), and the adversarial phase that would punish it has not run in
the CPU-trained bundles.

The bundle plays as in `neurorave evaluate`'s generation check (the module's voice,
prior on, gate 1 every 2 s, a slow sine on CV1). In every audible 0.5 s window the
level of the spectral line at each edge is read against the median of its +-150 Hz
neighbourhood; the figures are the median of that ratio and the share of windows
where the line stands more than 20 dB out. With `--data`, the test split's own audio
gets the same reading: the rate at which real notes happen to put a partial there.
"""
import argparse
import json
import os
import sys

import numpy as np

WINDOW = 8192          # samples: 2 Hz bins at 16 kHz, so a steady tone is one bin
NEIGHBOURHOOD_HZ = 150.0
STANDS_OUT_DB = 20.0


def edge_lines(audio: np.ndarray, sr: int, bands: int) -> dict:
    """{edge Hz: [line level over its neighbourhood, dB, per audible window]}."""
    from neurorave.models.audibility import AUDIBLE_RMS

    freqs = np.fft.rfftfreq(WINDOW, 1.0 / sr)
    edges = [k * sr / bands for k in range(1, bands) if k * sr / bands < sr / 2]
    taper = np.hanning(WINDOW)
    out: dict = {edge: [] for edge in edges}
    for start in range(0, len(audio) - WINDOW + 1, WINDOW):
        part = audio[start:start + WINDOW].astype(np.float64)
        if np.sqrt(np.mean(part ** 2)) < AUDIBLE_RMS:
            continue
        power = np.abs(np.fft.rfft(part * taper)) ** 2
        for edge in edges:
            k = int(round(edge / (sr / WINDOW)))
            near = (freqs > edge - NEIGHBOURHOOD_HZ) & (freqs < edge + NEIGHBOURHOOD_HZ)
            floor = max(float(np.median(power[near])), 1e-20)
            out[edge].append(10 * np.log10(max(float(power[k - 1:k + 2].max()), 1e-20) / floor))
    return out


def summary(lines: dict) -> dict:
    return {f"{edge:.0f} Hz": {"windows": len(v),
                               "median_db": round(float(np.median(v)), 1) if v else None,
                               "stands_out": round(float(np.mean(np.array(v) > STANDS_OUT_DB)), 3)
                               if v else None}
            for edge, v in lines.items()}


def bands_of(bundle: str) -> int:
    config = os.path.join(bundle, "config.json")
    if not os.path.exists(config):
        sys.exit(f"band_edge_tones: {bundle} has no config.json; give --bands")
    with open(config, encoding="utf-8") as f:
        return int(json.load(f)["model"]["bands"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--data", help="dataset folder: its test split as the baseline")
    parser.add_argument("--bands", type=int, help="PQMF bands (default: the bundle's config.json)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from neurorave.common.errors import UserError
    from neurorave.firmware.instrument_check import play_generation

    try:
        bands = args.bands or bands_of(args.bundle)
        played = play_generation(args.bundle, args.seconds, args.seed)
    except (UserError, OSError, ValueError) as exc:
        sys.exit(f"band_edge_tones: {exc}")
    sr = played["sample_rate"]
    report = {"bundle": args.bundle, "seconds": args.seconds, "bands": bands,
              "prior_play": summary(edge_lines(played["audio"], sr, bands))}
    if args.data:
        from neurorave.models.datastore import open_dataset

        test = open_dataset(args.data).split("test")
        audio = np.asarray(test.audio[:], dtype=np.float32).reshape(-1)
        report["test_split"] = summary(edge_lines(audio, sr, bands))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
