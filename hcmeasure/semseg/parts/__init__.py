"""Composable parts of the semantic-segmentation networks (encoder, decoder, head).

A network is ``encoder -> decoder -> head``:

* an encoder (:mod:`.encoders`) maps an (N, 3, H, W) batch to a list of feature maps
  ``[F1, ..., F5]`` and declares their ``out_channels`` and ``strides``;
* a decoder (:mod:`.decoders`) turns that list back into one full-resolution map;
* a head (:class:`.blocks.SegmentationHead`) gives per-class logits.

:class:`EncoderDecoder` chains the three; :class:`~hcmeasure.semseg.unet.UNet` and the studies'
meta-architectures wrap it in the Detectron2 semantic protocol.
"""
from .blocks import ChannelAttention, ConvNormAct, DoubleConv, SegmentationHead, SpatialAttention  # noqa: F401
from .decoders import DecoderBlock, UNetDecoder  # noqa: F401
from .encoders import (  # noqa: F401
    SEG_ENCODER_REGISTRY,
    PlainUNetEncoder,
    ResNetEncoder,
    build_encoder,
    build_encoder_from_cfg,
    register_encoder,
)
from .net import EncoderDecoder  # noqa: F401
