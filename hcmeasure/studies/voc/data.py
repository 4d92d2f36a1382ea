"""PASCAL VOC 2012 semantic segmentation: Detectron2 registration from the real layout.

Layout (the official ``VOCtrainval_11-May-2012.tar``, folder ``VOCdevkit/VOC2012``)::

    ROOT/JPEGImages/<id>.jpg
    ROOT/SegmentationClass/<id>.png            palette PNGs: pixel value = class index,
                                               255 = object borders / "difficult" (ignored)
    ROOT/ImageSets/Segmentation/train.txt      1464 ids
    ROOT/ImageSets/Segmentation/val.txt        1449 ids
    ROOT/ImageSets/Segmentation/trainval.txt   2913 ids

Optional SBD augmentation (Hariharan et al.'s Semantic Boundaries Dataset, in the
widely used converted form)::

    ROOT/SegmentationClassAug/<id>.png         index PNGs (grey or palette), 255 = ignore
    ROOT/ImageSets/Segmentation/train_aug.txt  optional list (ids, or DeepLab's path pairs);
                                               without it the list is
                                               every SegmentationClassAug id not in val.txt
                                               (10582 ids for the usual release)

The class PNGs are palette ("P") images whose *indices* are the labels; their colours
(:func:`voc_colormap`) are only for display. They are read with the ``index_png`` label
decoder (:mod:`hcmeasure.semseg.data`), never with Detectron2's
``read_image(..., "L")``, which would convert the palette colours to grey levels.

Datasets registered on import (names distinct from Detectron2's built-in detection
datasets ``voc_2012_train``/``voc_2012_val``/``voc_2012_trainval``):
``voc_2012_sem_seg_train``, ``voc_2012_sem_seg_val``, ``voc_2012_sem_seg_trainval`` and
``voc_2012_sem_seg_train_aug``. The root is looked up when a dataset is loaded, not on
import: ``$HCMEASURE_VOC_ROOT`` if set, else ``$DETECTRON2_DATASETS/VOC2012``
(``DETECTRON2_DATASETS`` defaults to ``datasets``, as in Detectron2). A root that holds
``VOC2012/`` or ``VOCdevkit/VOC2012/`` instead of the files themselves is accepted.
Loading a dataset whose files are absent raises :class:`VOCDataError` naming the path
and the environment variable.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog

__all__ = [
    "ENV_ROOT",
    "VOC_CLASSES",
    "IGNORE_LABEL",
    "SPLITS",
    "DATASET_NAMES",
    "VOCDataError",
    "voc_colormap",
    "VOC_COLORS",
    "save_index_png",
    "default_root",
    "resolve_root",
    "read_split",
    "load_voc_sem_seg",
    "write_synthetic_voc",
    "register_voc_sem_seg",
]

logger = logging.getLogger(__name__)

ENV_ROOT = "HCMEASURE_VOC_ROOT"

#: The 21 classes, index = label value.
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)
IGNORE_LABEL = 255

#: Dataset name -> split; "train_aug" needs SBD (``SegmentationClassAug/``).
SPLITS = {
    "voc_2012_sem_seg_train": "train",
    "voc_2012_sem_seg_val": "val",
    "voc_2012_sem_seg_trainval": "trainval",
    "voc_2012_sem_seg_train_aug": "train_aug",
}
DATASET_NAMES = tuple(SPLITS)

IMAGE_DIR = "JPEGImages"
LABEL_DIR = "SegmentationClass"
AUG_LABEL_DIR = "SegmentationClassAug"
SPLIT_DIR = os.path.join("ImageSets", "Segmentation")


class VOCDataError(FileNotFoundError):
    """The VOC files a dataset needs are missing."""


def voc_colormap(n: int = 256) -> np.ndarray:
    """VOC's palette: (n, 3) uint8, colour of index i from the bits of i.

    Bits 0, 1, 2 of i go to the most significant bit of red, green, blue; bits 3, 4, 5
    to the next one, and so on (index 1 = (128, 0, 0), 15 = (192, 128, 128),
    255 = (224, 224, 192)).
    """
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        value, rgb = i, [0, 0, 0]
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << shift
            value >>= 3
        cmap[i] = rgb
    return cmap


#: Display colours of the 21 classes.
VOC_COLORS = [tuple(int(v) for v in c) for c in voc_colormap(len(VOC_CLASSES))]


def save_index_png(label: np.ndarray, path) -> None:
    """Write class indices (H, W) uint8 as a palette PNG with VOC's colour map, as VOC does."""
    label = np.asarray(label)
    if label.ndim != 2 or label.dtype != np.uint8:
        raise ValueError(f"label must be a 2-D uint8 array, got {label.dtype} {label.shape}")
    im = Image.fromarray(label)  # mode "L"; putpalette makes it "P" with the same indices
    im.putpalette(voc_colormap(256).reshape(-1).tolist())
    if im.mode != "P":
        raise RuntimeError(f"Pillow wrote mode {im.mode!r}, expected a palette image")
    im.save(path)


def default_root() -> Path:
    """``$HCMEASURE_VOC_ROOT``, else ``$DETECTRON2_DATASETS/VOC2012`` (default ``datasets``)."""
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("DETECTRON2_DATASETS", "datasets")).expanduser() / "VOC2012"


def resolve_root(root=None) -> Path:
    """The folder holding ``JPEGImages/`` (also found under ``VOC2012/`` or ``VOCdevkit/VOC2012/``)."""
    base = Path(root).expanduser() if root is not None else default_root()
    for candidate in (base, base / "VOC2012", base / "VOCdevkit" / "VOC2012"):
        if (candidate / IMAGE_DIR).is_dir():
            return candidate
    if root is not None:
        where = "given root"
    elif os.environ.get(ENV_ROOT):
        where = f"from ${ENV_ROOT}"
    else:
        where = f"$DETECTRON2_DATASETS/VOC2012 (default datasets/VOC2012); ${ENV_ROOT} is not set"
    raise VOCDataError(
        f"PASCAL VOC 2012 not found at {base} ({where}): expected {IMAGE_DIR}/, {LABEL_DIR}/ and "
        f"{SPLIT_DIR}/{{train,val,trainval}}.txt there. Set {ENV_ROOT} to the VOC2012 folder "
        f"(VOCdevkit/VOC2012 of VOCtrainval_11-May-2012.tar), or DETECTRON2_DATASETS to its parent.")


def _read_ids(path: Path) -> list[str]:
    """Ids of a list file: one id a line, or DeepLab-style "/JPEGImages/<id>.jpg /Segm.../<id>.png"."""
    with open(path) as f:
        return [Path(line.split()[0]).stem for line in f if line.strip()]


def read_split(root: Path, split: str) -> tuple[list[str], str]:
    """(image ids, label folder) of a split of a resolved root."""
    split_dir = root / SPLIT_DIR
    if split != "train_aug":
        path = split_dir / f"{split}.txt"
        if not path.is_file():
            raise VOCDataError(f"{path} not found: the VOC 2012 segmentation split lists are missing "
                               f"(root {root}, from ${ENV_ROOT} or DETECTRON2_DATASETS)")
        return _read_ids(path), LABEL_DIR
    aug_dir = root / AUG_LABEL_DIR
    if not aug_dir.is_dir():
        raise VOCDataError(
            f"{aug_dir} not found: voc_2012_sem_seg_train_aug needs the SBD-augmented labels "
            f"({AUG_LABEL_DIR}/<id>.png, 255 = ignore) inside the VOC root given by ${ENV_ROOT}; "
            f"use voc_2012_sem_seg_train without them")
    listed = split_dir / "train_aug.txt"
    if listed.is_file():
        return _read_ids(listed), AUG_LABEL_DIR
    val_path = split_dir / "val.txt"
    if not val_path.is_file():
        raise VOCDataError(f"{val_path} not found: needed to keep val images out of train_aug")
    val = set(_read_ids(val_path))
    ids = sorted(p.stem for p in aug_dir.glob("*.png") if p.stem not in val)
    return ids, AUG_LABEL_DIR


def load_voc_sem_seg(split: str, root=None) -> list[dict]:
    """Detectron2 dataset dicts of a split: file_name, sem_seg_file_name, height, width,
    image_id, sem_seg_decoder ("index_png")."""
    root = resolve_root(root)
    ids, label_dir = read_split(root, split)
    if not ids:
        raise VOCDataError(f"split {split!r} of {root} lists no images")
    dicts, missing = [], []
    for image_id in ids:
        image = root / IMAGE_DIR / f"{image_id}.jpg"
        label = root / label_dir / f"{image_id}.png"
        if not image.is_file() or not label.is_file():
            missing.append(str(image if not image.is_file() else label))
            continue
        with Image.open(image) as im:  # reads the header only
            width, height = im.size
        dicts.append({
            "file_name": str(image),
            "sem_seg_file_name": str(label),
            "height": height,
            "width": width,
            "image_id": image_id,
            "sem_seg_decoder": "index_png",
        })
    if missing:
        raise VOCDataError(f"{len(missing)} file(s) of split {split!r} missing under {root} "
                           f"(${ENV_ROOT}), e.g. {missing[:3]}")
    logger.info("Loaded %d images of PASCAL VOC 2012 %s from %s", len(dicts), split, root)
    return dicts


def write_synthetic_voc(root, *, train: int = 4, val: int = 2, size=(60, 80), seed: int = 0) -> Path:
    """Write a tiny dataset in VOC 2012's exact layout under ``root`` (for tests and smoke runs).

    Each image has a background and one or two rectangles of random classes, painted
    in the class's VOC colour plus noise (JPEG); its label is a genuine palette PNG
    (:func:`save_index_png`) with a 2-px ring of 255 around every object, as VOC's
    annotations have. Ids look like VOC's (``2007_000001``...). Returns ``root``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for d in (IMAGE_DIR, LABEL_DIR, SPLIT_DIR):
        (root / d).mkdir(parents=True, exist_ok=True)
    h, w = size
    colors = voc_colormap(len(VOC_CLASSES)).astype(np.int16)
    ids = [f"2007_{i:06d}" for i in range(1, train + val + 1)]
    for image_id in ids:
        label = np.zeros((h, w), dtype=np.uint8)
        objects = rng.choice(np.arange(1, len(VOC_CLASSES)), size=int(rng.integers(1, 3)), replace=False)
        for cls in objects:
            y0, x0 = int(rng.integers(2, h // 2)), int(rng.integers(2, w // 2))
            y1, x1 = int(rng.integers(y0 + 8, h - 1)), int(rng.integers(x0 + 8, w - 1))
            label[max(y0 - 2, 0):y1 + 2, max(x0 - 2, 0):x1 + 2] = IGNORE_LABEL  # border ring
            label[y0:y1, x0:x1] = cls
        image = colors[label.clip(0, len(VOC_CLASSES) - 1)] + rng.integers(-20, 21, (h, w, 3))
        image[label == IGNORE_LABEL] = 255
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(root / IMAGE_DIR / f"{image_id}.jpg",
                                                                 quality=95)
        save_index_png(label, root / LABEL_DIR / f"{image_id}.png")
    lists = {"train": ids[:train], "val": ids[train:], "trainval": ids}
    for split, names in lists.items():
        (root / SPLIT_DIR / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
    return root


def register_voc_sem_seg(name: str, split: str, root=None) -> None:
    """Register one split under ``name`` (root looked up at load time when ``root`` is None)."""
    DatasetCatalog.register(name, lambda: load_voc_sem_seg(split, root))
    MetadataCatalog.get(name).set(
        evaluator_type="sem_seg",
        stuff_classes=list(VOC_CLASSES),
        stuff_colors=[list(c) for c in VOC_COLORS],
        ignore_label=IGNORE_LABEL,
        label_decoder="index_png",
        split=split,
    )


def _register_all() -> None:
    for name, split in SPLITS.items():
        if name not in DatasetCatalog.list():
            register_voc_sem_seg(name, split)


_register_all()
