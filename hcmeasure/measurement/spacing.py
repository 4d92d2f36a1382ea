"""Ellipses on scans whose pixels are not square (delta x != delta y).

A head fitted in pixels is taken to millimetres by the affine map
``(x, y) -> (x * dx, y * dy)``. An ellipse's image under an affine map is again an
ellipse, so when only the pixel ellipse is known its millimetre ellipse is exact
(:func:`ellipse_in_mm`). When the boundary points the fit used are known
(``HeadMeasurement.contour``), hcmeasure refits in millimetre space instead
(:func:`fit_in_mm`), so the least-squares fit and the outlier rejection weigh
distances in mm, not in anisotropic pixels. Either way HC is the perimeter of the
millimetre ellipse, never the pixel perimeter times one factor.
"""
from __future__ import annotations

import math

import numpy as np

from .ellipse import Ellipse, EllipseFitError, fit_ellipse_to_points

__all__ = ["PLAUSIBLE_PIXEL_SIZE_MM", "pixel_size_problem", "ellipse_in_mm", "fit_in_mm", "head_ellipse_in_mm"]

#: Pixel sizes (mm per pixel) accepted for ultrasound scans. HC18's are 0.05-1 mm; a
#: value outside this range is a typo (a micron or a metre per pixel), not a scan.
PLAUSIBLE_PIXEL_SIZE_MM = (0.01, 2.0)


def pixel_size_problem(value_mm) -> str | None:
    """Why ``value_mm`` (mm per pixel) cannot be used as a pixel size, or None when it can:
    not finite, not positive, or outside :data:`PLAUSIBLE_PIXEL_SIZE_MM`."""
    lo, hi = PLAUSIBLE_PIXEL_SIZE_MM
    try:
        v = float(value_mm)
    except (TypeError, ValueError):
        return f"pixel size {value_mm!r} is not a number"
    if not math.isfinite(v) or v <= 0:
        return f"pixel size {value_mm!r} is not a positive number"
    if not lo <= v <= hi:
        return (f"pixel size {v:g} mm is outside the plausible range {lo:g}-{hi:g} mm per pixel "
                "(a typo or a unit slip?); correct it and measure this image again")
    return None


def ellipse_in_mm(ellipse: Ellipse, dx: float, dy: float) -> Ellipse:
    """Exact image of a pixel ellipse under ``x * dx, y * dy`` (mm per pixel along x and y)."""
    ca, sa = math.cos(ellipse.angle), math.sin(ellipse.angle)
    # Columns: the semi-axis vectors a*(cos, sin) and b*(-sin, cos), scaled to mm.
    m = np.array([[dx * ellipse.a * ca, -dx * ellipse.b * sa],
                  [dy * ellipse.a * sa, dy * ellipse.b * ca]])
    u, s, _ = np.linalg.svd(m)
    angle = math.atan2(u[1, 0], u[0, 0])
    return Ellipse.normalized(ellipse.cx * dx, ellipse.cy * dy, s[0], s[1], angle)


def fit_in_mm(points_px: np.ndarray, dx: float, dy: float) -> Ellipse:
    """Robust ellipse fit of boundary points ``(x, y)`` in pixels, done in millimetres."""
    pts = np.asarray(points_px, dtype=np.float64) * np.array([dx, dy])
    # fit_ellipse_to_points rejects outliers beyond 3 units: 3 pixels of the finer axis.
    ellipse, _ = fit_ellipse_to_points(pts, outlier_px=3.0 * min(dx, dy))
    return ellipse


def head_ellipse_in_mm(ellipse: Ellipse, contour: np.ndarray | None, dx: float, dy: float) -> Ellipse:
    """The head in mm: refit on the contour when there is one, else map the ellipse."""
    if contour is not None and len(contour) >= 5 and not math.isclose(dx, dy, rel_tol=1e-9):
        try:
            return fit_in_mm(contour, dx, dy)
        except EllipseFitError:
            pass
    return ellipse_in_mm(ellipse, dx, dy)
