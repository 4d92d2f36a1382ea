"""``hcmeasure segment INPUT --config CFG --model CKPT --out DIR``: semantic masks.

Runs any registered semantic-segmentation model (a meta-architecture whose inference
returns ``sem_seg`` scores: ``GLoFFNet``, ``UNet``, ...) on an image or a folder of
images and writes, for each image ``<stem>.<ext>``:

* ``DIR/masks/<stem>.png`` — the class-index mask at the image's own size, a palette PNG
  whose pixel values are the class indices (0 = background) and whose palette shows the
  class colours (Kvasir: polyp white; NeoPolyp: neoplastic red, non-neoplastic green);
* ``DIR/overlays/<stem>.png`` — the image with the classes blended in and outlined
  (unless ``--no-overlays``);
* a row of ``DIR/segmentation.csv``: file name, status, size, and per foreground class its
  pixel count and area fraction.

``--tile SIZE --overlap N`` runs the model on SIZE x SIZE tiles of each image at its own
resolution (the config's test resize is skipped), ``--batch-size`` tiles at a time, and
stitches the class scores (``--tile-merge``: per-class maximum over overlapping tiles, or
a smooth weighted blend) before the arg-max: any semantic model can then segment images
larger than those it was trained on without holding all tiles' activations at once
(:mod:`hcmeasure.semseg.tiling`).

Class names and colours come from the metadata of the config's first test (else train)
dataset when its ``stuff_classes`` fit ``MODEL.SEM_SEG_HEAD.NUM_CLASSES``.

``--rle-csv FILE`` also writes the BKAI-IGH NeoPolyp Kaggle submission for the images:
header ``Id,Expected``; per image (sorted by file name) and per foreground class c = 1, 2,
one row ``<image id>_<c - 1>`` — ``_0`` neoplastic (red), ``_1`` non-neoplastic (green);
the image id is the file name up to its first dot — whose ``Expected`` is the run-length
encoding of that class's mask at the image's original size: pixels numbered from 1 in
row-major order (row by row, left to right), ``"start length"`` pairs separated by
spaces, empty for an absent class (:func:`hcmeasure.studies.polyp.submission.submission_rows`).

A problem with one image (unreadable file, failed inference) goes into its status and
the run continues; in the RLE CSV such an image gets empty rows (and a warning). Files
are written atomically.
"""
from __future__ import annotations

import io
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..io.images import IMAGE_EXTENSIONS, list_images
from ..io.tables import atomic_write_bytes, write_csv_atomic
from .common import CLIError

__all__ = ["add_arguments", "run", "SemanticPredictor", "mask_png_bytes", "overlay_png_bytes"]


def add_arguments(p):
    p.add_argument("input", type=Path, help="an image file or a folder of images (png, jpg, tif, bmp)")
    p.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    p.add_argument("--model", type=Path, required=True, help="checkpoint .pth written by tools/train_net.py")
    p.add_argument("--config", type=Path, default=None,
                   help="config the checkpoint was trained with (default: config.yaml beside --model)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    p.add_argument("--batch-size", type=int, default=4, help="images per forward pass (default 4)")
    p.add_argument("--no-overlays", action="store_true", help="do not write overlay PNGs")
    p.add_argument("--alpha", type=float, default=0.45, help="opacity of the classes in overlays (default 0.45)")
    p.add_argument("--rle-csv", type=Path, default=None, metavar="FILE",
                   help="also write the BKAI-IGH NeoPolyp Kaggle submission (Id,Expected RLE rows) to FILE")
    p.add_argument("--tile", type=int, default=0, metavar="SIZE",
                   help="predict in SIZE x SIZE tiles at the image's own resolution (no test resize) and "
                        "stitch them: for images larger than the training size (default 0: whole image)")
    p.add_argument("--overlap", type=int, default=64, metavar="N",
                   help="pixels shared by neighbouring tiles with --tile (default 64)")
    p.add_argument("--tile-merge", choices=("max", "blend"), default="max",
                   help="how overlapping tiles are merged: per-class maximum or smooth weighted blend")


def _default_colors(n: int) -> list[tuple[int, int, int]]:
    base = [(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255)]
    rng = np.random.default_rng(0)
    while len(base) < n:
        base.append(tuple(int(v) for v in rng.integers(0, 256, 3)))
    return base[:n]


class SemanticPredictor:
    """A semantic model loaded strictly from ``config_file`` + ``weights``; predicts
    class-index masks at each image's own size."""

    def __init__(self, config_file, weights, device: str | None = None, opts=None, *, tile: int = 0,
                 overlap: int = 0, tile_merge: str = "max", tile_batch: int = 1):
        from detectron2.data import MetadataCatalog
        from detectron2.data import transforms as T

        from ..semseg.data import build_semantic_augmentations
        from ..modeling.loading import load_model

        opts = list(opts or [])
        if tile:
            opts += ["HCMEASURE.TILE.TEST_SIZE", 0]  # the model's own tiling would nest inside this one
        cfg, model = load_model(config_file, weights, device, opts)
        self.cfg, self.model = cfg, model
        self.config_file = Path(config_file)
        # Tiles run at the image's own resolution: the test resize is left out.
        self.augmentations = T.AugmentationList([] if tile else build_semantic_augmentations(cfg, is_train=False))
        self.runner = model
        if tile:
            from ..semseg.tiling import TiledSemanticModel

            self.runner = TiledSemanticModel(model, tile, overlap, tile_merge, tile_batch)
        self.input_format = cfg.INPUT.FORMAT
        n = int(cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES)
        names, colors = [f"class_{i}" for i in range(n)], _default_colors(n)
        for ds in list(cfg.DATASETS.TEST) + list(cfg.DATASETS.TRAIN):
            meta = MetadataCatalog.get(ds)
            classes = meta.get("stuff_classes", None)
            if classes and len(classes) == n:
                names = list(classes)
                cols = meta.get("stuff_colors", None)
                if cols and len(cols) == n:
                    colors = [tuple(int(v) for v in c) for c in cols]
                break
        self.num_classes, self.class_names, self.class_colors = n, names, colors

    def read(self, path: Path) -> tuple[np.ndarray, dict]:
        """(RGB uint8 image, model input dict) for one file; raises on unreadable files."""
        import torch
        from detectron2.data import detection_utils as utils
        from detectron2.data import transforms as T

        image = utils.read_image(str(path), format=self.input_format)
        h, w = image.shape[:2]
        aug = T.AugInput(image)
        self.augmentations(aug)
        tensor = torch.as_tensor(np.ascontiguousarray(aug.image.transpose(2, 0, 1)))
        rgb = image[:, :, ::-1] if self.input_format == "BGR" else image
        if rgb.ndim == 2 or rgb.shape[2] == 1:
            rgb = np.repeat(rgb.reshape(h, w, 1), 3, axis=2)
        return np.ascontiguousarray(rgb), {"image": tensor, "height": h, "width": w}

    def predict(self, inputs: list[dict]) -> list[np.ndarray]:
        """Class-index masks (uint8, (height, width) of each input)."""
        import torch

        if not inputs:
            return []
        with torch.inference_mode():
            outputs = self.runner(inputs)
        masks = []
        for out in outputs:
            if not isinstance(out, dict) or "sem_seg" not in out:
                raise CLIError(
                    f"{self.config_file}: MODEL.META_ARCHITECTURE {self.cfg.MODEL.META_ARCHITECTURE} does not "
                    "return 'sem_seg' scores; 'segment' needs a semantic-segmentation model "
                    "(e.g. configs/Polyp/*.yaml, configs/NeoPolyp/*.yaml).")
            masks.append(out["sem_seg"].argmax(dim=0).to(torch.uint8).cpu().numpy())
        return masks


def mask_png_bytes(mask: np.ndarray, colors) -> bytes:
    """Palette PNG: pixel values = class indices, palette = class colours."""
    im = Image.fromarray(np.asarray(mask, np.uint8), mode="P")
    palette = [v for c in colors for v in c]
    im.putpalette(palette + [0] * (768 - len(palette)))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def overlay_png_bytes(rgb: np.ndarray, mask: np.ndarray, colors, alpha: float = 0.45) -> bytes:
    """PNG of the image with each foreground class blended in its colour and outlined."""
    out = rgb.astype(np.float32)
    for c in range(1, len(colors)):
        sel = mask == c
        if not sel.any():
            continue
        out[sel] = (1.0 - alpha) * out[sel] + alpha * np.asarray(colors[c], np.float32)
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    bgr = np.ascontiguousarray(out[:, :, ::-1])
    thickness = max(1, round(max(mask.shape) / 400))
    for c in range(1, len(colors)):
        sel = (mask == c).astype(np.uint8)
        if not sel.any():
            continue
        contours, _ = cv2.findContours(sel, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        r, g, b = colors[c]
        cv2.drawContours(bgr, contours, -1, (int(b), int(g), int(r)), thickness, cv2.LINE_AA)
    ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise ValueError("PNG encoding of the overlay failed")
    return buf.tobytes()


def _collect(path: Path) -> tuple[list[Path], list[Path]]:
    if not path.exists():
        raise CLIError(f"{path}: no such file or folder. Pass an image or a folder of images.")
    if path.is_file():
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise CLIError(f"{path}: not an image file (expected one of {', '.join(IMAGE_EXTENSIONS)}).")
        return [path], []
    images, others = list_images(path)
    if not images:
        raise CLIError(f"{path}: the folder holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                       "point INPUT at the folder with the test images.")
    return images, others


def _output_names(images: list[Path]) -> dict[Path, str]:
    """``<stem>.png``, or ``<file name>.png`` where two inputs share a stem."""
    stems = Counter(p.stem for p in images)
    return {p: (p.stem if stems[p.stem] == 1 else p.name) + ".png" for p in images}


def run(args) -> int:
    from ..studies.polyp.submission import SUBMISSION_COLUMNS, submission_image_id, submission_rows
    from ..predictor import ModelLoadError, torch_threads_from_env
    from .predict import resolve_model

    if args.batch_size < 1:
        raise CLIError(f"--batch-size {args.batch_size}: must be at least 1.")
    if not 0.0 <= args.alpha <= 1.0:
        raise CLIError(f"--alpha {args.alpha}: must be between 0 and 1.")
    if args.tile < 0 or (args.tile and not 0 <= args.overlap < args.tile):
        raise CLIError(f"--tile {args.tile} --overlap {args.overlap}: the tile size must be positive and the "
                       "overlap in [0, tile size).")
    images, others = _collect(args.input)
    config, weights = resolve_model(args.model, args.config)
    torch_threads_from_env()
    try:
        predictor = SemanticPredictor(config, weights, device=args.device, tile=args.tile, overlap=args.overlap,
                                      tile_merge=args.tile_merge, tile_batch=args.batch_size)
    except ModelLoadError as exc:
        raise CLIError(str(exc)) from exc
    if args.rle_csv is not None and predictor.num_classes < 2:
        raise CLIError(f"--rle-csv: the model of {config} has {predictor.num_classes} class(es); "
                       "a submission needs background plus at least one class.")

    out = args.out
    mask_dir, overlay_dir = out / "masks", out / "overlays"
    mask_dir.mkdir(parents=True, exist_ok=True)
    if not args.no_overlays:
        overlay_dir.mkdir(exist_ok=True)
    names = _output_names(images)
    fg = list(range(1, predictor.num_classes))
    columns = ["filename", "status", "width", "height"]
    for c in fg:
        columns += [f"{predictor.class_names[c]}_pixels", f"{predictor.class_names[c]}_fraction"]

    rows: dict[Path, dict] = {}
    rle_rows: dict[Path, list[dict]] = {}
    problems: list[str] = []
    start = time.perf_counter()

    def finish(path: Path, rgb: np.ndarray, mask: np.ndarray):
        h, w = mask.shape
        row = {"filename": path.name, "status": "ok", "width": w, "height": h}
        for c in fg:
            n = int(np.count_nonzero(mask == c))
            row[f"{predictor.class_names[c]}_pixels"] = n
            row[f"{predictor.class_names[c]}_fraction"] = f"{n / mask.size:.6f}"
        try:
            atomic_write_bytes(mask_dir / names[path], mask_png_bytes(mask, predictor.class_colors))
            if not args.no_overlays:
                atomic_write_bytes(overlay_dir / names[path],
                                   overlay_png_bytes(rgb, mask, predictor.class_colors, args.alpha))
        except OSError as exc:
            row["status"] = "write_error"
            problems.append(f"{path.name}: cannot write its outputs ({exc})")
        rows[path] = row
        if args.rle_csv is not None:
            rle_rows[path] = submission_rows(submission_image_id(path), mask, predictor.num_classes)

    def fail(path: Path, status: str, message: str):
        rows[path] = {"filename": path.name, "status": status}
        problems.append(message)
        if args.rle_csv is not None:
            rle_rows[path] = submission_rows(submission_image_id(path), np.zeros((1, 1), np.uint8),
                                             predictor.num_classes)

    batch: list[tuple[Path, np.ndarray, dict]] = []

    def flush():
        try:
            masks = predictor.predict([b[2] for b in batch])
        except CLIError:
            raise
        except Exception as exc:  # keep going: each image of the batch says what happened
            for path, _, _ in batch:
                fail(path, "inference_error", f"{path.name}: inference failed ({exc!r})")
            batch.clear()
            return
        for (path, rgb, _), mask in zip(batch, masks):
            finish(path, rgb, mask)
        batch.clear()

    for path in images:
        try:
            rgb, inp = predictor.read(path)
        except Exception as exc:  # unreadable or corrupt file
            fail(path, "unreadable_image", f"{path}: cannot read the image ({exc})")
            continue
        batch.append((path, rgb, inp))
        if len(batch) >= args.batch_size:
            flush()
    if batch:
        flush()

    ordered = [rows[p] for p in images]
    write_csv_atomic(out / "segmentation.csv", columns, ordered)
    if args.rle_csv is not None:
        write_csv_atomic(args.rle_csv, SUBMISSION_COLUMNS,
                         [r for p in sorted(images, key=lambda q: q.name) for r in rle_rows[p]])
    elapsed = time.perf_counter() - start
    for msg in problems:
        print(f"warning: {msg}", file=sys.stderr)
    if others:
        print(f"warning: skipped {len(others)} non-image file(s): "
              f"{', '.join(p.name for p in others[:5])}{' ...' if len(others) > 5 else ''}", file=sys.stderr)
    counts = Counter(r["status"] for r in ordered)
    failed = len(ordered) - counts.get("ok", 0)
    if failed and args.rle_csv is not None:
        print(f"warning: {failed} image(s) have empty rows in {args.rle_csv} (see their status in "
              f"{out / 'segmentation.csv'})", file=sys.stderr)
    summary = ", ".join(f"{n} {s}" for s, n in counts.most_common())
    print(f"segmented {len(ordered)} image(s) in {elapsed:.1f} s: {summary} -> {mask_dir}"
          + (f"; submission -> {args.rle_csv}" if args.rle_csv is not None else ""))
    return 0 if counts.get("ok", 0) else 1
