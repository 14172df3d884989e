"""Attack timing: where a sound begins to the sample, the prior's phrase-start crops cut
there, and the evaluation's gate-to-attack delays."""
import numpy as np
from neurorave.models.attacks import attack_start, envelope
from neurorave.models.evaluation.instrument import attack_delays
from neurorave.models.prior.data import PRE_ROLL_S, attack_crops

SR = 16000
HOP = 1024


def _hit(length, at, level=0.5, decay_s=0.08, seed=0):
    """Noise struck at sample `at`: a 1 ms rise, then an exponential decay."""
    rng = np.random.default_rng(seed)
    t = np.arange(length - at) / SR
    shape = np.minimum(t / 0.001, 1.0) * np.exp(-t / decay_s)
    x = np.zeros(length, np.float32)
    x[at:] = level * shape * rng.standard_normal(length - at)
    return x


def test_an_attack_is_found_to_the_millisecond_over_a_decaying_tail():
    # A loud hit, then a second one 300 ms later while the first still rings (-30 dB).
    x = _hit(16000, 1000, seed=1) + _hit(16000, 5800, seed=2)
    env = envelope(x, SR)
    assert abs(attack_start(env, 5000, 7000) - 5800) <= 16
    assert abs(attack_start(env, 0, 3000) - 1000) <= 16
    # Already loud at the window's start: the window's start.
    assert attack_start(env, 1100, 3000) == 1100
    assert attack_start(np.zeros(100), 10, 90) == 10


def test_phrase_start_crops_begin_just_before_the_attack():
    items = np.stack([_hit(8 * HOP, 5 * HOP + 700, seed=3), _hit(8 * HOP, 100, seed=4)])
    onsets = np.array([[0, 5], [1, 0]])        # frame-level onsets, as phrase_starts gives
    crops, valid = attack_crops(items, onsets, HOP, SR, frames=4)
    pre = int(round(PRE_ROLL_S * SR))
    for k, at in enumerate((5 * HOP + 700, 100)):
        # The crop is the item from within a millisecond of (attack - pre-roll).
        begins = [b for b in range(max(0, at - pre - 16), at - pre + 17)
                  if np.array_equal(crops[k, :100], items[k, b:b + 100])]
        assert len(begins) == 1, k
        tail = items[k, begins[0]:begins[0] + 4 * HOP]
        np.testing.assert_array_equal(crops[k, :len(tail)], tail)
    # Item 0's crop runs past its end: those frames are padding, left out of the loss.
    assert valid[0].tolist() == [1, 1, 0, 0] and not crops[0, 2500:].any()
    assert valid[1].tolist() == [1, 1, 1, 1]


def test_gate_to_attack_delays_time_each_answered_gate():
    sr, gates = 8000, [0.0, 1.0, 2.0, 3.0]
    audio = np.zeros(4 * sr, np.float32)
    for g, late_s in zip(gates[:3], (0.0, 0.02, 0.2)):
        start = int((g + late_s) * sr)
        audio[start:start + 800] = 0.3 * np.sin(np.arange(800) * 0.3)
    delays = attack_delays(audio, sr, gates)   # gate 4 is never answered: not timed
    assert len(delays) == 3
    np.testing.assert_allclose(delays, [0.0, 20.0, 200.0], atol=1.5)
