"""The OLED kept showing the menu: the performance bars refreshed, a page drawn only
when the menu changed, and a failing display (a loose cable) retried every second
without a word more than once."""
import time
from typing import Callable

from neurorave.firmware.menu import Menu, Performance
from neurorave.firmware.screens import draw
from neurorave.firmware.stats import Stats
from neurorave.firmware.status_light import StatusLight
from neurorave.firmware.voice import Voice

RETRY_S = 1.0


class ScreenKeeper:
    def __init__(self, display, menu: Menu, voice: Voice, light: StatusLight, stats: Stats,
                 log: Callable[[str], None], audio_status: Callable[[], str] = lambda: ""):
        self.display = display
        self.audio_status = audio_status  # "" while the audio plays
        self.menu = menu
        self.voice = voice
        self.light = light
        self.stats = stats
        self.log = log
        self.frames_drawn = 0
        self._failing = False
        self._retry_at = 0.0

    def bars(self) -> None:
        """The performance page's bars: what the voice plays now."""
        model = self.voice.model
        if model is None or model.played is None:
            return
        # A lost audio device says so where the state would be.
        status = self.audio_status() or self.light.state
        self.menu.set_performance(Performance.of(model.name, [float(v) for v in model.played],
                                                 model.bundle.attributes, status))

    def draw(self) -> None:
        now = time.monotonic()
        if self._failing and now < self._retry_at:
            self.menu.invalidate()  # still owed: a still page must be retried too
            return
        try:
            self.display.show(draw(self.menu.view()))
            self.frames_drawn += 1
        except Exception as exc:  # noqa: BLE001 - a loose OLED cable: note it, carry on
            if not self._failing:
                self.stats.error(f"display: {exc}")
                self.log(f"display failing, retrying every second: {exc}")
            self._failing = True
            self._retry_at = now + RETRY_S
            self.menu.invalidate()  # redraw everything once it answers again
            return
        if self._failing:
            self._failing = False
            self.log("display back")
