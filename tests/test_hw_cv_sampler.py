"""CvSampler: CV readings off the daemon's loop; a failing ADC never stops it."""
import time

from neurorave.hardware.ads1x15 import AdcCvInputs, Ads1x15
from neurorave.hardware.board import load_board
from neurorave.hardware.cv_sampler import CvSampler
from neurorave.hardware.i2c import I2CBus
from neurorave.hardware.sim.ads1x15_chip import Ads1x15Chip
from neurorave.hardware.sim.i2c_bus import SimI2CBus


def test_sampler_survives_a_loose_cable_and_recovers():
    board = load_board("jetson-nano")
    chip = Ads1x15Chip()
    chip.set_inputs([board.cvs[i].adc_volts(v) for i, v in enumerate([1.0, -2.0, 3.0, 0.5])])
    cvs = AdcCvInputs(Ads1x15(I2CBus(SimI2CBus({0x48: chip}, record=False)), board.adc),
                      board.cvs)
    sampler = CvSampler(cvs)
    try:
        first = sampler.wait_for(3, timeout=2.0)
        assert first.ok and first.reads >= 3
        assert [round(v, 2) for v in first.volts] == [1.0, -2.0, 3.0, 0.5]
        # Reading it never waits for a conversion.
        start = time.perf_counter()
        for _ in range(1000):
            sampler.latest()
        assert time.perf_counter() - start < 0.05
        chip.nack = True                                   # the cable comes loose
        time.sleep(0.2)
        broken = sampler.latest()
        assert not broken.ok and broken.errors >= 1
        assert "ADC (ads1115 at 0x48)" in broken.error and "no acknowledge" in broken.error
        assert [round(v, 2) for v in broken.volts] == [1.0, -2.0, 3.0, 0.5]   # last good
        chip.nack = False                                  # and goes back in
        chip.inputs[0] = board.cvs[0].adc_volts(4.0)
        back = sampler.wait_for(broken.reads + 2, timeout=3.0)
        assert back.ok and back.error is None and round(back.volts[0], 2) == 4.0
    finally:
        sampler.close()
    assert not sampler._thread.is_alive()
