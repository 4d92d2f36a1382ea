"""Gestational age from HC: the published equations, their ranges and the uncertainty.

Expected values are the published equations evaluated by hand (to 0.01 day / 0.001
week), so a change of coefficient, unit (mm vs cm, days vs weeks) or log base fails.
"""
import math

import pytest

from hcmeasure.measurement.gestational_age import (
    DEFAULT_FORMULA,
    FORMULAS,
    estimate_ga,
    hadlock_ga_weeks,
    intergrowth_ga_days,
)


@pytest.mark.parametrize("hc_mm, days", [
    (100.0, 99.32),   # 14+1
    (150.0, 127.27),  # 18+1
    (175.0, 141.55),  # 20+2
    (200.0, 156.49),  # 22+2
    (230.0, 175.79),  # 25+1
])
def test_intergrowth_equation(hc_mm, days):
    # Papageorghiou et al. 2016: ln GA(days) = 0.05970 (ln HC)^2 + 6.409e-9 HC^3 + 3.3258, HC in mm
    assert intergrowth_ga_days(hc_mm) == pytest.approx(days, abs=0.01)
    by_hand = math.exp(0.05970 * math.log(hc_mm) ** 2 + 0.000000006409 * hc_mm ** 3 + 3.3258)
    assert intergrowth_ga_days(hc_mm) == pytest.approx(by_hand, rel=1e-12)


@pytest.mark.parametrize("hc_mm, weeks", [
    (100.0, 14.660),  # 8.96 + 0.540*10 + 0.0003*1000
    (175.0, 20.018),
    (200.0, 22.160),  # 8.96 + 10.8 + 2.4
    (300.0, 33.260),  # 8.96 + 16.2 + 8.1
    (340.0, 39.111),  # 8.96 + 18.36 + 11.7912
])
def test_hadlock_equation_in_centimetres(hc_mm, weeks):
    # Hadlock et al. 1984: MA(weeks) = 8.96 + 0.540 HC + 0.0003 HC^3, HC in cm
    assert hadlock_ga_weeks(hc_mm) == pytest.approx(weeks, abs=0.001)


def test_default_is_intergrowth_and_weeks_days_split():
    assert DEFAULT_FORMULA == "intergrowth"
    ga = estimate_ga(175.0)
    assert ga.formula == "intergrowth" and ga.status == "ok"
    assert ga.weeks_days == (20, 2)  # 141.55 days -> 142 days = 20 weeks 2 days
    assert estimate_ga(200.0, "hadlock").weeks_days == (22, 1)  # 22.160 weeks = 155.12 days -> 155 = 22+1


@pytest.mark.parametrize("formula, hc_mm, status", [
    ("intergrowth", 90.0, "hc_below_range"),
    ("intergrowth", 260.0, "hc_above_range"),   # about 28 weeks: past the INTERGROWTH dating window
    ("hadlock", 80.0, "hc_below_range"),
    ("hadlock", 370.0, "hc_above_range"),
])
def test_outside_the_range_there_is_no_ga_and_the_status_says_why(formula, hc_mm, status):
    ga = estimate_ga(hc_mm, formula)
    assert ga.days is None and ga.weeks_days is None
    assert ga.status == status
    assert f"{hc_mm:.1f} mm" in ga.message and FORMULAS[formula].label in ga.message


def test_range_edges():
    ig = FORMULAS["intergrowth"]
    assert (ig.min_days, ig.max_days) == (98.0, 181.0)  # 14+0 to 25+6 weeks
    assert estimate_ga(97.6).status == "hc_below_range" and estimate_ga(97.8).status == "ok"
    assert estimate_ga(237.5).status == "ok" and estimate_ga(237.7).status == "hc_above_range"
    assert estimate_ga(89.5, "hadlock").status == "ok" and estimate_ga(89.3, "hadlock").status == "hc_below_range"
    assert estimate_ga(357.6, "hadlock").status == "ok" and estimate_ga(357.8, "hadlock").status == "hc_above_range"


def test_missing_or_invalid_hc_and_unknown_formula():
    assert estimate_ga(None).status == "no_hc"
    assert estimate_ga(float("nan")).status == "no_hc"
    assert estimate_ga(-3.0).status == "no_hc"
    with pytest.raises(ValueError, match="unknown GA formula"):
        estimate_ga(150.0, "robinson")


def test_hadlock_uncertainty_by_age_band():
    assert estimate_ga(150.0, "hadlock").uncertainty_days == pytest.approx(1.48 * 7)  # 18.07 weeks
    assert estimate_ga(300.0, "hadlock").uncertainty_days == pytest.approx(2.98 * 7)  # 33.26 weeks
    assert estimate_ga(175.0).uncertainty_days is None  # not encoded for INTERGROWTH-21st
