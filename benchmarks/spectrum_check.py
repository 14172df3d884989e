"""A bundle's prior play against its data: steady tones the data lacks, and roll-off.

    .venv/bin/python benchmarks/spectrum_check.py --bundle models/pretrained/gm-notes \
        --data build/pretrained/data/gm-notes [--seconds 120] [--json]

Two of issue 22's sound checks, at any sample rate:
- steady tones: in every audible window (WINDOW_S long) each spectral line is read
  against the median of its +-NEIGHBOURHOOD_HZ. A line that stands more than
  STANDS_OUT_DB out at the same frequency in at least PERSISTENT of the windows is a
  steady tone (a whistle), not a partial that moves with the notes. Each one found in
  prior play is reported with how often the test split's own audio has it; those that
  are no steady tone of the data (under PERSISTENT there) are tones the data lacks (the
  failures).
- roll-off: the frequency under which 95% of the long-term spectrum's energy lies
  (audible windows), for prior play and for the test split, and their ratio (issue
  22's goal: within 20%).
- frame buzz: the share of the audible played audio's rms that repeats every latent
  frame (the mean over frames of each of a frame's `hop` samples), against the test
  split's at the same hop (about 1 / sqrt(frames) for audio with no frame in it). A
  decoder whose upsampling imprints a pattern on each frame buzzes at the frame rate
  and its multiples (the comb a sub-pixel gm-drums-48k played: 40% of its rms).
The bundle plays as in `neurorave evaluate`'s generation check (the module's voice,
prior on, gate 1 every 2 s, a slow sine on CV1).
"""
import argparse
import json
import sys
from typing import Dict, List

import numpy as np

WINDOW_S = 0.25           # 4 Hz bins: a steady tone is one bin, a vibrato a few
NEIGHBOURHOOD_HZ = 150.0
STANDS_OUT_DB = 10.0
PERSISTENT = 0.25         # share of audible windows a steady tone stands out in
ROLLOFF = 0.95
LOW_HZ = 40.0             # below this a line is hum or DC, read by nobody's ear as a whistle


def _windows(audio: np.ndarray, sr: int):
    """Power spectra of the audible windows, and their frequencies."""
    from neurorave.models.audibility import AUDIBLE_RMS

    n = int(WINDOW_S * sr)
    taper = np.hanning(n)
    spectra = []
    for start in range(0, len(audio) - n + 1, n):
        part = np.asarray(audio[start:start + n], dtype=np.float64)
        if np.sqrt(np.mean(part ** 2)) >= AUDIBLE_RMS:
            spectra.append(np.abs(np.fft.rfft(part * taper)) ** 2)
    return np.array(spectra).reshape(-1, n // 2 + 1), np.fft.rfftfreq(n, 1.0 / sr)


def standing_out(spectra: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """[windows, bins] True where a line stands STANDS_OUT_DB over its neighbourhood."""
    if not len(spectra):
        return np.zeros((0, len(freqs)), bool)
    half = max(1, int(round(NEIGHBOURHOOD_HZ / (freqs[1] - freqs[0]))))
    from scipy.ndimage import median_filter

    floor = median_filter(spectra, size=(1, 2 * half + 1), mode="nearest")
    return 10 * np.log10(np.maximum(spectra, 1e-20) / np.maximum(floor, 1e-20)) > STANDS_OUT_DB


def line_rates(audio: np.ndarray, sr: int) -> Dict[str, np.ndarray]:
    """Per frequency bin, the share of audible windows where a line stands out there
    (a bin and its two neighbours count as one line: a tone between two bins)."""
    spectra, freqs = _windows(audio, sr)
    out = standing_out(spectra, freqs)
    if len(out):
        wide = out.copy()
        wide[:, 1:] |= out[:, :-1]
        wide[:, :-1] |= out[:, 1:]
        out = wide
    rate = out.mean(axis=0) if len(out) else np.zeros(len(freqs))
    return {"freqs": freqs, "rate": rate, "windows": np.array(len(spectra)),
            "power": spectra.mean(axis=0) if len(spectra) else np.zeros(len(freqs))}


def steady_tones(rates: Dict[str, np.ndarray]) -> List[float]:
    """Centre frequencies of the steady tones: runs of bins over PERSISTENT."""
    freqs, rate = rates["freqs"], rates["rate"]
    # The neighbourhood is cut short at both ends of the spectrum: not read there.
    hot = (rate >= PERSISTENT) & (freqs >= max(LOW_HZ, NEIGHBOURHOOD_HZ)) \
        & (freqs <= freqs[-1] - NEIGHBOURHOOD_HZ)
    tones, run = [], []
    for i in np.flatnonzero(hot):
        if run and i != run[-1] + 1:
            tones.append(run)
            run = []
        run.append(i)
    if run:
        tones.append(run)
    return [float(freqs[r[int(np.argmax(rate[r]))]]) for r in tones]


def rolloff_hz(power: np.ndarray, freqs: np.ndarray) -> float:
    total = float(power.sum())
    if total <= 0:
        return 0.0
    return float(freqs[int(np.searchsorted(np.cumsum(power), ROLLOFF * total))])


def frame_synchronous(audio: np.ndarray, hop: int) -> float:
    """rms of the audible frames' mean frame over their rms: what repeats every frame."""
    from neurorave.models.audibility import AUDIBLE_RMS

    frames = np.asarray(audio[: len(audio) // hop * hop], np.float64).reshape(-1, hop)
    audible = frames[np.sqrt(np.mean(frames ** 2, axis=1)) >= AUDIBLE_RMS]
    if not len(audible):
        return 0.0
    return float(np.sqrt(np.mean(audible.mean(axis=0) ** 2) / np.mean(audible ** 2)))


def compare(played: np.ndarray, data: np.ndarray, sr: int, hop: int = 0) -> Dict:
    mine, theirs = line_rates(played, sr), line_rates(data, sr)
    tones = []
    for hz in steady_tones(mine):
        k = int(round(hz / (mine["freqs"][1] - mine["freqs"][0])))
        ours, data_rate = float(mine["rate"][k]), float(theirs["rate"][k])
        tones.append({"hz": round(hz, 1), "windows_share": round(ours, 3),
                      "data_share": round(data_rate, 3),
                      "data_lacks": bool(data_rate < PERSISTENT)})
    ours_hz = rolloff_hz(mine["power"], mine["freqs"])
    data_hz = rolloff_hz(theirs["power"], theirs["freqs"])
    return {"windows": int(mine["windows"]), "data_windows": int(theirs["windows"]),
            "steady_tones": tones,
            "tones_the_data_lacks": [t["hz"] for t in tones if t["data_lacks"]],
            "rolloff_hz": round(ours_hz, 1), "data_rolloff_hz": round(data_hz, 1),
            "rolloff_ratio": round(ours_hz / data_hz, 3) if data_hz else None,
            **({"frame_synchronous": round(frame_synchronous(played, hop), 4),
                "data_frame_synchronous": round(frame_synchronous(data, hop), 4)}
               if hop else {})}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--data", required=True, help="dataset folder: its test split")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from neurorave.common.errors import UserError
    from neurorave.firmware.instrument_check import play_generation
    from neurorave.models.datastore import open_dataset

    try:
        played = play_generation(args.bundle, args.seconds, args.seed)
        dataset = open_dataset(args.data)
        data = np.asarray(dataset.split("test").audio[:], dtype=np.float32).reshape(-1)
    except (UserError, OSError, ValueError) as exc:
        sys.exit(f"spectrum_check: {exc}")
    if dataset.sr != played["sample_rate"]:
        sys.exit(f"spectrum_check: the data is at {dataset.sr} Hz, the bundle at "
                 f"{played['sample_rate']} Hz")
    report = {"bundle": args.bundle, "data": args.data, "seconds": args.seconds,
              "sample_rate": played["sample_rate"],
              **compare(played["audio"], data, played["sample_rate"], played["hop"])}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{args.bundle}: {report['windows']} audible windows of prior play, "
          f"{report['data_windows']} of the test split, {report['sample_rate']} Hz")
    for t in report["steady_tones"]:
        lacks = "  <- the data lacks it" if t["data_lacks"] else ""
        print(f"  steady tone {t['hz']:.0f} Hz in {100 * t['windows_share']:.0f}% of windows "
              f"(data {100 * t['data_share']:.0f}%){lacks}")
    if not report["steady_tones"]:
        print("  no steady tone")
    print(f"  95% roll-off {report['rolloff_hz']:.0f} Hz, data "
          f"{report['data_rolloff_hz']:.0f} Hz (ratio {report['rolloff_ratio']})")
    print(f"  frame buzz: {100 * report['frame_synchronous']:.1f}% of the rms repeats every "
          f"{played['hop']}-sample frame (data {100 * report['data_frame_synchronous']:.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
