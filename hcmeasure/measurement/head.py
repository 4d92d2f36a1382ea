"""From a detector's instances to one measured head.

Rule (decided on hc18_val, see README): keep the highest-scoring instance whose
score is at least ``min_score``; threshold its mask probabilities at
``mask_threshold``; fit the ellipse to the sub-pixel contour of the largest
connected component (:func:`fit_ellipse` with ``kind="filled"``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ellipse import Ellipse, EllipseFitError, fit_ellipse

__all__ = ["HeadMeasurement", "measure_head_from_mask", "measure_head_from_instances"]


@dataclass(frozen=True)
class HeadMeasurement:
    """One head: the ellipse in pixels (None when not measured) and why."""

    ellipse: Ellipse | None
    score: float | None
    fit_iou: float | None
    status: str  # "ok", "no_head_detected", "ellipse_fit_failed"
    mask: np.ndarray | None = None  # boolean (H, W) head mask that was fitted


def measure_head_from_mask(mask: np.ndarray, score: float | None = None) -> HeadMeasurement:
    """Fit the head ellipse on a boolean (H, W) mask."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return HeadMeasurement(None, score, None, "no_head_detected", mask)
    try:
        fit = fit_ellipse(mask, kind="filled")
    except EllipseFitError:
        return HeadMeasurement(None, score, None, "ellipse_fit_failed", mask)
    return HeadMeasurement(fit.ellipse, score, fit.iou, "ok", mask)


def measure_head_from_instances(
    instances, *, mask_threshold: float = 0.5, min_score: float = 0.05
) -> HeadMeasurement:
    """Pick the head among Detectron2 ``Instances`` (on CPU or GPU) and measure it.

    ``instances.pred_masks`` may be boolean masks or probabilities (H, W) per instance.
    """
    if len(instances) == 0 or not instances.has("pred_masks"):
        return HeadMeasurement(None, None, None, "no_head_detected")
    scores = instances.scores.detach().cpu().numpy()
    order = np.argsort(-scores)
    best = int(order[0])
    score = float(scores[best])
    if score < min_score:
        return HeadMeasurement(None, score, None, "no_head_detected")
    m = instances.pred_masks[best].detach().cpu()
    if m.dtype.is_floating_point:
        mask = (m > mask_threshold).numpy()
    else:
        mask = m.numpy().astype(bool)
    return measure_head_from_mask(mask, score)
