"""AudioOutput against a real JACK server (dummy driver, 48 kHz, 256 frames).

The machine is shared and loaded, so these tests assert what holds under load (the
callback is paced like a sound card, the samples are consumed and heard, the output
survives losing its server and comes back) and not "zero underflows" (a benchmark's
job).
"""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile
from fixtures_jack import JackServer, jack_server_fixture, read_until, spawn_child  # noqa: F401

ALSA_JACK = "jack, ALSA"  # ALSA's jack plugin: the ALSA path the module uses, over JACK
JACK_DIRECT = "JACK Audio Connection Kit"  # PortAudio's own JACK host API

# The child: a producer thread writes a 750 Hz sine (period 64 samples) into the ring,
# AudioOutput plays it; the child reports lines "NAME {json}" and obeys stdin lines.
CHILD = r"""
import ctypes, json, os, sys, threading, time
import numpy as np
from neurorave.firmware.ring import AudioRing
from neurorave.firmware.audio_out import AudioOutput

DEVICE = sys.argv[1] if len(sys.argv) > 1 else None
CHANNELS = int(sys.argv[2]) if len(sys.argv) > 2 else 1
ring = AudioRing(4096)
period = np.sin(2 * np.pi * np.arange(64) / 64).astype(np.float32) * 0.5
block = np.tile(period, 4)  # 256 samples, whole periods: blocks join seamlessly
written = [0]
stop = threading.Event()

def produce():
    while not stop.is_set():
        if ring.free() >= block.size:
            written[0] += ring.write(block)
        else:
            time.sleep(0.002)

events = []
out = AudioOutput(ring, 48000, device=DEVICE, channels=CHANNELS, blocksize=256,
                  stall_timeout_s=0.5,
                  retry_min_s=0.05, retry_max_s=0.4, rescan_interval_s=1.0,
                  on_event=events.append)

def report(name, **extra):
    doc = dict(out.status(), written=written[0], ring_read=ring.total_read,
               ring_missing=ring.samples_missing, status_underflows=out.status_underflows,
               t=time.monotonic(), events=events[-5:], all_events=events, **extra)
    print(name, json.dumps(doc), flush=True)

def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False

producer = threading.Thread(target=produce, daemon=True)
producer.start()
t0 = time.monotonic()
out.start()
report("STARTED", start_call_s=time.monotonic() - t0)
for line in sys.stdin:
    command = line.split()
    if command[0] == "play":  # wait until playing, then measure for N seconds
        ok = out.wait_playing(float(command[2]))
        if ok:
            wait_for(lambda: out.callbacks > 4, 5)
        f0, t1 = out.frames_played, time.monotonic()
        time.sleep(float(command[1]))
        report("PLAYED", ok=ok, rate=(out.frames_played - f0) / (time.monotonic() - t1))
    elif command[0] == "stall":  # from now on, hold the GIL for MS every PERIOD ms
        # A PyDLL call keeps the GIL for its whole length, as a long C call would.
        usleep = ctypes.PyDLL(None).usleep
        hold_us, period_s = int(float(command[1]) * 1000), float(command[2]) / 1000

        def stall():
            while not stop.is_set():
                usleep(hold_us)
                time.sleep(period_s)
        threading.Thread(target=stall, daemon=True).start()
        report("STALLING")
    elif command[0] == "clock":  # when do the oldest and newest queued samples play?
        now = time.monotonic()
        report("CLOCK", now=now, playing_now=out.play_time(ring.total_read),
               newest=out.play_time(ring.total_written), queued=ring.available())
    elif command[0] == "await_back":  # until blocks flow again; when the first one went
        seen = [out.callbacks]
        ok = wait_for(lambda: out.state == "playing" and out.callbacks > seen[0], float(command[1]))
        first_block = time.monotonic()
        wait_for(lambda: out.callbacks > seen[0] + 20, 5)
        report("BACK", ok=ok, first_block=first_block)
    elif command[0] == "await_loss":
        ok = wait_for(lambda: out.state != "playing", float(command[1]))
        report("LOST", ok=ok)
    elif command[0] == "quit":
        t1 = time.monotonic()
        out.stop()
        stop.set()
        report("STOPPED", stop_s=time.monotonic() - t1)
        break
sys.stdout.flush()
# Skip PortAudio's exit-time Pa_Terminate: with a dead JACK server it aborts (19.6).
os._exit(0)
"""


def _child(server, device, channels=1):
    return spawn_child(CHILD, server, device, str(channels))


def _say(child, text):
    child.stdin.write(text + "\n")
    child.stdin.flush()


def _report(lines, name):
    line = lines[-1]
    assert line.startswith(name)
    return json.loads(line[len(name) + 1:])


def _finish(child):
    _say(child, "quit")
    stopped = _report(read_until(child, "STOPPED", 20), "STOPPED")
    child.wait(10)
    assert child.returncode == 0, child.stderr.read()[-2000:]
    return stopped


def _our_ports(server):
    ports = sorted(p for p in server.ports() if not p.startswith("system:"))
    assert ports, f"our client has no JACK port: {server.ports()}"
    return ports


def _record(server, ports, seconds, path):
    subprocess.run(["jack_rec", "-f", path, "-d", str(seconds), "-b", "32", *ports],
                   env=server.env(), check=True, capture_output=True, timeout=seconds + 20)
    audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    return audio, rate


@pytest.mark.parametrize("device,channels", [(ALSA_JACK, 1), (JACK_DIRECT, 2)])
def test_plays_the_ring_at_the_paced_rate_and_is_heard(jack_server, device, channels, tmp_path):
    child = _child(jack_server, device, channels)
    try:
        started = _report(read_until(child, "STARTED", 30), "STARTED")
        assert started["start_call_s"] < 0.5  # start() never blocks on the device
        _say(child, "play 2 10")
        played = _report(read_until(child, "PLAYED", 40), "PLAYED")
        assert played["ok"] and played["state"] == "playing"
        # ALSA is fed by blocking writes with slack, PortAudio's JACK API by a callback.
        assert played["feed"] == ("blocking" if device == ALSA_JACK else "callback")
        # Paced like a sound card: 48000 frames a second, give or take load.
        assert 0.75 * 48000 < played["rate"] < 1.25 * 48000, played
        assert played["callbacks"] >= played["frames_played"] // 1024
        # The callback took its samples from the ring: what it played is what was read,
        # plus the silence it filled in where the ring ran short.
        assert played["ring_read"] + played["ring_missing"] >= played["frames_played"] - 256
        assert played["ring_read"] > 48000
        assert played["written"] >= played["ring_read"]
        # The output knows when a ring sample reaches the DAC: the oldest queued sample
        # plays about now, the newest one a ring's worth later.
        _say(child, "clock")
        clock = _report(read_until(child, "CLOCK", 20), "CLOCK")
        assert -0.1 < clock["playing_now"] - clock["now"] < 0.25, clock
        if played["feed"] == "blocking":
            # The device holds the slack: the next ring sample is a block or more away.
            assert clock["playing_now"] - clock["now"] > 256 / 48000, clock
        ahead = clock["newest"] - clock["playing_now"]
        assert ahead == pytest.approx(clock["queued"] / 48000)
        # What reached JACK is the sine the producer wrote.
        # (ALSA's jack plugin always registers two ports; PortAudio fills the first.)
        ports = _our_ports(jack_server)[:channels]
        assert len(ports) == channels
        recorded, rate = _record(jack_server, ports, 1, str(tmp_path / "o.wav"))
        assert rate == 48000 and recorded.shape[0] > 24000 and recorded.shape[1] == channels
        # Every channel carries the same mono voice (jack_rec connects its ports one
        # after the other, so the first blocks may differ).
        assert np.array_equal(recorded[2048:, 0], recorded[2048:, -1])
        audio = recorded[:, 0]
        spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
        peak_hz = np.argmax(spectrum) * rate / audio.size
        assert abs(peak_hz - 750.0) < 5.0, peak_hz
        assert np.max(np.abs(audio)) == pytest.approx(0.5, abs=0.02)
        stopped = _finish(child)
        assert stopped["state"] == "stopped" and stopped["stop_s"] < 3.0
    finally:
        if child.poll() is None:
            child.kill()


def _underflows_while_stalled(server, device, channels):
    child = _child(server, device, channels)
    try:
        read_until(child, "STARTED", 30)
        _say(child, "play 0.5 10")
        started = _report(read_until(child, "PLAYED", 30), "PLAYED")
        assert started["ok"], started
        _say(child, "stall 7 13")
        read_until(child, "STALLING", 10)
        _say(child, "play 4 10")
        played = _report(read_until(child, "PLAYED", 30), "PLAYED")
        _finish(child)
    finally:
        if child.poll() is None:
            child.kill()
    return played["feed"], played["underflows"] - started["underflows"], played["rate"]


@pytest.mark.slow
def test_blocking_feed_rides_out_gil_stalls_that_break_a_callback(jack_server):
    # Another thread holds the GIL for 7 ms at a time: longer than a 256-frame period
    # (5.3 ms), shorter than the blocking feed's two blocks of slack (10.7 ms).
    feed, blocking, rate = _underflows_while_stalled(jack_server, ALSA_JACK, 1)
    assert feed == "blocking"
    assert 0.75 * 48000 < rate < 1.25 * 48000
    feed, callback, _ = _underflows_while_stalled(jack_server, JACK_DIRECT, 2)
    assert feed == "callback"
    # The stall is real: the callback, which needs the GIL every period, is late often.
    assert callback >= 20, callback
    assert blocking <= 2 and blocking * 10 <= callback, (blocking, callback)


@pytest.mark.slow
def test_survives_losing_the_server_and_recovers(jack_server):
    child = _child(jack_server, ALSA_JACK)
    try:
        read_until(child, "STARTED", 30)
        _say(child, "play 1 10")
        before = _report(read_until(child, "PLAYED", 30), "PLAYED")
        assert before["ok"] and before["opens"] == 1, before
        jack_server.kill()
        _say(child, "await_loss 10")
        lost = _report(read_until(child, "LOST", 20), "LOST")
        assert lost["ok"] and lost["losses"] == 1 and "lost" in lost["last_error"], lost
        time.sleep(1.0)  # the server stays down a while: opening fails and is retried
        jack_server.start()
        _say(child, "play 1 20")
        after = _report(read_until(child, "PLAYED", 40), "PLAYED")
        assert after["ok"] and after["state"] == "playing", after
        assert after["opens"] == 2, after
        assert after["frames_played"] > before["frames_played"] + 24000
        # Paced again (loosely: a freshly started server on a loaded machine).
        assert 0.5 * 48000 < after["rate"] < 1.5 * 48000, after
        _finish(child)
    finally:
        if child.poll() is None:
            child.kill()


@pytest.mark.slow
def test_waits_for_a_device_that_is_not_there_yet(tmp_path):
    server = JackServer(str(tmp_path))  # not started: the device is absent
    child = _child(server, ALSA_JACK)
    try:
        started = _report(read_until(child, "STARTED", 30), "STARTED")
        assert started["start_call_s"] < 0.5
        time.sleep(1.0)
        _say(child, "play 0 0.01")
        waiting = _report(read_until(child, "PLAYED", 20), "PLAYED")
        assert not waiting["ok"] and waiting["state"] in ("opening", "retrying"), waiting
        assert waiting["frames_played"] == 0 and waiting["last_error"], waiting
        server.start()
        _say(child, "play 1 20")
        played = _report(read_until(child, "PLAYED", 40), "PLAYED")
        assert played["ok"] and played["state"] == "playing", played
        assert 0.5 * 48000 < played["rate"] < 1.5 * 48000, played
        _finish(child)
    finally:
        if child.poll() is None:
            child.kill()
        server.stop()
        server.remove_leftovers()


def test_device_side_module_imports_without_a_server():
    # Importing the output must not need a server or a sound card (PortAudio just
    # lists no devices); a missing named device is a retry, not an exception.
    code = ("from neurorave.firmware.ring import AudioRing\n"
            "from neurorave.firmware.audio_out import AudioOutput\n"
            "o = AudioOutput(AudioRing(1024), device='no such device')\n"
            "o.start(); import time; time.sleep(0.5); print(o.state, o.failed_opens >= 1,"
            " bool(o.last_error)); o.stop()\n")
    env = dict(os.environ, JACK_NO_START_SERVER="1", JACK_DEFAULT_SERVER="nr-none")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["retrying", "True", "True"]


# A device of the user's own ALSA configuration over the JACK server: its name says
# nothing of JACK, so the keeper cannot ask the server first and must ride out failed
# opens (PortAudio's own lines on stderr caught, not flooding).
ASOUNDRC = """
pcm.nrtest {
    type plug
    slave.pcm "jack"
    hint.description "NeuroRave test device over JACK"
}
"""


@pytest.mark.slow
@pytest.mark.parametrize("device", [ALSA_JACK, JACK_DIRECT, "nrtest"])
def test_a_lost_device_says_one_line_each_way_and_plays_within_2_s_of_its_return(
        jack_server, device, tmp_path):
    env = jack_server.env()
    if device == "nrtest":
        (tmp_path / ".asoundrc").write_text(ASOUNDRC)
        env["HOME"] = str(tmp_path)
    child = subprocess.Popen([sys.executable, "-u", "-c", CHILD, device, "1"], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=jack_server.folder)
    try:
        read_until(child, "STARTED", 30)
        _say(child, "play 1 10")
        before = _report(read_until(child, "PLAYED", 30), "PLAYED")
        assert before["ok"] and before["opens"] == 1, before
        assert before["feed"] == ("callback" if device == JACK_DIRECT else "blocking")
        jack_server.kill()
        _say(child, "await_loss 10")
        lost = _report(read_until(child, "LOST", 20), "LOST")
        assert lost["ok"] and lost["state"] == "retrying", lost
        time.sleep(2.5)  # down a while: the keeper retries with back-off, quietly
        _say(child, "play 0 0.01")
        waiting = _report(read_until(child, "PLAYED", 20), "PLAYED")
        assert waiting["state"] == "retrying" and waiting["retries"] >= 2, waiting
        assert waiting["down_s"] >= 2.0, waiting
        jack_server.start()
        up = time.monotonic()  # the server answers clients from here on
        _say(child, "await_back 10")
        back = _report(read_until(child, "BACK", 20), "BACK")
        assert back["ok"], back
        reopen_s = back["first_block"] - up
        assert reopen_s < 2.0, (reopen_s, back)
        _say(child, "play 1 10")
        after = _report(read_until(child, "PLAYED", 30), "PLAYED")
        assert after["state"] == "playing" and after["opens"] == 2, after
        assert 0.5 * 48000 < after["rate"] < 1.5 * 48000, after
        if device == JACK_DIRECT:
            # PortAudio's JACK host API cannot reconnect in this process: the same
            # server, through ALSA's jack plugin.
            assert after["feed"] == "blocking" and after["device"] == "jack", after
        _finish(child)
        err = child.stderr.read()
    finally:
        if child.poll() is None:
            child.kill()
    events = after["all_events"]
    assert len([e for e in events if e.startswith("audio device lost")]) == 1, events
    assert len([e for e in events if e.startswith("audio device back")]) == 1, events
    assert len(events) == 3, events  # playing, lost, back: nothing for each failed try
    assert "Expression" not in err and "Assertion" not in err, err[-2000:]
    assert len(err.splitlines()) < 20, err[-2000:]
    print(f"{device}: reopened {reopen_s:.2f} s after the server was back, "
          f"{waiting['retries']} quiet retries while down")


def test_without_any_sound_card_the_default_device_plays_into_a_null_output(tmp_path):
    # No JACK server and no sound card: PortAudio lists no output device at all.
    code = r"""
import sys, time
import numpy as np
from neurorave.firmware.ring import AudioRing
from neurorave.firmware.audio_out import AudioOutput
import sounddevice as sd
assert not any(d["max_output_channels"] for d in sd.query_devices()), sd.query_devices()
ring = AudioRing(48000)
events = []
out = AudioOutput(ring, 48000, blocksize=256, on_event=events.append)
out.start()
assert out.wait_playing(5)
t0, f0 = time.monotonic(), out.frames_played
written = 0
while time.monotonic() - t0 < 1.0:
    written += ring.write(np.full(256, 0.1, np.float32))
    time.sleep(0.002)
rate = (out.frames_played - f0) / (time.monotonic() - t0)
heard = out.play_time(ring.total_read)
print(out.state, out.status()["feed"], int(rate), len(events), round(heard - time.monotonic(), 3))
print(events[0])
print(out.status_line())
out.stop()
"""
    env = dict(os.environ, JACK_NO_START_SERVER="1", JACK_DEFAULT_SERVER="nr-none",
               HOME=str(tmp_path))
    env.pop("NEURORAVE_NULL_AUDIO", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    first, event, line = out.stdout.splitlines()
    state, feed, rate, count, ahead = first.split()
    assert (state, feed, count) == ("null", "null", "1")
    # Paced like a device, so the daemon's timing stays real.
    assert 0.9 * 48000 < int(rate) < 1.1 * 48000, first
    assert 0 <= float(ahead) < 0.05, first
    assert event.startswith("no sound card: playing into a null output") and "README" in event
    assert line == "no sound card: silent"
