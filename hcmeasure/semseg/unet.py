"""``UNet``: the one U-Net of hcmeasure, registered in Detectron2's META_ARCH_REGISTRY.

An encoder from :data:`~hcmeasure.semseg.parts.SEG_ENCODER_REGISTRY` (``MODEL.SEG_ENCODER``),
the U-Net decoder (skips from every encoder map but the deepest, ``MODEL.UNET``) and a 1x1
head to ``MODEL.SEM_SEG_HEAD.NUM_CLASSES`` logits; training loss ``MODEL.SEG_LOSS``. Its
users:

* the HC head refiner (``configs/HC18/head_refiner_unet_effnet_lite0.yaml``: an
  EfficientNet-Lite0 encoder, bilinear decoder);
* the polyp studies: the plain U-Net of Ronneberger et al. 2015
  (``configs/Polyp/unet_kvasir.yaml``, ``SEG_ENCODER.NAME "unet"``) and the ResNet-34
  U-Net of BKAI-IGH NeoPolyp (``configs/NeoPolyp/unet_R_34.yaml``);
* the cell-outline study, through its ``PlainUNet`` name (a plain encoder of
  ``MODEL.PLAIN_UNET.DEPTH`` levels; :mod:`hcmeasure.studies.cells.plain_unet`).

Tiled inference is an option (``HCMEASURE.TILE.TEST_SIZE`` > 0): an image larger than a
tile is predicted tile by tile (:mod:`hcmeasure.semseg.tiling`), ``TEST_BATCH`` tiles per
pass, so a large image never has all its activations in memory at once. Training, and
images no larger than a tile, run whole.
"""
from __future__ import annotations

from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY

from .parts import EncoderDecoder, SegmentationHead, UNetDecoder, build_encoder_from_cfg
from .segmentor import SemanticSegmentor
from .tiling import TiledSemanticModel

__all__ = ["UNet"]


@META_ARCH_REGISTRY.register()
class UNet(SemanticSegmentor):
    """U-Net of ``encoder`` (any part with ``out_channels``/``strides``), a U-Net decoder and
    a 1x1 head; inputs are padded to a multiple of the encoder's largest stride.

    Args:
        encoder: the encoder module.
        decoder_channels, upsample, norm: of the decoder (:class:`~.parts.UNetDecoder`).
        test_tile: side of the inference tiles in pixels (0 = whole images).
        test_overlap: pixels shared by neighbouring tiles.
        tile_merge: "max" (per class, over overlapping tiles) or "blend" (smooth weights).
        tile_batch: tiles per forward pass.
        num_classes, criterion, pixel_mean, pixel_std, ignore_label: see
            :class:`~.segmentor.SemanticSegmentor`.
    """

    @configurable
    def __init__(self, *, encoder, num_classes, criterion, pixel_mean, pixel_std, ignore_label=255,
                 decoder_channels=(), upsample="transpose", norm="BN", test_tile=0, test_overlap=100,
                 tile_merge="max", tile_batch=1):
        decoder = UNetDecoder(encoder.out_channels, encoder.strides, decoder_channels, upsample, norm)
        head = SegmentationHead(decoder.out_channels, num_classes)
        super().__init__(net=EncoderDecoder(encoder, decoder, head), criterion=criterion,
                         num_classes=num_classes, pixel_mean=pixel_mean, pixel_std=pixel_std,
                         size_divisibility=max(encoder.strides), ignore_label=ignore_label)
        self.test_tile, self.test_overlap = int(test_tile), int(test_overlap)
        self.tile_merge, self.tile_batch = tile_merge, int(tile_batch)

    @staticmethod
    def tiling_config(cfg) -> dict:
        """The tiled-inference arguments, from ``HCMEASURE.TILE.TEST_*`` and ``MERGE``."""
        t = cfg.HCMEASURE.TILE
        return {"test_tile": t.TEST_SIZE, "test_overlap": t.TEST_OVERLAP, "tile_merge": t.MERGE,
                "tile_batch": t.TEST_BATCH}

    @classmethod
    def from_config(cls, cfg):
        u = cfg.MODEL.UNET
        return {
            "encoder": build_encoder_from_cfg(cfg),
            **cls.protocol_config(cfg),
            "decoder_channels": list(u.DECODER_CHANNELS),
            "upsample": u.UPSAMPLE,
            "norm": u.NORM,
            **cls.tiling_config(cfg),
        }

    def forward(self, batched_inputs):
        if self.training or not self.test_tile:
            return super().forward(batched_inputs)
        tiled = TiledSemanticModel(super().forward, self.test_tile, self.test_overlap, self.tile_merge,
                                   self.tile_batch)
        results = []
        for x in batched_inputs:
            h, w = x["image"].shape[-2:]
            results.extend(super().forward([x]) if max(h, w) <= self.test_tile else tiled([x]))
        return results
