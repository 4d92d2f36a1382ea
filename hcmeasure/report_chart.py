"""Growth charts for the HTML report: HC on the INTERGROWTH-21st centile curves.

Each chart shows the 3rd, 50th and 97th centiles of the INTERGROWTH-21st fetal HC
standard (:mod:`hcmeasure.measurement.growth`) from 14 to 40 weeks, and the scans
with a known gestational age as points (GA in exact weeks, HC in mm). Scans that
share a value in the grouping column (``pregnancy`` by default: one pregnancy) get one
chart, their points joined in order of GA; the scans without a group share one chart
of unjoined points. Points are numbered; the report's caption says which scan each
number is.

Charts are drawn by matplotlib (its object-oriented API, no global pyplot state) and
embedded as PNG ``data:`` URIs, so the report stays one offline file.
"""
from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from .measurement.growth import GA_STANDARD_RANGE_DAYS, intergrowth_hc_centile_mm

__all__ = ["CHART_CENTILES", "POINT_COLOUR", "ChartPoint", "GrowthChart", "growth_charts", "chart_png",
           "chart_data_uri"]

#: Centile curves drawn on every chart.
CHART_CENTILES = (3.0, 50.0, 97.0)
#: Colour of the scans' points (and of the line joining one pregnancy's scans).
POINT_COLOUR = "#d62728"
_CURVE_STYLE = {3.0: ("#1f5fa8", "--"), 50.0: ("#1f5fa8", "-"), 97.0: ("#1f5fa8", "--")}
#: Grouping columns whose values are identifiers: their charts are numbered, not named.
IDENTIFIER_GROUP_COLUMNS = frozenset({"patient_name", "patient_id", "patient_birth_date", "accession_number",
                                      "study_date", "study_instance_uid"})


@dataclass(frozen=True)
class ChartPoint:
    """One scan on a chart: its row name, known GA (days), HC (mm) and centile."""

    filename: str
    ga_days: float
    ga_text: str
    hc_mm: float
    centile: float | None


@dataclass(frozen=True)
class GrowthChart:
    """One chart: a title, its points (in GA order) and whether they are joined."""

    title: str
    points: tuple[ChartPoint, ...]
    joined: bool


def _float(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _point(row: Mapping[str, str]) -> ChartPoint | None:
    if row.get("status") != "ok" or row.get("known_ga_status") != "ok":
        return None
    hc = _float(row.get("hc_mm"))
    text = row.get("known_ga", "")
    weeks, _, days = text.partition("+")
    if hc is None or not weeks.isdigit():
        return None
    ga_days = int(weeks) * 7 + (int(days) if days.isdigit() else 0)
    return ChartPoint(row.get("filename", ""), ga_days, text, hc, _float(row.get("hc_centile")))


def growth_charts(rows: Iterable[Mapping[str, str]], group_column: str = "pregnancy") -> list[GrowthChart]:
    """The charts for ``rows`` (``measurements.csv`` rows): one per group of
    ``group_column``, then one for the scans without a group; none without a known GA."""
    groups: dict[str, list[ChartPoint]] = {}
    loose: list[ChartPoint] = []
    for row in rows:
        point = _point(row)
        if point is None:
            continue
        key = (row.get(group_column) or "").strip()
        (groups.setdefault(key, []) if key else loose).append(point)
    anonymous = group_column in IDENTIFIER_GROUP_COLUMNS
    charts = []
    for i, (key, points) in enumerate(sorted(groups.items()), start=1):
        label = f"{group_column.replace('_', ' ')} {i}" if anonymous else f"{group_column.replace('_', ' ')} {key}"
        charts.append(GrowthChart(f"{label}: {len(points)} scan(s)", tuple(sorted(points, key=lambda p: p.ga_days)),
                                  joined=True))
    if loose:
        title = "scans without a group" if groups else f"{len(loose)} scan(s)"
        charts.append(GrowthChart(title, tuple(sorted(loose, key=lambda p: (p.ga_days, p.filename))), joined=False))
    return charts


def chart_png(chart: GrowthChart, *, dpi: int = 100) -> bytes:
    """PNG bytes of ``chart``: centile curves, the points numbered from 1."""
    from matplotlib.figure import Figure

    lo_days, hi_days = GA_STANDARD_RANGE_DAYS
    weeks = np.linspace(lo_days / 7.0, hi_days / 7.0, 261)
    fig = Figure(figsize=(6.4, 4.0), dpi=dpi)
    ax = fig.subplots()
    curves = {c: intergrowth_hc_centile_mm(weeks, c) for c in CHART_CENTILES}
    ax.fill_between(weeks, curves[CHART_CENTILES[0]], curves[CHART_CENTILES[-1]], color="#dbe7f5", linewidth=0)
    for c, values in curves.items():
        colour, style = _CURVE_STYLE.get(c, ("#1f5fa8", ":"))
        ax.plot(weeks, values, style, color=colour, linewidth=1.4 if c == 50.0 else 1.0)
        ax.annotate(f"{c:g}th" if c != 3.0 else "3rd", (weeks[-1], values[-1]), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=8, color=colour)
    ga = np.array([p.ga_days / 7.0 for p in chart.points])
    hc = np.array([p.hc_mm for p in chart.points])
    if chart.joined and len(chart.points) > 1:
        ax.plot(ga, hc, "-", color=POINT_COLOUR, linewidth=1.5)
    ax.plot(ga, hc, "o", color=POINT_COLOUR, markersize=7, markeredgecolor="white", markeredgewidth=0.8)
    for i, (x, y) in enumerate(zip(ga, hc), start=1):
        ax.annotate(str(i), (x, y), xytext=(5, 5), textcoords="offset points", fontsize=8, color="#222")
    ax.set_xlim(lo_days / 7.0 - 0.5, hi_days / 7.0 + 2.0)
    y_lo = min(float(curves[CHART_CENTILES[0]][0]), float(hc.min()) if hc.size else np.inf) - 10
    y_hi = max(float(curves[CHART_CENTILES[-1]][-1]), float(hc.max()) if hc.size else -np.inf) + 10
    ax.set_ylim(y_lo, y_hi)
    ax.set_xticks(range(14, 41, 2))
    ax.grid(True, color="#e3e3e3", linewidth=0.6)
    ax.set_xlabel("Gestational age (weeks)")
    ax.set_ylabel("Head circumference (mm)")
    ax.set_title(f"HC for gestational age, INTERGROWTH-21st: {chart.title}", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def chart_data_uri(chart: GrowthChart) -> str:
    """``data:image/png;base64,...`` of :func:`chart_png`."""
    return "data:image/png;base64," + base64.b64encode(chart_png(chart)).decode("ascii")
