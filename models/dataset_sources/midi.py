"""A minimal Standard MIDI File writer (format 0, one track) for rendering with FluidSynth.

Events are given in seconds; the file uses 500000 us per quarter note and 1000 ticks per
quarter, so one tick is 0.5 ms. Only what the builders need: note on/off, program and
control changes.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import List, Tuple

TICKS_PER_QUARTER = 1000
MICROSECONDS_PER_QUARTER = 500_000
TICKS_PER_SECOND = TICKS_PER_QUARTER * 1_000_000 / MICROSECONDS_PER_QUARTER


def _vlq(value: int) -> bytes:
    """MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


class MidiTrack:
    def __init__(self) -> None:
        self.events: List[Tuple[int, int, bytes]] = []  # (tick, order, message)

    def _add(self, seconds: float, message: bytes) -> None:
        tick = int(round(seconds * TICKS_PER_SECOND))
        self.events.append((tick, len(self.events), message))

    def program(self, seconds: float, channel: int, program: int) -> None:
        self._add(seconds, bytes([0xC0 | channel, program & 0x7F]))

    def control(self, seconds: float, channel: int, number: int, value: int) -> None:
        self._add(seconds, bytes([0xB0 | channel, number & 0x7F, value & 0x7F]))

    def note(self, start: float, duration: float, channel: int, pitch: int, velocity: int) -> None:
        self._add(start, bytes([0x90 | channel, pitch & 0x7F, max(1, velocity) & 0x7F]))
        self._add(start + duration, bytes([0x80 | channel, pitch & 0x7F, 0]))

    def silence(self, seconds: float, channel: int) -> None:
        """All sound off: cuts release tails so that they do not bleed into the next slot."""
        self.control(seconds, channel, 120, 0)

    def to_bytes(self, end: float) -> bytes:
        body = bytearray(b"\x00\xff\x51\x03" + MICROSECONDS_PER_QUARTER.to_bytes(3, "big"))
        now = 0
        for tick, _, message in sorted(self.events):
            body += _vlq(tick - now) + message
            now = tick
        end_tick = max(now, int(round(end * TICKS_PER_SECOND)))
        body += _vlq(end_tick - now) + b"\xff\x2f\x00"
        header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_QUARTER)
        return header + b"MTrk" + struct.pack(">I", len(body)) + bytes(body)

    def write(self, path: Path, end: float) -> None:
        Path(path).write_bytes(self.to_bytes(end))
