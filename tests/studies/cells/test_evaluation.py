"""The cell-outline metrics on hand-computed cases (the study's weighted recall, outline
Dice and IoU), read from the shared confusion counts."""
import numpy as np
import pytest
import torch

from hcmeasure.studies.cells.evaluation import outline_counts, outline_metrics


def test_weighted_recall_and_outline_scores_by_hand():
    gt = torch.tensor([[1, 1, 0, 0, 0, 0, 0, 0, 0, 255]]).numpy()
    all_bg = gt * 0
    m = outline_metrics(*outline_counts(all_bg, gt), recall_weight=10)
    # the study's failure: 7/9 accuracy, but no outline found
    assert m["accuracy"] == pytest.approx(7 / 9) and m["dice"] == 0 and m["iou"] == 0
    assert m["weighted_recall"] == pytest.approx((10 * 0 + 1) / 11)
    pred = torch.tensor([[1, 0, 1, 0, 0, 0, 0, 0, 0, 1]]).numpy()  # TP 1, FP 1, FN 1, TN 6
    m = outline_metrics(*outline_counts(pred, gt), recall_weight=10)
    assert m["dice"] == pytest.approx(0.5) and m["iou"] == pytest.approx(1 / 3)
    assert m["weighted_recall"] == pytest.approx((10 * 0.5 + 6 / 7) / 11)


def test_outline_figures_are_the_shared_confusion_counts_and_ratios():
    from hcmeasure.semseg.confusion import class_counts, ratios

    rng = np.random.default_rng(0)
    gt = rng.integers(0, 3, (20, 30))
    gt[0, :5] = 255
    pred = rng.integers(0, 3, (20, 30))
    counts = outline_counts(pred, gt, 2)
    assert counts.tolist() == class_counts(pred, gt, 2).tolist()
    m, r = outline_metrics(*counts.tolist(), recall_weight=4), ratios(*counts.tolist())
    assert (m["dice"], m["iou"], m["recall_outline"], m["recall_background"], m["accuracy"]) == (
        r["dice"], r["jaccard"], r["sensitivity"], r["specificity"], r["accuracy"])
    assert m["weighted_recall"] == pytest.approx((4 * r["sensitivity"] + r["specificity"]) / 5)
