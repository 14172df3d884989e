"""The virtual front panel drawn with PIL: OLED, four CV knobs, two gates, RGB encoder.

One drawing for both front ends: the pygame window blits it, the headless variant
saves it. `PanelLayout` holds where each control is, for the window's mouse.
"""
from __future__ import annotations

import math
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (28, 28, 32)
PANEL_TEXT = (220, 220, 220)
OLED_ON = (140, 200, 255)
KNOB = (90, 90, 100)
GATE_ON = (255, 60, 40)
GATE_OFF = (60, 30, 30)
SELECTED = (255, 210, 90)
ASSIGNED = (140, 200, 255)  # what a knob drives: the OLED's colour
NEAREST = 0   # PIL's nearest-neighbour resampling (Image.Resampling is Pillow 9.1+)

KEY_HELP = [
    "1-4: pick a CV   up/down: +-0.1 V (shift: 1 V)   drag or wheel a knob",
    "Z / X (or click): hold gate 1 / 2",
    "left/right or wheel: turn   space/enter or click: push   esc: quit",
]


class PanelLayout(NamedTuple):
    size: Tuple[int, int]
    oled_box: Tuple[int, int, int, int]        # left, top, right, bottom (OLED x2)
    knobs: List[Tuple[int, int]]               # centres
    knob_radius: int
    gates: List[Tuple[int, int]]
    gate_radius: int
    encoder: Tuple[int, int]
    encoder_radius: int


def layout(cv_count: int, gate_count: int, oled_size: Tuple[int, int]) -> PanelLayout:
    width, height = 460, 520
    ow, oh = oled_size[0] * 2, oled_size[1] * 2
    left = (width - ow) // 2
    oled_box = (left, 40, left + ow, 40 + oh)
    top = oled_box[3] + 60
    knobs = [(60 + i * ((width - 120) // max(1, cv_count - 1)), top) for i in range(cv_count)]
    gates = [(70 + i * 90, top + 110) for i in range(gate_count)]
    return PanelLayout((width, height), oled_box, knobs, 26, gates, 16,
                       (width - 90, top + 110), 34)


def _font() -> Any:
    return ImageFont.load_default()


def _centred(draw: Any, x: int, y: int, text: str, fill: Any, font: Any) -> None:
    width = draw.textlength(text, font=font) if hasattr(draw, "textlength") else 6 * len(text)
    draw.text((x - width / 2, y), text, fill=fill, font=font)


def render(panel: Any, selected_cv: Optional[int] = 0, now: Optional[float] = None,
           labels: Sequence[Tuple[str, str]] = ()) -> Any:
    """An RGB image of the panel's current state (virtual panel only). `labels`: per
    CV, what it drives and that value's text (the daemon's menu says)."""
    frame = panel.display.frame()
    size = panel.display.size
    lay = layout(len(panel.cvs.names), len(panel.gates.names), size)
    image = Image.new("RGB", lay.size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = _font()
    draw.text((12, 10), "NeuroRave  (virtual panel)", fill=PANEL_TEXT, font=font)

    # OLED: the last frame, 2x, white pixels in the display's colour.
    box = lay.oled_box
    draw.rectangle((box[0] - 4, box[1] - 4, box[2] + 3, box[3] + 3), fill=(0, 0, 0))
    if frame is not None:
        scaled = frame.convert("L").resize((box[2] - box[0], box[3] - box[1]), NEAREST)
        lit = Image.new("RGB", scaled.size, OLED_ON)
        image.paste(lit, (box[0], box[1]), scaled)

    volts = panel.cvs.read_volts()
    for i, (centre, name) in enumerate(zip(lay.knobs, panel.cvs.names)):
        cv = panel.cvs.cvs[i]
        x, y = centre
        r = lay.knob_radius
        outline = SELECTED if i == selected_cv else (150, 150, 160)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=KNOB, outline=outline, width=2)
        span = (volts[i] - cv.min_volts) / (cv.max_volts - cv.min_volts)
        angle = math.radians(-135 + 270 * span)
        draw.line((x, y, x + 0.8 * r * math.sin(angle), y - 0.8 * r * math.cos(angle)),
                  fill=(255, 255, 255), width=3)
        drives, value = labels[i] if i < len(labels) else ("", "")
        _centred(draw, x, y - r - 16, name, PANEL_TEXT, font)
        _centred(draw, x, y + r + 6, f"{volts[i]:+.2f} V", PANEL_TEXT, font)
        if drives:
            _centred(draw, x, y + r + 20, drives, ASSIGNED, font)
        if value:
            _centred(draw, x, y + r + 32, value, ASSIGNED, font)

    for (x, y), name, level in zip(lay.gates, panel.gates.names, panel.gates.levels()):
        r = lay.gate_radius
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(10, 10, 10), outline=(160, 160, 170),
                     width=3)
        draw.ellipse((x - 5, y - r - 16, x + 5, y - r - 6), fill=GATE_ON if level else GATE_OFF)
        draw.text((x - 18, y + r + 6), name, fill=PANEL_TEXT, font=font)

    x, y = lay.encoder
    r = lay.encoder_radius
    led = tuple(int(255 * c) for c in panel.led.shown(now))
    draw.ellipse((x - r - 6, y - r - 6, x + r + 6, y + r + 6), fill=led)
    pressed = panel.encoder.is_pressed()
    draw.ellipse((x - r, y - r, x + r, y + r), fill=(60, 60, 66) if pressed else KNOB)
    angle = math.radians(panel.encoder.position * 18)
    draw.line((x, y, x + 0.8 * r * math.sin(angle), y - 0.8 * r * math.cos(angle)),
              fill=(255, 255, 255), width=3)
    draw.text((x - 24, y + r + 10), "ENCODER", fill=PANEL_TEXT, font=font)

    for i, line in enumerate(KEY_HELP):
        draw.text((12, lay.size[1] - 54 + i * 16), line, fill=(150, 150, 150), font=font)
    return image
