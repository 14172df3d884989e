"""`neurorave transfer IN OUT --bundle B [--set NAME=VALUE ...] [--seed S]`: timbre and
attribute transfer of a recording through a bundle's encoder and decoder.

The input (any rate, any channel count) is mixed to mono and resampled to the bundle's
rate. The encoder turns it into latent frames; its descriptor curves, measured per latent
frame exactly as training measured them (`descriptors.compute` at hop = frame_size), are
the attributes the decoder is given, so the output keeps the input's loudness, pitch and
brightness contours in the model's timbre. `--set NAME=VALUE` pins one attribute for the
whole file instead: VALUE is a position 0..1 in the attribute's range from model.json
(0 = its min, 1 = its max: the same linear scale a CV slides on the module), or, followed
by the attribute's unit, a value in that unit within the range (`f0=220Hz`).

The output is mono, at the input's sample rate and of the input's length, so it lines up
with the input on a timeline. It is written to a temporary file beside OUT and renamed
into place: a failed run leaves no half file, and the input is never overwritten.
ONNX Runtime only (no torch).
"""
from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
from neurorave.common.errors import UserError, first_line
from neurorave.models import descriptors

MAX_SECONDS = 3600.0       # held in memory whole: about 1 GB of float32 at 48 kHz
PROGRESS_SECONDS = 30.0    # a shorter file is done before a bar would say anything
READ_BLOCK = 1 << 16
PCM16 = ("WAV", "AIFF", "FLAC", "W64", "CAF", "RF64")   # written as 16-bit samples
WRITABLE = PCM16 + ("OGG",)

# (calls just done, calls in all): each latent frame is one encoder and one decoder call.
Progress = Callable[[int, int], None]


# ---------------------------------------------------------------------------------------
# Arguments

def parse_sets(texts: Sequence[str], attributes: Sequence) -> Dict[int, float]:
    """`NAME=VALUE` strings -> {attribute index: raw value} (see the module docstring)."""
    names = [a.name for a in attributes]
    valid = ", ".join(names) if names else "none"
    pins: Dict[int, float] = {}
    for text in texts:
        name, sep, value = text.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise UserError(f"--set {text}: give NAME=VALUE, e.g. centroid=0.8 "
                            f"(attributes: {valid})")
        if name not in names:
            raise UserError(f"--set {text}: the bundle has no attribute '{name}'; "
                            f"valid names: {valid}")
        index = names.index(name)
        if index in pins:
            raise UserError(f"--set {text}: {name} is set twice")
        pins[index] = _pin_value(text, attributes[index], value)
    return pins


def _pin_value(text: str, attribute, value: str) -> float:
    unit = attribute.unit
    lo, hi = attribute.min, attribute.max
    in_unit = f", or a value in {unit} within {lo:.4g}..{hi:.4g} {unit}" if unit else ""
    number, given_unit = value, ""
    if unit and value.lower().endswith(unit.lower()):
        number, given_unit = value[:-len(unit)].strip(), unit
    try:
        x = float(number)
    except ValueError:
        raise UserError(f"--set {text}: '{value}' is not a number (a position "
                        f"0..1 in {attribute.name}'s range{in_unit})") from None
    if not math.isfinite(x):
        raise UserError(f"--set {text}: '{value}' is not a finite number")
    if given_unit:
        if not lo <= x <= hi:
            raise UserError(f"--set {text}: {attribute.name} must lie within "
                            f"{lo:.4g}..{hi:.4g} {unit} (this model's range)")
        return x
    if not 0.0 <= x <= 1.0:
        raise UserError(f"--set {text}: a position must lie within 0..1 "
                        f"(0 = {attribute.name}'s min, 1 = its max{in_unit})")
    return lo + x * (hi - lo)


def check_output(out: Path, source: Path) -> str:
    """The sound file format OUT asks for; a path that cannot be written, or that is the
    input, is refused before any work."""
    import soundfile

    kind = out.suffix[1:].upper()
    kind = {"AIF": "AIFF", "OGA": "OGG"}.get(kind, kind)
    if kind not in WRITABLE or kind not in soundfile.available_formats():
        given = "." + kind.lower() if kind else "none"
        raise UserError(f"{out}: name the sound file with a known extension "
                        f"(.wav, .flac, .ogg, .aiff, ...), not {given}")
    if out.is_dir():
        raise UserError(f"{out}: is a folder; name the sound file to write")
    if os.path.realpath(out) == os.path.realpath(source) or (
            out.exists() and source.exists() and os.path.samefile(out, source)):
        raise UserError(f"{out}: is the input file; transfer never overwrites its input, "
                        "name another output")
    folder = out.resolve().parent
    if not folder.is_dir():
        raise UserError(f"{out}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UserError(f"{out}: the folder {folder} is not writable")
    return kind


def open_bundle(path: str):
    """The bundle and an ONNX Runtime engine on its encoder and decoder."""
    from neurorave.models.runtime.bundle import load_bundle
    from neurorave.models.runtime.engines import EngineUnavailable, open_engine

    bundle = load_bundle(path)
    if "encoder" not in bundle.graphs:
        raise UserError(f"bundle {path}: has no encoder graph; transfer needs one "
                        "(export the model with its encoder)")
    unknown = [a.name for a in bundle.attributes
               if a.name not in descriptors.ATTRIBUTES]
    if unknown:
        raise UserError(f"bundle {path}: attribute(s) {', '.join(unknown)} are not "
                        f"descriptors this version measures ({', '.join(descriptors.ATTRIBUTES)})")
    try:
        engine = open_engine(bundle, "ort-cpu", roles=["encoder", "decoder"])
    except EngineUnavailable as exc:
        raise UserError(str(exc)) from None
    return bundle, engine


# ---------------------------------------------------------------------------------------
# Audio in and out

def read_mono(path: Path) -> Tuple[np.ndarray, int]:
    """The file mixed to mono float32, and its rate; one line for every bad file."""
    import soundfile

    if path.is_dir():
        raise UserError(f"{path}: is a folder; give an audio file")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        handle = soundfile.SoundFile(str(path))
    except Exception as exc:
        if path.suffix[1:].upper() in soundfile.available_formats():
            raise UserError(f"{path}: not a readable audio file ({first_line(exc)})") from None
        # A format libsndfile does not know (.m4a...): describe's reader tries librosa.
        from neurorave.models.describe_command import read_audio

        audio, sr = read_audio(path)
        _check_length(path, audio.shape[-1], sr)
        mono = np.asarray(audio, np.float32).reshape(-1, audio.shape[-1]).mean(axis=0)
    else:
        with handle:
            sr = int(handle.samplerate)
            _check_length(path, handle.frames, sr)
            blocks = []
            try:
                while True:
                    block = handle.read(READ_BLOCK, dtype="float32", always_2d=True)
                    if not len(block):
                        break
                    blocks.append(block.mean(axis=1, dtype=np.float32))
            except RuntimeError as exc:  # libsndfile's errors: a damaged file
                raise UserError(f"{path}: cannot be read to the end ({first_line(exc)})") \
                    from None
        mono = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    if mono.size == 0:
        raise UserError(f"{path}: the file holds no audio")
    bad = ~np.isfinite(mono)
    if bad.any():
        first = int(np.argmax(bad))
        raise UserError(f"{path}: holds NaN or infinite samples ({int(bad.sum())}, the first "
                        f"at {first / sr:.3f} s); repair the file first")
    return mono, sr


def _check_length(path: Path, frames: int, sr: int) -> None:
    if sr < 1000:
        raise UserError(f"{path}: sample rate {sr} Hz is too low")
    if frames == 0:
        raise UserError(f"{path}: the file holds no audio")
    if frames / sr > MAX_SECONDS:
        raise UserError(f"{path}: {frames / sr / 60:.0f} minutes long; transfer takes at most "
                        f"{MAX_SECONDS / 60:.0f} minutes at once (split the file)")


def resample(audio: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Whole-signal resampling (soxr, delay compensated: the output lines up)."""
    if in_rate == out_rate:
        return np.asarray(audio, np.float32)
    import soxr

    return soxr.resample(audio, in_rate, out_rate, quality="HQ").astype(np.float32, copy=False)


def write_atomic(out: Path, audio: np.ndarray, rate: int, kind: str) -> None:
    """Temporary file beside OUT, then a rename: OUT is either the old file or the new."""
    import soundfile

    folder = out.resolve().parent
    try:
        fd, tmp = tempfile.mkstemp(dir=str(folder), prefix=f".{out.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as exc:
        raise UserError(f"{out}: cannot write in {folder} ({exc.strerror})") from None
    try:
        soundfile.write(tmp, audio, rate, format=kind,
                        subtype="PCM_16" if kind in PCM16 else None)
        os.replace(tmp, out)
    except (RuntimeError, OSError, ValueError, TypeError) as exc:
        raise UserError(f"{out}: cannot write ({exc})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ---------------------------------------------------------------------------------------
# The transfer

def attribute_curves(audio: np.ndarray, bundle) -> np.ndarray:
    """Raw curves [A, len(audio) // frame_size] at the bundle's rate, as training measured
    them (frame i describes samples i*hop .. (i+1)*hop, like the encoder's frame i)."""
    names = [a.name for a in bundle.attributes]
    if not names:
        return np.zeros((0, len(audio) // bundle.frame_size), np.float32)
    curves = descriptors.compute(audio, bundle.sample_rate, bundle.frame_size, names)
    return descriptors.stack(curves, names)


def transfer(audio: np.ndarray, bundle, engine, pins: Optional[Dict[int, float]] = None,
             seed: int = 0, progress: Optional[Progress] = None) -> np.ndarray:
    """Mono audio at the bundle's rate -> the decoder's output, of the same length."""
    encoder, decoder = engine.graphs["encoder"], engine.graphs["decoder"]
    x_in = encoder.inputs[encoder.spec.inputs[0].name]
    z_out = encoder.outputs[encoder.spec.outputs[0].name]
    z_in = decoder.inputs["z"]
    a_in = decoder.inputs.get("attributes")
    y_out = decoder.outputs[decoder.spec.outputs[0].name]
    hop = bundle.frame_size
    enc_frames, dec_frames = x_in.shape[-1] // hop, z_in.shape[-1]
    multiple = enc_frames * dec_frames // math.gcd(enc_frames, dec_frames)
    frames = -(-len(audio) // (hop * multiple)) * multiple
    padded = np.zeros(frames * hop, np.float32)
    padded[:len(audio)] = audio

    curves = attribute_curves(padded, bundle)
    for index, value in (pins or {}).items():
        curves[index, :] = value

    encoder.reset(seed)
    decoder.reset(seed)
    z = np.zeros((z_out.shape[1], frames), np.float32)
    step = enc_frames * hop
    for c in range(frames // enc_frames):
        x_in[...] = padded[c * step:(c + 1) * step].reshape(x_in.shape)
        encoder.run()
        z[:, c * enc_frames:(c + 1) * enc_frames] = z_out[0]
        if progress:
            progress(enc_frames, 2 * frames)
    out = np.zeros(frames * hop, np.float32)
    step = y_out.size
    for c in range(frames // dec_frames):
        span = slice(c * dec_frames, (c + 1) * dec_frames)
        z_in[0] = z[:, span]
        if a_in is not None:
            a_in[0] = curves[:, span]
        decoder.fill_noise()
        decoder.run()
        out[c * step:(c + 1) * step] = y_out.reshape(-1)
        if progress:
            progress(dec_frames, 2 * frames)
    return out[:len(audio)]


def transfer_file_audio(mono: np.ndarray, rate: int, bundle, engine,
                        pins: Optional[Dict[int, float]] = None, seed: int = 0,
                        progress: Optional[Progress] = None) -> np.ndarray:
    """Mono audio at any rate -> the transfer at that rate, of the same length."""
    at_model = resample(mono, rate, bundle.sample_rate)
    out = resample(transfer(at_model, bundle, engine, pins, seed, progress),
                   bundle.sample_rate, rate)
    result = np.zeros(len(mono), np.float32)
    result[:min(len(out), len(mono))] = out[:len(mono)]
    return result


def _progress_bar(seconds: float):
    """A tqdm bar on stderr for a long file on a terminal; else None."""
    if seconds < PROGRESS_SECONDS or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # not on the module's base install: work without a bar
        return None
    return tqdm(unit="call", file=sys.stderr, leave=False, dynamic_ncols=True,
                desc="transfer")


def _reporter(bar) -> Optional[Progress]:
    if bar is None:
        return None

    def report(done: int, total: int) -> None:
        if bar.total != total:
            bar.reset(total=total)
        bar.update(done)
    return report


def main(args) -> int:
    source, out = Path(args.input), Path(args.output)
    kind = check_output(out, source)
    bundle, engine = open_bundle(args.bundle)
    pins = parse_sets(args.set or [], bundle.attributes)
    mono, rate = read_mono(source)
    seconds = len(mono) / rate
    bar = _progress_bar(seconds)
    start = time.perf_counter()
    try:
        result = transfer_file_audio(mono, rate, bundle, engine, pins, args.seed,
                                     _reporter(bar))
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - start
    clipped = int(np.count_nonzero(np.abs(result) > 1.0))
    write_atomic(out, np.clip(result, -1.0, 1.0), rate, kind)
    pinned = "".join(f", {bundle.attributes[i].name} pinned at {v:.4g}"
                     f"{' ' + bundle.attributes[i].unit if bundle.attributes[i].unit else ''}"
                     for i, v in pins.items())
    note = f", {clipped} samples clipped" if clipped else ""
    print(f"wrote {out}: {seconds:.2f} s at {rate} Hz (mono) through {bundle.name}{pinned}"
          f"{note}, in {elapsed:.2f} s ({seconds / max(elapsed, 1e-9):.1f}x real time)")
    return 0

