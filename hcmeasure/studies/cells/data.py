"""Cell outlines in large microscopy images: targets from RGBA outline drawings, tiled
training sets, synthetic outline images.

Targets
-------
The sister study's annotations are RGBA images of the micrograph's size holding a thin
red outline around every cell on a transparent background. :func:`outline_target` turns
one into class indices, each step a documented option (``HCMEASURE.CELLS.*``):

1. outline pixels — ``channel="alpha"``: alpha > ``threshold``; ``channel="red"``: red >
   ``threshold`` while green and blue are not (and alpha > 0 where there is alpha). A
   grey (``L``) or binary mask file is read as outline where its value > ``threshold``,
   so plain black/white masks work too;
2. widening — ``widen="none"``; ``"dilate"``: dilation by a disk of ``radius`` pixels;
   ``"blur"``: Gaussian blur of sigma ``radius`` kept where it exceeds half the peak that
   a one-pixel line reaches (about the blur's full width at half maximum);
3. target — ``"outline"``: 1 = outline, 0 = rest; ``"filled"``: 1 = cell (enclosed
   interior and its outline); ``"outline_filled"``: 1 = outline, 2 = interior.
   :func:`signed_distance_map` gives the study's proposed regression target (negative
   inside cells, positive outside, 0 on the outline) for models that regress it; the
   classification models here use the three class targets.

The decoder is registered as ``"rgba_outline"``; :class:`~hcmeasure.semseg.data.
SemanticDatasetMapper` passes it the config's options.

Datasets
--------
:func:`register_cells_dataset` registers a folder pair (``images/``, ``masks/`` with the
same file stems): for training, one dataset dict per tile (``HCMEASURE.TILE.SIZE``
squares with ``OVERLAP`` pixels shared, a grid that covers every pixel; fixed, or a
random grid tile per sample); for testing,
whole images. ``$HCMEASURE_CELLS_ROOT`` (``train/`` and ``val/`` of that layout, default
``datasets/cells``) is registered as ``cells_train`` (each sample a random tile of the
config's grid, 200 px tiles with 100 px overlap by default) and ``cells_val``.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils.file_io import PathManager

from ...semseg.data import register_label_decoder
from ...semseg.tiling import tile_grid

__all__ = [
    "CHANNELS", "WIDENINGS", "TARGETS", "outline_mask", "widen_outline", "fill_outlines",
    "signed_distance_map", "outline_target", "decode_rgba_outline", "target_options_from_cfg",
    "load_cells", "register_cells_dataset", "synthetic_cells", "write_synthetic_cells",
    "CELL_CLASSES",
]

CHANNELS = ("alpha", "red")
WIDENINGS = ("none", "dilate", "blur")
TARGETS = ("outline", "filled", "outline_filled")
CELL_CLASSES = {"outline": ["background", "outline"], "filled": ["background", "cell"],
                "outline_filled": ["background", "outline", "interior"]}
_COLORS = [(0, 0, 0), (255, 0, 0), (0, 200, 255)]
_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def outline_mask(label: np.ndarray, channel: str = "alpha", threshold: int = 127) -> np.ndarray:
    """Boolean outline of an annotation array: (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA."""
    if channel not in CHANNELS:
        raise ValueError(f"outline channel must be one of {CHANNELS}, got {channel!r}")
    a = np.asarray(label)
    if a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 1):
        return a.reshape(a.shape[:2]) > threshold
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"outline annotations must be grey, RGB or RGBA, got shape {a.shape}")
    if channel == "alpha":
        if a.shape[2] != 4:
            raise ValueError("outline channel 'alpha' needs an RGBA annotation; this one is RGB: "
                             "set HCMEASURE.CELLS.CHANNEL to 'red'")
        return a[..., 3] > threshold
    r, g, b = (a[..., i].astype(np.int32) for i in range(3))
    mask = (r > threshold) & (g <= threshold) & (b <= threshold)
    if a.shape[2] == 4:
        mask &= a[..., 3] > 0
    return mask


def widen_outline(mask: np.ndarray, widen: str = "none", radius: float = 1.0) -> np.ndarray:
    """Thicker outline (boolean): see the module docstring."""
    if widen not in WIDENINGS:
        raise ValueError(f"outline widening must be one of {WIDENINGS}, got {widen!r}")
    mask = np.asarray(mask, bool)
    if widen == "none" or radius <= 0:
        return mask.copy()
    if widen == "dilate":
        r = int(round(radius))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        return cv2.dilate(mask.astype(np.uint8), kernel) > 0
    sigma = float(radius)
    k = 2 * int(np.ceil(3 * sigma)) + 1
    line = np.zeros((k, k), np.float32)
    line[:, k // 2] = 1.0
    peak = cv2.GaussianBlur(line, (k, k), sigma, borderType=cv2.BORDER_REPLICATE).max()
    blurred = cv2.GaussianBlur(mask.astype(np.float32), (k, k), sigma, borderType=cv2.BORDER_CONSTANT)
    return (blurred >= 0.5 * peak) | mask


def fill_outlines(mask: np.ndarray) -> np.ndarray:
    """Boolean cells: the outline plus every region it encloses (regions reaching the image
    border are not enclosed and stay background)."""
    return ndimage.binary_fill_holes(np.asarray(mask, bool))


def signed_distance_map(mask: np.ndarray) -> np.ndarray:
    """float32 signed distance (pixels) to the outline of the cells of an outline mask:
    negative inside cells, positive outside, 0 on the outline."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return np.full(mask.shape, np.inf, np.float32)
    dist = ndimage.distance_transform_edt(~mask).astype(np.float32)
    inside = fill_outlines(mask) & ~mask
    return np.where(inside, -dist, dist)


def outline_target(label: np.ndarray, *, channel: str = "alpha", threshold: int = 127, widen: str = "none",
                   radius: float = 1.0, target: str = "outline") -> np.ndarray:
    """(H, W) uint8 class indices of an annotation array (see the module docstring)."""
    if target not in TARGETS:
        raise ValueError(f"cell target must be one of {TARGETS}, got {target!r}")
    thin = outline_mask(label, channel, threshold)
    outline = widen_outline(thin, widen, radius)
    if target == "outline":
        return outline.astype(np.uint8)
    filled = fill_outlines(thin) | outline
    if target == "filled":
        return filled.astype(np.uint8)
    out = np.zeros(thin.shape, np.uint8)
    out[filled] = 2
    out[outline] = 1
    return out


def _read_annotation(path: str) -> np.ndarray:
    with PathManager.open(path, "rb") as f:
        im = Image.open(f)
        if im.mode in ("L", "1", "I", "I;16"):
            return np.asarray(im.convert("L"))
        if im.mode != "RGB":
            im = im.convert("RGBA")  # palette and LA images keep their transparency
        return np.asarray(im)


def target_options_from_cfg(cfg) -> dict:
    c = cfg.HCMEASURE.CELLS
    return {"channel": c.CHANNEL, "threshold": int(c.THRESHOLD), "widen": c.WIDEN,
            "radius": float(c.WIDEN_RADIUS), "target": c.TARGET}


@register_label_decoder("rgba_outline", options_from_cfg=target_options_from_cfg)
def decode_rgba_outline(path: str, **options) -> np.ndarray:
    """Label decoder: RGBA (or RGB, grey) outline drawing -> class indices."""
    return outline_target(_read_annotation(path), **options)


def _pairs(image_dir: Path, mask_dir: Path) -> list[tuple[Path, Path]]:
    def by_stem(folder):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder")
        return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in _IMAGE_EXTENSIONS}

    images, masks = by_stem(image_dir), by_stem(mask_dir)
    missing = sorted(set(images) - set(masks))
    if missing:
        raise FileNotFoundError(f"{mask_dir}: no mask for image(s) {missing[:5]} (masks must share the "
                                "images' file stems, e.g. images/a.jpg and masks/a.png)")
    if not images:
        raise FileNotFoundError(f"{image_dir}: no images")
    return [(images[s], masks[s]) for s in sorted(images)]


def load_cells(image_dir, mask_dir, *, tile: int = 0, overlap: int = 0, tiled: bool = False) -> list[dict]:
    """Dataset dicts: whole images (``tile`` 0), or one dict per tile of each image with
    ``tile`` = (y0, x0, h, w) (a fixed grid). ``tiled``: whole-image dicts marked for a
    random tile of the config's grid per sample (``HCMEASURE.TILE.SIZE``/``OVERLAP``).
    Tiles are cut by :class:`~hcmeasure.semseg.data.SemanticDatasetMapper`."""
    dicts = []
    for img, mask in _pairs(Path(image_dir), Path(mask_dir)):
        with Image.open(img) as im:
            w, h = im.size
        base = {"file_name": str(img), "sem_seg_file_name": str(mask), "sem_seg_decoder": "rgba_outline",
                "height": h, "width": w, "image_id": img.stem}
        if tiled:
            base["tiled"] = True
        if not tile:
            dicts.append(base)
            continue
        for y, x, th, tw in tile_grid(h, w, tile, overlap):
            dicts.append({**base, "tile": (y, x, th, tw), "image_id": f"{img.stem}_y{y}_x{x}"})
    return dicts


def register_cells_dataset(name: str, image_dir, mask_dir, *, tile: int = 0, overlap: int = 0,
                           tiled: bool = False, target: str = "outline") -> None:
    """Register ``name`` (see :func:`load_cells` for ``tile``/``tiled``) with Detectron2;
    evaluator "cells" (outline Dice/IoU, the study's weighted recall,
    :mod:`hcmeasure.studies.cells.evaluation`)."""
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, lambda: load_cells(image_dir, mask_dir, tile=tile, overlap=overlap,
                                                     tiled=tiled))
    classes = CELL_CLASSES[target]
    MetadataCatalog.get(name).set(
        stuff_classes=classes, stuff_colors=_COLORS[:len(classes)], ignore_label=255, is_semantic=True,
        evaluator_type="cells", label_decoder="rgba_outline", image_root=str(image_dir),
        sem_seg_root=str(mask_dir))


def _register_env_datasets() -> None:
    root = Path(os.environ.get("HCMEASURE_CELLS_ROOT", "datasets/cells"))
    register_cells_dataset("cells_train", root / "train" / "images", root / "train" / "masks", tiled=True)
    register_cells_dataset("cells_val", root / "val" / "images", root / "val" / "masks")


# ---- synthetic outline images (tests, smoke runs) ------------------------------------


def synthetic_cells(rng: np.random.Generator, height: int, width: int, n_cells: int = 6,
                    radius=(6, 14), membrane: float = 1.0, noise: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 micrograph-like image, RGBA uint8 annotation with a 1-px red outline).

    ``membrane`` in [0, 1]: contrast of the stained membrane under the outline against the
    cytoplasm (faint stains are small values); ``noise``: sigma of the Gaussian pixel noise.
    """
    image = np.full((height, width, 3), (225, 205, 215), np.float64)
    ann = np.zeros((height, width, 4), np.uint8)
    for _ in range(n_cells):
        r = int(rng.integers(radius[0], radius[1] + 1))
        cy, cx = int(rng.integers(r + 1, height - r - 1)), int(rng.integers(r + 1, width - r - 1))
        axes = (r, max(3, int(r * rng.uniform(0.6, 1.0))))
        angle = float(rng.uniform(0, 180))
        cv2.ellipse(image, (cx, cy), axes, angle, 0, 360, (170, 110, 160), -1)  # cytoplasm
        cv2.ellipse(image, (cx, cy), (max(1, axes[0] // 3), max(1, axes[1] // 3)), angle, 0, 360,
                    (90, 50, 120), -1)  # nucleus
        stain = tuple(c + membrane * (d - c) for c, d in zip((170, 110, 160), (60, 30, 70)))
        cv2.ellipse(image, (cx, cy), axes, angle, 0, 360, stain, 1)  # stained membrane
        cv2.ellipse(ann, (cx, cy), axes, angle, 0, 360, (255, 0, 0, 255), 1)
    image = np.clip(np.round(image + rng.normal(0, noise, image.shape)), 0, 255).astype(np.uint8)
    return image, ann


def write_synthetic_cells(root, n: int = 2, size=(96, 128), seed: int = 0) -> Path:
    """``root/images/cell<i>.png`` and ``root/masks/cell<i>.png`` (RGBA outlines)."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img, ann = synthetic_cells(rng, *size)
        Image.fromarray(img).save(root / "images" / f"cell{i}.png")
        Image.fromarray(ann, mode="RGBA").save(root / "masks" / f"cell{i}.png")
    return root


_register_env_datasets()
