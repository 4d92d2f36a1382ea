"""Loading a trained model: config, build, weights, in one place.

:func:`load_model` is what every predictor, the ONNX export, the benchmarks and the
tools use::

    cfg, model = load_model("output/polyp/config.yaml", "output/polyp/model_final.pth", device="cpu")

It merges the config with hcmeasure's keys and ``opts``, builds the model with
Detectron2's ``build_model`` and loads the checkpoint **strictly** (a tensor missing,
unexpected or of another shape is a :class:`ModelLoadError` naming the checkpoint and the
config, never a silent partial load), and returns it in eval mode. What a model does at
inference is set through its config (``opts``), never by attributes changed after it is
built: e.g. ``HCMEASURE.POSTPROCESS.PASTE_MASKS False`` for a HeadRCNN that only measures,
``HCMEASURE.TILE.TEST_SIZE 0`` for a U-Net that a caller tiles itself.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from detectron2.config import CfgNode, get_cfg

__all__ = ["ModelLoadError", "load_config", "load_weights_strict", "prepare_for_inference", "load_model"]

logger = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """The model cannot be built or its weights do not fit; message says which file and why."""


def load_config(config_file, opts=None, device: str | None = None) -> CfgNode:
    """Detectron2 config with hcmeasure's keys, merged from ``config_file`` and ``opts``, for
    loading a trained checkpoint: MODEL.WEIGHTS and the ImageNet initialisations of the
    EfficientNet-Lite backbone and of the segmentation encoders are cleared. ``device``:
    MODEL.DEVICE (default: the config's, or "cpu" where CUDA is not available)."""
    from ..config import add_hcmeasure_config

    config_file = Path(config_file)
    if not config_file.is_file():
        raise ModelLoadError(f"{config_file}: config file not found. Pass --config with a YAML under configs/.")
    cfg = get_cfg()
    add_hcmeasure_config(cfg)
    try:
        cfg.merge_from_file(str(config_file))
        cfg.merge_from_list(list(opts or []))
    except Exception as exc:  # yacs raises KeyError/ValueError/AssertionError
        raise ModelLoadError(f"{config_file}: not a valid hcmeasure/Detectron2 config ({exc}).") from exc
    cfg.MODEL.WEIGHTS = ""  # weights are loaded strictly by load_model, never implicitly
    cfg.MODEL.EFFICIENTNET_LITE.PRETRAINED = ""  # the checkpoint holds the trained backbone
    cfg.MODEL.SEG_ENCODER.PRETRAINED = ""  # ... and the trained encoder
    if device:
        cfg.MODEL.DEVICE = device
    elif not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"
    return cfg


def load_weights_strict(model: torch.nn.Module, weights: Path, config_file) -> None:
    """Load a trained checkpoint into ``model``; any missing, unexpected or mis-shaped tensor is
    a :class:`ModelLoadError` naming the checkpoint and the config (never a silent partial load)."""
    from .checkpoint import HCMeasureCheckpointer

    weights = Path(weights)
    if not weights.is_file():
        raise ModelLoadError(f"{weights}: checkpoint not found. Pass --model with a .pth file trained by tools/train_net.py.")
    try:
        state = HCMeasureCheckpointer(model).read_checkpoint(str(weights))
    except Exception as exc:
        raise ModelLoadError(f"{weights}: cannot read the checkpoint ({exc}).") from exc
    state = state.get("model", state)
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        details = "; ".join(
            part
            for part in (
                f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
                f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "",
                f"{len(mismatched)} with other shapes (e.g. {mismatched[0]})" if mismatched else "",
            )
            if part
        )
        raise ModelLoadError(
            f"{weights}: checkpoint does not fit config {config_file}: {details}. "
            "Pass the config the checkpoint was trained with (--config)."
        )
    state = {k: torch.as_tensor(v) if not isinstance(v, torch.Tensor) else v for k, v in state.items()}
    model.load_state_dict(state, strict=False)


def prepare_for_inference(model: torch.nn.Module, device: str, bf16: bool = False) -> int:
    """Same outputs, cheaper forward pass: BatchNorm folded into the convolutions and, on a
    CPU, convolution weights kept channels-last (oneDNN's faster layout; the feature maps
    follow). ``bf16``: also run the model's heavy part in bfloat16
    (:func:`~hcmeasure.modeling.precision.autocast_bf16_inference`; outputs change by
    bfloat16 rounding). Returns the number of BatchNorms folded. For models that only infer."""
    from .fuse import fuse_for_inference
    from .precision import autocast_bf16_inference

    folded = fuse_for_inference(model)
    if not device.startswith("cuda"):
        model.to(memory_format=torch.channels_last)
    if bf16:
        autocast_bf16_inference(model)
    return folded


def load_model(config, weights=None, device: str | None = None, opts=(), *, strict: bool = True,
               resume: bool = False, config_file=None) -> tuple[CfgNode, torch.nn.Module]:
    """``(cfg, model)``: the model of ``config`` with the checkpoint ``weights``, in eval mode.

    Args:
        config: a YAML file (read with :func:`load_config`), or a config already loaded
            (e.g. by ``tools/train_net.py``'s setup), used as it is but for ``device`` and ``opts``.
        weights: checkpoint file; None keeps the random initialisation (parameter counts,
            memory measurements).
        device: MODEL.DEVICE ("cpu", "cuda"); asking for CUDA where there is none is an error.
        opts: ``[KEY, VALUE, ...]`` merged into the config before the model is built.
        strict: the checkpoint must fit the model exactly (:func:`load_weights_strict`).
            False loads it as Detectron2's checkpointer does (model-zoo and torchvision
            files, heuristic matching, a warning for what does not fit).
        resume: with ``strict=False``, load ``OUTPUT_DIR``'s last checkpoint when there is one
            (Detectron2's ``resume_or_load``) instead of ``weights``.
        config_file: the name of a loaded ``config`` in messages.
    """
    from detectron2.modeling import build_model

    if isinstance(config, CfgNode):
        cfg = config
        if opts or device:
            cfg = cfg.clone()
            cfg.defrost()
            cfg.merge_from_list(list(opts))
            if device:
                cfg.MODEL.DEVICE = device
        config_file = config_file or "the config"
    else:
        config_file = Path(config)
        cfg = load_config(config_file, opts, device)
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError("--device cuda was asked for, but CUDA is not available here; use --device cpu.")
    try:
        model = build_model(cfg)
    except Exception as exc:
        raise ModelLoadError(f"{config_file}: the model cannot be built ({exc}).") from exc
    if weights is not None or resume:
        if strict:
            load_weights_strict(model, Path(weights), config_file)
        else:
            from .checkpoint import HCMeasureCheckpointer

            HCMeasureCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
                "" if weights is None else str(weights), resume=resume)
    model.eval()
    return cfg, model
