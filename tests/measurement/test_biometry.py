"""Head biometry (hcmeasure.measurement.biometry): BPD and OFD are the mm ellipse's
minor and major axes, the cephalic index their ratio, and the drawn diameters are the
mm ones wherever the pixels are not square."""
from __future__ import annotations

import math

import numpy as np
import pytest

from hcmeasure.measurement.biometry import (
    CEPHALIC_INDEX_RANGE,
    axis_endpoints,
    axis_endpoints_px,
    bpd_outer_inner_mm,
    cephalic_index_flag,
    head_biometry,
)
from hcmeasure.measurement.ellipse import Ellipse
from hcmeasure.measurement.spacing import ellipse_in_mm


def test_bpd_is_the_minor_axis_ofd_the_major_and_ci_their_ratio():
    bio = head_biometry(Ellipse(40.0, 30.0, 50.0, 39.0, 0.7))
    assert (bio.ofd_mm, bio.bpd_mm) == (100.0, 78.0)
    assert bio.cephalic_index == pytest.approx(78.0)
    assert bio.ci_flag == "within"


@pytest.mark.parametrize("ci,flag", [(73.9, "dolichocephaly"), (74.0, "within"), (78.3, "within"),
                                     (83.0, "within"), (83.1, "brachycephaly")])
def test_cephalic_index_range_is_hadlock_1981_mean_plus_minus_one_sd(ci, flag):
    assert CEPHALIC_INDEX_RANGE == (74.0, 83.0)
    assert cephalic_index_flag(ci) == flag


def test_outer_to_inner_bpd_is_wong_2018_in_millimetres():
    # BPD_oi = -0.403458 + 0.9714153 BPD_oo: about one skull bone (1-3 mm) smaller.
    assert bpd_outer_inner_mm(90.0) == pytest.approx(87.0239, abs=1e-4)
    assert 1.0 < 30.0 - bpd_outer_inner_mm(30.0) < 1.5
    assert head_biometry(Ellipse(0, 0, 50.0, 45.0, 0.0)).bpd_outer_inner_est_mm == pytest.approx(
        bpd_outer_inner_mm(90.0))


def test_axis_endpoints_are_the_diameters_through_the_centre():
    e = Ellipse(10.0, 20.0, 5.0, 3.0, 0.4)
    major, minor = axis_endpoints(e)
    assert np.linalg.norm(major[1] - major[0]) == pytest.approx(10.0)
    assert np.linalg.norm(minor[1] - minor[0]) == pytest.approx(6.0)
    np.testing.assert_allclose(major.mean(axis=0), [10.0, 20.0])
    np.testing.assert_allclose(minor.mean(axis=0), [10.0, 20.0])
    assert np.dot(major[1] - major[0], minor[1] - minor[0]) == pytest.approx(0.0, abs=1e-12)
    assert math.atan2(*(major[1] - major[0])[::-1]) == pytest.approx(0.4)
    np.testing.assert_allclose(e.normalized_radius(*np.concatenate([major, minor]).T), 1.0)


def test_with_non_square_pixels_the_drawn_diameters_are_the_mm_ones():
    dx, dy = 0.2, 0.1
    mm = Ellipse(30.0, 26.0, 25.0, 15.0, 0.4)
    px_ellipse = ellipse_in_mm(mm, 1 / dx, 1 / dy)
    major_px, minor_px = axis_endpoints_px(mm, dx, dy)
    # On the pixel ellipse, and 2a / 2b long once taken back to mm ...
    np.testing.assert_allclose(px_ellipse.normalized_radius(*np.concatenate([major_px, minor_px]).T), 1.0)
    scale = np.array([dx, dy])
    assert np.linalg.norm((major_px[1] - major_px[0]) * scale) == pytest.approx(50.0)
    assert np.linalg.norm((minor_px[1] - minor_px[0]) * scale) == pytest.approx(30.0)
    # ... but not the pixel ellipse's own axes (those are not the measured diameters here).
    assert np.linalg.norm(major_px[1] - major_px[0]) != pytest.approx(2 * px_ellipse.a, rel=1e-3)
