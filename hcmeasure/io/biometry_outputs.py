"""What the overlay and the console show of a row's biometry and growth columns.

Each function reads one ``measurements.csv`` row (or all of them), so every output
shows the values the CSV holds.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np

from ..measurement.biometry import axis_endpoints_px
from ..measurement.ellipse import Ellipse

__all__ = ["diameter_segments_px", "biometry_caption", "known_ga_messages"]


def _float(row: Mapping[str, str], key: str) -> float | None:
    try:
        value = float(row.get(key) or "")
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def diameter_segments_px(row: Mapping[str, str]) -> list[np.ndarray]:
    """OFD and BPD as two ``(2, 2)`` segments ``(x, y)`` in image pixels (hcmeasure's
    frame), from the row's mm ellipse and pixel sizes; empty without an mm ellipse."""
    keys = ("center_x_mm", "center_y_mm", "semi_axes_a_mm", "semi_axes_b_mm", "angle_rad", "pixel_size_mm")
    values = [_float(row, k) for k in keys]
    if any(v is None for v in values) or values[3] <= 0:
        return []
    cx, cy, a, b, angle, dx = values
    dy = _float(row, "pixel_size_y_mm") or dx
    major, minor = axis_endpoints_px(Ellipse.normalized(cx, cy, a, b, angle), dx, dy)
    return [major, minor]


def biometry_caption(row: Mapping[str, str]) -> str:
    """``BPD 55.2  OFD 70.1 mm  CI 78.7`` and, with a known GA, ``at 32+4: 45th centile``;
    empty when the row has no biometry."""
    bpd, ofd, ci = _float(row, "bpd_mm"), _float(row, "ofd_mm"), _float(row, "cephalic_index")
    if bpd is None or ofd is None:
        return ""
    text = f"BPD {bpd:.1f}  OFD {ofd:.1f} mm"
    if ci is not None:
        text += f"  CI {ci:.1f}"
    centile = _float(row, "hc_centile")
    if centile is not None:
        shown = "<1" if centile < 1 else ">99" if centile > 99 else f"{centile:.0f}"
        text += f"  at {row.get('known_ga')}: HC centile {shown}"
    return text


def known_ga_messages(rows: Iterable[Mapping[str, str]]) -> list[str]:
    """One warning per row whose known GA gives no centile (malformed, or outside the standard)."""
    out = []
    for row in rows:
        name, status = row.get("filename", ""), row.get("known_ga_status", "")
        source = {"ga_arg": "--ga", "ga_csv": "the CSV's ga column",
                  "dicom_lmp": "the DICOM LastMenstrualDate"}.get(row.get("known_ga_source", ""), "")
        if status == "invalid_ga" and row.get("known_ga_source") == "dicom_lmp":
            out.append(f"{name}: the DICOM LastMenstrualDate or the scan date cannot be read as a date; no "
                       "gestational age from the file, no HC centile (give it with --ga or the CSV's ga column)")
        elif status == "invalid_ga":
            given = f" {row.get('known_ga')!r}" if row.get("known_ga") else ""
            out.append(f"{name}: the gestational age{given} from {source} is not weeks+days (e.g. 32+4, days "
                       "0-6); no HC centile for this image, its other columns are kept")
        elif status == "ga_out_of_range":
            out.append(f"{name}: gestational age {row.get('known_ga')} from {source} is outside the "
                       "INTERGROWTH-21st HC standard (14+0 to 40+0 weeks); no HC centile for this image")
    return out
