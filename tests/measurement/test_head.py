"""From Detectron2 instances to one head (hcmeasure.measurement.head)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from detectron2.structures import Boxes, Instances

from hcmeasure.measurement.ellipse import Ellipse, ellipse_mask
from hcmeasure.measurement.head import measure_head_from_instances, measure_head_from_mask

SHAPE = (300, 400)
HEAD = Ellipse(200.3, 150.6, 110.2, 80.4, 0.6)
OTHER = Ellipse(100.0, 100.0, 40.0, 30.0, 0.0)


def instances(masks, scores) -> Instances:
    inst = Instances(SHAPE)
    masks = torch.stack([torch.as_tensor(m) for m in masks]) if masks else torch.zeros((0, *SHAPE), dtype=torch.bool)
    boxes = []
    for m in masks:
        ys, xs = torch.nonzero(m > 0.5, as_tuple=True) if m.dtype.is_floating_point else torch.nonzero(m, as_tuple=True)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if len(xs) else [0, 0, 0, 0])
    inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.scores = torch.tensor(scores, dtype=torch.float32)
    inst.pred_classes = torch.zeros(len(scores), dtype=torch.int64)
    inst.pred_masks = masks
    return inst


def test_mask_gives_the_ellipse():
    head = measure_head_from_mask(ellipse_mask(HEAD, SHAPE), score=0.9)
    assert head.status == "ok"
    assert head.score == 0.9
    assert head.ellipse.perimeter() == pytest.approx(HEAD.perimeter(), rel=1e-3)
    assert head.fit_iou > 0.99
    assert head.mask.dtype == bool and head.mask.shape == SHAPE


def test_empty_mask_is_no_head():
    head = measure_head_from_mask(np.zeros(SHAPE, bool), score=0.7)
    assert head.status == "no_head_detected"
    assert head.ellipse is None and head.score == 0.7


def test_unfittable_mask_is_fit_failure():
    # A single pixel: its contour has 4 distinct points, too few for a conic.
    mask = np.zeros(SHAPE, bool)
    mask[10, 10] = True
    head = measure_head_from_mask(mask)
    assert head.status == "ellipse_fit_failed"
    assert head.ellipse is None
    # Diagonal pixels touch only at corners: the largest component is one pixel.
    mask = np.zeros(SHAPE, bool)
    mask[np.arange(50, 60), np.arange(70, 80)] = True
    assert measure_head_from_mask(mask).status == "ellipse_fit_failed"


def test_highest_scoring_instance_is_measured():
    inst = instances([ellipse_mask(OTHER, SHAPE), ellipse_mask(HEAD, SHAPE)], [0.4, 0.95])
    head = measure_head_from_instances(inst)
    assert head.status == "ok"
    assert head.score == pytest.approx(0.95)
    assert head.ellipse.a == pytest.approx(HEAD.a, abs=0.2)
    assert abs(head.ellipse.cx - HEAD.cx) < 0.2


def test_probability_masks_are_thresholded():
    # Probabilities that fall from 1 at the centre to 0 at twice the head size: the
    # 0.5 level is the head's outline, the 0.25 level an ellipse 1.5 times larger.
    ys, xs = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    r = HEAD.normalized_radius(xs, ys) * 0.5
    prob = np.clip(1.0 - r, 0.0, 1.0).astype(np.float32)
    inst = instances([prob], [0.9])
    head = measure_head_from_instances(inst, mask_threshold=0.5)
    assert head.ellipse.a == pytest.approx(HEAD.a, abs=0.3)
    wider = measure_head_from_instances(inst, mask_threshold=0.25)
    assert wider.ellipse.a == pytest.approx(1.5 * HEAD.a, abs=0.5)


def test_low_score_or_no_instance_is_no_head():
    inst = instances([ellipse_mask(HEAD, SHAPE)], [0.03])
    head = measure_head_from_instances(inst, min_score=0.05)
    assert head.status == "no_head_detected"
    assert head.score == pytest.approx(0.03)
    assert measure_head_from_instances(inst, min_score=0.01).status == "ok"
    assert measure_head_from_instances(instances([], [])).status == "no_head_detected"
    no_masks = Instances(SHAPE)
    no_masks.scores = torch.tensor([0.9])
    no_masks.pred_boxes = Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0]]))
    assert measure_head_from_instances(no_masks).status == "no_head_detected"


def test_empty_predicted_mask_is_no_head():
    inst = instances([np.zeros(SHAPE, bool)], [0.9])
    head = measure_head_from_instances(inst)
    assert head.status == "no_head_detected"
    assert head.score == pytest.approx(0.9)


def test_rotated_head_angle_survives_the_instances_path():
    head = Ellipse(200.3, 150.6, 110.2, 80.4, math.pi - 0.05)
    got = measure_head_from_instances(instances([ellipse_mask(head, SHAPE)], [0.9])).ellipse
    diff = (got.angle - head.angle + math.pi / 2) % math.pi - math.pi / 2
    assert abs(diff) < math.radians(0.2)


def test_fit_iou_on_the_probability_grid_ignores_cells_outside_the_image():
    """A refiner's crop may reach past the image border: the grid IoU counts only the cells
    inside the image, so a good fit of a head cut by the border still scores high."""
    from hcmeasure.measurement.ellipse import Ellipse
    from hcmeasure.measurement.head import measure_head_from_mask_probs

    e = Ellipse(60.0, 120.0, 100.0, 80.0, 0.0)  # its left part lies outside the image
    box = (-60.0, 20.0, 180.0, 220.0)
    m = 128
    gx = box[0] + (np.arange(m) + 0.5) * (box[2] - box[0]) / m - 0.5
    gy = box[1] + (np.arange(m) + 0.5) * (box[3] - box[1]) / m - 0.5
    xx, yy = np.meshgrid(gx, gy)
    probs = ((e.normalized_radius(xx, yy) <= 1.0) & (xx > -0.5)).astype(np.float32)
    grid = measure_head_from_mask_probs(probs, box, (300, 400), iou_on_grid=True)
    pasted = measure_head_from_mask_probs(probs, box, (300, 400))
    assert grid.status == "ok"
    assert grid.ellipse.a == pytest.approx(e.a, rel=0.01)
    assert grid.fit_iou > 0.97
    assert grid.fit_iou == pytest.approx(pasted.fit_iou, abs=0.02)
