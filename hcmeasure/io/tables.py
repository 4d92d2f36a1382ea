"""CSV tables read and written by hcmeasure: pixel sizes, reference HC, measurements.

All writers are atomic: the file is written next to its destination under a
temporary name and renamed into place, so a reader never sees half a table.
"""
from __future__ import annotations

import contextlib
import csv
import math
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..measurement.ellipse import Ellipse
from ..measurement.gestational_age import GAEstimate
from ..measurement.growth import KnownGA
from ..measurement.head import MEASURED_STATUSES
from ..measurement.record import MeasuredHead, PixelCalibration, ellipse_to_mm
from ..measurement.spacing import pixel_size_problem

__all__ = [
    "MEASUREMENT_COLUMNS",
    "SUBMISSION_COLUMNS",
    "TableError",
    "PixelSize",
    "ScanInfo",
    "read_pixel_size_csv",
    "read_scan_info_csv",
    "read_reference_hc_csv",
    "read_measurements_csv",
    "format_measurement",
    "measurement_row",
    "hc_text",
    "submission_row",
    "write_csv_atomic",
    "atomic_write_bytes",
    "write_json_atomic",
    "atomic_open",
]

#: Columns of ``measurements.csv`` (written by ``hcmeasure predict`` and ``hcmeasure fit``).
MEASUREMENT_COLUMNS = [
    "filename",
    "pixel_size_mm",
    "hc_mm",
    "center_x_mm",
    "center_y_mm",
    "semi_axes_a_mm",
    "semi_axes_b_mm",
    "angle_rad",
    "hc_px",
    "center_x_px",
    "center_y_px",
    "semi_axes_a_px",
    "semi_axes_b_px",
    "score",
    "fit_iou",
    "status",
    # Appended by the clinical workflow (DICOM calibration, gestational age).
    "pixel_size_y_mm",
    "pixel_size_source",
    "ga_weeks",
    "ga_days",
    "ga_formula",
    "ga_status",
    "ga_uncertainty_days",
    # Head biometry from the mm ellipse (hcmeasure.measurement.biometry).
    "bpd_mm",
    "ofd_mm",
    "cephalic_index",
    "ci_flag",
    "bpd_outer_inner_est_mm",
    # Size for a known gestational age (hcmeasure.measurement.growth).
    "known_ga",
    "known_ga_source",
    "known_ga_status",
    "hc_zscore",
    "hc_centile",
    "hc_centile_flag",
    "pregnancy",
    # Appended by the trust assessment (hcmeasure.measurement.trust): the 90 % interval
    # of the HC and, for status "review", why.
    "hc_low_mm",
    "hc_high_mm",
    "review_reason",
    # The pixel ellipse's own angle: with non-square pixels angle_rad (the mm ellipse's,
    # as the HC18 submission needs) is not the angle of the _px columns' ellipse.
    "angle_px_rad",
]

#: Columns of the HC18 leaderboard ``submission.csv``, exactly as the challenge expects.
SUBMISSION_COLUMNS = [
    "filename",
    "center_x_mm",
    "center_y_mm",
    "semi_axes_a_mm",
    "semi_axes_b_mm",
    "angle_rad",
]

PIXEL_SIZE_HEADER = ["filename", "pixel size(mm)"]
#: Optional columns of the pixel-size CSV (any position after the first two, any case).
GA_COLUMN, PREGNANCY_COLUMN = "ga", "pregnancy"
REFERENCE_HC_HEADER = ["filename", "pixel size(mm)", "head circumference (mm)"]


class TableError(ValueError):
    """A CSV file cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class PixelSize:
    """A pixel-size entry: ``value_mm`` when valid, else ``error`` says what is wrong."""

    value_mm: float | None
    error: str | None = None


@dataclass(frozen=True)
class ScanInfo:
    """What the pixel-size CSV says about a scan besides its pixel size: the known
    gestational age as written (``ga``, weeks+days) and a ``pregnancy`` label."""

    ga: str = ""
    pregnancy: str = ""


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: file not found. Pass an existing CSV file.")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    except UnicodeDecodeError as exc:
        raise TableError(f"{path}: not a UTF-8 text CSV ({exc}). Pass the CSV file itself.") from exc
    if not rows:
        raise TableError(f"{path}: the file is empty; it needs a header row and one row per image.")
    return [c.strip() for c in rows[0]], [[c.strip() for c in r] for r in rows[1:]]


def _parse_positive(text: str) -> PixelSize:
    """A pixel size from CSV text; ``nan``, ``inf``, non-positive and implausible values
    (:func:`~hcmeasure.measurement.spacing.pixel_size_problem`) are kept as errors."""
    try:
        value = float(text)
    except ValueError:
        return PixelSize(None, f"pixel size {text!r} is not a number")
    problem = pixel_size_problem(value) if math.isfinite(value) and value > 0 else pixel_size_problem(text)
    if problem:
        return PixelSize(None, problem)
    return PixelSize(value)


def read_pixel_size_csv(path) -> dict[str, PixelSize]:
    """Read an HC18-style pixel-size CSV: ``filename,pixel size(mm)[,...]``.

    Accepts both the test-set file and the training-set file (which has an extra HC
    column). Returns filename -> :class:`PixelSize`; a bad value is kept as an error
    for that file (so one bad row does not stop a run). A wrong header raises
    :class:`TableError`. A row whose pixel size is empty but that gives a ``ga`` or
    ``pregnancy`` (see :func:`read_scan_info_csv`) gives no pixel size, so a DICOM
    file listed only for its GA keeps its own calibration.
    """
    header, rows = _read_rows(path)
    _check_pixel_size_header(path, header)
    extra = _scan_info_indices(header)
    sizes: dict[str, PixelSize] = {}
    for row in rows:
        if len(row) < 2:
            continue
        if not row[1] and any(i < len(row) and row[i] for i in extra.values()):
            continue
        sizes[row[0]] = _parse_positive(row[1])
    return sizes


def _check_pixel_size_header(path, header: list[str]) -> None:
    if [h.lower() for h in header[:2]] != PIXEL_SIZE_HEADER:
        raise TableError(
            f"{path}: header is {','.join(header)!r}; expected it to start with "
            f"{','.join(PIXEL_SIZE_HEADER)!r} (the HC18 pixel-size CSV format)."
        )


def _scan_info_indices(header: list[str]) -> dict[str, int]:
    lower = [h.lower() for h in header]
    return {c: lower.index(c) for c in (GA_COLUMN, PREGNANCY_COLUMN) if c in lower[2:]}


def read_scan_info_csv(path) -> dict[str, ScanInfo]:
    """The optional ``ga`` and ``pregnancy`` columns of a pixel-size CSV: filename ->
    :class:`ScanInfo` (empty when the CSV has neither column).

    ``ga`` is the known gestational age as weeks+days (``32+4``) or whole weeks
    (``32``); it is parsed per image later, so a malformed value marks that image only.
    ``pregnancy`` is any label shared by the scans of one pregnancy (the report draws
    them on one growth chart); it is copied to ``measurements.csv`` as written, so use
    a study code, not a patient identifier.
    """
    header, rows = _read_rows(path)
    _check_pixel_size_header(path, header)
    extra = _scan_info_indices(header)
    if not extra:
        return {}
    info: dict[str, ScanInfo] = {}
    for row in rows:
        cells = {c: (row[i] if i < len(row) else "") for c, i in extra.items()}
        if row and any(cells.values()):
            info[row[0]] = ScanInfo(cells.get(GA_COLUMN, ""), cells.get(PREGNANCY_COLUMN, ""))
    return info


def read_reference_hc_csv(path) -> dict[str, tuple[float, float]]:
    """Read HC18's ``training_set_pixel_size_and_HC.csv``: filename -> (pixel size mm, HC mm)."""
    header, rows = _read_rows(path)
    if [h.lower() for h in header[:3]] != REFERENCE_HC_HEADER:
        raise TableError(
            f"{path}: header is {','.join(header)!r}; expected "
            f"{','.join(REFERENCE_HC_HEADER)!r} (HC18's training_set_pixel_size_and_HC.csv)."
        )
    out = {}
    for lineno, row in enumerate(rows, start=2):
        try:
            out[row[0]] = (float(row[1]), float(row[2]))
        except (IndexError, ValueError) as exc:
            raise TableError(f"{path}: row {lineno} ({','.join(row)!r}) is not filename,number,number.") from exc
    return out


def read_measurements_csv(path) -> list[dict[str, str]]:
    """Read a ``measurements.csv`` written by hcmeasure (rows as dicts of strings)."""
    header, rows = _read_rows(path)
    missing = [c for c in ("filename", "hc_mm", "status") if c not in header]
    if missing:
        raise TableError(
            f"{path}: missing column(s) {', '.join(missing)}; expected a measurements.csv "
            "written by 'hcmeasure predict' or 'hcmeasure fit'."
        )
    return [dict(zip(header, row + [""] * (len(header) - len(row)))) for row in rows]


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_measurement(head: MeasuredHead) -> dict[str, str]:
    """One row of ``measurements.csv`` for a :class:`~hcmeasure.measurement.record.MeasuredHead`
    (only formatting: every number comes from the record).

    Without a pixel ellipse only filename, status, calibration and the GA columns are
    filled; without a millimetre ellipse (no usable pixel size) the ``_mm`` columns stay
    empty and the pixel columns are filled. ``angle_rad`` is the millimetre ellipse's
    angle (what the HC18 submission needs), ``angle_px_rad`` the pixel ellipse's; they
    differ only where pixels are not square. ``pixel_size_y_mm`` is written when the
    calibration states it."""
    row = {c: "" for c in MEASUREMENT_COLUMNS}
    cal = head.calibration
    row.update(filename=head.filename, status=head.status, score=_fmt(head.score), fit_iou=_fmt(head.fit_iou),
               pixel_size_source=cal.source, review_reason=";".join(head.review_reasons),
               pregnancy=head.pregnancy or "")
    if cal.dx_mm is not None:
        row["pixel_size_mm"] = f"{cal.dx_mm:.10g}"
        if cal.dy_mm is not None:
            row["pixel_size_y_mm"] = f"{cal.dy_mm:.10g}"
    ga = head.ga
    if ga is not None:
        row["ga_formula"] = ga.formula
        row["ga_status"] = ga.status
        if ga.weeks_days is not None:
            row["ga_weeks"], row["ga_days"] = (str(v) for v in ga.weeks_days)
        if ga.uncertainty_days is not None:
            row["ga_uncertainty_days"] = f"{ga.uncertainty_days:.1f}"
    px, mm = head.ellipse_px, head.ellipse_mm
    if px is not None:
        row.update(
            hc_px=_fmt(head.hc_px, 3),
            center_x_px=_fmt(px.cx, 3),
            center_y_px=_fmt(px.cy, 3),
            semi_axes_a_px=_fmt(px.a, 3),
            semi_axes_b_px=_fmt(px.b, 3),
            angle_rad=_fmt((mm or px).angle, 6),
            angle_px_rad=_fmt(px.angle, 6),
        )
    if px is not None and mm is not None:
        row.update(
            hc_mm=_fmt(head.hc_mm, 3),
            center_x_mm=_fmt(mm.cx, 4),
            center_y_mm=_fmt(mm.cy, 4),
            semi_axes_a_mm=_fmt(mm.a, 4),
            semi_axes_b_mm=_fmt(mm.b, 4),
        )
        if head.hc_interval_mm is not None:
            row["hc_low_mm"], row["hc_high_mm"] = (_fmt(v, 3) for v in head.hc_interval_mm)
        bio = head.biometry
        row.update(
            bpd_mm=_fmt(bio.bpd_mm, 3),
            ofd_mm=_fmt(bio.ofd_mm, 3),
            cephalic_index=_fmt(bio.cephalic_index, 2),
            ci_flag=bio.ci_flag,
            bpd_outer_inner_est_mm=_fmt(bio.bpd_outer_inner_est_mm, 3),
        )
    known = head.known_ga
    if known is not None:
        row.update(known_ga=known.text, known_ga_source=known.source, known_ga_status=known.status)
        size = head.hc_for_known_ga
        if size is not None:
            row.update(hc_zscore=_fmt(size.zscore, 3), hc_centile=_fmt(size.centile, 1), hc_centile_flag=size.flag)
    return row


def measurement_row(
    filename: str,
    ellipse: Ellipse | None,
    pixel_size_mm: float | None,
    *,
    score: float | None = None,
    fit_iou: float | None = None,
    status: str = "ok",
    perimeter_formula: int = 2,
    pixel_size_y_mm: float | None = None,
    ellipse_mm: Ellipse | None = None,
    pixel_size_source: str = "",
    ga: GAEstimate | None = None,
    hc_interval_mm: tuple[float, float] | None = None,
    review_reasons: Sequence[str] = (),
    known_ga: KnownGA | None = None,
    pregnancy: str = "",
) -> dict[str, str]:
    """:func:`format_measurement` of a record given by its parts, as they are (no status
    or trust logic: see :func:`~hcmeasure.measurement.record.measure_head` for that): a
    pixel ``ellipse``, the pixel size along x (``pixel_size_mm``) and y
    (``pixel_size_y_mm``, None: not stated, square), and the millimetre ellipse
    (``ellipse_mm``; by default the pixel ellipse in mm,
    :func:`~hcmeasure.measurement.record.ellipse_to_mm`). For rows without a model: a
    failed image, a table in a test."""
    calibration = PixelCalibration(pixel_size_mm, pixel_size_y_mm, pixel_size_source)
    if ellipse_mm is None and ellipse is not None and pixel_size_mm is not None:
        ellipse_mm = ellipse_to_mm(ellipse, *calibration.spacing_mm)
    if ellipse is None:
        ellipse_mm = None
    head = MeasuredHead(filename, status, ellipse, ellipse_mm, calibration, score, fit_iou, perimeter_formula,
                        ga, hc_interval_mm, tuple(review_reasons), known_ga, pregnancy)
    return format_measurement(head)


def hc_text(row: Mapping[str, str]) -> str:
    """The HC of a measurements row as people read it: ``HC 176.4 mm (174.1-178.9)`` with
    the interval when there is one, ``HC 812.3 px`` without a pixel size, else the status."""
    def one(v):
        return f"{float(v):.1f}"

    if row.get("hc_mm"):
        text = f"HC {one(row['hc_mm'])} mm"
        if row.get("hc_low_mm") and row.get("hc_high_mm"):
            text += f" ({one(row['hc_low_mm'])}-{one(row['hc_high_mm'])})"
        return text
    if row.get("hc_px"):
        return f"HC {one(row['hc_px'])} px"
    return row.get("status", "")


def submission_row(row: Mapping[str, str]) -> dict[str, str]:
    """HC18 leaderboard row from a measurements row.

    A ``review`` row is written like an ``ok`` one. When no head was measured in mm (no
    detection, unreadable image, no pixel size)
    the geometry columns are written as 0, so that the leaderboard file still has
    one row per test image; the reason stays in measurements.csv.
    """
    if row.get("status") in MEASURED_STATUSES and row.get("hc_mm"):
        return {c: row[c] for c in SUBMISSION_COLUMNS}
    out = {c: "0" for c in SUBMISSION_COLUMNS}
    out["filename"] = row["filename"]
    return out


@contextlib.contextmanager
def atomic_open(path, mode: str = "wb", **kwargs):
    """Open a temporary file beside ``path`` for writing; on a clean exit it is flushed,
    synced and renamed to ``path`` (atomic), on an error removed. ``path`` is never seen
    half-written. ``mode`` and ``kwargs`` are those of :func:`open` ("wb" or "w")."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 files; give the result the usual permissions (umask applies).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and an atomic rename."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_json_atomic(path, obj, *, indent: int = 1) -> None:
    """Write ``obj`` as JSON (UTF-8, a final newline) to ``path`` atomically. Values JSON
    does not know, such as numpy floats, are written as floats."""
    text = json.dumps(obj, indent=indent, default=float) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def write_csv_atomic(path, columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> None:
    """Write a CSV with ``columns`` as header (LF line ends, UTF-8), atomically. ``rows`` is
    streamed to the file, so an iterator of any length costs no memory here."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
