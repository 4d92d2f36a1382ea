#!/usr/bin/env python
"""The HC error that the head refiner's crop grid and contour fit alone would leave.

    .venv/bin/python benchmarks/refiner_grid_floor.py [--size 256] [--blur-cells 1.0] [--json PATH]

For every labelled HC18 image, the reference ellipse is drawn into the refiner's crop
(``--size`` cells over the ellipse's box grown by the refiner's context) as a perfect
head probability map, blurred by a Gaussian of ``--blur-cells`` cells (a soft edge, as
the network's), and measured exactly as predict measures the refiner's output
(:func:`hcmeasure.measurement.head.measure_head_from_mask_probs`). The HC difference
against the CSV's reference is what the grid and the fit cost with a perfect network:
if it is far below the out-of-fold error, the crop's resolution is not what limits it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256, help="crop side in cells (the refiner's HEAD_CROP.SIZE)")
    p.add_argument("--context", type=float, default=0.1, help="box growth per side (HEAD_CROP.CONTEXT)")
    p.add_argument("--blur-cells", type=float, default=1.0, help="Gaussian sigma of the edge, in cells (0: hard)")
    p.add_argument("--limit", type=int, default=0, help="only the first N images (0 = all)")
    p.add_argument("--json", type=Path, help="write the figures here too")
    args = p.parse_args(argv)

    import cv2

    from hcmeasure.data.hc18 import read_training_set
    from hcmeasure.data.head_crops import ellipse_box, ellipse_cells, head_crop_box
    from hcmeasure.measurement.ellipse import ramanujan_perimeter
    from hcmeasure.measurement.head import measure_head_from_mask_probs

    records = read_training_set()
    if args.limit:
        records = records[: args.limit]
    diffs_mm = []
    for r in records:
        box = head_crop_box(ellipse_box(r.ellipse), args.context)
        probs = ellipse_cells(r.ellipse, box, args.size).astype(np.float32)
        if args.blur_cells > 0:
            probs = cv2.GaussianBlur(probs, (0, 0), args.blur_cells)
        head = measure_head_from_mask_probs(probs, box, (r.height, r.width), mask_threshold=0.5, iou_on_grid=True)
        if head.ellipse is None:
            print(f"{r.filename}: no ellipse measured on the drawn reference", file=sys.stderr)
            diffs_mm.append(float("nan"))
            continue
        diffs_mm.append(ramanujan_perimeter(head.ellipse.a, head.ellipse.b) * r.pixel_size_mm - r.hc_mm)
    d = np.asarray(diffs_mm)
    ok = np.isfinite(d)
    result = {
        "command": " ".join(["benchmarks/refiner_grid_floor.py"] + list(argv if argv is not None else sys.argv[1:])),
        "n_images": int(len(d)), "n_measured": int(ok.sum()), "size_cells": args.size,
        "context": args.context, "blur_cells": args.blur_cells,
        "mad_mm": float(np.abs(d[ok]).mean()), "msd_mm": float(d[ok].mean()), "max_abs_mm": float(np.abs(d[ok]).max()),
    }
    print(f"{result['n_measured']} of {result['n_images']} images, {args.size} cells: HC difference of the drawn "
          f"reference MAD {result['mad_mm']:.3f} mm, MSD {result['msd_mm']:+.3f} mm, largest {result['max_abs_mm']:.3f} mm")
    if args.json:
        from hcmeasure.io.tables import write_json_atomic

        write_json_atomic(args.json, result)
        print(f"-> {args.json}")
    return 0 if ok.all() else 1


if __name__ == "__main__":
    sys.exit(main())
