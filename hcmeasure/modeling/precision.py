"""Bfloat16 inference on CPUs that compute it natively.

On CPUs with AVX512-BF16 or AMX (oneDNN's bfloat16 kernels), the convolutions of the
detector's backbone and of the head refiner run about twice as fast in bfloat16 as in
float32. :func:`autocast_bf16_inference` runs only those heavy convolutional parts under
``torch.autocast("cpu", bfloat16)`` and hands their outputs on in float32: box
regression, mask heads, the softmax and the ellipse fit stay float32, so box coordinates
(hundreds of pixels) keep their sub-pixel precision. ``benchmarks/hc18_cv.py`` measures
the change in HC it makes (docs/trust.md).
"""
from __future__ import annotations

import functools
import logging

import torch
from torch import nn

__all__ = ["cpu_has_native_bf16", "bf16_models", "autocast_bf16_inference", "HEAVY_PARTS", "BF16_MODELS"]

logger = logging.getLogger(__name__)

#: Attribute names of the parts run in bfloat16: a Detectron2 model's ``backbone`` (with
#: its FPN) and a semantic model's ``net`` (encoder, decoder and 1x1 head).
HEAVY_PARTS = ("backbone", "net")


#: What ``HCMEASURE.INFERENCE.CPU_BF16`` may name.
BF16_MODELS = ("detector", "refiner")


def bf16_models(cfg) -> frozenset[str]:
    """The models of ``HCMEASURE.INFERENCE.CPU_BF16`` to run in bfloat16: empty on a GPU and
    on CPUs without native bfloat16 (float32 is faster there and measures the same: an
    info log record, not a warning; ``hcmeasure doctor`` says which precision runs); an
    unknown name is a ``ValueError``."""
    names = [str(n) for n in cfg.HCMEASURE.INFERENCE.CPU_BF16]
    unknown = sorted(set(names) - set(BF16_MODELS))
    if unknown:
        raise ValueError(f"HCMEASURE.INFERENCE.CPU_BF16: unknown model(s) {unknown}; "
                         f"choose from {', '.join(BF16_MODELS)}")
    if not names or cfg.MODEL.DEVICE != "cpu":
        return frozenset()
    if not cpu_has_native_bf16():
        logger.info("HCMEASURE.INFERENCE.CPU_BF16 is set, but this CPU has no native bfloat16 "
                       "(AVX512-BF16/AMX): running in float32")
        return frozenset()
    return frozenset(names)


def cpu_has_native_bf16() -> bool:
    """True when oneDNN has bfloat16 kernels for this CPU (AVX512-BF16 or AMX); elsewhere
    bfloat16 is emulated and slower than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _to_float32(value):
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, dict):
        return {k: _to_float32(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float32(v) for v in value)
    return value


def _autocast_forward(forward):
    @functools.wraps(forward)
    def run(*args, **kwargs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = forward(*args, **kwargs)
        return _to_float32(out)

    run.bf16_autocast = True
    return run


def autocast_bf16_inference(model: nn.Module) -> list[str]:
    """Run ``model``'s :data:`HEAVY_PARTS` under CPU bfloat16 autocast, outputs cast back
    to float32 (in place: the part's ``forward`` is wrapped; its attributes, e.g. a
    backbone's ``size_divisibility``, are kept). Returns the names of the parts wrapped
    (empty when the model has none). On a CPU without native bfloat16 this is slower, not
    faster: :func:`bf16_models` checks first."""
    parts = [name for name in HEAVY_PARTS if isinstance(getattr(model, name, None), nn.Module)]
    for name in parts:
        part = getattr(model, name)
        if not getattr(part.forward, "bf16_autocast", False):
            part.forward = _autocast_forward(part.forward)
    return parts
