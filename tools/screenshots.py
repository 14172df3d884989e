"""Screenshots of the OLED pages for the README, drawn by luma's own code.

    .venv/bin/python tools/screenshots.py [--out docs/screens]

Each page is built by driving the menu as a player would, drawn by `screens.draw`,
shown on luma.core's `dummy` device (the virtual OLED's device class, same mode and
preprocessing as the SSD1306) and saved from the device's own image, 4x, nearest.
`virtual-panel.png` is the laptop's window: the same frame through the virtual OLED,
the knobs labelled as the daemon labels them.
"""
import argparse
import os
import sys
from typing import List, NamedTuple, Tuple

from luma.core.device import dummy
from neurorave.firmware import screens
from neurorave.firmware.menu import Menu, ModelEntry, Performance
from neurorave.firmware.state_files import default_settings
from PIL import Image

SCALE = 4


class Attribute(NamedTuple):
    name: str
    min: float
    max: float
    unit: str


# gm-notes' attributes (models/pretrained/gm-notes/model.json) and values it plays.
ATTRIBUTES = [Attribute("rms", 0.0, 0.289, ""), Attribute("centroid", 0.0, 4314.0, "Hz"),
              Attribute("bandwidth", 0.0, 2652.0, "Hz"),
              Attribute("sharpness", 0.0, 2.678, "acum"),
              Attribute("boominess", 0.0, 13.81, ""), Attribute("f0", 0.0, 2667.0, "Hz")]
PLAYED = [0.121, 1830.0, 940.0, 1.22, 4.1, 220.0]
MODELS = [ModelEntry("gm-notes", "gm-notes", 16000, tuple(a.name for a in ATTRIBUTES)),
          ModelEntry("gm-drums", "gm-drums", 16000, tuple(a.name for a in ATTRIBUTES[:5]))]
MAIN = ["Model", "CV assign", "Ranges", "Macro", "Temperature", "Output level",
        "Calibrate", "System"]


def _menu() -> Menu:
    settings = default_settings()
    settings["pitch_mode"] = True
    settings["cv_assign"] = {"cv2": 1, "cv3": 5, "cv4": 0}  # centroid, f0, rms
    menu = Menu(settings, MODELS, [a.name for a in ATTRIBUTES])
    menu.set_performance(Performance.of("gm-notes", PLAYED, ATTRIBUTES, "playing"))
    menu.set_volts([1.5, -2.3, 0.0, 3.2])
    menu.set_system_info(["ort-cpu CPU", "RT x21  late 0", "underflows 0", "load 0.42  51 C"])
    return menu


def _open(menu: Menu, item: str) -> None:
    menu.home()
    menu.press()
    menu.turn(MAIN.index(item))
    menu.press()


def pages() -> List[Tuple[str, Menu]]:
    out = []
    menu = _menu()
    out.append(("performance", menu))
    menu = _menu()
    menu.turn(1)
    out.append(("performance-attributes", menu))
    menu = _menu()
    menu.press()
    menu.turn(1)
    out.append(("main-menu", menu))
    menu = _menu()
    _open(menu, "CV assign")
    menu.turn(1)
    menu.press()  # CV3's chooser
    out.append(("cv-assign-choose", menu))
    menu = _menu()
    _open(menu, "CV assign")
    menu.turn(1)
    menu.press()
    menu.turn(-4)  # CV3 takes centroid from CV2: swapped
    menu.press()
    out.append(("cv-assign-swapped", menu))
    menu = _menu()
    _open(menu, "Output level")
    out.append(("value", menu))
    menu = _menu()
    _open(menu, "Model")
    out.append(("model", menu))
    menu = _menu()
    _open(menu, "Calibrate")
    menu.turn(3)
    menu.press()
    out.append(("calibrate-wizard", menu))
    menu = _menu()
    _open(menu, "System")
    out.append(("system", menu))
    return out


def shoot(menu: Menu) -> Image.Image:
    device = dummy(width=screens.WIDTH, height=screens.HEIGHT, mode="1")
    device.display(screens.draw(menu.view()))
    image = device.image.convert("L")
    return image.resize((image.width * SCALE, image.height * SCALE), Image.NEAREST)


def virtual_panel(menu: Menu) -> Image.Image:
    from neurorave.hardware.board import load_board
    from neurorave.hardware.panel import open_virtual_panel
    from neurorave.hardware.sim.panel_view import render

    panel = open_virtual_panel(load_board("sim"))
    try:
        for i, volts in enumerate(menu.volts):
            panel.cvs.set_volts(i, volts)
        panel.led.set_colour("green")
        panel.display.show(screens.draw(menu.view()))
        return render(panel, 0, labels=menu.cv_labels())
    finally:
        panel.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("docs", "screens"))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for name, menu in pages():
        path = os.path.join(args.out, f"{name}.png")
        shoot(menu).convert("1").save(path, optimize=True)
        print(path)
    path = os.path.join(args.out, "virtual-panel.png")
    virtual_panel(_menu()).quantize(32).save(path, optimize=True)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
