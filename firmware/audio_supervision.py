"""The daemon's sound: the ring between voice and device, the PortAudio output (whose
keeper thread reopens a lost device, `audio_out.py`), its events said once each on
stderr and in the stats, and the fade reaching the DAC before the stream closes."""
import time
from typing import Callable

from neurorave.firmware.audio_out import AudioOutput
from neurorave.firmware.ring import AudioRing
from neurorave.firmware.stats import Stats

RING_SAMPLES = 8 * 4096
FADE_DRAIN_S = 0.3  # at exit: how long the fade-out may take to reach the DAC


class AudioSupervision:
    def __init__(self, device, rate: int, block: int, stats: Stats,
                 log: Callable[[str], None]):
        self.stats = stats
        self.log = log
        self.ring = AudioRing(RING_SAMPLES)
        self.output = AudioOutput(self.ring, rate, device, blocksize=block,
                                  on_event=self._event)

    def _event(self, text: str) -> None:
        self.log(f"audio: {text}")
        if not text.startswith(("audio playing", "audio device back")):  # good news
            self.stats.error(f"audio: {text}")

    def start(self) -> None:
        self.output.start()

    def drain(self) -> None:
        """Let what the voice queued (its fade-out) reach the DAC."""
        deadline = time.monotonic() + FADE_DRAIN_S
        while self.ring.available() > 0 and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        self.output.stop(timeout=1.0)
