"""EDNet and its FCN baseline (PASCAL VOC 2012) as a Detectron2 meta-architecture.

``MODEL.META_ARCHITECTURE: "EDNet"``. The network (:class:`EDNetwork`) is:

* **Encoder**: any Detectron2 backbone from ``MODEL.BACKBONE.NAME`` exposing
  ``MODEL.EDNET.IN_FEATURES`` (the VOC configs: Detectron2's ResNet-50,
  ``res2``..``res5`` = Layer-1..Layer-4 at strides 4, 8, 16, 32 with 256, 512, 1024,
  2048 channels). It has no classifier, so any input size works. ImageNet weights
  come through ``MODEL.WEIGHTS`` (see ``configs/VOC2012/Base-VOC2012.yaml``).
* **Spatial Information Branch** (SIB, ``USE_SIM``): four Spatial Information
  Modules in sequence starting from the normalised image (not the ResNet stem). A SIM
  concatenates a 3x3 stride-2 convolution (+norm, ReLU; ``SIM_CHANNELS[i]`` outputs)
  and a 3x3 stride-2 average pooling of its input, so it halves the size and its
  output has ``SIM_CHANNELS[i]`` + input channels. The four outputs are at strides
  2, 4, 8, 16; those whose stride equals an encoder feature's (4, 8, 16) are that
  scale's second input X2. The stride-2 output only feeds the next SIM.
* **Global Pooling Module** (GPM, ``USE_GPM``): global average pooling of the last
  encoder feature, 1x1 convolution (with bias, ReLU; no norm on a 1x1 map) to
  ``GPM_CHANNELS``, bilinear upsampling back to the stride-32 map: X2 of that scale.
* **Feature Fusion Module** (FFM, ``USE_FFM``), one per scale: 1x1 convolution
  reducing X1 (encoder feature) to ``DECODER_CHANNELS``, concatenation with X2, 1x1
  convolution, then a residual unit with channel attention
  ``relu(x + CA(conv3x3-norm-relu-conv3x3-norm(x)))`` where CA is squeeze-and-excitation
  (global pool, 1x1, ReLU, 1x1, sigmoid, ``ATTENTION_REDUCTION``). At a scale without
  X2 the concatenation and the second 1x1 convolution are left out.
* **Boundary Refinement Module** (BRM, ``USE_BRM``), coarse to fine: concatenation
  of the scale's fused feature with the previous BRM's output upsampled x2
  (bilinear; the coarsest BRM takes the fused feature only), 1x1 convolution to
  ``DECODER_CHANNELS``, residual refinement ``relu(x + conv3x3-norm-relu-conv3x3(x))``.
  A 1x1 classifier on the finest BRM output gives the logits at stride 4.

What replaces a module that is switched off:

* SIM off: no X2 at strides 4, 8, 16. GPM off: no X2 at stride 32.
* FFM off: the fused feature of a scale is the plain concatenation ``[X1, X2]``
  (just X1 without X2): no parameters.
* BRM off: FCN-style score fusion. Each decoder scale gets its own 1x1 classifier on
  its fused feature and the class scores are summed coarse to fine with x2 bilinear
  upsampling (FCN-8s' skip architecture, without its learnt deconvolutions).
* Which scales the decoder reads: all ``IN_FEATURES`` when SIM, FFM or BRM is on
  (they act at every scale), only the last (stride 32) otherwise.

With all four off this is the FCN baseline: encoder, one 1x1 classifier on the
stride-32 feature, bilinear upsampling to the input (no ``sib``/``gpm``/``ffm``/``brm``
submodules). Logits are always upsampled bilinearly to the (padded) input size.

Parameter names (``net.encoder.*``, ``net.sib.*``, ``net.gpm.*``, ``net.ffm.*``,
``net.brm.*``, ``net.score.*``) are what ``HCMEASURE.SOLVER.LR_MULTIPLIERS`` matches:
the VOC configs train ``net.encoder`` at 0.1x the base learning rate.
"""
from __future__ import annotations

import fvcore.nn.weight_init as weight_init
import torch
from torch import nn
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone

from ...semseg.losses import build_segmentation_loss
from ...semseg.segmentor import SemanticSegmentor

__all__ = [
    "SpatialInformationModule",
    "SpatialInformationBranch",
    "GlobalPoolingModule",
    "ChannelAttention",
    "ResidualUnit",
    "FeatureFusionModule",
    "BoundaryRefinementModule",
    "EDNetwork",
    "EDNet",
]


def _conv(in_channels, out_channels, kernel_size, norm, *, stride=1, activation=True):
    """Conv (+norm) (+ReLU), MSRA-initialised; bias only without a norm."""
    conv = Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
                  bias=not norm, norm=get_norm(norm, out_channels),
                  activation=F.relu if activation else None)
    weight_init.c2_msra_fill(conv)
    return conv


def _upsample(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class SpatialInformationModule(nn.Module):
    """``cat([relu(norm(conv3x3_s2(x))), avgpool3x3_s2(x)])``: half the size."""

    def __init__(self, in_channels: int, conv_channels: int, norm: str = "BN"):
        super().__init__()
        self.conv = _conv(in_channels, conv_channels, 3, norm, stride=2)
        # count_include_pad=False: border pixels average real values only.
        self.pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.out_channels = conv_channels + in_channels

    def forward(self, x):
        return torch.cat([self.conv(x), self.pool(x)], dim=1)


class SpatialInformationBranch(nn.Module):
    """SIMs in sequence; returns every SIM's output (strides 2, 4, 8, 16 for four)."""

    def __init__(self, in_channels: int, conv_channels, norm: str = "BN"):
        super().__init__()
        self.out_channels, self.strides = [], []
        channels, stride = in_channels, 1
        for i, c in enumerate(conv_channels):
            sim = SpatialInformationModule(channels, int(c), norm)
            self.add_module(f"sim{i + 1}", sim)
            channels, stride = sim.out_channels, stride * 2
            self.out_channels.append(channels)
            self.strides.append(stride)

    def forward(self, x):
        outs = []
        for sim in self.children():
            x = sim(x)
            outs.append(x)
        return outs


class GlobalPoolingModule(nn.Module):
    """Global average pool, 1x1 conv + ReLU, bilinear upsampling to the input's size."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.proj = _conv(in_channels, out_channels, 1, "")
        self.out_channels = out_channels

    def forward(self, x):
        g = self.proj(F.adaptive_avg_pool2d(x, 1))
        return _upsample(g, x.shape[-2:])


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: ``x * sigmoid(fc2(relu(fc1(avgpool(x)))))``."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(channels // max(int(reduction), 1), 8)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x):
        w = self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1))))
        return x * torch.sigmoid(w)


class ResidualUnit(nn.Module):
    """``relu(x + A(conv3x3-norm-relu-conv3x3-norm(x)))``, A = channel attention or identity."""

    def __init__(self, channels: int, norm: str = "BN", attention_reduction: int | None = None):
        super().__init__()
        self.conv1 = _conv(channels, channels, 3, norm)
        self.conv2 = _conv(channels, channels, 3, norm, activation=False)
        self.attention = None if attention_reduction is None else ChannelAttention(channels, attention_reduction)

    def forward(self, x):
        r = self.conv2(self.conv1(x))
        if self.attention is not None:
            r = self.attention(r)
        return F.relu(x + r)


class FeatureFusionModule(nn.Module):
    """Reduce X1 (1x1), concatenate X2, 1x1, residual unit with channel attention."""

    def __init__(self, in_channels: int, aux_channels: int, channels: int, norm: str = "BN",
                 attention_reduction: int = 4):
        super().__init__()
        self.reduce = _conv(in_channels, channels, 1, norm)
        self.fuse = _conv(channels + aux_channels, channels, 1, norm) if aux_channels else None
        self.refine = ResidualUnit(channels, norm, attention_reduction)
        self.out_channels = channels

    def forward(self, x1, x2=None):
        x = self.reduce(x1)
        if self.fuse is not None:
            x = self.fuse(torch.cat([x, x2], dim=1))
        return self.refine(x)


class BoundaryRefinementModule(nn.Module):
    """Concatenate the upsampled previous output (if any), 1x1, residual refinement."""

    def __init__(self, in_channels: int, prev_channels: int, channels: int, norm: str = "BN"):
        super().__init__()
        self.proj = _conv(in_channels + prev_channels, channels, 1, norm)
        self.refine = ResidualUnit(channels, norm, None)
        self.out_channels = channels

    def forward(self, x, prev=None):
        if prev is not None:
            x = torch.cat([x, _upsample(prev, x.shape[-2:])], dim=1)
        return self.refine(self.proj(x))


class EDNetwork(nn.Module):
    """Encoder + optional SIB / GPM / FFM / BRM; (N, 3, H, W) -> (N, classes, H, W) logits.

    Args:
        encoder: Detectron2 ``Backbone`` returning ``in_features``.
        in_features: encoder outputs, fine to coarse (e.g. res2..res5).
        num_classes: output channels.
        use_sim, use_gpm, use_ffm, use_brm: module switches (see the module docstring).
        sim_channels: conv output channels of each SIM.
        gpm_channels, decoder_channels: widths of the GPM and of FFM/BRM.
        attention_reduction: squeeze ratio of the FFMs' channel attention.
        norm: Detectron2 norm name for SIB/FFM/BRM convolutions ("BN", "SyncBN", "GN", "").
        in_channels: image channels (input of the SIB).
    """

    def __init__(self, encoder, in_features, num_classes, *, use_sim=True, use_gpm=True, use_ffm=True,
                 use_brm=True, sim_channels=(32, 64, 128, 256), gpm_channels=256, decoder_channels=160,
                 attention_reduction=4, norm="BN", in_channels=3):
        super().__init__()
        self.encoder = encoder
        shapes = encoder.output_shape()
        missing = [f for f in in_features if f not in shapes]
        if missing:
            raise ValueError(f"encoder has no outputs {missing}; it has {sorted(shapes)}")
        self.in_features = list(in_features)
        strides = [shapes[f].stride for f in self.in_features]
        if strides != sorted(strides):
            raise ValueError(f"IN_FEATURES must go fine to coarse; strides {strides}")
        last = self.in_features[-1]

        aux_channels = {f: 0 for f in self.in_features}
        self.sib_taps = {}  # feature name -> index of the SIM output fused with it
        if use_sim:
            self.sib = SpatialInformationBranch(in_channels, sim_channels, norm)
            for f in self.in_features:
                if shapes[f].stride in self.sib.strides:
                    i = self.sib.strides.index(shapes[f].stride)
                    self.sib_taps[f] = i
                    aux_channels[f] = self.sib.out_channels[i]
        if use_gpm:
            self.gpm = GlobalPoolingModule(shapes[last].channels, gpm_channels)
            aux_channels[last] += gpm_channels

        # The FCN baseline (and GPM alone) read the last scale only.
        self.decoder_features = self.in_features if (use_sim or use_ffm or use_brm) else [last]

        if use_ffm:
            self.ffm = nn.ModuleDict({
                f: FeatureFusionModule(shapes[f].channels, aux_channels[f], decoder_channels, norm,
                                       attention_reduction)
                for f in self.decoder_features})
            fused_channels = {f: decoder_channels for f in self.decoder_features}
        else:
            fused_channels = {f: shapes[f].channels + aux_channels[f] for f in self.decoder_features}

        if use_brm:
            brm, prev = {}, 0
            for f in reversed(self.decoder_features):
                brm[f] = BoundaryRefinementModule(fused_channels[f], prev, decoder_channels, norm)
                prev = decoder_channels
            self.brm = nn.ModuleDict({f: brm[f] for f in self.decoder_features})
            score_in = {self.decoder_features[0]: decoder_channels}
        else:
            score_in = fused_channels
        self.score = nn.ModuleDict({f: nn.Conv2d(c, num_classes, 1) for f, c in score_in.items()})
        for conv in self.score.values():
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x):
        feats = self.encoder(x)
        aux = {}
        if hasattr(self, "sib"):
            sib_out = self.sib(x)
            aux = {f: sib_out[i] for f, i in self.sib_taps.items()}
        if hasattr(self, "gpm"):
            last = self.in_features[-1]
            g = self.gpm(feats[last])
            aux[last] = g if last not in aux else torch.cat([aux[last], g], dim=1)

        fused = {}
        for f in self.decoder_features:
            x2 = aux.get(f)
            if hasattr(self, "ffm"):
                fused[f] = self.ffm[f](feats[f], x2)
            else:
                fused[f] = feats[f] if x2 is None else torch.cat([feats[f], x2], dim=1)

        if hasattr(self, "brm"):
            out = None
            for f in reversed(self.decoder_features):
                out = self.brm[f](fused[f], out)
            logits = self.score[self.decoder_features[0]](out)
        else:
            logits = None
            for f in reversed(self.decoder_features):
                s = self.score[f](fused[f])
                logits = s if logits is None else s + _upsample(logits, s.shape[-2:])
        return _upsample(logits, x.shape[-2:])


@META_ARCH_REGISTRY.register()
class EDNet(SemanticSegmentor):
    """EDNet / FCN baseline in Detectron2's semantic-segmentation protocol (``MODEL.EDNET``)."""

    @configurable
    def __init__(self, *, net, criterion, num_classes, pixel_mean, pixel_std, size_divisibility=32,
                 ignore_label=255):
        super().__init__(net=net, criterion=criterion, num_classes=num_classes, pixel_mean=pixel_mean,
                         pixel_std=pixel_std, size_divisibility=size_divisibility,
                         ignore_label=ignore_label)

    @classmethod
    def from_config(cls, cfg):
        e = cfg.MODEL.EDNET
        in_channels = len(cfg.MODEL.PIXEL_MEAN)
        encoder = build_backbone(cfg, ShapeSpec(channels=in_channels))
        num_classes = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
        net = EDNetwork(
            encoder, e.IN_FEATURES, num_classes,
            use_sim=e.USE_SIM, use_gpm=e.USE_GPM, use_ffm=e.USE_FFM, use_brm=e.USE_BRM,
            sim_channels=e.SIM_CHANNELS, gpm_channels=e.GPM_CHANNELS,
            decoder_channels=e.DECODER_CHANNELS, attention_reduction=e.ATTENTION_REDUCTION,
            norm=e.NORM, in_channels=in_channels,
        )
        shapes = encoder.output_shape()
        size_divisibility = max([encoder.size_divisibility] + [shapes[f].stride for f in e.IN_FEATURES])
        return {
            "net": net,
            "criterion": build_segmentation_loss(cfg),
            "num_classes": num_classes,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "size_divisibility": size_divisibility,
            "ignore_label": cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
        }
