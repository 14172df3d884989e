"""Patch files: what happens at the panel over time (DESIGN.md "Patch file (TOML)").

The virtual board plays a patch (`neurorave.hardware.sim.player.PatchPlayer`) and the
offline `render` command reads the same object. A patch only speaks of jacks and
knobs in volts, gates and the encoder; it knows nothing of what they mean. Format:

    seconds = 20                    # optional: how long the patch lasts

    [cv.1]                          # CV1 (1-based, as printed on the panel)
    volts = 2.5                     # a constant ...
    [cv.2]
    shape = "sine"                  # ... or a modulator: sine, triangle, saw, ramp, square
    rate = 0.25                     # Hz (ramp: rises once over 1 / rate seconds, then holds)
    range = [-2.0, 3.0]             # volts at the start and at the top of the wave
    phase = 0.0                     # optional, in cycles (0..1)
    [cv.4]
    steps = [0.0, 0.25, 0.5833]     # ... or a step sequence: these volts one after another
    rate = 2.0                      # steps per second
    loop = true                     # optional: start again after the last (else hold it)

    [gate.1]
    clock = 2.0                     # a clock in Hz ...
    duty = 0.5                      # optional: fraction of the period held high
    start = 0.0                     # optional: first rising edge (s)
    stop = 8.0                      # optional: no rising edge at or after this time (s)
    [gate.2]
    times = [0.5, 1.25, 3.0]        # ... or rising edges at these times (s)
    length = 0.1                    # optional: how long each is held (s)

    [[encoder.turn]]                # encoder turns: detents at a time, + clockwise
    at = 1.0
    steps = 3
    [[encoder.press]]               # push-button gestures: short, long or double
    at = 2.0
    kind = "short"

    [settings]                      # carried as it is: what the menu would set, read by
    cv_mode = "hold"                # the firmware (neurorave.firmware.patch_settings)

Sine: range[0] + (range[1] - range[0]) * (1 - cos(2 pi p)) / 2 with p = rate * t +
phase, so every wave starts at range[0]; triangle, saw and square rise from range[0]
too. Volts stay within the Eurorack rails (+-12 V). Errors name the key
("my.toml: cv.2.rate: ..."). CVs and gates not in the patch are left alone.
"""
from __future__ import annotations

import math
import os
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from neurorave.common.toml_reader import Table, load_toml
from neurorave.hardware.errors import PatchError
from neurorave.hardware.interfaces import BUTTON_KINDS

SHAPES = ("sine", "triangle", "saw", "ramp", "square")
RAIL_VOLTS = 12.0


def _wave(shape: str, p: float) -> float:
    """0..1 of the range at phase p (cycles)."""
    if shape == "ramp":
        return min(max(p, 0.0), 1.0)
    f = p - math.floor(p)
    if shape == "sine":
        return (1.0 - math.cos(2.0 * math.pi * f)) / 2.0
    if shape == "triangle":
        return 2.0 * f if f < 0.5 else 2.0 - 2.0 * f
    if shape == "saw":
        return f
    return 1.0 if f < 0.5 else 0.0     # square


class CvSource(NamedTuple):
    shape: str                      # "constant", "steps" or one of SHAPES
    low: float
    high: float
    rate: float
    phase: float
    steps: Tuple[float, ...] = ()   # "steps": the volts, one per 1 / rate seconds
    loop: bool = True

    def volts(self, t: float) -> float:
        if self.shape == "constant":
            return self.low
        if self.shape == "steps":
            # The epsilon keeps a step boundary (0.5 s at 2 Hz) on the step it starts.
            k = max(0, int(math.floor(self.rate * t + 1e-9)))
            return self.steps[k % len(self.steps) if self.loop else min(k, len(self.steps) - 1)]
        return self.low + (self.high - self.low) * _wave(self.shape, self.rate * t + self.phase)


class GateSource(NamedTuple):
    rises: Optional[Tuple[float, ...]]   # explicit times, or None for a clock
    length: float                        # held high (s)
    rate: float
    start: float
    stop: Optional[float]

    def _pulses_between(self, t0: float, t1: float) -> List[Tuple[float, float]]:
        """(rise, fall) of every pulse that overlaps [t0, t1]."""
        if self.rises is not None:
            return [(r, r + self.length) for r in self.rises if r <= t1 and r + self.length >= t0]
        period = 1.0 / self.rate
        first = max(0, int(math.floor((t0 - self.start - self.length) / period)))
        last = int(math.floor((t1 - self.start) / period))
        pulses = []
        for k in range(first, last + 1):
            rise = self.start + k * period
            if self.stop is not None and rise >= self.stop:
                break
            pulses.append((rise, rise + self.length))
        return pulses

    def level(self, t: float) -> bool:
        return any(rise <= t < fall for rise, fall in self._pulses_between(t, t))

    def edges(self, t0: float, t1: float) -> List[Tuple[float, bool]]:
        """Edges with t0 < time <= t1, in order: (time, rising)."""
        found = []
        for rise, fall in self._pulses_between(t0, t1):
            if t0 < rise <= t1:
                found.append((rise, True))
            if t0 < fall <= t1:
                found.append((fall, False))
        return sorted(found)


class PatchEvent(NamedTuple):
    """Something that happens at one instant: a gate edge, a turn or a press."""

    t: float
    kind: str            # "gate", "turn" or "press"
    jack: int            # gate index (0-based); 0 for the encoder
    value: Any           # gate: rising (bool); turn: steps (int); press: kind (str)


class Patch:
    def __init__(self, source: str, seconds: Optional[float], cvs: Dict[int, CvSource],
                 gates: Dict[int, GateSource], turns: Sequence[Tuple[float, int]],
                 presses: Sequence[Tuple[float, str]],
                 settings: Optional[Dict[str, Any]] = None) -> None:
        self.source = source
        self.seconds = seconds
        self.cvs = cvs            # 0-based CV index -> source
        self.gates = gates        # 0-based gate index -> source
        self.turns = sorted(turns)
        self.presses = sorted(presses)
        # The [settings] table as TOML gave it (plain values): what it means is the
        # firmware's to read; empty when the patch has none.
        self.settings: Dict[str, Any] = dict(settings or {})

    def cv_volts(self, index: int, t: float) -> Optional[float]:
        """Volts at CV `index` (0-based) at time t, or None where the patch leaves it."""
        source = self.cvs.get(index)
        return None if source is None else source.volts(t)

    def cv_curve(self, index: int, times: Sequence[float]) -> List[Optional[float]]:
        """cv_volts at many times (for offline rendering at the control rate)."""
        return [self.cv_volts(index, t) for t in times]

    def gate_level(self, index: int, t: float) -> Optional[bool]:
        source = self.gates.get(index)
        return None if source is None else source.level(t)

    def events(self, t0: float, t1: float) -> List[PatchEvent]:
        """Every gate edge, turn and press with t0 < t <= t1, in time order."""
        found = []
        for index, gate in self.gates.items():
            found += [PatchEvent(t, "gate", index, rising) for t, rising in gate.edges(t0, t1)]
        found += [PatchEvent(t, "turn", 0, steps) for t, steps in self.turns if t0 < t <= t1]
        found += [PatchEvent(t, "press", 0, kind) for t, kind in self.presses if t0 < t <= t1]
        return sorted(found, key=lambda e: (e.t, e.kind, e.jack))

    def check_fits(self, cv_count: int, gate_count: int) -> None:
        """A patch for more jacks than the board has is an error naming the key."""
        for index in self.cvs:
            if index >= cv_count:
                raise PatchError(f"{self.source}: cv.{index + 1}: the board has {cv_count} CVs")
        for index in self.gates:
            if index >= gate_count:
                raise PatchError(f"{self.source}: gate.{index + 1}: the board has "
                                 f"{gate_count} gates")


def load_patch(path: str) -> Patch:
    if os.path.isdir(path):
        raise PatchError(f"{path}: is a folder, not a patch file")
    if not os.path.exists(path):
        raise PatchError(f"{path}: no such patch file")
    return parse_patch(load_toml(path, PatchError), os.path.basename(path))


def _index(table: Table, name: str) -> int:
    if not name.isdigit() or int(name) < 1:
        raise table.fail(table.key(name), "must be a jack number 1, 2, ... (as [cv.1])")
    return int(name) - 1


def _volts(table: Table, value: float, key: str) -> float:
    if abs(value) > RAIL_VOLTS:
        raise table.fail(key, f"{value} V is beyond the +-{RAIL_VOLTS:g} V rails")
    return value


def _cv(t: Table) -> CvSource:
    if t.has("volts"):
        volts = _volts(t, t.take("volts", float), t.key("volts"))
        t.finish()
        return CvSource("constant", volts, volts, 0.0, 0.0)
    if t.has("steps"):
        return _steps(t)
    if not t.has("shape"):
        raise t.fail(t.where, "needs volts = V or shape = one of " + ", ".join(SHAPES)
                     + " (or steps = [V, ...])")
    shape = t.take("shape", str, choices=SHAPES)
    rate = _rate(t)
    span = t.take("range", list)
    if len(span) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                 and math.isfinite(v) for v in span):
        raise t.fail(t.key("range"), f"must be [low, high] in volts, not {span!r}")
    low = _volts(t, float(span[0]), t.key("range"))
    high = _volts(t, float(span[1]), t.key("range"))
    phase = t.take("phase", float, 0.0, minimum=0.0, maximum=1.0)
    t.finish()
    return CvSource(shape, low, high, rate, phase)


def _rate(t: Table) -> float:
    rate = t.take("rate", float, minimum=0.0)
    if rate <= 0 or rate > 1000:
        raise t.fail(t.key("rate"), f"{rate} Hz: must be above 0 and at most 1000")
    return rate


def _steps(t: Table) -> CvSource:
    values = t.take("steps", list)
    if not values:
        raise t.fail(t.key("steps"), "needs at least one value in volts")
    steps: List[float] = []
    for i, value in enumerate(values):
        key = f"{t.key('steps')}[{i}]"
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise t.fail(key, f"{value!r}: must be a number of volts")
        steps.append(_volts(t, float(value), key))
    rate = _rate(t)
    loop = t.take("loop", bool, True)
    t.finish()
    return CvSource("steps", min(steps), max(steps), rate, 0.0, tuple(steps), loop)


def _gate(t: Table) -> GateSource:
    if t.has("clock") == t.has("times"):
        raise t.fail(t.where, "needs either clock = HZ or times = [s, ...]")
    if t.has("clock"):
        rate = t.take("clock", float)
        if not 0 < rate <= 1000:
            raise t.fail(t.key("clock"), f"{rate} Hz: must be above 0 and at most 1000")
        duty = t.take("duty", float, 0.5)
        if not 0 < duty < 1:
            raise t.fail(t.key("duty"), f"{duty}: must be between 0 and 1 (exclusive)")
        start = t.take("start", float, 0.0, minimum=0.0)
        stop = t.take("stop", float, None, minimum=0.0)
        t.finish()
        return GateSource(None, duty / rate, rate, start, stop)
    times = t.take("times", list)
    length = t.take("length", float, 0.05)
    if length <= 0:
        raise t.fail(t.key("length"), f"{length}: must be above 0")
    rises: List[float] = []
    for i, value in enumerate(times):
        key = f"{t.key('times')}[{i}]"
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0 <= value < math.inf:  # nan fails this too
            raise t.fail(key, f"{value!r}: must be a time in seconds, 0 or later")
        if rises and value < rises[-1] + length:
            raise t.fail(key, f"{value} comes before the previous gate ({rises[-1]} + length "
                              f"{length}) has ended")
        rises.append(float(value))
    t.finish()
    return GateSource(tuple(rises), length, 0.0, 0.0, None)


def parse_patch(data: Dict[str, Any], source: str) -> Patch:
    top = Table(data, "", source, PatchError)
    seconds = top.take("seconds", float, None)
    if seconds is not None and seconds <= 0:
        raise top.fail("seconds", f"{seconds}: must be above 0")
    cvs: Dict[int, CvSource] = {}
    cv_table = top.table("cv", required=False)
    if cv_table is not None:
        for name, sub in cv_table.sub_tables().items():
            cvs[_index(cv_table, name)] = _cv(sub)
    gates: Dict[int, GateSource] = {}
    gate_table = top.table("gate", required=False)
    if gate_table is not None:
        for name, sub in gate_table.sub_tables().items():
            gates[_index(gate_table, name)] = _gate(sub)
    turns: List[Tuple[float, int]] = []
    presses: List[Tuple[float, str]] = []
    encoder = top.table("encoder", required=False)
    if encoder is not None:
        for turn in encoder.tables("turn", required=False):
            steps = turn.take("steps", int)
            if steps == 0:
                raise turn.fail(turn.key("steps"), "must not be zero")
            turns.append((turn.take("at", float, minimum=0.0), steps))
            turn.finish()
        for press in encoder.tables("press", required=False):
            presses.append((press.take("at", float, minimum=0.0),
                            press.take("kind", str, "short", choices=BUTTON_KINDS)))
            press.finish()
        encoder.finish()
    settings = top.table("settings", required=False)
    top.finish()
    return Patch(source, seconds, cvs, gates, turns, presses,
                 settings.data if settings is not None else None)
