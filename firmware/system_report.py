"""Once a second: the system-info page (engine, speed, underflows, load, temperature)
and the daemon's figures for the stats file (late and bad frames, OLED frames, turn
times, audio state, when the first sound reached the DAC)."""
import os
import time
from typing import Callable, Optional

from neurorave.firmware.menu import Menu
from neurorave.firmware.stats import PercentileWindow, Stats
from neurorave.firmware.status_light import StatusLight
from neurorave.firmware.voice import Voice


def cpu_temperature() -> Optional[float]:
    try:
        with open("/sys/class/thermal/thermal_zone0/temp") as handle:
            return int(handle.read().strip()) / 1000.0
    except (OSError, ValueError):
        return None


class SystemReport:
    def __init__(self, voice: Voice, audio, menu: Menu, light: StatusLight, stats: Stats,
                 log: Callable[[str], None], frames_drawn: Callable[[], int],
                 cv_reads: Callable[[], int] = lambda: 0):
        self.voice = voice
        self.audio = audio
        self.menu = menu
        self.light = light
        self.stats = stats
        self.log = log
        self.frames_drawn = frames_drawn
        self.cv_reads = cv_reads  # CV readings taken so far (each frame takes the newest)
        self.turn_ms = PercentileWindow(4096)  # how long a scheduler turn holds the GIL
        self._rt_said = False

    def update(self) -> None:
        self.menu.set_system_info(self._lines())
        self._realtime_refusals()
        self._figures()

    def _lines(self):
        model = self.voice.model
        p50 = self.stats.inference.percentile(50)
        lines = []
        lost = self.audio.status_line()  # a lost device comes first
        if lost:
            lines.append(lost)
        if model is not None:
            provider = model.engine.provider.replace("ExecutionProvider", "")
            lines.append(f"{model.engine.kind} {provider}")
            if p50:
                frame_ms = 1e3 / model.frame_rate_hz
                lines.append(f"RT x{frame_ms / p50:.0f}  late {self.voice.late_frames}")
        lines.append(f"underflows {self.audio.underflows}")
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        temp = cpu_temperature()
        lines.append((f"load {load:.2f}" if load is not None else "load ?")
                     + (f"  {temp:.0f} C" if temp is not None else ""))
        return lines

    def _realtime_refusals(self) -> None:
        """Said once: a thread that runs without real-time priority."""
        if self._rt_said or not (self.voice.realtime_refused
                                 or self.audio.callback_realtime_refused):
            return
        self._rt_said = True
        for part, why in (("voice thread", self.voice.realtime_refused),
                          ("audio consumer", self.audio.callback_realtime_refused)):
            if why:
                self.log(f"{part} without real-time priority: {why}")

    def _figures(self) -> None:
        extra = self.stats.extra
        if "first_sound_unix" not in extra and self.voice.first_sound_index is not None:
            heard = self.audio.play_time(self.voice.first_sound_index)
            if heard is not None:  # when the first sound reaches the DAC, wall clock
                extra["first_sound_unix"] = time.time() - time.monotonic() + heard
        extra.update({"late_frames": self.voice.late_frames,
                      "ring_threshold": self.voice.threshold(),
                      "oled_frames": self.frames_drawn(),
                      "scheduler_turn_ms": self.turn_ms.summary(),
                      "bad_frames": self.voice.bad_frames,
                      "gates": self.voice.gates, "gates_spliced": self.voice.rerenders,
                      "gates_from_twins": self.voice.speculated,
                      "frames": self.voice.frames, "cv_reads": self.cv_reads(),
                      "state": self.light.state,
                      "audio": self.audio.status()})
