"""Panel hardware layer timings: OLED frame cost through luma, ADC round robin, input logic.

    nice .venv/bin/python benchmarks/hw_panel.py [--json]

Figures: CPU time per OLED frame (luma.oled's packing plus the bus owner, over the
recording bus), bytes per frame and the resulting wire time at 400 kHz I2C; time for
one read of all four CVs at the ADS1115's top rate (chip model paces the conversions
as the datasheet does); cost of one debouncer / quadrature update; virtual panel
render time (the window's frame budget at 30 fps is 33 ms).
"""
import argparse
import json
import statistics
import time
import warnings

from neurorave.hardware.ads1x15 import AdcCvInputs, Ads1x15
from neurorave.hardware.board import load_board
from neurorave.hardware.debounce import Debouncer
from neurorave.hardware.i2c import I2CBus
from neurorave.hardware.oled import open_oled
from neurorave.hardware.panel import open_virtual_panel
from neurorave.hardware.quadrature import QuadratureDecoder
from neurorave.hardware.sim.ads1x15_chip import Ads1x15Chip
from neurorave.hardware.sim.i2c_bus import SimI2CBus
from neurorave.hardware.sim.oled_chip import OledChip
from neurorave.hardware.sim.panel_view import render
from neurorave.hardware.testpattern import test_pattern


class _CountingBus(SimI2CBus):
    """Counts bytes on the wire but skips the chip model (so we time the driver only)."""

    def __init__(self):
        super().__init__({0x3C: OledChip("ssd1306")}, record=False)
        self.bytes = 0
        self.transfers = 0

    def write_i2c_block_data(self, address, register, data):
        self.bytes += len(data) + 2            # address byte + control byte + payload
        self.transfers += 1


def _median_ms(action, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    warnings.filterwarnings("ignore", category=DeprecationWarning)   # luma on Pillow 13
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    board = load_board("jetson-nano")
    results = {}

    for chip in ("ssd1306", "sh1106"):
        bus = _CountingBus()
        display = open_oled(I2CBus(bus), board.display._replace(chip=chip))
        image = test_pattern()
        bus.bytes = bus.transfers = 0
        display.show(image)
        frame_bytes, transfers = bus.bytes, bus.transfers
        show = display.show
        results[f"oled_{chip}_frame_cpu_ms"] = round(
            _median_ms(lambda show=show, image=image: show(image), 50), 3)
        results[f"oled_{chip}_bytes_per_frame"] = frame_bytes
        results[f"oled_{chip}_transfers_per_frame"] = transfers
        # 9 clocks per byte on the wire, plus start/stop per transfer (~2 clocks).
        results[f"oled_{chip}_wire_ms_400khz"] = round(
            (frame_bytes * 9 + transfers * 2) / 400e3 * 1e3, 2)

    chip = Ads1x15Chip("ads1115")
    adc = AdcCvInputs(Ads1x15(I2CBus(SimI2CBus({0x48: chip}, record=False)), board.adc),
                      board.cvs)
    results["adc_read_4_cvs_ms"] = round(_median_ms(adc.read_volts, 30), 2)
    results["adc_ideal_4_conversions_ms"] = round(4 / board.adc.data_rate * 1e3, 2)

    debouncer = Debouncer(2_000_000)
    t = [0]

    def bounce():
        for _ in range(1000):
            t[0] += 100_000
            debouncer.update(bool(t[0] // 100_000 % 2), t[0])
    results["debounce_update_us"] = round(_median_ms(bounce, 20), 3)   # 1000 updates: ms = us
    decoder = QuadratureDecoder()
    cycle = [0b10, 0b00, 0b01, 0b11]

    def decode():
        for i in range(1000):
            decoder.update(cycle[i % 4])
    results["quadrature_update_us"] = round(_median_ms(decode, 20), 3)

    panel = open_virtual_panel(load_board("sim"))
    panel.display.show(test_pattern())
    results["panel_view_render_ms"] = round(_median_ms(lambda: render(panel), 20), 2)
    panel.close()

    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            print(f"{key:38s} {value}")


if __name__ == "__main__":
    main()
