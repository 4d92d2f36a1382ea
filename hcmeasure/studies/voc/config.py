"""Config keys of the PASCAL VOC 2012 study (EDNet and its FCN baseline)."""
from detectron2.config import CfgNode as CN

__all__ = ["add_voc_config"]


def add_voc_config(cfg):
    """Add ``MODEL.EDNET`` and the poly learning-rate schedule's keys. Safe to call twice."""
    if "EDNET" in cfg.MODEL:
        return cfg
    _C = cfg
    # EDNet, MODEL.META_ARCHITECTURE "EDNet" (hcmeasure.studies.voc.ednet); its encoder is
    # MODEL.BACKBONE.NAME (Detectron2's ResNet in the VOC configs, MODEL.RESNETS.*).
    _C.MODEL.EDNET = CN()
    # Encoder outputs read by the decoder, fine to coarse (strides 4, 8, 16, 32).
    _C.MODEL.EDNET.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    # Spatial Information Branch (four SIMs from the image); all four USE_* False = FCN.
    _C.MODEL.EDNET.USE_SIM = True
    # Global Pooling Module on the last encoder feature.
    _C.MODEL.EDNET.USE_GPM = True
    # Feature Fusion Module per scale.
    _C.MODEL.EDNET.USE_FFM = True
    # Boundary Refinement Module per scale.
    _C.MODEL.EDNET.USE_BRM = True
    # Output channels of each SIM's 3x3 stride-2 convolution (its pooling adds the input's).
    _C.MODEL.EDNET.SIM_CHANNELS = [32, 64, 128, 256]
    # Channels of the GPM's 1x1 convolution.
    _C.MODEL.EDNET.GPM_CHANNELS = 256
    # Width of the FFMs and BRMs.
    _C.MODEL.EDNET.DECODER_CHANNELS = 160
    # Squeeze ratio of the FFMs' channel attention.
    _C.MODEL.EDNET.ATTENTION_REDUCTION = 4
    # Norm after the SIB/FFM/BRM convolutions: "BN", "SyncBN" (multi-GPU), "GN", "".
    _C.MODEL.EDNET.NORM = "BN"
    # SOLVER.LR_SCHEDULER_NAME "WarmupPolyLR" (Detectron2's DeepLab project, used by
    # tools/train_net.py): lr = BASE_LR * (1 - iter / MAX_ITER) ** POLY_LR_POWER ...
    if "POLY_LR_POWER" not in _C.SOLVER:
        _C.SOLVER.POLY_LR_POWER = 0.9
    # ... floored at BASE_LR * POLY_LR_CONSTANT_ENDING when that is > 0.
    if "POLY_LR_CONSTANT_ENDING" not in _C.SOLVER:
        _C.SOLVER.POLY_LR_CONSTANT_ENDING = 0.0
    return cfg
