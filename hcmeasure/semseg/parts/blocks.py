"""Small building blocks: conv-norm-ReLU, the U-Net double convolution, attention, head."""
from __future__ import annotations

import torch
from torch import nn

from detectron2.layers import get_norm

__all__ = ["ConvNormAct", "DoubleConv", "SpatialAttention", "ChannelAttention", "SegmentationHead"]


class ConvNormAct(nn.Sequential):
    """``k x k`` convolution (same padding), normalisation (``norm`` as Detectron2's
    ``get_norm`` names it; "" for none, then the convolution has a bias) and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, norm: str = "BN"):
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=not norm)]
        n = get_norm(norm, out_channels)
        if n is not None:
            layers.append(n)
        layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DoubleConv(nn.Sequential):
    """Two 3x3 conv-norm-ReLU layers: the unit of every U-Net stage."""

    def __init__(self, in_channels: int, out_channels: int, norm: str = "BN"):
        super().__init__(ConvNormAct(in_channels, out_channels, 3, norm),
                         ConvNormAct(out_channels, out_channels, 3, norm))


class SpatialAttention(nn.Module):
    """Spatial attention: one weight per position, ``sigmoid(conv([mean_c(x), max_c(x)]))``,
    multiplied onto every channel of ``x``."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x):
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class ChannelAttention(nn.Module):
    """Channel attention: one weight per channel, ``sigmoid(mlp(avgpool(x)) + mlp(maxpool(x)))``
    with a shared two-layer MLP (1x1 convolutions) of ``channels // reduction`` hidden units."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // max(int(reduction), 1), 1)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, channels, 1, bias=False))

    def forward(self, x):
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        mx = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        return x * torch.sigmoid(avg + mx)


class SegmentationHead(nn.Conv2d):
    """Per-class logits: a ``kernel_size`` convolution to ``num_classes`` channels."""

    def __init__(self, in_channels: int, num_classes: int, kernel_size: int = 1):
        super().__init__(in_channels, num_classes, kernel_size, padding=kernel_size // 2)
