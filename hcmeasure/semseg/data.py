"""Semantic-segmentation data plumbing shared by every semantic dataset.

* Label decoders: each dataset stores its masks its own way (palette PNGs with
  class indices, binary JPEGs, RGB colour codes). A dataset names its decoder in
  its metadata (``label_decoder``) and in each dataset dict (``sem_seg_decoder``);
  :func:`decode_label` turns the file into an (H, W) uint8 array of class indices
  (255 = ignore). Decoders live in :data:`LABEL_DECODER_REGISTRY` (Detectron2's
  ``Registry``; add one with :func:`register_label_decoder`); a decoder with options names
  the function that reads them from the config, and :func:`label_options_from_cfg`
  collects them, so this module knows no dataset.
* :class:`SemanticDatasetMapper`: reads image and label, applies Detectron2
  augmentations to both, and returns ``image`` (C, H, W) and ``sem_seg`` (H, W). A
  dict with ``tile`` = (y0, x0, h, w) is cropped to that tile first; a training dict with
  ``tiled`` set gets a random tile of the ``HCMEASURE.TILE.SIZE``/``OVERLAP`` grid
  (tiled training on large images).
"""
from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch
from PIL import Image

from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.utils.file_io import PathManager
from detectron2.utils.registry import Registry

from .tiling import tile_grid

__all__ = [
    "LABEL_DECODER_REGISTRY",
    "register_label_decoder",
    "decode_label",
    "label_options_from_cfg",
    "crop_tile",
    "build_semantic_augmentations",
    "Rot90Transform",
    "RandomRot90",
    "RandomGamma",
    "RandomRGBShift",
    "SemanticDatasetMapper",
]

LABEL_DECODER_REGISTRY = Registry("LABEL_DECODER")
LABEL_DECODER_REGISTRY.__doc__ = """
Label decoders by name (a dataset's ``label_decoder``): ``fn(path, **options) -> (H, W)
uint8 class indices``. A decoder's ``options_from_cfg`` attribute, when set, reads its
options from the config.
"""


def register_label_decoder(name: str, options_from_cfg: Callable | None = None):
    """Decorator: register ``fn(path[, **options]) -> (H, W) uint8 class indices`` in
    :data:`LABEL_DECODER_REGISTRY` under ``name``; ``options_from_cfg(cfg) -> dict`` gives
    its options from the config (see :func:`label_options_from_cfg`)."""

    def wrap(fn):
        fn.options_from_cfg = options_from_cfg
        LABEL_DECODER_REGISTRY._do_register(name, fn)
        return fn

    return wrap


@register_label_decoder("index_png")
def decode_index_png(path: str) -> np.ndarray:
    """Stored values as class indices: palette PNGs keep their indices (not converted to grey)."""
    with PathManager.open(path, "rb") as f:
        im = Image.open(f)
        if im.mode not in ("P", "L", "I", "I;16"):
            raise ValueError(f"{path}: label image has mode {im.mode}; expected palette (P) or grey (L) indices")
        return np.asarray(im).astype(np.uint8)


def decode_label(path: str, decoder: str = "index_png", **options) -> np.ndarray:
    """Class indices of the label file ``path``; ``options`` go to decoders that take
    them (e.g. the target options of ``"rgba_outline"``, :mod:`hcmeasure.studies.cells.data`)."""
    if decoder not in LABEL_DECODER_REGISTRY:
        raise KeyError(f"unknown label decoder {decoder!r}; known: {sorted(n for n, _ in LABEL_DECODER_REGISTRY)}")
    fn = LABEL_DECODER_REGISTRY.get(decoder)
    return fn(path, **options) if options else fn(path)


def label_options_from_cfg(cfg) -> dict[str, dict]:
    """Per-decoder options set in the config, by decoder name, from each registered
    decoder's ``options_from_cfg`` (e.g. ``{"rgba_outline": HCMEASURE.CELLS.*}``)."""
    return {name: fn.options_from_cfg(cfg) for name, fn in LABEL_DECODER_REGISTRY
            if getattr(fn, "options_from_cfg", None) is not None}


def crop_tile(array: np.ndarray, tile) -> np.ndarray:
    """``array[y0:y0 + h, x0:x0 + w]`` for a dataset dict's ``tile`` = (y0, x0, h, w)."""
    y0, x0, h, w = (int(v) for v in tile)
    return array[y0:y0 + h, x0:x0 + w]


def build_semantic_augmentations(cfg, is_train: bool) -> list:
    """Resize (short side, or a fixed size when ``INPUT.MIN_SIZE_TRAIN`` has one value and
    ``HCMEASURE.SEMSEG.FIXED_SIZE``), random crop (``INPUT.CROP``), flips, and the polyp
    recipe's 90-degree rotations, gamma and RGB shift (``HCMEASURE.SEMSEG.*_PROB``)."""
    sem = cfg.HCMEASURE.SEMSEG
    if sem.FIXED_SIZE:
        h, w = sem.FIXED_SIZE
        augs = [T.Resize((h, w))]
    elif is_train:
        # INPUT.MIN_SIZE_TRAIN (0,) / MIN_SIZE_TEST 0: no resize (tiles at native resolution).
        augs = []
        if max(cfg.INPUT.MIN_SIZE_TRAIN) > 0:
            augs.append(T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN,
                                             cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING))
    else:
        augs = []
        if cfg.INPUT.MIN_SIZE_TEST > 0:
            augs.append(T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST))
    if not is_train:
        return augs
    if cfg.INPUT.CROP.ENABLED:
        augs.append(T.RandomCrop_CategoryAreaConstraint(
            cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE, cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA,
            cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE))
    if sem.HFLIP:
        augs.append(T.RandomFlip(prob=0.5, horizontal=True, vertical=False))
    if sem.VFLIP:
        augs.append(T.RandomFlip(prob=0.5, horizontal=False, vertical=True))
    # Polyp recipe (HCMEASURE.SEMSEG.ROT90_PROB, GAMMA_*, RGB_SHIFT*); see RandomRot90 below.
    if sem.ROT90_PROB > 0:
        augs.append(T.RandomApply(RandomRot90(), prob=sem.ROT90_PROB))
    if sem.GAMMA_PROB > 0:
        augs.append(T.RandomApply(RandomGamma(*sem.GAMMA_RANGE), prob=sem.GAMMA_PROB))
    if sem.RGB_SHIFT_PROB > 0 and sem.RGB_SHIFT > 0:
        augs.append(T.RandomApply(RandomRGBShift(sem.RGB_SHIFT), prob=sem.RGB_SHIFT_PROB))
    return augs


# ---- Polyp recipe augmentations -------------------------------------------------------
# Geometric ones move image and label together; photometric ones (ColorTransform) change
# only the image and leave the label as it is.


class Rot90Transform(T.Transform):
    """Rotate by ``k`` * 90 degrees counter-clockwise (exact, no interpolation)."""

    def __init__(self, k: int, height: int, width: int):
        super().__init__()
        self._set_attributes({"k": int(k) % 4, "height": height, "width": width})

    def apply_image(self, img):
        return np.ascontiguousarray(np.rot90(img, self.k, axes=(0, 1)))

    def apply_segmentation(self, segmentation):
        return self.apply_image(segmentation)

    def apply_coords(self, coords):
        # (x, y) in a width x height image; pixel edges at integers, as in Detectron2.
        x, y = coords[:, 0].copy(), coords[:, 1].copy()
        w, h = self.width, self.height
        for _ in range(self.k):
            x, y = y, w - x
            w, h = h, w
        coords[:, 0], coords[:, 1] = x, y
        return coords

    def inverse(self):
        h, w = (self.width, self.height) if self.k % 2 else (self.height, self.width)
        return Rot90Transform(-self.k, h, w)


class RandomRot90(T.Augmentation):
    """Rotation by k * 90 degrees, k uniform in {1, 2, 3} (wrap in RandomApply for a probability)."""

    def get_transform(self, image):
        return Rot90Transform(int(np.random.randint(1, 4)), image.shape[0], image.shape[1])


def _gamma_op(gamma: float):
    lut = np.clip(np.round(255.0 * (np.arange(256) / 255.0) ** gamma), 0, 255).astype(np.uint8)

    def op(img):
        if img.dtype == np.uint8:
            return lut[img]
        return np.clip(255.0 * (np.clip(img, 0, 255) / 255.0) ** gamma, 0, 255).astype(img.dtype)

    return op


class RandomGamma(T.Augmentation):
    """``img = 255 * (img / 255) ** gamma`` with gamma uniform in [low, high] (e.g. 0.7-1.2,
    "70-120 %"); the label is unchanged."""

    def __init__(self, low: float = 0.7, high: float = 1.2):
        super().__init__()
        self._init(locals())

    def get_transform(self, image):
        return T.ColorTransform(_gamma_op(float(np.random.uniform(self.low, self.high))))


class RandomRGBShift(T.Augmentation):
    """Add to each colour channel its own offset, uniform in [-limit, limit], clipped to
    0..255; the label is unchanged."""

    def __init__(self, limit: float = 10.0):
        super().__init__()
        self._init(locals())

    def get_transform(self, image):
        shift = np.random.uniform(-self.limit, self.limit, size=image.shape[2] if image.ndim == 3 else 1)

        def op(img):
            out = np.clip(img.astype(np.float32) + shift.astype(np.float32), 0, 255)
            return np.round(out).astype(img.dtype) if img.dtype == np.uint8 else out.astype(img.dtype)

        return T.ColorTransform(op)


class SemanticDatasetMapper:
    """Dataset dict -> model input for semantic segmentation (training and test)."""

    @configurable
    def __init__(self, is_train: bool, *, augmentations, image_format: str, ignore_label: int = 255,
                 label_options=None, tile_size: int = 0, tile_overlap: int = 0):
        self.is_train = is_train
        self.tile_size, self.tile_overlap = int(tile_size), int(tile_overlap)
        self.label_options = dict(label_options or {})
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.ignore_label = ignore_label

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        return {
            "is_train": is_train,
            "augmentations": build_semantic_augmentations(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
            "ignore_label": cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            "label_options": label_options_from_cfg(cfg),
            "tile_size": cfg.HCMEASURE.TILE.SIZE,
            "tile_overlap": cfg.HCMEASURE.TILE.OVERLAP,
        }

    def __call__(self, dataset_dict):
        d = copy.deepcopy(dataset_dict)
        image = utils.read_image(d["file_name"], format=self.image_format)
        utils.check_image_size(d, image)
        label = None
        if "sem_seg_file_name" in d:
            decoder = d.get("sem_seg_decoder", "index_png")
            label = decode_label(d["sem_seg_file_name"], decoder, **self.label_options.get(decoder, {}))
            if label.shape != image.shape[:2]:
                raise ValueError(
                    f"{d['sem_seg_file_name']}: label size {label.shape[::-1]} differs from image "
                    f"{d['file_name']} size {image.shape[1::-1]} (width x height)")
        if self.is_train and d.get("tiled") and self.tile_size and "tile" not in d:
            # Random-tile crop: one tile of the HCMEASURE.TILE.SIZE/OVERLAP grid, uniformly.
            boxes = tile_grid(image.shape[0], image.shape[1], self.tile_size, self.tile_overlap)
            d["tile"] = boxes[np.random.randint(len(boxes))]
        if "tile" in d:  # a tile of a large image (hcmeasure.studies.cells.data)
            image = np.ascontiguousarray(crop_tile(image, d["tile"]))
            if label is not None:
                label = np.ascontiguousarray(crop_tile(label, d["tile"]))
            d["height"], d["width"] = image.shape[:2]
        aug_input = T.AugInput(image, sem_seg=label)
        self.augmentations(aug_input)
        image, label = aug_input.image, aug_input.sem_seg
        d["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if label is not None:
            d["sem_seg"] = torch.as_tensor(label.astype(np.int64))
        if not self.is_train:
            d.pop("sem_seg", None)
        return d
