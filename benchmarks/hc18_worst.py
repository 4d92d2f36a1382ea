#!/usr/bin/env python
"""Pictures of the worst out-of-fold measurements, for the failure analysis in docs/.

    .venv/bin/python benchmarks/hc18_worst.py --oof benchmarks/results/hc18_default_f4_oof.csv \
        --n 20 --out docs/images/hc18_default_f4_worst.jpg

Each tile is one scan, cropped around its head. The reference ellipse (fitted to the
annotation) is drawn in green and the measured one in red. The caption gives the file,
the reference HC, the error in mm, and the review reasons that the cross-fitted
calibration of ``benchmarks/hc18_cv.py report`` gives it. A markdown table of the same
images goes to standard output.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

TILE_PX = 320


def _draw(img: np.ndarray, e, colour) -> None:
    shift = 4
    s = 1 << shift
    cv2.ellipse(img, (int(round(e.cx * s)), int(round(e.cy * s))), (int(round(e.a * s)), int(round(e.b * s))),
                float(np.degrees(e.angle)), 0, 360, colour, 2, cv2.LINE_AA, shift)


def tile(path: Path, truth, pred, caption: list[str]) -> np.ndarray:
    """One captioned tile: the scan around both ellipses, reference green, measured red."""
    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    img = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    _draw(img, truth, (0, 200, 0))
    if pred is not None:
        _draw(img, pred, (0, 0, 255))
    r = 1.15 * max(truth.a, pred.a if pred is not None else 0)
    cx, cy = truth.cx, truth.cy
    h, w = gray.shape
    x0, x1 = int(max(0, cx - r)), int(min(w, cx + r))
    y0, y1 = int(max(0, cy - r)), int(min(h, cy + r))
    crop = img[y0:y1, x0:x1]
    scale = TILE_PX / max(crop.shape[:2])
    crop = cv2.resize(crop, (max(1, int(crop.shape[1] * scale)), max(1, int(crop.shape[0] * scale))),
                      interpolation=cv2.INTER_AREA)
    out = np.zeros((TILE_PX + 18 * len(caption) + 6, TILE_PX, 3), np.uint8)
    out[:crop.shape[0], :crop.shape[1]] = crop
    for i, line in enumerate(caption):
        cv2.putText(out, line, (4, TILE_PX + 16 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return out


def main(argv=None) -> int:
    from hc18_cv import ELLIPSE_PX, _load_oof, trust_table

    from hcmeasure.data.hc18 import load_hc18_dicts
    from hcmeasure.io.tables import atomic_write_bytes
    from hcmeasure.measurement.ellipse import Ellipse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--oof", type=Path, default=REPO / "benchmarks/results/hc18_cv5_oof.csv")
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--per-row", type=int, default=5)
    p.add_argument("--out", type=Path, required=True, help="JPEG contact sheet")
    args = p.parse_args(argv)

    rows = _load_oof(args.oof)
    trust = trust_table(rows)
    reasons = {w["filename"]: w["reasons"] for w in trust["worst"]}
    worst = sorted((r for r in rows if math.isfinite(r["diff_mm"])), key=lambda r: -abs(r["diff_mm"]))[: args.n]
    dicts = {Path(d["file_name"]).name: d for d in load_hc18_dicts(split="all")}
    tiles = []
    print("| # | image | reference HC (mm) | error (mm) | review |\n|---|---|---|---|---|")
    for i, r in enumerate(worst, 1):
        d = dicts[r["filename"]]
        pred = Ellipse.normalized(*(r[k] for k in ELLIPSE_PX))
        why = ", ".join(reasons.get(r["filename"], [])) or "-"
        tiles.append(tile(Path(d["file_name"]), Ellipse(**d["ellipse"]), pred,
                          [f"{i}. {r['filename']}  ref {r['truth_hc_mm']:.1f} mm", f"error {r['diff_mm']:+.1f} mm",
                           f"review: {why}"]))
        print(f"| {i} | {r['filename']} | {r['truth_hc_mm']:.1f} | {r['diff_mm']:+.1f} | {why} |")
    height = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0))) for t in tiles]
    while len(tiles) % args.per_row:
        tiles.append(np.zeros_like(tiles[0]))
    sheet = np.vstack([np.hstack(tiles[k:k + args.per_row]) for k in range(0, len(tiles), args.per_row)])
    ok, data = cv2.imencode(".jpg", sheet, [cv2.IMWRITE_JPEG_QUALITY, 80])
    atomic_write_bytes(args.out, data.tobytes())
    print(f"\n-> {args.out} ({len(data) / 1024:.0f} KiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
