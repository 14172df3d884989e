"""The PortAudio output: one consumer of the ring, kept alive by a keeper.

Where it plugs in: the daemon makes one `AudioRing`, gives it to the voice thread (the
producer) and to `AudioOutput` (the consumer), calls `start()` once and `stop()` at
exit; the scheduler reads `underflows`, `state` and `last_error` for the stats file and
the system-info screen. `--audio-device NAME` is passed as `device` (sounddevice's
rules: an index, or a substring of "device name, host API name").

Two ways to feed the device, chosen by its host API:
- ALSA and every other host API (the module's path; JACK reached through ALSA's `jack`
  plugin; a laptop's default device): a writer thread copies one block at a time from
  the ring into PortAudio's blocking `write()`, keeping `slack_blocks` blocks queued in
  the device. The device's own thread is C and never needs the interpreter, so a stall
  of the writer shorter than the slack (another thread holding the GIL, the writer
  descheduled on a busy core) is not heard. The price is the slack's latency.
- PortAudio's own JACK host API: a callback copies one block from the ring. Its
  blocking mode keeps a single period, so it would buy no slack, and it fills late
  writes with silence without flagging them. The callback never allocates, locks,
  logs or waits, but it needs the GIL, so a busy interpreter can make it late.
Both count underflows (PortAudio's output-underflow flag and ring shortfalls) and stamp
when a ring sample reaches the DAC.

A keeper thread owns every other PortAudio call, so nothing here raises into the
caller or blocks it:
- opening: the named device is looked up and opened; when that fails (absent, busy,
  server down) it retries with exponential backoff, re-scanning the device list;
- watching: a stream that stops taking blocks for `stall_timeout_s`, that PortAudio
  finishes on its own, or whose writes fail, is lost: it is closed (in a helper thread
  with a time limit, since some host APIs hang closing a dead device) and reopened as
  above.

PortAudio 19.6's JACK host API asserts (aborting the process) when it is terminated
after its server died, so the device list is only re-scanned while no JACK host API
is loaded. Through ALSA (the module's path, and JACK reached through ALSA's `jack`
plugin) a lost device is reopened without a re-scan.
"""
import logging
import os
import threading
import time
from typing import Any, Callable, Dict, Optional, Union

import numpy as np
import sounddevice as sd
from neurorave.firmware.realtime import realtime_thread
from neurorave.firmware.ring import AudioRing

CALLBACK_PRIORITY = 80  # above the voice thread: the consumer must never wait for it
SLACK_BLOCKS = 2  # blocking writes: blocks queued in the device (11 ms at 48 kHz, 256)
RING_WAIT_S = 0.001  # the writer's nap while the ring is short and the device still full

log = logging.getLogger("neurorave.audio")

STATE_STOPPED = "stopped"
STATE_OPENING = "opening"
STATE_PLAYING = "playing"
STATE_RETRYING = "retrying"


def jack_host_api_loaded() -> bool:
    try:
        return any("JACK" in api["name"] for api in sd.query_hostapis())
    except Exception:  # noqa: BLE001 - PortAudio not initialised: nothing loaded
        return False


def rescan_devices() -> bool:
    """Re-initialise PortAudio so devices that appeared since start are seen.

    Refused (False) while a JACK host API is loaded: see the module docstring.
    sounddevice points fd 2 at /dev/null meanwhile (ALSA's probe chatter), which would
    swallow any thread's line on stderr: the daemon writes its own lines to a copy of
    fd 2 (`daemon.ErrorLines`).
    """
    if jack_host_api_loaded():
        return False
    sd._terminate()
    sd._initialize()
    return True


class AudioOutput:
    def __init__(self, ring: AudioRing, samplerate: int = 48000,
                 device: Optional[Union[str, int]] = None, channels: int = 1,
                 blocksize: int = 256, latency: Union[str, float] = "low",
                 slack_blocks: int = SLACK_BLOCKS,
                 stall_timeout_s: float = 0.5, retry_min_s: float = 0.1,
                 retry_max_s: float = 2.0, close_timeout_s: float = 2.0,
                 rescan_interval_s: float = 3.0,
                 on_event: Optional[Callable[[str], None]] = None):
        self.ring = ring
        self.samplerate = int(samplerate)
        self.device = device
        self.channels = int(channels)
        self.blocksize = int(blocksize)
        self.latency = latency  # callback streams; blocking ones ask for the slack
        self.slack_blocks = max(int(slack_blocks), 2)  # one playing, one waiting
        self.stall_timeout_s = stall_timeout_s
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.close_timeout_s = close_timeout_s
        self.rescan_interval_s = rescan_interval_s
        self._last_rescan = float("-inf")
        self._on_event = on_event
        # Written by the consumer (callback or writer) only.
        self.callbacks = 0  # blocks handed to the device
        self.frames_played = 0
        self.status_underflows = 0
        self._drop_queued = False
        self._realtime_asked = os.environ.get("NEURORAVE_NO_RT") is not None
        self.callback_realtime_refused: Optional[str] = None
        self._stamp = np.zeros(3, dtype=np.float64)  # ring index, monotonic s, DAC delay s
        self._stamp_seq = 0
        # Written by the keeper only.
        self.state = STATE_STOPPED
        self.opens = 0
        self.losses = 0
        self.failed_opens = 0
        self.abandoned_closes = 0
        self.last_error = ""
        self.device_name = ""
        self._stream: Optional[sd.OutputStream] = None
        self.blocking = False  # how the open stream is fed (see the module docstring)
        self._writer: Optional[threading.Thread] = None
        self._writer_stop = threading.Event()
        self._writer_error = ""
        self._finished = threading.Event()
        self._stopping = threading.Event()
        self._playing = threading.Event()
        self._keeper: Optional[threading.Thread] = None

    # ---- the real-time part ----------------------------------------------------------
    def _begin_block(self) -> None:
        if not self._realtime_asked:
            # Once, on the consumer's own thread: a host API that did not make it
            # real-time (JACK without -R, PortAudio's ALSA thread without RT rights)
            # leaves it at the mercy of every busy process.
            self._realtime_asked = True
            self.callback_realtime_refused = realtime_thread(CALLBACK_PRIORITY)
        if self._drop_queued:
            # A new stream starts from fresh audio, not what queued while the device was gone.
            self._drop_queued = False
            self.ring.drop_all()

    def _set_stamp(self, ring_index: int, delay_s: float) -> None:
        """Ring sample `ring_index` reaches the DAC `delay_s` from now (for control-to-
        sound latency; a seqlock: odd while the stamp is being written)."""
        self._stamp_seq += 1
        stamp = self._stamp
        stamp[0] = ring_index
        stamp[1] = time.monotonic()
        stamp[2] = max(delay_s, 0.0)
        self._stamp_seq += 1

    def _copy_block(self, out: np.ndarray) -> None:
        self.ring.read_into(out[:, 0])
        if self.channels > 1:
            out[:, 1:] = out[:, :1]
        self.callbacks += 1
        self.frames_played += out.shape[0]

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any,
                  status: sd.CallbackFlags) -> None:
        self._begin_block()
        if status.output_underflow:
            self.status_underflows += 1
        self._set_stamp(self.ring.total_read,
                        time_info.outputBufferDacTime - time_info.currentTime)
        self._copy_block(outdata)

    def _write_loop(self, stream: sd.OutputStream, depth: int) -> None:
        """The writer thread of a blocking stream: `depth` is the device's buffer in
        frames (all free before the first write)."""
        block = np.zeros((self.blocksize, self.channels), dtype=np.float32)
        try:
            while not self._writer_stop.is_set():
                self._begin_block()
                queued = depth - stream.write_available
                if self.ring.available() < self.blocksize and queued > self.blocksize:
                    # The producer is late but the device still has audio: wait for it
                    # rather than queue silence that would then delay everything after.
                    time.sleep(RING_WAIT_S)
                    continue
                self._copy_block(block)
                if stream.write(block):
                    self.status_underflows += 1
                # The next ring sample plays once what the device holds now has played.
                self._set_stamp(self.ring.total_read,
                                (depth - stream.write_available) / self.samplerate)
        except Exception as exc:  # noqa: BLE001 - a dead device fails its writes: lost
            self._writer_error = str(exc) or type(exc).__name__
            self._finished.set()

    def _stream_finished(self) -> None:
        self._finished.set()

    # ---- the caller's side -------------------------------------------------------------
    @property
    def underflows(self) -> int:
        """Every underflow seen: PortAudio's flag and ring shortfalls."""
        return self.status_underflows + self.ring.underflows

    def play_time(self, ring_index: int) -> Optional[float]:
        """When ring sample `ring_index` reaches (or reached) the DAC, in time.monotonic().

        From the newest callback's stamp, assuming no underflow in between; None before
        the first callback. The voice thread uses it to measure control-to-sound latency:
        note the ring index where a gate's first frame was written, then
        `play_time(index) - gate time`.
        """
        for _ in range(100):
            seq = self._stamp_seq
            if seq == 0:
                return None
            index, clock, delay = (float(v) for v in self._stamp)
            if seq % 2 == 0 and seq == self._stamp_seq:
                return clock + delay + (ring_index - index) / self.samplerate
        return None

    def start(self) -> None:
        """Start playing as soon as the device can be opened; returns at once."""
        if self._keeper is not None and self._keeper.is_alive():
            return
        self._stopping.clear()
        self._keeper = threading.Thread(target=self._keep, name="audio-keeper", daemon=True)
        self._keeper.start()

    def wait_playing(self, timeout: Optional[float] = None) -> bool:
        return self._playing.wait(timeout)

    def stop(self, timeout: float = 3.0) -> None:
        """Close the stream and end the keeper, within about `timeout` seconds."""
        self._stopping.set()
        keeper = self._keeper
        if keeper is not None:
            keeper.join(timeout)
        self._keeper = None

    def status(self) -> Dict[str, Any]:
        """A summary for the stats file and the system-info screen."""
        return {"state": self.state, "device": self.device_name, "underflows": self.underflows,
                "ring_shortfalls": self.ring.underflows,
                "callback_realtime": self._realtime_asked and not self.callback_realtime_refused,
                "device_underflows": self.status_underflows,
                "feed": "blocking" if self.blocking else "callback",
                "callbacks": self.callbacks, "frames_played": self.frames_played,
                "opens": self.opens, "losses": self.losses, "last_error": self.last_error}

    # ---- the keeper --------------------------------------------------------------------
    def _event(self, text: str) -> None:
        log.info("%s", text)
        if self._on_event is not None:
            try:
                self._on_event(text)
            except Exception:  # noqa: BLE001 - a reporting hook must not stop the audio
                log.exception("audio event hook failed")

    def _keep(self) -> None:
        delay = self.retry_min_s
        self.state = STATE_OPENING
        try:
            while not self._stopping.is_set():
                if self._open():
                    delay = self.retry_min_s
                    self._watch()
                    self._close()
                    self.state = STATE_RETRYING
                    continue
                self.state = STATE_RETRYING
                if self._stopping.wait(delay):
                    break
                delay = min(delay * 2.0, self.retry_max_s)
        finally:
            self._close()
            self._playing.clear()
            self.state = STATE_STOPPED

    def _resolve_device(self) -> Dict[str, Any]:
        try:
            return dict(sd.query_devices(self.device, "output"))
        except (ValueError, sd.PortAudioError):
            # Not in the list PortAudio made at start: maybe it appeared since. A re-scan
            # probes every ALSA device (slow, and noisy on stderr): not too often.
            now = time.monotonic()
            if now - self._last_rescan < self.rescan_interval_s:
                raise
            self._last_rescan = now
            if rescan_devices():
                return dict(sd.query_devices(self.device, "output"))
            raise

    def _open(self) -> bool:
        try:
            info = self._resolve_device()
            self._finished.clear()
            self._writer_error = ""
            blocking = "JACK" not in sd.query_hostapis(info["hostapi"])["name"]
            slack_s = self.slack_blocks * self.blocksize / self.samplerate
            stream = sd.OutputStream(samplerate=self.samplerate, blocksize=self.blocksize,
                                     device=info["index"], channels=self.channels,
                                     dtype="float32",
                                     latency=slack_s if blocking else self.latency,
                                     callback=None if blocking else self._callback,
                                     finished_callback=self._stream_finished)
            self._drop_queued = self.opens > 0
            stream.start()
            if blocking:
                self._writer_stop.clear()
                self._writer = threading.Thread(
                    target=self._write_loop, args=(stream, stream.write_available),
                    name="audio-writer", daemon=True)
                self._writer.start()
        except Exception as exc:  # noqa: BLE001 - absent, busy, server down: retry later
            self.failed_opens += 1
            message = f"audio device {self.device or 'default'}: {exc}"
            if message != self.last_error:
                self._event(message)
            self.last_error = message
            self._playing.clear()
            return False
        self._stream = stream
        self.blocking = blocking
        self.device_name = str(info["name"])
        self.opens += 1
        self.last_error = ""
        self.state = STATE_PLAYING
        self._playing.set()
        feed = (f"blocking writes, {self.slack_blocks} blocks of slack" if blocking
                else "callback")
        self._event(f"audio playing on {self.device_name} ({self.samplerate} Hz, "
                    f"{self.blocksize} frames, {feed})")
        return True

    def _watch(self) -> None:
        """Return when the stream is lost or a stop is asked for."""
        seen = self.callbacks
        last_progress = time.monotonic()
        # The first callback may take a while (device start-up), the later ones may not.
        allowance = max(self.stall_timeout_s, 1.0)
        while not self._stopping.wait(0.05):
            now = time.monotonic()
            if self.callbacks != seen:
                seen = self.callbacks
                last_progress = now
                allowance = self.stall_timeout_s
            reason = ""
            if self._writer_error:
                reason = f"write failed: {self._writer_error}"
            elif self._finished.is_set():
                reason = "stream finished"
            elif now - last_progress > allowance:
                reason = f"no block taken for {now - last_progress:.1f} s"
            if reason:
                self.losses += 1
                self.last_error = f"audio device lost ({reason})"
                self._event(self.last_error)
                self._playing.clear()
                return

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        writer, self._writer = self._writer, None
        if stream is None:
            return
        if writer is not None:
            # The writer leaves within a block unless the device hangs its write; then
            # closing the stream under it is unsafe, so leave both behind.
            self._writer_stop.set()
            writer.join(self.close_timeout_s)
            if writer.is_alive():
                self.abandoned_closes += 1
                self._event("audio device hung a write; abandoned it")
                return
        closer = threading.Thread(target=self._close_quietly, args=(stream,),
                                  name="audio-close", daemon=True)
        closer.start()
        closer.join(self.close_timeout_s)
        if closer.is_alive():
            # The host API hung on a dead device; leave that stream behind and go on.
            self.abandoned_closes += 1
            self._event("audio device did not close; abandoned it")

    @staticmethod
    def _close_quietly(stream: sd.OutputStream) -> None:
        try:
            stream.close(ignore_errors=True)
        except Exception:  # noqa: BLE001 - a dead device may fail to close; nothing to save
            log.debug("closing a lost stream failed", exc_info=True)
