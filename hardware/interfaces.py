"""The panel's parts as the daemon sees them: one small interface per part.

Every real driver (ADS1115 over I2C, Jetson.GPIO gates and encoder, GPIO LED, luma.oled
display) and its virtual twin implement the same interface, so the daemon never
knows which board it runs on (DESIGN.md rule 1: chips and pins, nothing musical).

    panel = open_panel(load_board("sim"))      # neurorave.hardware.panel
    panel.cvs.read_volts()        -> [panel volts per CV]  (blocks ~5 ms on the real ADC)
    CvSampler(panel.cvs).latest() -> the newest reading; never blocks (cv_sampler.py)
    panel.gates.levels()          -> [True if the gate is high at the jack]
    panel.events                  -> EventQueue of GateEdge / EncoderStep / ButtonPress
    panel.led.set_colour("cyan"); panel.led.blink("red", on_s=0.1, off_s=0.1, count=3)
    panel.display.show(image)     (PIL image of panel.display.size, mode "1")
    panel.close()

Gate edges, encoder steps and button gestures are posted from driver threads into
`panel.events` with `time.monotonic_ns()` timestamps of the moment the edge was
seen. The daemon's asyncio loop either drains the queue on its own tick or registers
a listener that wakes it: ``panel.events.set_listener(lambda:
loop.call_soon_threadsafe(wake.set))``. Posting never blocks a driver thread: when the
queue is full the oldest event is dropped and counted (`events.dropped`).
"""
from __future__ import annotations

import collections
import threading
from typing import Any, Callable, Deque, List, NamedTuple, Optional, Sequence, Tuple, Union

try:  # typing.Protocol is 3.8+, runtime_checkable too.
    from typing import Protocol, runtime_checkable
except ImportError:  # pragma: no cover - Python < 3.8 is not supported anyway
    raise

# An RGB colour: a name from neurorave.hardware.led.COLOURS ("off", "red", "green",
# "blue", "yellow", "cyan", "magenta", "white") or (r, g, b) with each in 0..1
# (fractions only take effect where the board has PWM).
Colour = Union[str, Tuple[float, float, float]]


class GateEdge(NamedTuple):
    """A debounced gate edge. `gate` is 0-based; `rising` means the jack went high."""

    gate: int
    rising: bool
    t_ns: int


class EncoderStep(NamedTuple):
    """Detents turned: +1 clockwise per detent, -1 anticlockwise (no acceleration)."""

    steps: int
    t_ns: int


class ButtonPress(NamedTuple):
    """A push-button gesture: kind is "short", "long" or "double".

    `t_ns` is when the gesture's first press began; a short press is only posted once
    the double-press window has passed (or at release when double presses are off),
    a long press as soon as the button has been held long enough.
    """

    kind: str
    t_ns: int


Event = Union[GateEdge, EncoderStep, ButtonPress]

BUTTON_KINDS = ("short", "long", "double")


class EventQueue:
    """Thread-safe, non-blocking event hand-over from driver threads to the daemon."""

    def __init__(self, maxsize: int = 4096) -> None:
        self._items: Deque[Event] = collections.deque()
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._listener: Optional[Callable[[], Any]] = None
        self._gate_sink: Optional[Callable[[int, bool, int], Any]] = None
        self.dropped = 0

    def set_listener(self, listener: Optional[Callable[[], Any]]) -> None:
        """Called (from the posting thread) after every post; keep it tiny."""
        self._listener = listener

    def set_gate_sink(self, sink: Optional[Callable[[int, bool, int], Any]]) -> None:
        """Gate edges go straight to `sink(gate, rising, t_ns)`, called from the posting
        thread, instead of waiting in the queue for the next drain: a gate is timing,
        and the drain's period (a scheduler turn, 5 ms) would be added to every one.
        The sink must be tiny and thread-safe."""
        self._gate_sink = sink

    def post(self, event: Event) -> None:
        sink = self._gate_sink
        if sink is not None and isinstance(event, GateEdge):
            sink(event.gate, event.rising, event.t_ns)
            return
        with self._lock:
            if len(self._items) >= self._maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(event)
            self._ready.notify_all()
        listener = self._listener
        if listener is not None:
            listener()

    def drain(self) -> List[Event]:
        """Every waiting event, oldest first; never blocks."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items

    def wait(self, timeout: float) -> bool:
        """Block until an event is waiting or `timeout` seconds pass (for threads, tests)."""
        with self._lock:
            if self._items:
                return True
            self._ready.wait(timeout)
            return bool(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


@runtime_checkable
class CvInputs(Protocol):
    """The CV jacks, in panel volts (after the board file's linear map)."""

    @property
    def names(self) -> Sequence[str]: ...

    def read_volts(self) -> List[float]:
        """One reading of every CV. Real ADC: one conversion per channel (about 1.2 ms
        each at 860 samples/s), so call it from a worker thread or an executor.
        Raises HardwareError (I2CError, ConversionTimeout) when the chip fails."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class GateInputs(Protocol):
    """The gate jacks. Edges arrive as GateEdge events; `levels` is the debounced state."""

    @property
    def names(self) -> Sequence[str]: ...

    def levels(self) -> List[bool]: ...

    def close(self) -> None: ...


@runtime_checkable
class Encoder(Protocol):
    """The push encoder. Turns arrive as EncoderStep, the button as ButtonPress events."""

    def is_pressed(self) -> bool: ...

    def close(self) -> None: ...


@runtime_checkable
class RgbLed(Protocol):
    """The encoder's RGB LED: three lines, seven colours and off (fractions with PWM)."""

    def set_colour(self, colour: Colour) -> None:
        """Steady colour; cancels a blink."""
        ...

    def blink(self, colour: Colour, on_s: float, off_s: float,
              count: Optional[int] = None) -> None:
        """Blink `colour` (then off) `count` times, or until the next call when None;
        after a counted blink the previous steady colour returns."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Display(Protocol):
    """The OLED: show a PIL image of `size` (mode "1"; other modes are converted)."""

    @property
    def size(self) -> Tuple[int, int]: ...

    def show(self, image: Any) -> None: ...

    def close(self) -> None: ...
