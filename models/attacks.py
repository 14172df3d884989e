"""Where an attack begins, to the sample.

Frame-level onsets (a latent frame whose rms doubles) say which 64 ms an attack lies in;
the prior's phrase starts and the evaluation's gate timing need to know where in it.
"""
import numpy as np

ENVELOPE_S = 0.001   # the envelope: rms over 1 ms
RISE_FROM = 0.1      # an attack begins where the envelope was last under a tenth...
OF_LEVEL = 0.5       # ...of the level it first reaches at half the window's loudest


def envelope(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Rms over ENVELOPE_S, centred, as long as x."""
    n = max(1, int(round(ENVELOPE_S * sample_rate)))
    power = np.convolve(np.asarray(x, np.float64) ** 2, np.ones(n) / n, mode="same")
    return np.sqrt(np.maximum(power, 0.0))


def attack_start(env: np.ndarray, lo: int, hi: int) -> int:
    """The sample in [lo, hi) where the window's first loud sound begins: find where the
    envelope first reaches half the window's peak, then step back to where it was last
    under a tenth of that. lo when it never was (the sound was already there)."""
    lo, hi = max(0, int(lo)), min(len(env), int(hi))
    if hi <= lo:
        return lo
    seg = env[lo:hi]
    top = float(seg.max())
    if top <= 0.0:
        return lo
    loud = int(np.argmax(seg >= OF_LEVEL * top))
    below = np.flatnonzero(seg[:loud + 1] < RISE_FROM * seg[loud])
    return lo + (int(below[-1]) + 1 if len(below) else 0)
