"""Geometry of the head: ellipse fit on masks, perimeter, HC in millimetres.

The measured head as every output shows it (HC, biometry, status, GA) is built in
:mod:`hcmeasure.measurement.record`.
"""
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
    """HC in mm of a head ellipse in pixels on square pixels of ``pixel_size_mm`` (mm per
    pixel): the perimeter of the millimetre ellipse, as :class:`~hcmeasure.measurement.record.MeasuredHead`
    computes it."""
    from .record import ellipse_to_mm

    return ellipse_to_mm(ellipse, float(pixel_size_mm), float(pixel_size_mm)).perimeter(formula)
