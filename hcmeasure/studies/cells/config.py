"""Config keys of the cell-outline study (the ``PlainUNet`` name of the U-Net, outline targets).

The tiles of its training and inference are the base's ``HCMEASURE.TILE``
(:mod:`hcmeasure.semseg.config`).
"""
from detectron2.config import CfgNode as CN

__all__ = ["add_cells_config"]


def add_cells_config(cfg):
    """Add ``MODEL.PLAIN_UNET`` and ``HCMEASURE.CELLS``. Safe to call twice."""
    if "PLAIN_UNET" in cfg.MODEL:
        return cfg
    _C = cfg
    # hcmeasure's own keys, beside Detectron2's MODEL, INPUT, SOLVER ...
    if "HCMEASURE" not in _C:
        _C.HCMEASURE = CN()
    # MODEL.META_ARCHITECTURE "PlainUNet" (hcmeasure.studies.cells.plain_unet).
    _C.MODEL.PLAIN_UNET = CN()
    # Resolution levels of the encoder (DEPTH - 1 max-poolings; inputs padded to a multiple of 2 ** (DEPTH - 1)).
    _C.MODEL.PLAIN_UNET.DEPTH = 3
    # Filters of each level, shallow first ([] = BASE_FILTERS * 2 ** level).
    _C.MODEL.PLAIN_UNET.FILTERS = []
    # Filters of the first level when FILTERS is [].
    _C.MODEL.PLAIN_UNET.BASE_FILTERS = 32
    # Decoder upsampling: "transpose" (2x2 transposed convolution) or "bilinear".
    _C.MODEL.PLAIN_UNET.UPSAMPLE = "transpose"
    # Normalisation after every convolution of encoder and decoder: "BN", "GN", "" ...
    _C.MODEL.PLAIN_UNET.NORM = "BN"

    # Targets from RGBA outline drawings (hcmeasure.studies.cells.data) and the metrics.
    _C.HCMEASURE.CELLS = CN()
    # Outline pixels: "alpha" (alpha > THRESHOLD) or "red" (red > THRESHOLD, dominating green and blue).
    _C.HCMEASURE.CELLS.CHANNEL = "alpha"
    # Grey level (0-255) above which CHANNEL marks an outline pixel.
    _C.HCMEASURE.CELLS.THRESHOLD = 127
    # Widening: "none", "dilate" (disk of WIDEN_RADIUS px), "blur" (Gaussian of sigma WIDEN_RADIUS).
    _C.HCMEASURE.CELLS.WIDEN = "none"
    # Radius (dilate) or sigma (blur) of the widening, in pixels.
    _C.HCMEASURE.CELLS.WIDEN_RADIUS = 1.0
    # "outline" (1 = outline), "filled" (1 = cells with their outline), "outline_filled" (1 = outline, 2 = interior).
    _C.HCMEASURE.CELLS.TARGET = "outline"
    # The study's weighted recall: (W * outline recall + background recall) / (W + 1).
    _C.HCMEASURE.CELLS.RECALL_WEIGHT = 10.0
    return cfg
