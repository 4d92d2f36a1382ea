"""Gestational age from HC: the published equations, their ranges and the uncertainty.

Two kinds of expected values: published figures (the INTERGROWTH-21st paper's worked
example; Hadlock's table of mean HC by menstrual age) and the published equations
evaluated by hand (to 0.01 day / 0.001 week), so a change of coefficient, unit (mm vs
cm, days vs weeks) or log base fails.
"""
import math

import pytest

from hcmeasure.measurement.gestational_age import (
    DEFAULT_FORMULA,
    FORMULAS,
    HADLOCK_2SD_WEEKS,
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


def test_intergrowth_reproduces_the_papers_worked_example():
    # Papageorghiou et al. 2016 (doi:10.1002/uog.15894): HC 250 mm -> 189.8 days.
    assert round(intergrowth_ga_days(250.0), 1) == 189.8
    # 189.8 days is 27+1 weeks, past the 14+0..25+6 window the equation is meant for.
    ga = estimate_ga(250.0)
    assert ga.days is None and ga.status == "hc_above_range" and "27+1" in ga.message


# Hadlock's table of mean head circumference (cm) by menstrual age (weeks), 12-40 weeks
# in half-week steps (Hadlock 1984, as reproduced in obstetric reference tables).
HADLOCK_HC_FOR_AGE = [
    (12.0, 6.8), (12.5, 7.5), (13.0, 8.2), (13.5, 8.9), (14.0, 9.7), (14.5, 10.4),
    (15.0, 11.0), (15.5, 11.7), (16.0, 12.4), (16.5, 13.1), (17.0, 13.8), (17.5, 14.4),
    (18.0, 15.1), (18.5, 15.8), (19.0, 16.4), (19.5, 17.0), (20.0, 17.7), (20.5, 18.3),
    (21.0, 18.9), (21.5, 19.5), (22.0, 20.1), (22.5, 20.7), (23.0, 21.3), (23.5, 21.9),
    (24.0, 22.4), (24.5, 23.0), (25.0, 23.5), (25.5, 24.1), (26.0, 24.6), (26.5, 25.1),
    (27.0, 25.6), (27.5, 26.1), (28.0, 26.6), (28.5, 27.1), (29.0, 27.5), (29.5, 28.0),
    (30.0, 28.4), (30.5, 28.8), (31.0, 29.3), (31.5, 29.7), (32.0, 30.1), (32.5, 30.4),
    (33.0, 30.8), (33.5, 31.2), (34.0, 31.5), (34.5, 31.8), (35.0, 32.2), (35.5, 32.5),
    (36.0, 32.8), (36.5, 33.0), (37.0, 33.3), (37.5, 33.5), (38.0, 33.8), (38.5, 34.0),
    (39.0, 34.2), (39.5, 34.4), (40.0, 34.6),
]


def _hadlock_2sd(weeks):
    return next(sd2 for lo, hi, sd2 in HADLOCK_2SD_WEEKS if lo <= weeks < hi)


def test_hadlock_dates_the_published_hc_table_within_its_variability():
    """Age from the table's mean HC (mm) comes back within the +-2 SD of the tabulated age.

    The table is the regression of HC on age, the dating equation that of age on HC, so
    they need not agree exactly; a unit slip (HC read as mm in the cm equation) would
    put every row tens of weeks off."""
    errors = []
    for weeks, hc_cm in HADLOCK_HC_FOR_AGE:
        estimate = hadlock_ga_weeks(hc_cm * 10.0)
        assert abs(estimate - weeks) <= _hadlock_2sd(weeks), (weeks, hc_cm, estimate)
        errors.append(estimate - weeks)
    mean_abs = sum(abs(e) for e in errors) / len(errors)
    assert mean_abs < 1.0  # 0.69 weeks over 12-40 weeks
    # The estimates increase with the table's HC: the dating curve is monotonic.
    estimates = [hadlock_ga_weeks(hc * 10.0) for _, hc in HADLOCK_HC_FOR_AGE]
    assert all(b > a for a, b in zip(estimates, estimates[1:]))


def test_hadlock_uncertainty_by_age_band():
    assert estimate_ga(150.0, "hadlock").uncertainty_days == pytest.approx(1.48 * 7)  # 18.07 weeks
    assert estimate_ga(300.0, "hadlock").uncertainty_days == pytest.approx(2.98 * 7)  # 33.26 weeks
    assert estimate_ga(340.0, "hadlock").uncertainty_days == pytest.approx(3.20 * 7)  # 39.11 weeks
    assert [sd2 for _, _, sd2 in HADLOCK_2SD_WEEKS] == [1.19, 1.48, 2.06, 2.98, 3.20]


def test_intergrowth_uncertainty_grows_from_7_to_14_days():
    # 95 % prediction interval: about +-6-7 days at 14 weeks, +-12-14 days at 26 weeks.
    assert estimate_ga(97.8).uncertainty_days == pytest.approx(7.0, abs=0.02)      # 14+0
    assert estimate_ga(175.0).uncertainty_days == pytest.approx(7.0 + 7.0 * (141.55 - 98) / 84, abs=0.01)
    assert estimate_ga(237.5).uncertainty_days == pytest.approx(13.9, abs=0.05)    # 25+6
    assert estimate_ga(250.0).uncertainty_days is None  # no GA, no interval


def test_an_hc_of_kilometres_is_above_the_range_not_an_overflow():
    """A pixel size of 1e9 mm gives an HC whose GA equation overflows; that is a status."""
    for formula in ("intergrowth", "hadlock"):
        ga = estimate_ga(1e12, formula)
        assert ga.status == "hc_above_range" and ga.days is None
