"""``PlainUNet``: the cell-outline study's name for the one U-Net (:class:`~hcmeasure.semseg.unet.UNet`).

The registered ``UNet`` reads its encoder from ``MODEL.SEG_ENCODER`` (five stages for the
plain encoder); under this name it is built from ``MODEL.PLAIN_UNET`` instead: a plain
encoder of ``DEPTH`` levels (three by default: two 2x2 max-poolings) of ``FILTERS``
channels, as many input channels as ``MODEL.PIXEL_MEAN`` has, the classic decoder widths,
one ``NORM`` and ``UPSAMPLE`` for encoder and decoder. The network, its parameter names
and the tiled inference (``HCMEASURE.TILE.TEST_*``) are the U-Net's own, so checkpoints of
either name load into the same modules.
"""
from __future__ import annotations

from detectron2.modeling import META_ARCH_REGISTRY

from ...semseg.parts import PlainUNetEncoder
from ...semseg.unet import UNet

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
class PlainUNet(UNet):
    """:class:`UNet` configured by ``MODEL.PLAIN_UNET`` (see the module docstring)."""

    @classmethod
    def from_config(cls, cfg):
        u = cfg.MODEL.PLAIN_UNET
        encoder = PlainUNetEncoder(in_channels=len(cfg.MODEL.PIXEL_MEAN), norm=u.NORM,
                                   channels=plain_unet_filters(u.DEPTH, u.FILTERS, u.BASE_FILTERS))
        return {
            "encoder": encoder,
            **cls.protocol_config(cfg),
            "decoder_channels": (),
            "upsample": u.UPSAMPLE,
            "norm": u.NORM,
            **cls.tiling_config(cfg),
        }
