"""Cell-outline metrics: Dice and IoU of the outline class, the study's weighted recall.

The study reported pixel accuracy, which an all-background prediction reaches at about
94 % on thin outlines; these figures expose that failure instead:

* ``dice`` = 2 TP / (2 TP + FP + FN) and ``iou`` = TP / (TP + FP + FN) of class 1
  (outline, or cell for filled targets), pooled over every pixel of the dataset;
* ``recall_outline`` = TP / (TP + FN), ``recall_background`` = TN / (TN + FP);
* ``weighted_recall`` = (W * recall_outline + recall_background) / (W + 1), the study's
  metric, W = ``HCMEASURE.CELLS.RECALL_WEIGHT`` (outline recall weighted W times);
* ``accuracy`` for comparison with the study only.

Empty cases: Dice/IoU are 1 when neither prediction nor ground truth has the class, a
recall without positives is NaN.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

import detectron2.utils.comm as comm
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator

__all__ = ["outline_counts", "outline_metrics", "CellsEvaluator"]


def outline_counts(pred: np.ndarray, gt: np.ndarray, cls: int = 1, ignore_label: int = 255) -> np.ndarray:
    """[TP, FP, TN, FN] of class ``cls`` against the rest, ``ignore_label`` pixels left out."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size")
    valid = gt != ignore_label
    p, g = pred[valid] == cls, gt[valid] == cls
    tp = int(np.count_nonzero(p & g))
    fp = int(np.count_nonzero(p)) - tp
    fn = int(np.count_nonzero(g)) - tp
    return np.array([tp, fp, p.size - tp - fp - fn, fn], np.int64)


def outline_metrics(tp, fp, tn, fn, recall_weight: float = 10.0) -> "OrderedDict[str, float]":
    def ratio(num, den, empty):
        return num / den if den else empty

    r_fg, r_bg = ratio(tp, tp + fn, math.nan), ratio(tn, tn + fp, math.nan)
    return OrderedDict(
        dice=ratio(2 * tp, 2 * tp + fp + fn, 1.0),
        iou=ratio(tp, tp + fp + fn, 1.0),
        recall_outline=r_fg,
        recall_background=r_bg,
        weighted_recall=(recall_weight * r_fg + r_bg) / (recall_weight + 1),
        accuracy=ratio(tp + tn, tp + fp + tn + fn, math.nan),
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
        from ..semseg.data import decode_label

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


def _register():
    from .registry import register_evaluator_builder

    @register_evaluator_builder("cells")
    def _cells(cfg, dataset_name, output_folder):
        """Cell-outline datasets: outline recall / precision / F1 (:class:`CellsEvaluator`)."""
        from ..semseg.data import label_options_from_cfg

        return [CellsEvaluator(dataset_name, label_options=label_options_from_cfg(cfg),
                               recall_weight=cfg.HCMEASURE.CELLS.RECALL_WEIGHT)]


_register()
