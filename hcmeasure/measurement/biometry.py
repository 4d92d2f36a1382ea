"""Head biometry from the fitted head ellipse: BPD, OFD and the cephalic index.

What the numbers are (all from the head ellipse in **millimetre space**, so that
non-square pixels are handled: see :mod:`hcmeasure.measurement.spacing`):

* ``ofd_mm``, occipito-frontal diameter = the ellipse's major axis ``2 a``;
* ``bpd_mm``, biparietal diameter = its minor axis ``2 b``;
* ``cephalic_index`` = ``100 * BPD / OFD`` (dimensionless).

The ellipse follows the skull outline (hcmeasure's is fitted to the segmented head,
HC18's reference to the annotators' ring on the skull), so both diameters are
measured **outer-to-outer at that ellipse**. Many charts (Hadlock's among them) use
BPD with the calipers placed outer-to-inner (outer edge of the near parietal bone to
the inner edge of the far one), which is smaller by about one bone thickness.
:func:`bpd_outer_inner_mm` estimates it with the regression of Wong L, Paul E, Murday
HKM, et al., "Biparietal diameter measurements using the outer-to-outer versus
outer-to-inner measurement: a question of pedantry?", Australas J Ultrasound Med
2018;21(3):161-168, doi:10.1002/ajum.12091 (543 fetuses, 14-40 weeks)::

    BPD_oi = -0.403458 + 0.9714153 * BPD_oo

The paper's abstract gives no unit; hcmeasure applies it in millimetres (in mm it
makes BPD_oi 1.3 mm smaller at 30 mm and 3.0 mm smaller at 90 mm, about one skull
bone; read in cm it would be 5-7 mm, which no fetal skull is). The estimate is
written as ``bpd_outer_inner_est_mm``; it is a population regression, not a
measurement of this skull's bone.

Cephalic index range: Hadlock FP, Deter RL, Carpenter RJ, Park SK, "Estimating
fetal age: effect of head shape on BPD", AJR 1981;137:83-85: mean 78.3 from 316
obstetric scans at 14-40 weeks, and an index more than 1 SD from the mean (below 74 or above
83) "may be associated with a significant alteration in the BPD measurement expected
for a given gestational age", when HC is the better measure. hcmeasure reports
``ci_flag`` = ``dolichocephaly`` (< 74), ``brachycephaly`` (> 83) or ``within``; it
describes the head's shape and never changes the measurement ``status``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .ellipse import Ellipse

__all__ = [
    "CEPHALIC_INDEX_RANGE",
    "HeadBiometry",
    "head_biometry",
    "cephalic_index_flag",
    "bpd_outer_inner_mm",
    "axis_endpoints",
    "axis_endpoints_px",
]

#: Cephalic index outside this range is flagged (Hadlock et al. 1981: mean 78.3 +- 1 SD).
CEPHALIC_INDEX_RANGE = (74.0, 83.0)

#: Wong et al. 2018: BPD outer-to-inner = intercept + slope * BPD outer-to-outer (mm).
_WONG_2018_INTERCEPT_MM = -0.403458
_WONG_2018_SLOPE = 0.9714153


def cephalic_index_flag(cephalic_index: float) -> str:
    """``"dolichocephaly"`` below 74, ``"brachycephaly"`` above 83, else ``"within"``."""
    lo, hi = CEPHALIC_INDEX_RANGE
    if cephalic_index < lo:
        return "dolichocephaly"
    if cephalic_index > hi:
        return "brachycephaly"
    return "within"


def bpd_outer_inner_mm(bpd_outer_outer_mm: float) -> float:
    """Outer-to-inner BPD estimated from the outer-to-outer one (mm), Wong et al. 2018."""
    return _WONG_2018_INTERCEPT_MM + _WONG_2018_SLOPE * float(bpd_outer_outer_mm)


@dataclass(frozen=True)
class HeadBiometry:
    """BPD and OFD (mm, outer-to-outer at the head ellipse) and the cephalic index."""

    bpd_mm: float
    ofd_mm: float

    @property
    def cephalic_index(self) -> float:
        return 100.0 * self.bpd_mm / self.ofd_mm

    @property
    def ci_flag(self) -> str:
        return cephalic_index_flag(self.cephalic_index)

    @property
    def bpd_outer_inner_est_mm(self) -> float:
        return bpd_outer_inner_mm(self.bpd_mm)


def head_biometry(ellipse_mm: Ellipse) -> HeadBiometry:
    """Biometry of the head ellipse given **in millimetres** (OFD = 2a, BPD = 2b)."""
    return HeadBiometry(bpd_mm=2.0 * ellipse_mm.b, ofd_mm=2.0 * ellipse_mm.a)


def axis_endpoints(ellipse: Ellipse) -> tuple[np.ndarray, np.ndarray]:
    """End points of the major (OFD) and minor (BPD) axes, each a ``(2, 2)`` array of
    ``(x, y)`` rows, in the ellipse's own units and frame."""
    ca, sa = math.cos(ellipse.angle), math.sin(ellipse.angle)
    c = np.array([ellipse.cx, ellipse.cy])
    major = np.array([c - ellipse.a * np.array([ca, sa]), c + ellipse.a * np.array([ca, sa])])
    minor = np.array([c - ellipse.b * np.array([-sa, ca]), c + ellipse.b * np.array([-sa, ca])])
    return major, minor


def axis_endpoints_px(ellipse_mm: Ellipse, dx_mm: float, dy_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """The mm ellipse's OFD and BPD end points in image pixels (``x / dx``, ``y / dy``).

    With non-square pixels these are not the pixel ellipse's own axes: the diameters
    that are measured are the millimetre ones, drawn where they lie on the image.
    """
    scale = np.array([1.0 / float(dx_mm), 1.0 / float(dy_mm)])
    major, minor = axis_endpoints(ellipse_mm)
    return major * scale, minor * scale
