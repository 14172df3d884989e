"""CV calibration: 1 V/oct from the 1 V and 3 V readings, offsets with nothing patched."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from neurorave.firmware import calibration as cal
from neurorave.firmware import state_files as sf

gains = st.floats(0.8, 1.2)  # what a real input's op-amp and ADC can do to 1 V
offsets = st.floats(-0.3, 0.3)


@given(gain=gains, offset=offsets, volts=st.floats(-5, 10))
def test_calibrated_input_reads_true_volts_and_octaves(gain, offset, volts):
    # The input measures gain*v + offset; after calibration it must read v again.
    measure = lambda v: gain * v + offset  # noqa: E731
    pitch = cal.PitchCalibration.from_readings(0, measure(1.0), measure(3.0))
    assert pitch.volts(measure(volts)) == pytest.approx(volts, abs=1e-9)
    assert pitch.semitones(measure(volts)) == pytest.approx(12 * volts, abs=1e-6)
    # One more volt is exactly one octave.
    ratio = pitch.to_f0(measure(volts + 1.0)) / pitch.to_f0(measure(volts))
    assert ratio == pytest.approx(2.0, rel=1e-9)


def test_scale_is_24_semitones_over_the_difference():
    pitch = cal.PitchCalibration.from_readings(2, 1.05, 3.15)
    assert pitch.semitones_per_volt == pytest.approx(24 / 2.1)
    assert pitch.reading_at_1v == 1.05 and pitch.cv == 2
    assert pitch.to_f0(1.05, base_hz=100.0) == pytest.approx(200.0)


@given(r1=st.floats(0.5, 1.5), span=st.floats(-20, 20))
def test_difference_outside_the_sane_window_is_refused(r1, span):
    if cal.PITCH_SPAN_MIN_V <= span <= cal.PITCH_SPAN_MAX_V:
        assert cal.PitchCalibration.from_readings(0, r1, r1 + span).semitones_per_volt > 0
    else:
        with pytest.raises(cal.CalibrationError, match="expected about 2 V"):
            cal.PitchCalibration.from_readings(0, r1, r1 + span)


@pytest.mark.parametrize("r1,r3", [(3.0, 1.0), (1.0, 1.0), (0.2, 2.2), (float("nan"), 3.0)])
def test_swapped_equal_far_or_bad_readings_are_refused(r1, r3):
    with pytest.raises(cal.CalibrationError):
        cal.PitchCalibration.from_readings(0, r1, r3)


@given(st.lists(st.floats(-0.3, 0.3), min_size=4, max_size=4),
       st.floats(0.0, 0.01))
def test_offsets_bring_idle_inputs_to_zero(idle, noise):
    captures = [[v - noise, v, v + noise] for v in idle]
    offsets = cal.offsets_from_idle(captures)
    calibration = cal.CVCalibration(offsets)
    assert np.allclose(calibration.apply(np.array(idle)), 0.0, atol=1e-12)
    for i, v in enumerate(idle):
        assert calibration.apply_one(i, v + 2.5) == pytest.approx(2.5)


def test_a_patched_or_noisy_input_is_refused_during_offset_calibration():
    with pytest.raises(cal.CalibrationError, match="CV3 reads 2.00 V: unpatch it"):
        cal.offsets_from_idle([[0.0], [0.0], [2.0], [0.0]])
    with pytest.raises(cal.CalibrationError, match="not steady"):
        cal.offsets_from_idle([[0.0, 0.2], [0.0], [0.0], [0.0]])
    with pytest.raises(cal.CalibrationError):
        cal.offsets_from_idle([[0.0]] * 3)


@given(offs=st.lists(st.floats(-1, 1), min_size=4, max_size=4),
       scales=st.lists(st.floats(0.5, 2), min_size=4, max_size=4),
       volts=st.lists(st.floats(-10, 10), min_size=4, max_size=4))
def test_apply_is_offset_then_scale_and_survives_the_calibration_file(offs, scales, volts, ):
    original = cal.CVCalibration(offs, scales, cal.PitchCalibration(1, 12.1, 0.98))
    expected = (np.array(volts) + np.array(offs)) * np.array(scales)
    assert np.allclose(original.apply(volts), expected)
    state = original.to_state()
    sf.validate_calibration(state)  # what calibration_file().save() will check
    again = cal.CVCalibration.from_state(state)
    assert np.allclose(again.apply(volts), expected)
    assert again.pitch is not None and again.pitch.semitones(2.0) == original.pitch.semitones(2.0)


def test_default_calibration_file_data_is_the_identity():
    identity = cal.CVCalibration.from_state(sf.default_calibration())
    assert np.array_equal(identity.apply([1.0, -2.0, 3.5, 0.0]), [1.0, -2.0, 3.5, 0.0])
    assert identity.pitch is None


def test_wizard_walks_1v_then_3v_and_retries_a_bad_capture():
    wizard = cal.PitchWizard(cv=0)
    assert wizard.prompt.startswith("Patch 1.000 V")
    wizard.capture([2.5] * 8)  # 3 V patched too early
    assert wizard.step == wizard.STEP_1V and "not 1 V" in wizard.error
    wizard.capture([1.02, 1.021, 1.019])
    assert wizard.step == wizard.STEP_3V and wizard.error == ""
    wizard.capture([1.6, 1.7, 1.8])  # the cable wobbled
    assert wizard.step == wizard.STEP_3V and wizard.error == "input not steady"
    wizard.capture([3.1, 3.1])
    assert wizard.done and wizard.result is not None
    assert wizard.result.semitones_per_volt == pytest.approx(24 / (3.1 - 1.02))
    assert math.isclose(wizard.result.volts(3.1), 3.0)
