"""Gate inputs on GPIO lines (Jetson.GPIO or a module with its API), debounced.

Each gate's line is read on Jetson.GPIO's edge callback (mode "edge") or sampled every
millisecond by a thread (mode "poll", the fallback where interrupts misbehave). The
level is inverted when the board says the input stage inverts (a transistor stage:
a high gate pulls the pin low), debounced (`Debouncer`: first edge passes at once,
bounce inside the window is ignored) and posted as `GateEdge(gate, rising, t_ns)`
with the monotonic time the driver saw the change.

The GPIO module is injected: `Jetson.GPIO` on the module, the model in
`neurorave.hardware.sim.fake_gpio` elsewhere.
"""
from __future__ import annotations

import threading
import time
from typing import Any, List, Sequence

from neurorave.hardware.board import GateConfig
from neurorave.hardware.debounce import Debouncer
from neurorave.hardware.errors import HardwareError
from neurorave.hardware.interfaces import EventQueue, GateEdge
from neurorave.hardware.ticker import Ticker

POLL_PERIOD_S = 0.001


class GpioGates:
    def __init__(self, gpio: Any, gates: Sequence[GateConfig], events: EventQueue) -> None:
        self.gpio = gpio
        self.configs = list(gates)
        self.names = [g.name for g in self.configs]
        self.events = events
        self._lock = threading.Lock()
        self._debouncers: List[Debouncer] = []
        try:
            for gate in self.configs:
                gpio.setup(gate.pin, gpio.IN)
                level = self._jack_level(gate)
                self._debouncers.append(Debouncer(int(gate.debounce_ms * 1e6), level))
            for index, gate in enumerate(self.configs):
                if gate.mode == "edge":
                    gpio.add_event_detect(gate.pin, gpio.BOTH,
                                          callback=self._make_callback(index))
        except (RuntimeError, ValueError) as exc:
            raise HardwareError("gates", f"GPIO refused: {exc}") from None
        # One thread: ends debounce windows (edge mode) and samples (poll mode).
        self._ticker = Ticker(POLL_PERIOD_S, self._tick, "gates")

    def _jack_level(self, gate: GateConfig) -> bool:
        return bool(self.gpio.input(gate.pin)) != gate.inverted

    def _make_callback(self, index: int) -> Any:
        def on_edge(channel: int) -> None:
            t_ns = time.monotonic_ns()
            self._feed(index, self._jack_level(self.configs[index]), t_ns)
        return on_edge

    def _feed(self, index: int, level: bool, t_ns: int) -> None:
        with self._lock:
            edges = self._debouncers[index].update(level, t_ns)
        for rising, t in edges:
            self.events.post(GateEdge(index, rising, t))

    def _tick(self, t_ns: int) -> None:
        for index, gate in enumerate(self.configs):
            if gate.mode == "poll":
                self._feed(index, self._jack_level(gate), t_ns)
            else:
                with self._lock:
                    edges = self._debouncers[index].tick(t_ns)
                for rising, t in edges:
                    self.events.post(GateEdge(index, rising, t))

    def levels(self) -> List[bool]:
        with self._lock:
            return [d.level for d in self._debouncers]

    def close(self) -> None:
        self._ticker.stop()
        for gate in self.configs:
            if gate.mode == "edge":
                self.gpio.remove_event_detect(gate.pin)
        self.gpio.cleanup([g.pin for g in self.configs])
