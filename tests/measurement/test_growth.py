"""Size for a known gestational age (hcmeasure.measurement.growth): the INTERGROWTH-21st
fetal HC standard reproduces its published tables, and known GAs are parsed strictly.

The reference values are INTERGROWTH-21st's own tables of the fetal HC standard
(Papageorghiou et al., Lancet 2014), "Head circumference: centiles" and "z-scores" in
mm at exact weeks, as the project publishes them (intergrowth21.tghn.org, files
GROW_Fetal-ct_hc_Table.pdf and GROW_Fetal-zs_hc_Table.pdf), rounded there to 0.1 mm.
"""
from __future__ import annotations

import datetime
from types import SimpleNamespace

import numpy as np
import pytest

from hcmeasure.measurement import growth
from hcmeasure.measurement.growth import (
    GAParseError,
    KnownGA,
    format_ga,
    ga_from_dates,
    hc_for_age,
    intergrowth_hc_centile_mm,
    intergrowth_hc_mean_sd_mm,
    known_ga,
    parse_ga,
    resolve_known_ga,
)

#: week -> HC (mm) at the 3rd, 5th, 10th, 50th, 90th, 95th, 97th centiles.
CENTILES = (3, 5, 10, 50, 90, 95, 97)
CENTILE_TABLE = {
    14: (87.4, 88.7, 90.7, 97.9, 105.0, 107.1, 108.4),
    18: (134.9, 136.6, 139.1, 147.9, 156.7, 159.2, 160.9),
    20: (158.5, 160.2, 163.0, 172.5, 182.0, 184.7, 186.5),
    24: (203.5, 205.4, 208.5, 219.1, 229.7, 232.7, 234.7),
    28: (243.6, 245.7, 248.9, 260.4, 271.8, 275.1, 277.2),
    32: (276.3, 278.5, 282.1, 294.4, 306.7, 310.2, 312.5),
    36: (299.2, 301.7, 305.6, 319.4, 333.2, 337.1, 339.6),
    40: (309.6, 312.7, 317.4, 333.9, 350.5, 355.2, 358.3),
}
#: week -> HC (mm) at z = -3, -2, -1, 0, 1, 2, 3.
Z_TABLE = {
    14: (81.1, 86.7, 92.3, 97.9, 103.5, 109.0, 114.6),
    22: (172.6, 180.5, 188.4, 196.3, 204.2, 212.1, 220.0),
    30: (250.6, 259.9, 269.1, 278.4, 287.6, 296.9, 306.1),
    38: (293.0, 304.7, 316.4, 328.1, 339.7, 351.4, 363.1),
    40: (295.2, 308.1, 321.0, 333.9, 346.9, 359.8, 372.7),
}
#: The tables are rounded to 0.1 mm: the equations must match them to within rounding.
TABLE_TOLERANCE_MM = 0.07


def table_misfit_mm() -> float:
    """Largest difference (mm) between the module's standard and both published tables."""
    worst = 0.0
    for week, values in CENTILE_TABLE.items():
        for c, published in zip(CENTILES, values):
            worst = max(worst, abs(intergrowth_hc_centile_mm(week, c) - published))
    for week, values in Z_TABLE.items():
        mean, sd = intergrowth_hc_mean_sd_mm(week)
        for z, published in zip(range(-3, 4), values):
            worst = max(worst, abs(mean + z * sd - published))
    return worst


def test_the_standard_reproduces_the_published_centile_and_z_score_tables():
    assert table_misfit_mm() < TABLE_TOLERANCE_MM


def test_a_log_base_slip_in_the_equations_fails_the_table_check(monkeypatch):
    # The same equations with log10 in place of the natural log: off by far more than rounding.
    slipped = SimpleNamespace(**{name: getattr(np, name) for name in ("asarray", "float64")}, log=np.log10)
    monkeypatch.setattr(growth, "np", slipped)
    assert table_misfit_mm() > 10.0


def test_age_in_days_or_hc_in_cm_cannot_pass_for_weeks_and_mm():
    # GA must be exact weeks: 32 weeks passed as 224 "weeks" is nowhere near the table.
    assert abs(intergrowth_hc_mean_sd_mm(32 * 7)[0] - 294.4) > 100
    # hc_for_age takes days and mm: the 50th centile at 32+0 is centile 50, the same HC in cm is not.
    assert hc_for_age(294.4, 32 * 7).centile == pytest.approx(50.0, abs=0.5)
    assert hc_for_age(29.44, 32 * 7).flag == "below_3rd"


def test_centile_and_flag_of_published_values():
    # At the published 3rd and 97th centiles the centile is 3 and 97 (to the tables' rounding).
    assert hc_for_age(276.3, 32 * 7).centile == pytest.approx(3.0, abs=0.2)
    assert hc_for_age(312.5, 32 * 7).centile == pytest.approx(97.0, abs=0.2)
    assert hc_for_age(271.0, 32 * 7).flag == "below_3rd"
    assert hc_for_age(294.4, 32 * 7).flag == "within"
    assert hc_for_age(318.0, 32 * 7).flag == "above_97th"
    # z-score: the published +2 SD at 22 weeks is z = 2.
    assert hc_for_age(212.1, 22 * 7).zscore == pytest.approx(2.0, abs=0.01)
    # Between whole weeks the age is exact weeks: 32+4 lies between the 32- and 33-week means.
    mid = intergrowth_hc_mean_sd_mm((32 * 7 + 4) / 7)[0]
    assert 294.4 < mid < 301.5


def test_centile_curves_are_arrays_for_the_chart():
    weeks = np.array([14.0, 20.0, 40.0])
    np.testing.assert_allclose(intergrowth_hc_centile_mm(weeks, 50), [97.9, 172.5, 333.9], atol=TABLE_TOLERANCE_MM)
    with pytest.raises(ValueError):
        intergrowth_hc_centile_mm(20, 100)


@pytest.mark.parametrize("text,days", [("32+4", 228), ("32", 224), (" 14 + 0 ", 98), ("40+0", 280), ("9+6", 69)])
def test_parse_ga_weeks_plus_days(text, days):
    assert parse_ga(text) == days
    assert format_ga(days) == f"{days // 7}+{days % 7}"


@pytest.mark.parametrize("text", ["32+7", "32-4", "32.5", "32w4d", "abc", "", "+4", "32+4+1"])
def test_malformed_ga_says_what_is_expected(text):
    with pytest.raises(GAParseError, match=r"32\+4") as info:
        parse_ga(text)
    assert repr(text) in str(info.value)


def test_known_ga_is_range_checked_against_14_to_40_weeks():
    assert known_ga("14+0", "ga_arg") == KnownGA(98.0, "ga_arg", "ok", "14+0")
    assert known_ga("40+0", "ga_csv").usable
    early, late = known_ga("13+6", "ga_arg"), known_ga("40+1", "ga_arg")
    assert (early.status, late.status) == ("ga_out_of_range", "ga_out_of_range")
    assert early.days == 97 and "14+0 to 40+0" in early.message and not early.usable
    bad = known_ga("32-4", "ga_csv")
    assert (bad.status, bad.days, bad.text) == ("invalid_ga", None, "32-4") and "32+4" in bad.message


def test_ga_from_dates_counts_days_since_the_last_menstrual_period():
    assert ga_from_dates(datetime.date(2026, 1, 1), datetime.date(2026, 8, 13)) == 224


def test_resolve_known_ga_order_arg_then_csv_row_then_csv_file_then_dicom():
    from_file = known_ga("20+0", "dicom_lmp")
    table = {"cine.dcm#2": "31+0", "cine.dcm": "30+0", "other.dcm": ""}
    assert resolve_known_ga("cine.dcm#2", "cine.dcm", known_ga("25+0", "ga_arg"), table, from_file).text == "25+0"
    assert resolve_known_ga("cine.dcm#2", "cine.dcm", None, table, from_file).text == "31+0"
    assert resolve_known_ga("cine.dcm#1", "cine.dcm", None, table, from_file).source == "ga_csv"
    assert resolve_known_ga("other.dcm", "other.dcm", None, table, from_file) is from_file
    assert resolve_known_ga("x.png", "x.png", None, None, None) is None
