"""The control loss's targets and gradients (models/training/control.py)."""
import pytest
import torch
from neurorave.models.descriptors_torch import compute_batch
from neurorave.models.training.control import SKIP_FRAMES, control_loss, controlled, target_curves

NAMES = ["rms", "centroid", "f0", "boominess"]


def _curves(batch=16, frames=24, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, len(NAMES), frames, generator=gen) * 2 - 1


def test_targets_replace_about_half_of_the_controlled_curves_and_never_f0():
    curves = _curves()
    which = controlled(NAMES)
    assert which.tolist() == [0, 1, 3]
    out = target_curves(curves, which, torch.Generator().manual_seed(1))
    assert out.shape == curves.shape
    assert torch.equal(out[:, 2], curves[:, 2])
    changed = (out[:, which] != curves[:, which]).any(-1).float().mean()
    assert 0.25 < float(changed) < 0.75
    # Every target lies within the range the batch holds for that attribute.
    for a in which.tolist():
        assert out[:, a].min() >= curves[:, a].min() - 1e-6
        assert out[:, a].max() <= curves[:, a].max() + 1e-6
    # The same generator seed gives the same targets (a resumed run repeats its steps).
    again = target_curves(curves, which, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    other = target_curves(curves, which, torch.Generator().manual_seed(2))
    assert not torch.equal(out, other)


def test_synthetic_targets_of_spectral_attributes_take_values_from_audible_frames():
    names, frames = ["rms", "centroid"], 24
    gen = torch.Generator().manual_seed(3)
    curves = torch.rand(64, 2, frames, generator=gen)       # audible: all in [0, 1]
    curves[:, :, frames // 2:] = -1.0                       # then silence, its centroid 0
    which = controlled(names)
    heard = torch.cat([target_curves(curves, which, torch.Generator().manual_seed(seed),
                                     (0, -0.9)) for seed in range(4)])
    # Over the audible half every target (own, another item's, their mean, or a
    # synthetic curve) is a sound; only rms may be asked to fall silent there.
    assert float(heard[:, 1, :frames // 2].min()) >= 0.0
    assert float(heard[:, 0, :frames // 2].min()) < 0.0
    anywhere = torch.cat([target_curves(curves, which, torch.Generator().manual_seed(seed))
                          for seed in range(4)])
    assert float(anywhere[:, 1, :frames // 2].min()) < 0.0  # without it, silence's 0 Hz
    assert float(anywhere[:, 0, :frames // 2].min()) < 0.0


def test_loss_is_zero_when_the_output_has_the_asked_curves_and_grows_with_the_error():
    curves = _curves(batch=4, frames=10)
    which = controlled(NAMES)
    gen = torch.Generator().manual_seed(0)

    def obedient(asked):
        return asked  # "audio" that is its own description

    loss = control_loss(obedient, lambda a: a[:, which], curves, which, gen)
    assert float(loss) == 0.0
    loss = control_loss(obedient, lambda a: a[:, which] + 0.3, curves, which, gen)
    assert abs(float(loss) - 0.3) < 1e-6
    # The first frames (the decoder's warm-up) are not scored.
    def warm(asked):
        out = asked[:, which].clone()
        out[..., :SKIP_FRAMES] += 5.0
        return out
    assert float(control_loss(obedient, warm, curves, which, gen)) == 0.0


def test_descriptor_gradients_are_finite_on_silence_and_sound():
    sr, hop = 16000, 256
    t = torch.arange(4096) / sr
    audio = torch.stack([torch.zeros(4096), 0.3 * torch.sin(2 * torch.pi * 440 * t)])
    audio[1, :1024] = 0.0  # silence, then a tone, in one item
    audio.requires_grad_(True)
    curves = compute_batch(audio, sr, hop, ["rms", "centroid", "bandwidth", "sharpness",
                                            "boominess"], dtype=torch.float32)
    curves.sum().backward()
    assert torch.isfinite(audio.grad).all()
    assert audio.grad[1].abs().sum() > 0


def test_silent_frames_score_only_rms():
    curves = _curves(batch=4, frames=10)
    which = controlled(NAMES)
    curves[:, 0, 5:] = -1.0  # rms asked: silence from frame 5 (and targets keep it there)
    gen = torch.Generator().manual_seed(0)

    def silent_tail(asked):
        out = asked[:, which].clone()
        out[:, 1:, 5:] = 7.0  # spectral readings of silence: far from anything asked
        return out

    # Without the mask the tail dominates; with it the loss is 0 (rms itself is obeyed)...
    assert float(control_loss(lambda a: a, silent_tail, curves, which, gen)) > 1.0
    gen = torch.Generator().manual_seed(0)
    masked = control_loss(lambda a: a, silent_tail, curves.clone(), which, gen, (0, -0.5))
    # (the targets may move rms itself out of silence; those frames are scored in full)
    gen = torch.Generator().manual_seed(0)
    asked = target_curves(curves, which, gen)
    loud = asked[:, 0, SKIP_FRAMES:] >= -0.5
    spectral = (silent_tail(asked) - asked[:, which])[:, 1:, SKIP_FRAMES:].abs()
    expected = (spectral * loud[:, None]).sum() / (2 * loud.sum() + loud.numel())
    assert float(masked) == pytest.approx(float(expected), rel=1e-5)
    # ...and rms is scored on every frame, silent or not.
    gen = torch.Generator().manual_seed(0)

    def loud_rms(asked):
        out = asked[:, which].clone()
        out[:, 0] += 0.5
        return out
    wrong = control_loss(lambda a: a, loud_rms, curves.clone(), which, gen, (0, 2.0))
    assert float(wrong) == pytest.approx(0.5, rel=1e-5)  # no frame heard: rms alone
