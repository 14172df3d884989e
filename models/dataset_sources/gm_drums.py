"""`gm-drums`: hand-drum and percussion hits and short darbuka-like patterns (GM kits).

Per kit (FluidR3's drum presets, MIDI channel 10):
- one chunk per hand-drum or percussion sound that this kit plays differently from the
  others: the sound struck four times, one second apart, at rising velocities ("hits");
- PATTERNS_PER_KIT chunks of short patterns on the darbuka's three strokes (doum = low
  open, tek = high rim, ka = the other hand's rim), played by GM hand drums: the Middle
  Eastern rhythms maqsum, saidi, baladi, ayoub and malfuf, each with a seeded tempo,
  accents and ornaments (filled eighth-note rests).
Every chunk is its own source. `--limit N` keeps N chunks drawn evenly from all kits.
"""
from __future__ import annotations

import random
from typing import Dict, List, Sequence, Tuple

from neurorave.models.dataset_sources import Piece, Unit, UnitResult, chunk_length, fit, fluid
from neurorave.models.dataset_sources.midi import MidiTrack

DRUM_CHANNEL = 9
KITS: Tuple[Tuple[int, str], ...] = (
    (0, "Standard"), (8, "Room"), (16, "Power"), (24, "Electronic"), (25, "TR-808"),
    (32, "Jazz"), (40, "Brush"), (48, "Orchestra"),
)
# GM percussion keys: hand drums and small percussion.
HITS: Tuple[Tuple[int, str], ...] = (
    (60, "Hi Bongo"), (61, "Low Bongo"), (62, "Mute Hi Conga"), (63, "Open Hi Conga"),
    (64, "Low Conga"), (65, "High Timbale"), (66, "Low Timbale"), (67, "High Agogo"),
    (68, "Low Agogo"), (69, "Cabasa"), (70, "Maracas"), (75, "Claves"),
    (76, "Hi Wood Block"), (77, "Low Wood Block"), (54, "Tambourine"), (56, "Cowbell"),
    (37, "Side Stick"), (39, "Hand Clap"), (36, "Bass Drum 1"), (38, "Acoustic Snare"),
)
HIT_VELOCITIES = (40, 70, 100, 127)
# Most hand-drum samples are shared by all of FluidR3's kits: a hit is rendered only in
# the kits where it sounds different (found by rendering every key in every kit and
# comparing the audio), so that no identical hit lands in two splits.
DISTINCT_HIT_KITS: Dict[int, Tuple[int, ...]] = {
    36: (0, 8, 16, 24, 25, 32, 48), 38: (0, 16, 24, 25, 32, 40, 48), 39: (0, 25, 40),
    **{n: (0, 25) for n in (37, 56, 62, 63, 64, 65, 66, 67, 75, 76)},
    **{n: (0,) for n in (54, 60, 61, 68, 69, 70, 77)},
}
# Stroke choices: (doum, tek, ka) triples of GM keys that play those roles.
STROKE_SETS: Tuple[Tuple[int, int, int], ...] = (
    (64, 63, 62), (61, 60, 37), (36, 37, 39), (66, 65, 75), (64, 60, 62), (41, 63, 37),
)
# Eighth-note grids: D doum, T tek, K ka, . rest.
RHYTHMS: Dict[str, str] = {
    "maqsum": "DT.TD.T.",
    "saidi": "DT.DD.T.",
    "baladi": "DD.TD.T.",
    "ayoub": "D.KTD.T.",
    "malfuf": "D..T..T.",
}
PATTERNS_PER_KIT = 40
# FluidSynth gain: the loudest chunk of the default set peaks at about 0.65.
GAIN = 0.6

Item = Tuple[int, str, int]  # kit program, kind ("hit"/"pattern"), key note or pattern index


def all_items() -> List[Item]:
    items: List[Item] = []
    for kit, _ in KITS:
        items += [(kit, "hit", note) for note, _ in HITS if kit in DISTINCT_HIT_KITS[note]]
        items += [(kit, "pattern", i) for i in range(PATTERNS_PER_KIT)]
    return items


def item_id(item: Item) -> str:
    kit, kind, n = item
    return f"gm-drums/kit{kit:03d}-{kind}{n:03d}"


def units(sr: int, limit=None) -> List[Unit]:
    fluid.check_fluidsynth()
    items = all_items()
    if limit is not None:
        random.Random(0).shuffle(items)
        items = sorted(items[:limit])
    by_kit: Dict[int, List[Item]] = {}
    for it in items:
        by_kit.setdefault(it[0], []).append(it)
    return [Unit(key=f"kit-{kit}", sources=tuple(item_id(i) for i in group),
                 work=render_kit, args=(tuple(group), sr), size=len(group))
            for kit, group in sorted(by_kit.items())]


def _pattern(track: MidiTrack, start: float, slot: float, kit: int, index: int) -> Dict:
    rng = random.Random(kit * 1000 + index)
    name = sorted(RHYTHMS)[index % len(RHYTHMS)]
    grid = RHYTHMS[name]
    strokes = STROKE_SETS[rng.randrange(len(STROKE_SETS))]
    bpm = rng.uniform(80, 150)
    eighth = 30.0 / bpm
    keys = {"D": strokes[0], "T": strokes[1], "K": strokes[2]}
    step, t = 0, 0.0
    while t < slot - 0.25:
        symbol = grid[step % len(grid)]
        if symbol == "." and rng.random() < 0.35:  # ornament: a ka or a tek in the rest
            symbol = rng.choice("KT")
        if symbol != ".":
            accent = 25 if step % len(grid) == 0 else 0
            velocity = min(127, int(rng.uniform(60, 100)) + accent)
            track.note(start + t, 0.1, DRUM_CHANNEL, keys[symbol], velocity)
        step += 1
        t = step * eighth
    return {"rhythm": name, "bpm": round(bpm, 2), "strokes": list(strokes)}


def render_kit(items: Sequence[Item], sr: int) -> UnitResult:
    chunk = chunk_length(sr)
    slot = chunk / sr
    kit = items[0][0]
    kit_name = dict(KITS)[kit]
    track = MidiTrack()
    track.program(0.0, DRUM_CHANNEL, kit)
    metas = []
    for i, (_, kind, n) in enumerate(items):
        start = i * slot + 0.01
        if kind == "hit":
            for k, velocity in enumerate(HIT_VELOCITIES):
                track.note(start + k * slot / 4, 0.1, DRUM_CHANNEL, n, velocity)
            meta = {"sound": dict(HITS)[n], "note": n, "velocities": list(HIT_VELOCITIES)}
        else:
            meta = _pattern(track, start, slot, kit, n)
        track.silence((i + 1) * slot - 0.002, DRUM_CHANNEL)
        metas.append(dict(meta, kit=kit, kit_name=kit_name, kind=kind))
    audio = fluid.render(track, len(items) * slot, sr, gain=GAIN)
    return UnitResult([Piece(item_id(it), fit(audio[i * chunk:(i + 1) * chunk], chunk), metas[i])
                       for i, it in enumerate(items)])
