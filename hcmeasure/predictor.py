"""Batched HC inference over images: model loading, pre-processing, measurement.

``HeadPredictor`` loads a HeadRCNN config + checkpoint (strictly: a checkpoint
that does not fit the config is an error, not a warning), and measures batches
of greyscale scans. The folder loop, CSVs and overlays live in
:mod:`hcmeasure.cli.predict`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from detectron2.config import get_cfg
from detectron2.modeling import build_model

from .config import add_hcmeasure_config
from .data.transforms import build_test_resize
from .measurement.head import HeadMeasurement
from .modeling.checkpoint import HCMeasureCheckpointer
from .modeling.fuse import fuse_for_inference

__all__ = [
    "ModelLoadError",
    "DEFAULT_MODEL_DIR",
    "default_model_paths",
    "load_config",
    "load_weights_strict",
    "head_refiner_paths",
    "trust_calibration_path",
    "HeadPredictor",
]

#: Where the shipped default model lives: ``model_final.pth`` + ``config.yaml``.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "model_zoo" / "hc18_default"


class ModelLoadError(RuntimeError):
    """The model cannot be built or its weights do not fit; message says which file and why."""


def default_model_paths() -> tuple[Path, Path] | None:
    """``(config, weights)`` of the shipped default model, or None when not installed."""
    cfg, weights = DEFAULT_MODEL_DIR / "config.yaml", DEFAULT_MODEL_DIR / "model_final.pth"
    return (cfg, weights) if cfg.is_file() and weights.is_file() else None


def load_config(config_file, opts=None, device: str | None = None):
    """Detectron2 config with hcmeasure's keys, merged from ``config_file`` and ``opts``, for
    loading a trained checkpoint: MODEL.WEIGHTS and the ImageNet initialisations of the
    EfficientNet-Lite backbone and of the segmentation encoders are cleared."""
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
    cfg.MODEL.WEIGHTS = ""  # weights are loaded strictly below, never implicitly
    cfg.MODEL.EFFICIENTNET_LITE.PRETRAINED = ""  # the checkpoint holds the trained backbone
    cfg.MODEL.SEG_ENCODER.PRETRAINED = ""  # ... and the trained encoder
    if device:
        cfg.MODEL.DEVICE = device
    elif not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"
    return cfg


def head_refiner_paths(cfg, config_file) -> tuple[Path, list[Path]] | None:
    """``(config, [weights, ...])`` of the head refiner that ``cfg`` (loaded from
    ``config_file``) names in ``HCMEASURE.HEAD_REFINER``: one checkpoint (``WEIGHTS``) or
    an ensemble (``MEMBER_WEIGHTS``), paths relative to ``config_file``'s folder; None when
    it names none. A config without weights, weights without a config, or both ``WEIGHTS``
    and ``MEMBER_WEIGHTS`` is a :class:`ModelLoadError`."""
    r = cfg.HCMEASURE.HEAD_REFINER
    members = list(r.MEMBER_WEIGHTS)
    if not r.CONFIG and not r.WEIGHTS and not members:
        return None
    if r.WEIGHTS and members:
        raise ModelLoadError(f"{config_file}: HCMEASURE.HEAD_REFINER has both WEIGHTS and MEMBER_WEIGHTS; "
                             "name one checkpoint or the ensemble's, not both.")
    if not (r.CONFIG and (r.WEIGHTS or members)):
        raise ModelLoadError(f"{config_file}: HCMEASURE.HEAD_REFINER needs both CONFIG and WEIGHTS "
                             f"(or MEMBER_WEIGHTS) (got CONFIG={r.CONFIG!r}, WEIGHTS={r.WEIGHTS!r}).")
    base = Path(config_file).resolve().parent
    return base / r.CONFIG, [base / w for w in (members or [r.WEIGHTS])]


def trust_calibration_path(cfg, config_file) -> Path | None:
    """The trust calibration JSON named by ``HCMEASURE.TRUST.CALIBRATION`` (relative to
    ``config_file``'s folder), or None."""
    name = cfg.HCMEASURE.TRUST.CALIBRATION
    return Path(config_file).resolve().parent / name if name else None


def _prepare_for_inference(model: torch.nn.Module, device: str) -> int:
    """Same outputs, cheaper forward pass: BatchNorm folded into the convolutions and, on a
    CPU, convolution weights kept channels-last (oneDNN's faster layout; the feature maps
    follow). Returns the number of BatchNorms folded."""
    folded = fuse_for_inference(model)
    if not device.startswith("cuda"):
        model.to(memory_format=torch.channels_last)
    return folded


def load_weights_strict(model: torch.nn.Module, weights: Path, config_file) -> None:
    """Load a trained checkpoint into ``model``; any missing, unexpected or mis-shaped tensor is
    a :class:`ModelLoadError` naming the checkpoint and the config (never a silent partial load)."""
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


class HeadPredictor:
    """Measure heads on greyscale scans with a HeadRCNN model.

    Args:
        config_file: YAML config the checkpoint was trained with.
        weights: checkpoint (``.pth``) written by ``tools/train_net.py``.
        device: "cpu" or "cuda" (default: cuda when available).
        flip_tta: override ``HCMEASURE.POSTPROCESS.FLIP_TTA`` (None keeps the config's).
        refiner: ``(config, [weights, ...])`` of a head refiner (or ensemble) to use instead
            of the one the config names.
    """

    def __init__(self, config_file, weights, device: str | None = None, flip_tta: bool | None = None,
                 opts=None, refiner=None):
        self.cfg = load_config(config_file, opts, device)
        if flip_tta is not None:
            self.cfg.HCMEASURE.POSTPROCESS.FLIP_TTA = bool(flip_tta)
        if self.cfg.MODEL.META_ARCHITECTURE != "HeadRCNN":
            raise ModelLoadError(
                f"{config_file}: MODEL.META_ARCHITECTURE is {self.cfg.MODEL.META_ARCHITECTURE}, "
                "but HC measurement needs HeadRCNN (use a config under configs/HC18/)."
            )
        if self.cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
            raise ModelLoadError("--device cuda was asked for, but CUDA is not available here; use --device cpu.")
        try:
            self.model = build_model(self.cfg)
        except Exception as exc:
            raise ModelLoadError(f"{config_file}: the model cannot be built ({exc}).") from exc
        load_weights_strict(self.model, Path(weights), config_file)
        self.model.eval()
        self.fused_batchnorms = _prepare_for_inference(self.model, self.cfg.MODEL.DEVICE)
        self.model.paste_masks = False
        self.refiner = self._load_refiner(Path(config_file), refiner)
        if self.refiner is not None:
            # The refiner measures the head (flip-averaged when FLIP_TTA is on); the detector
            # only gives the box, so it runs once and fits no ellipse of its own.
            self.model.flip_tta = False
            self.model.fit_ellipses = False
        self.trust = self._load_trust(Path(config_file))
        self.resize = build_test_resize(self.cfg)
        self.input_format = self.cfg.INPUT.FORMAT
        self.config_file, self.weights = Path(config_file), Path(weights)

    def _load_refiner(self, config_file: Path, refiner=None):
        """The :class:`HeadContourRefiner` named by ``HCMEASURE.HEAD_REFINER`` (paths relative
        to ``config_file``'s folder) or given as ``refiner = (config, [weights, ...])``;
        None when there is none."""
        paths = refiner if refiner is not None else head_refiner_paths(self.cfg, config_file)
        if paths is None:
            return None
        from .modeling.head_refiner import HeadContourRefiner
        from .modeling.meta_arch.semantic import SemanticSegmentor

        ref_config, member_weights = Path(paths[0]), [Path(w) for w in paths[1]]
        rcfg = load_config(ref_config, device=self.cfg.MODEL.DEVICE)
        members = []
        for ref_weights in member_weights:
            try:
                model = build_model(rcfg)
            except Exception as exc:
                raise ModelLoadError(f"{ref_config}: the head refiner cannot be built ({exc}).") from exc
            if not isinstance(model, SemanticSegmentor) or rcfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES != 2:
                raise ModelLoadError(
                    f"{ref_config}: a head refiner must be a two-class (background, head) semantic-segmentation "
                    f"model, but this config builds {rcfg.MODEL.META_ARCHITECTURE} with "
                    f"MODEL.SEM_SEG_HEAD.NUM_CLASSES={rcfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES} "
                    "(use e.g. configs/HC18/head_refiner_unet_effnet_lite0.yaml).")
            load_weights_strict(model, ref_weights, ref_config)
            model.eval()
            _prepare_for_inference(model, rcfg.MODEL.DEVICE)
            members.append(model)
        c = rcfg.HCMEASURE.HEAD_CROP
        self.refiner_config, self.refiner_weights = ref_config, member_weights
        return HeadContourRefiner(members, crop_size=c.SIZE, context=c.CONTEXT,
                                  mask_threshold=self.cfg.HCMEASURE.POSTPROCESS.MASK_THRESHOLD,
                                  flip_tta=self.cfg.HCMEASURE.POSTPROCESS.FLIP_TTA,
                                  rounds=self.cfg.HCMEASURE.HEAD_REFINER.ROUNDS)

    def _load_trust(self, config_file: Path):
        """The :class:`~hcmeasure.measurement.trust.TrustCalibration` named by
        ``HCMEASURE.TRUST.CALIBRATION``, or the uncalibrated default (review rules on the
        geometry only, no interval)."""
        from .measurement.trust import TrustCalibration, load_trust_calibration

        path = trust_calibration_path(self.cfg, config_file)
        if path is None:
            return TrustCalibration()
        try:
            return load_trust_calibration(path)
        except ValueError as exc:
            raise ModelLoadError(str(exc)) from exc

    def preprocess(self, gray: np.ndarray) -> dict:
        """Greyscale (H, W) uint8 -> Detectron2 input dict (resized CHW float tensor + size;
        ``gray`` keeps the original scan for the head refiner)."""
        h, w = gray.shape
        resized = self.resize.get_transform(gray).apply_image(gray)
        # A new float32 array: Detectron2's resize returns a read-only one (a PIL image's buffer).
        image = torch.from_numpy(np.array(resized, dtype=np.float32, order="C"))
        image = image.unsqueeze(0).expand(3, -1, -1)  # grey -> 3 equal channels (RGB = BGR)
        return {"image": image, "height": h, "width": w, "gray": gray}

    @torch.inference_mode()
    def measure(self, inputs: list[dict]) -> list[HeadMeasurement]:
        """Run the model (and the head refiner, when the config has one) on pre-processed
        inputs; one HeadMeasurement per input."""
        if not inputs:
            return []
        outputs = self.model(inputs)
        heads = [o["head"] for o in outputs]
        if self.refiner is not None:
            if any("gray" not in x for x in inputs):
                raise ValueError("this model refines heads on the original scans: build inputs with "
                                 "HeadPredictor.preprocess (it keeps them under 'gray')")
            heads = self.refiner.refine([x["gray"] for x in inputs], heads)
        return heads

    def __call__(self, grays: list[np.ndarray]) -> list[HeadMeasurement]:
        return self.measure([self.preprocess(g) for g in grays])


def torch_threads_from_env() -> None:
    """Honour ``HCMEASURE_NUM_THREADS`` for CPU inference (default: torch's choice)."""
    n = os.environ.get("HCMEASURE_NUM_THREADS")
    if n:
        torch.set_num_threads(int(n))
