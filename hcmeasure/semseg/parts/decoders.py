"""U-Net decoder: upsample, concatenate the skip feature, double convolution.

:class:`UNetDecoder` works for any encoder that reports ``out_channels`` and ``strides``:
starting from the deepest map it runs one :class:`DecoderBlock` per shallower map (each
with that map as skip), then blocks without skip until the stride is 1, so the output has
the input's resolution. A caller can replace the skip features (GLoFF-Net passes its
global-local fused maps) as long as their channels are the ones given at construction.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .blocks import DoubleConv

__all__ = ["DecoderBlock", "UNetDecoder", "resolve_decoder_channels"]


class DecoderBlock(nn.Module):
    """Upsample x2, concatenate the skip (if any), double 3x3 convolution.

    ``upsample="transpose"``: a 2x2 stride-2 transposed convolution to ``out_channels``
    (as in U-Net), then ``DoubleConv(out + skip -> out)``; ``"bilinear"``: bilinear
    resizing, then ``DoubleConv(in + skip -> out)``.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int,
                 upsample: str = "transpose", norm: str = "BN"):
        super().__init__()
        if upsample == "transpose":
            self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
            conv_in = out_channels + skip_channels
        elif upsample == "bilinear":
            self.up = None
            conv_in = in_channels + skip_channels
        else:
            raise ValueError(f"decoder upsampling must be 'transpose' or 'bilinear', got {upsample!r}")
        self.conv = DoubleConv(conv_in, out_channels, norm)

    def forward(self, x, skip=None):
        target = skip.shape[-2:] if skip is not None else (x.shape[-2] * 2, x.shape[-1] * 2)
        if self.up is not None:
            x = self.up(x)
        if tuple(x.shape[-2:]) != tuple(target):
            x = F.interpolate(x, size=target, mode="bilinear", align_corners=False)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv(x)


def resolve_decoder_channels(encoder_channels: Sequence[int], encoder_strides: Sequence[int],
                             decoder_channels: Sequence[int] = ()) -> tuple[list[int], list[int]]:
    """(skip channels, output channels) of each decoder block, deepest first.

    One block per encoder map but the deepest (skip = that map), then blocks without skip
    (skip channels 0) until stride 1. ``decoder_channels`` empty: each block outputs its
    skip's channels, a block without skip half its input (at least 8).
    """
    n_skip = len(encoder_channels) - 1
    skips = [encoder_channels[i] for i in range(n_skip - 1, -1, -1)]
    stride = encoder_strides[0]
    while stride > 1:
        skips.append(0)
        stride //= 2
    if decoder_channels:
        outs = [int(c) for c in decoder_channels]
        if len(outs) != len(skips):
            raise ValueError(f"decoder needs {len(skips)} channel values (one per block, deepest first) for "
                             f"this encoder (strides {tuple(encoder_strides)}), got {len(outs)}: {outs}")
    else:
        outs, prev = [], encoder_channels[-1]
        for s in skips:
            prev = s if s else max(prev // 2, 8)
            outs.append(prev)
    return skips, outs


class UNetDecoder(nn.Module):
    def __init__(self, encoder_channels: Sequence[int], encoder_strides: Sequence[int],
                 decoder_channels: Sequence[int] = (), upsample: str = "transpose", norm: str = "BN"):
        super().__init__()
        skips, outs = resolve_decoder_channels(encoder_channels, encoder_strides, decoder_channels)
        self.blocks = nn.ModuleList()
        prev = encoder_channels[-1]
        for s, o in zip(skips, outs):
            self.blocks.append(DecoderBlock(prev, s, o, upsample, norm))
            prev = o
        self.skip_channels = tuple(skips)
        self.out_channels = prev

    def forward(self, features, skips=None):
        """``features``: encoder maps F1..Fn; ``skips``: replacements for F1..F(n-1) (same
        channels), or None to use the encoder maps themselves."""
        skips = list(features[:-1]) if skips is None else list(skips)
        x = features[-1]
        for block in self.blocks:
            skip = skips.pop() if skips else None
            x = block(x, skip)
        return x
