"""The menu as a pure state machine, driven by encoder steps and button gestures.

Where it plugs in: the scheduler feeds every `EncoderStep` and `ButtonPress` from the
panel's event queue to `Menu.handle()` and carries out the `Action`s it returns (load a
model in the worker, save the settings after a quiet interval and reconfigure the
control mapper, capture readings for calibration); it redraws the OLED with
`screens.draw(menu.view())` only when `menu.take_changed()` says so. The scheduler
keeps `menu.performance` (attribute bars, status) and `menu.system_info` up to date.

Gestures: turn moves the cursor or changes the value being edited; a short press
enters or confirms; a long press goes back one level; a double press goes home (the
performance page). From the performance page a short press opens the main menu.
"""
import os
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from neurorave.firmware.calibration import CV_COUNT, PitchWizard
from neurorave.firmware.controls import ATTRIBUTE_CVS, CV_MODES, DEFAULT_CV_MODE, MACRO_MODES

MACRO_LABELS = {"random": "Random point", "snapshot": "Next snapshot", "follow_cv4": "Follow CV4"}
# Attribute names short enough for one 21-character OLED line.
SHORT_NAMES = {"rms": "rms", "centroid": "cen", "bandwidth": "bw", "sharpness": "shp",
               "boominess": "bom", "f0": "f0"}


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


class View(NamedTuple):
    """What a screen shows; `screens.draw()` turns it into an image."""

    kind: str  # "performance", "list", "value", "info", "wizard"
    title: str
    lines: Tuple[str, ...] = ()
    cursor: int = -1  # selected line, -1 for none
    value: Optional[float] = None  # 0..1 position of the edited value, for a bar
    message: str = ""  # a status or error line


class Performance(NamedTuple):
    """Live state for the performance page (the scheduler replaces it)."""

    model: str = ""
    bars: Tuple[Tuple[str, float], ...] = ()  # (attribute name, 0..1)
    status: str = ""  # e.g. "loading", "playing", "no model: ..."


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
        marks = (">" if self.editing == 0 else " ", ">" if self.editing == 1 else " ")
        return View("list", self.title,
                    (f"{marks[0]}low  {low * 100:3.0f}%", f"{marks[1]}high {high * 100:3.0f}%"),
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
    title = "Performance"

    def press(self, menu: "Menu") -> List[Action]:
        menu.open(menu.main_page())
        return []

    def view(self, menu: "Menu") -> View:
        p = menu.performance
        lines = tuple(f"{name}\t{value:.3f}" for name, value in p.bars)
        return View("performance", p.model or "no model", lines, message=menu.notice or p.status)


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
        self._stack: List[_Page] = [_PerformancePage()]
        self._changed = True

    # ---- input ---------------------------------------------------------------------
    def handle(self, event: Any) -> List[Action]:
        """An `EncoderStep` (has .steps) or `ButtonPress` (has .kind) from the panel."""
        if hasattr(event, "steps"):
            return self.turn(int(event.steps))
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
        return _ListPage("Menu", lambda m: items)

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

        def cycle(cv: str) -> Callable[["Menu"], List[Action]]:
            def go(menu: "Menu") -> List[Action]:
                choices: List[Optional[int]] = [None] + list(range(len(menu.attributes)))
                current = menu.settings["cv_assign"].get(cv)
                nxt = choices[(choices.index(current) + 1) % len(choices)] \
                    if current in choices else None
                menu.settings["cv_assign"] = dict(menu.settings["cv_assign"], **{cv: nxt})
                return [Action("settings_changed", "cv_assign")]
            return go

        def toggle_mode(menu: "Menu") -> List[Action]:
            # slide: CVs move attributes away from what the prior plays; hold: CVs set them
            now = menu.settings.get("cv_mode", DEFAULT_CV_MODE)
            menu.settings["cv_mode"] = CV_MODES[(CV_MODES.index(now) + 1) % len(CV_MODES)] \
                if now in CV_MODES else CV_MODES[0]
            return [Action("settings_changed", "cv_mode")]

        def items(menu: "Menu") -> List[Tuple[str, Callable[["Menu"], List[Action]]]]:
            out: List[Tuple[str, Callable[[Menu], List[Action]]]] = [
                (label(menu, cv), cycle(cv)) for cv in ATTRIBUTE_CVS]
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
