"""Does every gate get its own onset, and no onset come unasked? (issue 22, item 2)

    .venv/bin/python benchmarks/gate_onsets.py --bundle models/pretrained/gm-drums \
        [--clocks 2 8] [--seconds 20] [--within-ms 20] [--gate-mode hit] [--json]

The bundle renders (`neurorave render`, the module's voice offline: gate 1 lands on its
own sample) a patch of nothing but a gate-1 clock, prior on, default settings (or the
gate mode `--gate-mode` names: a phrase per gate, or one hit); librosa's
onset detector (backtracked to where each onset starts) reads the output. Per clock:
the share of gates followed by an onset within `--within-ms` (or read up to EARLY_S
before it: the detector's own spread; a gate under the first fade-in is not judged),
and the share of onsets that no gate asked for (none within `--within-ms` before them
or EARLY_S after). Offline, so this is the model's answer alone; in the daemon
the gate-to-DAC latency (`bench_daemon.py`) comes on top.

Chance: the same onsets judged against the clock moved by half a period, as far from
every gate as it gets. A voice that plays its own rhythm scores about the same there;
one that answers its gates scores far less.
"""
import argparse
import json
import sys
from typing import Dict

import numpy as np

HOP = 64          # onset detector hop: 1.3 ms at 48 kHz, 4 ms at 16 kHz
SKIP_S = 0.1      # the render's fade-in
# How far before its gate a backtracked onset may be read and still be the gate's. The
# voice is causal: nothing it plays can precede the gate. librosa's onset strength reads
# centred 2048-sample windows (43 ms at 48 kHz) and backtracking goes to the strength's
# last minimum, which a note releasing before the gate moves earlier: gm-notes-48k
# (step 8 000, note mode, 8 Hz) put 19 of 79 onsets 1.4 to 10 ms before their gates,
# while the output's level (2.7 ms windows, their median) fell up to the gate and rose
# 16 dB in the 5 ms after it. One hop, as before, left those gates unanswered.
EARLY_S = 0.010


def onsets_against_gates(audio: np.ndarray, sr: int, gates: np.ndarray,
                         within_s: float) -> Dict:
    import librosa

    onsets = librosa.onset.onset_detect(y=np.asarray(audio, np.float32), sr=sr,
                                        hop_length=HOP, units="time", backtrack=True)
    judged = gates[gates >= SKIP_S]
    early = max(EARLY_S, HOP / sr)
    answered = [g for g in judged if np.any((onsets >= g - early) & (onsets <= g + within_s))]
    unasked = [o for o in onsets
               if not np.any((gates <= o + early) & (gates >= o - within_s))]
    return {"gates": len(judged), "answered": len(answered),
            "answered_share": round(len(answered) / len(judged), 3) if len(judged) else None,
            "onsets": len(onsets), "unasked": len(unasked),
            "unasked_share": round(len(unasked) / len(onsets), 3) if len(onsets) else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--clocks", type=float, nargs="+", default=[2.0, 8.0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--within-ms", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gate-mode", choices=("phrase", "hit", "note"), default=None,
                        help="the patch's gate mode (default: the bundle's own)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from neurorave.common.errors import UserError
    from neurorave.firmware.render import render
    from neurorave.hardware.patch import parse_patch

    report = {"bundle": args.bundle, "seconds": args.seconds, "within_ms": args.within_ms,
              "gate_mode": args.gate_mode, "clocks": {}}
    for hz in args.clocks:
        table: Dict[str, Dict] = {"gate": {"1": {"clock": hz, "duty": 0.25}}}
        if args.gate_mode:
            table["settings"] = {"gate_mode": args.gate_mode}
        patch = parse_patch(table, f"clock {hz} Hz")
        try:
            audio, sr = render(args.bundle, patch, args.seconds, args.seed)
        except (UserError, OSError) as exc:
            sys.exit(f"gate_onsets: {exc}")
        gates = np.arange(0.0, args.seconds, 1.0 / hz)
        figures = onsets_against_gates(audio, sr, gates, args.within_ms / 1e3)
        between = onsets_against_gates(audio, sr, gates + 0.5 / hz, args.within_ms / 1e3)
        figures["chance_answered_share"] = between["answered_share"]
        report["clocks"][f"{hz:g} Hz"] = figures
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    for clock, r in report["clocks"].items():
        print(f"{args.bundle}, gate clock {clock}: {r['answered']} of {r['gates']} gates "
              f"answered within {args.within_ms:.0f} ms, {r['unasked']} of {r['onsets']} "
              f"onsets unasked (chance: {r['chance_answered_share']:.0%} of a clock half a "
              f"period off answered)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
