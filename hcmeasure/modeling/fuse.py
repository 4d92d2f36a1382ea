"""Inference-time rewrites that leave a model's outputs unchanged but make it cheaper.

``fuse_for_inference(model)`` asks every module that knows how (a ``fuse_conv_bn()``
method, e.g. :class:`~hcmeasure.modeling.backbone.efficientnet_lite.EfficientNetLite`)
to rewrite itself: BatchNorm folded into the convolution before it, and TensorFlow
"same" padding turned into the convolution's own padding where it is symmetric. The
model must be in eval mode (BatchNorm then applies its fixed running statistics) and
is not meant to be trained afterwards.
"""
from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from detectron2.layers import FrozenBatchNorm2d

__all__ = ["fold_batchnorm", "static_same_padding_conv", "fuse_for_inference"]


def fold_batchnorm(conv: nn.Conv2d, bn: nn.Module) -> None:
    """Fold ``bn`` (BatchNorm2d in eval mode, or FrozenBatchNorm2d) into ``conv`` in place.

    ``bn(conv(x)) == conv'(x)``; the arithmetic is torch's ``fuse_conv_bn_weights``.
    ``bn`` itself is left untouched: replace it by ``nn.Identity()`` afterwards.
    """
    if not isinstance(bn, (nn.BatchNorm2d, FrozenBatchNorm2d)):
        raise TypeError(f"fold_batchnorm: cannot fold {type(bn).__name__}")
    if bn.training and isinstance(bn, nn.BatchNorm2d):
        raise RuntimeError("fold_batchnorm: the BatchNorm is in training mode; call model.eval() first")
    if bn.num_features != conv.out_channels:
        raise ValueError(f"fold_batchnorm: {bn.num_features} BatchNorm channels after a "
                         f"{conv.out_channels}-channel convolution")
    conv.weight, conv.bias = fuse_conv_bn_weights(
        conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)


def static_same_padding_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """A plain ``nn.Conv2d`` equal to a TF-"same" padded stride-1 convolution with odd kernels.

    TensorFlow's "same" padding with stride 1 pads ``(k - 1) * d / 2`` pixels on each
    side, whatever the input size, so the padding can be the convolution's own instead
    of a separate ``F.pad`` copy of the input. Other convolutions (strided, even kernels,
    or not TF-"same" padded at all) are returned as they are.
    """
    from efficientnet_lite_pytorch.utils import Conv2dDynamicSamePadding

    kh, kw = conv.kernel_size
    if (not isinstance(conv, Conv2dDynamicSamePadding) or tuple(conv.stride) != (1, 1)
            or kh % 2 == 0 or kw % 2 == 0):
        return conv
    dh, dw = conv.dilation
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=1,
                    padding=((kh - 1) * dh // 2, (kw - 1) * dw // 2), dilation=conv.dilation,
                    groups=conv.groups, bias=conv.bias is not None)
    out.weight, out.bias = conv.weight, conv.bias
    return out


def fuse_for_inference(model: nn.Module) -> int:
    """Let ``model`` and each sub-module with a ``fuse_conv_bn()`` method rewrite itself.

    Returns how many BatchNorm layers were folded in all. Raises if ``model`` is training.
    """
    if model.training:
        raise RuntimeError("fuse_for_inference: call model.eval() first")
    folded = 0
    for module in list(model.modules()):
        if callable(getattr(module, "fuse_conv_bn", None)):
            folded += int(module.fuse_conv_bn())
    return folded
