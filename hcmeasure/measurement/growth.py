"""Head size for a known gestational age: the INTERGROWTH-21st fetal HC standard.

:mod:`hcmeasure.measurement.gestational_age` *dates* a pregnancy from HC (meant for
scans before about 26 weeks). This module answers the other question: when the
gestational age (GA) is already known, is the head the size expected for it?

Standard: Papageorghiou AT, Ohuma EO, Altman DG, et al., "International standards
for fetal growth based on serial ultrasound measurements: the Fetal Growth
Longitudinal Study of the INTERGROWTH-21st Project", Lancet 2014;384:869-879
(doi:10.1016/S0140-6736(14)61490-2). Head circumference in mm, GA in exact weeks
(days / 7), valid from 14+0 to 40+0 weeks::

    mean = -28.2849 + 1.69267 GA^2 - 0.397485 GA^2 ln(GA)
    SD   = 1.98735 + 0.0136772 GA^3 - 0.00726264 GA^3 ln(GA) + 0.000976253 GA^3 ln(GA)^2

HC is normally distributed at each age in this standard, so ``z = (HC - mean) / SD``
and the centile is ``100 * Phi(z)``; ``hc_centile_flag`` is ``below_3rd`` (centile
< 3), ``above_97th`` (> 97) or ``within``. The equations are checked in
``tests/measurement/test_growth.py`` against the centile and z-score tables that
INTERGROWTH-21st publishes for the standard, at every whole week from 14 to 40.

A known GA (:class:`KnownGA`) comes from ``--ga``, a ``ga`` column of the pixel-size
CSV or a DICOM file's ``LastMenstrualDate`` with its acquisition date (see
:func:`ga_from_dates`); :func:`resolve_known_ga` picks one per image in that order.
Its text is weeks+days, ``32+4`` (or whole weeks, ``32``).
"""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from statistics import NormalDist
from typing import Mapping

import numpy as np

__all__ = [
    "GA_STANDARD_RANGE_DAYS",
    "GAParseError",
    "KnownGA",
    "HCForAge",
    "parse_ga",
    "format_ga",
    "known_ga",
    "known_ga_from_days",
    "ga_from_dates",
    "resolve_known_ga",
    "intergrowth_hc_mean_sd_mm",
    "intergrowth_hc_centile_mm",
    "hc_for_age",
]

#: The INTERGROWTH-21st fetal growth standard covers 14+0 to 40+0 weeks (days).
GA_STANDARD_RANGE_DAYS = (14 * 7, 40 * 7)

_NORMAL = NormalDist()
_Z_3RD, _Z_97TH = _NORMAL.inv_cdf(0.03), _NORMAL.inv_cdf(0.97)
_GA_TEXT = re.compile(r"^\s*(\d{1,2})\s*(?:\+\s*(\d)\s*)?$")


class GAParseError(ValueError):
    """A gestational age text that is not weeks+days; the message says what is expected."""


def parse_ga(text: str) -> int:
    """GA in days from ``"32+4"`` (weeks+days, days 0-6) or ``"32"`` (whole weeks)."""
    m = _GA_TEXT.match(str(text))
    if m is None or (m.group(2) is not None and int(m.group(2)) > 6):
        raise GAParseError(
            f"{str(text)!r} is not a gestational age in weeks+days; write it as e.g. 32+4 "
            "(32 weeks and 4 days; days 0-6) or 32 (whole weeks)"
        )
    return int(m.group(1)) * 7 + int(m.group(2) or 0)


def format_ga(days: float) -> str:
    """``"W+D"`` of a GA in days (rounded to whole days)."""
    total = int(round(days))
    return f"{total // 7}+{total % 7}"


@dataclass(frozen=True)
class KnownGA:
    """A known gestational age for one image.

    ``days`` is None unless ``status`` is ``"ok"`` or ``"ga_out_of_range"`` (parsed but
    outside 14+0 to 40+0 weeks); ``text`` is ``W+D`` when parsed, else the text as
    given; ``source`` says where it came from (``ga_arg``, ``ga_csv``, ``dicom_lmp``).
    """

    days: float | None
    source: str
    status: str  # "ok", "invalid_ga", "ga_out_of_range"
    text: str
    message: str = ""

    @property
    def usable(self) -> bool:
        return self.status == "ok"


def known_ga_from_days(days: float, source: str) -> KnownGA:
    """:class:`KnownGA` from a number of days, range-checked against the standard."""
    lo, hi = GA_STANDARD_RANGE_DAYS
    text = format_ga(days)
    if not lo <= days <= hi:
        return KnownGA(days, source, "ga_out_of_range", text,
                       f"GA {text} is outside the INTERGROWTH-21st HC standard (14+0 to 40+0 weeks); "
                       "no centile is given")
    return KnownGA(float(days), source, "ok", text)


def known_ga(text: str, source: str) -> KnownGA:
    """:class:`KnownGA` from weeks+days text (status ``invalid_ga`` when it does not parse)."""
    try:
        days = parse_ga(text)
    except GAParseError as exc:
        return KnownGA(None, source, "invalid_ga", str(text).strip(), str(exc))
    return known_ga_from_days(days, source)


def ga_from_dates(lmp: datetime.date, scan: datetime.date) -> int:
    """GA in days on ``scan`` from the first day of the last menstrual period."""
    return (scan - lmp).days


def resolve_known_ga(name: str, file_name: str, ga_arg: KnownGA | None,
                     ga_texts: Mapping[str, str] | None, from_file: KnownGA | None) -> KnownGA | None:
    """The known GA of one image: ``--ga`` first, then the CSV's ``ga`` (by row name, e.g.
    ``scan.dcm#2``, then file name), then the DICOM file's own; None when there is none."""
    if ga_arg is not None:
        return ga_arg
    if ga_texts:
        text = ga_texts.get(name) or ga_texts.get(file_name)
        if text:
            return known_ga(text, "ga_csv")
    return from_file


def intergrowth_hc_mean_sd_mm(ga_weeks):
    """Mean and SD of HC (mm) at ``ga_weeks`` (exact weeks; scalar or array), INTERGROWTH-21st."""
    ga = np.asarray(ga_weeks, dtype=np.float64)
    ln = np.log(ga)
    ga2, ga3 = ga**2, ga**3
    mean = -28.2849 + 1.69267 * ga2 - 0.397485 * ga2 * ln
    sd = 1.98735 + 0.0136772 * ga3 - 0.00726264 * ga3 * ln + 0.000976253 * ga3 * ln**2
    if mean.ndim == 0:
        return float(mean), float(sd)
    return mean, sd


def intergrowth_hc_centile_mm(ga_weeks, centile: float):
    """HC (mm) at ``centile`` (0-100, exclusive) for ``ga_weeks`` (scalar or array)."""
    if not 0.0 < centile < 100.0:
        raise ValueError(f"centile must be between 0 and 100, got {centile}")
    mean, sd = intergrowth_hc_mean_sd_mm(ga_weeks)
    return mean + _NORMAL.inv_cdf(centile / 100.0) * sd


@dataclass(frozen=True)
class HCForAge:
    """HC against the standard at its known GA: z-score, centile (0-100) and flag."""

    zscore: float
    centile: float
    flag: str  # "below_3rd", "above_97th", "within"


def hc_for_age(hc_mm: float, ga_days: float) -> HCForAge:
    """z-score and centile of ``hc_mm`` at ``ga_days`` (no range check: see :func:`known_ga`)."""
    mean, sd = intergrowth_hc_mean_sd_mm(float(ga_days) / 7.0)
    z = (float(hc_mm) - mean) / sd
    flag = "below_3rd" if z < _Z_3RD else "above_97th" if z > _Z_97TH else "within"
    return HCForAge(z, 100.0 * _NORMAL.cdf(z), flag)

