"""Cell-outline metrics: Dice and IoU of the outline class, the study's weighted recall.

The study reported pixel accuracy, which an all-background prediction reaches at about
94 % on thin outlines; these figures expose that failure instead:

* ``dice`` = 2 TP / (2 TP + FP + FN) and ``iou`` = TP / (TP + FP + FN) of class 1
  (outline, or cell for filled targets), pooled over every pixel of the dataset;
* ``recall_outline`` = TP / (TP + FN), ``recall_background`` = TN / (TN + FP);
* ``weighted_recall`` = (W * recall_outline + recall_background) / (W + 1), the study's
  metric, W = ``HCMEASURE.CELLS.RECALL_WEIGHT`` (outline recall weighted W times);
* ``accuracy`` for comparison with the study only.

The counts and ratios are :mod:`hcmeasure.semseg.confusion`'s. Empty cases: Dice/IoU are
1 when neither prediction nor ground truth has the class, a recall without positives is NaN.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

import detectron2.utils.comm as comm
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator

from ...evaluation.registry import register_evaluator_builder
from ...semseg.confusion import class_counts, ratios
from ...semseg.data import decode_label, label_options_from_cfg

__all__ = ["outline_counts", "outline_metrics", "CellsEvaluator"]


def outline_counts(pred: np.ndarray, gt: np.ndarray, cls: int = 1, ignore_label: int = 255) -> np.ndarray:
    """[TP, FP, TN, FN] of class ``cls`` against the rest, ``ignore_label`` pixels left out."""
    return class_counts(pred, gt, cls, ignore_label)


def outline_metrics(tp, fp, tn, fn, recall_weight: float = 10.0) -> "OrderedDict[str, float]":
    """The figures of the module docstring from pooled counts."""
    r = ratios(tp, fp, tn, fn)
    r_fg, r_bg = r["sensitivity"], r["specificity"]
    return OrderedDict(
        dice=r["dice"],
        iou=r["jaccard"],
        recall_outline=r_fg,
        recall_background=r_bg,
        weighted_recall=(recall_weight * r_fg + r_bg) / (recall_weight + 1),
        accuracy=r["accuracy"],
    )


class CellsEvaluator(DatasetEvaluator):
    """Pooled outline metrics of ``sem_seg`` predictions (arg-max) under the key "cells".
    Ground truth is decoded with the dataset's decoder and the config's target options."""

    def __init__(self, dataset_name: str, *, label_options=None, recall_weight: float = 10.0,
                 distributed: bool = True):
        meta = MetadataCatalog.get(dataset_name)
        self._decoder = meta.get("label_decoder", "rgba_outline")
        self._ignore = meta.get("ignore_label", 255)
        self._options = dict(label_options or {})
        self._weight, self._distributed = float(recall_weight), distributed
        self.reset()

    def reset(self):
        self._counts = np.zeros(4, np.int64)

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            decoder = inp.get("sem_seg_decoder", self._decoder)
            gt = decode_label(inp["sem_seg_file_name"], decoder, **self._options.get(decoder, {}))
            pred = out["sem_seg"].argmax(dim=0).cpu().numpy()
            self._counts += outline_counts(pred, gt, 1, self._ignore)

    def evaluate(self):
        counts = self._counts
        if self._distributed:
            comm.synchronize()
            counts = np.sum(comm.gather(counts, dst=0), axis=0)
            if not comm.is_main_process():
                return {}
        return {"cells": outline_metrics(*counts.tolist(), recall_weight=self._weight)}


@register_evaluator_builder("cells")
def build_cells_evaluators(cfg, dataset_name, output_folder):
    """Cell-outline datasets: outline Dice / IoU / recalls (:class:`CellsEvaluator`)."""
    return [CellsEvaluator(dataset_name, label_options=label_options_from_cfg(cfg),
                           recall_weight=cfg.HCMEASURE.CELLS.RECALL_WEIGHT)]
