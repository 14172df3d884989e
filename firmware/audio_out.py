"""The PortAudio output: one consumer of the ring, kept alive by a keeper.

Where it plugs in: the daemon makes one `AudioRing`, gives it to the voice thread (the
producer) and to `AudioOutput` (the consumer), calls `start()` once and `stop()` at
exit; the scheduler reads `underflows`, `status()` and `status_line()` for the stats
file, the system-info screen and the OLED. `--audio-device NAME` is passed as `device`
(sounddevice's rules: an index, or a substring of "device name, host API name").

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
when a ring sample reaches the DAC. Without any sound card (no output device at all, and
none named), a third feed plays into a null output paced by the clock, so the daemon
keeps real time and says so once (`NULL_DEVICE`).

A keeper thread owns every other PortAudio call, so nothing here raises into the
caller or blocks it:
- opening: the named device is looked up and opened; when that fails (absent, busy,
  server down) it retries with exponential backoff (`retry_min_s` to `retry_max_s`; a
  stream that dies within `stable_s` of opening does not reset it), re-scanning the
  device list;
- watching: a stream that stops taking blocks for `stall_timeout_s`, that PortAudio
  finishes on its own, or whose writes fail, is lost and reopened as above.
It says one line when the device goes and one when it comes back; the failed tries in
between are counted (`status()`), not said.

What a lost device does to PortAudio 19.6, and how the keeper stays clear of it:
- Two PortAudio calls at once from two threads corrupt its state (its list of open
  streams has no lock): the keeper makes one call at a time and never opens while a
  close is still running; a writer stuck in a dead device's `write()`, or a JACK stream
  whose server died (closing it hangs forever), is abandoned untouched: never closed,
  and fenced off (`_Feed.dead`) so that if it ever wakes it touches neither the ring
  nor the new stream.
- PortAudio's JACK host API holds one JACK client for the whole process: once its
  server died it cannot open again, and re-initialising PortAudio to get a new one
  asserts (`pa_jack.c: Terminate: Assertion 'err == 0'`, an abort). So the device list
  is only re-scanned while no JACK host API is loaded, and a stream lost on PortAudio's
  JACK host API comes back through ALSA's `jack` plugin, on the same server.
- Nothing reaches PortAudio while a JACK server is down: before opening a device on
  JACK (PortAudio's JACK host API, or ALSA's `jack` plugin) the keeper asks libjack
  whether the server answers (`jack_server_up`, a client opened and closed at once).
- A failed open makes PortAudio print its own lines on stderr; they are caught (fd 2
  points at a temporary file for the length of the open, as sounddevice does while it
  scans) and the last of them kept in `last_error`, so a device that stays away makes
  no flood. (The daemon writes its own lines to a copy of fd 2: `ErrorLines`.)
"""
import contextlib
import ctypes
import ctypes.util
import logging
import os
import tempfile
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

import numpy as np
import sounddevice as sd
from neurorave.firmware.realtime import realtime_thread
from neurorave.firmware.ring import AudioRing

CALLBACK_PRIORITY = 80  # above the voice thread: the consumer must never wait for it
SLACK_BLOCKS = 2  # blocking writes: blocks queued in the device (11 ms at 48 kHz, 256)
RING_WAIT_S = 0.001  # the writer's nap while the ring is short and the device still full
NULL_DEVICE = "null output (no sound card)"
NULL_RESCAN_S = 10.0  # on the null output: how often to look for a sound card (~0.5 s CPU)

log = logging.getLogger("neurorave.audio")

STATE_STOPPED = "stopped"
STATE_OPENING = "opening"
STATE_PLAYING = "playing"
STATE_RETRYING = "retrying"
STATE_NULL = "null"  # no sound card at all: playing into the null output


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
    fd 2 (`error_lines.ErrorLines`).
    """
    if jack_host_api_loaded():
        return False
    sd._terminate()
    sd._initialize()
    return True


# ---- libjack, to ask whether a JACK server is up without PortAudio -----------------------
_JACK_NO_START_SERVER = 0x01
_jack: List[Any] = []  # [library or None, the quiet error hook kept alive]


def _libjack() -> Any:
    if not _jack:
        lib = None
        name = ctypes.util.find_library("jack") or "libjack.so.0"
        try:
            lib = ctypes.CDLL(name)
            lib.jack_client_open.restype = ctypes.c_void_p
            lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int,
                                             ctypes.POINTER(ctypes.c_int)]
            lib.jack_client_close.argtypes = [ctypes.c_void_p]
        except (OSError, AttributeError):
            lib = None
        hook = None
        if lib is not None:
            # libjack says every failed connection on stderr (five lines a try) unless
            # told otherwise; PortAudio's JACK host API installs the same kind of hook.
            hook = ctypes.CFUNCTYPE(None, ctypes.c_char_p)(lambda text: None)
            with contextlib.suppress(AttributeError):
                lib.jack_set_error_function(hook)
                lib.jack_set_info_function(hook)
        _jack[:] = [lib, hook]
    return _jack[0]


def jack_server_up() -> Optional[bool]:
    """Whether the JACK server (JACK_DEFAULT_SERVER, else "default") answers a client;
    None without libjack. Never starts a server. Costs a few ms when it is up."""
    lib = _libjack()
    if lib is None:
        return None
    status = ctypes.c_int(0)
    client = lib.jack_client_open(b"neurorave-probe", _JACK_NO_START_SERVER,
                                  ctypes.byref(status))
    if not client:
        return False
    lib.jack_client_close(client)
    return True


def _on_jack(info: Dict[str, Any]) -> bool:
    """Whether opening this device needs a JACK server."""
    try:
        api = str(sd.query_hostapis(info["hostapi"])["name"])
    except Exception:  # noqa: BLE001 - PortAudio gone under us: not ours to decide
        return False
    return "JACK" in api or (api == "ALSA" and str(info["name"]) == "jack")


@contextlib.contextmanager
def _stderr_caught(lines: List[str]) -> Iterator[None]:
    """Point fd 2 at a temporary file for the block; its last lines go into `lines`."""
    with tempfile.TemporaryFile() as catch:
        saved = os.dup(2)
        try:
            os.dup2(catch.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            with contextlib.suppress(OSError):
                catch.seek(0)
                text = catch.read(65536).decode("utf-8", "replace")
                lines.extend(line.strip() for line in text.splitlines() if line.strip())


class _Feed:
    """One opened stream and what belongs to it alone, so that a stream left behind
    (a stuck writer, a dead JACK client) can never touch its successor's state."""

    def __init__(self, stream: Any, blocking: bool, jack_api: bool, null: bool = False):
        self.stream = stream
        self.blocking = blocking
        self.jack_api = jack_api  # on PortAudio's own JACK host API
        self.null = null
        self.writer: Optional[threading.Thread] = None
        self.dead = threading.Event()  # set when the keeper gives the feed up
        self.finished = threading.Event()
        self.error = ""
        self.opened_at = time.monotonic()


class AudioOutput:
    def __init__(self, ring: AudioRing, samplerate: int = 48000,
                 device: Optional[Union[str, int]] = None, channels: int = 1,
                 blocksize: int = 256, latency: Union[str, float] = "low",
                 slack_blocks: int = SLACK_BLOCKS,
                 stall_timeout_s: float = 0.5, retry_min_s: float = 0.1,
                 retry_max_s: float = 1.0, close_timeout_s: float = 2.0,
                 rescan_interval_s: float = 3.0, stable_s: float = 1.0,
                 null_output: Optional[bool] = None,
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
        self.stable_s = stable_s
        # The null output stands in only for "the default device" on a machine that has
        # no output device at all (NEURORAVE_NULL_AUDIO=0 turns it off, =1 forces it).
        flag = os.environ.get("NEURORAVE_NULL_AUDIO")
        if null_output is None:
            null_output = flag != "0"
        self.null_allowed = bool(null_output) and device is None
        self._null_forced = self.null_allowed and flag == "1"
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
        self.returns = 0  # times a lost device came back
        self.failed_opens = 0
        self.retries = 0  # failed opens since the device was last playing
        self.abandoned_closes = 0
        self.server_down_checks = 0  # opens skipped because the JACK server was down
        self.last_error = ""
        self.device_name = ""
        self.down_since: Optional[float] = None  # monotonic s: without sound since
        self.jack_api_dead = False  # PortAudio's JACK host API lost its server for good
        self.blocking = False  # how the open stream is fed (see the module docstring)
        self._feed: Optional[_Feed] = None
        self._abandoned: List[_Feed] = []
        self._null_said = False
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

    def _callback_for(self, feed: _Feed) -> Callable[..., None]:
        def callback(outdata: np.ndarray, frames: int, time_info: Any,
                     status: sd.CallbackFlags) -> None:
            if feed.dead.is_set():  # a stream left behind: silence, and hands off the ring
                outdata.fill(0)
                return
            self._begin_block()
            if status.output_underflow:
                self.status_underflows += 1
            self._set_stamp(self.ring.total_read,
                            time_info.outputBufferDacTime - time_info.currentTime)
            self._copy_block(outdata)
        return callback

    def _write_loop(self, feed: _Feed, depth: int) -> None:
        """The writer thread of a blocking stream: `depth` is the device's buffer in
        frames (all free before the first write)."""
        stream = feed.stream
        block = np.zeros((self.blocksize, self.channels), dtype=np.float32)
        try:
            while not feed.dead.is_set():
                self._begin_block()
                queued = depth - stream.write_available
                if self.ring.available() < self.blocksize and queued > self.blocksize:
                    # The producer is late but the device still has audio: wait for it
                    # rather than queue silence that would then delay everything after.
                    time.sleep(RING_WAIT_S)
                    continue
                if feed.dead.is_set():  # woke from a stuck write after being given up
                    return
                self._copy_block(block)
                underflowed = stream.write(block)
                if feed.dead.is_set():  # released from a stuck write: touch nothing more
                    return
                if underflowed:
                    self.status_underflows += 1
                # The next ring sample plays once what the device holds now has played.
                self._set_stamp(self.ring.total_read,
                                (depth - stream.write_available) / self.samplerate)
        except Exception as exc:  # noqa: BLE001 - a dead device fails its writes: lost
            feed.error = str(exc) or type(exc).__name__
            feed.finished.set()

    def _null_loop(self, feed: _Feed) -> None:
        """No sound card: take one block per block period from the ring, on the clock,
        so the voice and the latency figures run as they would on a device."""
        block = np.zeros((self.blocksize, self.channels), dtype=np.float32)
        period = self.blocksize / self.samplerate
        due = time.monotonic()
        while not feed.dead.is_set():
            self._begin_block()
            self._copy_block(block)
            self._set_stamp(self.ring.total_read, period)
            due += period
            wait = due - time.monotonic()
            if wait > 0:
                feed.dead.wait(wait)
            elif wait < -0.5:  # descheduled for long: start the clock again
                due = time.monotonic()

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
        self.down_since = time.monotonic()
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

    def down_s(self) -> float:
        """Seconds without sound (0 while playing)."""
        since = self.down_since
        return 0.0 if since is None else max(time.monotonic() - since, 0.0)

    def status_line(self) -> str:
        """One short line for the OLED while there is no sound ("" while playing)."""
        state = self.state
        if state == STATE_PLAYING:
            return ""
        if state == STATE_NULL:
            return "no sound card: silent"
        if state == STATE_STOPPED:
            return "audio stopped"
        name = self.device_name or (str(self.device) if self.device is not None else "")
        return f"no audio {self.down_s():.0f}s {name}".strip()

    def status(self) -> Dict[str, Any]:
        """A summary for the stats file and the system-info screen."""
        name = self.device_name or (str(self.device) if self.device is not None
                                    else "default")
        if self.state == STATE_PLAYING:
            summary = f"playing on {name}"
        elif self.state == STATE_NULL:
            summary = "no sound card: playing into the null output (silent)"
        elif self.state == STATE_STOPPED:
            summary = "stopped"
        else:
            summary = (f"no audio device: retrying {name} for {self.down_s():.0f} s "
                       f"({self.retries} tries)")
        return {"state": self.state, "summary": summary, "device": self.device_name,
                "underflows": self.underflows,
                "ring_shortfalls": self.ring.underflows,
                "callback_realtime": self._realtime_asked and not self.callback_realtime_refused,
                "device_underflows": self.status_underflows,
                "feed": ("null" if self.state == STATE_NULL
                         else "blocking" if self.blocking else "callback"),
                "callbacks": self.callbacks, "frames_played": self.frames_played,
                "opens": self.opens, "losses": self.losses, "returns": self.returns,
                "failed_opens": self.failed_opens, "retries": self.retries,
                "down_s": round(self.down_s(), 2),
                "abandoned": self.abandoned_closes,
                "jack_server_down_checks": self.server_down_checks,
                "last_error": self.last_error}

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
                feed = self._open()
                if feed is not None:
                    self._watch(feed)
                    lived = time.monotonic() - feed.opened_at
                    self._give_up(feed)
                    if self._stopping.is_set():
                        break
                    self.state = STATE_RETRYING
                    if lived >= self.stable_s:
                        delay = self.retry_min_s
                        continue  # it played a while: try again at once
                    # Died at once (a server shutting down, a device half there): back
                    # off as after a failed open, never spin.
                self.state = STATE_RETRYING
                if self._stopping.wait(delay):
                    break
                delay = min(delay * 2.0, self.retry_max_s)
        finally:
            if self._feed is not None:
                self._give_up(self._feed)
            self._playing.clear()
            self.state = STATE_STOPPED

    def _resolve_device(self) -> Dict[str, Any]:
        if self.jack_api_dead:
            # PortAudio's JACK host API lost its server for good: the same server,
            # through ALSA's jack plugin.
            for info in sd.query_devices():
                if info["name"] == "jack" and info["max_output_channels"] > 0 and \
                        sd.query_hostapis(info["hostapi"])["name"] == "ALSA":
                    return dict(info)
            raise ValueError("PortAudio's JACK host API cannot reconnect after its server "
                             "died, and ALSA's jack plugin is not listed")
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

    def _no_output_device(self) -> bool:
        """No output device at all (not just the named one): there is no sound card."""
        try:
            return not any(d["max_output_channels"] > 0 for d in sd.query_devices())
        except Exception:  # noqa: BLE001 - PortAudio not usable: no device either
            return True

    def _open(self) -> Optional[_Feed]:
        said: List[str] = []
        try:
            if self._null_forced:
                raise ValueError("NEURORAVE_NULL_AUDIO=1")
            info = self._resolve_device()
            if _on_jack(info) and jack_server_up() is False:
                self.server_down_checks += 1
                raise RuntimeError("JACK server not running")
            jack_api = "JACK" in sd.query_hostapis(info["hostapi"])["name"]
            blocking = not jack_api
            slack_s = self.slack_blocks * self.blocksize / self.samplerate
            feed = _Feed(None, blocking, jack_api)
            with _stderr_caught(said):
                stream = sd.OutputStream(
                    samplerate=self.samplerate, blocksize=self.blocksize,
                    device=info["index"], channels=self.channels, dtype="float32",
                    latency=slack_s if blocking else self.latency,
                    callback=None if blocking else self._callback_for(feed),
                    finished_callback=feed.finished.set)
                feed.stream = stream
                self._drop_queued = self.opens > 0
                try:
                    stream.start()
                except Exception:
                    stream.close(ignore_errors=True)
                    raise
        except Exception as exc:  # noqa: BLE001 - absent, busy, server down: retry later
            return self._open_failed(exc, said)
        if blocking:
            feed.writer = threading.Thread(
                target=self._write_loop, args=(feed, stream.write_available),
                name="audio-writer", daemon=True)
            feed.writer.start()
        self._feed = feed
        self.blocking = blocking
        self._played(str(info["name"]),
                     (f"blocking writes, {self.slack_blocks} blocks of slack" if blocking
                      else "callback"))
        return feed

    def _open_failed(self, exc: Exception, said: List[str]) -> Optional[_Feed]:
        self.failed_opens += 1
        self.retries += 1
        name = self.device if self.device is not None else "default"
        reason = str(exc) or type(exc).__name__
        if said and reason not in said[-1]:
            reason = f"{reason} ({said[-1]})"
        self.last_error = f"audio device {name}: {reason}"
        self._playing.clear()
        if self.null_allowed and (self._null_forced or self._no_output_device()):
            return self._open_null()
        if self.opens == 0 and self.retries == 1:
            self._event(f"audio device {name} not available yet ({reason}); retrying")
        return None

    def _open_null(self) -> _Feed:
        feed = _Feed(None, False, False, null=True)
        self._drop_queued = self.opens > 0
        feed.writer = threading.Thread(target=self._null_loop, args=(feed,),
                                       name="audio-null", daemon=True)
        feed.writer.start()
        self._feed = feed
        self.blocking = False
        if not self._null_said:
            self._null_said = True
            self._event("no sound card: playing into a null output (silent, in real "
                        "time); to hear it, play through a JACK server (README, "
                        "'Without a sound card') or render a patch to a WAV")
        self.device_name = NULL_DEVICE
        self.retries = 0
        self.down_since = None  # playing, if into nothing
        self.state = STATE_NULL
        self._playing.set()
        return feed

    def _played(self, name: str, feed_text: str) -> None:
        first = self.opens == 0
        away = self.down_s()
        tries = self.retries
        self.device_name = name
        self.opens += 1
        self.last_error = ""
        self.retries = 0
        self.down_since = None
        self.state = STATE_PLAYING
        self._playing.set()
        text = (f"{name} ({self.samplerate} Hz, {self.blocksize} frames, {feed_text})")
        if first:
            self._event(f"audio playing on {text}")
        else:
            self.returns += 1
            via = (" through ALSA's jack plugin: PortAudio's own JACK host API cannot "
                   "reconnect once its server died" if self.jack_api_dead else "")
            self._event(f"audio device back: playing on {text} after {away:.1f} s without "
                        f"sound, {tries} tries{via}")

    def _watch(self, feed: _Feed) -> None:
        """Return when the stream is lost or a stop is asked for."""
        if feed.null:
            # The null output never fails; look for a real device now and then.
            while not self._stopping.wait(max(self.rescan_interval_s, NULL_RESCAN_S)):
                if self._real_device_appeared():
                    return
            return
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
            if feed.error:
                reason = f"write failed: {feed.error}"
            elif feed.finished.is_set():
                reason = "stream finished"
            elif now - last_progress > allowance:
                reason = f"no block taken for {now - last_progress:.1f} s"
            if reason:
                self.losses += 1
                self.retries = 0
                self.down_since = now
                self.state = STATE_RETRYING
                self.last_error = f"audio device lost: {self.device_name} ({reason})"
                self._playing.clear()
                self._event(f"{self.last_error}; retrying")
                if feed.jack_api:
                    self.jack_api_dead = True
                return

    def _real_device_appeared(self) -> bool:
        if self._null_forced:
            return False
        self._last_rescan = time.monotonic()
        return rescan_devices() and not self._no_output_device()

    def _give_up(self, feed: _Feed) -> None:
        """Stop feeding `feed` and close its stream if that is safe (module docstring)."""
        feed.dead.set()
        if self._feed is feed:
            self._feed = None
        writer = feed.writer
        if writer is not None:
            # The writer leaves within a block unless the device hangs its write; then
            # closing the stream under it is unsafe: leave both behind, fenced off.
            writer.join(self.close_timeout_s)
            if writer.is_alive():
                self._abandon(feed)
                return
        if feed.stream is None:
            return
        if feed.jack_api and not self._stopping.is_set():
            # A JACK stream whose server died hangs in close() for ever.
            self._abandon(feed)
            return
        closer = threading.Thread(target=self._close_quietly, args=(feed.stream,),
                                  name="audio-close", daemon=True)
        closer.start()
        closer.join(self.close_timeout_s)
        if closer.is_alive():
            # Never open while a close is still inside PortAudio: wait it out (the
            # stopping flag ends the wait at exit).
            while closer.is_alive() and not self._stopping.wait(0.1):
                closer.join(0.1)
            if closer.is_alive():
                self._abandon(feed)

    def _abandon(self, feed: _Feed) -> None:
        self.abandoned_closes += 1
        self._abandoned.append(feed)  # kept referenced: never collected under PortAudio

    @staticmethod
    def _close_quietly(stream: sd.OutputStream) -> None:
        try:
            with _stderr_caught([]):
                stream.close(ignore_errors=True)
        except Exception:  # noqa: BLE001 - a dead device may fail to close; nothing to save
            log.debug("closing a lost stream failed", exc_info=True)
