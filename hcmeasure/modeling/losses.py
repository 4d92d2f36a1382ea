"""Losses of the semantic-segmentation models, in one place.

All take ``logits`` (N, C, H, W) and integer ``targets`` (N, H, W) where
``ignore_index`` marks pixels excluded from the loss.

* :func:`cross_entropy` — pixel-wise CE, optional class weights.
* :func:`soft_dice_loss` — 1 - mean over classes of the soft Sørensen–Dice
  coefficient ``(2 sum(p t) + s) / (sum(p) + sum(t) + s)`` computed over the batch
  (smoothing ``s``); background can be left out.
* :class:`SegmentationLoss` — their weighted sum, built from the config by
  :func:`build_segmentation_loss`, returning a Detectron2 loss dict.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["cross_entropy", "soft_dice_loss", "SegmentationLoss", "build_segmentation_loss"]


def cross_entropy(logits, targets, *, ignore_index=255, class_weights=None):
    weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=logits.dtype,
                                                                device=logits.device)
    return F.cross_entropy(logits, targets, weight=weight, ignore_index=ignore_index)


def soft_dice_loss(logits, targets, *, ignore_index=255, smooth=1.0, include_background=True):
    """1 - mean soft Dice over classes (probabilities from softmax), ignoring ``ignore_index``."""
    num_classes = logits.shape[1]
    probs = logits.softmax(dim=1)
    valid = (targets != ignore_index).unsqueeze(1).to(probs.dtype)
    onehot = F.one_hot(targets.clamp(0, num_classes - 1) * (targets != ignore_index), num_classes)
    onehot = onehot.permute(0, 3, 1, 2).to(probs.dtype) * valid
    probs = probs * valid
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + smooth) / (denom + smooth)
    if not include_background:
        dice = dice[1:]
    return 1.0 - dice.mean()


class SegmentationLoss(nn.Module):
    """``ce_weight * CE + dice_weight * Dice`` as a loss dict (terms with weight 0 are left out)."""

    def __init__(self, *, ce_weight=1.0, dice_weight=0.0, ignore_index=255, class_weights=None,
                 dice_smooth=1.0, dice_include_background=True):
        super().__init__()
        self.ce_weight, self.dice_weight = float(ce_weight), float(dice_weight)
        self.ignore_index = ignore_index
        self.class_weights = list(class_weights) if class_weights else None
        self.dice_smooth, self.dice_include_background = dice_smooth, dice_include_background

    def forward(self, logits, targets):
        losses = {}
        if self.ce_weight:
            losses["loss_ce"] = self.ce_weight * cross_entropy(
                logits, targets, ignore_index=self.ignore_index, class_weights=self.class_weights)
        if self.dice_weight:
            losses["loss_dice"] = self.dice_weight * soft_dice_loss(
                logits, targets, ignore_index=self.ignore_index, smooth=self.dice_smooth,
                include_background=self.dice_include_background)
        return losses


def build_segmentation_loss(cfg) -> SegmentationLoss:
    c = cfg.MODEL.SEG_LOSS
    return SegmentationLoss(
        ce_weight=c.CE_WEIGHT,
        dice_weight=c.DICE_WEIGHT,
        ignore_index=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
        class_weights=c.CLASS_WEIGHTS,
        dice_smooth=c.DICE_SMOOTH,
        dice_include_background=c.DICE_INCLUDE_BACKGROUND,
    )
