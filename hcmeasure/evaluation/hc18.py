"""HC18 metrics: HC difference in mm, Dice and Hausdorff distance of the ellipses.

The HC18 challenge scores a measured head by four numbers per image, averaged
over the images:

* the difference between measured and reference HC, ``pred - truth`` in mm
  (its mean is reported as MSD, "mean signed difference", and the mean of its
  absolute value as MAD, "mean absolute difference");
* the Dice coefficient (DSC) between the filled measured ellipse and the filled
  reference ellipse;
* the Hausdorff distance (HD) in mm between the two ellipse outlines.

Beyond the challenge, where a reference ellipse exists the head's diameters are
compared too: BPD (minor axis) and OFD (major axis) of the measured and the reference
ellipse, both outer-to-outer at the ellipse (:mod:`hcmeasure.measurement.biometry`),
in pixels times the reference pixel size (HC18's pixels are square): ``pred - truth``
per image and their MAD / MSD in the summary.

Here the reference ellipse of an image is the ellipse fitted to the middle of
its annotation ring (``fit_ellipse(annotation, kind="outline")``), whose
perimeter matches HC18's reference HC to about 0.01 mm on average. Dice is
computed on the rasterised ellipses (a pixel is in an ellipse when its centre
is, :func:`~hcmeasure.measurement.ellipse_mask`), so it compares the two
ellipses, not the raw network mask.

Failures: an image whose measurement status is neither ``"ok"`` nor ``"review"`` (no
head detected, unreadable image, fit failed, no pixel size, ...) has no HC to compare. It
is counted in ``n_failed`` and listed, and the averages are taken over the measured
images only; the detection rate (``detected_pct``) says how many that is. A ``"review"``
image (measured, flagged for a human look) counts like an ``"ok"`` one;
:func:`evaluate_measurements` also summarises the unflagged (``"ok"``) images alone.

Standard deviations are sample standard deviations (``ddof=1``); they are NaN
when fewer than two values exist, and every metric is NaN when it has no value
at all.
"""
from __future__ import annotations

import itertools
import logging
import math
import os
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from detectron2.evaluation import DatasetEvaluator
from scipy.spatial import cKDTree

from ..io.images import ImageReadError, read_scan
from ..io.tables import MEASUREMENT_COLUMNS, format_measurement, write_csv_atomic
from ..measurement.ellipse import Ellipse, EllipseFitError, ellipse_mask, fit_ellipse
from ..measurement.head import MEASURED_STATUSES
from ..measurement.record import MeasurementOptions, PixelCalibration, measure_head

__all__ = [
    "hc_differences",
    "dice",
    "hausdorff_mm",
    "image_metrics",
    "summarize",
    "annotation_path",
    "reference_ellipse",
    "ellipse_from_row",
    "evaluate_measurements",
    "HC18Evaluator",
]

logger = logging.getLogger(__name__)

#: Largest gap (pixels) between consecutive boundary samples used by :func:`hausdorff_mm`.
HAUSDORFF_SPACING_PX = 0.05

_NAN = float("nan")


def _sd(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if len(values) >= 2 else _NAN


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else _NAN


def hc_differences(pred_mm: Sequence[float], truth_mm: Sequence[float]) -> dict:
    """Statistics of the HC differences ``pred - truth`` (mm) over paired images.

    Returns ``mean_abs_diff_mm`` (MAD), ``sd_abs_diff_mm``, ``mean_diff_mm`` (signed,
    MSD), ``sd_diff_mm``, ``median_abs_diff_mm`` and ``n``.
    """
    pred = np.asarray(pred_mm, dtype=np.float64).ravel()
    truth = np.asarray(truth_mm, dtype=np.float64).ravel()
    if pred.shape != truth.shape:
        raise ValueError(f"pred_mm has {pred.size} values but truth_mm has {truth.size}")
    diff = pred - truth
    absd = np.abs(diff)
    return {
        "mean_abs_diff_mm": _mean(absd),
        "sd_abs_diff_mm": _sd(absd),
        "mean_diff_mm": _mean(diff),
        "sd_diff_mm": _sd(diff),
        "median_abs_diff_mm": float(np.median(absd)) if len(absd) else _NAN,
        "n": int(diff.size),
    }


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient ``2 |A & B| / (|A| + |B|)`` of two boolean masks of one shape.

    Two empty masks agree perfectly: the result is 1.0.
    """
    a = np.asarray(a, bool)
    b = np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def _boundary_samples(ellipse: Ellipse, spacing_px: float) -> np.ndarray:
    # Samples are uniform in the ellipse parameter t; the arc length per step is at
    # most a * dt, so this count keeps every gap at or below spacing_px.
    num = max(64, int(math.ceil(2 * math.pi * ellipse.a / spacing_px)))
    return ellipse.points(num)


def hausdorff_mm(
    ellipse_pred: Ellipse,
    ellipse_truth: Ellipse,
    pixel_size_mm: float,
    *,
    spacing_px: float = HAUSDORFF_SPACING_PX,
) -> float:
    """Symmetric Hausdorff distance (mm) between the outlines of two ellipses (pixels).

    Both outlines are sampled densely (gaps of at most ``spacing_px``, default
    0.05 px) with :meth:`Ellipse.points`; each directed distance is the largest
    distance from a sample of one outline to the nearest sample of the other
    (nearest neighbours by a k-d tree, which gives the same value as
    ``scipy.spatial.distance.directed_hausdorff`` but in O(n log n)). The
    sampling changes the result by less than ``spacing_px`` pixels.
    """
    p = _boundary_samples(ellipse_pred, spacing_px)
    t = _boundary_samples(ellipse_truth, spacing_px)
    d_pt = cKDTree(t).query(p)[0].max()
    d_tp = cKDTree(p).query(t)[0].max()
    return float(max(d_pt, d_tp)) * float(pixel_size_mm)


def annotation_path(annotations_dir, filename: str) -> Path:
    """HC18 annotation file of an image: ``X.png`` -> ``annotations_dir/X_Annotation.png``."""
    stem, ext = os.path.splitext(filename)
    return Path(annotations_dir) / f"{stem}_Annotation{ext or '.png'}"


def reference_ellipse(annotation_file) -> tuple[Ellipse, tuple[int, int]]:
    """The reference ellipse of an HC18 annotation ring and the image shape ``(H, W)``.

    Raises :class:`~hcmeasure.io.images.ImageReadError` or
    :class:`~hcmeasure.measurement.EllipseFitError`.
    """
    ring = read_scan(annotation_file)
    fit = fit_ellipse(ring, kind="outline")
    return fit.ellipse, ring.shape


def _float_or_none(text) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def ellipse_from_row(row: Mapping[str, str]) -> Ellipse | None:
    """The ellipse (pixels) in a ``measurements.csv`` row, or None when its columns are empty.

    Its angle is ``angle_px_rad``, the pixel ellipse's own; a row written before that
    column existed falls back to ``angle_rad``, which is the same for square pixels."""
    angle = "angle_px_rad" if row.get("angle_px_rad") else "angle_rad"
    values = [
        _float_or_none(row.get(k))
        for k in ("center_x_px", "center_y_px", "semi_axes_a_px", "semi_axes_b_px", angle)
    ]
    if any(v is None for v in values):
        return None
    cx, cy, a, b, angle = values
    if a <= 0 or b <= 0:
        return None
    return Ellipse.normalized(cx, cy, a, b, angle)


def image_metrics(
    filename: str,
    pred_hc_mm: float,
    truth_hc_mm: float | None,
    *,
    pred_ellipse: Ellipse | None = None,
    truth_ellipse: Ellipse | None = None,
    shape: tuple[int, int] | None = None,
    pixel_size_mm: float | None = None,
) -> dict:
    """Per-image record for one measured head.

    ``diff_mm`` is ``pred - truth``; ``dice`` and ``hausdorff_mm`` are filled when
    both ellipses are given (with the image ``shape`` for Dice and the pixel size
    for the distance), else they are None.
    """
    rec = {
        "filename": filename,
        "status": "ok",
        "pred_hc_mm": float(pred_hc_mm),
        "truth_hc_mm": None if truth_hc_mm is None else float(truth_hc_mm),
        "diff_mm": None,
        "abs_diff_mm": None,
        "dice": None,
        "hausdorff_mm": None,
        "pred_bpd_mm": None,
        "truth_bpd_mm": None,
        "bpd_diff_mm": None,
        "pred_ofd_mm": None,
        "truth_ofd_mm": None,
        "ofd_diff_mm": None,
    }
    if truth_hc_mm is not None:
        rec["diff_mm"] = float(pred_hc_mm) - float(truth_hc_mm)
        rec["abs_diff_mm"] = abs(rec["diff_mm"])
    if pred_ellipse is not None and truth_ellipse is not None:
        if shape is not None:
            rec["dice"] = dice(ellipse_mask(pred_ellipse, shape), ellipse_mask(truth_ellipse, shape))
        if pixel_size_mm is not None:
            rec["hausdorff_mm"] = hausdorff_mm(pred_ellipse, truth_ellipse, pixel_size_mm)
            ps = float(pixel_size_mm)
            for key, pred_d, truth_d in (("bpd", pred_ellipse.b, truth_ellipse.b),
                                         ("ofd", pred_ellipse.a, truth_ellipse.a)):
                rec[f"pred_{key}_mm"], rec[f"truth_{key}_mm"] = 2 * pred_d * ps, 2 * truth_d * ps
                rec[f"{key}_diff_mm"] = rec[f"pred_{key}_mm"] - rec[f"truth_{key}_mm"]
    return rec


def summarize(records: Iterable[Mapping]) -> dict:
    """Summary over per-image records (from :func:`image_metrics`, or failures with a
    ``status`` other than ``"ok"``).

    Returns the :func:`hc_differences` keys over the ``ok`` records that have a
    reference HC, plus ``n_failed``, ``n_images``, ``detected_pct`` (share of
    records with status ok, in %), and ``dice_mean``, ``dice_sd``,
    ``hausdorff_mm_mean``, ``hausdorff_mm_sd``, ``hausdorff_mm_max``, ``n_annotated``
    over the ``ok`` records that have an annotation, and for the diameters
    ``bpd_mean_abs_diff_mm``, ``bpd_sd_abs_diff_mm``, ``bpd_mean_diff_mm``,
    ``bpd_sd_diff_mm`` (and the same for ``ofd``) over the records that have them.
    """
    records = list(records)
    ok = [r for r in records if r.get("status") in MEASURED_STATUSES]
    paired = [r for r in ok if r.get("truth_hc_mm") is not None]
    out = hc_differences([r["pred_hc_mm"] for r in paired], [r["truth_hc_mm"] for r in paired])
    out["n_failed"] = len(records) - len(ok)
    out["n_images"] = len(records)
    out["detected_pct"] = 100.0 * len(ok) / len(records) if records else _NAN
    dices = np.array([r["dice"] for r in ok if r.get("dice") is not None], dtype=np.float64)
    hds = np.array([r["hausdorff_mm"] for r in ok if r.get("hausdorff_mm") is not None], dtype=np.float64)
    out["n_annotated"] = int(len(dices))
    out["dice_mean"] = _mean(dices)
    out["dice_sd"] = _sd(dices)
    out["hausdorff_mm_mean"] = _mean(hds)
    out["hausdorff_mm_sd"] = _sd(hds)
    out["hausdorff_mm_max"] = float(hds.max()) if len(hds) else _NAN
    for key in ("bpd", "ofd"):
        pairs = [(r[f"pred_{key}_mm"], r[f"truth_{key}_mm"]) for r in ok if r.get(f"{key}_diff_mm") is not None]
        d = hc_differences([p for p, _ in pairs], [t for _, t in pairs])
        for stat in ("mean_abs_diff_mm", "sd_abs_diff_mm", "mean_diff_mm", "sd_diff_mm"):
            out[f"{key}_{stat}"] = d[stat]
    return out


def evaluate_measurements(
    rows: Iterable[Mapping[str, str]],
    truth: Mapping[str, tuple[float, float]],
    annotations_dir=None,
) -> dict:
    """Compare ``measurements.csv`` rows with HC18 references.

    ``rows``: dicts as read by :func:`~hcmeasure.io.tables.read_measurements_csv`.
    ``truth``: filename -> (pixel size mm, HC mm), as read by
    :func:`~hcmeasure.io.tables.read_reference_hc_csv`. With ``annotations_dir``
    (the folder holding ``X_Annotation.png``), Dice and Hausdorff distance are
    computed against the ellipse fitted to each annotation ring.

    Returns a dict with

    * ``summary``: see :func:`summarize`, plus ``n_not_in_truth``, ``n_duplicates`` and
      ``n_review`` (measured images flagged for review, counted in the summary);
    * ``summary_unflagged``: the same over every image but the ``review`` ones;
    * ``per_image``: one record per evaluated ``ok`` row (see :func:`image_metrics`,
      plus ``note`` when the annotation could not be used or the pixel sizes differ);
    * ``failed``: ``{"filename", "status"}`` of rows whose status is not ``ok``,
      or whose HC cannot be read (status ``invalid_row``);
    * ``not_in_truth``: filenames absent from ``truth`` (not counted anywhere else);
    * ``duplicates``: filenames seen again after their first row (only the first is used).
    """
    per_image: list[dict] = []
    failed: list[dict] = []
    not_in_truth: list[str] = []
    duplicates: list[str] = []
    seen: set[str] = set()
    records: list[dict] = []
    for row in rows:
        name = (row.get("filename") or "").strip()
        if name in seen:
            duplicates.append(name)
            continue
        seen.add(name)
        if name not in truth:
            not_in_truth.append(name)
            continue
        pixel_size, truth_hc = truth[name]
        status = (row.get("status") or "").strip()
        pred_hc = _float_or_none(row.get("hc_mm"))
        if status in MEASURED_STATUSES and pred_hc is None:
            status = "invalid_row"
        if status not in MEASURED_STATUSES:
            failed.append({"filename": name, "status": status or "missing_status"})
            records.append({"filename": name, "status": status})
            continue
        notes = []
        row_ps = _float_or_none(row.get("pixel_size_mm"))
        if row_ps is not None and abs(row_ps - pixel_size) > 1e-6 * pixel_size:
            notes.append(f"pixel size {row_ps:g} differs from the reference {pixel_size:g}")
        pred_ellipse = truth_ellipse = shape = None
        if annotations_dir is not None:
            pred_ellipse = ellipse_from_row(row)
            if pred_ellipse is None:
                notes.append("row has no ellipse in pixels; Dice and Hausdorff skipped")
            else:
                ann = annotation_path(annotations_dir, name)
                try:
                    truth_ellipse, shape = reference_ellipse(ann)
                except (ImageReadError, EllipseFitError) as exc:
                    notes.append(f"annotation not usable: {exc}")
        rec = image_metrics(
            name,
            pred_hc,
            truth_hc,
            pred_ellipse=pred_ellipse,
            truth_ellipse=truth_ellipse,
            shape=shape,
            pixel_size_mm=pixel_size,
        )
        rec["note"] = "; ".join(notes)
        rec["status"] = status
        rec["review_reason"] = row.get("review_reason") or ""
        per_image.append(rec)
        records.append(rec)
    summary = summarize(records)
    summary["n_not_in_truth"] = len(not_in_truth)
    summary["n_duplicates"] = len(duplicates)
    summary["n_review"] = sum(1 for r in per_image if r["status"] == "review")
    return {
        "summary": summary,
        "summary_unflagged": summarize(r for r in records if r.get("status") != "review"),
        "per_image": per_image,
        "failed": failed,
        "not_in_truth": not_in_truth,
        "duplicates": duplicates,
    }


class HC18Evaluator(DatasetEvaluator):
    """Detectron2 evaluator: one head ellipse per image, scored with the HC18 metrics.

    For every image the head is taken from the output's ``head`` entry when the model
    provides one (``HeadRCNN``, the same measurement ``hcmeasure predict`` writes), and
    otherwise measured from the model's ``instances``
    (:func:`~hcmeasure.measurement.head.measure_head_from_instances`);
    the dataset fields ``file_name``, ``image_id``, ``pixel_size_mm``, ``hc_mm``,
    ``height``, ``width`` and the reference ``ellipse`` (or, without it,
    ``annotation_file``, whose ring is fitted once and cached) are read from the input
    dicts (Detectron2's test mapper keeps them) or, when absent there, from
    ``DatasetCatalog.get(dataset_name)`` by ``image_id``.

    :meth:`evaluate` returns ``{"hc18": {"MAD_mm", "MAD_sd_mm", "MSD_mm", "MSD_sd_mm",
    "DSC", "HD_mm", "BPD_MAD_mm", "OFD_MAD_mm", "detected_pct", "n_images"}}``; MAD, MSD,
    DSC, HD and the BPD / OFD mean absolute differences are averaged
    over the images where a head was measured (see the module docstring), and are NaN
    where the dataset has no reference (e.g. the HC18 test set). With ``output_dir``
    it writes ``<dataset_name>_measurements.csv`` there (the columns of
    ``measurements.csv``).
    """

    def __init__(
        self,
        dataset_name: str,
        mask_threshold: float = 0.5,
        min_score: float = 0.05,
        perimeter_formula: int = 2,
        output_dir: str | None = None,
        *,
        distributed: bool = True,
    ):
        self._dataset_name = dataset_name
        self._mask_threshold = float(mask_threshold)
        self._min_score = float(min_score)
        self._options = MeasurementOptions(perimeter_formula=int(perimeter_formula))
        self._output_dir = output_dir
        self._distributed = distributed
        self._dataset_by_id: dict | None = None
        self._truth_cache: dict[str, tuple[Ellipse, tuple[int, int]] | None] = {}
        self._records: list[dict] = []

    def reset(self):
        self._records = []

    def _dataset_dict(self, image_id) -> dict:
        if self._dataset_by_id is None:
            from detectron2.data import DatasetCatalog

            if self._dataset_name in DatasetCatalog.list():
                dicts = DatasetCatalog.get(self._dataset_name)
            else:
                logger.warning(
                    "HC18Evaluator: dataset %r is not registered; only the fields in the "
                    "inputs are used", self._dataset_name
                )
                dicts = []
            self._dataset_by_id = {d.get("image_id"): d for d in dicts}
        return self._dataset_by_id.get(image_id, {})

    def _fields(self, inp: Mapping) -> dict:
        keys = ("file_name", "pixel_size_mm", "hc_mm", "annotation_file", "ellipse", "height", "width")
        fields = {k: inp.get(k) for k in keys}
        if any(k not in inp for k in keys) and "image_id" in inp:
            record = self._dataset_dict(inp["image_id"])
            for k in keys:
                if fields[k] is None:
                    fields[k] = record.get(k)
        return fields

    def _truth(self, fields: Mapping):
        """Reference ellipse and image shape: the dataset's fitted ``ellipse`` when it has
        one (and the image size), else the fit of ``annotation_file``, else None."""
        e, h, w = fields.get("ellipse"), fields.get("height"), fields.get("width")
        if isinstance(e, Mapping) and h and w:
            try:
                return Ellipse.normalized(e["cx"], e["cy"], e["a"], e["b"], e["angle"]), (int(h), int(w))
            except (KeyError, TypeError, ValueError):
                pass
        annotation_file = fields.get("annotation_file")
        if not annotation_file:
            return None
        key = str(annotation_file)
        if key not in self._truth_cache:
            try:
                self._truth_cache[key] = reference_ellipse(annotation_file)
            except (ImageReadError, EllipseFitError) as exc:
                logger.warning("HC18Evaluator: annotation %s not usable (%s)", key, exc)
                self._truth_cache[key] = None
        return self._truth_cache[key]

    def process(self, inputs, outputs):
        from ..measurement.head import measure_head_from_instances

        for inp, out in zip(inputs, outputs):
            f = self._fields(inp)
            filename = os.path.basename(str(f["file_name"] or inp.get("image_id", "")))
            pixel_size = f["pixel_size_mm"]
            truth_hc = _float_or_none(f["hc_mm"])
            if "head" in out:
                # HeadRCNN measured the head itself (as ``hcmeasure predict`` does).
                head = out["head"]
            elif "instances" in out:
                head = measure_head_from_instances(
                    out["instances"].to("cpu"), mask_threshold=self._mask_threshold,
                    min_score=self._min_score,
                )
            else:
                head = None
            measured = measure_head(filename, head, PixelCalibration.from_value(pixel_size, "dataset"),
                                    self._options)
            row = format_measurement(measured)
            if measured.status != "ok":
                self._records.append({"filename": filename, "status": measured.status, "row": row})
                continue
            truth = self._truth(f)
            truth_ellipse, shape = truth if truth is not None else (None, None)
            rec = image_metrics(
                filename,
                measured.hc_mm,
                truth_hc,
                pred_ellipse=measured.ellipse_px,
                truth_ellipse=truth_ellipse,
                shape=shape,
                pixel_size_mm=measured.calibration.dx_mm,
            )
            rec["row"] = row
            self._records.append(rec)

    def evaluate(self):
        records = self._records
        if self._distributed:
            from detectron2.utils import comm

            if comm.get_world_size() > 1:
                comm.synchronize()
                gathered = comm.gather(records, dst=0)
                records = list(itertools.chain(*gathered))
                if not comm.is_main_process():
                    return OrderedDict()
        if not records:
            logger.warning("HC18Evaluator: no images were processed for %s", self._dataset_name)
        if self._output_dir:
            path = Path(self._output_dir) / f"{self._dataset_name}_measurements.csv"
            write_csv_atomic(path, MEASUREMENT_COLUMNS, [r["row"] for r in records])
        s = summarize(records)
        return OrderedDict(
            {
                "hc18": {
                    "MAD_mm": s["mean_abs_diff_mm"],
                    "MAD_sd_mm": s["sd_abs_diff_mm"],
                    "MSD_mm": s["mean_diff_mm"],
                    "MSD_sd_mm": s["sd_diff_mm"],
                    "DSC": s["dice_mean"],
                    "HD_mm": s["hausdorff_mm_mean"],
                    "BPD_MAD_mm": s["bpd_mean_abs_diff_mm"],
                    "OFD_MAD_mm": s["ofd_mean_abs_diff_mm"],
                    "detected_pct": s["detected_pct"],
                    "n_images": s["n_images"],
                }
            }
        )
