"""``hcmeasure evaluate``: compare a measurements.csv with HC18 reference HC values.

Prints a table (MAD and MSD with their standard deviations, median absolute
difference, and with ``--annotations`` the Dice coefficient and Hausdorff
distance of the ellipses and the BPD / OFD differences) and optionally writes
everything as JSON.

Rows whose status is not ``ok`` are failures: they are counted and listed, and
the metrics are taken over the ``ok`` rows. Rows whose filename is not in the
reference CSV are listed and not counted.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ..evaluation.hc18 import evaluate_measurements
from ..io.tables import TableError, atomic_write_bytes, read_measurements_csv, read_reference_hc_csv
from .common import CLIError

#: Failed / unmatched filenames printed in the table before "... and N more".
MAX_LISTED = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", metavar="CSV", required=True, help="measurements.csv from predict or fit")
    parser.add_argument(
        "--truth",
        metavar="CSV",
        required=True,
        help="reference CSV 'filename,pixel size(mm),head circumference (mm)' "
        "(HC18's training_set_pixel_size_and_HC.csv)",
    )
    parser.add_argument(
        "--annotations",
        metavar="DIR",
        help="folder with the X_Annotation.png outlines: adds Dice and Hausdorff distance",
    )
    parser.add_argument(
        "--json",
        metavar="OUT.json",
        help="write the summary, per-image results and failures as JSON ('-' prints it to stdout)",
    )


def _json_ready(value):
    """NaN and infinities become null, so the file is standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


def _pm(mean: float, sd: float, digits: int) -> str:
    if math.isnan(mean):
        return "n/a"
    text = f"{mean:.{digits}f}"
    if not math.isnan(sd):
        text += f" +/- {sd:.{digits}f}"
    return text


def format_table(result: dict, pred: str, truth: str, with_annotations: bool) -> str:
    s = result["summary"]
    lines = [
        f"HC18 evaluation of {pred} against {truth}",
        f"  images evaluated (ok or review)   {s['n']}",
        f"    of which flagged for review     {s.get('n_review', 0)}",
        f"  failed (not measured)             {s['n_failed']}",
        f"  not in the reference (ignored)    {s['n_not_in_truth']}",
        f"  HC difference pred - truth (mm)",
        f"    MAD     {_pm(s['mean_abs_diff_mm'], s['sd_abs_diff_mm'], 3)}",
        f"    MSD     {_pm(s['mean_diff_mm'], s['sd_diff_mm'], 3)}",
        f"    median  {_pm(s['median_abs_diff_mm'], float('nan'), 3)}",
    ]
    if with_annotations:
        lines += [
            f"  ellipse vs annotation ({s['n_annotated']} image(s))",
            f"    DSC     {_pm(s['dice_mean'], s['dice_sd'], 4)}",
            f"    HD (mm) {_pm(s['hausdorff_mm_mean'], s['hausdorff_mm_sd'], 3)}",
            f"  diameters vs annotation, pred - truth (mm; outer-to-outer at the ellipses)",
            f"    BPD MAD {_pm(s['bpd_mean_abs_diff_mm'], s['bpd_sd_abs_diff_mm'], 3)}"
            f"   MSD {_pm(s['bpd_mean_diff_mm'], s['bpd_sd_diff_mm'], 3)}",
            f"    OFD MAD {_pm(s['ofd_mean_abs_diff_mm'], s['ofd_sd_abs_diff_mm'], 3)}"
            f"   MSD {_pm(s['ofd_mean_diff_mm'], s['ofd_sd_diff_mm'], 3)}",
        ]
    u = result.get("summary_unflagged")
    if s.get("n_review") and u is not None:
        lines += [
            f"  unflagged images only ({u['n']}, status ok)",
            f"    MAD     {_pm(u['mean_abs_diff_mm'], u['sd_abs_diff_mm'], 3)}",
            f"    MSD     {_pm(u['mean_diff_mm'], u['sd_diff_mm'], 3)}",
        ]
        if with_annotations:
            lines.append(f"    DSC     {_pm(u['dice_mean'], u['dice_sd'], 4)}")
    if s.get("n_duplicates"):
        lines.append(f"  duplicate rows (only the first used): {', '.join(result['duplicates'][:MAX_LISTED])}")
    failed = result["failed"]
    if failed:
        lines.append("  failed:")
        lines += [f"    {f['filename']}: {f['status']}" for f in failed[:MAX_LISTED]]
        if len(failed) > MAX_LISTED:
            lines.append(f"    ... and {len(failed) - MAX_LISTED} more")
    missing = result["not_in_truth"]
    if missing:
        shown = ", ".join(missing[:MAX_LISTED]) + (f", ... and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else "")
        lines.append(f"  not in the reference: {shown}")
    notes = [r for r in result["per_image"] if r.get("note")]
    if notes:
        lines.append("  notes:")
        lines += [f"    {r['filename']}: {r['note']}" for r in notes[:MAX_LISTED]]
        if len(notes) > MAX_LISTED:
            lines.append(f"    ... and {len(notes) - MAX_LISTED} more")
    return "\n".join(lines)


def run(args) -> int:
    try:
        rows = read_measurements_csv(args.pred)
    except TableError as exc:
        raise CLIError(f"--pred {exc}") from None
    try:
        truth = read_reference_hc_csv(args.truth)
    except TableError as exc:
        raise CLIError(f"--truth {exc}") from None
    if not rows:
        raise CLIError(f"--pred {args.pred}: has a header but no rows; nothing to evaluate.")
    if not any((r.get("filename") or "").strip() in truth for r in rows):
        raise CLIError(
            f"--pred {args.pred}: none of its {len(rows)} filename(s) (e.g. {rows[0].get('filename')!r}) "
            f"appears in --truth {args.truth}. Pass the reference CSV of the same images."
        )
    annotations = None
    if args.annotations:
        annotations = Path(args.annotations)
        if not annotations.is_dir():
            raise CLIError(
                f"--annotations {annotations}: no such folder. Pass the folder holding the "
                "X_Annotation.png files (HC18's training_set)."
            )
    result = evaluate_measurements(rows, truth, annotations)
    table = format_table(result, args.pred, args.truth, annotations is not None)
    payload = json.dumps(
        _json_ready({"pred": str(args.pred), "truth": str(args.truth), **result}), indent=2
    )
    if args.json == "-":
        print(table, file=sys.stderr)
        print(payload)
        return 0
    print(table)
    if args.json:
        try:
            atomic_write_bytes(args.json, (payload + "\n").encode("utf-8"))
        except OSError as exc:
            raise CLIError(f"--json {args.json}: cannot write ({exc}). Pass a writable path.") from None
        print(f"wrote {args.json}")
    return 0
