"""The measured head: one record from a fitted ellipse and a calibration."""
import math

import numpy as np
import pytest

from hcmeasure.measurement.ellipse import Ellipse, ramanujan_perimeter
from hcmeasure.measurement.gestational_age import estimate_ga
from hcmeasure.measurement.growth import hc_for_age, known_ga
from hcmeasure.measurement.head import HeadMeasurement
from hcmeasure.measurement.record import (
    MeasurementOptions,
    PixelCalibration,
    ellipse_to_mm,
    measure_head,
    measurement_status,
)
from hcmeasure.measurement.spacing import ellipse_in_mm
from hcmeasure.measurement.trust import TrustCalibration

HEAD = HeadMeasurement(Ellipse(400.0, 270.0, 150.0, 120.0, 0.3), 0.98, 0.96, "ok")
SQUARE = PixelCalibration(0.2, 0.2, "pixel_size_arg")


def test_square_pixels_scale_the_pixel_ellipse_and_hc_is_its_perimeter_in_mm():
    m = measure_head("a.png", HEAD, SQUARE)
    assert m.status == "ok" and m.ellipse_px == HEAD.ellipse
    assert m.ellipse_mm == HEAD.ellipse.scaled(0.2)
    assert m.ellipse_mm.angle == m.ellipse_px.angle
    assert m.hc_px == pytest.approx(ramanujan_perimeter(150.0, 120.0))
    assert m.hc_mm == pytest.approx(0.2 * ramanujan_perimeter(150.0, 120.0), rel=1e-12)
    assert (m.biometry.ofd_mm, m.biometry.bpd_mm) == pytest.approx((60.0, 48.0))
    assert (m.score, m.fit_iou, m.calibration.source) == (0.98, 0.96, "pixel_size_arg")


def test_non_square_pixels_give_the_mm_ellipse_its_own_angle():
    mm = Ellipse(30.0, 26.0, 25.0, 15.0, 0.4)
    px = ellipse_in_mm(mm, 1 / 0.2, 1 / 0.1)  # the same head drawn on 0.2 x 0.1 mm pixels
    m = measure_head("b.dcm", HeadMeasurement(px, 0.9, 0.9, "ok"), PixelCalibration(0.2, 0.1, "dicom_us_region"))
    assert m.ellipse_mm.angle == pytest.approx(0.4, abs=1e-9)
    assert abs(m.ellipse_px.angle - 0.4) > 0.1  # the pixel ellipse points elsewhere
    assert (m.ellipse_mm.a, m.ellipse_mm.b) == pytest.approx((25.0, 15.0))
    assert m.hc_mm == pytest.approx(ramanujan_perimeter(25.0, 15.0))
    assert m.hc_mm != pytest.approx(m.hc_px * 0.2, rel=1e-3)  # never the pixel perimeter times one factor


def test_the_mm_ellipse_is_refitted_on_the_contour_for_non_square_pixels():
    mm = Ellipse(30.0, 26.0, 25.0, 15.0, 0.4)
    px = ellipse_in_mm(mm, 5.0, 10.0)
    contour = px.points(720)
    wrong = Ellipse(px.cx, px.cy, px.a * 1.1, px.b, px.angle)  # a pixel fit off by 10 %
    got = ellipse_to_mm(wrong, 0.2, 0.1, contour)
    assert (got.a, got.b, got.angle) == pytest.approx((25.0, 15.0, 0.4), abs=1e-3)


@pytest.mark.parametrize("head_status, calibration, expected", [
    ("ok", SQUARE, "ok"),
    ("ok", PixelCalibration(), "missing_pixel_size"),
    ("ok", PixelCalibration(source="pixel_size_csv", error="pixel size 'zero' is not a number"), "invalid_pixel_size"),
    ("no_head_detected", SQUARE, "no_head_detected"),
    ("ellipse_fit_failed", PixelCalibration(), "ellipse_fit_failed"),
])
def test_status_is_the_heads_own_unless_the_calibration_cannot_give_millimetres(head_status, calibration, expected):
    assert measurement_status(head_status, calibration) == expected


def test_without_a_usable_pixel_size_hc_stays_in_pixels():
    for cal in (PixelCalibration(), PixelCalibration(source="dicom_pixel_spacing", error="bad")):
        m = measure_head("a.png", HEAD, cal, MeasurementOptions(ga_formula="intergrowth"))
        assert m.ellipse_px == HEAD.ellipse and m.hc_px > 0
        assert m.ellipse_mm is None and m.hc_mm is None and m.biometry is None and m.ga is None
    assert measure_head("x.png", None, SQUARE).status == "no_head_detected"


def test_from_value_checks_the_plausible_range():
    assert PixelCalibration.from_value(0.1, "dataset") == PixelCalibration(0.1, 0.1, "dataset")
    assert PixelCalibration.from_value(None) == PixelCalibration()
    for bad in (0.0, -1.0, float("nan"), float("inf"), 5.0, 1e-4):
        cal = PixelCalibration.from_value(bad, "dataset")
        assert not cal.usable and cal.error and cal.dx_mm is None, bad


def test_ga_is_estimated_from_a_measured_hc_with_the_chosen_formula():
    m = measure_head("a.png", HEAD, SQUARE, MeasurementOptions(ga_formula="hadlock"))
    assert m.ga == estimate_ga(m.hc_mm, "hadlock")
    assert measure_head("a.png", HEAD, SQUARE).ga is None  # no formula: no GA


def test_a_trust_rule_that_fires_makes_the_status_review_with_its_interval():
    trust = TrustCalibration(q=2.0, intercept=0.01)
    gray = np.full((540, 800), 40, np.uint8)  # tissue, with the skull echo along HEAD's ellipse
    yy, xx = np.mgrid[0:540, 0:800]
    gray[np.abs(HEAD.ellipse.normalized_radius(xx, yy) - 1.0) * HEAD.ellipse.b < 2.0] = 220
    fine = measure_head("a.png", HEAD, SQUARE, MeasurementOptions(trust=trust), gray=gray)
    assert fine.status == "ok" and fine.review_reasons == ()
    assert fine.hc_interval_mm == pytest.approx((fine.hc_mm * 0.98, fine.hc_mm * 1.02))
    cut = HeadMeasurement(Ellipse(760.0, 270.0, 150.0, 100.0, 0.0), 0.99, 0.97, "ok")  # a third off the scan
    flagged = measure_head("b.png", cut, SQUARE, MeasurementOptions(ga_formula="intergrowth", trust=trust), gray=gray)
    assert flagged.status == "review" and flagged.review_reasons == ("ellipse_leaves_image",)
    assert flagged.measured and flagged.ga is not None  # a review head is measured in full
    # No trust assessment without millimetres.
    assert measure_head("c.png", cut, PixelCalibration(), MeasurementOptions(trust=trust), gray=gray).status == \
        "missing_pixel_size"


def test_the_known_ga_centile_needs_a_usable_age_and_a_measured_hc():
    m = measure_head("a.png", HEAD, SQUARE, known_ga=known_ga("20+0", "ga_arg"), pregnancy="P1")
    expected = hc_for_age(m.hc_mm, 140)
    assert m.hc_for_known_ga == expected and m.pregnancy == "P1"
    assert measure_head("a.png", HEAD, SQUARE, known_ga=known_ga("41+0", "ga_csv")).hc_for_known_ga is None
    assert measure_head("a.png", HEAD, PixelCalibration(), known_ga=known_ga("20+0", "ga_csv")).hc_for_known_ga is None
    assert math.isfinite(expected.zscore)
