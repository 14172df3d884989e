"""The daemon under stage conditions: underflows, inference p99, control-to-sound
latency, RSS, cold start to first sound.

A real JACK server with the dummy driver (48 kHz, 256 frames, synchronous mode: `-S`,
one period from a client's buffer to the DAC; `--asynchronous` for jackd's default,
two) paces the audio like a sound card; the daemon runs on the virtual board, headless,
driven by a patch with all four CVs modulated and both gates clocked (the performance
page's bars move, so the OLED is redrawn at up to 30 fps), for `--seconds` while
another process keeps a core busy. Figures come from the daemon's own stats file.

    .venv/bin/python benchmarks/bench_daemon.py [--bundle DIR] [--seconds 60] [--no-load]
        [--audio-device "jack, ALSA"] [--asynchronous] [--json]

The daemon plays through ALSA's jack plugin by default (the ALSA path the module uses,
fed by blocking writes); `--audio-device "JACK Audio Connection Kit"` takes PortAudio's
own JACK host API (fed by a callback) instead.

Without --bundle, an untrained `small` bundle is made once (speed does not depend on
the weights) under ~/.cache/neurorave/bench/small.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Tuple

PATCH = """
[cv.1]
shape = "sine"
rate = 0.31
range = [-4.0, 4.0]
[cv.2]
shape = "triangle"
rate = 0.7
range = [-5.0, 5.0]
[cv.3]
shape = "saw"
rate = 1.3
range = [-3.0, 3.0]
[cv.4]
shape = "sine"
rate = 0.17
range = [0.0, 5.0]
[gate.1]
clock = 2.0
duty = 0.25
[gate.2]
clock = 0.5
duty = 0.5
"""
JACK_DEVICE = "JACK Audio Connection Kit"  # PortAudio's own JACK host API
ALSA_JACK_DEVICE = "jack, ALSA"  # ALSA's jack plugin: the ALSA path the module plays through


def make_small_bundle(folder: str) -> str:
    if os.path.isfile(os.path.join(folder, "model.json")):
        return folder
    import numpy as np
    from neurorave.models.datastore import write_dataset
    from neurorave.models.export.command import export_run
    from neurorave.models.training.cli import train

    work = tempfile.mkdtemp(prefix="nr-bench-")
    rng = np.random.default_rng(0)
    t = np.arange(1 << 17) / 16000
    audio = np.array([0.3 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t) for _ in range(12)],
                     dtype=np.float32)
    data = write_dataset(os.path.join(work, "data"), audio, 16000,
                         [f"s{i}" for i in range(12)])
    train("small", str(data), os.path.join(work, "run"), steps=2, progress=False)
    return export_run(os.path.join(work, "run"), folder)


def start_jack(name: str, sync: bool, realtime: bool) -> Tuple[subprocess.Popen, bool]:
    """The server, and whether its process thread got real-time scheduling (as on a
    stage machine; a server without it is late whenever the busy core is)."""
    env = dict(os.environ, JACK_NO_START_SERVER="1", JACK_DEFAULT_SERVER=name)
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - open while the server runs
    server = subprocess.Popen(["jackd", "-R" if realtime else "--no-realtime",
                               *(["-S"] if sync else []), "-n", name,
                               "-d", "dummy", "-r", "48000", "-p", "256"],
                              stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        probe = subprocess.run(["jack_wait", "-c"], env=env, capture_output=True, text=True)
        if "running" in probe.stdout and "not" not in probe.stdout:
            log.seek(0)
            refused = "cannot use real-time" in log.read().lower()
            return server, realtime and not refused
        time.sleep(0.1)
    server.kill()
    raise SystemExit("bench_daemon: jackd did not come up (make test installs jackd2)")


def playback_latency(name: str) -> int:
    """Frames the server says a client's buffer takes to reach its playback port."""
    env = dict(os.environ, JACK_NO_START_SERVER="1", JACK_DEFAULT_SERVER=name)
    out = subprocess.run(["jack_lsp", "-l", "system:playback_1"], env=env,
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "playback latency" in line:
            return int(line.split("[")[1].split()[0])
    return -1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default=None)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--no-load", action="store_true", help="no competing busy process")
    parser.add_argument("--audio-device", default=ALSA_JACK_DEVICE,
                        help=f"PortAudio device on the JACK server (or {JACK_DEVICE!r})")
    parser.add_argument("--asynchronous", action="store_true",
                        help="run jackd in its default asynchronous mode (one more period "
                             "from a client's buffer to the DAC) instead of -S")
    parser.add_argument("--no-realtime", action="store_true",
                        help="run jackd without real-time scheduling")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cache = os.path.join(os.path.expanduser("~"), ".cache", "neurorave", "bench", "small")
    bundle = os.path.abspath(args.bundle or make_small_bundle(cache))
    work = tempfile.mkdtemp(prefix="nr-bench-daemon-")
    models = os.path.join(work, "models")
    os.makedirs(models)
    os.symlink(bundle, os.path.join(models, os.path.basename(bundle.rstrip("/"))))
    patch = os.path.join(work, "patch.toml")
    with open(patch, "w") as handle:
        handle.write(PATCH)
    stats_path = os.path.join(work, "stats.json")
    name = "nr-bench-" + uuid.uuid4().hex[:8]
    server, realtime = start_jack(name, not args.asynchronous, not args.no_realtime)
    server_latency = playback_latency(name)
    load = None if args.no_load else subprocess.Popen(
        [sys.executable, "-c", "while True: pass"])
    env = dict(os.environ, JACK_NO_START_SERVER="1", JACK_DEFAULT_SERVER=name,
               NEURORAVE_STATE_DIR=os.path.join(work, "state"))
    try:
        spawned = time.time()
        daemon = subprocess.run(
            [sys.executable, "-m", "neurorave.firmware.cli", "run", "--headless",
             "--patch", patch, "--models", models, "--audio-device", args.audio_device,
             "--seconds", str(args.seconds), "--stats", stats_path],
            env=env, capture_output=True, text=True, timeout=args.seconds + 120)
    finally:
        if load is not None:
            load.kill()
        server.terminate()
        server.wait(20)
    if daemon.returncode != 0:
        print(daemon.stderr[-2000:], file=sys.stderr)
        return 1
    with open(stats_path) as handle:
        stats = json.load(handle)
    figures = {
        "seconds": args.seconds, "competing_load": not args.no_load, "device": args.audio_device,
        "jack_mode": "asynchronous" if args.asynchronous else "synchronous (-S)",
        "jack_playback_latency_frames": server_latency, "jack_realtime": realtime,
        "model": stats.get("model"), "engine": stats["engine"],
        "underflows": stats["underflows"],
        "ring_shortfalls": stats["audio"].get("ring_shortfalls"),
        "device_underflows": stats["audio"].get("device_underflows"),
        "ring_threshold_samples": stats.get("ring_threshold"),
        "inference_ms_p50": stats["inference_ms"]["p50"],
        "inference_ms_p99": stats["inference_ms"]["p99"],
        "inference_ms_max": stats["inference_ms"]["max"],
        "late_frames": stats.get("late_frames"), "frames": stats.get("frames"),
        "latency_ms": stats["latency_ms"],
        "gates": stats.get("gates"), "gates_spliced": stats.get("gates_spliced"),
        "gates_from_twins": stats.get("gates_from_twins"),
        "latency_goal_ms": {"p50": 10.0, "p99": 20.0},  # issue 22, at 256-frame periods
        "rss_mb": stats["rss_mb"],
        "cold_start_to_first_sound_s": (stats["first_sound_unix"] - spawned
                                        if "first_sound_unix" in stats else None),
        "oled_frames_per_s": stats.get("oled_frames", 0) / args.seconds,
        # Each latent frame takes the newest CV reading: the CVs reach the sound at the
        # slower of the two rates.
        "cv_updates_per_s": min(stats.get("frames", 0), stats.get("cv_reads", 0))
        / args.seconds,
        "scheduler_turn_ms": stats.get("scheduler_turn_ms"),
        "errors": stats["errors"],
    }
    if args.json:
        print(json.dumps(figures, indent=1))
        return 0
    lat = figures["latency_ms"]
    print(f"daemon, {args.seconds:.0f} s, model {figures['model']} on {figures['engine']}, "
          f"{'with' if figures['competing_load'] else 'without'} a competing busy core")
    print(f"  JACK                 {figures['jack_mode']}, "
          f"{'real-time' if realtime else 'not real-time'}, 48 kHz, 256 frames; "
          f"{server_latency} frames from a client's buffer to the DAC")
    print(f"  underflows           {figures['underflows']} (ring ran short "
          f"{figures['ring_shortfalls']}, device flag {figures['device_underflows']}; voice "
          f"renders below {figures['ring_threshold_samples']} samples)")
    print(f"  inference per frame  p50 {figures['inference_ms_p50']} ms, p99 "
          f"{figures['inference_ms_p99']} ms, max {figures['inference_ms_max']} ms "
          f"({figures['late_frames']} late of {figures['frames']})")
    print(f"  gate -> DAC latency  p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} "
          f"ms over {lat['count']} gates (goal p50 <= 10, p99 <= 20 ms); "
          f"{figures['gates_spliced']} of {figures['gates']} spliced into the queue, "
          f"{figures['gates_from_twins']} from twins rendered ahead")
    print(f"  RSS                  {figures['rss_mb']} MB")
    first = figures["cold_start_to_first_sound_s"]
    print(f"  cold start -> sound  {first:.2f} s" if first is not None
          else "  cold start -> sound  not measured")
    print(f"  CV to sound          {figures['cv_updates_per_s']:.0f} updates/s")
    print(f"  OLED                 {figures['oled_frames_per_s']:.1f} frames/s")
    turn = figures["scheduler_turn_ms"] or {}
    print(f"  scheduler turn       p50 {turn.get('p50')} ms, p99 {turn.get('p99')} ms, "
          f"max {turn.get('max')} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
