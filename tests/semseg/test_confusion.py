"""The one confusion-count module: pixel counts and ratios on hand-computed cases, the
ignore label, the foreground row, the empty cases."""
import math

import numpy as np
import pytest

from hcmeasure.semseg.confusion import COUNTS, binary_counts, class_counts, confusion_counts, ratios

GT = np.array([[1, 1, 0, 2],
               [1, 2, 0, 0],
               [0, 0, 0, 255]])
PRED = np.array([[1, 0, 0, 2],
                 [1, 1, 2, 0],
                 [0, 0, 1, 1]])  # the last pixel is ignored


def test_binary_counts_by_hand():
    p = np.array([True, True, False, False, True])
    g = np.array([True, False, False, True, True])
    assert COUNTS == ("TP", "FP", "TN", "FN")
    assert binary_counts(p, g).tolist() == [2, 1, 1, 1]
    assert binary_counts(p, g).dtype == np.int64


def test_class_counts_leave_the_ignore_label_out():
    # class 1: TP (0,0), (1,0); FP (1,1), (2,2); FN (0,1); 11 valid pixels
    assert class_counts(PRED, GT, 1).tolist() == [2, 2, 6, 1]
    assert class_counts(PRED, GT, 1, ignore_label=-1).tolist() == [2, 3, 6, 1]
    with pytest.raises(ValueError, match="differ in size"):
        class_counts(PRED, GT[:2])


def test_confusion_counts_have_a_row_per_class_and_one_for_the_foreground():
    c = confusion_counts(PRED, GT, num_classes=3)
    assert c.shape == (4, 4)
    for k in range(3):
        assert c[k].tolist() == class_counts(PRED, GT, k).tolist()
    # foreground: pixels of classes 1 and 2 together against class 0
    assert c[3].tolist() == binary_counts(PRED[GT != 255] != 0, GT[GT != 255] != 0).tolist() == [4, 2, 4, 1]
    assert (c.sum(axis=1) == 11).all()


def test_ratios_by_hand_and_empty_cases():
    r = ratios(2, 2, 6, 1)
    assert r == pytest.approx({"jaccard": 2 / 5, "dice": 4 / 7, "sensitivity": 2 / 3, "specificity": 6 / 8,
                               "accuracy": 8 / 11})
    empty = ratios(0, 0, 10, 0)  # nothing to find, nothing found
    assert empty["jaccard"] == empty["dice"] == 1.0 and math.isnan(empty["sensitivity"])
    assert empty["specificity"] == empty["accuracy"] == 1.0
    nothing = ratios(0, 0, 0, 0)
    assert math.isnan(nothing["specificity"]) and math.isnan(nothing["accuracy"])
