"""The floor under the daemon's underflow count: how often PortAudio flags an output
underflow for a client that does nothing, on the same JACK server, block size and
competing load as `bench_daemon.py`.

The callback only writes zeros (what any Python client must at least do), so every
flag it sees comes from the machine and the non-real-time JACK server, not from
inference or the daemon's threads. `--threads N` adds N idle Python threads that wake
every millisecond, to see what GIL traffic alone does.

    .venv/bin/python benchmarks/bench_jack_baseline.py [--seconds 60] [--no-load]
        [--threads 0] [--json]
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
from bench_daemon import JACK_DEVICE, start_jack  # noqa: E402

RATE, BLOCK = 48000, 256


def measure(seconds: float, threads: int) -> dict:
    import sounddevice as sd

    counts = {"callbacks": 0, "underflows": 0}

    def callback(outdata, frames, time_info, status) -> None:
        outdata.fill(0)
        counts["callbacks"] += 1
        if status.output_underflow:
            counts["underflows"] += 1

    stop = threading.Event()

    def idle() -> None:
        while not stop.wait(0.001):
            pass

    workers = [threading.Thread(target=idle, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    try:
        with sd.OutputStream(samplerate=RATE, blocksize=BLOCK, channels=1, dtype="float32",
                             device=JACK_DEVICE, callback=callback):
            time.sleep(seconds)
    finally:
        stop.set()
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--no-load", action="store_true", help="no competing busy process")
    parser.add_argument("--threads", type=int, default=0, help="idle Python threads beside")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    name = "nr-baseline-" + uuid.uuid4().hex[:8]
    server = start_jack(name)
    load = None if args.no_load else subprocess.Popen(
        [sys.executable, "-c", "while True: pass"])
    # sounddevice reads these when PortAudio starts: the client joins our server only.
    os.environ.update(JACK_NO_START_SERVER="1", JACK_DEFAULT_SERVER=name)
    try:
        counts = measure(args.seconds, args.threads)
    finally:
        if load is not None:
            load.kill()
        server.terminate()
        server.wait(20)
    figures = {"seconds": args.seconds, "competing_load": not args.no_load,
               "idle_threads": args.threads, **counts}
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        print(f"do-nothing client, {args.seconds:.0f} s, "
              f"{'with' if not args.no_load else 'without'} a competing busy core, "
              f"{args.threads} idle threads: {counts['underflows']} underflow flags in "
              f"{counts['callbacks']} callbacks")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # PortAudio's JACK host asserts in its exit-time terminate; skip it
