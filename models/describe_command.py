"""`neurorave describe AUDIO [--json] [--plot OUT.png]`: the descriptor curves of a file.

The file is read at its own sample rate (mono mix). The hop is the power of two nearest
to 16 ms (256 samples at 16 kHz, 1024 at 48 kHz). Without options it prints one line per
descriptor (unit, mean, min, median, max); `--json` prints the curves; `--plot` draws the
waveform, a spectrogram and the six curves in one figure.
"""
from __future__ import annotations

import argparse
import json
import math
import warnings
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
from neurorave.common.errors import UserError
from neurorave.models import descriptors

HOP_SECONDS = 0.016


def hop_for(sr: int) -> int:
    return max(descriptors.MIN_HOP, 1 << int(round(math.log2(HOP_SECONDS * sr))))


def read_audio(path: Path) -> Tuple[np.ndarray, int]:
    import soundfile

    if path.is_dir():
        raise UserError(f"{path}: is a folder; give an audio file")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        audio, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
        audio = audio.T  # [channels, samples]: compute() mixes it down
    except Exception:  # libsndfile could not decode it: try librosa/audioread (mp3...)
        try:
            import librosa

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                audio, sr = librosa.load(str(path), sr=None, mono=False)
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            raise UserError(f"{path}: not a readable audio file ({reason})") from None
    if audio.size == 0:
        raise UserError(f"{path}: the file holds no audio")
    return np.asarray(audio), int(sr)


def summary(curves: Dict[str, np.ndarray]) -> str:
    lines = [f"{'descriptor':<10} {'unit':<5} {'mean':>10} {'min':>10} {'median':>10} "
             f"{'max':>10}"]
    for name, values in curves.items():
        v = values.astype(np.float64)
        if v.size == 0:
            lines.append(f"{name:<10} {descriptors.UNITS[name]:<5} (no frames)")
            continue
        lines.append(f"{name:<10} {descriptors.UNITS[name]:<5} {v.mean():>10.4g} "
                     f"{v.min():>10.4g} {np.median(v):>10.4g} {v.max():>10.4g}")
    return "\n".join(lines)


def check_plot_path(path: Path) -> None:
    """Before any work: the figure's format must be one matplotlib writes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    formats = FigureCanvasAgg(Figure()).get_supported_filetypes()
    suffix = path.suffix[1:].lower()
    if suffix and suffix not in formats:  # no suffix: matplotlib writes PNG
        raise UserError(f"{path}: cannot draw a .{suffix} figure; use one of "
                        f"{', '.join(sorted(formats))}")
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give a file name for the figure")


def plot(path: Path, audio: np.ndarray, sr: int, hop: int,
         curves: Dict[str, np.ndarray], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mono = descriptors.to_mono(audio)
    names = list(descriptors.ATTRIBUTES)
    fig, axes = plt.subplots(2 + len(names), 1, figsize=(10, 2 + 1.3 * (2 + len(names))),
                             sharex=True)
    t = np.arange(len(mono)) / sr
    axes[0].plot(t, mono, linewidth=0.4)
    axes[0].set_ylabel("wave")
    axes[0].set_title(title)
    n_fft = descriptors.frame_length(sr, hop)
    if len(mono) >= n_fft:
        with np.errstate(divide="ignore"):  # log of exact silence: drawn as the floor
            power, _, _, image = axes[1].specgram(mono + 1e-9, NFFT=n_fft, Fs=sr,
                                                  noverlap=n_fft - hop, cmap="magma")
        top = 10 * np.log10(max(float(power.max()), 1e-30))
        image.set_clim(top - 90, top)  # a 90 dB range, whatever the silence floor
    axes[1].set_ylabel("Hz")
    frames_t = (np.arange(len(curves[names[0]])) + 0.5) * hop / sr
    for ax, name in zip(axes[2:], names):
        ax.plot(frames_t, curves[name], linewidth=0.8)
        unit = descriptors.UNITS[name]
        ax.set_ylabel(f"{name}\n({unit})" if unit else name)
    axes[1].plot(frames_t, np.where(curves["voicing"] >= descriptors.VOICED, curves["f0"],
                                    np.nan), color="cyan", linewidth=0.8)
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise UserError(f"{path}: cannot write the figure ({exc.strerror})") from None
    finally:
        plt.close(fig)


def main(args: argparse.Namespace) -> int:
    path = Path(args.audio)
    audio, sr = read_audio(path)
    if sr < 1000:
        raise UserError(f"{path}: sample rate {sr} Hz is too low")
    if args.plot:
        check_plot_path(Path(args.plot))
    hop = hop_for(sr)
    curves = descriptors.compute(audio, sr, hop)
    if args.plot:
        plot(Path(args.plot), audio, sr, hop, curves, path.name)
    if args.json:
        print(json.dumps({
            "file": str(path), "sr": sr, "hop": hop,
            "frame_length": descriptors.frame_length(sr, hop),
            "rms_frame_length": descriptors.rms_length(sr, hop),
            "units": {n: descriptors.UNITS[n] for n in curves},
            "curves": {n: [round(float(x), 6) for x in v] for n, v in curves.items()},
        }))
    else:
        seconds = audio.shape[-1] / sr
        print(f"{path}: {seconds:.2f} s at {sr} Hz, {len(curves['rms'])} frames of {hop} "
              "samples")
        print(summary(curves))
    return 0
