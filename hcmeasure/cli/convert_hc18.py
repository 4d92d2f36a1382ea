"""``hcmeasure convert-hc18 DATA_DIR --out FILE.json [--split all|train|val]``

Writes a COCO instances JSON of the HC18 training set: one category
``fetal_head`` (id 1), each image with its real size, ``pixel_size_mm`` and
``hc_mm``, and one annotation per image: the filled ellipse fitted to the
annotation ring, as a polygon in COCO coordinates (hcmeasure's pixel-centre
frame shifted by +0.5), with its bbox and area. ``file_name`` is relative to
``DATA_DIR/training_set`` (also recorded as ``info.image_root``). See
:mod:`hcmeasure.data.hc18` for the geometry and the train/val split.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..data import hc18
from .common import CLIError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "data_dir",
        metavar="DATA_DIR",
        help=f"HC18 folder holding {hc18.TRAIN_DIR}/ and {hc18.TRAIN_CSV}",
    )
    parser.add_argument("--out", required=True, metavar="FILE.json", help="COCO JSON to write (atomically)")
    parser.add_argument(
        "--split",
        choices=("all", "train", "val"),
        default="all",
        help="images to write: all, or the train/val split by examination (default: all)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help=f"refit every annotation instead of reusing fitted ellipses cached under ${hc18.ENV_CACHE}",
    )


def run(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).expanduser()
    out = Path(args.out).expanduser()
    if not data_dir.is_dir():
        raise CLIError(
            f"{data_dir}: folder not found. Pass the HC18 folder that holds "
            f"{hc18.TRAIN_DIR}/ and {hc18.TRAIN_CSV}."
        )
    if out.is_dir():
        raise CLIError(f"{out}: is a folder. Pass a file name for --out, e.g. {out / 'hc18_coco.json'}.")
    try:
        records = hc18.read_training_set(data_dir, cache=not args.no_cache)
    except hc18.HC18Error as exc:
        raise CLIError(str(exc)) from None
    selected = [r for r in records if args.split == "all" or r.split == args.split]
    if not selected:
        raise CLIError(
            f"{data_dir}: no image of its {len(records)} falls in the {args.split!r} split "
            "(the split is by examination number); use --split all."
        )
    try:
        hc18.write_coco_json(selected, out, description=f"HC18 {args.split} split, converted by hcmeasure convert-hc18")
    except OSError as exc:
        raise CLIError(f"{out}: cannot write the JSON ({exc.strerror or exc}). Choose a writable location.") from None
    exams = len({r.exam_id for r in selected})
    print(
        f"wrote {out}: {len(selected)} images with one '{hc18.CATEGORY_NAME}' annotation each "
        f"({exams} examinations, split {args.split})"
    )
    return 0
