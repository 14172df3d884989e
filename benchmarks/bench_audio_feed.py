"""The audio feed alone under GIL pressure: how many underflows `AudioOutput` sees on
the same JACK server, block size and competing load as `bench_daemon.py`, fed by a
callback (PortAudio's JACK host API) or by blocking writes with slack (ALSA's jack
plugin, the module's ALSA path).

A producer thread keeps the ring topped up with a sine, as the voice thread does;
`--threads N` adds N Python threads that each wake every 2 ms and run bytecode for
`--hog-ms` (0: wake and sleep again), to see what interpreter traffic does to each
feed. The GIL switch interval is the daemon's. Nothing else runs, so every underflow is the feed's.

    .venv/bin/python benchmarks/bench_audio_feed.py [--seconds 60] [--no-load]
        [--threads 3] [--hog-ms 1] [--device "jack, ALSA"] [--json]
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_daemon import ALSA_JACK_DEVICE, JACK_DEVICE, start_jack  # noqa: E402
from neurorave.firmware.audio_out import SLACK_BLOCKS  # noqa: E402

RATE, BLOCK = 48000, 256


def measure(seconds: float, device: str, threads: int, hog_ms: float, slack: int) -> dict:
    import numpy as np
    from neurorave.firmware.audio_out import AudioOutput
    from neurorave.firmware.daemon import GIL_SWITCH_S
    from neurorave.firmware.ring import AudioRing

    sys.setswitchinterval(GIL_SWITCH_S)  # as the daemon runs
    ring = AudioRing(8 * 4096)
    block = (0.3 * np.sin(2 * np.pi * np.arange(BLOCK) / 64)).astype(np.float32)
    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set():
            if ring.free() >= BLOCK:
                ring.write(block)
            else:
                time.sleep(0.002)

    def hog() -> None:
        while not stop.wait(0.002):
            end = time.perf_counter() + hog_ms / 1000
            while time.perf_counter() < end:
                pass

    for target in [produce] + [hog] * threads:
        threading.Thread(target=target, daemon=True).start()
    out = AudioOutput(ring, RATE, device=device, blocksize=BLOCK, slack_blocks=slack)
    out.start()
    try:
        if not out.wait_playing(15):
            raise SystemExit(f"no audio on {device}: {out.last_error}")
        time.sleep(0.5)  # start-up is not what is measured
        before = out.status()
        time.sleep(seconds)
        after = out.status()
    finally:
        stop.set()
        out.stop()
    return {"feed": after["feed"], "blocks": after["callbacks"] - before["callbacks"],
            **{key: after[key] - before[key]
               for key in ("underflows", "device_underflows", "ring_shortfalls")}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--no-load", action="store_true", help="no competing busy process")
    parser.add_argument("--threads", type=int, default=3, help="Python threads beside")
    parser.add_argument("--hog-ms", type=float, default=1.0,
                        help="bytecode each thread runs per 2 ms wake")
    parser.add_argument("--device", default=ALSA_JACK_DEVICE,
                        help=f"PortAudio device on the JACK server (or {JACK_DEVICE!r})")
    parser.add_argument("--slack-blocks", type=int, default=SLACK_BLOCKS,
                        help="blocks queued in the device when fed by blocking writes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    name = "nr-feed-" + uuid.uuid4().hex[:8]
    server = start_jack(name)
    load = None if args.no_load else subprocess.Popen(
        [sys.executable, "-c", "while True: pass"])
    # sounddevice reads these when PortAudio starts: the client joins our server only.
    os.environ.update(JACK_NO_START_SERVER="1", JACK_DEFAULT_SERVER=name)
    try:
        counts = measure(args.seconds, args.device, args.threads, args.hog_ms,
                         args.slack_blocks)
    finally:
        if load is not None:
            load.kill()
        server.terminate()
        server.wait(20)
    figures = {"seconds": args.seconds, "competing_load": not args.no_load,
               "device": args.device, "threads": args.threads, "hog_ms": args.hog_ms,
               "slack_blocks": args.slack_blocks if counts["feed"] == "blocking" else None,
               **counts}
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        print(f"{counts['feed']} feed on {args.device}, {args.seconds:.0f} s, "
              f"{'with' if not args.no_load else 'without'} a competing busy core, "
              f"{args.threads} threads running {args.hog_ms} ms of bytecode every 2 ms: "
              f"{counts['underflows']} underflows ({counts['device_underflows']} device "
              f"flags, {counts['ring_shortfalls']} ring shortfalls) in {counts['blocks']} "
              f"blocks")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # PortAudio's JACK host asserts in its exit-time terminate; skip it
