"""Loading pretrained weights: Detectron2 checkpoints, model-zoo files and torchvision ResNets.

``HCMeasureCheckpointer`` is Detectron2's ``DetectionCheckpointer`` that also
accepts a torchvision ResNet checkpoint, from a local ``.pth`` file, an http(s)
URL, or ``torchvision://resnet50`` (torchvision's own ImageNet download, where
the network allows). Such a checkpoint is renamed to Detectron2's ResNet layout
by :func:`convert_torchvision_resnet` and matched onto the backbone with
Detectron2's heuristics, as for model-zoo ``.pkl`` files.

A model loading torchvision weights must see images as torchvision does: RGB,
0-255, ``PIXEL_MEAN [123.675, 116.28, 103.53]``, ``PIXEL_STD [58.395, 57.12, 57.375]``,
and ``RESNETS.STRIDE_IN_1X1: False`` (torchvision puts the stride in the 3x3
convolution); ``configs/HC18/mask_rcnn_R_50_FPN_torchvision.yaml`` sets these.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from detectron2.checkpoint import DetectionCheckpointer

__all__ = ["convert_torchvision_resnet", "is_torchvision_resnet", "HCMeasureCheckpointer", "save_model_weights"]


def is_torchvision_resnet(state_dict) -> bool:
    """True for a torchvision ResNet ``state_dict`` (conv1/bn1/layerN naming)."""
    keys = set(state_dict)
    return "conv1.weight" in keys and any(k.startswith("layer1.0.") for k in keys)


def convert_torchvision_resnet(state_dict) -> dict[str, torch.Tensor]:
    """Rename a torchvision ResNet ``state_dict`` to Detectron2's ResNet names.

    ``conv1``/``bn1`` -> ``stem.conv1``/``stem.conv1.norm``; ``layerK.i`` -> ``res{K+1}.i``;
    ``bnJ`` -> ``convJ.norm``; ``downsample.0/1`` -> ``shortcut``/``shortcut.norm``;
    the classifier ``fc`` and ``num_batches_tracked`` counters are dropped. BatchNorm's
    ``running_mean``/``running_var`` keep their names (Detectron2's FrozenBN uses them).
    """
    out = {}
    for key, value in state_dict.items():
        if key.startswith("fc.") or key.endswith("num_batches_tracked"):
            continue
        k = key
        k = re.sub(r"^conv1\.", "stem.conv1.", k)
        k = re.sub(r"^bn1\.", "stem.conv1.norm.", k)
        k = re.sub(r"^layer(\d)\.", lambda m: f"res{int(m.group(1)) + 1}.", k)
        k = re.sub(r"\.bn(\d)\.", r".conv\1.norm.", k)
        k = re.sub(r"\.downsample\.0\.", ".shortcut.", k)
        k = re.sub(r"\.downsample\.1\.", ".shortcut.norm.", k)
        out[k] = value.detach().clone() if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    return out


def _load_torchvision_url(name: str):
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    return weights.get_state_dict(progress=True)


class HCMeasureCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` that also understands torchvision ResNet checkpoints."""

    def load(self, path: str, *args, **kwargs):
        """As Detectron2's, but a local ``path`` that does not exist is a clear error naming the
        file and what to do (URLs and ``detectron2://``/``torchvision://`` names pass through)."""
        if path and "://" not in path and not Path(path).is_file():
            raise FileNotFoundError(
                f"MODEL.WEIGHTS {path}: no such checkpoint file. Train the model it names first "
                "(a second-stage config starts from the first stage's model_final.pth), or pass "
                "MODEL.WEIGHTS <checkpoint.pth> after the other arguments of tools/train_net.py."
            )
        return super().load(path, *args, **kwargs)

    def read_checkpoint(self, path: str) -> dict:
        """The checkpoint dict of a local file, as :meth:`load` would read it (no model update)."""
        from urllib.parse import urlparse

        self._parsed_url_during_load = urlparse(path)
        try:
            return self._load_file(path)
        finally:
            self._parsed_url_during_load = None

    def _load_file(self, filename):
        if filename.startswith("torchvision://"):
            state = _load_torchvision_url(filename[len("torchvision://"):])
        else:
            loaded = super()._load_file(filename)
            model = loaded.get("model", loaded)
            if not (isinstance(model, dict) and is_torchvision_resnet(model)):
                return loaded
            state = model
        return {
            "model": convert_torchvision_resnet(state),
            "__author__": "torchvision",
            "matching_heuristics": True,
        }


def save_model_weights(state: dict, dest: Path, **extra) -> None:
    """Write ``{"model": state, **extra}`` to ``dest`` atomically: a checkpoint of model
    weights only (no optimizer or scheduler state), which ``MODEL.WEIGHTS`` loads."""
    import io

    from ..io.tables import atomic_write_bytes

    buf = io.BytesIO()
    torch.save({"model": state, "__author__": "hcmeasure", **extra}, buf)
    atomic_write_bytes(Path(dest), buf.getvalue())
