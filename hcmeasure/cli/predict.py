"""``hcmeasure predict INPUT --out OUT``: measure HC on an image or a folder.

Writes ``OUT/measurements.csv`` (one row per image, with a status), the HC18
leaderboard ``OUT/submission.csv``, and overlays ``OUT/overlays/<name>.png``
(unless ``--no-overlays``). A problem with one image goes into its row and the
run continues; all files are written atomically.
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from ..io.images import IMAGE_EXTENSIONS, ImageReadError, list_images, read_scan
from ..io.tables import (
    MEASUREMENT_COLUMNS,
    SUBMISSION_COLUMNS,
    PixelSize,
    TableError,
    atomic_write_bytes,
    measurement_row,
    read_pixel_size_csv,
    submission_row,
    write_csv_atomic,
)
from ..measurement.head import HeadMeasurement
from .common import CLIError


def add_arguments(p):
    p.add_argument("input", type=Path, help="an image file or a folder of images (png, jpg, tif, bmp)")
    p.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    p.add_argument("--model", type=Path, default=None,
                   help="checkpoint .pth (default: the model shipped with hcmeasure)")
    p.add_argument("--config", type=Path, default=None,
                   help="config the checkpoint was trained with (default: config.yaml beside --model)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--pixel-size-csv", type=Path, default=None,
                      help="HC18-style CSV 'filename,pixel size(mm)' giving each image's pixel size")
    size.add_argument("--pixel-size", type=float, default=None, metavar="MM",
                      help="one pixel size in mm for every image")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    p.add_argument("--batch-size", type=int, default=4, help="images per forward pass (default 4)")
    p.add_argument("--flip-tta", dest="flip_tta", action="store_true", default=None,
                   help="average with the horizontally flipped image (default: as in the config)")
    p.add_argument("--no-flip-tta", dest="flip_tta", action="store_false")
    p.add_argument("--no-overlays", action="store_true", help="do not write overlay PNGs")
    p.add_argument("--perimeter-formula", type=int, choices=(1, 2), default=2,
                   help="Ramanujan approximation for the perimeter (default 2, the more accurate)")


def resolve_model(model: Path | None, config: Path | None) -> tuple[Path, Path]:
    """(config, weights) from the flags, falling back to the shipped default model."""
    from ..predictor import default_model_paths

    if model is None:
        default = default_model_paths()
        if default is None:
            raise CLIError(
                "no --model given and no default model is installed with hcmeasure; "
                "pass --model CKPT.pth --config CFG.yaml (train one with tools/train_net.py)."
            )
        return (config or default[0]), default[1]
    if not model.is_file():
        raise CLIError(f"{model}: checkpoint not found. Pass --model with an existing .pth file.")
    if config is None:
        for candidate in (model.with_suffix(".yaml"), model.parent / "config.yaml"):
            if candidate.is_file():
                config = candidate
                break
        else:
            raise CLIError(
                f"{model}: no config given and none found beside it (config.yaml); "
                "pass --config with the YAML the model was trained with."
            )
    return config, model


def collect_inputs(path: Path) -> tuple[list[Path], list[Path]]:
    if not path.exists():
        raise CLIError(f"{path}: no such file or folder. Pass an image or a folder of images.")
    if path.is_file():
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise CLIError(f"{path}: not an image file (expected one of {', '.join(IMAGE_EXTENSIONS)}).")
        return [path], []
    images, others = list_images(path)
    if not images:
        raise CLIError(
            f"{path}: the folder holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
            "point INPUT at the folder with the scans."
        )
    return images, others


def pixel_sizes_from_args(args) -> tuple[dict[str, PixelSize] | None, PixelSize | None]:
    if args.pixel_size is not None:
        if not (args.pixel_size > 0 and np.isfinite(args.pixel_size)):
            raise CLIError(f"--pixel-size {args.pixel_size}: must be a positive number of millimetres.")
        return None, PixelSize(float(args.pixel_size))
    if args.pixel_size_csv is not None:
        try:
            return read_pixel_size_csv(args.pixel_size_csv), None
        except TableError as exc:
            raise CLIError(str(exc)) from exc
    return None, None


def draw_overlay(gray: np.ndarray, head: HeadMeasurement, hc_text: str) -> bytes:
    """PNG bytes: the scan, the fitted mask outline (green), the ellipse (red) and the HC."""
    img = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    shift = 4  # sub-pixel drawing: coordinates in 1/16 pixel
    scale = 1 << shift
    if head.contour is not None and len(head.contour):
        pts = np.round(head.contour * scale).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(img, [pts], False, (0, 200, 0), 1, cv2.LINE_AA, shift)
    if head.ellipse is not None:
        e = head.ellipse
        cv2.ellipse(
            img,
            (int(round(e.cx * scale)), int(round(e.cy * scale))),
            (int(round(e.a * scale)), int(round(e.b * scale))),
            float(np.degrees(e.angle)), 0, 360, (0, 0, 255), 2, cv2.LINE_AA, shift,
        )
    cv2.putText(img, hc_text, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(img, hc_text, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 255, 255), 2, cv2.LINE_AA)
    ok, buf = cv2.imencode(".png", img)
    return buf.tobytes()


def _row_for(name: str, head: HeadMeasurement, size: PixelSize | None, formula: int) -> dict:
    """Row for a measured image; without a (valid) pixel size HC stays in pixels."""
    status = head.status
    mm = None
    if status == "ok":
        if size is None:
            status = "missing_pixel_size"
        elif size.error:
            status = "invalid_pixel_size"
        else:
            mm = size.value_mm
    elif size is not None and not size.error:
        mm = size.value_mm
    return measurement_row(
        name, head.ellipse, mm, score=head.score, fit_iou=head.fit_iou, status=status,
        perimeter_formula=formula,
    )


def run(args) -> int:
    from ..predictor import HeadPredictor, ModelLoadError, torch_threads_from_env
    from tqdm import tqdm

    if args.batch_size < 1:
        raise CLIError(f"--batch-size {args.batch_size}: must be at least 1.")
    images, others = collect_inputs(args.input)
    table, single = pixel_sizes_from_args(args)
    config, weights = resolve_model(args.model, args.config)
    torch_threads_from_env()
    try:
        predictor = HeadPredictor(config, weights, device=args.device, flip_tta=args.flip_tta)
    except ModelLoadError as exc:
        raise CLIError(str(exc)) from exc

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    overlay_dir = out / "overlays"
    if not args.no_overlays:
        overlay_dir.mkdir(exist_ok=True)

    def load(path: Path):
        try:
            gray = read_scan(path)
        except ImageReadError as exc:
            return path, None, exc
        return path, gray, predictor.preprocess(gray)

    rows: dict[str, dict] = {}
    problems: list[str] = []
    start = time.perf_counter()
    bar = tqdm(total=len(images), unit="img", desc="hcmeasure predict", file=sys.stderr, disable=None)
    with ThreadPoolExecutor(max_workers=2) as io_pool:
        pending_writes = []
        loaded = io_pool.map(load, images)
        batch: list[tuple[Path, np.ndarray, dict]] = []

        def flush():
            try:
                heads = predictor.measure([b[2] for b in batch])
            except Exception as exc:  # keep going: the batch's rows say what happened
                problems.append(f"inference failed on {', '.join(b[0].name for b in batch)}: {exc!r}")
                heads = [HeadMeasurement(None, None, None, "inference_error")] * len(batch)
            for (path, gray, _), head in zip(batch, heads):
                size = single if single is not None else (table.get(path.name) if table is not None else None)
                row = _row_for(path.name, head, size, args.perimeter_formula)
                rows[path.name] = row
                if not args.no_overlays:
                    text = f"HC {row['hc_mm']} mm" if row["hc_mm"] else (
                        f"HC {row['hc_px']} px" if row["hc_px"] else row["status"])
                    target = overlay_dir / f"{path.stem}.png"
                    pending_writes.append(io_pool.submit(
                        lambda g=gray, h=head, t=text, p=target: atomic_write_bytes(p, draw_overlay(g, h, t))))
            bar.update(len(batch))
            batch.clear()

        for path, gray, payload in loaded:
            if gray is None:
                rows[path.name] = measurement_row(path.name, None, None, status=payload.reason)
                problems.append(str(payload))
                bar.update(1)
                continue
            batch.append((path, gray, payload))
            if len(batch) >= args.batch_size:
                flush()
        if batch:
            flush()
        for f in pending_writes:
            f.result()
    bar.close()

    ordered = [rows[p.name] for p in images]
    write_csv_atomic(out / "measurements.csv", MEASUREMENT_COLUMNS, ordered)
    write_csv_atomic(out / "submission.csv", SUBMISSION_COLUMNS, [submission_row(r) for r in ordered])
    elapsed = time.perf_counter() - start
    counts = Counter(r["status"] for r in ordered)
    for msg in problems:
        print(f"warning: {msg}", file=sys.stderr)
    if others:
        print(f"warning: skipped {len(others)} non-image file(s): "
              f"{', '.join(p.name for p in others[:5])}{' ...' if len(others) > 5 else ''}", file=sys.stderr)
    summary = ", ".join(f"{n} {s}" for s, n in counts.most_common())
    print(f"measured {len(ordered)} image(s) in {elapsed:.2f} s ({elapsed / len(ordered):.2f} s/image): "
          f"{summary} -> {out / 'measurements.csv'}")
    return 0
