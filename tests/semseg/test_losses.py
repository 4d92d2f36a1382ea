"""Imbalance losses on hand-computed cases: soft Dice with smoothing, class-weighted CE,
focal, Tversky, the CE on the outline band; the loss dict built from the config."""
import math

import pytest
import torch

from hcmeasure.semseg.losses import (
    SegmentationLoss, boundary_band, boundary_cross_entropy, build_segmentation_loss, cross_entropy, focal_loss,
    soft_dice_loss, tversky_loss)


def onehot_logits(pred, num_classes=2, scale=50.0):
    """(1, C, 1, n) logits whose softmax is (numerically) one-hot on ``pred``."""
    pred = torch.tensor(pred)
    return (scale * torch.nn.functional.one_hot(pred, num_classes).T.float())[None, :, None, :]


def test_soft_dice_with_smoothing_by_hand():
    logits = torch.zeros(1, 2, 1, 2)  # p = 0.5 everywhere
    targets = torch.tensor([[[1, 0]]])
    # each class: inter 0.5, sum p 1, sum t 1 -> (2 * 0.5 + 1) / (2 + 1) = 2/3
    assert soft_dice_loss(logits, targets, smooth=1.0).item() == pytest.approx(1 / 3)
    # no smoothing: (1) / (2) = 0.5
    assert soft_dice_loss(logits, targets, smooth=0.0).item() == pytest.approx(0.5)


def test_class_weighted_ce_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]]).T[None, :, None, :]  # (1, 2, 1, 2)
    targets = torch.tensor([[[1, 0]]])
    # pixel A: p(1) = 3/4, weight 3; pixel B: p(0) = 1/2, weight 1; weighted mean.
    expected = (3 * -math.log(0.75) + 1 * math.log(2.0)) / 4
    assert cross_entropy(logits, targets, class_weights=[1.0, 3.0]).item() == pytest.approx(expected)


def test_focal_by_hand():
    logits = torch.zeros(1, 2, 1, 3)
    targets = torch.tensor([[[1, 0, 255]]])  # last pixel ignored
    # p_t = 1/2 -> (1 - 1/2)^2 * ln 2 on both counted pixels
    assert focal_loss(logits, targets, gamma=2.0).item() == pytest.approx(0.25 * math.log(2))
    # alpha [1, 3]: (3 + 1) / 2 * 0.25 ln 2
    assert focal_loss(logits, targets, gamma=2.0, alpha=[1.0, 3.0]).item() == pytest.approx(0.5 * math.log(2))
    # gamma 0, no alpha = plain CE
    x = torch.randn(2, 3, 4, 5)
    t = torch.randint(0, 3, (2, 4, 5))
    torch.testing.assert_close(focal_loss(x, t, gamma=0.0), cross_entropy(x, t))
    # confident right pixels cost (almost) nothing, unlike their CE
    easy = onehot_logits([0, 0, 1], scale=4.0)
    tt = torch.tensor([[[0, 0, 1]]])
    assert focal_loss(easy, tt, gamma=2.0) < 0.01 * cross_entropy(easy, tt)


def test_tversky_by_hand():
    logits = onehot_logits([1, 0, 0, 0])
    targets = torch.tensor([[[1, 1, 1, 0]]])
    # class 1: TP 1, FP 0, FN 2 -> 1 / (1 + 0.7 * 2); class 0: TP 1, FP 2, FN 0 -> 1 / (1 + 0.3 * 2)
    t1, t0 = 1 / 2.4, 1 / 1.6
    got = tversky_loss(logits, targets, alpha=0.3, beta=0.7, smooth=0.0, include_background=False)
    assert got.item() == pytest.approx(1 - t1, abs=1e-6)
    got = tversky_loss(logits, targets, alpha=0.3, beta=0.7, smooth=0.0)
    assert got.item() == pytest.approx(1 - (t1 + t0) / 2, abs=1e-6)
    # alpha = beta = 0.5 is the soft Dice (without smoothing; smoothing enters differently)
    x, t = torch.randn(2, 3, 4, 5), torch.randint(0, 3, (2, 4, 5))
    torch.testing.assert_close(tversky_loss(x, t, alpha=0.5, beta=0.5, smooth=0.0), soft_dice_loss(x, t, smooth=0.0))


def test_loss_dict_from_config():
    from detectron2.config import get_cfg

    from hcmeasure.config import add_hcmeasure_config

    cfg = add_hcmeasure_config(get_cfg())
    cfg.MODEL.SEG_LOSS.FOCAL_WEIGHT = 2.0
    cfg.MODEL.SEG_LOSS.TVERSKY_WEIGHT = 0.5
    loss = build_segmentation_loss(cfg)
    x, t = torch.randn(1, 2, 3, 3), torch.randint(0, 2, (1, 3, 3))
    out = loss(x, t)
    assert set(out) == {"loss_ce", "loss_focal", "loss_tversky"}
    torch.testing.assert_close(out["loss_focal"], 2.0 * focal_loss(x, t, gamma=2.0))
    torch.testing.assert_close(out["loss_tversky"], 0.5 * tversky_loss(x, t, alpha=0.3, beta=0.7))
    assert set(SegmentationLoss(ce_weight=0, dice_weight=1)(x, t)) == {"loss_dice"}


def test_boundary_band_is_the_pixels_within_radius_of_a_label_change():
    t = torch.zeros(1, 9, 9, dtype=torch.long)
    t[0, 2:7, 2:7] = 1
    band = boundary_band(t, radius=1)
    # one pixel either side of the square's edge; the square's centre and the far corners are out
    expected = torch.zeros(9, 9, dtype=torch.bool)
    expected[1:8, 1:8] = True
    expected[3:6, 3:6] = False
    assert torch.equal(band[0], expected)
    assert boundary_band(t, radius=2)[0].sum() > band[0].sum()
    # a uniform target has no outline
    assert not boundary_band(torch.ones(1, 5, 5, dtype=torch.long)).any()


def test_boundary_band_leaves_ignored_pixels_out():
    t = torch.zeros(1, 6, 6, dtype=torch.long)
    t[0, :, 3:] = 255  # right half ignored: no outline between 0 and 255
    assert not boundary_band(t, radius=1).any()
    t[0, 0, 0] = 1
    band = boundary_band(t, radius=1)
    assert band[0, :2, :2].all() and not band[0, :, 3:].any()


def test_boundary_cross_entropy_weighs_only_the_outline():
    t = torch.zeros(1, 16, 16, dtype=torch.long)
    t[0, 4:12, 4:12] = 1
    x = torch.randn(1, 2, 16, 16)
    band = boundary_band(t, radius=2)
    y = x.clone()
    y[:, :, ~band[0]] = torch.randn(2, int((~band[0]).sum()))  # change logits away from the outline
    torch.testing.assert_close(boundary_cross_entropy(x, t, radius=2), boundary_cross_entropy(y, t, radius=2))
    ce = torch.nn.functional.cross_entropy(x, t, reduction="none")[0]
    torch.testing.assert_close(boundary_cross_entropy(x, t, radius=2), ce[band[0]].mean())


def test_boundary_term_from_config():
    from detectron2.config import get_cfg

    from hcmeasure.config import add_hcmeasure_config

    cfg = add_hcmeasure_config(get_cfg())
    assert cfg.MODEL.SEG_LOSS.BOUNDARY_WEIGHT == 0.0  # off unless asked for
    cfg.MODEL.SEG_LOSS.BOUNDARY_WEIGHT = 0.5
    cfg.MODEL.SEG_LOSS.BOUNDARY_RADIUS = 1
    x, t = torch.randn(2, 2, 8, 8), torch.randint(0, 2, (2, 8, 8))
    out = build_segmentation_loss(cfg)(x, t)
    assert set(out) == {"loss_ce", "loss_boundary"}
    torch.testing.assert_close(out["loss_boundary"], 0.5 * boundary_cross_entropy(x, t, radius=1))
