"""The panel's inputs each scheduler turn: the newest CV volts to the voice, gate edges
to the voice, encoder gestures to the menu. A failing ADC holds the last good volts
(the CV sampler retries) and the screen says so, once when it fails and once back."""
from typing import Callable

from neurorave.firmware.menu import Menu
from neurorave.firmware.menu_actions import MenuActions
from neurorave.firmware.stats import Stats
from neurorave.firmware.voice import Voice
from neurorave.hardware.interfaces import GateEdge


class PanelInputs:
    def __init__(self, panel, sampler, voice: Voice, menu: Menu, actions: MenuActions,
                 stats: Stats, log: Callable[[str], None]):
        self.panel = panel
        self.sampler = sampler
        self.voice = voice
        self.menu = menu
        self.actions = actions
        self.stats = stats
        self.log = log
        self._cv_failing = False

    def events(self) -> None:
        for event in self.panel.events.drain():
            if isinstance(event, GateEdge):
                self.voice.post_gate(event.gate, event.rising, event.t_ns)
            else:
                self.actions.act(self.menu.handle(event))

    def controls(self) -> None:
        snapshot = self.sampler.latest()
        self.voice.volts = list(snapshot.volts)
        self.menu.set_volts(snapshot.volts)  # redraws only when the 0.1 V shown changes
        if not snapshot.ok and not self._cv_failing:
            self._cv_failing = True
            self.stats.error(f"CV: {snapshot.error}")
            self.log(f"CV inputs failing, holding the last good volts: {snapshot.error}")
            self.menu.show_notice("CV input fault: holding")
        elif snapshot.ok and self._cv_failing:
            self._cv_failing = False
            self.log("CV inputs back")
            self.menu.show_notice("CV input back")
        self.actions.capturing(snapshot.volts)
