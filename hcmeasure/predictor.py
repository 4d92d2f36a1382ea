"""Batched HC inference over images: pre-processing, detector, head refiner, measurement.

``HeadPredictor`` loads a HeadRCNN config + checkpoint and the head refiner it names
(through :func:`hcmeasure.modeling.loading.load_model`: strictly, a checkpoint that does
not fit the config is an error, not a warning), and measures batches of greyscale scans.
The folder loop, CSVs and overlays live in :mod:`hcmeasure.cli.predict`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .data.transforms import build_test_resize
from .measurement.head import HeadMeasurement
from .modeling.loading import ModelLoadError, load_config, load_model, load_weights_strict, prepare_for_inference
from .modeling.precision import bf16_models

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


def default_model_paths() -> tuple[Path, Path] | None:
    """``(config, weights)`` of the shipped default model, or None when not installed."""
    cfg, weights = DEFAULT_MODEL_DIR / "config.yaml", DEFAULT_MODEL_DIR / "model_final.pth"
    return (cfg, weights) if cfg.is_file() and weights.is_file() else None


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


class HeadPredictor:
    """Measure heads on greyscale scans with a HeadRCNN model.

    Args:
        config_file: YAML config the checkpoint was trained with.
        weights: checkpoint (``.pth``) written by ``tools/train_net.py``.
        device: "cpu" or "cuda" (default: cuda when available).
        flip_tta: override ``HCMEASURE.POSTPROCESS.FLIP_TTA`` (None keeps the config's).
        refiner: ``(config, [weights, ...])`` of a head refiner (or ensemble) to use instead
            of the one the config names.
        single_model: of a refiner ensemble, use the first member only (faster; the trust
            calibration, fitted on single fold models, applies unchanged).

    ``cfg`` is the config as loaded (what a run's fingerprint hashes); the detector is built
    from it with ``HCMEASURE.POSTPROCESS.PASTE_MASKS`` off and, under a refiner,
    ``FIT_ELLIPSE`` off.
    """

    def __init__(self, config_file, weights, device: str | None = None, flip_tta: bool | None = None,
                 opts=None, refiner=None, single_model: bool = False):
        opts = list(opts or [])
        if flip_tta is not None:
            opts += ["HCMEASURE.POSTPROCESS.FLIP_TTA", bool(flip_tta)]
        self.cfg = load_config(config_file, opts, device)
        if self.cfg.MODEL.META_ARCHITECTURE != "HeadRCNN":
            raise ModelLoadError(
                f"{config_file}: MODEL.META_ARCHITECTURE is {self.cfg.MODEL.META_ARCHITECTURE}, "
                "but HC measurement needs HeadRCNN (use a config under configs/HC18/)."
            )
        try:
            self.bf16 = bf16_models(self.cfg)
        except ValueError as exc:
            raise ModelLoadError(f"{config_file}: {exc}") from None
        refiner_paths = refiner if refiner is not None else head_refiner_paths(self.cfg, config_file)
        if single_model and refiner_paths is not None:
            refiner_paths = (refiner_paths[0], list(refiner_paths[1])[:1])  # the ensemble's first member
        # Only the measurement is used: no full-resolution masks. With a refiner, the refiner
        # measures the head (flip-averaged when FLIP_TTA is on); the detector only gives the
        # box, so it runs once and fits no ellipse of its own.
        detector_opts = ["HCMEASURE.POSTPROCESS.PASTE_MASKS", False]
        if refiner_paths is not None:
            detector_opts += ["HCMEASURE.POSTPROCESS.FIT_ELLIPSE", False]
        _, self.model = load_model(self.cfg, weights, opts=detector_opts, config_file=config_file)
        self.fused_batchnorms = prepare_for_inference(self.model, self.cfg.MODEL.DEVICE, "detector" in self.bf16)
        self.refiner = self._load_refiner(refiner_paths)
        self.trust = self._load_trust(Path(config_file))
        self.resize = build_test_resize(self.cfg)
        self.input_format = self.cfg.INPUT.FORMAT
        self.config_file, self.weights = Path(config_file), Path(weights)

    def _load_refiner(self, paths):
        """The :class:`HeadContourRefiner` of ``paths = (config, [weights, ...])`` (see
        :func:`head_refiner_paths`); None when there is none."""
        if paths is None:
            return None
        from detectron2.modeling import META_ARCH_REGISTRY

        from .modeling.head_refiner import HeadContourRefiner
        from .semseg.segmentor import SemanticSegmentor

        ref_config, member_weights = Path(paths[0]), [Path(w) for w in paths[1]]
        rcfg = load_config(ref_config, device=self.cfg.MODEL.DEVICE)
        arch = META_ARCH_REGISTRY.get(rcfg.MODEL.META_ARCHITECTURE) \
            if rcfg.MODEL.META_ARCHITECTURE in META_ARCH_REGISTRY else None
        if arch is not None and (not issubclass(arch, SemanticSegmentor) or rcfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES != 2):
            raise ModelLoadError(
                f"{ref_config}: a head refiner must be a two-class (background, head) semantic-segmentation "
                f"model, but this config builds {rcfg.MODEL.META_ARCHITECTURE} with "
                f"MODEL.SEM_SEG_HEAD.NUM_CLASSES={rcfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES} "
                "(use e.g. configs/HC18/head_refiner_unet_effnet_lite0.yaml).")
        members = []
        for ref_weights in member_weights:
            _, model = load_model(rcfg, ref_weights, config_file=ref_config)
            # the detector config's bfloat16 choice holds for its refiner
            prepare_for_inference(model, rcfg.MODEL.DEVICE, "refiner" in self.bf16)
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
