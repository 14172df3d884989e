"""Screens: a menu `View` drawn into a 128x64 1-bit PIL image for the OLED.

Where it plugs in: when `Menu.take_changed()` is true (and at most 30 times a second)
the scheduler calls `draw(menu.view())` and hands the image to the panel's display
(`hardware` Display.show(image), luma.oled underneath). Nothing here touches hardware.

Layout: a title bar (inverted) of 11 pixels, then up to four 11-pixel lines; the
selected line is inverted; lists scroll to keep the cursor in sight. The performance
page shows one bar per attribute; the bottom line carries status or error messages.
"""
from typing import Any, Tuple

from neurorave.firmware.menu import View
from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 128, 64
LINE = 11  # pixel rows per text line with PIL's built-in bitmap font
ROWS = (HEIGHT - LINE) // LINE  # text lines under the title
CHARS = WIDTH // 6  # the bitmap font is 6 pixels wide


def _font() -> Any:
    # The classic 6x11 bitmap font: crisp on a 1-bit display (Pillow >= 10.1 made
    # load_default() return an antialiased TrueType font).
    loader = getattr(ImageFont, "load_default_imagefont", None)
    return loader() if loader is not None else ImageFont.load_default()


FONT = _font()


def _fit(text: str, chars: int = CHARS) -> str:
    text = text.replace("\t", " ")
    return text if len(text) <= chars else text[:chars - 1] + "~"


def _title(draw: ImageDraw.ImageDraw, title: str) -> None:
    draw.rectangle((0, 0, WIDTH - 1, LINE - 1), fill=1)
    draw.text((1, 0), _fit(title), font=FONT, fill=0)


def _line(draw: ImageDraw.ImageDraw, row: int, text: str, selected: bool) -> None:
    top = LINE * (row + 1)
    if selected:
        draw.rectangle((0, top, WIDTH - 1, top + LINE - 1), fill=1)
    draw.text((1, top), _fit(text), font=FONT, fill=0 if selected else 1)


def _bar(draw: ImageDraw.ImageDraw, box: Tuple[int, int, int, int], fraction: float) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle(box, outline=1, fill=0)
    fraction = min(max(fraction, 0.0), 1.0)
    inner = int(round((x1 - x0 - 3) * fraction))
    if inner > 0:
        draw.rectangle((x0 + 2, y0 + 2, x0 + 1 + inner, y1 - 2), fill=1)


def visible_window(count: int, cursor: int, rows: int = ROWS) -> int:
    """The first line shown so that the cursor stays on screen."""
    if count <= rows or cursor < 0:
        return 0
    return min(max(cursor - rows + 1, 0), count - rows) if cursor >= rows else 0


def draw(view: View) -> Image.Image:
    image = Image.new("1", (WIDTH, HEIGHT), 0)
    d = ImageDraw.Draw(image)
    _title(d, view.title)
    if view.kind == "performance":
        _performance(d, view)
    elif view.kind == "value":
        d.text((4, LINE + 6), _fit(view.lines[0] if view.lines else ""), font=FONT, fill=1)
        _bar(d, (4, LINE + 22, WIDTH - 5, LINE + 32), view.value or 0.0)
    elif view.kind == "wizard":
        for row, text in enumerate(view.lines[:2]):
            _line(d, row, text, False)
    else:
        rows = ROWS - (1 if view.message else 0)
        first = visible_window(len(view.lines), view.cursor, rows)
        for row, text in enumerate(view.lines[first:first + rows]):
            _line(d, row, text, first + row == view.cursor)
    if view.message and view.kind == "performance":
        d.text((1, HEIGHT - LINE), _fit(view.message), font=FONT, fill=1)
    elif view.message:
        _line(d, ROWS - 1, view.message, False)
    return image


BAR_ROW = 8  # pixel rows per attribute bar: five bars and a status line fit under the title


def bar_top(row: int) -> int:
    """The top pixel row of the performance page's bar number `row`."""
    return LINE + 1 + BAR_ROW * row


def _performance(d: ImageDraw.ImageDraw, view: View) -> None:
    """One bar per attribute: a 4-letter name, then the bar (value 0..1 of its range)."""
    room = (HEIGHT - LINE - 1 - (LINE if view.message else 0)) // BAR_ROW
    for row, line in enumerate(view.lines[:room]):
        name, _, value = line.partition("\t")
        top = bar_top(row)
        d.text((1, top - 2), name[:4], font=FONT, fill=1)
        try:
            fraction = float(value)
        except ValueError:
            fraction = 0.0
        _bar(d, (28, top, WIDTH - 2, top + BAR_ROW - 2), fraction)
