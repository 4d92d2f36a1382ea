"""``SemanticSegmentor``: the base of every semantic-segmentation meta-architecture.

Speaks Detectron2's semantic-segmentation protocol, so ``SemSegEvaluator``,
``DefaultPredictor`` and the visualizer work unchanged:

* input: the list of dicts a Detectron2 mapper produces, ``image`` (C, H, W) in
  the config's ``INPUT.FORMAT``, ``sem_seg`` (H, W) long targets when training,
  optional ``height``/``width`` (the size the output must have);
* training: returns a loss dict (:mod:`hcmeasure.semseg.losses`, from the config);
* inference: returns ``[{"sem_seg": scores}]`` with per-class scores of shape
  (num_classes, height, width).

A subclass builds ``self.net`` (any ``nn.Module`` mapping a normalised (N, 3, H, W)
batch to (N, num_classes, H, W) logits) and sets ``size_divisibility``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from detectron2.modeling.postprocessing import sem_seg_postprocess
from detectron2.structures import ImageList

from .losses import build_segmentation_loss

__all__ = ["SemanticSegmentor"]


class SemanticSegmentor(nn.Module):
    """Normalise, pad, run ``net``, compute losses or per-class scores.

    Args:
        net: module returning logits at input resolution.
        criterion: callable ``(logits, targets) -> dict[str, Tensor]`` of losses.
        num_classes: number of output classes.
        pixel_mean, pixel_std: per-channel normalisation (input format's channel order).
        size_divisibility: inputs are padded to a multiple of this.
        ignore_label: target value excluded from losses (padding gets it too).
    """

    def __init__(self, *, net, criterion, num_classes, pixel_mean, pixel_std,
                 size_divisibility=32, ignore_label=255):
        super().__init__()
        self.net = net
        self.criterion = criterion
        self.num_classes = num_classes
        self.size_divisibility = size_divisibility
        self.ignore_label = ignore_label
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @staticmethod
    def protocol_config(cfg) -> dict:
        """The constructor arguments every semantic model reads the same way from the config:
        classes, loss, normalisation and ignore label."""
        return {
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "criterion": build_segmentation_loss(cfg),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "ignore_label": cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
        }

    @property
    def device(self):
        return self.pixel_mean.device

    def preprocess(self, batched_inputs):
        images = [(x["image"].to(self.device) - self.pixel_mean) / self.pixel_std for x in batched_inputs]
        return ImageList.from_tensors(images, self.size_divisibility)

    def forward(self, batched_inputs):
        images = self.preprocess(batched_inputs)
        logits = self.net(images.tensor)
        if logits.shape[-2:] != images.tensor.shape[-2:]:
            logits = F.interpolate(logits, size=images.tensor.shape[-2:], mode="bilinear", align_corners=False)
        if self.training:
            targets = [x["sem_seg"].to(self.device) for x in batched_inputs]
            targets = ImageList.from_tensors(targets, self.size_divisibility, pad_value=self.ignore_label).tensor
            return self.criterion(logits, targets.long())
        results = []
        for logit, x, size in zip(logits, batched_inputs, images.image_sizes):
            height = x.get("height", size[0])
            width = x.get("width", size[1])
            scores = sem_seg_postprocess(logit, size, height, width)
            results.append({"sem_seg": scores.softmax(dim=0)})
        return results

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of an already normalised (N, C, H, W) batch whose sides are multiples of
        ``size_divisibility``."""
        return self.net(images)
