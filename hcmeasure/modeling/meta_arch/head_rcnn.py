"""Mask R-CNN that also measures the fetal head.

``HeadRCNN`` is Detectron2's ``GeneralizedRCNN`` (training is unchanged). In
inference every output dict carries, next to the usual ``instances``, a
``head`` entry: a :class:`~hcmeasure.measurement.head.HeadMeasurement` with the
ellipse (pixels of the original image), score, fit IoU, status and the detection's
box (original image, continuous coordinates). The ellipse
is fitted to the sub-pixel iso-contour of the RoI mask probabilities of the
best-scoring detection (see ``measure_head_from_mask_probs``), which is both
more precise and much cheaper than fitting a pasted full-resolution mask.

Options (``HCMEASURE.POSTPROCESS``): ``MASK_THRESHOLD``, ``MIN_SCORE``,
``FLIP_TTA`` (also run the horizontally flipped image in the same batch and
average the two ellipses), ``PASTE_MASKS`` (default True; off for callers that only
need the measurement, which skips pasting all masks at full resolution) and
``FIT_ELLIPSE`` (default True; off leaves the head unmeasured, status
``"not_measured"`` with score and box, for a caller that measures it another way, the
head refiner; the image is then not flipped either).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Instances

from ...measurement.ellipse import Ellipse
from ...measurement.head import HeadMeasurement, measure_head_from_mask_probs

__all__ = ["HeadRCNN", "mirror_ellipse", "average_ellipses"]


def mirror_ellipse(e: Ellipse, width: int) -> Ellipse:
    """Mirror an ellipse (pixel-centre frame) left-right in an image ``width`` pixels wide."""
    return Ellipse.normalized(width - 1 - e.cx, e.cy, e.a, e.b, math.pi - e.angle)


def average_ellipses(ellipses: list[Ellipse]) -> Ellipse:
    """Mean of ellipses: centres and semi-axes averaged, angles averaged on the doubled circle."""
    cx = float(np.mean([e.cx for e in ellipses]))
    cy = float(np.mean([e.cy for e in ellipses]))
    a = float(np.mean([e.a for e in ellipses]))
    b = float(np.mean([e.b for e in ellipses]))
    s = float(np.mean([math.sin(2 * e.angle) for e in ellipses]))
    c = float(np.mean([math.cos(2 * e.angle) for e in ellipses]))
    return Ellipse.normalized(cx, cy, a, b, 0.5 * math.atan2(s, c))


def _second_score(raw: Instances, best: int) -> float:
    """Score of the best detection other than ``best`` whose box overlaps it by IoU < 0.5
    (0 when there is none)."""
    from detectron2.structures import pairwise_iou

    if len(raw) < 2:
        return 0.0
    iou = pairwise_iou(raw.pred_boxes[best:best + 1], raw.pred_boxes)[0]
    others = (iou < 0.5) & (torch.arange(len(raw), device=iou.device) != best)
    return float(raw.scores[others].max()) if bool(others.any()) else 0.0


@META_ARCH_REGISTRY.register()
class HeadRCNN(GeneralizedRCNN):
    @configurable
    def __init__(self, *, mask_threshold=0.5, min_score=0.05, flip_tta=False, paste_masks=True,
                 fit_ellipses=True, **kwargs):
        super().__init__(**kwargs)
        self.mask_threshold = mask_threshold
        self.min_score = min_score
        self.flip_tta = flip_tta
        self.paste_masks = paste_masks
        self.fit_ellipses = fit_ellipses

    @classmethod
    def from_config(cls, cfg):
        ret = super().from_config(cfg)
        pp = cfg.HCMEASURE.POSTPROCESS
        # Without an ellipse of its own to average, the detector has nothing to flip for.
        ret.update(mask_threshold=pp.MASK_THRESHOLD, min_score=pp.MIN_SCORE, flip_tta=pp.FLIP_TTA and pp.FIT_ELLIPSE,
                   paste_masks=pp.PASTE_MASKS, fit_ellipses=pp.FIT_ELLIPSE)
        return ret

    def _measure(self, raw: Instances, input_hw, output_hw) -> HeadMeasurement:
        """Head of one image from raw (un-postprocessed) instances in input coordinates."""
        if len(raw) == 0 or not raw.has("pred_masks"):
            return HeadMeasurement(None, None, None, "no_head_detected")
        scores = raw.scores
        best = int(torch.argmax(scores))
        score = float(scores[best])
        if score < self.min_score:
            return HeadMeasurement(None, score, None, "no_head_detected")
        sy, sx = output_hw[0] / input_hw[0], output_hw[1] / input_hw[1]
        box = raw.pred_boxes.tensor[best].detach().cpu().numpy().astype(np.float64)
        box = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
        box = tuple(float(v) for v in box)
        probs = raw.pred_masks[best, 0].detach().float().cpu().numpy()
        evidence = {
            # The best other detection that is not the same head (box IoU < 0.5): a second
            # head-like structure in the scan.
            "second_score": _second_score(raw, best),
            # The detector's own head area (its RoI mask above threshold), for comparison
            # with the refined ellipse.
            "detector_area_px": float((probs > self.mask_threshold).mean() * (box[2] - box[0]) * (box[3] - box[1])),
        }
        if not self.fit_ellipses:
            return HeadMeasurement(None, score, None, "not_measured", box=box, evidence=evidence)
        head = measure_head_from_mask_probs(
            probs, box, output_hw, score=score, mask_threshold=self.mask_threshold
        )
        return dataclasses.replace(head, box=box, evidence=evidence)

    def inference(self, batched_inputs, detected_instances=None, do_postprocess=True):
        if not do_postprocess or detected_instances is not None:
            return super().inference(batched_inputs, detected_instances, do_postprocess)
        inputs = list(batched_inputs)
        n = len(inputs)
        if self.flip_tta:
            inputs = inputs + [dict(x, image=torch.flip(x["image"], dims=[-1])) for x in inputs]
        raw = super().inference(inputs, do_postprocess=False)
        outputs = []
        for i in range(n):
            x = inputs[i]
            in_hw = tuple(int(v) for v in x["image"].shape[-2:])
            out_hw = (int(x.get("height", in_hw[0])), int(x.get("width", in_hw[1])))
            head = self._measure(raw[i], in_hw, out_hw)
            if self.flip_tta:
                flipped = self._measure(raw[n + i], in_hw, out_hw)
                head = self._combine(head, flipped, out_hw[1])
            if self.paste_masks:
                inst = detector_postprocess(raw[i], out_hw[0], out_hw[1], self.mask_threshold)
            else:
                inst = raw[i]
                if inst.has("pred_masks"):
                    inst.remove("pred_masks")
                inst = detector_postprocess(inst, out_hw[0], out_hw[1])
            outputs.append({"instances": inst, "head": head})
        return outputs

    @staticmethod
    def _combine(head: HeadMeasurement, flipped: HeadMeasurement, width: int) -> HeadMeasurement:
        if flipped.ellipse is None:
            return head
        mirrored = mirror_ellipse(flipped.ellipse, width)
        if head.ellipse is None:
            box = None
            if flipped.box is not None:
                x0, y0, x1, y1 = flipped.box
                box = (width - x1, y0, width - x0, y1)
            return HeadMeasurement(mirrored, flipped.score, flipped.fit_iou, flipped.status, box=box,
                                   evidence=flipped.evidence)
        ellipse = average_ellipses([head.ellipse, mirrored])
        ious = [v for v in (head.fit_iou, flipped.fit_iou) if v is not None]
        return HeadMeasurement(
            ellipse,
            float(np.mean([head.score, flipped.score])),
            float(np.mean(ious)) if ious else None,
            "ok",
            None,
            head.contour,
            head.box,
            evidence=head.evidence,
        )
