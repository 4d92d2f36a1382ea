"""``PlainUNet``: the U-Net of the cell-outline study, depth and filters from the config.

The registered ``UNet`` always has the five stages of its encoder; this one has
``MODEL.PLAIN_UNET.DEPTH`` levels (three by default: two 2x2 max-poolings) of
``FILTERS`` channels, the same :class:`PlainUNetEncoder` / :class:`UNetDecoder` parts and
a 1x1 head, and speaks Detectron2's semantic protocol (``sem_seg`` scores at inference).

Inference of images larger than ``HCMEASURE.TILE.TEST_SIZE`` (when > 0) goes tile by
tile (:mod:`hcmeasure.inference.tiling`), so a 1200x1600 microscopy image never has all
its activations in memory at once.
"""
from __future__ import annotations

import torch

from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY

from ...inference.tiling import TiledSemanticModel
from ..parts import EncoderDecoder, PlainUNetEncoder, SegmentationHead, UNetDecoder
from .semantic import SemanticSegmentor

__all__ = ["PlainUNet", "plain_unet_filters"]


def plain_unet_filters(depth: int, filters=(), base: int = 32) -> list[int]:
    """Channels of each level: ``filters`` when given (must have ``depth`` entries), else
    ``base * 2 ** level``."""
    depth = int(depth)
    if depth < 1:
        raise ValueError(f"MODEL.PLAIN_UNET.DEPTH must be at least 1, got {depth}")
    if filters:
        filters = [int(f) for f in filters]
        if len(filters) != depth:
            raise ValueError(f"MODEL.PLAIN_UNET.FILTERS has {len(filters)} entries for DEPTH {depth}: {filters}")
        return filters
    return [int(base) * 2**i for i in range(depth)]


@META_ARCH_REGISTRY.register()
class PlainUNet(SemanticSegmentor):
    @configurable
    def __init__(self, *, filters, num_classes, criterion, pixel_mean, pixel_std, ignore_label=255,
                 upsample="transpose", norm="BN", in_channels=3, test_tile=0, test_overlap=100,
                 tile_merge="max", tile_batch=1):
        encoder = PlainUNetEncoder(in_channels=in_channels, norm=norm, channels=filters)
        decoder = UNetDecoder(encoder.out_channels, encoder.strides, (), upsample, norm)
        head = SegmentationHead(decoder.out_channels, num_classes)
        super().__init__(net=EncoderDecoder(encoder, decoder, head), criterion=criterion,
                         num_classes=num_classes, pixel_mean=pixel_mean, pixel_std=pixel_std,
                         size_divisibility=max(encoder.strides), ignore_label=ignore_label)
        self.test_tile, self.test_overlap = int(test_tile), int(test_overlap)
        self.tile_merge, self.tile_batch = tile_merge, int(tile_batch)

    @classmethod
    def from_config(cls, cfg):
        u, t = cfg.MODEL.PLAIN_UNET, cfg.HCMEASURE.TILE
        return {
            "filters": plain_unet_filters(u.DEPTH, u.FILTERS, u.BASE_FILTERS),
            **cls.protocol_config(cfg),
            "upsample": u.UPSAMPLE,
            "norm": u.NORM,
            "in_channels": len(cfg.MODEL.PIXEL_MEAN),
            "test_tile": t.TEST_SIZE,
            "test_overlap": t.TEST_OVERLAP,
            "tile_merge": t.MERGE,
            "tile_batch": t.TEST_BATCH,
        }

    def forward(self, batched_inputs):
        if self.training or not self.test_tile:
            return super().forward(batched_inputs)
        tiled = TiledSemanticModel(super().forward, self.test_tile, self.test_overlap, self.tile_merge,
                                   self.tile_batch)
        results = []
        for x in batched_inputs:
            h, w = x["image"].shape[-2:]
            if max(h, w) <= self.test_tile:
                results.extend(super().forward([x]))
            else:
                results.extend(tiled([x]))
        return results

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of an already normalised (N, C, H, W) batch whose sides are multiples of
        ``size_divisibility`` (what the ONNX export traces)."""
        return self.net(images)
