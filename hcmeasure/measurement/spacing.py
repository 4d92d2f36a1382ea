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

__all__ = ["ellipse_in_mm", "fit_in_mm", "head_ellipse_in_mm"]


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
