"""``UNet``: U-Net with a swappable encoder, registered in Detectron2's META_ARCH_REGISTRY.

``MODEL.SEG_ENCODER.NAME: "unet"`` gives the plain U-Net (Ronneberger et al. 2015; the
baseline of ``configs/Polyp/unet_kvasir.yaml``); ``"resnet34"`` the U-Net with a
torchvision ResNet-34 encoder of the BKAI-IGH NeoPolyp study
(``configs/NeoPolyp/unet_R_34.yaml``): skips from each encoder stage, 2x2 transposed
convolutions in the decoder (``MODEL.UNET.UPSAMPLE``), a 1x1 convolution to
``MODEL.SEM_SEG_HEAD.NUM_CLASSES`` logits. Training loss: ``MODEL.SEG_LOSS``
(``build_segmentation_loss``).
"""
from __future__ import annotations

from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY

from ..parts import EncoderDecoder, SegmentationHead, UNetDecoder, build_encoder_from_cfg
from .semantic import SemanticSegmentor

__all__ = ["UNet"]


@META_ARCH_REGISTRY.register()
class UNet(SemanticSegmentor):
    """U-Net of ``encoder`` (any part with ``out_channels``/``strides``), a U-Net decoder
    and a 1x1 head; inputs are padded to a multiple of the encoder's largest stride."""

    @configurable
    def __init__(self, *, encoder, num_classes, criterion, pixel_mean, pixel_std, ignore_label=255,
                 decoder_channels=(), upsample="transpose", norm="BN"):
        decoder = UNetDecoder(encoder.out_channels, encoder.strides, decoder_channels, upsample, norm)
        head = SegmentationHead(decoder.out_channels, num_classes)
        super().__init__(net=EncoderDecoder(encoder, decoder, head), criterion=criterion,
                         num_classes=num_classes, pixel_mean=pixel_mean, pixel_std=pixel_std,
                         size_divisibility=max(encoder.strides), ignore_label=ignore_label)

    @classmethod
    def from_config(cls, cfg):
        u = cfg.MODEL.UNET
        return {
            "encoder": build_encoder_from_cfg(cfg),
            **cls.protocol_config(cfg),
            "decoder_channels": list(u.DECODER_CHANNELS),
            "upsample": u.UPSAMPLE,
            "norm": u.NORM,
        }
