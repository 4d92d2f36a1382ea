"""Config keys of the polyp studies (GLoFF-Net; the U-Nets use the base's ``MODEL.UNET``)."""
from detectron2.config import CfgNode as CN

__all__ = ["add_polyp_config"]


def add_polyp_config(cfg):
    """Add ``MODEL.GLOFFNET``. Safe to call twice."""
    if "GLOFFNET" in cfg.MODEL:
        return cfg
    _C = cfg
    # GLoFF-Net, MODEL.META_ARCHITECTURE "GLoFFNet" (hcmeasure.studies.polyp.gloffnet); its
    # encoder is MODEL.SEG_ENCODER.
    _C.MODEL.GLOFFNET = CN()
    # Channels of the global feature G.
    _C.MODEL.GLOFFNET.GLOBAL_CHANNELS = 64
    # G is built at the size of F(GLOBAL_LEVEL + 1): 0 = F1 ... 3 = F4.
    _C.MODEL.GLOFFNET.GLOBAL_LEVEL = 2
    # Output channels of the decoder blocks, deepest first; [] = the skips' (classic U-Net).
    _C.MODEL.GLOFFNET.DECODER_CHANNELS = []
    # Upsampling in the decoder: "transpose" (2x2 transposed convolution) or "bilinear".
    _C.MODEL.GLOFFNET.UPSAMPLE = "transpose"
    # Normalisation after the fusion and decoder convolutions ("BN", "GN", "" ...).
    _C.MODEL.GLOFFNET.NORM = "BN"
    # Spatial attention: kernel of the convolution over [mean, max] channel maps.
    _C.MODEL.GLOFFNET.SA_KERNEL = 7
    # Channel attention: reduction ratio of the shared MLP.
    _C.MODEL.GLOFFNET.CA_REDUCTION = 16
    return cfg
