"""``GLoFFNet``: Global-Local Feature Fusion Network for polyp segmentation.

Structure (names as in the GLoFF-Net study; F0 is the image, F1..F5 the encoder maps):

* Encoder: any part from :mod:`hcmeasure.semseg.parts.encoders` (``MODEL.SEG_ENCODER``);
  the study's is the plain U-Net encoder with random initialisation, a ResNet works too.
* Global feature generation: each of F1..F4 goes through its own spatial attention (SA)
  and is resized (bilinear) to the size of F(k+1), k = ``MODEL.GLOFFNET.GLOBAL_LEVEL``;
  the four maps are concatenated and fused by a 3x3 conv-norm-ReLU into G
  (``GLOBAL_CHANNELS`` channels).
* Global-local fusion, one block per decoder stage i = 4..1: with
  ``X_i = Cat(Re(G), F_i)`` (G resized to F_i's size),
  ``L_i = Conv(Cat(SA(X_i), CA(X_i)))`` — spatial- and channel-attention branches over
  the same concatenation, concatenated and fused by a 3x3 conv-norm-ReLU back to F_i's
  channels.
* Decoding, U-Net style: ``D_5 = F_5``, ``D_i = DoubleConv(Cat(Up(D_{i+1}), L_i))`` — the
  fused map ``L_i`` takes the place of U-Net's skip feature; then a 1x1 head gives the
  class logits (extra upsampling blocks when F1 has stride > 1, e.g. a ResNet encoder).

SA is ``x * sigmoid(conv_k([mean_c x, max_c x]))`` (k = ``SA_KERNEL``), CA is
``x * sigmoid(MLP(avgpool x) + MLP(maxpool x))`` with reduction ``CA_REDUCTION``.
The study gives the blocks' wiring as above; the kernel sizes, the attention forms
(CBAM-like) and the reading of "decoding proceeds U-Net style" are this implementation's.
Loss: ``beta * CE + alpha * Dice`` = ``MODEL.SEG_LOSS.CE_WEIGHT`` / ``DICE_WEIGHT``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY

from ...semseg.parts import (
    ChannelAttention,
    ConvNormAct,
    SegmentationHead,
    SpatialAttention,
    UNetDecoder,
    build_encoder_from_cfg,
)
from ...semseg.segmentor import SemanticSegmentor

__all__ = ["GlobalFeatureGenerator", "GlobalLocalFusion", "GLoFFNetwork", "GLoFFNet"]


def _resize(x, size):
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class GlobalFeatureGenerator(nn.Module):
    """G = Conv(Cat(SA_1(Re(F1)), ..., SA_n(Re(Fn)))) at the size of ``F[level]``."""

    def __init__(self, in_channels, out_channels: int, level: int, sa_kernel: int = 7, norm: str = "BN"):
        super().__init__()
        if not 0 <= level < len(in_channels):
            raise ValueError(f"MODEL.GLOFFNET.GLOBAL_LEVEL={level}: must be 0..{len(in_channels) - 1} "
                             f"(the encoder map F1..F{len(in_channels)} whose size G takes)")
        self.level = level
        self.attn = nn.ModuleList(SpatialAttention(sa_kernel) for _ in in_channels)
        self.fuse = ConvNormAct(sum(in_channels), out_channels, 3, norm)

    def forward(self, feats):
        size = feats[self.level].shape[-2:]
        # Attention at each map's own resolution, then resized to the common size.
        maps = [_resize(sa(f), size) for sa, f in zip(self.attn, feats)]
        return self.fuse(torch.cat(maps, dim=1))


class GlobalLocalFusion(nn.Module):
    """L = Conv(Cat(SA(X), CA(X))), X = Cat(Re(G), F): back to ``local_channels``."""

    def __init__(self, global_channels: int, local_channels: int, sa_kernel: int = 7,
                 ca_reduction: int = 16, norm: str = "BN"):
        super().__init__()
        both = global_channels + local_channels
        self.sa = SpatialAttention(sa_kernel)
        self.ca = ChannelAttention(both, ca_reduction)
        self.fuse = ConvNormAct(2 * both, local_channels, 3, norm)

    def forward(self, g, f):
        x = torch.cat([_resize(g, f.shape[-2:]), f], dim=1)
        return self.fuse(torch.cat([self.sa(x), self.ca(x)], dim=1))


class GLoFFNetwork(nn.Module):
    """Encoder, global feature, one fusion block per skip level, U-Net decoder, head."""

    def __init__(self, encoder, num_classes: int, *, global_channels=64, global_level=2,
                 decoder_channels=(), upsample="transpose", norm="BN", sa_kernel=7, ca_reduction=16):
        super().__init__()
        skip_channels = list(encoder.out_channels[:-1])
        self.encoder = encoder
        self.global_feature = GlobalFeatureGenerator(skip_channels, global_channels, global_level,
                                                     sa_kernel, norm)
        self.fusions = nn.ModuleList(
            GlobalLocalFusion(global_channels, c, sa_kernel, ca_reduction, norm) for c in skip_channels)
        self.decoder = UNetDecoder(encoder.out_channels, encoder.strides, decoder_channels, upsample, norm)
        self.head = SegmentationHead(self.decoder.out_channels, num_classes)

    def forward(self, x):
        feats = self.encoder(x)
        local = feats[:-1]
        g = self.global_feature(local)
        fused = [fusion(g, f) for fusion, f in zip(self.fusions, local)]
        return self.head(self.decoder(feats, skips=fused))


@META_ARCH_REGISTRY.register()
class GLoFFNet(SemanticSegmentor):
    """GLoFF-Net in Detectron2's semantic-segmentation protocol (see the module docstring)."""

    @configurable
    def __init__(self, *, encoder, num_classes, criterion, pixel_mean, pixel_std, ignore_label=255,
                 global_channels=64, global_level=2, decoder_channels=(), upsample="transpose", norm="BN",
                 sa_kernel=7, ca_reduction=16):
        net = GLoFFNetwork(encoder, num_classes, global_channels=global_channels, global_level=global_level,
                           decoder_channels=decoder_channels, upsample=upsample, norm=norm,
                           sa_kernel=sa_kernel, ca_reduction=ca_reduction)
        super().__init__(net=net, criterion=criterion, num_classes=num_classes, pixel_mean=pixel_mean,
                         pixel_std=pixel_std, size_divisibility=max(encoder.strides), ignore_label=ignore_label)

    @classmethod
    def from_config(cls, cfg):
        g = cfg.MODEL.GLOFFNET
        return {
            "encoder": build_encoder_from_cfg(cfg),
            **cls.protocol_config(cfg),
            "global_channels": g.GLOBAL_CHANNELS,
            "global_level": g.GLOBAL_LEVEL,
            "decoder_channels": list(g.DECODER_CHANNELS),
            "upsample": g.UPSAMPLE,
            "norm": g.NORM,
            "sa_kernel": g.SA_KERNEL,
            "ca_reduction": g.CA_REDUCTION,
        }
