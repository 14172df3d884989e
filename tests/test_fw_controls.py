"""Control mapping at the latent rate: ranges, smoothing, macro modes, 1 V/oct, determinism."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from neurorave.firmware.calibration import CVCalibration, PitchCalibration
from neurorave.firmware.controls import (
    AttributeRange,
    ControlMapper,
    ControlSettings,
    attribute_bars,
    one_pole_coefficient,
)

ATTRS = [AttributeRange("rms", -1.0, 1.0), AttributeRange("centroid", 200.0, 8000.0, "Hz"),
         AttributeRange("sharpness", 0.0, 1.0), AttributeRange("f0", 40.0, 2000.0, "Hz")]
RATE = 48000 / 512  # latent frames per second


def mapper(**kw):
    seed = kw.pop("seed", 0)
    calibration = kw.pop("calibration", None)
    return ControlMapper(ATTRS, RATE, ControlSettings(**kw), calibration, seed=seed)


volts4 = st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=4,
                  max_size=4)


@settings(max_examples=80, deadline=None)
@given(frames=st.lists(st.tuples(volts4, st.booleans(), st.booleans()), min_size=1, max_size=30),
       mode=st.sampled_from(["random", "snapshot", "follow_cv4"]),
       lo=st.floats(0, 1), hi=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_outputs_stay_in_range_whatever_comes_in(frames, mode, lo, hi, seed):
    m = mapper(macro_mode=mode, attribute_ranges={"centroid": (lo, hi)},
               snapshots=[[0.1, 0.9, 0.2], [1.0]], seed=seed)
    low, high = sorted((lo, hi))
    for volts, rise, high_gate in frames:
        snap = m.step(volts, rise, high_gate)
        assert np.all(np.isfinite(snap.attributes)) and math.isfinite(snap.latent0)
        for value, a in zip(snap.attributes, ATTRS):
            assert a.min - 1e-9 <= value <= a.max + 1e-9
        c = (snap.attributes[1] - 200.0) / 7800.0
        assert low - 1e-9 <= c <= high + 1e-9
        assert abs(snap.latent0) <= 2.0 + 1e-12
        assert np.all((snap.macro >= 0) & (snap.macro <= 1))


def test_cv1_drives_latent_zero_and_each_cv_slides_its_own_attribute():
    m = mapper(smoothing_s=0, cv_assign={"cv2": 2, "cv3": 0, "cv4": None})
    home = m.step([0, 0, 0, 0])
    assert home.latent0 == 0.0
    assert home.attributes[:3].tolist() == pytest.approx([0.0, 4100.0, 0.5])
    moved = m.step([5.0, 5.0, -5.0, 5.0])
    assert moved.latent0 == pytest.approx(2.0)
    assert moved.attributes[2] == pytest.approx(1.0)  # cv2 -> sharpness, half range up
    assert moved.attributes[0] == pytest.approx(-1.0)  # cv3 -> rms, half range down
    assert moved.attributes[1] == pytest.approx(4100.0)  # unassigned: stays home
    assert m.step([2.5, 0, 0, 0]).latent0 == pytest.approx(1.0)


@given(tau=st.floats(0.005, 1.0), target=st.floats(-5, 5))
def test_one_pole_smoothing_follows_its_time_constant(tau, target):
    m = mapper(smoothing_s=tau)
    m.step([0, 0, 0, 0])  # settles at 0 V
    a = one_pole_coefficient(tau, RATE)
    previous = 0.0
    for k in range(1, 30):
        latent = m.step([target, 0, 0, 0]).latent0
        expect = (target * 2.0 / 5.0) * (1.0 - (1.0 - a) ** k)
        assert latent == pytest.approx(expect, abs=1e-9)
        assert abs(latent) >= abs(previous) - 1e-12  # monotone, no overshoot
        previous = latent
    # A time constant of tau: 63 % of a step after tau seconds.
    frames = tau * RATE
    assert 1.0 - (1.0 - a) ** frames == pytest.approx(1.0 - math.exp(-1.0), rel=1e-6)


def test_random_macro_glides_and_is_deterministic_with_a_seed():
    glide_s = 0.2
    frames = round(glide_s * RATE)
    runs = []
    for seed in (7, 7, 8):
        m = mapper(macro_glide_s=glide_s, smoothing_s=0, seed=seed)
        m.step([0, 0, 0, 0])
        path = [m.step([0, 0, 0, 0], gate2_rise=True).macro]
        path += [m.step([0, 0, 0, 0]).macro for _ in range(frames + 3)]
        runs.append(np.array(path))
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])
    path = runs[0]
    target = path[-1]
    assert np.allclose(path[frames - 1], target)  # arrived after the glide
    assert not np.allclose(path[frames - 2], target)  # and not before
    steps = np.diff(np.vstack([np.full(len(ATTRS), 0.5), path[:frames]]), axis=0)
    assert np.allclose(steps, steps[0])  # a straight glide: equal steps
    # reset() replays the same random points.
    m = mapper(macro_glide_s=glide_s, smoothing_s=0, seed=7)
    m.step([0, 0, 0, 0], gate2_rise=True)
    first = m.step([0] * 4).macro
    m.reset()
    m.step([0, 0, 0, 0], gate2_rise=True)
    assert np.array_equal(m.step([0] * 4).macro, first)


def test_snapshot_macro_steps_through_stored_points_in_order():
    shots = [[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.25]]
    m = mapper(macro_mode="snapshot", snapshots=shots, macro_glide_s=0, smoothing_s=0)
    seen = [m.step([0] * 4, gate2_rise=True).macro.tolist() for _ in range(4)]
    assert seen == [[0.0] * 4, [1.0] * 4, [0.25, 0.5, 0.5, 0.5], [0.0] * 4]
    empty = mapper(macro_mode="snapshot", snapshots=[], macro_glide_s=0)
    assert empty.step([0] * 4, gate2_rise=True).macro.tolist() == [0.5] * 4
    assert m.store_snapshot() == [0.0] * 4


def test_follow_cv4_tracks_while_gate_high_and_holds_after():
    m = mapper(macro_mode="follow_cv4", macro_glide_s=0, smoothing_s=0,
               cv_assign={"cv2": None, "cv3": None, "cv4": None})
    assert m.step([0, 0, 0, 5.0]).macro.tolist() == [0.5] * 4  # gate low: no effect
    assert m.step([0, 0, 0, 5.0], gate2_rise=True, gate2_high=True).macro.tolist() == [1.0] * 4
    assert m.step([0, 0, 0, -5.0], gate2_high=True).macro.tolist() == [0.0] * 4
    assert m.step([0, 0, 0, 2.5]).macro.tolist() == [0.0] * 4  # released: held
    snap = m.step([0, 0, 0, 0])
    assert snap.attributes[1] == pytest.approx(200.0)  # all attributes at their low end


def test_pitch_mode_maps_1v_per_octave_through_the_calibration():
    pitch = PitchCalibration.from_readings(1, 1.1, 3.3)  # CV2 reads 10 % high
    m = mapper(pitch_mode=True, smoothing_s=0, base_hz=110.0,
               calibration=CVCalibration(pitch=pitch))
    f_a = m.step([0, 1.1, 0, 0]).f0_hz  # a true 1 V
    f_b = m.step([0, 3.3, 0, 0]).f0_hz  # a true 3 V
    assert f_a == pytest.approx(220.0) and f_b == pytest.approx(880.0)
    snap = m.step([0, 1.1 + 1.1, 0, 0])
    assert snap.f0_hz == pytest.approx(440.0) and snap.attributes[3] == pytest.approx(440.0)
    assert m.step([0, 20.0, 0, 0]).f0_hz == 2000.0  # clipped to the attribute's range
    assert m.pitch_cv() == 1
    # Without calibration, or without an f0 attribute, there is no pitch.
    assert mapper(pitch_mode=True).step([0] * 4).f0_hz is None
    no_f0 = ControlMapper(ATTRS[:3], RATE, ControlSettings(pitch_mode=True),
                          CVCalibration(pitch=pitch))
    assert no_f0.step([0, 2, 0, 0]).f0_hz is None


def test_pitch_mode_before_calibration_reads_a_nominal_1v_per_octave_on_the_f0_cv():
    m = mapper(pitch_mode=True, smoothing_s=0, base_hz=110.0,
               cv_assign={"cv2": 0, "cv3": None, "cv4": 3})      # f0 on CV4
    assert m.pitch_cv() == 3
    assert m.step([0, 0, 0, 1.0]).f0_hz == pytest.approx(220.0)
    assert m.step([0, 0, 0, 2.5]).f0_hz == pytest.approx(110.0 * 2 ** 2.5)
    assert 3 in m.pinned_attributes()
    # The offset stored for that CV (Offsets, unpatched) applies: 1.3 V read is 1 V.
    offset = ControlMapper(ATTRS, RATE, ControlSettings(
        pitch_mode=True, smoothing_s=0, base_hz=110.0,
        cv_assign={"cv2": None, "cv3": None, "cv4": 3}),
        CVCalibration(offsets=[0.0, 0.0, 0.0, -0.3]))
    assert offset.step([0, 0, 0, 1.3]).f0_hz == pytest.approx(220.0)


def prior_mapper(**kw):
    """The mapper of a bundle with a prior (the voice builds it so)."""
    return ControlMapper(ATTRS, RATE, ControlSettings(smoothing_s=0, **kw), None,
                         generated=True)


def test_slide_mode_moves_the_priors_attributes_and_holds_none():
    m = prior_mapper(cv_assign={"cv2": 0, "cv3": 1, "cv4": None})   # rms, centroid
    assert m.pinned_attributes() == []          # the prior generates them all
    prior = np.array([0.05, 3000.0, 0.3, 220.0])
    # Nothing patched: the prior's phrase plays as generated.
    assert m.slide(prior, m.step([0, 0, 0, 0])).tolist() == pytest.approx(prior.tolist())
    moved = m.slide(prior, m.step([0, 5.0, 2.5, 0]))
    assert moved[0] == pytest.approx(0.05 * 10 ** (24 / 20))      # rms: +24 dB at +5 V
    assert moved[1] == pytest.approx(3000.0 + 0.25 * 7800.0)     # a quarter of the range
    assert moved[2:].tolist() == pytest.approx(prior[2:].tolist())
    down = m.slide(prior, m.step([0, -2.5, -5.0, 0]))
    assert down[0] == pytest.approx(0.05 * 10 ** (-12 / 20))
    assert down[1] == 200.0                                       # the player's range ends it
    # The player's range bounds what plays.
    narrow = prior_mapper(attribute_ranges={"sharpness": (0.0, 0.2)})
    assert narrow.slide(prior, narrow.step([0] * 4))[2] == pytest.approx(0.2)


def test_in_slide_mode_the_macro_leaves_the_tune_and_a_cv_on_f0_transposes_it():
    m = prior_mapper(macro_glide_s=0, cv_assign={"cv2": None, "cv3": None, "cv4": 3})
    prior = np.array([0.05, 3000.0, 0.3, 220.0])
    moved = m.slide(prior, m.step([0, 0, 0, 0], gate2_rise=True))   # a random macro point
    assert moved[1] != pytest.approx(3000.0)                         # timbre moved
    assert moved[3] == pytest.approx(220.0)                          # the tune did not
    assert m.slide(prior, m.step([0, 0, 0, 1.0]))[3] == pytest.approx(440.0)   # 1 V/oct
    assert m.slide(prior, m.step([0, 0, 0, -2.0]))[3] == pytest.approx(55.0)


def test_a_frame_rendered_again_keeps_settings_changed_since_it_was_saved():
    m = prior_mapper(cv_assign={"cv2": 0, "cv3": None, "cv4": None})
    m.step([0, 1.0, 0, 0])
    saved = m.save_state()
    m.configure(ControlSettings(smoothing_s=0, cv_mode="hold",
                                cv_assign={"cv2": 0, "cv3": None, "cv4": None}))
    m.load_state(saved)                  # the voice re-renders the queued frame
    assert not m.slides and m.pinned_attributes() == [0]
    assert m.frame == 1                  # the per-frame state did come back


def test_the_state_a_re_render_restores_is_exactly_what_reset_sets():
    """A field added to `reset` but not to `_PER_FRAME` would not come back when the
    voice renders a queued frame again."""
    assigned = []

    class Spy(ControlMapper):
        def __setattr__(self, name, value):
            assigned.append(name)
            super().__setattr__(name, value)

    m = Spy(ATTRS, RATE)
    assigned.clear()
    m.reset()
    assert set(assigned) == set(ControlMapper._PER_FRAME)


def test_hold_mode_and_a_model_without_prior_hold_the_assigned_attributes():
    hold = prior_mapper(cv_mode="hold", cv_assign={"cv2": 0, "cv3": 1, "cv4": None})
    assert hold.pinned_attributes() == [0, 1]
    prior = np.array([0.05, 3000.0, 0.3, 220.0])
    assert hold.slide(prior, hold.step([0, 5.0, 0, 0])) is prior    # held by the prior's pin
    explore = mapper(cv_assign={"cv2": 0, "cv3": 1, "cv4": None})   # no prior: home + CV
    assert explore.pinned_attributes() == [0, 1] and not explore.slides
    with pytest.raises(ValueError, match="CV mode"):
        ControlSettings(cv_mode="wobble")


def test_a_0_to_10_volt_board_slides_up_all_the_way_and_cv4_spans_its_range():
    unipolar = [(0.0, 10.0)] * 4
    m = ControlMapper(ATTRS, RATE, ControlSettings(smoothing_s=0, macro_glide_s=0,
                                                   cv_assign={"cv2": 2, "cv3": None,
                                                              "cv4": None}),
                      cv_ranges=unipolar)
    assert m.step([0, 0, 0, 0]).attributes[2] == pytest.approx(0.5)    # unpatched: home
    assert m.step([0, 5.0, 0, 0]).attributes[2] == pytest.approx(0.75)
    top = m.step([10.0, 10.0, 0, 0])
    assert top.attributes[2] == pytest.approx(1.0) and top.latent0 == pytest.approx(2.0)
    follow = ControlMapper(ATTRS, RATE, ControlSettings(macro_mode="follow_cv4",
                                                        macro_glide_s=0, smoothing_s=0),
                           cv_ranges=unipolar)
    assert follow.step([0, 0, 0, 5.0], gate2_rise=True, gate2_high=True).macro.tolist() == \
        [0.5] * 4
    with pytest.raises(ValueError, match="CV ranges"):
        ControlMapper(ATTRS, RATE, cv_ranges=[(5.0, 5.0)] * 4)


def test_pitch_is_smoothed_in_semitones():
    pitch = PitchCalibration.from_readings(1, 1.0, 3.0)
    m = mapper(pitch_mode=True, smoothing_s=0.05, base_hz=100.0,
               calibration=CVCalibration(pitch=pitch))
    m.step([0, 0.0, 0, 0])
    a = one_pole_coefficient(0.05, RATE)
    f = m.step([0, 1.0, 0, 0]).f0_hz
    assert f == pytest.approx(100.0 * 2 ** a)  # geometric, not linear, in Hz


def test_a_reading_that_is_not_a_number_holds_the_last_value():
    m = mapper(smoothing_s=0)
    m.step([2.5, 0, 0, 0])
    assert m.step([float("nan"), 0, 0, 0]).latent0 == pytest.approx(1.0)
    with pytest.raises(ValueError):
        m.step([0, 0, 0])


def test_calibration_offsets_apply_before_mapping():
    m = mapper(smoothing_s=0, calibration=CVCalibration([-0.5, 0, 0, 0]))
    assert m.step([0.5, 0, 0, 0]).latent0 == pytest.approx(0.0)


def test_bars_and_settings_from_the_settings_file():
    from neurorave.firmware.state_files import default_settings

    s = ControlSettings.from_settings(default_settings())
    m = ControlMapper(ATTRS, RATE, s)
    bars = attribute_bars(m.step([0] * 4).attributes, m.attributes)
    assert [name for name, _ in bars] == ["rms", "centroid", "sharpness", "f0"]
    assert all(v == pytest.approx(0.5) for _, v in bars)
    with pytest.raises(ValueError):
        ControlSettings(macro_mode="sideways")
