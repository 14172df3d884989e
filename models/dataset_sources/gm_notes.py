"""`gm-notes`: NSynth-like single notes from the FluidR3 GM soundfont.

Each note sits in one chunk (about 4.1 s): held for 3 s from the start, then released,
as NSynth's 4 s notes are; the notes of one program render in one FluidSynth pass,
dry, with an all-sound-off at the end of each slot so no tail bleeds into the next.
Every pitch in a program's playable range is rendered at one velocity, and every other
pitch at a second one (velocities cycle through 50 / 85 / 120), which gives 2234 notes,
about 2.5 hours of audio. The split goes by program and pitch (`note_id`). `--limit N`
keeps N notes drawn evenly (a fixed shuffle) from all programs.
"""
from __future__ import annotations

import random
from typing import Dict, List, Sequence, Tuple

from neurorave.models.dataset_sources import Piece, Unit, UnitResult, chunk_length, fit, fluid
from neurorave.models.dataset_sources.midi import MidiTrack

HOLD_SECONDS = 3.0
VELOCITIES = (50, 85, 120)
# (GM program, name, family, lowest, highest MIDI pitch): melodic programs of every family.
PROGRAMS: Tuple[Tuple[int, str, str, int, int], ...] = (
    (0, "Acoustic Grand Piano", "keys", 36, 96),
    (4, "Electric Piano 1", "keys", 36, 84),
    (6, "Harpsichord", "keys", 41, 89),
    (11, "Vibraphone", "mallets", 53, 89),
    (12, "Marimba", "mallets", 48, 96),
    (16, "Drawbar Organ", "organ", 36, 84),
    (21, "Accordion", "reeds", 53, 89),
    (24, "Acoustic Guitar (nylon)", "guitars", 40, 76),
    (25, "Acoustic Guitar (steel)", "guitars", 40, 76),
    (27, "Electric Guitar (clean)", "guitars", 40, 81),
    (29, "Overdriven Guitar", "guitars", 40, 76),
    (33, "Electric Bass (finger)", "bass", 28, 60),
    (38, "Synth Bass 1", "bass", 28, 60),
    (40, "Violin", "strings", 55, 96),
    (41, "Viola", "strings", 48, 84),
    (42, "Cello", "strings", 36, 72),
    (45, "Pizzicato Strings", "strings", 36, 84),
    (46, "Orchestral Harp", "strings", 36, 96),
    (48, "String Ensemble 1", "strings", 36, 84),
    (56, "Trumpet", "brass", 54, 84),
    (57, "Trombone", "brass", 40, 72),
    (60, "French Horn", "brass", 41, 77),
    (61, "Brass Section", "brass", 41, 81),
    (65, "Alto Sax", "reeds", 49, 81),
    (68, "Oboe", "reeds", 58, 91),
    (70, "Bassoon", "reeds", 34, 72),
    (71, "Clarinet", "reeds", 50, 91),
    (73, "Flute", "pipes", 60, 96),
    (75, "Pan Flute", "pipes", 60, 96),
    (80, "Lead 1 (square)", "synth leads", 36, 96),
    (81, "Lead 2 (sawtooth)", "synth leads", 36, 96),
    (87, "Lead 8 (bass + lead)", "synth leads", 36, 84),
    (89, "Pad 2 (warm)", "synth pads", 36, 84),
    (104, "Sitar", "ethnic", 48, 84),
    (105, "Banjo", "ethnic", 48, 84),
)
_BY_PROGRAM = {p[0]: p for p in PROGRAMS}

Note = Tuple[int, int, int]  # program, pitch, velocity


def all_notes() -> List[Note]:
    notes = []
    for program, _, _, low, high in PROGRAMS:
        for pitch in range(low, high + 1):
            notes.append((program, pitch, VELOCITIES[pitch % 3]))
            if pitch % 2 == 0:
                notes.append((program, pitch, VELOCITIES[(pitch + 1) % 3]))
    return notes


def note_id(note: Note) -> str:
    """The source of a note: program and pitch. Both velocities of a pitch are the same
    sample played louder or softer, so they share a split."""
    program, pitch, _ = note
    return f"gm-notes/p{program:03d}-n{pitch:03d}"


def units(sr: int, limit=None) -> List[Unit]:
    fluid.check_fluidsynth()
    notes = all_notes()
    if limit is not None:
        random.Random(0).shuffle(notes)
        notes = sorted(notes[:limit])
    by_program: Dict[int, List[Note]] = {}
    for n in notes:
        by_program.setdefault(n[0], []).append(n)
    return [Unit(key=f"program-{program}", sources=tuple(note_id(n) for n in group),
                 work=render_program, args=(tuple(group), sr), size=len(group))
            for program, group in sorted(by_program.items())]


def render_program(notes: Sequence[Note], sr: int) -> UnitResult:
    chunk = chunk_length(sr)
    slot = chunk / sr
    track = MidiTrack()
    track.program(0.0, 0, notes[0][0])
    for i, (_, pitch, velocity) in enumerate(notes):
        track.note(i * slot, HOLD_SECONDS, 0, pitch, velocity)
        track.silence((i + 1) * slot - 0.002, 0)
    audio = fluid.render(track, len(notes) * slot, sr)
    pieces = []
    for i, note in enumerate(notes):
        program, pitch, velocity = note
        _, name, family, _, _ = _BY_PROGRAM[program]
        pieces.append(Piece(note_id(note), fit(audio[i * chunk:(i + 1) * chunk], chunk), {
            "program": program, "instrument": name, "family": family, "pitch": pitch,
            "velocity": velocity, "f0_hz": round(440.0 * 2 ** ((pitch - 69) / 12), 3)}))
    return UnitResult(pieces)
