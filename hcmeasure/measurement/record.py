"""The measured head: a fitted ellipse and a calibration turned into every number an
output shows, computed once.

:func:`measure_head` takes what a model (or a mask fit) found, a
:class:`~hcmeasure.measurement.head.HeadMeasurement` with its ellipse in pixels, and the
:class:`PixelCalibration` of the scan, and returns a :class:`MeasuredHead`:

* ``ellipse_px``: the fitted ellipse in image pixels (hcmeasure's pixel-centre frame);
* ``ellipse_mm``: the same head in millimetres, ``(x, y) -> (x * dx, y * dy)``. With square
  pixels it is ``ellipse_px`` scaled; with non-square ones it is refitted in millimetre
  space (:func:`~hcmeasure.measurement.spacing.head_ellipse_in_mm`), so its angle is its
  own and differs from the pixel ellipse's;
* ``hc_mm``, the perimeter of ``ellipse_mm`` (never the pixel perimeter times one
  factor), ``hc_px`` that of ``ellipse_px``; BPD, OFD and the cephalic index of
  ``ellipse_mm`` (:mod:`hcmeasure.measurement.biometry`);
* ``status``: the head's own (``no_head_detected``, ...), else ``invalid_pixel_size`` /
  ``missing_pixel_size`` when the calibration cannot give millimetres, else ``ok``, or
  ``review`` when a trust rule fires (:func:`~hcmeasure.measurement.trust.assess_head`),
  with the HC interval and the reasons;
* the gestational age estimated from HC, and the HC centile for a known gestational age.

``hcmeasure predict``, ``hcmeasure fit`` and the HC18 evaluator all measure through here;
:func:`hcmeasure.io.tables.format_measurement` only writes a record as a CSV row.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .biometry import HeadBiometry, head_biometry
from .ellipse import Ellipse
from .gestational_age import GAEstimate, estimate_ga
from .growth import HCForAge, KnownGA, hc_for_age
from .head import MEASURED_STATUSES, HeadMeasurement
from .spacing import head_ellipse_in_mm, pixel_size_problem
from .trust import TrustCalibration, assess_head

__all__ = [
    "PixelCalibration",
    "MeasurementOptions",
    "MeasuredHead",
    "ellipse_to_mm",
    "measurement_status",
    "measure_head",
]


@dataclass(frozen=True)
class PixelCalibration:
    """The pixel size a head is measured with: ``dx_mm`` along x (columns) and ``dy_mm``
    along y (rows), in mm per pixel, and ``source``, where it came from (e.g.
    ``dicom_us_region``, ``pixel_size_csv``). ``error`` says why a given pixel size cannot
    be used (then ``dx_mm`` and ``dy_mm`` are None). ``dy_mm`` None with ``dx_mm`` set means
    square pixels whose y spacing was not stated (the ``pixel_size_y_mm`` column stays
    empty)."""

    dx_mm: float | None = None
    dy_mm: float | None = None
    source: str = ""
    error: str | None = None

    @classmethod
    def from_value(cls, value_mm, source: str = "") -> "PixelCalibration":
        """Square pixels of ``value_mm``; None is no calibration, a value that is not a
        plausible pixel size (:func:`~hcmeasure.measurement.spacing.pixel_size_problem`) an
        ``error``."""
        if value_mm is None:
            return cls()
        problem = pixel_size_problem(value_mm)
        if problem:
            return cls(source=source, error=problem)
        return cls(float(value_mm), float(value_mm), source)

    @property
    def usable(self) -> bool:
        """True when millimetres can be measured with it."""
        return self.dx_mm is not None and self.error is None

    @property
    def spacing_mm(self) -> tuple[float, float]:
        """``(dx, dy)`` in mm per pixel (``dy`` = ``dx`` when not stated); needs :attr:`usable`."""
        return self.dx_mm, self.dx_mm if self.dy_mm is None else self.dy_mm

    @property
    def square(self) -> bool:
        dx, dy = self.spacing_mm
        return abs(dx - dy) <= 1e-12 * max(dx, dy)


@dataclass(frozen=True)
class MeasurementOptions:
    """How a head is measured: ``perimeter_formula`` (Ramanujan's 1 or 2, see
    :func:`~hcmeasure.measurement.ellipse.ramanujan_perimeter`), ``ga_formula`` (a name of
    :data:`~hcmeasure.measurement.gestational_age.FORMULAS`, or None for no gestational
    age) and ``trust`` (a :class:`~hcmeasure.measurement.trust.TrustCalibration`, or None
    for no interval and no review)."""

    perimeter_formula: int = 2
    ga_formula: str | None = None
    trust: TrustCalibration | None = None


@dataclass(frozen=True)
class MeasuredHead:
    """One measured head and everything the outputs show of it (see the module docstring).

    Only ``filename`` and ``status`` are always set; ``ellipse_px`` is None when no head
    was fitted, ``ellipse_mm`` when the calibration cannot give millimetres. The HC,
    biometry and centile are derived from the ellipses, so they cannot disagree with them.
    """

    filename: str
    status: str
    ellipse_px: Ellipse | None = None
    ellipse_mm: Ellipse | None = None
    calibration: PixelCalibration = PixelCalibration()
    score: float | None = None
    fit_iou: float | None = None
    perimeter_formula: int = 2
    ga: GAEstimate | None = None
    hc_interval_mm: tuple[float, float] | None = None
    review_reasons: tuple[str, ...] = ()
    known_ga: KnownGA | None = None
    pregnancy: str = ""

    @property
    def measured(self) -> bool:
        """True for a status whose HC is written in full (``ok``, ``review``)."""
        return self.status in MEASURED_STATUSES

    @property
    def hc_px(self) -> float | None:
        """Perimeter of the pixel ellipse, in pixels."""
        return None if self.ellipse_px is None else self.ellipse_px.perimeter(self.perimeter_formula)

    @property
    def hc_mm(self) -> float | None:
        """Head circumference in mm: the perimeter of the millimetre ellipse."""
        return None if self.ellipse_mm is None else self.ellipse_mm.perimeter(self.perimeter_formula)

    @property
    def biometry(self) -> HeadBiometry | None:
        """BPD, OFD and cephalic index of the millimetre ellipse."""
        return None if self.ellipse_mm is None else head_biometry(self.ellipse_mm)

    @property
    def hc_for_known_ga(self) -> HCForAge | None:
        """HC z-score and centile at the known GA: only for a usable known GA (14+0 to
        40+0 weeks) and a measured HC in mm."""
        k = self.known_ga
        if k is None or not k.usable or not self.measured or self.hc_mm is None:
            return None
        return hc_for_age(self.hc_mm, k.days)


def ellipse_to_mm(ellipse_px: Ellipse, dx_mm: float, dy_mm: float, contour_px: np.ndarray | None = None) -> Ellipse:
    """The head in millimetres: ``ellipse_px`` scaled for square pixels; for non-square
    ones refitted in mm space on ``contour_px`` (the fit's boundary points, pixels) when
    given, else the exact image of the ellipse (:func:`~hcmeasure.measurement.spacing.head_ellipse_in_mm`)."""
    if abs(dx_mm - dy_mm) <= 1e-12 * max(dx_mm, dy_mm):
        return ellipse_px.scaled(dx_mm)
    return head_ellipse_in_mm(ellipse_px, contour_px, dx_mm, dy_mm)


def measurement_status(head_status: str, calibration: PixelCalibration) -> str:
    """The row status before the trust assessment: the head's own unless it is ``ok``;
    then ``invalid_pixel_size`` for a calibration with an error, ``missing_pixel_size``
    without one, else ``ok``."""
    if head_status != "ok":
        return head_status
    if calibration.error:
        return "invalid_pixel_size"
    if calibration.dx_mm is None:
        return "missing_pixel_size"
    return "ok"


def measure_head(
    filename: str,
    head: HeadMeasurement | None,
    calibration: PixelCalibration = PixelCalibration(),
    options: MeasurementOptions = MeasurementOptions(),
    *,
    gray: np.ndarray | None = None,
    known_ga: KnownGA | None = None,
    pregnancy: str = "",
) -> MeasuredHead:
    """The :class:`MeasuredHead` of ``head`` (None: no head detected) on the scan
    ``gray`` ((H, W), for the trust features; may be None) measured with ``calibration``.

    A status other than ``ok``/``review`` keeps the pixel ellipse (when there is one) but
    gets no GA, interval or centile; without a usable calibration HC stays in pixels."""
    if head is None:
        head = HeadMeasurement(None, None, None, "no_head_detected")
    status = measurement_status(head.status, calibration)
    ellipse_mm = None
    if head.ellipse is not None and calibration.usable:
        ellipse_mm = ellipse_to_mm(head.ellipse, *calibration.spacing_mm, head.contour)
    record = MeasuredHead(
        filename, status, head.ellipse, ellipse_mm, calibration, head.score, head.fit_iou,
        options.perimeter_formula, known_ga=known_ga, pregnancy=pregnancy or "",
    )
    if record.hc_mm is None:
        return record
    if status == "ok" and options.trust is not None:
        assessment = assess_head(head, gray, record.hc_mm, options.trust,
                                 None if calibration.square else ellipse_mm)
        record = dataclasses.replace(record, hc_interval_mm=assessment.interval_mm,
                                     review_reasons=tuple(assessment.reasons),
                                     status="review" if assessment.reasons else status)
    if record.measured and options.ga_formula:
        record = dataclasses.replace(record, ga=estimate_ga(record.hc_mm, options.ga_formula))
    return record
