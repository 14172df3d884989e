"""Bring-up images for the OLED: a test pattern and a live monitor of the inputs.

The test pattern uses only rectangles and straight lines (no text, no curves), so
every Pillow version draws it pixel for pixel the same and a reference image can
check it. The monitor draws what the inputs read: bars for CV volts, boxes for gate
levels, the encoder count. Neither knows what a control means musically.
"""
from __future__ import annotations

from typing import Any, Sequence, Tuple

from PIL import Image, ImageDraw


def test_pattern(size: Tuple[int, int] = (128, 64)) -> Any:
    """Border, corner marks (to see rotation), checkerboard, diagonals, stripes."""
    width, height = size
    image = Image.new("1", size, 0)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width - 1, height - 1), outline=255)
    draw.rectangle((2, 2, 9, 9), fill=255)                       # top-left mark
    draw.rectangle((width - 6, 2, width - 3, 5), fill=255)       # smaller top-right mark
    # Checkerboard of 4-pixel squares in the left third.
    for y in range(12, height - 4, 4):
        for x in range(4, width // 3, 4):
            if (x // 4 + y // 4) % 2:
                draw.rectangle((x, y, x + 3, y + 3), fill=255)
    # Diagonals across the middle third.
    left, right = width // 3 + 2, 2 * width // 3 - 2
    draw.line((left, 3, right, height - 4), fill=255)
    draw.line((left, height - 4, right, 3), fill=255)
    # Vertical stripes of growing width in the right third.
    x = 2 * width // 3 + 2
    w = 1
    while x + w < width - 3:
        draw.rectangle((x, 12, x + w - 1, height - 4), fill=255)
        x += 2 * w + 1
        w += 1
    return image


def monitor(size: Tuple[int, int], volts: Sequence[float], ranges: Sequence[Tuple[float, float]],
            gates: Sequence[bool], encoder_count: int, pressed: bool) -> Any:
    """One screen of live input readings (hwtest and the headless demo)."""
    width, height = size
    image = Image.new("1", size, 0)
    draw = ImageDraw.Draw(image)
    bar_left, bar_right = 44, width - 2
    for i, (v, (lo, hi)) in enumerate(zip(volts, ranges)):
        y = 2 + i * 12
        draw.text((0, y - 1), f"{v:+5.2f}", fill=255)
        draw.rectangle((bar_left, y, bar_right, y + 7), outline=255)
        span = min(max((v - lo) / (hi - lo), 0.0), 1.0)
        draw.rectangle((bar_left, y, bar_left + int(span * (bar_right - bar_left)), y + 7),
                       fill=255)
    y = height - 14
    for i, level in enumerate(gates):
        x = i * 20
        draw.rectangle((x, y, x + 14, y + 12), outline=255, fill=255 if level else 0)
    draw.text((46, y), f"enc {encoder_count:+d}{' *' if pressed else ''}", fill=255)
    return image
