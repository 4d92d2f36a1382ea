"""Pixel confusion counts and the ratios built on them, for every segmentation metric.

A class against the rest gives four pixel counts ``[TP, FP, TN, FN]`` (int64), pixels
whose ground truth is ``ignore_label`` left out. From them, as fractions in [0, 1]:

* Jaccard (IoU)        TP / (TP + FP + FN)
* Dice (F1)            2 TP / (2 TP + FP + FN)
* sensitivity (recall) TP / (TP + FN)
* specificity          TN / (TN + FP)
* accuracy             (TP + TN) / (TP + FP + TN + FN)

Empty cases: Jaccard and Dice are 1 when neither prediction nor ground truth has the
class (nothing to find, nothing found); sensitivity without positive pixels, specificity
without negative ones and accuracy without pixels are NaN.

The polyp metrics (:mod:`hcmeasure.studies.polyp.evaluation`) and the cell-outline
metrics (:mod:`hcmeasure.studies.cells.evaluation`) are both read from these counts.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["COUNTS", "binary_counts", "class_counts", "confusion_counts", "ratios"]

#: The order of the four counts.
COUNTS = ("TP", "FP", "TN", "FN")


def binary_counts(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``[TP, FP, TN, FN]`` of two boolean arrays of the same shape (prediction, truth)."""
    tp = int(np.count_nonzero(pred & gt))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(gt)) - tp
    return np.array([tp, fp, pred.size - tp - fp - fn, fn], np.int64)


def _valid(pred, gt, ignore_label: int) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size")
    valid = gt != ignore_label
    return pred[valid], gt[valid]


def class_counts(pred: np.ndarray, gt: np.ndarray, cls: int = 1, ignore_label: int = 255) -> np.ndarray:
    """``[TP, FP, TN, FN]`` of class ``cls`` against the rest in class-index maps."""
    p, g = _valid(pred, gt, ignore_label)
    return binary_counts(p == cls, g == cls)


def confusion_counts(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_label: int = 255) -> np.ndarray:
    """(num_classes + 1, 4) int64: ``[TP, FP, TN, FN]`` of each class against the rest, and
    in the last row of "foreground" (every class but 0 against class 0)."""
    p, g = _valid(pred, gt, ignore_label)
    out = np.zeros((num_classes + 1, 4), np.int64)
    for c in range(num_classes):
        out[c] = binary_counts(p == c, g == c)
    out[num_classes] = binary_counts(p != 0, g != 0)
    return out


def ratios(tp, fp, tn, fn) -> dict[str, float]:
    """``jaccard``, ``dice``, ``sensitivity``, ``specificity`` and ``accuracy`` of the
    counts (see the module docstring for the empty cases)."""
    def ratio(num, den, empty):
        return num / den if den else empty

    return {
        "jaccard": ratio(tp, tp + fp + fn, 1.0),
        "dice": ratio(2 * tp, 2 * tp + fp + fn, 1.0),
        "sensitivity": ratio(tp, tp + fn, math.nan),
        "specificity": ratio(tn, tn + fp, math.nan),
        "accuracy": ratio(tp + tn, tp + fp + tn + fn, math.nan),
    }
