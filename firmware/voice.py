"""The voice: controls in, one latent frame of audio out, into the ring.

Two layers:
- `VoiceModel`: one loaded bundle and everything that belongs to it (the engine's
  decoder with its streaming state, the control mapper, the latent source, the
  resampler to the device's rate). `render(inputs)` makes the next latent frame(s) as
  a device-rate block. Pure computation, so `neurorave render` runs it offline, faster
  than real time, and deterministic with a seed.
- `Voice`: the voice thread. It keeps the ring one latent frame (plus a device block)
  ahead of the audio consumer, takes the newest control inputs the scheduler posted,
  fades in at the start, fades out at a stop, and swaps models with a fade-out of the
  old one followed by a fade-in of the new one (never a hard cut, so never a click).
  A bad frame (an engine error, NaN) is replaced by silence and counted: the voice
  never stops playing because of one.

Latent source: bundles with a prior generate (issue 6); every other bundle plays in
latent exploration: z is a point in the bundle's PCA space, CV1 moves coordinate 0
(in units of that coordinate's spread on the training set), and each gate-1 rise
glides the other coordinates to a new random point (scaled by the temperature).
"""
import collections
import os
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np
from neurorave.common.errors import first_line
from neurorave.firmware.calibration import CVCalibration
from neurorave.firmware.controls import (
    DEFAULT_CV_RANGES,
    GATE_MODES,
    ControlMapper,
    ControlSettings,
    ControlSnapshot,
)
from neurorave.firmware.realtime import realtime_thread
from neurorave.firmware.ring import AudioRing
from neurorave.firmware.stats import Stats
from neurorave.models.runtime.bundle import DEFAULT_PHRASE_LEAD, Bundle, load_bundle
from neurorave.models.runtime.engine_prepare import open_ready
from neurorave.models.runtime.engines import Engine
from neurorave.models.runtime.generator import PriorGenerator
from neurorave.models.runtime.resample import StreamResampler

GATE_COUNT = 2
EXPLORE_GLIDE_S = 0.08   # a new phrase point is reached in about this long
FADE_S = 0.02            # start, stop and model-switch fades
# A gate cuts the sound it interrupts this fast: long enough not to click, short enough
# to keep the attack that follows (a drum's is a few ms).
GATE_FADE_S = 0.003
# In gate modes "hit" and "note", a phrase's level is free for this long (the attack), then
# only falls.
HIT_ATTACK_S = 0.03
# In gate mode "note", once gate 1 is low and the attack has played, the level falls with
# this time constant (-8.7 dB each 50 ms). At an 8 Hz clock of 25% gates a note held to
# the next gate rang 5 to 7 dB under the top of the rms range, so the next note could
# not rise over it and no onset marked the gate (gm-notes-48k, step 8 000, hit mode: 142
# of 239 gates answered).
NOTE_RELEASE_S = 0.05
RENDER_MARGIN = 1.5      # times the slowest recent render
SCHEDULING_SLACK_S = 0.002  # wake-up jitter of the voice thread
LIMIT_KNEE = 0.8         # the output stage passes the voice unchanged up to here
MIN_WAIT_S, MAX_WAIT_S = 0.0005, 0.02
# Frames a swapped-in engine renders on the voice thread before the one it replaced is
# let go (a third of a second at 256-sample frames, 4 s at 1024 at 16 kHz).
ENGINE_TRIAL_FRAMES = 64
QUEUED_FRAMES = 16       # frames remembered for a gate to re-render (more than queue)
# A queued frame's gated twin is rendered ahead (speculation) only while a frame and its
# twin together take less than this share of a frame's time (at the renders' 75th
# percentile), so the queue has room for them.
SPECULATE_LOAD = 0.75


class ControlInputs:
    """What the scheduler hands the voice for one frame: CV volts and gate events since
    the previous frame (with the edge times, for latency)."""

    __slots__ = ("volts", "gate1_rise", "gate2_rise", "gate2_high", "temperature", "edge_ns",
                 "gate1_high")

    def __init__(self, volts: Sequence[float] = (0.0, 0.0, 0.0, 0.0), gate1_rise: bool = False,
                 gate2_rise: bool = False, gate2_high: bool = False, temperature: float = 1.0,
                 edge_ns: int = 0, gate1_high: Optional[bool] = None):
        self.volts = list(volts)
        self.gate1_rise = gate1_rise
        self.gate2_rise = gate2_rise
        self.gate2_high = gate2_high
        self.temperature = temperature
        self.edge_ns = edge_ns  # monotonic ns of the newest gate-1 rise in this frame, or 0
        # Gate 1 at the frame's end; None where the caller does not follow it (a note
        # then holds as a hit does).
        self.gate1_high = gate1_high


class LatentExplorer:
    """z for bundles without a prior: CV1 on coordinate 0, gate 1 picks a new point."""

    def __init__(self, stds: "Sequence[float] | np.ndarray", frame_rate_hz: float,
                 seed: int = 0):
        self.stds = np.asarray(stds, dtype=np.float64)
        self._alpha = 1.0 - float(np.exp(-1.0 / max(EXPLORE_GLIDE_S * frame_rate_hz / 3, 1e-9)))
        self._seed = seed
        self.reset()

    def reset(self) -> None:
        self._rng = np.random.default_rng(self._seed)
        self.target = np.zeros(len(self.stds))
        self.z = np.zeros(len(self.stds))

    def new_phrase(self, temperature: float) -> None:
        self.target = self._rng.standard_normal(len(self.stds)) * self.stds * temperature

    def save_state(self) -> Tuple[np.ndarray, np.ndarray, Any]:
        return self.z.copy(), self.target.copy(), self._rng.bit_generator.state

    def load_state(self, state: Tuple[np.ndarray, np.ndarray, Any]) -> None:
        z, target, rng_state = state
        self.z, self.target = z.copy(), target.copy()
        self._rng.bit_generator.state = rng_state

    def step(self, latent0: float) -> np.ndarray:
        self.z += self._alpha * (self.target - self.z)
        out = self.z.copy()
        if len(out):
            out[0] = latent0 * self.stds[0]
        return out


def pca_stds(bundle: Bundle) -> np.ndarray:
    """Spread of each exposed PCA coordinate on the training set (older bundles: from the
    explained-variance ratios of a unit-variance latent)."""
    pca = bundle.meta.get("pca", {})
    size = int(bundle.meta["latent_size"])
    if "std" in pca:
        stds = np.asarray(pca["std"], dtype=np.float64)[:size]
    else:
        ratio = np.asarray(pca.get("explained_variance_ratio", np.full(size, 1.0 / size)))
        stds = np.sqrt(ratio[:size] * len(ratio))
    return np.where(np.isfinite(stds) & (stds > 0), stds, 1.0)


class VoiceModel:
    """One bundle, ready to render: engine, mapper, latent source, resampler."""

    def __init__(self, path: str, device_rate: int, engine_kind: str = "auto",
                 threads: int = 1, settings: Optional[ControlSettings] = None,
                 calibration: Optional[CVCalibration] = None, seed: int = 0,
                 cv_ranges: Sequence[Tuple[float, float]] = DEFAULT_CV_RANGES,
                 cache_dir: Optional[str] = None):
        start = time.perf_counter()
        self.path = path
        self.bundle = load_bundle(path)
        roles = ["decoder", "prior"] if self.bundle.has_prior else ["decoder"]
        self.roles = roles
        self.cache_dir = cache_dir
        # `auto` with an engine cache: a GPU engine built before, else the CPU one now
        # (firmware/engine_upgrade.py builds the GPU one meanwhile and swaps it in).
        self.engine: Engine = open_ready(self.bundle, engine_kind, threads, roles, cache_dir)
        self.decoder = self.engine.graphs["decoder"]
        self.frames_per_call = self.decoder.spec.frames_per_call
        self.frame_size = self.bundle.frame_size
        self.sample_rate = self.bundle.sample_rate
        self.frame_rate_hz = self.sample_rate / self.frame_size
        self.device_rate = int(device_rate)
        self.seed = seed
        self.mapper = ControlMapper(self.bundle.attributes, self.frame_rate_hz, settings,
                                    calibration, seed, generated=self.bundle.has_prior,
                                    cv_ranges=cv_ranges)
        self.explorer = LatentExplorer(pca_stds(self.bundle), self.frame_rate_hz, seed)
        self.resampler = StreamResampler(self.sample_rate, self.device_rate)
        self._z = self.decoder.inputs["z"]
        self._attributes = self.decoder.inputs["attributes"]
        self._audio = self.decoder.outputs[self.decoder.spec.outputs[0].name]
        self.last_snapshot: Optional[ControlSnapshot] = None
        self.played: Optional[np.ndarray] = None
        self.generator: Optional[PriorGenerator] = None
        self._bundle_gate = GATE_MODES[0]
        self.mode = "explore"
        self.phrase_lead = 0  # decoder calls; a lead of frames would count frames_per_call
        self._lead_fade = max(1, int(GATE_FADE_S * self.sample_rate))
        if self.bundle.has_prior:
            default = DEFAULT_PHRASE_LEAD if self.frames_per_call == 1 else 0
            self.phrase_lead = int(self.bundle.meta.get("prior", {}).get("lead", default))
            self.generator = PriorGenerator(self.bundle, self.engine)
            self.mode = "prior"
            self._bundle_gate = str(self.bundle.meta["prior"].get("gate", self._bundle_gate))
            self._pinned = np.zeros(self.generator.dims, np.float32)
            self._mask = np.zeros(self.generator.dims, np.float32)
        self._std0 = float(pca_stds(self.bundle)[0])
        self.phrases = 0
        self.gate_mode = GATE_MODES[0]
        self._set_gate_mode(settings)
        self.load_s = time.perf_counter() - start

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def samples_per_call(self) -> int:
        return self.frame_size * self.frames_per_call

    def reset(self) -> None:
        """Back to the first frame: state, noise, controls, latent source, resampler."""
        self.engine.reset()
        self.mapper.reset()
        self.explorer.reset()
        self.resampler.reset()
        self.phrases = 0
        if self.generator is not None:
            self.generator.reset(self.seed)

    def snapshot(self) -> Optional[Dict[str, Any]]:
        """Everything the next `render` depends on, to render that frame again with
        other controls (a gate that arrives while the frame is still queued); None
        where the resampler cannot go back (soxr)."""
        resampler = self.resampler.snapshot()
        if resampler is None:
            return None
        saved: Dict[str, Any] = {
            "engine": self.engine.snapshot(), "resampler": resampler,
            "mapper": self.mapper.save_state(), "explorer": self.explorer.save_state(),
            "phrases": self.phrases, "last_snapshot": self.last_snapshot,
        }
        if self.generator is not None:
            saved["generator"] = self.generator.save_state()
        return saved

    def restore(self, saved: Dict[str, Any]) -> None:
        self.engine.restore(saved["engine"])
        self.resampler.restore(saved["resampler"])
        self.mapper.load_state(saved["mapper"])
        self.explorer.load_state(saved["explorer"])
        self.phrases = saved["phrases"]
        self.last_snapshot = saved["last_snapshot"]
        if self.generator is not None:
            self.generator.load_state(saved["generator"])

    def adopt_engine(self, engine: Engine) -> Engine:
        """Go on with `engine` (the same bundle on another kind) exactly where the current
        one is: every graph's streaming state and noise generator, and its inputs, carried
        over, so the next frame is the one the old engine would have made (to the new
        engine's precision): no click. Between frames only (the voice thread's turn).
        Returns the engine it replaced."""
        return self.use_engine(engine, self.engine.snapshot())

    def use_engine(self, engine: Engine, saved: Dict[str, Any]) -> Engine:
        """Go on with `engine` from the streaming state `saved` (an `Engine.snapshot()`),
        the inputs carried over; returns the engine it replaced."""
        old = self.engine
        for role, graph in engine.graphs.items():
            for name, array in old.graphs[role].inputs.items():
                graph.inputs[name][...] = array
        engine.restore(saved)
        self.engine = engine
        self.decoder = engine.graphs["decoder"]
        self._z = self.decoder.inputs["z"]
        self._attributes = self.decoder.inputs["attributes"]
        self._audio = self.decoder.outputs[self.decoder.spec.outputs[0].name]
        if self.generator is not None:
            self.generator.rebind(engine)
        return old

    def configure(self, settings: ControlSettings, calibration: CVCalibration) -> None:
        self.mapper.calibration = calibration
        self.mapper.configure(settings)
        self._set_gate_mode(settings)

    def _set_gate_mode(self, settings: Optional[ControlSettings]) -> None:
        """The player's gate mode, else the bundle's: in "hit" and "note" the prior's level
        may only fall once the attack (the phrase lead and HIT_ATTACK_S) has played; in
        "note" it falls at NOTE_RELEASE_S from when gate 1 is low."""
        if self.generator is None:
            return
        chosen = settings.gate_mode if settings is not None else None
        self.gate_mode = chosen or self._bundle_gate
        attack = int(np.ceil(HIT_ATTACK_S * self.frame_rate_hz))
        self.generator.hit_after = self.phrase_lead * self.frames_per_call + attack \
            if self.gate_mode in ("hit", "note") else None
        self.generator.release = float(np.exp(-1.0 / (NOTE_RELEASE_S * self.frame_rate_hz))) \
            if self.gate_mode == "note" else None

    def render(self, inputs: ControlInputs) -> np.ndarray:
        """The next decoder call's audio at the device rate (length varies by a sample).

        A gate starts a phrase `phrase_lead` decoder calls early: the call after them is
        played, crossfaded (GATE_FADE_S) from the first of them, which joins what was
        played before. The bundled models answer a phrase's first frame late: its attack
        lies anywhere in that 64 ms (phrases were learned from onset frames), and
        gm-drums' decoder sounds a frame after its rms rises (its descriptors look half
        a frame ahead). Measured with `neurorave evaluate` (`answer_ms`, 600 s of its
        generation patch): models/pretrained/README.md.
        """
        if inputs.gate1_rise and self.generator is not None and self.phrase_lead:
            joins = self._decode(inputs)[:self._lead_fade].copy()
            inputs = ControlInputs(inputs.volts, False, False, inputs.gate2_high,
                                   inputs.temperature, inputs.edge_ns, inputs.gate1_high)
            for _ in range(self.phrase_lead - 1):
                self._decode(inputs)
            return self.resampler.process(crossfade(joins, self._decode(inputs)))
        return self.resampler.process(self._decode(inputs))

    def _decode(self, inputs: ControlInputs) -> np.ndarray:
        """One decoder call at the model's rate (a view of the engine's output)."""
        for k in range(self.frames_per_call):
            rise1 = inputs.gate1_rise and k == 0
            snapshot = self.mapper.step(inputs.volts, inputs.gate2_rise and k == 0,
                                        inputs.gate2_high)
            if self.generator is not None:
                self.generator.gate_high = inputs.gate1_high
                self._generate(snapshot, rise1, inputs.temperature, k)
            else:
                if rise1:
                    self.explorer.new_phrase(inputs.temperature)
                self._z[0, :, k] = self.explorer.step(snapshot.latent0)
                self._attributes[0, :, k] = snapshot.attributes
            self.last_snapshot = snapshot
        # What the decoder plays (a prior fills in the attributes the CVs leave free).
        self.played = self._attributes[0, :, -1].copy()
        self.decoder.fill_noise()
        self.decoder.run()
        block = self._audio.reshape(-1)
        if not np.all(np.isfinite(block)):
            raise FloatingPointError("the decoder produced NaN or inf")
        return block

    def _generate(self, snapshot: ControlSnapshot, new_phrase: bool, temperature: float,
                  k: int) -> None:
        """One frame from the prior: CV1 holds latent 0; the CVs hold their attributes
        (hold mode) or move them away from the prior's (slide mode)."""
        gen = self.generator
        assert gen is not None
        if new_phrase:
            self.phrases += 1
            gen.reset(self.seed + self.phrases)
        self._mask.fill(0.0)
        self._pinned[0] = snapshot.latent0 * self._std0
        self._mask[0] = 1.0
        for a in self.mapper.pinned_attributes():
            self._pinned[gen.latent_dims + a] = snapshot.attributes[a]
            self._mask[gen.latent_dims + a] = 1.0
        frame = gen.step(self._pinned, self._mask, temperature)
        z, attributes = gen.split(frame)
        self._z[0, :, k] = z
        self._attributes[0, :, k] = self.mapper.slide(attributes, snapshot)

    def describe(self) -> str:
        return (f"{self.name}: {self.sample_rate} Hz, {self.frame_size} samples/frame, "
                f"{len(self.bundle.attributes)} attributes, {self.mode}, "
                f"{self.engine.describe()}")


def output_stage(block: np.ndarray, level: float) -> np.ndarray:
    """The output level, then a soft limiter: unchanged up to LIMIT_KNEE, above it bent
    smoothly (tanh, slope 1 at the knee) toward full scale, which it never passes. A
    hard clip at full scale squares off a loud peak with a harsh edge; a player who
    turns the level or the rms CV up gets a rounded peak instead, as from an analogue
    output stage. At the default level (0.8) the bundled voices stay under the knee but
    for rare peaks (models/pretrained/README.md)."""
    out = np.asarray(block, dtype=np.float32) * np.float32(level)
    over = np.abs(out) - LIMIT_KNEE
    hot = over > 0
    if hot.any():
        room = 1.0 - LIMIT_KNEE
        out[hot] = np.sign(out[hot]) * (LIMIT_KNEE + room * np.tanh(over[hot] / room))
    return out


def _rise(n: int) -> np.ndarray:
    """A raised-cosine rise over n samples, from just above 0 to just below 1."""
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 1) / (n + 1))).astype(np.float32)


def fade(block: np.ndarray, rising: bool, length: int) -> np.ndarray:
    """A raised-cosine fade over the first `length` samples (then 1, or 0 when falling)."""
    n = len(block)
    ramp = np.ones(n, dtype=np.float32)
    m = min(n, max(1, length))
    shape = _rise(m)
    ramp[:m] = shape if rising else shape[::-1]
    if not rising:
        ramp[m:] = 0.0
    return block * ramp


def crossfade(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """`new` with its first len(old) samples crossfaded (raised cosine) from `old`: where
    a gate's frame cuts in over the sound it interrupts."""
    out = np.array(new, dtype=np.float32)
    n = min(len(old), len(out))
    w = _rise(n)
    out[:n] = old[:n] * (1 - w) + out[:n] * w
    return out


class QueuedFrame:
    """A frame written to the ring, remembered while a gate may still replace it: where
    it starts, its samples, the model state before it (None: cannot go back), whether it
    took a gate-2 rise (a re-render takes that rise again), and its gated twin once
    speculated (the same frame with a gate-1 rise, and the state after that)."""

    __slots__ = ("start", "samples", "before", "rise2", "gated", "gated_after", "tried")

    def __init__(self, start: int, samples: np.ndarray, before: Optional[Dict[str, Any]],
                 rise2: bool):
        self.start = start
        self.samples = samples
        self.before = before
        self.rise2 = rise2
        self.gated: Optional[np.ndarray] = None
        self.gated_after: Optional[Dict[str, Any]] = None
        self.tried = False

    @property
    def end(self) -> int:
        return self.start + len(self.samples)


class EngineOffer:
    """Another engine for the model that plays, handed to the voice thread."""

    def __init__(self, model: VoiceModel, engine: Engine):
        self.model = model
        self.engine = engine
        self.taken = False
        self.replaced: Optional[Engine] = None
        self.done = threading.Event()


class Voice:
    """The voice thread: keeps the ring filled with the current model's frames."""

    def __init__(self, ring: AudioRing, device_rate: int, stats: Stats,
                 lookahead: int, level: float = 0.8,
                 play_time: Optional[Callable[[int], Optional[float]]] = None,
                 on_error: Optional[Callable[[str], None]] = None):
        self.ring = ring
        self.device_rate = int(device_rate)
        self.stats = stats
        self.lookahead = int(lookahead)   # the device block: the least the ring must hold
        # Rendering takes time, so a frame starts while the ring still holds enough to
        # cover it: the slowest recent render, with a margin. It starts cautious (until
        # renders are measured) and adapts down; it is latency, so no more than needed.
        self._render_s: Deque[float] = collections.deque(maxlen=64)
        self.level = float(level)
        self.temperature = 1.0
        self._play_time = play_time
        self._on_error = on_error
        self.volts: List[float] = [0.0] * 4  # replaced whole by the scheduler (atomic)
        self.gate1_high = False
        self.gate2_high = False
        self._edges: Deque[Tuple[int, bool, int]] = collections.deque(maxlen=256)
        self.model: Optional[VoiceModel] = None
        self._next_model: Optional[VoiceModel] = None
        self._swap = False
        self._fade_len = max(1, int(FADE_S * self.device_rate))
        self._gate_fade_len = max(1, int(GATE_FADE_S * self.device_rate))
        self._fading_in = True
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._wake = threading.Event()  # a gate (or a stop) ends the voice thread's wait
        self._thread: Optional[threading.Thread] = None
        self._pending_latency: Deque[Tuple[int, int]] = collections.deque(maxlen=64)
        self.late_frames = 0
        self.rerenders = 0          # gates spliced into the queue (either way)
        self.speculated = 0         # of those, spliced from a twin rendered ahead
        self.gates = 0              # gate-1 rises posted
        # Off (or NEURORAVE_NO_RERENDER set): a gate waits for the next frame.
        self.rerender = os.environ.get("NEURORAVE_NO_RERENDER") is None
        # Off (or NEURORAVE_NO_SPECULATE set): a gate renders its frame when it comes.
        self.speculate = os.environ.get("NEURORAVE_NO_SPECULATE") is None
        self._gate1_waiting = False
        self._queued: Deque[QueuedFrame] = collections.deque(maxlen=QUEUED_FRAMES)
        self._fade_old = np.zeros(self._gate_fade_len, np.float32)
        self._snap: Optional[Dict[str, Any]] = None
        self._snap_rise2 = False
        self.swaps: List[int] = []
        self.first_sound_index: Optional[int] = None  # ring index of the first model sample
        self.realtime_refused: Optional[str] = None
        self.bad_frames = 0
        self.frames = 0
        self._engine_offer: Optional[EngineOffer] = None
        self.engine_swaps: List[int] = []  # ring indices where a model changed engine
        self._engine_trial: Optional[Dict[str, Any]] = None
        self.engine_reverts = 0
        # (model, kind that failed, why): a swapped-in engine failed on this thread.
        self.on_engine_failed: Optional[Callable[[VoiceModel, str, str], None]] = None

    # ---- from the scheduler -------------------------------------------------------
    def post_gate(self, gate: int, rising: bool, t_ns: int) -> None:
        self._edges.append((gate, rising, t_ns))
        if gate == 0 and rising:
            self.gates += 1
            self._gate1_waiting = True
            self._wake.set()

    def set_model(self, model: Optional[VoiceModel]) -> None:
        """Play `model` next: the current one fades out, the new one fades in."""
        if model is not None:
            model.reset()
        self._next_model = model
        self._swap = True
        self._wake.set()

    def offer_engine(self, model: VoiceModel, engine: Engine) -> "EngineOffer":
        """Play `model` on `engine` from the next frame on (it carries the state over,
        `VoiceModel.adopt_engine`); refused when `model` no longer plays by then. The
        offer's `done` is set once the voice thread has decided."""
        offer = EngineOffer(model, engine)
        self._engine_offer = offer
        self._wake.set()
        return offer

    def _take_engine_offer(self) -> None:
        offer, self._engine_offer = self._engine_offer, None
        if offer is None:
            return
        if offer.model is self.model and not self._swap:
            saved = offer.model.engine.snapshot()
            offer.replaced = offer.model.adopt_engine(offer.engine)
            offer.taken = True
            self.engine_swaps.append(self.ring.total_written)
            # The engine it replaced is kept until the new one has rendered a while on
            # this thread: a GPU engine can open fine elsewhere and fail here (a CUDA
            # context not current on this thread), and then the old one takes over.
            self._engine_trial = {"model": offer.model, "engine": offer.replaced,
                                  "saved": saved, "good": 0}
        offer.done.set()

    def _engine_verdict(self, model: VoiceModel, failure: Optional[str]) -> bool:
        """Count a frame of a swapped-in engine on trial; on a failure go back to the
        engine it replaced (from the state of the swap) and say so. True when it did."""
        trial = self._engine_trial
        if trial is None or trial["model"] is not model:
            return False
        if failure is None:
            trial["good"] += 1
            if trial["good"] >= ENGINE_TRIAL_FRAMES:
                self._engine_trial = None  # the old engine is let go
            return False
        self._engine_trial = None
        failed = model.use_engine(trial["engine"], trial["saved"])
        self.engine_reverts += 1
        self.stats.engine, self.stats.provider = model.engine.kind, model.engine.provider
        if self.on_engine_failed is not None:
            self.on_engine_failed(model, failed.kind, failure)
        return True

    def start(self) -> None:
        self._stop.clear()
        self._stopped.clear()
        self._thread = threading.Thread(target=self._run, name="voice", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> bool:
        """Fade out, stop rendering; True when the fade reached the ring in time."""
        self._stop.set()
        self._wake.set()
        done = self._stopped.wait(timeout)
        if self._thread is not None:
            self._thread.join(timeout=0.1)
        return done

    # ---- the thread -----------------------------------------------------------------
    def _inputs(self, edges: Optional[List[Tuple[int, bool, int]]] = None) -> ControlInputs:
        """The controls for the next frame: the newest volts and the gate edges since the
        last frame (`edges`, else all that are queued)."""
        if edges is None:
            edges = []
            while self._edges:
                edges.append(self._edges.popleft())
        rise1 = rise2 = False
        edge_ns = 0
        for gate, rising, t_ns in edges:
            if gate == 0:
                self.gate1_high = rising
                if rising:
                    rise1, edge_ns = True, t_ns
            elif gate == 1:
                rise2 = rise2 or rising
                self.gate2_high = rising
        return ControlInputs(self.volts, rise1, rise2, self.gate2_high, self.temperature,
                             edge_ns, self.gate1_high)

    def _render_block(self) -> np.ndarray:
        model = self.model
        if model is None:
            self._edges.clear()  # nothing to play them on; a late phrase start is worse
            self._snap = None
            return np.zeros(max(1, self.lookahead // 4), dtype=np.float32)
        inputs = self._inputs()
        self._snap = model.snapshot() if self.rerender else None
        self._snap_rise2 = inputs.gate2_rise
        start = time.perf_counter()
        try:
            block = model.render(inputs)
            self._engine_verdict(model, None)
        except Exception as exc:  # noqa: BLE001 - a bad frame becomes silence, never a stop
            block = self._failed_frame(model, inputs, exc)
        elapsed = time.perf_counter() - start
        self._render_s.append(elapsed)
        self.stats.inference.add(elapsed * 1e3 / model.frames_per_call)
        if elapsed > model.samples_per_call / model.sample_rate:
            self.late_frames += 1
        self.frames += model.frames_per_call
        if inputs.edge_ns:
            self._pending_latency.append((self.ring.total_written, inputs.edge_ns))
        return block

    def _failed_frame(self, model: VoiceModel, inputs: ControlInputs,
                      exc: Exception) -> np.ndarray:
        """A frame that raised: rendered again on the engine a new one replaced (when
        one is on trial), else silence; counted and said."""
        if self._engine_verdict(model, first_line(exc)):
            try:
                return model.render(inputs)
            except Exception as again:  # noqa: BLE001 - silence, never a stop
                exc = again
        self.bad_frames += 1
        if self._on_error is not None:
            self._on_error(f"voice: {exc}")
        return np.zeros(int(round(model.samples_per_call * self.device_rate
                                  / model.sample_rate)), dtype=np.float32)

    def _write(self, block: np.ndarray, scale: bool = True) -> np.ndarray:
        if scale:
            block = output_stage(block, self.level)
        offset = 0
        while offset < len(block):
            offset += self.ring.write(block[offset:])
            if offset < len(block):
                time.sleep(0.001)
        self.stats.block_rendered()
        return block

    def _rerender_queued_frame(self) -> bool:
        """A gate while frames are still queued: the frame that will be playing when the
        gate's frame is ready is replaced by itself with the gate, played whole from the
        next sample the consumer reads (`AudioRing.splice`: the queued sound cut by a
        short crossfade, everything after it taken back); the frames after it follow
        from there. So a gate waits for the next device period, not for the queue (with
        256-sample frames the queue is two to three frames: 12 to 17 ms). True when it
        was spliced in; else the next frame takes the gate.

        The gated frame is the twin rendered ahead (`_speculate`) when that frame has
        one: then the gate waits for no render at all. Otherwise it is rendered now,
        from the state before that frame, and lands one render later.

        Whole: the gate's frame begins with its attack, so it starts at the splice.
        Spliced in at its own offset instead, the attack (up to a frame's worth) was
        skipped and the gate heard late.
        """
        self._gate1_waiting = False
        model = self.model
        if model is None or not self._queued:
            return False
        # The edges this splice takes, drained once: an edge a driver thread posts
        # meanwhile stays queued for the next frame, and a give-up puts back these alone.
        edges = []
        while self._edges:
            edges.append(self._edges.popleft())
        gate2_high = self.gate2_high
        inputs = self._inputs(edges)
        read = self.ring.total_read
        frame = next((f for f in self._queued if read < f.end), None)
        twin = frame is not None and frame.gated is not None
        # A gate-2 edge with the gate goes to the frame after the twin: its macro glides
        # anyway, and a clock that drives both gates (gate 2 on every other gate-1 rise
        # in bench_daemon's patch) had half its gates wait for a render, not the twin.
        deferred: List[Tuple[int, bool, int]] = []
        if frame is None or not twin:
            calls = 1 + model.phrase_lead
            render = max(self._render_s, default=0.02) * RENDER_MARGIN * calls
            ahead = read + int(render * self.device_rate)  # read point when ready
            frame = next((f for f in self._queued if ahead < f.end), None)
        if frame is None or frame.before is None:
            # All played by then, or a resampler that cannot go back (soxr): the next
            # frame takes the gate.
            self._edges.extendleft(reversed(edges))
            return False
        state: Optional[Dict[str, Any]] = None  # where the model goes on from a twin
        if twin and frame.gated is not None and frame.gated_after is not None:
            new, state, after = frame.gated, frame.gated_after, None
            deferred = [edge for edge in edges if edge[0] == 1]
            inputs.gate2_rise = False
        else:
            twin = False
            after = model.snapshot()
            model.restore(frame.before)
            inputs.gate2_rise = inputs.gate2_rise or frame.rise2  # the replaced frame's too
            t0 = time.perf_counter()
            try:
                new = output_stage(model.render(inputs), self.level)
            except Exception:  # noqa: BLE001 - keep what is queued; the next frame has it
                new = np.zeros(0, np.float32)
            self.stats.inference.add((time.perf_counter() - t0) * 1e3 / model.frames_per_call)
        n = self._gate_fade_len
        old = self._fade_old

        def joined(index: int) -> Optional[np.ndarray]:
            # Under the ring's lock: the consumer is between reads.
            if self.ring.peek(index, old) < n:
                return None               # the queue ran out meanwhile
            return crossfade(old, new)

        keep = self.ring.splice(frame.start, joined) \
            if len(new) > n and (after is not None or state is not None) else None
        if keep is None:                  # give up: as if nothing happened
            if after is not None:
                model.restore(after)
            self._edges.extendleft(reversed(edges))
            return False
        if state is not None:
            model.restore(state)          # go on from the gated twin
        if deferred:
            self.gate2_high = gate2_high  # as before them: the next frame takes them
            self._edges.extendleft(reversed(deferred))
        rise2 = frame.rise2 or inputs.gate2_rise
        while self._queued and self._queued[-1].end > keep:
            self._queued.pop()            # taken back (or cut) by the splice
        self._queued.append(QueuedFrame(keep, new, frame.before, rise2))
        self.stats.block_rendered()
        self.rerenders += 1
        self.speculated += twin
        while self._pending_latency and self._pending_latency[-1][0] >= keep:
            self._pending_latency.pop()   # gates whose frames were taken back
        if inputs.edge_ns:
            self._pending_latency.append((keep, inputs.edge_ns))
        return True

    def _speculating(self) -> bool:
        """Whether frames get gated twins: while a frame and its twin (with the phrase
        lead) take well under a frame's time, so the queue never waits for them."""
        model = self.model
        if not (self.speculate and self.rerender) or model is None or \
                len(self._render_s) < 2:
            return False
        frame_s = model.samples_per_call / model.sample_rate
        gated = 1 + model.phrase_lead     # decoder calls of a gated frame
        typical = sorted(self._render_s)[len(self._render_s) * 3 // 4]
        return typical * (1 + gated) < SPECULATE_LOAD * frame_s

    def _speculate(self) -> bool:
        """Render the gated twin of the first queued frame still ahead of the reader
        that has none: the frame again from the state before it, with a gate-1 rise,
        and the state after that; then back to where the voice was. A gate then splices
        the twin in without waiting for a render. True when it rendered one."""
        model = self.model
        if model is None or not self._speculating():
            return False
        read = self.ring.total_read
        frame = next((f for f in self._queued
                      if not f.tried and f.before is not None and f.end > read), None)
        if frame is None or frame.before is None:
            return False
        frame.tried = True
        after = model.snapshot()
        if after is None:
            return False
        model.restore(frame.before)
        inputs = ControlInputs(self.volts, True, frame.rise2, self.gate2_high,
                               self.temperature, 0, True)  # the gate it guesses is high
        try:
            frame.gated = output_stage(model.render(inputs), self.level)
            frame.gated_after = model.snapshot()
        except Exception:  # noqa: BLE001 - no twin: a gate on this frame renders it
            frame.gated = frame.gated_after = None
        model.restore(after)
        return True

    def threshold(self) -> int:
        """Ring samples below which the next frame is rendered."""
        if len(self._render_s) < 8:
            worst = 0.02
        else:
            worst = max(self._render_s)
        if self._speculating() and self.model is not None:
            worst *= 2 + self.model.phrase_lead  # a twin may be rendering when it falls
        margin = RENDER_MARGIN * worst + SCHEDULING_SLACK_S
        return self.lookahead + int(margin * self.device_rate)

    def _measure_latency(self) -> None:
        if self._play_time is None:
            return
        while self._pending_latency:
            index, edge_ns = self._pending_latency[0]
            heard = self._play_time(index)
            if heard is None:
                return
            self._pending_latency.popleft()
            self.stats.latency.add((heard - edge_ns / 1e9) * 1e3)

    def _run(self) -> None:
        if os.environ.get("NEURORAVE_NO_RT") is None:
            self.realtime_refused = realtime_thread()
        while True:
            try:
                if self._turn():
                    break
            except Exception as exc:  # noqa: BLE001 - the voice thread never dies
                self.bad_frames += 1
                self._queued.clear()
                if self._on_error is not None:
                    self._on_error(f"voice: {type(exc).__name__}: {exc}")
                time.sleep(0.001)
        self._stopped.set()

    def _turn(self) -> bool:
        """One turn of the voice thread; True once it has stopped."""
        if self._stop.is_set():
            if self.model is not None:
                self._write(fade(self._render_block(), False, self._fade_len))
            self.ring.end()  # the silence after the fade-out is no underflow
            return True
        if self._gate1_waiting and self.rerender and not self._swap and \
                self._rerender_queued_frame():
            return False
        queued, threshold = self.ring.available(), self.threshold()
        if queued >= threshold:
            self._measure_latency()
            if self._speculate():
                return False
            # Sleep until about when the ring falls to the threshold (every wake takes
            # the GIL, which the audio consumer needs too); a gate wakes it at once.
            self._wake.wait(min(max(0.5 * (queued - threshold) / self.device_rate,
                                    MIN_WAIT_S), MAX_WAIT_S))
            self._wake.clear()
            return False
        if self._swap:
            if self.model is not None:
                self._write(fade(self._render_block(), False, self._fade_len))
            self._swap = False
            self._queued.clear()      # the old model's frames
            self.model, self._next_model = self._next_model, None
            self.swaps.append(self.ring.total_written)  # where the new model begins
            self._fading_in = True
        if self._engine_offer is not None:
            self._take_engine_offer()  # at a frame boundary
        self._gate1_waiting = False   # this frame takes any gate that is waiting
        block = self._render_block()
        start = self.ring.total_written
        if self._fading_in and self.model is not None:
            block = fade(block, True, self._fade_len)
            self._fading_in = False
            if self.first_sound_index is None:
                self.first_sound_index = start
            self._write(block)
            self._queued.clear()      # a fade is never re-rendered, nor what came before
        else:
            self._queued.append(QueuedFrame(start, self._write(block), self._snap,
                                            self._snap_rise2))
        return False
