"""The menu as a pure state machine, driven by encoder steps and button gestures.

Where it plugs in: the scheduler feeds every `EncoderStep` and `ButtonPress` from the
panel's event queue to `Menu.handle()` and carries out the `Action`s it returns (load a
model in the worker, save the settings after a quiet interval and reconfigure the
control mapper, capture readings for calibration); it redraws the OLED with
`screens.draw(menu.view())` only when `menu.take_changed()` says so. The scheduler
keeps `menu.performance` (`Performance.of(...)`: what plays), `menu.set_volts()` (the
CVs) and `menu.system_info` up to date; `menu.cv_labels()` labels the virtual knobs.

Gestures: turn moves the cursor (one row per detent) or changes the value being
edited (faster when spun fast); a short press enters or confirms; a long press goes
back one level; a double press goes home (the performance page). From the
performance page a short press opens the main menu and a turn flips between the CVs
and all the attributes.
"""
import math
import os
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from neurorave.firmware.calibration import CV_COUNT, PitchWizard
from neurorave.firmware.controls import (
    ATTRIBUTE_CVS,
    CV_MODES,
    DEFAULT_CV_MODE,
    F0_NAMES,
    GATE_MODES,
    MACRO_MODES,
)
from neurorave.hardware.button import Acceleration

MACRO_LABELS = {"random": "Random point", "snapshot": "Next snapshot", "follow_cv4": "Follow CV4"}
# Attribute names short enough for one 21-character OLED line.
SHORT_NAMES = {"rms": "rms", "centroid": "cen", "bandwidth": "bw", "sharpness": "shp",
               "boominess": "bom", "f0": "f0"}
LATENT_NAME = "lat0"  # CV1 always moves latent dimension 0
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# The f0 bar spans a piano, on a log scale: pitch is heard in octaves.
F0_BAR_HZ = (27.5, 4186.0)


def short_name(name: str) -> str:
    return SHORT_NAMES.get(name, name[:4])


def note_name(hz: float) -> str:
    """The nearest equal-tempered note (A4 = 440 Hz), e.g. "A4", "C#3"; "-" for none."""
    if not hz > 0 or not math.isfinite(hz):
        return "-"
    midi = int(round(69 + 12 * math.log2(hz / 440.0)))
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def f0_fraction(hz: float) -> float:
    low, high = F0_BAR_HZ
    if not hz > 0:
        return 0.0
    return min(max(math.log(hz / low) / math.log(high / low), 0.0), 1.0)


def is_f0(name: str, unit: str = "") -> bool:
    """The same test as the control mapper's for the attribute that is pitch."""
    return name.lower() in F0_NAMES or (unit.lower() == "hz" and "f0" in name.lower())


def value_text(value: float, unit: str = "") -> str:
    """An attribute's value in at most 6 characters: "1.2kHz", "440Hz", "0.12"."""
    if not math.isfinite(value):
        return "?"
    if unit.lower() == "hz":
        return f"{value / 1000:.1f}kHz" if abs(value) >= 1000 else f"{value:.0f}Hz"
    if unit.lower() == "db":
        return f"{value:.0f}dB"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def volts_text(volts: float) -> str:
    return f"{volts:+.1f}V"


def _folder_name(entry: "ModelEntry") -> str:
    """The settings file names a model by its folder's name inside the models folder."""
    return os.path.basename(entry.folder.rstrip("/")) or entry.folder


class Action(NamedTuple):
    """Something the scheduler must do. kinds: load_model (folder), settings_changed
    (key), store_snapshot, calibrate_offsets, capture_pitch (cv index),
    pitch_calibrated (PitchCalibration)."""

    kind: str
    value: Any = None


class ModelEntry(NamedTuple):
    """One bundle found in the models folder; `error` says why it cannot be played."""

    folder: str
    name: str
    sample_rate: int = 0
    attributes: Tuple[str, ...] = ()
    error: str = ""


class Meter(NamedTuple):
    """One row of the performance page: who, driving what, its value and a bar."""

    label: str  # "1".."4" for a CV, "f0", or "" on the attributes view
    name: str  # what it drives, abbreviated: "lat0", "cen", "-", a note "A4"
    text: str  # its value: "+1.5V", "1.2kHz", "440Hz"
    fraction: Optional[float] = None  # 0..1 bar; None for no bar
    centred: bool = False  # a bipolar bar, filled from the middle (a CV's volts)


class View(NamedTuple):
    """What a screen shows; `screens.draw()` turns it into an image."""

    kind: str  # "performance", "list", "value", "info", "wizard"
    title: str
    lines: Tuple[str, ...] = ()
    cursor: int = -1  # selected line, -1 for none
    value: Optional[float] = None  # 0..1 position of the edited value, for a bar
    message: str = ""  # a status or error line
    meters: Tuple[Meter, ...] = ()  # the performance page's rows
    status: str = ""  # a short state at the title's right ("playing")


class Performance(NamedTuple):
    """Live state for the performance page (the scheduler replaces it)."""

    model: str = ""
    bars: Tuple[Tuple[str, float], ...] = ()  # (attribute name, 0..1)
    status: str = ""  # e.g. "loading", "playing", "no model: ..."
    values: Tuple[float, ...] = ()  # what plays, in each attribute's unit (bars' order)
    units: Tuple[str, ...] = ()

    @classmethod
    def of(cls, model: str, values: Sequence[float], attributes: Sequence[Any],
           status: str = "") -> "Performance":
        """From the voice's played values and the bundle's attributes (name, min, max,
        unit): what the scheduler hands `Menu.set_performance`."""
        bars, kept, units = [], [], []
        for value, a in zip(values, attributes):
            span = max(float(a.max) - float(a.min), 1e-12)
            fraction = min(max((float(value) - float(a.min)) / span, 0.0), 1.0)
            # Rounded to what the screen can show: a redraw only when a pixel moves.
            bars.append((str(a.name), round(fraction, 2)))
            unit = str(getattr(a, "unit", "") or "")
            kept.append(float(f"{float(value):.3g}"))
            units.append(unit)
        return cls(model, tuple(bars), status, tuple(kept), tuple(units))


class _Page:
    title = ""

    def turn(self, menu: "Menu", steps: int) -> List[Action]:
        return []

    def press(self, menu: "Menu") -> List[Action]:
        return []

    def view(self, menu: "Menu") -> View:
        raise NotImplementedError


class _ListPage(_Page):
    """A cursor over items; each item is (label, what a press does)."""

    def __init__(self, title: str,
                 items: Callable[["Menu"], List[Tuple[str, Callable[["Menu"], List[Action]]]]],
                 detail: Optional[Callable[["Menu", int], str]] = None):
        self.title = title
        self._items = items
        self._detail = detail  # the bottom line for the item under the cursor
        self.cursor = 0

    def turn(self, menu: "Menu", steps: int) -> List[Action]:
        count = len(self._items(menu))
        self.cursor = min(max(self.cursor + steps, 0), max(count - 1, 0))
        return []

    def press(self, menu: "Menu") -> List[Action]:
        items = self._items(menu)
        if not items:
            return []
        return items[min(self.cursor, len(items) - 1)][1](menu)

    def view(self, menu: "Menu") -> View:
        items = self._items(menu)
        cursor = min(self.cursor, len(items) - 1) if items else -1
        message = self._detail(menu, cursor) if self._detail is not None and items else ""
        return View("list", self.title, tuple(label for label, _ in items), cursor,
                    message=message)


class _ValuePage(_Page):
    """Edit one number of the settings with the encoder; a press confirms."""

    def __init__(self, title: str, key: str, low: float, high: float, step: float,
                 fmt: str = "{:.2f}"):
        self.title, self.key, self.low, self.high, self.step, self.fmt = (
            title, key, low, high, step, fmt)

    def turn(self, menu: "Menu", steps: int) -> List[Action]:
        old = float(menu.settings[self.key])
        new = round(min(max(old + steps * self.step, self.low), self.high), 6)
        if new == old:
            return []
        menu.settings[self.key] = new
        return [Action("settings_changed", self.key)]

    def press(self, menu: "Menu") -> List[Action]:
        menu.back()
        return []

    def view(self, menu: "Menu") -> View:
        value = float(menu.settings[self.key])
        return View("value", self.title, (self.fmt.format(value),),
                    value=(value - self.low) / (self.high - self.low))


class _RangePage(_Page):
    """Low then high end of one attribute's range, as fractions of the model's range."""

    STEP = 0.02

    def __init__(self, name: str):
        self.name = name
        self.title = name
        self.editing = 0  # 0: low end, 1: high end

    def _range(self, menu: "Menu") -> List[float]:
        low, high = menu.settings["attribute_ranges"].get(self.name, [0.0, 1.0])
        return [float(low), float(high)]

    def turn(self, menu: "Menu", steps: int) -> List[Action]:
        ends = self._range(menu)
        if self.editing == 0:
            ends[0] = round(min(max(ends[0] + steps * self.STEP, 0.0), ends[1]), 6)
        else:
            ends[1] = round(min(max(ends[1] + steps * self.STEP, ends[0]), 1.0), 6)
        if ends == self._range(menu):
            return []
        menu.settings["attribute_ranges"] = dict(menu.settings["attribute_ranges"])
        menu.settings["attribute_ranges"][self.name] = ends
        return [Action("settings_changed", "attribute_ranges")]

    def press(self, menu: "Menu") -> List[Action]:
        if self.editing == 0:
            self.editing = 1
        else:
            menu.back()
        return []

    def view(self, menu: "Menu") -> View:
        low, high = self._range(menu)
        return View("list", self.title,
                    (f"low  {low * 100:3.0f}%", f"high {high * 100:3.0f}%"),
                    self.editing, value=low if self.editing == 0 else high)


class _InfoPage(_Page):
    def __init__(self, title: str, lines: Callable[["Menu"], List[str]]):
        self.title = title
        self._lines = lines
        self.scroll = 0

    def turn(self, menu: "Menu", steps: int) -> List[Action]:
        self.scroll = min(max(self.scroll + steps, 0), max(len(self._lines(menu)) - 1, 0))
        return []

    def press(self, menu: "Menu") -> List[Action]:
        menu.back()
        return []

    def view(self, menu: "Menu") -> View:
        return View("info", self.title, tuple(self._lines(menu)[self.scroll:]))


class _WizardPage(_Page):
    """1 V/oct calibration of one CV: the scheduler captures, the wizard judges."""

    def __init__(self, cv: int):
        self.cv = cv
        self.title = f"Calibrate CV{cv + 1}"
        self.wizard = PitchWizard(cv)

    def press(self, menu: "Menu") -> List[Action]:
        if self.wizard.done:
            menu.back()
            return []
        return [Action("capture_pitch", self.cv)]

    def view(self, menu: "Menu") -> View:
        return View("wizard", self.title, (self.wizard.prompt,), message=self.wizard.error)


class _PerformancePage(_Page):
    """Home. The CV view: each CV's assignment, its volts and a bar of what it drives,
    and in pitch mode the note played; a turn shows every attribute instead."""

    title = "Performance"
    VIEWS = ("cvs", "attributes")

    def __init__(self) -> None:
        self.shown = 0

    def turn(self, menu: "Menu", steps: int) -> List[Action]:
        self.shown = (self.shown + steps) % len(self.VIEWS)
        return []

    def press(self, menu: "Menu") -> List[Action]:
        menu.open(menu.main_page())
        return []

    def view(self, menu: "Menu") -> View:
        p = menu.performance
        # A short state rides in the title bar; a longer one (a reason) needs the
        # bottom line.
        short = len(p.status) <= 8
        meters = menu.cv_meters() if self.VIEWS[self.shown] == "cvs" else menu.attribute_meters()
        return View("performance", p.model or "no model", (), meters=tuple(meters),
                    message=menu.notice or ("" if short else p.status),
                    status=p.status if short else "")


def _assign_page(cv: str, menu: "Menu") -> _ListPage:
    """Pick what one CV drives. An attribute another CV holds is swapped: that CV takes
    this one's old assignment (two CVs on one attribute would fight)."""

    def holder(menu: "Menu", index: Optional[int]) -> Optional[str]:
        for other in ATTRIBUTE_CVS:
            if other != cv and index is not None \
                    and menu.settings["cv_assign"].get(other) == index:
                return other
        return None

    def pick(index: Optional[int]) -> Callable[["Menu"], List[Action]]:
        def go(menu: "Menu") -> List[Action]:
            assign = dict(menu.settings["cv_assign"])
            old = assign.get(cv)
            menu.back()
            if old == index:
                return []
            other = holder(menu, index)
            assign[cv] = index
            if other is not None:
                assign[other] = old
            menu.settings["cv_assign"] = assign
            if other is not None and index is not None:
                menu.show_notice(f"{cv.upper()} <-> {other.upper()}: "
                                 f"{menu.attributes[index]}")
            return [Action("settings_changed", "cv_assign")]
        return go

    def items(menu: "Menu") -> List[Tuple[str, Callable[["Menu"], List[Action]]]]:
        current = menu.settings["cv_assign"].get(cv)
        out = []
        for index in [None] + list(range(len(menu.attributes))):
            name = "-" if index is None else menu.attributes[index]
            other = holder(menu, index)
            mark = "*" if index == current else " "
            tag = f" ({other.upper()})" if other else ""
            out.append((f"{mark}{name}{tag}", pick(index)))
        return out

    page = _ListPage(f"{cv.upper()} assign", items)
    current = menu.settings["cv_assign"].get(cv)
    choices = [None] + list(range(len(menu.attributes)))
    page.cursor = choices.index(current) if current in choices else 0
    return page


class Menu:
    def __init__(self, settings: Dict[str, Any], models: Sequence[ModelEntry] = (),
                 attributes: Sequence[str] = ()):
        self.settings = settings  # the settings file's data; edited in place
        self.models = list(models)
        self.attributes = list(attributes)
        self.performance = Performance()
        self.playing: Optional[str] = None  # folder name of the model that plays (daemon)
        self.system_info: List[str] = []
        self.notice = ""  # e.g. "previous copy restored"; cleared by the next gesture
        self.volts: Tuple[float, ...] = ()  # CV1..CV4 as the panel reads them (daemon)
        # A fast spin moves a value further; a list's cursor moves one row per detent.
        self.accelerate = True
        self._acceleration = Acceleration()
        self._stack: List[_Page] = [_PerformancePage()]
        self._changed = True

    # ---- input ---------------------------------------------------------------------
    def handle(self, event: Any) -> List[Action]:
        """An `EncoderStep` (has .steps) or `ButtonPress` (has .kind) from the panel."""
        if hasattr(event, "steps"):
            steps = int(event.steps)
            if self.accelerate and isinstance(self.page, (_ValuePage, _RangePage)):
                steps = self._acceleration.apply(steps, int(event.t_ns))
            return self.turn(steps)
        if hasattr(event, "kind"):
            return self.press(str(event.kind))
        return []

    def turn(self, steps: int) -> List[Action]:
        if steps == 0:
            return []
        self._changed = True
        self.notice = ""
        return self.page.turn(self, steps)

    def press(self, kind: str = "short") -> List[Action]:
        self._changed = True
        self.notice = ""
        if kind == "long":
            self.back()
            return []
        if kind == "double":
            self.home()
            return []
        return self.page.press(self)

    # ---- navigation ----------------------------------------------------------------
    @property
    def page(self) -> _Page:
        return self._stack[-1]

    @property
    def depth(self) -> int:
        return len(self._stack) - 1

    def open(self, page: _Page) -> None:
        self._stack.append(page)
        self._changed = True

    def back(self) -> None:
        if len(self._stack) > 1:
            self._stack.pop()
        self._changed = True

    def home(self) -> None:
        del self._stack[1:]
        self._changed = True

    # ---- output --------------------------------------------------------------------
    def view(self) -> View:
        view = self.page.view(self)
        if self.notice and not view.message:
            view = view._replace(message=self.notice)
        return view

    def invalidate(self) -> None:
        """Draw again even if nothing changed (the display lost a frame)."""
        self._changed = True

    def take_changed(self) -> bool:
        """True once after anything the screen shows has changed."""
        changed, self._changed = self._changed, False
        return changed

    def set_performance(self, performance: Performance) -> None:
        if performance != self.performance:
            self.performance = performance
            if isinstance(self.page, _PerformancePage):
                self._changed = True

    def set_volts(self, volts: Sequence[float]) -> None:
        """The CVs' panel volts, for the performance page (the scheduler, every turn)."""
        # Kept at the precision shown: ADC noise must not redraw the screen.
        shown = tuple(round(float(v), 1) for v in volts)
        if shown != self.volts:
            self.volts = shown
            if isinstance(self.page, _PerformancePage):
                self._changed = True

    # ---- what each CV drives -------------------------------------------------------
    def _assigned(self, cv: int) -> Optional[int]:
        """The attribute index CV `cv` (0-based, 1..3) drives, None for none."""
        index = self.settings.get("cv_assign", {}).get(f"cv{cv + 1}")
        if isinstance(index, int) and 0 <= index < len(self.attributes):
            return index
        return None

    def _played(self, name: str) -> Tuple[Optional[float], Optional[float], str]:
        """(bar fraction, value, unit) of the attribute `name` as it plays now."""
        p = self.performance
        for i, (bar_name, fraction) in enumerate(p.bars):
            if bar_name == name:
                value = p.values[i] if i < len(p.values) else None
                unit = p.units[i] if i < len(p.units) else ""
                if value is not None and is_f0(name, unit):
                    fraction = f0_fraction(value)
                return fraction, value, unit
        return None, None, ""

    def _f0_name(self) -> Optional[str]:
        units = dict(zip((n for n, _ in self.performance.bars), self.performance.units))
        for name in self.attributes or [n for n, _ in self.performance.bars]:
            if is_f0(name, units.get(name, "")):
                return name
        return None

    def cv_meters(self) -> List[Meter]:
        """CV1..CV4: assignment, volts, and a bar of the attribute as it plays (CV1 and
        an unassigned CV: the volts, from the middle); in pitch mode an f0 row."""
        meters = []
        for cv in range(CV_COUNT):
            volts = self.volts[cv] if cv < len(self.volts) else 0.0
            bipolar = min(max(0.5 + volts / 10.0, 0.0), 1.0)
            index = self._assigned(cv) if cv > 0 else None
            if cv == 0:
                meters.append(Meter("1", LATENT_NAME, volts_text(volts), bipolar, True))
            elif index is None:
                meters.append(Meter(str(cv + 1), "-", volts_text(volts), bipolar, True))
            else:
                name = self.attributes[index]
                fraction, _, _ = self._played(name)
                meters.append(Meter(str(cv + 1), short_name(name), volts_text(volts),
                                    bipolar if fraction is None else fraction,
                                    fraction is None))
        if self.settings.get("pitch_mode"):
            f0 = self._f0_name()
            if f0 is None:
                meters.append(Meter("f0", "none", "in model"))
            else:
                fraction, hz, _ = self._played(f0)
                meters.append(Meter("f0", note_name(hz) if hz is not None else "-",
                                    value_text(hz, "Hz") if hz is not None else "",
                                    fraction))
        return meters

    def attribute_meters(self) -> List[Meter]:
        """Every attribute as it plays: name, value in its unit, bar (f0: a note)."""
        p = self.performance
        meters = []
        for i, (name, fraction) in enumerate(p.bars):
            value = p.values[i] if i < len(p.values) else None
            unit = p.units[i] if i < len(p.units) else ""
            if value is not None and is_f0(name, unit):
                meters.append(Meter("f0", note_name(value), value_text(value, unit),
                                    f0_fraction(value)))
            else:
                meters.append(Meter("", short_name(name),
                                    value_text(value, unit) if value is not None else "",
                                    fraction))
        return meters

    def cv_labels(self) -> List[Tuple[str, str]]:
        """Per CV (assignment, value of what it drives) for the virtual panel's knobs:
        ("latent 0", ""), ("centroid", "1.2kHz"), ("-", "")."""
        labels = [("latent 0", "")]
        for cv in range(1, CV_COUNT):
            index = self._assigned(cv)
            if index is None:
                labels.append(("-", ""))
                continue
            name = self.attributes[index]
            _, value, unit = self._played(name)
            text = "" if value is None else value_text(value, unit)
            if value is not None and is_f0(name, unit):
                text = f"{note_name(value)} {text}"
            labels.append((name, text))
        return labels

    def set_system_info(self, lines: Sequence[str]) -> None:
        if list(lines) != self.system_info:
            self.system_info = list(lines)
            if isinstance(self.page, _InfoPage):
                self._changed = True

    def set_models(self, models: Sequence[ModelEntry]) -> None:
        self.models = list(models)
        self._changed = True

    def set_attributes(self, names: Sequence[str]) -> None:
        self.attributes = list(names)
        self._changed = True

    def show_notice(self, text: str) -> None:
        self.notice = text
        self._changed = True

    def pitch_captured(self, samples: Sequence[float]) -> List[Action]:
        """The scheduler's readings for a `capture_pitch` action."""
        page = self.page
        if not isinstance(page, _WizardPage):
            return []
        page.wizard.capture(samples)
        self._changed = True
        if page.wizard.done and page.wizard.result is not None:
            return [Action("pitch_calibrated", page.wizard.result)]
        return []

    # ---- the pages -----------------------------------------------------------------
    def main_page(self) -> _Page:
        def enter(page_maker: Callable[[], _Page]) -> Callable[["Menu"], List[Action]]:
            def go(menu: "Menu") -> List[Action]:
                menu.open(page_maker())
                return []
            return go

        items = [
            ("Model", enter(self._model_page)),
            ("CV assign", enter(self._cv_page)),
            ("Ranges", enter(self._ranges_page)),
            ("Macro", enter(self._macro_page)),
            ("Temperature", enter(lambda: _ValuePage("Temperature", "prior_temperature",
                                                     0.0, 2.0, 0.05))),
            ("Output level", enter(lambda: _ValuePage("Output level", "output_level",
                                                      0.0, 1.0, 0.02, "{:.0%}"))),
            ("Calibrate", enter(self._calibrate_page)),
            ("System", enter(lambda: _InfoPage("System", lambda m: m.system_info))),
        ]

        def toggle_gate(menu: "Menu") -> List[Action]:
            # What gate 1 starts with a prior: the model's own choice, a phrase, a hit, a note.
            order = [None, *GATE_MODES]
            now = menu.settings.get("gate_mode")
            menu.settings["gate_mode"] = order[(order.index(now) + 1) % len(order)] \
                if now in order else None
            return [Action("settings_changed", "gate_mode")]

        def listed(menu: "Menu") -> List[Tuple[str, Callable[["Menu"], List[Action]]]]:
            gate = menu.settings.get("gate_mode") or "model's"
            return items + [(f"Gate 1: {gate}", toggle_gate)]
        return _ListPage("Menu", listed)

    def _model_page(self) -> _Page:
        def items(menu: "Menu") -> List[Tuple[str, Callable[["Menu"], List[Action]]]]:
            out = []
            for entry in menu.models:
                # What plays; the settings' choice until a model has loaded (a choice
                # that could not play at start stays in the settings, not under the *).
                playing = menu.playing or menu.settings.get("model")
                current = "*" if _folder_name(entry) == playing else " "
                if entry.error:
                    out.append((f"!{entry.name}", _explain(entry)))
                else:
                    out.append((f"{current}{entry.name} {entry.sample_rate // 1000}k",
                                _load(entry)))
            return out or [("(no models)", lambda m: [])]

        def detail(menu: "Menu", cursor: int) -> str:
            """The selected model's attributes (or why it cannot play)."""
            if not 0 <= cursor < len(menu.models):
                return ""
            entry = menu.models[cursor]
            return entry.error or " ".join(SHORT_NAMES.get(a, a[:3]) for a in entry.attributes)

        def _load(entry: ModelEntry) -> Callable[["Menu"], List[Action]]:
            def go(menu: "Menu") -> List[Action]:
                menu.settings["model"] = _folder_name(entry)
                menu.home()
                return [Action("load_model", entry.folder), Action("settings_changed", "model")]
            return go

        def _explain(entry: ModelEntry) -> Callable[["Menu"], List[Action]]:
            def go(menu: "Menu") -> List[Action]:
                menu.show_notice(entry.error)
                menu.open(_InfoPage(entry.name, lambda m: [entry.error]))
                return []
            return go

        return _ListPage("Model", items, detail)

    def _cv_page(self) -> _Page:
        def label(menu: "Menu", cv: str) -> str:
            index = menu.settings["cv_assign"].get(cv)
            names = menu.attributes
            name = names[index] if index is not None and 0 <= index < len(names) else "-"
            return f"{cv.upper()} {name}"

        def choose(cv: str) -> Callable[["Menu"], List[Action]]:
            def go(menu: "Menu") -> List[Action]:
                menu.open(_assign_page(cv, menu))
                return []
            return go

        def toggle_mode(menu: "Menu") -> List[Action]:
            # slide: CVs move attributes away from what the prior plays; hold: CVs set them
            now = menu.settings.get("cv_mode", DEFAULT_CV_MODE)
            menu.settings["cv_mode"] = CV_MODES[(CV_MODES.index(now) + 1) % len(CV_MODES)] \
                if now in CV_MODES else CV_MODES[0]
            return [Action("settings_changed", "cv_mode")]

        def items(menu: "Menu") -> List[Tuple[str, Callable[["Menu"], List[Action]]]]:
            out: List[Tuple[str, Callable[[Menu], List[Action]]]] = [
                (label(menu, cv), choose(cv)) for cv in ATTRIBUTE_CVS]
            out.append((f"Mode {menu.settings.get('cv_mode', DEFAULT_CV_MODE)}", toggle_mode))
            return out

        return _ListPage("CV assign", items)

    def _ranges_page(self) -> _Page:
        def items(menu: "Menu") -> List[Tuple[str, Callable[["Menu"], List[Action]]]]:
            out = []
            for name in menu.attributes:
                low, high = menu.settings["attribute_ranges"].get(name, [0.0, 1.0])
                out.append((f"{name} {low * 100:.0f}-{high * 100:.0f}%", _edit(name)))
            return out or [("(no model)", lambda m: [])]

        def _edit(name: str) -> Callable[["Menu"], List[Action]]:
            def go(menu: "Menu") -> List[Action]:
                menu.open(_RangePage(name))
                return []
            return go

        return _ListPage("Ranges", items)

    def _macro_page(self) -> _Page:
        def choose(mode: str) -> Callable[["Menu"], List[Action]]:
            def go(menu: "Menu") -> List[Action]:
                if menu.settings["macro_mode"] == mode:
                    return []
                menu.settings["macro_mode"] = mode
                return [Action("settings_changed", "macro_mode")]
            return go

        def glide(menu: "Menu") -> List[Action]:
            menu.open(_ValuePage("Glide", "macro_glide_s", 0.0, 5.0, 0.05, "{:.2f} s"))
            return []

        def store(menu: "Menu") -> List[Action]:
            menu.show_notice("snapshot stored")
            return [Action("store_snapshot")]

        def clear(menu: "Menu") -> List[Action]:
            menu.settings["snapshots"] = []
            menu.back()
            menu.show_notice("snapshots cleared")
            return [Action("settings_changed", "snapshots")]

        def keep(menu: "Menu") -> List[Action]:
            menu.back()
            return []

        def confirm(menu: "Menu") -> List[Action]:
            # Stored points are a player's work: one stray press must not lose them.
            count = len(menu.settings["snapshots"])
            if count:
                menu.open(_ListPage(f"Clear {count}?", lambda m: [("Keep them", keep),
                                                                  ("Clear them", clear)]))
            return []

        def items(menu: "Menu") -> List[Tuple[str, Callable[["Menu"], List[Action]]]]:
            out = [(("*" if menu.settings["macro_mode"] == m else " ") + MACRO_LABELS[m],
                    choose(m)) for m in MACRO_MODES]
            out.append((f" Glide {float(menu.settings['macro_glide_s']):.2f} s", glide))
            out.append((f" Store snapshot ({len(menu.settings['snapshots'])})", store))
            out.append((" Clear snapshots", confirm))
            return out

        return _ListPage("Macro", items)

    def _calibrate_page(self) -> _Page:
        def offsets(menu: "Menu") -> List[Action]:
            menu.show_notice("unpatch all CVs")
            return [Action("calibrate_offsets")]

        def pitch(cv: int) -> Callable[["Menu"], List[Action]]:
            def go(menu: "Menu") -> List[Action]:
                menu.open(_WizardPage(cv))
                return []
            return go

        def toggle_pitch(menu: "Menu") -> List[Action]:
            menu.settings["pitch_mode"] = not menu.settings.get("pitch_mode", False)
            return [Action("settings_changed", "pitch_mode")]

        def items(menu: "Menu") -> List[Tuple[str, Callable[["Menu"], List[Action]]]]:
            out: List[Tuple[str, Callable[[Menu], List[Action]]]] = [
                ("Offsets (unpatched)", offsets)]
            out += [(f"1V/oct on CV{cv + 1}", pitch(cv)) for cv in range(CV_COUNT)]
            out.append((f"Pitch mode {'on' if menu.settings.get('pitch_mode') else 'off'}",
                        toggle_pitch))
            return out

        return _ListPage("Calibrate", items)
