"""From a detector's instances to one measured head.

Rule (decided on hc18_val, see README): keep the highest-scoring instance whose
score is at least ``min_score``; threshold its mask probabilities at
``mask_threshold``; fit the ellipse to the sub-pixel contour of the largest
connected component (:func:`fit_ellipse` with ``kind="filled"``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .ellipse import Ellipse, EllipseFitError, fit_ellipse

__all__ = [
    "MEASURED_STATUSES",
    "HeadMeasurement",
    "measure_head_from_mask",
    "measure_head_from_instances",
    "measure_head_from_mask_probs",
    "grid_to_image",
]


#: Statuses of a row whose HC is written in full: ``ok``, and ``review`` (measured, but the
#: evidence says a person should look before the number is used; see ``review_reason``).
MEASURED_STATUSES = ("ok", "review")


@dataclass(frozen=True)
class HeadMeasurement:
    """One head: the ellipse in pixels (None when not measured) and why."""

    ellipse: Ellipse | None
    score: float | None
    fit_iou: float | None
    status: str  # "ok", "no_head_detected", "ellipse_fit_failed"
    mask: np.ndarray | None = None  # boolean (H, W) head mask that was fitted
    contour: np.ndarray | None = None  # (N, 2) boundary points (x, y) used for the fit, pixels
    box: tuple[float, float, float, float] | None = None  # detection box (x0, y0, x1, y1), continuous pixels
    # What the models saw besides the ellipse, for the trust assessment
    # (hcmeasure.measurement.trust): e.g. "second_score", "detector_area_px",
    # "member_areas_px", "uncertain_fraction". Empty when nothing was recorded.
    evidence: dict = field(default_factory=dict, compare=False)


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


def _longest_closed_contour(prob: np.ndarray, level: float) -> np.ndarray | None:
    from skimage import measure

    contours = measure.find_contours(np.pad(prob, 1), level)
    if not contours:
        return None

    def enclosed_area(c):
        r, col = c[:, 0], c[:, 1]
        return abs(np.dot(col, np.roll(r, 1)) - np.dot(r, np.roll(col, 1))) / 2

    best = max(contours, key=enclosed_area)
    return best - 1.0  # undo the padding: (row, col) in mask-grid cells


def grid_to_image(u, v, box_xyxy, grid_shape) -> tuple[np.ndarray, np.ndarray]:
    """Image pixel coordinates ``(x, y)`` (hcmeasure's pixel-centre frame) of positions
    ``u`` (columns) and ``v`` (rows) on a ``grid_shape = (rows, cols)`` grid spread over
    ``box_xyxy`` (Detectron2's continuous coordinates) the way Detectron2 pastes masks:
    cell ``u`` is centred at ``x0 + (u + 0.5) * width / cols``."""
    x0, y0, x1, y1 = (float(t) for t in box_xyxy)
    rows, cols = grid_shape
    x = x0 + (np.asarray(u, np.float64) + 0.5) * max(x1 - x0, 1e-6) / cols - 0.5
    y = y0 + (np.asarray(v, np.float64) + 0.5) * max(y1 - y0, 1e-6) / rows - 0.5
    return x, y


#: Sampling step (pixels) of the fit-quality IoU in :func:`measure_head_from_mask_probs`.
_IOU_STRIDE = 2


def measure_head_from_mask_probs(
    probs: np.ndarray,
    box_xyxy: tuple[float, float, float, float],
    image_size: tuple[int, int],
    *,
    score: float | None = None,
    mask_threshold: float = 0.5,
    border_margin_px: float = 1.0,
    iou_on_grid: bool = False,
) -> HeadMeasurement:
    """Measure the head from an RoI mask head's ``(M, M)`` probabilities.

    ``box_xyxy`` is the instance box in Detectron2's continuous image coordinates
    (pixel ``i`` spans ``[i, i+1)``) of the *original* image, ``image_size`` its
    ``(height, width)``. The ellipse is fitted to the sub-pixel iso-contour of the
    probabilities at ``mask_threshold``, mapped into the image the way Detectron2
    pastes masks (cell ``u`` centred at ``x0 + (u + 0.5) * w / M``), then into
    hcmeasure's pixel-centre frame (-0.5). Contour points within ``border_margin_px``
    of the image border are dropped (a head cut by the border). ``fit_iou`` compares
    the thresholded mask with the fitted ellipse inside the box. The returned
    ``contour`` is the kept boundary ``(x, y)`` in image pixels (for overlays).
    ``iou_on_grid``: compute ``fit_iou`` at the centres of the probability grid's cells
    inside the image instead (cheaper for a fine grid, such as a head refiner's crop).
    """
    from .ellipse import fit_ellipse_to_points
    import cv2

    probs = np.asarray(probs, np.float32)
    h, w = int(image_size[0]), int(image_size[1])
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    bw, bh = max(x1 - x0, 1e-6), max(y1 - y0, 1e-6)
    if float(probs.max()) <= mask_threshold:
        return HeadMeasurement(None, score, None, "no_head_detected")
    contour = _longest_closed_contour(probs, mask_threshold)
    if contour is None or len(contour) < 5:
        return HeadMeasurement(None, score, None, "ellipse_fit_failed")
    mh, mw = probs.shape
    xs, ys = grid_to_image(contour[:, 1], contour[:, 0], box_xyxy, probs.shape)
    inside = (
        (xs > border_margin_px - 0.5) & (xs < w - 0.5 - border_margin_px)
        & (ys > border_margin_px - 0.5) & (ys < h - 0.5 - border_margin_px)
    )
    points = np.stack([xs[inside], ys[inside]], axis=1)
    try:
        ellipse, _ = fit_ellipse_to_points(points)
    except EllipseFitError:
        return HeadMeasurement(None, score, None, "ellipse_fit_failed")
    # Fit quality: thresholded mask pasted into its box vs the ellipse, on the part of
    # the image covering both (a head cut by the image border is not penalised), sampled
    # at every second pixel centre along x and y (a quarter of the work; the IoU of
    # shapes hundreds of pixels across changes by well under 0.01).
    if iou_on_grid:
        gx, gy = grid_to_image(np.arange(mw), np.arange(mh), box_xyxy, probs.shape)
        keep_x = (gx > -0.5) & (gx < w - 0.5)
        keep_y = (gy > -0.5) & (gy < h - 0.5)
        gxx, gyy = np.meshgrid(gx[keep_x], gy[keep_y])
        cells = probs[np.ix_(keep_y, keep_x)] > mask_threshold
        ell = ellipse.normalized_radius(gxx, gyy) <= 1.0
        union = np.logical_or(cells, ell).sum()
        iou = float(np.logical_and(cells, ell).sum() / union) if union else 0.0
        return HeadMeasurement(ellipse, score, iou, "ok", None, points)
    r = ellipse.a
    cx0 = max(0, int(np.floor(min(x0, ellipse.cx - r))))
    cy0 = max(0, int(np.floor(min(y0, ellipse.cy - r))))
    cx1 = min(w, int(np.ceil(max(x1, ellipse.cx + r + 1))))
    cy1 = min(h, int(np.ceil(max(y1, ellipse.cy + r + 1))))
    iou = None
    if cx1 > cx0 and cy1 > cy0:
        px = np.arange(cx0, cx1, _IOU_STRIDE, dtype=np.float64)
        py = np.arange(cy0, cy1, _IOU_STRIDE, dtype=np.float64)
        # Probabilities at those pixel centres (bilinear, like Detectron2's paste).
        gx = (px + 0.5 - x0) * mw / bw - 0.5
        gy = (py + 0.5 - y0) * mh / bh - 0.5
        mapx, mapy = np.meshgrid(gx.astype(np.float32), gy.astype(np.float32))
        pasted = cv2.remap(probs, mapx, mapy, cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        crop_mask = pasted > mask_threshold
        xs_grid, ys_grid = np.meshgrid(px, py)
        ell = ellipse.normalized_radius(xs_grid, ys_grid) <= 1.0
        union = np.logical_or(crop_mask, ell).sum()
        iou = float(np.logical_and(crop_mask, ell).sum() / union) if union else 0.0
    return HeadMeasurement(ellipse, score, iou, "ok", None, points)
