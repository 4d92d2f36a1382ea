"""``encoder -> decoder -> head`` as one module (the ``net`` of a SemanticSegmentor)."""
from __future__ import annotations

from torch import nn

__all__ = ["EncoderDecoder"]


class EncoderDecoder(nn.Module):
    """Logits of ``head(decoder(encoder(x)))``; parameter names start with ``encoder.``,
    ``decoder.`` and ``head.`` (``net.encoder...`` inside a meta-architecture)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.decoder, self.head = encoder, decoder, head

    def forward(self, x):
        return self.head(self.decoder(self.encoder(x)))
