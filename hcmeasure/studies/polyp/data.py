"""Colonoscopy polyp datasets: Kvasir-SEG, CVC-ColonDB, PraNet's split, BKAI-IGH NeoPolyp.

Each dataset is read from its real on-disk layout and registered with Detectron2
(``DatasetCatalog``/``MetadataCatalog``) on import. Folders are looked up when a
dataset is loaded, never on import, so registration works without the data.

Layouts
-------
Kvasir-SEG (``$HCMEASURE_KVASIR_ROOT``; the official archive)::

    ROOT/images/<id>.jpg    RGB frames
    ROOT/masks/<id>.jpg     RGB JPEG masks (white polyp), same name and size
    ROOT/pranet_test.txt    optional: ids of PraNet's 100 Kvasir test images, one a line
    ROOT/pranet_train.txt   optional: ids used for training with that split

CVC-ColonDB (``$HCMEASURE_CVC_COLONDB_ROOT``; original distribution, the root or its
``CVC-ColonDB/`` subfolder)::

    <n>.tiff or <n>.tif     RGB frame (frames 77-97 are .tif in the distribution)
    p<n>.tiff               polyp mask {0, 255}
    cp<n>.tiff              polyp contour (not used)

PraNet's benchmark split (``$HCMEASURE_PRANET_ROOT``; PNG files)::

    ROOT/TrainDataset/{image,mask}/<name>.png
    ROOT/TestDataset/<set>/{images,masks}/<name>.png   set = Kvasir, CVC-ClinicDB,
                                                       CVC-ColonDB, ETIS-LaribPolypDB, CVC-300

BKAI-IGH NeoPolyp (``$HCMEASURE_NEOPOLYP_ROOT``; Kaggle's folders, with or without
Kaggle's extra nesting ``train/train/``)::

    ROOT/train/<id>.jpeg      RGB frames
    ROOT/train_gt/<id>.jpeg   RGB JPEG masks: red neoplastic, green non-neoplastic
    ROOT/test/<id>.jpeg       test frames (no masks)

Roots, Detectron2-style: the environment variable above if set; else
``$DETECTRON2_DATASETS/<folder>`` (``DETECTRON2_DATASETS`` defaults to ``datasets``)
if it exists; else ``../shared/data/<folder>`` beside the repository if it exists;
folders ``kvasir-seg``, ``cvc-colondb``, ``pranet``, ``bkai-neopolyp``.

Splits
------
Kvasir-SEG and CVC-ColonDB come without an official split; NeoPolyp's training set has
no validation part. An image goes to a split by the SHA-256 of its id (file stem; the
frame number for CVC-ColonDB): the first 8 bytes, read big-endian and divided by 2**64,
give u in [0, 1); u < 0.8 -> train, u < 0.9 -> val, else test (NeoPolyp: u < 0.9 ->
train, else val). This depends only on the id, so it is the same on any copy or subset.

Registered datasets: ``kvasir_seg_{train,val,test,all}``,
``kvasir_seg_pranet_{train,test}`` (the list files; without ``pranet_train.txt`` the
train part is every image not in ``pranet_test.txt``), ``cvc_colondb_{train,val,test,all}``,
``pranet_train``, ``pranet_test_{kvasir,cvc_clinicdb,cvc_colondb,etis,cvc_300}``,
``neopolyp_{train,val,trainval}`` and ``neopolyp_test`` (images only, for submissions).

Masks and metadata
------------------
Binary datasets: classes ``background``/``polyp``, masks decoded by ``binary_threshold``
(grey level > 127 -> polyp; Kvasir's JPEG masks are not strictly binary).
NeoPolyp: classes ``background``/``neoplastic``/``non-neoplastic``, masks decoded by
``neopolyp_rgb`` (:func:`decode_neopolyp_rgb`). Metadata: ``stuff_classes``,
``stuff_colors`` (RGB), ``ignore_label`` 255, ``evaluator_type`` "medseg",
``label_decoder``, ``is_semantic`` True.

The BKAI-IGH Kaggle submission of NeoPolyp predictions is written by
:mod:`hcmeasure.studies.polyp.submission`.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils.file_io import PathManager

from ...semseg.data import register_label_decoder

__all__ = [
    "ENV_KVASIR",
    "ENV_CVC_COLONDB",
    "ENV_PRANET",
    "ENV_NEOPOLYP",
    "POLYP_CLASSES",
    "NEOPOLYP_CLASSES",
    "POLYP_COLORS",
    "NEOPOLYP_COLORS",
    "IGNORE_LABEL",
    "BINARY_THRESHOLD",
    "NEOPOLYP_THRESHOLD",
    "PRANET_TEST_SETS",
    "DATASETS",
    "PolypDataError",
    "split_fraction",
    "split_of",
    "default_root",
    "resolve_root",
    "decode_binary_threshold",
    "decode_neopolyp_rgb",
    "neopolyp_rgb_to_classes",
    "load_kvasir_seg",
    "load_cvc_colondb",
    "load_pranet",
    "load_neopolyp",
    "register_polyp_datasets",
    "synthetic_polyp",
    "write_synthetic_polyp_dataset",
]

logger = logging.getLogger(__name__)

ENV_KVASIR = "HCMEASURE_KVASIR_ROOT"
ENV_CVC_COLONDB = "HCMEASURE_CVC_COLONDB_ROOT"
ENV_PRANET = "HCMEASURE_PRANET_ROOT"
ENV_NEOPOLYP = "HCMEASURE_NEOPOLYP_ROOT"

POLYP_CLASSES = ("background", "polyp")
NEOPOLYP_CLASSES = ("background", "neoplastic", "non-neoplastic")
POLYP_COLORS = ((0, 0, 0), (255, 255, 255))
NEOPOLYP_COLORS = ((0, 0, 0), (255, 0, 0), (0, 255, 0))
IGNORE_LABEL = 255

#: Binary masks: a pixel is polyp when its grey level (ITU-R 601 luma) is above this.
BINARY_THRESHOLD = 127
#: NeoPolyp masks: the dominant channel must be above this (see decode_neopolyp_rgb).
NEOPOLYP_THRESHOLD = 127

#: PraNet test-set folder names -> dataset name suffix.
PRANET_TEST_SETS = {
    "Kvasir": "kvasir",
    "CVC-ClinicDB": "cvc_clinicdb",
    "CVC-ColonDB": "cvc_colondb",
    "ETIS-LaribPolypDB": "etis",
    "CVC-300": "cvc_300",
}

_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
_REPO_PARENT = Path(__file__).resolve().parents[3].parent


class PolypDataError(ValueError):
    """A polyp dataset cannot be read; the message names the folder and the fix."""


# ------------------------------------------------------------------------ splits


def split_fraction(image_id: str) -> float:
    """u in [0, 1) from the first 8 bytes of SHA-256(image_id), big-endian / 2**64."""
    digest = hashlib.sha256(str(image_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of(image_id: str, bounds=(0.8, 0.9)) -> str:
    """"train" (u < bounds[0]), "val" (u < bounds[1]) or "test" for an image id."""
    u = split_fraction(image_id)
    return "train" if u < bounds[0] else ("val" if u < bounds[1] else "test")


# --------------------------------------------------------------------- locations

_FOLDERS = {ENV_KVASIR: "kvasir-seg", ENV_CVC_COLONDB: "cvc-colondb", ENV_PRANET: "pranet",
            ENV_NEOPOLYP: "bkai-neopolyp"}


def default_root(env: str) -> Path:
    """Where a dataset is looked for (it may not exist); see the module docstring."""
    value = os.environ.get(env)
    if value:
        return Path(value).expanduser()
    folder = _FOLDERS[env]
    d2 = Path(os.environ.get("DETECTRON2_DATASETS", "datasets")).expanduser() / folder
    if d2.is_dir():
        return d2
    shared = _REPO_PARENT / "shared" / "data" / folder
    if shared.is_dir():
        return shared
    return d2


def resolve_root(env: str, root=None) -> Path:
    path = Path(root).expanduser() if root is not None else default_root(env)
    if not path.is_dir():
        how = "given" if root is not None else (f"from ${env}" if os.environ.get(env) else f"${env} is not set")
        raise PolypDataError(f"dataset folder {path} ({how}) does not exist; set {env} to the dataset's "
                             "root folder (see hcmeasure.studies.polyp.data for the layout)")
    return path


# ------------------------------------------------------------------ label decoding


def _read_rgb(path: str) -> np.ndarray:
    with PathManager.open(path, "rb") as f:
        return np.asarray(Image.open(f).convert("RGB"))


@register_label_decoder("binary_threshold")
def decode_binary_threshold(path: str) -> np.ndarray:
    """Mask file -> {0, 1}: 1 where the grey level (PIL "L" conversion) is > 127."""
    with PathManager.open(path, "rb") as f:
        grey = np.asarray(Image.open(f).convert("L"))
    return (grey > BINARY_THRESHOLD).astype(np.uint8)


def neopolyp_rgb_to_classes(rgb: np.ndarray, threshold: int = NEOPOLYP_THRESHOLD) -> np.ndarray:
    """(H, W, 3) RGB NeoPolyp mask -> (H, W) uint8 classes {0, 1, 2} by dominant channel.

    1 (neoplastic, red) where R > threshold and R is strictly the largest channel;
    2 (non-neoplastic, green) where G > threshold and G is strictly the largest channel;
    0 elsewhere (dark pixels, ties, blue- or white-ish colours).

    Why these thresholds: JPEG moves saturated colours by tens of levels, not by more than
    a hundred. On the 50 training masks of the shared subset, pixels read as red have
    R >= 128 (1st percentile 208) and G, B <= 61; pixels read as green have G >= 176 and
    R, B <= 115; no pixel has both R and G above 127. Dim edge pixels (max channel at most
    127, about 0.02 % of all pixels) go to background, as a 50 % threshold of the mask
    intensity would put them.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"expected an (H, W, 3) RGB mask, got shape {rgb.shape}")
    r, g, b = (rgb[..., i].astype(np.int16) for i in range(3))
    out = np.zeros(r.shape, np.uint8)
    out[(r > threshold) & (r > g) & (r > b)] = 1
    out[(g > threshold) & (g > r) & (g > b)] = 2
    return out


@register_label_decoder("neopolyp_rgb")
def decode_neopolyp_rgb(path: str) -> np.ndarray:
    """NeoPolyp ``train_gt`` file -> classes {0, 1, 2} (:func:`neopolyp_rgb_to_classes`)."""
    return neopolyp_rgb_to_classes(_read_rgb(path))


# ----------------------------------------------------------------------- loading


def _images_by_stem(folder: Path) -> dict[str, Path]:
    out = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in _IMAGE_EXTS:
            out.setdefault(p.stem, p)
    return out


def _pairs(image_dir: Path, mask_dir: Path, what: str) -> list[tuple[str, Path, Path]]:
    for d in (image_dir, mask_dir):
        if not d.is_dir():
            raise PolypDataError(f"{what}: folder {d} not found; the dataset root must hold "
                                 f"{image_dir.name}/ and {mask_dir.name}/")
    images, masks = _images_by_stem(image_dir), _images_by_stem(mask_dir)
    missing = sorted(set(images) - set(masks))
    if missing:
        logger.warning("%s: %d image(s) in %s have no mask in %s and are left out (e.g. %s)",
                       what, len(missing), image_dir, mask_dir, missing[0])
    pairs = [(stem, images[stem], masks[stem]) for stem in sorted(images) if stem in masks]
    if not pairs:
        raise PolypDataError(f"{what}: no image/mask pairs (same file name) in {image_dir} and {mask_dir}")
    return pairs


def _dicts(pairs, decoder: str) -> list[dict]:
    return [{"file_name": str(img), "sem_seg_file_name": str(mask), "sem_seg_decoder": decoder,
             "image_id": stem} for stem, img, mask in pairs]


def _select(pairs, split: str, bounds, what: str, folder: Path) -> list:
    if split == "all":
        return list(pairs)
    chosen = [p for p in pairs if split_of(p[0], bounds) == split]
    if not chosen:
        raise PolypDataError(f"{what}: split {split!r} is empty for the {len(pairs)} image(s) in {folder} "
                             "(splits are by a hash of the image id; use the '_all' dataset for a small subset)")
    return chosen


def _read_id_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def load_kvasir_seg(root=None, split: str = "all") -> list[dict]:
    """Kvasir-SEG dicts. ``split``: "train"/"val"/"test" (hash 80/10/10), "all",
    "pranet_train"/"pranet_test" (the list files in the root)."""
    root = resolve_root(ENV_KVASIR, root)
    pairs = _pairs(root / "images", root / "masks", "Kvasir-SEG")
    if split.startswith("pranet_"):
        test_list = root / "pranet_test.txt"
        if not test_list.is_file():
            raise PolypDataError(f"Kvasir-SEG: {test_list} not found; put PraNet's Kvasir test ids there "
                                 "(one id a line) or use kvasir_seg_train/val/test")
        test_ids = set(_read_id_list(test_list))
        if split == "pranet_test":
            wanted = test_ids
        else:
            train_list = root / "pranet_train.txt"
            wanted = set(_read_id_list(train_list)) if train_list.is_file() else {p[0] for p in pairs} - test_ids
        absent = sorted(wanted - {p[0] for p in pairs})
        if absent:
            logger.warning("Kvasir-SEG: %d id(s) of the %s list are not in %s (e.g. %s)", len(absent), split,
                           root, absent[0])
        chosen = [p for p in pairs if p[0] in wanted]
        if not chosen:
            raise PolypDataError(f"Kvasir-SEG: none of the {split} ids are in {root / 'images'}")
    else:
        chosen = _select(pairs, split, (0.8, 0.9), "Kvasir-SEG", root)
    return _dicts(chosen, "binary_threshold")


_CVC_FRAME = re.compile(r"^(\d+)\.tiff?$", re.IGNORECASE)
_CVC_MASK = re.compile(r"^p(\d+)\.tiff?$", re.IGNORECASE)


def load_cvc_colondb(root=None, split: str = "all") -> list[dict]:
    """CVC-ColonDB dicts from the original TIFF files; ``split``: train/val/test (hash of
    the frame number, 80/10/10) or "all". ``image_id`` is the frame number."""
    root = resolve_root(ENV_CVC_COLONDB, root)
    folder = root / "CVC-ColonDB" if (root / "CVC-ColonDB").is_dir() else root
    frames, masks = {}, {}
    for p in sorted(folder.iterdir()):
        m = _CVC_FRAME.match(p.name)
        if m:
            frames.setdefault(int(m.group(1)), p)
            continue
        m = _CVC_MASK.match(p.name)
        if m:
            masks.setdefault(int(m.group(1)), p)
    missing = sorted(set(frames) - set(masks))
    if missing:
        logger.warning("CVC-ColonDB: %d frame(s) in %s have no p<n>.tiff mask and are left out (e.g. %d)",
                       len(missing), folder, missing[0])
    pairs = [(str(n), frames[n], masks[n]) for n in sorted(frames) if n in masks]
    if not pairs:
        raise PolypDataError(f"CVC-ColonDB: no <n>.tif(f) frames with p<n>.tif(f) masks in {folder}")
    dicts = _dicts(_select(pairs, split, (0.8, 0.9), "CVC-ColonDB", folder), "binary_threshold")
    for d in dicts:
        d["image_id"] = int(d["image_id"])
    return dicts


def load_pranet(root=None, part: str = "train") -> list[dict]:
    """PraNet layout: ``part`` "train" (TrainDataset) or a TestDataset folder name."""
    root = resolve_root(ENV_PRANET, root)
    if part == "train":
        pairs = _pairs(root / "TrainDataset" / "image", root / "TrainDataset" / "mask", "PraNet TrainDataset")
    else:
        base = root / "TestDataset" / part
        pairs = _pairs(base / "images", base / "masks", f"PraNet TestDataset/{part}")
    return _dicts(pairs, "binary_threshold")


def _kaggle_folder(root: Path, name: str) -> Path:
    nested = root / name / name
    return nested if nested.is_dir() else root / name


def load_neopolyp(root=None, split: str = "train") -> list[dict]:
    """BKAI-IGH NeoPolyp dicts. ``split``: "train"/"val" (hash 90/10 of the labelled
    images), "trainval" (all labelled images), "test" (test images, no masks)."""
    root = resolve_root(ENV_NEOPOLYP, root)
    if split == "test":
        folder = _kaggle_folder(root, "test")
        if not folder.is_dir():
            raise PolypDataError(f"NeoPolyp: folder {folder} not found; the root must hold test/")
        images = _images_by_stem(folder)
        if not images:
            raise PolypDataError(f"NeoPolyp: no images in {folder}")
        return [{"file_name": str(p), "image_id": stem} for stem, p in images.items()]
    pairs = _pairs(_kaggle_folder(root, "train"), _kaggle_folder(root, "train_gt"), "NeoPolyp")
    name = {"trainval": "all"}.get(split, split)
    return _dicts(_select(pairs, name, (0.9, 1.0), "NeoPolyp", root), "neopolyp_rgb")


# -------------------------------------------------------------------- registration


def _binary_meta(**extra) -> dict:
    return dict(stuff_classes=list(POLYP_CLASSES), stuff_colors=[list(c) for c in POLYP_COLORS],
                ignore_label=IGNORE_LABEL, evaluator_type="medseg", label_decoder="binary_threshold",
                is_semantic=True, **extra)


def _neopolyp_meta(**extra) -> dict:
    return dict(stuff_classes=list(NEOPOLYP_CLASSES), stuff_colors=[list(c) for c in NEOPOLYP_COLORS],
                ignore_label=IGNORE_LABEL, evaluator_type="medseg", label_decoder="neopolyp_rgb",
                is_semantic=True, **extra)


def _dataset_table() -> dict[str, tuple[Callable[[], list], dict]]:
    table: dict[str, tuple[Callable[[], list], dict]] = {}
    for split in ("train", "val", "test", "all"):
        table[f"kvasir_seg_{split}"] = (lambda s=split: load_kvasir_seg(None, s), _binary_meta())
        table[f"cvc_colondb_{split}"] = (lambda s=split: load_cvc_colondb(None, s), _binary_meta())
    for split in ("pranet_train", "pranet_test"):
        table[f"kvasir_seg_{split}"] = (lambda s=split: load_kvasir_seg(None, s), _binary_meta())
    table["pranet_train"] = (lambda: load_pranet(None, "train"), _binary_meta())
    for folder, suffix in PRANET_TEST_SETS.items():
        table[f"pranet_test_{suffix}"] = (lambda f=folder: load_pranet(None, f), _binary_meta())
    for split in ("train", "val", "trainval"):
        table[f"neopolyp_{split}"] = (lambda s=split: load_neopolyp(None, s), _neopolyp_meta())
    # Unlabelled: for inference and submissions only (no evaluator).
    meta = _neopolyp_meta()
    meta.pop("evaluator_type")
    table["neopolyp_test"] = (lambda: load_neopolyp(None, "test"), meta)
    return table


#: Dataset names registered by :func:`register_polyp_datasets`.
DATASETS = tuple(_dataset_table())


def register_polyp_datasets() -> None:
    """Register every polyp dataset (replacing earlier registrations of the same names)."""
    for name, (loader, meta) in _dataset_table().items():
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
        if name in MetadataCatalog.list():
            MetadataCatalog.remove(name)
        DatasetCatalog.register(name, loader)
        MetadataCatalog.get(name).set(**meta)


# ------------------------------------------------------------ synthetic test data


def synthetic_polyp(rng: np.random.Generator, height: int, width: int, num_polyps: int = 1,
                    classes=(1,)) -> tuple[np.ndarray, np.ndarray]:
    """A polyp-like RGB frame and its class map: pinkish mucosa with texture, and
    ``num_polyps`` brighter, redder ellipses labelled with classes drawn from ``classes``."""
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    base = np.array([170.0, 90.0, 80.0], np.float32)
    img = base + rng.normal(0, 12, (height, width, 3)).astype(np.float32)
    img *= (0.8 + 0.2 * np.cos(xx / max(width, 1) * 3.0))[..., None]
    label = np.zeros((height, width), np.uint8)
    for _ in range(num_polyps):
        cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
        ry, rx = rng.uniform(0.12, 0.25) * height, rng.uniform(0.12, 0.25) * width
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        label[inside] = int(rng.choice(classes))
        img[inside] += np.array([60.0, 30.0, 10.0], np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), label


def _save(path: Path, array: np.ndarray, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)


def write_synthetic_polyp_dataset(root, layout: str, n: int = 6, size=(48, 64), seed: int = 0) -> Path:
    """Write ``n`` synthetic frames in a dataset's real layout under ``root`` (for tests).

    ``layout``: "kvasir" (JPEG images and RGB JPEG masks), "cvc_colondb" (``CVC-ColonDB/``
    with ``<n>.tiff`` frames, the second one as ``.tif``, ``p<n>.tiff`` masks, ``cp<n>.tiff``
    contours), "pranet" (``TrainDataset`` and every ``TestDataset/<set>`` with PNG files),
    "neopolyp" (``train/``, ``train_gt/`` with red/green JPEG masks, ``test/``).
    Returns ``root``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    h, w = size

    def binary():
        img, lab = synthetic_polyp(rng, h, w)
        return img, (lab > 0).astype(np.uint8) * 255

    if layout == "kvasir":
        for i in range(n):
            img, mask = binary()
            name = f"synth{i:03d}"
            _save(root / "images" / f"{name}.jpg", img, quality=95)
            _save(root / "masks" / f"{name}.jpg", np.repeat(mask[..., None], 3, axis=2), quality=90)
    elif layout == "cvc_colondb":
        folder = root / "CVC-ColonDB"
        for i in range(n):
            img, mask = binary()
            k = 10 * i + 1
            ext = ".tif" if i == 1 else ".tiff"
            _save(folder / f"{k}{ext}", img, compression="packbits")
            _save(folder / f"p{k}.tiff", mask)
            edge = (mask > 0) & ~(np.roll(mask, 1, 0) > 0)
            _save(folder / f"cp{k}.tiff", edge.astype(np.uint8) * 255)
    elif layout == "pranet":
        parts = [("TrainDataset", "image", "mask")] + [
            (f"TestDataset/{t}", "images", "masks") for t in PRANET_TEST_SETS]
        for part, im_dir, mask_dir in parts:
            for i in range(n):
                img, mask = binary()
                _save(root / part / im_dir / f"{i + 1}.png", img)
                _save(root / part / mask_dir / f"{i + 1}.png", mask)
    elif layout == "neopolyp":
        colors = np.array(NEOPOLYP_COLORS, np.uint8)
        for i in range(n):
            img, lab = synthetic_polyp(rng, h, w, num_polyps=2, classes=(1, 2))
            name = hashlib.md5(f"synthetic-{seed}-{i}".encode()).hexdigest()
            _save(root / "train" / f"{name}.jpeg", img, quality=95)
            _save(root / "train_gt" / f"{name}.jpeg", colors[lab], quality=90)
        for i in range(max(n // 2, 1)):
            img, _ = synthetic_polyp(rng, h, w)
            name = hashlib.md5(f"synthetic-test-{seed}-{i}".encode()).hexdigest()
            _save(root / "test" / f"{name}.jpeg", img, quality=95)
    else:
        raise ValueError(f"unknown layout {layout!r}; expected kvasir, cvc_colondb, pranet or neopolyp")
    return root


register_polyp_datasets()
