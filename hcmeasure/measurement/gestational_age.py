"""Gestational age (GA) from head circumference, with published formulas.

Two formulas, chosen by name:

``"intergrowth"`` (default)
    INTERGROWTH-21st, Papageorghiou AT, Kemp B, Stones W, et al. "Ultrasound-based
    gestational-age estimation in late pregnancy." Ultrasound Obstet Gynecol
    2016;48:719-726 (doi:10.1002/uog.15894), the head-circumference-only equation::

        log_e(GA) = 0.05970 * (log_e HC)^2 + 0.000000006409 * HC^3 + 3.3258

    with GA in days and HC in millimetres (the paper's worked example: HC 250 mm gives
    189.8 days). It is meant for scans taken from 14+0 to 25+6 weeks (98 to 181 days)
    in women first seen after the first trimester, so hcmeasure gives a GA only while
    the estimate lies in that window (HC from about 97.7 to 237.6 mm). Uncertainty: the
    paper reports a 95 % prediction interval of about +-6-7 days at 14 weeks and
    +-12-14 days at 26 weeks; hcmeasure reports the upper figures, interpolated
    linearly in GA between them (7 days at 14+0 weeks, 14 days at 26+0 weeks).

``"hadlock"``
    Hadlock FP, Deter RL, Harrist RB, Park SK. "Estimating fetal age: computer-assisted
    analysis of multiple fetal growth parameters." Radiology 1984;152:497-501, the
    head-circumference equation::

        MA = 8.96 + 0.540 * HC + 0.0003 * HC^3

    with menstrual age MA in weeks and HC in centimetres. The study measured 361
    fetuses between 14 and 42 menstrual weeks, so the estimate is given only between
    14 and 42 weeks (HC from about 89.4 to 357.7 mm). Uncertainty: the paper's +-2 SD
    variability of the HC age estimate by menstrual-age interval
    (:data:`HADLOCK_2SD_WEEKS`).

Outside its range a formula gives no GA; :attr:`GAEstimate.status` says which side
and by how much. :attr:`GAEstimate.uncertainty_days` is the half-width, in days, of
the formula's published ~95 % interval at the estimated age.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "FORMULAS",
    "DEFAULT_FORMULA",
    "HADLOCK_2SD_WEEKS",
    "INTERGROWTH_95PI_DAYS",
    "GAEstimate",
    "GestationalAgeFormula",
    "intergrowth_ga_days",
    "hadlock_ga_weeks",
    "estimate_ga",
]


def intergrowth_ga_days(hc_mm: float) -> float:
    """INTERGROWTH-21st (Papageorghiou et al. 2016), HC-only equation, no range check.

    ``GA [days] = exp(0.05970 (ln HC)^2 + 0.000000006409 HC^3 + 3.3258)``, HC in mm.
    """
    hc = float(hc_mm)
    if not hc > 0:
        raise ValueError(f"head circumference must be positive, got {hc_mm}")
    return math.exp(0.05970 * math.log(hc) ** 2 + 0.000000006409 * hc**3 + 3.3258)


def hadlock_ga_weeks(hc_mm: float) -> float:
    """Hadlock et al. 1984, HC equation, no range check.

    ``MA [weeks] = 8.96 + 0.540 HC + 0.0003 HC^3``, HC in **cm** (converted from mm here).
    """
    hc = float(hc_mm)
    if not hc > 0:
        raise ValueError(f"head circumference must be positive, got {hc_mm}")
    cm = hc / 10.0
    return 8.96 + 0.540 * cm + 0.0003 * cm**3


#: Hadlock 1984 variability of the HC-based age (+-2 SD, weeks) by menstrual-age
#: interval (lower bound inclusive, upper exclusive), from the +-2 SD column of the
#: "GA by HC - Hadlock 1984" table of the Hologic SuperSonic MACH obstetric references
#: (PM.LAB.175-A), as transcribed; the paper itself was not available to check. Some
#: reproductions of the paper's table give +-2.70 rather than +-3.20 for 36-42 weeks:
#: hcmeasure keeps the wider figure.
HADLOCK_2SD_WEEKS = (
    (12.0, 18.0, 1.19),
    (18.0, 24.0, 1.48),
    (24.0, 30.0, 2.06),
    (30.0, 36.0, 2.98),
    (36.0, 42.01, 3.20),
)

#: INTERGROWTH-21st (Papageorghiou et al. 2016) 95 % prediction-interval half-width
#: (days) at two gestational ages (days): the upper ends of the reported ranges
#: (6-7 days at 14 weeks, 12-14 days at 26 weeks). Linear in between.
INTERGROWTH_95PI_DAYS = ((98.0, 7.0), (182.0, 14.0))


@dataclass(frozen=True)
class GestationalAgeFormula:
    name: str
    label: str
    reference: str
    min_days: float
    max_days: float

    def days(self, hc_mm: float) -> float:
        if self.name == "intergrowth":
            return intergrowth_ga_days(hc_mm)
        return hadlock_ga_weeks(hc_mm) * 7.0

    def uncertainty_days(self, days: float) -> float | None:
        """Half-width (days) of the published ~95 % interval at ``days``; None outside the range."""
        if self.name == "intergrowth":
            (d0, u0), (d1, u1) = INTERGROWTH_95PI_DAYS
            if self.min_days <= days <= self.max_days:
                return u0 + (u1 - u0) * (days - d0) / (d1 - d0)
            return None
        weeks = days / 7.0
        for lo, hi, sd2 in HADLOCK_2SD_WEEKS:
            if lo <= weeks < hi:
                return sd2 * 7.0
        return None


FORMULAS = {
    "intergrowth": GestationalAgeFormula(
        "intergrowth",
        "INTERGROWTH-21st",
        "Papageorghiou et al., Ultrasound Obstet Gynecol 2016;48:719-726 (HC-only equation)",
        98.0,
        181.0,
    ),
    "hadlock": GestationalAgeFormula(
        "hadlock",
        "Hadlock 1984",
        "Hadlock et al., Radiology 1984;152:497-501 (HC equation)",
        14.0 * 7,
        42.0 * 7,
    ),
}
DEFAULT_FORMULA = "intergrowth"


@dataclass(frozen=True)
class GAEstimate:
    """A GA estimate: ``days`` (None when not given) and why."""

    formula: str
    days: float | None
    status: str  # "ok", "hc_below_range", "hc_above_range", "no_hc"
    message: str = ""
    uncertainty_days: float | None = None

    @property
    def weeks_days(self) -> tuple[int, int] | None:
        """Completed weeks and remaining days of the rounded estimate (e.g. 20+3)."""
        if self.days is None:
            return None
        total = int(round(self.days))
        return total // 7, total % 7


def _fmt_wd(days: float) -> str:
    total = int(round(days))
    return f"{total // 7}+{total % 7}"


def estimate_ga(hc_mm: float | None, formula: str = DEFAULT_FORMULA) -> GAEstimate:
    """GA from HC (mm) with ``formula`` ("intergrowth" or "hadlock"), range-checked."""
    try:
        f = FORMULAS[formula]
    except KeyError:
        raise ValueError(f"unknown GA formula {formula!r}; choose one of {', '.join(FORMULAS)}") from None
    if hc_mm is None or not (math.isfinite(float(hc_mm)) and float(hc_mm) > 0):
        return GAEstimate(f.name, None, "no_hc", "no head circumference in mm")
    try:
        days = f.days(hc_mm)
    except OverflowError:  # an HC of kilometres (a pixel-size slip): far above any range
        days = math.inf
    lo, hi = f.min_days, f.max_days
    if days < lo or days > hi:
        side = "below" if days < lo else "above"
        return GAEstimate(
            f.name, None, f"hc_{side}_range",
            f"HC {float(hc_mm):.1f} mm gives {_fmt_wd(days) if math.isfinite(days) else 'no'} weeks, "
            f"{side} the {f.label} range "
            f"{_fmt_wd(lo)} to {_fmt_wd(hi)} weeks",
        )
    return GAEstimate(f.name, days, "ok", "", f.uncertainty_days(days))
