"""Training augmentations for ultrasound, built from the config.

Geometric: scale jitter of the short side (``INPUT.MIN_SIZE_TRAIN``), horizontal and
vertical flips, optional small rotation. Photometric: brightness and contrast
(gain/contrast differ across ultrasound machines and settings). Detectron2's
transforms move images, boxes and polygons together, so the head outline stays
an exact ellipse under all of them.
"""
from __future__ import annotations

from detectron2.data import transforms as T

__all__ = ["build_hc18_train_augmentations", "build_test_resize"]


def build_hc18_train_augmentations(cfg) -> list:
    aug = cfg.HCMEASURE.AUG
    augs = [
        T.ResizeShortestEdge(
            cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN, cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING
        )
    ]
    if aug.ROTATION > 0:
        augs.append(T.RandomRotation([-aug.ROTATION, aug.ROTATION], expand=False))
    if aug.HFLIP:
        augs.append(T.RandomFlip(prob=0.5, horizontal=True, vertical=False))
    if aug.VFLIP:
        augs.append(T.RandomFlip(prob=0.5, horizontal=False, vertical=True))
    if tuple(aug.BRIGHTNESS) != (1.0, 1.0):
        augs.append(T.RandomBrightness(*aug.BRIGHTNESS))
    if tuple(aug.CONTRAST) != (1.0, 1.0):
        augs.append(T.RandomContrast(*aug.CONTRAST))
    return augs


def build_test_resize(cfg):
    """The resize applied at inference (same as Detectron2's ``DefaultPredictor``)."""
    return T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
