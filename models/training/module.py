"""The F-RAVE / C-RAVE training module (PyTorch Lightning, manual optimisation).

Phase 1 (steps < training.adversarial_start): encoder + decoder learn to reconstruct
(multi-scale STFT) with a KL term whose weight ramps up; the latent discriminator
learns to guess each attribute's quantile bin from z (cross-entropy), and in F-RAVE
the encoder loss subtracts lambda * CE, lambda ramping from zero after a delay.
From training.encoder_steps (when set) the encoder and the fader stop learning
and the decoder goes on alone. The control loss (training/control.py), from
training.control_start, teaches the decoder to follow attribute curves that do not
come with the item's z.
Phase 2: the encoder is frozen; multi-scale + multi-period critics (hinge loss) and
feature matching fine-tune the decoder, the STFT loss still applies.

Every random draw of a step (z's noise, the decoder's noise) comes from a generator
seeded by (seed, step, rank), and the data of a step is a function of the same, so a
run resumed from a checkpoint takes exactly the step the uninterrupted run would.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import pytorch_lightning as pl
import torch
from neurorave.models.audibility import AUDIBLE_RMS
from neurorave.models.config import LATENT_BINS, Config
from neurorave.models.descriptors_torch import compute_batch
from neurorave.models.losses import (
    MultiScaleSTFTLoss,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    latent_cross_entropy,
    waveform_offset,
)
from neurorave.models.nets.decoder import Decoder
from neurorave.models.nets.discriminators import CombinedDiscriminator
from neurorave.models.nets.encoder import Encoder, reparametrize
from neurorave.models.nets.latent_discriminator import LatentDiscriminator
from neurorave.models.training.control import control_loss, controlled
from neurorave.models.training.stats import (
    RMS_FLOOR,
    log_floors,
    log_range,
    normalise_curves,
    stats_tensors,
)


def ramp(step: int, delay: int, length: int) -> float:
    """0 before `delay`, then linear to 1 over `length` steps."""
    if step < delay:
        return 0.0
    return 1.0 if length <= 0 else min(1.0, (step - delay) / length)


def build_nets(cfg: Config) -> Dict[str, torch.nn.Module]:
    m, f, d = cfg.model, cfg.fader, cfg.discriminator
    n_attr = len(m.attributes)
    return {
        "encoder": Encoder(m.bands, m.ratios, m.capacity, m.latent_size, m.pqmf_taps_per_band),
        "decoder": Decoder(m.bands, m.ratios, m.capacity, m.latent_size, n_attr, m.noise_bins,
                           m.noise_block, m.pqmf_taps_per_band, m.dilations, m.harmonics,
                           m.attributes.index("f0") if "f0" in m.attributes else None,
                           m.sample_rate, m.attributes.index("rms") if m.level else None,
                           m.band_dc_block, m.upsample),
        "latent_discriminator": LatentDiscriminator(m.latent_size, n_attr, f.hidden,
                                                    LATENT_BINS, f.layers),
        "discriminator": CombinedDiscriminator(d.scales, d.periods, d.capacity, d.layers),
    }


class FaderRave(pl.LightningModule):
    def __init__(self, cfg: Config, stats: Optional[Dict[str, Any]] = None, seed: int = 0,
                 total_steps: Optional[int] = None):
        super().__init__()
        self.cfg = cfg
        self.seed = seed
        self.total_steps = total_steps or cfg.training.steps
        self.automatic_optimization = False
        nets = build_nets(cfg)
        self.encoder = nets["encoder"]
        self.decoder = nets["decoder"]
        self.latent_discriminator = nets["latent_discriminator"]
        self.discriminator = nets["discriminator"]
        self.stft_loss = MultiScaleSTFTLoss(cfg.training.stft_scales, mels=cfg.training.stft_mels,
                                            sample_rate=cfg.model.sample_rate)
        n_attr = len(cfg.model.attributes)
        if stats is not None:
            tensors = stats_tensors(stats, cfg.model.attributes)
        else:  # filled by load_state_dict
            tensors = {"attr_min": torch.zeros(n_attr), "attr_max": torch.ones(n_attr),
                       "bin_edges": torch.zeros(n_attr, LATENT_BINS - 1)}
        for name, value in tensors.items():
            self.register_buffer(name, value)
        # Derived from the config, so not saved: weights of older runs still load.
        self.register_buffer("attr_floor", log_floors(cfg.model.attributes, cfg.model.log_rms),
                             persistent=False)
        if "f0" in cfg.model.attributes:
            i = cfg.model.attributes.index("f0")
            self.decoder.set_f0_range(*log_range(self.attr_min[i], self.attr_max[i]))
        if cfg.model.level:
            i = cfg.model.attributes.index("rms")
            lo, hi = (log_range(self.attr_min[i], self.attr_max[i], RMS_FLOOR)
                      if cfg.model.log_rms else (float(self.attr_min[i]), float(self.attr_max[i])))
            self.decoder.set_rms_range(lo, hi, cfg.model.log_rms)
        self.controlled = controlled(cfg.model.attributes)  # what the control loss measures
        self.completed_steps = 0
        self.last_metrics: Dict[str, Any] = {}  # the latest step's losses (detached)
        self._val_outputs: List[Dict[str, torch.Tensor]] = []
        self._val_example: Optional[Dict[str, torch.Tensor]] = None

    # -- attributes -----------------------------------------------------------------
    def attribute_curves(self, audio: torch.Tensor) -> torch.Tensor:
        """Raw descriptor curves [B, A, T // hop] at the model's hop."""
        m = self.cfg.model
        dtype = torch.float64 if audio.device.type == "cpu" else torch.float32
        return compute_batch(audio.float(), m.sample_rate, m.hop, m.attributes, dtype=dtype).float()

    def normalise(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw curves -> [-1, 1] by the dataset's min/max, f0 (and with model.log_rms,
        rms) on a log scale: what the decoder is conditioned on."""
        return normalise_curves(raw, self.attr_min, self.attr_max, self.attr_floor)

    def bin_targets(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw curves -> quantile bin index per frame [B, A, F] in 0..15."""
        return (raw[..., None] > self.bin_edges[None, :, None, :]).sum(-1)

    # -- helpers ---------------------------------------------------------------------
    def _generator(self, step: int) -> torch.Generator:
        gen = torch.Generator(device=self.device)
        gen.manual_seed((self.seed * 1_000_003 + step) * 257 + self.global_rank)
        return gen

    def _noise(self, batch: int, frames: int, gen: torch.Generator) -> torch.Tensor:
        shape = self.decoder.noise_shape(batch, frames)
        return torch.rand(shape, generator=gen, device=self.device) * 2 - 1

    def _inputs(self, batch: Dict[str, torch.Tensor]):
        audio = batch["audio"]
        with torch.no_grad():
            raw = batch["curves"] if "curves" in batch else self.attribute_curves(audio)
        return audio, raw, self.normalise(raw), self.bin_targets(raw)

    def forward(self, audio: torch.Tensor, attributes: Optional[torch.Tensor] = None
                ) -> torch.Tensor:
        """Offline reconstruction with the latent mean; attributes default to the audio's own."""
        mean, _ = self.encoder(audio)
        if attributes is None:
            attributes = self.normalise(self.attribute_curves(audio))
        return self.decoder(mean, attributes)

    # -- training ----------------------------------------------------------------------
    def configure_optimizers(self):
        t, f, d = self.cfg.training, self.cfg.fader, self.cfg.discriminator
        gen_params = list(self.encoder.parameters()) + list(self.decoder.parameters())
        return [
            torch.optim.Adam([p for p in gen_params if p.requires_grad], t.learning_rate,
                             betas=(0.5, 0.9)),
            torch.optim.Adam(self.latent_discriminator.parameters(), f.learning_rate,
                             betas=(0.5, 0.9)),
            torch.optim.Adam(self.discriminator.parameters(), d.learning_rate, betas=(0.5, 0.9)),
        ]

    def training_step(self, batch: Dict[str, torch.Tensor], batch_idx: int) -> None:
        t, f = self.cfg.training, self.cfg.fader
        step = int(batch["step"])
        audio, raw, attrs, targets = self._inputs(batch)
        gen = self._generator(step)
        opt_gen, opt_latent, opt_critic = self.optimizers()
        frames = attrs.shape[-1]
        logs: Dict[str, float] = {}
        if step < t.adversarial_start:
            learning = not self.encoder_done(step)
            mean, z, kl = self._encode(audio, gen, learning)
            y, band_dc = self._decode(z, attrs, frames, gen, logs)
            rec = self.stft_loss(audio, y)
            loss = rec + band_dc
            if learning:
                beta = t.kl_beta * ramp(step, t.kl_delay, t.kl_ramp)
                lam = f.weight * ramp(step, f.delay, f.ramp)
                loss = loss + beta * kl
                if lam > 0:
                    ce_encoder, _ = latent_cross_entropy(self.latent_discriminator(mean),
                                                         targets)
                    loss = loss - lam * ce_encoder
                logs.update({"weight/kl_beta": beta, "weight/fader_lambda": lam})
            loss = loss + self._control_term(step, z.detach(), attrs, gen, logs)
            opt_gen.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            opt_gen.step()
            if learning:
                ce, accuracy = latent_cross_entropy(self.latent_discriminator(mean.detach()),
                                                    targets)
                opt_latent.zero_grad(set_to_none=True)
                self.manual_backward(ce)
                opt_latent.step()
                logs.update({"latent/cross_entropy": ce, "latent/accuracy": accuracy.mean()})
                logs.update({f"latent/accuracy_{a}": accuracy[i]
                             for i, a in enumerate(self.cfg.model.attributes)})
            logs.update({"loss/generator": loss, "loss/kl": kl})
        else:
            mean, z, kl = self._encode(audio, gen, learning=False)
            y, band_dc = self._decode(z, attrs, frames, gen, logs)
            real = self.discriminator(audio)
            loss_critic = hinge_discriminator_loss(real, self.discriminator(y.detach()))
            opt_critic.zero_grad(set_to_none=True)
            self.manual_backward(loss_critic)
            opt_critic.step()
            fake = self.discriminator(y)
            rec = self.stft_loss(audio, y)
            adv = hinge_generator_loss(fake)
            fm = feature_matching_loss(real, fake)
            loss = rec + band_dc + t.adversarial_weight * adv + t.feature_matching * fm
            loss = loss + self._control_term(step, z, attrs, gen, logs)
            opt_gen.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            opt_gen.step()
            logs.update({"loss/generator": loss, "loss/critic": loss_critic,
                         "loss/adversarial": adv, "loss/feature_matching": fm})
        logs["loss/reconstruction"] = rec
        self.last_metrics = {k: v.detach() if torch.is_tensor(v) else v for k, v in logs.items()}
        self.completed_steps = step + 1
        self.log("rec", rec.detach(), prog_bar=True, logger=False)
        if self.completed_steps % t.log_every == 0 or self.completed_steps == 1:
            self._log_metrics({k: float(v.detach()) if torch.is_tensor(v) else float(v)
                               for k, v in logs.items()})

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.completed_steps >= self.total_steps:
            self.trainer.should_stop = True

    def on_train_start(self) -> None:
        if self.completed_steps >= self.cfg.training.adversarial_start or \
                self.encoder_done(self.completed_steps):
            self.freeze_encoder()

    def _decode(self, z: torch.Tensor, attrs: torch.Tensor, frames: int,
                gen: torch.Generator, logs: Dict[str, Any]):
        """(audio, training.band_dc_weight x the waveform heads' offset, or 0)."""
        noise = self._noise(z.shape[0], frames, gen)
        weight = self.cfg.training.band_dc_weight
        if weight <= 0:
            return self.decoder(z, attrs, noise), torch.zeros((), device=self.device)
        y, heads = self.decoder(z, attrs, noise, with_heads=True)
        offset = waveform_offset(heads)
        logs["loss/band_dc"] = offset
        return y, weight * offset

    def _encode(self, audio: torch.Tensor, gen: torch.Generator, learning: bool):
        """(mean, z, kl) of a batch; with `learning` False the encoder is frozen (once)
        and runs without a graph."""
        if learning:
            mean, scale = self.encoder(audio)
            return (mean, *reparametrize(mean, scale, gen))
        if self.encoder.training:
            self.freeze_encoder()
        with torch.no_grad():
            mean, scale = self.encoder(audio)
            return (mean, *reparametrize(mean, scale, gen))

    def encoder_done(self, step: int) -> bool:
        """Whether the encoder has stopped learning before phase 2 (training.encoder_steps)."""
        return 0 < self.cfg.training.encoder_steps <= step

    def _control_term(self, step: int, z: torch.Tensor, attrs: torch.Tensor,
                      gen: torch.Generator, logs: Dict[str, Any]) -> torch.Tensor:
        """control_weight x the control loss once it applies (else 0); z comes detached, so
        only the decoder learns from it."""
        t = self.cfg.training
        if t.control_weight <= 0 or step < t.control_start:
            return torch.zeros((), device=self.device)
        which = self.controlled.to(self.device)
        m = self.cfg.model
        names = [m.attributes[i] for i in which.tolist()]
        lo, hi, floor = self.attr_min[which], self.attr_max[which], self.attr_floor[which]

        def decode(curves: torch.Tensor) -> torch.Tensor:
            return self.decoder(z, curves, self._noise(z.shape[0], curves.shape[-1], gen))[:, 0]

        def describe(audio: torch.Tensor) -> torch.Tensor:
            # Full precision whatever the trainer's autocast: float16 overflows the
            # spectral sums. Not clipped to [-1, 1] like the decoder's inputs, so a
            # reading past the range still has a gradient back into it.
            with torch.autocast(audio.device.type, enabled=False):
                raw = compute_batch(audio.float(), m.sample_rate, m.hop, names,
                                    dtype=torch.float32)
            return normalise_curves(raw, lo, hi, floor, clip=False)

        control = control_loss(decode, describe, attrs, which, gen, self.silence_level())
        logs["loss/control"] = control
        return t.control_weight * control

    def silence_level(self) -> Optional[Tuple[int, float]]:
        """(index of rms, -60 dBFS in the units the decoder reads rms in), or None."""
        names = self.cfg.model.attributes
        if "rms" not in names:
            return None
        r = names.index("rms")
        audible = torch.full((1, 1, 1), AUDIBLE_RMS, device=self.attr_min.device)
        level = normalise_curves(audible, self.attr_min[r:r + 1], self.attr_max[r:r + 1],
                                 self.attr_floor[r:r + 1], clip=False)
        return r, float(level)

    def freeze_encoder(self) -> None:
        self.encoder.eval()
        for p in self.encoder.parameters():
            p.requires_grad_(False)

    def _log_metrics(self, metrics: Dict[str, float]) -> None:
        if self.logger is not None and self.trainer.is_global_zero:
            self.logger.log_metrics(metrics, step=self.completed_steps)

    # -- validation --------------------------------------------------------------------
    def validation_step(self, batch: Dict[str, torch.Tensor], batch_idx: int) -> None:
        audio, raw, attrs, targets = self._inputs(batch)
        gen = self._generator(2 ** 40 + batch_idx)  # fixed noise, apart from training steps
        mean, _ = self.encoder(audio)
        y = self.decoder(mean, attrs, self._noise(audio.shape[0], attrs.shape[-1], gen))
        _, accuracy = latent_cross_entropy(self.latent_discriminator(mean), targets)
        self._val_outputs.append({"reconstruction": self.stft_loss(audio, y).detach(),
                                  "latent_accuracy": accuracy.mean().detach()})
        if batch_idx == 0:
            self._val_example = {"input": audio[0].detach().float().cpu(),
                                 "output": y[0, 0].detach().float().cpu()}

    def on_validation_epoch_end(self) -> None:
        if not self._val_outputs:
            return
        metrics = {f"valid/{k}": float(torch.stack([o[k] for o in self._val_outputs]).mean())
                   for k in self._val_outputs[0]}
        self._val_outputs.clear()
        self._log_metrics(metrics)
        writer = getattr(self.logger, "experiment", None)
        if self._val_example is not None and self.trainer.is_global_zero and \
                hasattr(writer, "add_audio"):
            sr = self.cfg.model.sample_rate
            for name, wave in self._val_example.items():
                writer.add_audio(f"audio/{name}", wave.clamp(-1, 1)[None], self.completed_steps,
                                 sample_rate=sr)
                writer.add_image(f"spectrogram/{name}", log_spectrogram_image(wave),
                                 self.completed_steps, dataformats="CHW")
        self._val_example = None

    # -- checkpoints -------------------------------------------------------------------
    # Until phase 2 the waveform critic has not learned (its weights are the seeded
    # initialisation, its optimiser never stepped) yet it is 17.6 of a 48 kHz run's
    # 18.7 M parameters: checkpoints and weights leave it out (84 -> 13 MB), and loading
    # takes it from this module's own initialisation, which the seed makes the same.
    def critic_untrained(self) -> bool:
        return self.completed_steps < self.cfg.training.adversarial_start

    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        checkpoint["neurorave"] = {"completed_steps": self.completed_steps, "seed": self.seed,
                                   "config": self.cfg.to_dict()}
        if self.critic_untrained():
            checkpoint["state_dict"] = without_critic(checkpoint["state_dict"])

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        self.completed_steps = int(checkpoint["neurorave"]["completed_steps"])
        checkpoint["state_dict"] = self.with_critic(checkpoint["state_dict"])

    def with_critic(self, state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """`state`, with this module's (initial) critic when it was saved without one."""
        if any(k.startswith(CRITIC_PREFIX) for k in state):
            return state
        critic = {CRITIC_PREFIX + k: v for k, v in self.discriminator.state_dict().items()}
        return {**state, **critic}


CRITIC_PREFIX = "discriminator."


def without_critic(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.startswith(CRITIC_PREFIX)}


def log_spectrogram_image(wave: torch.Tensor, n_fft: int = 512) -> torch.Tensor:
    """[1, F, T] image in [0, 1] of the log magnitude (low frequencies at the bottom)."""
    spec = torch.stft(wave, n_fft, n_fft // 4, window=torch.hann_window(n_fft),
                      return_complex=True).abs()
    db = 20 * torch.log10(spec + 1e-5)
    db = (db - db.max() + 80).clamp_min(0) / 80
    return torch.flip(db, dims=[0])[None]
