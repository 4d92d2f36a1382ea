"""Head-contour refinement: re-segment the detected head in a crop at a finer scale.

The Mask R-CNN's mask head sees the head through 28x28 RoI probabilities of a
downscaled image. :class:`HeadContourRefiner` wraps a two-class semantic model
(``configs/HC18/head_refiner_unet_effnet_lite0.yaml``: background, head) that is run on
the original-resolution crop around the detection box (:mod:`hcmeasure.data.head_crops`),
and measures the head on its probabilities with the same sub-pixel contour fit
(:func:`~hcmeasure.measurement.head.measure_head_from_mask_probs`). A detector config
turns it on with ``HCMEASURE.HEAD_REFINER.CONFIG`` and ``WEIGHTS``.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from ..data.head_crops import crop_image, ellipse_box, head_crop_box
from ..measurement.head import HeadMeasurement, measure_head_from_mask_probs

__all__ = ["HeadContourRefiner"]


class HeadContourRefiner(nn.Module):
    """Measure heads again on crops around their detection boxes.

    Args:
        model: semantic model (Detectron2 semantic protocol) whose output channel 1 is
            the head probability, or a list of such models: an ensemble, whose head
            probabilities are averaged (each member sees the same crop).
        crop_size: crop side in cells (the model's training ``HCMEASURE.HEAD_CROP.SIZE``).
        context: box growth per side, as a fraction of its width/height (``CONTEXT``).
        mask_threshold: head probability threshold of the contour.
        flip_tta: average the probabilities of the crop and of its mirror image.
        rounds: crop and measure this many times, each round around the box of the
            previous round's ellipse (the first round uses the detection box).

    Each refined head's ``evidence`` gets ``member_areas_px`` (the head area, in image
    pixels, of each member's probabilities above threshold; one entry for a single
    model) and ``uncertain_fraction`` (cells of the averaged probabilities between 0.25
    and 0.75, per cell of the contour's length: about 1 for a sharp boundary).
    """

    def __init__(self, model, *, crop_size: int, context: float, mask_threshold: float = 0.5,
                 flip_tta: bool = False, rounds: int = 1):
        super().__init__()
        if rounds < 1:
            raise ValueError(f"HCMEASURE.HEAD_REFINER.ROUNDS must be at least 1, got {rounds}")
        members = list(model) if isinstance(model, (list, tuple, nn.ModuleList)) else [model]
        if not members:
            raise ValueError("a head refiner needs at least one model")
        self.members = nn.ModuleList(members)
        self.crop_size, self.context, self.mask_threshold = int(crop_size), float(context), float(mask_threshold)
        self.flip_tta, self.rounds = bool(flip_tta), int(rounds)

    @property
    def model(self) -> nn.Module:
        """The first (for a single refiner, the only) member."""
        return self.members[0]

    def _member_probs(self, model: nn.Module, crops: list[torch.Tensor]) -> list[torch.Tensor]:
        inputs = [{"image": c.expand(3, -1, -1)} for c in crops]
        if self.flip_tta:
            inputs += [{"image": c.flip(-1).expand(3, -1, -1)} for c in crops]
        probs = [o["sem_seg"][1].float() for o in model(inputs)]
        if self.flip_tta:
            n = len(crops)
            probs = [(probs[i] + probs[n + i].flip(-1)) / 2 for i in range(n)]
        return probs

    def _head_probs(self, crops: list[torch.Tensor]) -> tuple[list[np.ndarray], list[list[float]]]:
        """Head probabilities ``(S, S)`` of (1, S, S) crops (averaged over the members, and
        flip-averaged when asked), and for each crop the share of its cells above
        threshold in each member's probabilities."""
        per_member = [self._member_probs(m, crops) for m in self.members]
        shares = [[float((pm[i] > self.mask_threshold).float().mean()) for pm in per_member]
                  for i in range(len(crops))]
        if len(per_member) == 1:
            mean = per_member[0]
        else:
            mean = [torch.stack([pm[i] for pm in per_member]).mean(0) for i in range(len(crops))]
        return [p.cpu().numpy() for p in mean], shares

    @torch.inference_mode()
    def refine(self, grays: list[np.ndarray], heads: list[HeadMeasurement]) -> list[HeadMeasurement]:
        """``grays``: the original (H, W) uint8 scans; ``heads``: the detector's measurements
        (with their ``box``). Heads without a box are returned unchanged; the others are
        measured on the refiner's probabilities (same score, new ellipse, fit IoU, status;
        the detector's evidence kept and the refiner's added)."""
        out = list(heads)
        todo = [i for i, h in enumerate(heads) if h.box is not None]
        device = next(self.members[0].parameters()).device
        scans = {i: torch.from_numpy(np.ascontiguousarray(grays[i])).to(device) for i in todo}
        around = {i: heads[i].box for i in todo}
        for _ in range(self.rounds):
            if not todo:
                break
            boxes = [head_crop_box(around[i], self.context) for i in todo]
            probs, shares = self._head_probs([crop_image(scans[i], box, self.crop_size) for i, box in zip(todo, boxes)])
            for i, box, p, share in zip(todo, boxes, probs, shares):
                refined = measure_head_from_mask_probs(p, box, grays[i].shape[:2], score=heads[i].score,
                                                       mask_threshold=self.mask_threshold, iou_on_grid=True)
                box_area = (box[2] - box[0]) * (box[3] - box[1])
                evidence = dict(heads[i].evidence)
                evidence["member_areas_px"] = [v * box_area for v in share]
                evidence["uncertain_fraction"] = _uncertain_fraction(p)
                out[i] = dataclasses.replace(refined, box=heads[i].box, evidence=evidence)
            todo = [i for i in todo if out[i].ellipse is not None]
            around = {i: ellipse_box(out[i].ellipse) for i in todo}
        return out


def _uncertain_fraction(probs: np.ndarray) -> float:
    """Cells with probability in (0.25, 0.75) per cell of boundary length (the head's
    perimeter on the grid, from its area as if it were a circle): about 1 when the
    boundary is sharp, several times more when the model hesitates along a band."""
    head_cells = float((probs > 0.5).sum())
    if head_cells <= 0:
        return 0.0
    uncertain = float(((probs > 0.25) & (probs < 0.75)).sum())
    return uncertain / (2.0 * np.sqrt(np.pi * head_cells))
