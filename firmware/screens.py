"""Screens: a menu `View` drawn into a 128x64 1-bit PIL image for the OLED.

Where it plugs in: when `Menu.take_changed()` is true (and at most 30 times a second)
the scheduler calls `draw(menu.view())` and hands the image to the panel's display
(`hardware` Display.show(image), luma.oled underneath). Nothing here touches hardware.

Layout: a title bar (inverted, filled) of 11 pixels, then up to four 11-pixel lines.
The cursor is not the title's look: an outlined box with a '>' on the selected line,
text unchanged, so a filled bar only ever means the title. Lists scroll to keep the
cursor in sight. The performance page has one 8-pixel row per CV (number, what it
drives, volts, bar) and in pitch mode an f0 row (note, Hz, bar); a short state rides
at the title's right, the bottom line carries notices and errors.
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


def _title(draw: ImageDraw.ImageDraw, title: str, status: str = "") -> None:
    draw.rectangle((0, 0, WIDTH - 1, LINE - 1), fill=1)
    status = status[:8]
    room = CHARS - (len(status) + 1 if status else 0)
    draw.text((1, 0), _fit(title, room), font=FONT, fill=0)
    if status:
        draw.text((WIDTH - 1 - 6 * len(status), 0), status, font=FONT, fill=0)


def _line(draw: ImageDraw.ImageDraw, row: int, text: str, selected: bool) -> None:
    top = LINE * (row + 1)
    if selected:
        draw.rectangle((0, top, WIDTH - 1, top + LINE - 1), outline=1, fill=0)
        draw.text((2, top), ">", font=FONT, fill=1)
    # Every list line leaves the marker's column free: the text does not jump.
    draw.text((8, top), _fit(text, CHARS - 1), font=FONT, fill=1)


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
    _title(d, view.title, view.status)
    if view.kind == "performance":
        _performance(d, view)
    elif view.kind == "value":
        d.text((4, LINE + 6), _fit(view.lines[0] if view.lines else ""), font=FONT, fill=1)
        _bar(d, (4, LINE + 22, WIDTH - 5, LINE + 32), view.value or 0.0)
    elif view.kind in ("wizard", "info"):
        for row, text in enumerate(view.lines[:ROWS - (1 if view.message else 0)]):
            d.text((1, LINE * (row + 1)), _fit(text), font=FONT, fill=1)
    else:
        rows = ROWS - (1 if view.message else 0)
        first = visible_window(len(view.lines), view.cursor, rows)
        for row, text in enumerate(view.lines[first:first + rows]):
            _line(d, row, text, first + row == view.cursor)
    if view.message and view.kind == "performance":
        d.text((1, HEIGHT - LINE), _fit(view.message), font=FONT, fill=1)
    elif view.message:
        top = LINE * ROWS
        d.line((0, top, WIDTH - 1, top), fill=1)  # a notice is not a list item
        d.text((1, top + 1), _fit(view.message), font=FONT, fill=1)
    return image


BAR_ROW = 8  # pixel rows per meter: four CVs, f0 and a notice fit under the title
# Meter columns (pixels): label, what it drives, value (right-aligned), then the bar.
LABEL_X, NAME_X, TEXT_RIGHT, BAR_X = 1, 16, 77, 80


def bar_top(row: int) -> int:
    """The top pixel row of the performance page's meter number `row`."""
    return LINE + 1 + BAR_ROW * row


def _centred_bar(draw: ImageDraw.ImageDraw, box: Tuple[int, int, int, int],
                 fraction: float) -> None:
    """A bipolar bar: filled from the middle to the value, a tick at the middle."""
    x0, y0, x1, y1 = box
    draw.rectangle(box, outline=1, fill=0)
    middle = (x0 + x1) // 2
    draw.line((middle, y0, middle, y1), fill=1)
    at = x0 + 2 + int(round((x1 - x0 - 4) * min(max(fraction, 0.0), 1.0)))
    if at != middle:
        draw.rectangle((min(at, middle), y0 + 2, max(at, middle), y1 - 2), fill=1)


def _performance(d: ImageDraw.ImageDraw, view: View) -> None:
    room = (HEIGHT - LINE - 1 - (LINE if view.message else 0)) // BAR_ROW
    for row, meter in enumerate(view.meters[:room]):
        top = bar_top(row)
        # The bitmap font's glyphs start two rows down: lift them into the row.
        d.text((LABEL_X, top - 2), meter.label[:2], font=FONT, fill=1)
        d.text((NAME_X, top - 2), meter.name[:4], font=FONT, fill=1)
        text = meter.text[:6]
        d.text((TEXT_RIGHT - 6 * len(text), top - 2), text, font=FONT, fill=1)
        if meter.fraction is None:
            continue
        box = (BAR_X, top, WIDTH - 2, top + BAR_ROW - 2)
        if meter.centred:
            _centred_bar(d, box, meter.fraction)
        else:
            _bar(d, box, meter.fraction)
