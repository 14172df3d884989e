"""Joint prior generation on the device (no torch): one frame at a time.

    gen = PriorGenerator(bundle, engine)      # the engine opened with the "prior" role
    gen.reset(seed)                           # a gate: a new phrase, the same for a seed
    frame = gen.step(pinned, mask, temperature)
    z, attributes = gen.split(frame)          # decoder inputs (exposed dims, raw values)

A frame is the full PCA coordinates followed by the raw attribute values. Where `mask`
is 1 the frame takes `pinned` exactly (CV1 on latent 0, attributes held by a CV in hold
mode, f0 played by 1 V/oct); the prior samples the rest consistently with them and with
the phrase so far. Nothing is
allocated per step: the returned frame is a view the next step overwrites.

A gate asks for a phrase, and a phrase starts with sound: a first frame whose rms the
prior draws below AUDIBLE_RMS is drawn again from the same state with fresh noise (up
to START_TRIES draws; copies of the state are made at a phrase start only). An rms the
musician pins is left as it is.

One hit a gate (`hit_after` = N frames, the bundle's or the player's gate mode "hit"):
after the phrase's first N frames (its attack) the level may only fall. A frame whose
rms the prior draws above the lowest level so far (the start of another hit, a fill) is
drawn again from the same state and noise with rms pinned there, so the rest of the
frame follows a level that decays: a drum voice sounds once for each gate, not its own
rhythm. And a hit is heard over the one before it: its first frame is drawn (up to
START_TRIES) until its rms is HIT_RISE times the level the gate found ringing (within
the rms range), and pinned there if no draw gets there; the rest of the attack (heard
after the phrase lead) stays there or above (at a fast clock the prior's
start, drawn as if from silence, was often no louder than the tail it fell on: gm-drums
at 48 kHz, step 15 000, missed 17 of 119 gates at 8 Hz so, each a rise of 0 dB).
None plays the prior's phrase as it comes.

One note a gate (gate mode "note": `hit_after` and `release` set): a hit held while gate
1 is high (`gate_high`, set before each step) and released when it falls: after the
attack, each frame with the gate low lowers the level the hit may not rise above by the
factor `release`, so a note ends about when its gate does and the next one rises over
what is left of it.
"""
from typing import Optional, Tuple

import numpy as np
from neurorave.models.audibility import AUDIBLE_RMS
from neurorave.models.runtime.bundle import Bundle, BundleError

START_TRIES = 8
HIT_RISE = 4.0  # a hit's first frame over the level it falls on (+12 dB)


class PriorGenerator:
    def __init__(self, bundle: Bundle, engine) -> None:
        if "prior" not in engine.graphs:
            raise BundleError(f"{bundle.name}: no prior graph (open the engine with it)")
        meta = bundle.meta.get("prior", {})
        self.graph = engine.graphs["prior"]
        self.dims = int(meta.get("dims", self.graph.inputs["prev"].shape[-1]))
        self.latent_dims = int(meta.get("latent_dims", bundle.meta.get("latent_full_size",
                                                                       bundle.latent_size)))
        self.exposed = int(bundle.latent_size)
        self.attributes = len(bundle.attributes)
        if self.dims != self.latent_dims + self.attributes:
            raise BundleError(f"{bundle.name}: the prior's {self.dims} dimensions are not "
                              f"{self.latent_dims} latent + {self.attributes} attributes")
        self.start = np.asarray(meta.get("start", np.zeros(self.dims)), np.float32)
        # A mixture's tails reach past what a descriptor can be (a negative RMS): the
        # attributes it generates are held within the bundle's ranges.
        self._lo = np.array([a.min for a in bundle.attributes], np.float32)
        self._hi = np.array([a.max for a in bundle.attributes], np.float32)
        self._attributes = np.zeros(self.attributes, np.float32)
        names = [a.name for a in bundle.attributes]
        self._rms = self.latent_dims + names.index("rms") if "rms" in names else None
        self._prev = self.graph.inputs["prev"]
        self._pinned = self.graph.inputs["pinned"]
        self._mask = self.graph.inputs["mask"]
        self._temperature = self.graph.inputs["temperature"]
        self._out = self.graph.outputs["x"]
        self.frames = 0
        self.hit_after: Optional[int] = None  # frames of attack in a hit; None: phrases
        self.release: Optional[float] = None  # a note's level factor a frame with the gate low
        self.gate_high: Optional[bool] = None  # gate 1 now; None: not followed (holds)
        self._ceiling = 0.0                   # the level a hit may not rise above again
        self._ringing = 0.0                   # the level a gate found playing
        self._floor = 0.0                     # the level a hit's attack stays over
        self.reset()

    def reset(self, seed: Optional[int] = None) -> None:
        """A new phrase: the state and the previous frame back to the start."""
        self.graph.reset(seed)
        # What the last phrase left playing (nothing before its first frame).
        self._ringing = float(self._prev[0, self._rms]) \
            if self._rms is not None and self.frames else 0.0
        self._prev[0] = self.start
        self.frames = 0
        self._ceiling = 0.0
        self._floor = 0.0

    def save_state(self) -> Tuple[np.ndarray, int, float, float, float]:
        """The previous frame, the count, a hit's ceiling, what its gate found ringing
        and its attack's floor (the GRU state is the engine's to save)."""
        return self._prev.copy(), self.frames, self._ceiling, self._ringing, self._floor

    def load_state(self, state: Tuple[np.ndarray, int, float, float, float]) -> None:
        prev, self.frames, self._ceiling, self._ringing, self._floor = state
        self._prev[...] = prev

    def rebind(self, engine) -> None:
        """Go on with `engine`'s prior graph (the voice moved to another engine; its
        caller carried the graph's state and inputs over already)."""
        self.graph = engine.graphs["prior"]
        self._prev = self.graph.inputs["prev"]
        self._pinned = self.graph.inputs["pinned"]
        self._mask = self.graph.inputs["mask"]
        self._temperature = self.graph.inputs["temperature"]
        self._out = self.graph.outputs["x"]

    def step(self, pinned: np.ndarray, mask: np.ndarray, temperature: float = 1.0
             ) -> np.ndarray:
        """The next frame [dims] (a view, valid until the next step)."""
        self._pinned[0] = pinned
        self._mask[0] = mask
        self._temperature[0, 0] = temperature
        free_level = self._rms is not None and not mask[self._rms]
        starting = self.frames == 0 and free_level
        hit = free_level and self.hit_after is not None
        state = self.graph.snapshot()[0] if starting else None
        before = self.graph.snapshot() if hit and self.frames else None
        tries = START_TRIES if starting else 1
        needed = self._start_level() if starting else 0.0
        for attempt in range(tries):
            if attempt:  # the state before the first draw, the noise moved on
                self.graph.restore((state, self.graph.snapshot()[1]))
            self.graph.fill_noise()
            self.graph.run()
            if not starting or self._out[0, self._rms] >= needed:
                break
        else:
            if self.hit_after is not None:  # no draw over what rings: the hit pinned there
                self.graph.restore((state, self.graph.snapshot()[1]))
                self._pinned[0, self._rms] = needed
                self._mask[0, self._rms] = 1.0
                self.graph.fill_noise()
                self.graph.run()
        if starting:  # the whole attack stays over what rang (heard after the lead)
            self._floor = needed if self._ringing > 0.0 else 0.0
        if hit:
            self._hold_to_one_hit(before)
        self._prev[...] = self._out
        self.frames += 1
        return self._out[0]

    def _start_level(self) -> float:
        """The rms a phrase's first frame is drawn to reach: audible, and a hit over
        what its gate found ringing (as far as the rms range goes)."""
        if self.hit_after is None or self._rms is None:
            return AUDIBLE_RMS
        top = float(self._hi[self._rms - self.latent_dims])
        return max(AUDIBLE_RMS, min(HIT_RISE * self._ringing, top))

    def _hold_to_one_hit(self, before) -> None:
        """A hit's level: during the attack free (its peak kept) but not under the floor
        its gate set, then never above the lowest level since; a frame drawn outside
        that is drawn again (same state, same noise) with rms pinned at the bound."""
        rms, hit_after = self._rms, self.hit_after
        assert rms is not None and hit_after is not None  # only called in hit mode
        level = float(self._out[0, rms])
        if before is None:                   # the first frame (its start drawn above)
            self._ceiling = max(self._ceiling, level)
            return
        attack = self.frames < hit_after
        if not attack and self.release is not None and self.gate_high is False:
            self._ceiling *= self.release  # a note released
        if attack and level >= self._floor:
            self._ceiling = max(self._ceiling, level)
            return
        if not attack and level <= self._ceiling:
            self._ceiling = level
            return
        bound = self._floor if attack else self._ceiling
        self.graph.restore(before)
        self._pinned[0, rms] = bound
        self._mask[0, rms] = 1.0
        self.graph.fill_noise()
        self.graph.run()
        if attack:
            self._ceiling = max(self._ceiling, bound)

    def split(self, frame: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Decoder inputs from a frame: the exposed latent dims and the raw attributes
        (within the bundle's ranges)."""
        np.clip(frame[self.latent_dims:], self._lo, self._hi, out=self._attributes)
        return frame[:self.exposed], self._attributes
