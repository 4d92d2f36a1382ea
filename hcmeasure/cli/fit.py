"""``hcmeasure fit``: fit head ellipses to existing masks or outlines.

Every image in the folder is read as a binary mask (filled segmentation or an
HC18-style outline ring, told apart automatically unless ``--kind`` says) and
measured. The result is ``OUT/measurements.csv`` with the same columns as
``hcmeasure predict`` writes, one row per image, written atomically.

* An HC18 annotation ``X_Annotation.png`` is reported under the image name
  ``X.png``, so its row matches the pixel-size CSV. When the folder holds both
  ``X.png`` and ``X_Annotation.png`` (an HC18 training folder), ``X.png`` is the
  ultrasound scan, not a mask, and is skipped.
* Mask values: pixels above half the image's maximum are foreground (so 0/1,
  0/255 and slightly noisy masks all work).
* Per-image problems go into the row's ``status`` and the run goes on:
  ``unreadable_image``, ``not_a_mask`` (many grey levels, e.g. a scan),
  ``no_head_detected`` (empty mask), ``ellipse_fit_failed``,
  ``missing_pixel_size`` (no pixel size for the file: the pixel columns are
  still filled), ``invalid_pixel_size``.
* Each mask's ellipse is measured the way ``hcmeasure predict`` measures a model's
  (:func:`hcmeasure.measurement.record.measure_head`), with the pixel size of
  ``--pixel-size`` or ``--pixel-size-csv`` (:mod:`hcmeasure.io.calibration`; its source
  is written in ``pixel_size_source``); no gestational age is estimated from the HC.
* BPD, OFD and the cephalic index are filled with HC; a known gestational age
  (``--ga`` or the CSV's ``ga`` column) adds the INTERGROWTH-21st HC centile, as in
  ``hcmeasure predict``.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from ..io.biometry_outputs import known_ga_messages
from ..io.calibration import resolve_calibration
from ..io.images import IMAGE_EXTENSIONS, ImageReadError, list_images, read_scan
from ..io.tables import MEASUREMENT_COLUMNS, TableError, format_measurement, read_scan_info_csv, write_csv_atomic
from ..measurement.ellipse import EllipseFitError, fit_ellipse
from ..measurement.growth import KnownGA, known_ga, resolve_known_ga
from ..measurement.head import HeadMeasurement
from ..measurement.record import MeasurementOptions, PixelCalibration, measure_head
from .common import CLIError, pixel_size_overrides

ANNOTATION_SUFFIX = "_Annotation"

#: A mask may have at most this share of pixels with intermediate grey levels.
MAX_GREY_FRACTION = 0.05


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="DIR", help="folder of mask or outline images (or one image file)")
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument(
        "--pixel-size-csv",
        metavar="CSV",
        help="HC18-style CSV 'filename,pixel size(mm)[,...]' giving each image's pixel size",
    )
    sizes.add_argument("--pixel-size", metavar="MM", type=float, help="one pixel size (mm) for every image")
    parser.add_argument("--out", metavar="OUT", required=True, help="output folder for measurements.csv")
    parser.add_argument(
        "--kind",
        choices=("auto", "filled", "outline"),
        default="auto",
        help="mask kind: filled region, outline ring, or decide per image (default: auto)",
    )
    parser.add_argument(
        "--perimeter-formula",
        type=int,
        choices=(1, 2),
        default=2,
        help="Ramanujan approximation used for the perimeter (default: 2)",
    )
    parser.add_argument("--ga", default=None, metavar="W+D",
                        help="known gestational age (weeks+days, e.g. 32+4) of every mask: HC centile "
                             "(per image: a 'ga' column in --pixel-size-csv)")


def report_name(path: Path) -> str:
    """Image name a mask is reported under: ``X_Annotation.png`` -> ``X.png``."""
    stem = path.stem
    if stem.endswith(ANNOTATION_SUFFIX) and len(stem) > len(ANNOTATION_SUFFIX):
        return stem[: -len(ANNOTATION_SUFFIX)] + path.suffix
    return path.name


def binarize(image: np.ndarray) -> np.ndarray | None:
    """Foreground of a mask image (above half its maximum), or None if it is not a mask."""
    peak = int(image.max())
    if peak == 0:
        return np.zeros(image.shape, bool)
    grey = (image > 0.1 * peak) & (image < 0.9 * peak)
    if grey.mean() > MAX_GREY_FRACTION:
        return None
    return image > peak / 2.0


def _inputs(folder: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """(masks to measure, scans skipped because their annotation is present, other files)."""
    if not folder.exists():
        raise CLIError(f"{folder}: no such folder. Pass the folder holding the mask images.")
    if folder.is_file():
        if folder.suffix.lower() not in IMAGE_EXTENSIONS:
            raise CLIError(
                f"{folder}: not an image file (expected one of {', '.join(IMAGE_EXTENSIONS)}). "
                "Pass a folder of masks or a mask image."
            )
        return [folder], [], []
    images, others = list_images(folder)
    names = {p.name for p in images}
    masks, scans = [], []
    for p in images:
        if not p.stem.endswith(ANNOTATION_SUFFIX) and f"{p.stem}{ANNOTATION_SUFFIX}{p.suffix}" in names:
            scans.append(p)
        else:
            masks.append(p)
    if not masks:
        found = f" (it holds {len(others)} other file(s), e.g. {others[0].name})" if others else ""
        raise CLIError(
            f"{folder}: no mask images found{found}. Pass a folder with "
            f"{', '.join(IMAGE_EXTENSIONS)} masks or HC18 *_Annotation.png files."
        )
    return masks, scans, others


def measure_file(path: Path, name: str, kind: str, calibration: PixelCalibration,
                 options: MeasurementOptions = MeasurementOptions(), known: KnownGA | None = None,
                 pregnancy: str = "") -> dict[str, str]:
    """One measurements.csv row for the mask at ``path`` measured with ``calibration``
    (``known``: its known GA)."""
    def row(head: HeadMeasurement) -> dict[str, str]:
        return format_measurement(measure_head(name, head, calibration, options, known_ga=known,
                                               pregnancy=pregnancy))

    def failed(status: str) -> dict[str, str]:
        return row(HeadMeasurement(None, None, None, status))

    try:
        image = read_scan(path)
    except ImageReadError as exc:
        return failed(exc.reason)
    mask = binarize(image)
    if mask is None:
        return failed("not_a_mask")
    if not mask.any():
        return failed("no_head_detected")
    try:
        fit = fit_ellipse(mask, kind=kind)
    except EllipseFitError:
        return failed("ellipse_fit_failed")
    return row(HeadMeasurement(fit.ellipse, None, fit.iou, "ok"))


def run(args) -> int:
    folder = Path(args.input)
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise CLIError(f"--out {out_dir}: exists and is not a folder. Pass a folder for measurements.csv.")
    masks, scans, others = _inputs(folder)
    overrides = pixel_size_overrides(args.pixel_size, args.pixel_size_csv)
    ga_arg = known_ga(args.ga, "ga_arg") if args.ga is not None else None
    if ga_arg is not None and ga_arg.status == "invalid_ga":
        raise CLIError(f"--ga: {ga_arg.message}.")
    try:
        info = read_scan_info_csv(args.pixel_size_csv) if args.pixel_size_csv else {}
    except TableError as exc:
        raise CLIError(str(exc)) from None
    ga_texts = {n: i.ga for n, i in info.items()}
    options = MeasurementOptions(perimeter_formula=args.perimeter_formula)
    rows = []
    for path in masks:
        name = report_name(path)
        calibration, _ = resolve_calibration(name, path.name, overrides)
        scan = info.get(name) or info.get(path.name)
        rows.append(measure_file(path, name, args.kind, calibration, options,
                                 resolve_known_ga(name, path.name, ga_arg, ga_texts, None),
                                 scan.pregnancy if scan else ""))
    out_path = out_dir / "measurements.csv"
    try:
        write_csv_atomic(out_path, MEASUREMENT_COLUMNS, rows)
    except OSError as exc:
        raise CLIError(f"{out_path}: cannot write ({exc}). Pass a writable --out folder.") from None
    counts = Counter(r["status"] for r in rows)
    parts = [f"{counts.pop('ok', 0)} ok"] + [f"{n} {s}" for s, n in sorted(counts.items())]
    extra = ""
    if scans:
        extra += f"; skipped {len(scans)} scan(s) that have an annotation"
    if others:
        extra += f"; ignored {len(others)} non-image file(s)"
    print(f"fit: {len(rows)} image(s): {', '.join(parts)}{extra} -> {out_path}")
    for msg in known_ga_messages(rows):
        print(f"warning: {msg}", file=sys.stderr)
    if others:
        print(f"hcmeasure fit: ignored non-image files: {', '.join(p.name for p in others[:10])}"
              + (" ..." if len(others) > 10 else ""), file=sys.stderr)
    return 0
