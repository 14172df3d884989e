"""The encoder's RGB LED as the daemon's state: loading, playing, error, calibrating."""
from neurorave.firmware.stats import Stats

# state -> (colour, blinking)
LED_STATES = {"loading": ("yellow", True), "playing": ("green", False),
              "error": ("red", True), "calibrating": ("magenta", True), "idle": ("blue", False)}


class StatusLight:
    def __init__(self, led, stats: Stats):
        self.led = led
        self.stats = stats
        self.state = "idle"

    def set(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        colour, blink = LED_STATES[state]
        try:
            if blink:
                self.led.blink(colour, on_s=0.15, off_s=0.15)
            else:
                self.led.set_colour(colour)
        except Exception as exc:  # noqa: BLE001 - an LED fault is not worth a stop
            self.stats.error(f"LED: {exc}")
