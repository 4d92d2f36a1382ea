"""Non-square pixels: heads measured in millimetre space."""
import math

import numpy as np
import pytest
from skimage import measure

from hcmeasure.measurement.ellipse import Ellipse, ellipse_mask, fit_ellipse, ramanujan_perimeter
from hcmeasure.measurement.spacing import ellipse_in_mm, fit_in_mm, head_ellipse_in_mm


def test_ellipse_in_mm_is_the_exact_affine_image():
    px = Ellipse(100.0, 80.0, 50.0, 30.0, 0.3)
    mm = ellipse_in_mm(px, 0.2, 0.1)
    pts = px.points(360) * np.array([0.2, 0.1])
    assert np.allclose(mm.normalized_radius(pts[:, 0], pts[:, 1]), 1.0, atol=1e-9)
    assert ellipse_in_mm(px, 0.1, 0.1).a == pytest.approx(5.0)  # square pixels: plain scaling
    circle = ellipse_in_mm(Ellipse.normalized(0, 0, 100, 200, 0), 0.2, 0.1)
    assert circle.perimeter() == pytest.approx(2 * math.pi * 20)


def test_rasterised_anisotropic_head_is_measured_within_half_a_percent():
    """A head drawn on a 0.2 x 0.1 mm grid, segmented as a mask, refitted in mm space."""
    dx, dy = 0.2, 0.1
    truth = Ellipse(40.0, 30.0, 28.0, 20.0, 0.6)  # mm
    truth_px = ellipse_in_mm(truth, 1 / dx, 1 / dy)
    mask = ellipse_mask(truth_px, (640, 420))
    contour = np.concatenate(measure.find_contours(np.pad(mask, 1).astype(float), 0.5)) - 1.0
    points = contour[:, ::-1]  # (row, col) -> (x, y)
    mm = fit_in_mm(points, dx, dy)
    assert mm.perimeter() == pytest.approx(truth.perimeter(), rel=5e-3)
    fitted_px = fit_ellipse(mask).ellipse
    assert head_ellipse_in_mm(fitted_px, None, dx, dy).perimeter() == pytest.approx(truth.perimeter(), rel=5e-3)
    # One factor times the pixel perimeter is far off with either spacing.
    for factor in (dx, dy):
        assert abs(ramanujan_perimeter(fitted_px.a, fitted_px.b) * factor / truth.perimeter() - 1) > 0.2
