"""The reconstruction loss: multi-scale STFT over linear bins, or over mel bands."""
import numpy as np
import pytest
import torch
from neurorave.common.errors import UserError
from neurorave.models.config import load_config
from neurorave.models.losses import MultiScaleSTFTLoss, mel_bank

SR = 48000


def _signals():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(SR // 2) / SR
    body = 0.3 * torch.sin(2 * torch.pi * 250 * t)
    hiss = torch.randn(len(t), generator=g)
    hiss = 0.003 * (hiss - torch.roll(hiss, 1))             # quiet, mostly high
    return (body + hiss)[None], hiss[None], (body + 4 * hiss)[None]


def test_on_mel_bands_a_missing_body_costs_more_than_too_loud_a_hiss():
    # At 48 kHz over linear bins the two mistakes weigh alike or the hiss more; on mel
    # bands, where each octave counts alike, losing the 250 Hz body is the worse one.
    target, no_body, loud_hiss = _signals()
    linear, mel = MultiScaleSTFTLoss(), MultiScaleSTFTLoss(mels=128, sample_rate=SR)
    assert float(mel(target, target)) == 0.0
    lin_ratio = float(linear(no_body, target) / linear(loud_hiss, target))
    mel_ratio = float(mel(no_body, target) / mel(loud_hiss, target))
    assert mel_ratio > 1.0 and mel_ratio > 1.5 * lin_ratio, (lin_ratio, mel_ratio)


def test_mel_banks_leave_no_band_empty_at_any_window():
    for n in (2048, 512, 128, 16):
        bank = mel_bank(n, 128, SR).numpy()
        assert bank.shape[1] == n // 2 + 1 and 1 <= bank.shape[0] <= 128
        assert np.all(bank.max(axis=1) > 0)
    assert mel_bank(2048, 128, SR).shape[0] == 128


def test_a_negative_mel_count_is_a_config_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('extends = "tiny"\nname = "bad"\n[training]\nstft_mels = -1\n')
    with pytest.raises(UserError, match="stft_mels"):
        load_config(str(path))
