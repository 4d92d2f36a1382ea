"""Geometry of the head: ellipse fit on masks, perimeter, HC in millimetres."""
from .ellipse import (  # noqa: F401
    Ellipse,
    EllipseFit,
    EllipseFitError,
    ellipse_mask,
    ellipse_polygon,
    fit_ellipse,
    fit_ellipse_to_points,
    is_outline_mask,
    ramanujan_perimeter,
)


def head_circumference_mm(ellipse: Ellipse, pixel_size_mm: float, formula: int = 2) -> float:
    """HC in mm: Ramanujan perimeter of ``ellipse`` (pixels) times the pixel size (mm/pixel)."""
    return ramanujan_perimeter(ellipse.a, ellipse.b, formula) * float(pixel_size_mm)
