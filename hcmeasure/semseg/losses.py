"""Losses of the semantic-segmentation models, in one place.

All take ``logits`` (N, C, H, W) and integer ``targets`` (N, H, W) where
``ignore_index`` marks pixels excluded from the loss.

* :func:`cross_entropy` — pixel-wise CE, optional class weights.
* :func:`soft_dice_loss` — 1 - mean over classes of the soft Sørensen–Dice
  coefficient ``(2 sum(p t) + s) / (sum(p) + sum(t) + s)`` computed over the batch
  (smoothing ``s``); background can be left out.
* :func:`focal_loss` — CE scaled by ``(1 - p_t) ** gamma`` (Lin et al. 2017), optional
  per-class weights ``alpha``: easy (mostly background) pixels stop dominating.
* :func:`tversky_loss` — 1 - mean over classes of the Tversky index
  ``(TP + s) / (TP + a FP + b FN + s)`` on soft counts; ``b > a`` penalises missed
  foreground more than false alarms (``a = b = 0.5`` is the soft Dice).
* :func:`boundary_band` and :func:`boundary_cross_entropy` — CE averaged over the
  pixels within ``radius`` pixels of a label change (the outline of a filled mask):
  a term that weighs where the outline lies, which Dice over a large filled region
  barely does (a one-pixel shift of a 200-pixel head changes its Dice by about 1 %).
* :class:`SegmentationLoss` — their weighted sum, built from the config by
  :func:`build_segmentation_loss`, returning a Detectron2 loss dict.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["cross_entropy", "soft_dice_loss", "focal_loss", "tversky_loss", "boundary_band",
           "boundary_cross_entropy", "SegmentationLoss", "build_segmentation_loss"]


def cross_entropy(logits, targets, *, ignore_index=255, class_weights=None):
    weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=logits.dtype,
                                                                device=logits.device)
    return F.cross_entropy(logits, targets, weight=weight, ignore_index=ignore_index)


def soft_dice_loss(logits, targets, *, ignore_index=255, smooth=1.0, include_background=True):
    """1 - mean soft Dice over classes (probabilities from softmax), ignoring ``ignore_index``."""
    tp, fp, fn = _soft_counts(logits, targets, ignore_index)
    inter, denom = tp, 2 * tp + fp + fn
    dice = (2 * inter + smooth) / (denom + smooth)
    if not include_background:
        dice = dice[1:]
    return 1.0 - dice.mean()


def _soft_counts(logits, targets, ignore_index):
    """Per-class soft (TP, FP, FN) summed over batch and pixels, ``ignore_index`` left out."""
    num_classes = logits.shape[1]
    probs = logits.softmax(dim=1)
    valid = (targets != ignore_index).unsqueeze(1).to(probs.dtype)
    onehot = F.one_hot(targets.clamp(0, num_classes - 1) * (targets != ignore_index), num_classes)
    onehot = onehot.permute(0, 3, 1, 2).to(probs.dtype) * valid
    probs = probs * valid
    dims = (0, 2, 3)
    tp = (probs * onehot).sum(dims)
    return tp, probs.sum(dims) - tp, onehot.sum(dims) - tp


def focal_loss(logits, targets, *, ignore_index=255, gamma=2.0, alpha=None):
    """Mean over valid pixels of ``-alpha[t] * (1 - p_t) ** gamma * log p_t``; ``alpha``
    None = 1 for every class. ``gamma = 0`` and no ``alpha`` is the plain CE."""
    logp = F.log_softmax(logits, dim=1)
    valid = targets != ignore_index
    t = targets.clamp(0, logits.shape[1] - 1) * valid
    logp_t = logp.gather(1, t.unsqueeze(1)).squeeze(1)
    loss = -((1.0 - logp_t.exp()).clamp(min=0) ** gamma) * logp_t
    if alpha is not None:
        loss = loss * torch.as_tensor(alpha, dtype=logits.dtype, device=logits.device)[t]
    loss = loss * valid
    return loss.sum() / valid.sum().clamp(min=1)


def tversky_loss(logits, targets, *, ignore_index=255, alpha=0.5, beta=0.5, smooth=1.0,
                 include_background=True):
    """1 - mean over classes of ``(TP + smooth) / (TP + alpha FP + beta FN + smooth)``."""
    tp, fp, fn = _soft_counts(logits, targets, ignore_index)
    index = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)
    if not include_background:
        index = index[1:]
    return 1.0 - index.mean()


def boundary_band(targets, radius: int = 2, ignore_index=255):
    """Boolean (N, H, W): valid pixels whose (2 radius + 1)-square neighbourhood holds
    another valid label, i.e. pixels within ``radius`` pixels (chessboard distance) of a
    label change. Ignored pixels are neither in the band nor make it."""
    valid = targets != ignore_index
    t = targets.to(torch.float32).unsqueeze(1)
    big = float(t[valid.unsqueeze(1)].max()) + 1.0 if valid.any() else 1.0
    k = 2 * int(radius) + 1
    hi = F.max_pool2d(torch.where(valid.unsqueeze(1), t, torch.full_like(t, -1.0)), k, 1, int(radius))
    lo = -F.max_pool2d(-torch.where(valid.unsqueeze(1), t, torch.full_like(t, big)), k, 1, int(radius))
    return ((hi != lo) & valid.unsqueeze(1)).squeeze(1)


def boundary_cross_entropy(logits, targets, *, ignore_index=255, radius: int = 2):
    """Mean CE over the :func:`boundary_band` pixels (0 when there are none)."""
    band = boundary_band(targets, radius, ignore_index)
    ce = F.cross_entropy(logits, targets.clamp(0, logits.shape[1] - 1) * (targets != ignore_index),
                         reduction="none")
    return (ce * band).sum() / band.sum().clamp(min=1)


class SegmentationLoss(nn.Module):
    """``ce_weight * CE + dice_weight * Dice + focal_weight * focal + tversky_weight *
    Tversky + boundary_weight * boundary CE`` as a loss dict (terms with weight 0 are left
    out). The focal term's ``alpha`` is ``class_weights``; the Tversky term shares Dice's
    smoothing and background switch."""

    def __init__(self, *, ce_weight=1.0, dice_weight=0.0, ignore_index=255, class_weights=None,
                 dice_smooth=1.0, dice_include_background=True, focal_weight=0.0, focal_gamma=2.0,
                 tversky_weight=0.0, tversky_alpha=0.3, tversky_beta=0.7, boundary_weight=0.0,
                 boundary_radius=2):
        super().__init__()
        self.boundary_weight, self.boundary_radius = float(boundary_weight), int(boundary_radius)
        self.focal_weight, self.focal_gamma = float(focal_weight), float(focal_gamma)
        self.tversky_weight = float(tversky_weight)
        self.tversky_alpha, self.tversky_beta = float(tversky_alpha), float(tversky_beta)
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
        if self.focal_weight:
            losses["loss_focal"] = self.focal_weight * focal_loss(
                logits, targets, ignore_index=self.ignore_index, gamma=self.focal_gamma,
                alpha=self.class_weights)
        if self.tversky_weight:
            losses["loss_tversky"] = self.tversky_weight * tversky_loss(
                logits, targets, ignore_index=self.ignore_index, alpha=self.tversky_alpha,
                beta=self.tversky_beta, smooth=self.dice_smooth,
                include_background=self.dice_include_background)
        if self.boundary_weight:
            losses["loss_boundary"] = self.boundary_weight * boundary_cross_entropy(
                logits, targets, ignore_index=self.ignore_index, radius=self.boundary_radius)
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
        focal_weight=c.FOCAL_WEIGHT,
        focal_gamma=c.FOCAL_GAMMA,
        tversky_weight=c.TVERSKY_WEIGHT,
        tversky_alpha=c.TVERSKY_ALPHA,
        tversky_beta=c.TVERSKY_BETA,
        boundary_weight=c.BOUNDARY_WEIGHT,
        boundary_radius=c.BOUNDARY_RADIUS,
    )
