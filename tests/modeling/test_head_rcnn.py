"""HeadRCNN: Mask R-CNN whose inference also returns the measured head ellipse."""
import math

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model

import hcmeasure  # noqa: F401
from hcmeasure.config import add_hcmeasure_config
from hcmeasure.measurement.ellipse import Ellipse
from hcmeasure.measurement.head import measure_head_from_mask_probs
from hcmeasure.modeling.meta_arch.head_rcnn import HeadRCNN, average_ellipses, mirror_ellipse


def _probs_for(ellipse: Ellipse, box, m=56, sharpness=0.7):
    """RoI mask probabilities of ``ellipse`` sampled at the mask cells' centres.

    ``box`` is in Detectron2 continuous coordinates; the ellipse in hcmeasure's
    pixel-centre frame (continuous = pixel-centre + 0.5)."""
    x0, y0, x1, y1 = box
    u = x0 + (np.arange(m) + 0.5) * (x1 - x0) / m - 0.5
    v = y0 + (np.arange(m) + 0.5) * (y1 - y0) / m - 0.5
    xs, ys = np.meshgrid(u, v)
    r = ellipse.normalized_radius(xs, ys)
    # signed distance to the boundary (approx.) through a logistic: p = 0.5 on the edge
    d = (1 - r) * math.sqrt(ellipse.a * ellipse.b)
    return 1 / (1 + np.exp(-d / sharpness))


@pytest.mark.parametrize("angle", [0.0, 0.4, 1.3, 2.8])
def test_mask_probabilities_give_back_the_ellipse(angle):
    truth = Ellipse.normalized(400.2, 260.7, 180.0, 140.0, angle)
    box = (400.7 - 185, 261.2 - 185, 400.7 + 185, 261.2 + 185)
    head = measure_head_from_mask_probs(_probs_for(truth, box), box, (540, 800), score=0.9)
    assert head.status == "ok"
    e = head.ellipse
    assert abs(e.cx - truth.cx) < 0.3 and abs(e.cy - truth.cy) < 0.3
    assert abs(e.a - truth.a) < 0.5 and abs(e.b - truth.b) < 0.5
    assert abs(math.remainder(e.angle - truth.angle, math.pi)) < 0.02
    assert head.fit_iou > 0.98


def test_head_cut_by_the_image_border_is_fitted_on_its_visible_outline():
    truth = Ellipse(700.0, 270.0, 200.0, 150.0, 0.0)  # right part outside an 800-wide image
    box = (500.5, 120.5, 800.0, 420.5)
    head = measure_head_from_mask_probs(_probs_for(truth, box), box, (540, 800))
    assert head.status == "ok"
    assert abs(head.ellipse.a - truth.a) < 2.0 and abs(head.ellipse.b - truth.b) < 1.0
    assert abs(head.ellipse.cx - truth.cx) < 2.0


def test_empty_probabilities_mean_no_head():
    head = measure_head_from_mask_probs(np.zeros((28, 28)), (0, 0, 10, 10), (50, 50))
    assert head.status == "no_head_detected" and head.ellipse is None


def test_mirror_and_average_ellipses():
    e = Ellipse(100.0, 50.0, 40.0, 20.0, 0.3)
    m = mirror_ellipse(e, width=300)
    assert (m.cx, m.cy) == (199.0, 50.0) and abs(m.angle - (math.pi - 0.3)) < 1e-12
    assert mirror_ellipse(m, 300) == Ellipse(100.0, 50.0, 40.0, 20.0, pytest.approx(0.3))
    # angles 0.05 and pi - 0.05 are 0.1 rad apart through 0, so their mean is 0, not pi/2
    avg = average_ellipses([Ellipse(0, 0, 2, 1, 0.05), Ellipse(0, 0, 4, 1, math.pi - 0.05)])
    assert avg.a == 3 and min(avg.angle, math.pi - avg.angle) < 1e-9


@pytest.fixture(scope="module")
def tiny_model():
    cfg = get_cfg()
    add_hcmeasure_config(cfg)
    cfg.merge_from_file("tests/configs/HC18/mask_rcnn_effnet_lite0_FPN_tiny_test.yaml")
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.EFFICIENTNET_LITE.PRETRAINED = ""
    return cfg, build_model(cfg).eval()


def test_inference_returns_instances_and_head_at_original_size(tiny_model):
    cfg, model = tiny_model
    assert isinstance(model, HeadRCNN)
    x = {"image": torch.rand(3, 160, 237) * 255, "height": 540, "width": 800}
    with torch.no_grad():
        out = model([x, x])
    assert len(out) == 2
    for o in out:
        assert o["instances"].image_size == (540, 800)
        assert o["head"].status in ("ok", "no_head_detected", "ellipse_fit_failed")
        if len(o["instances"]):
            assert o["instances"].pred_masks.shape[-2:] == (540, 800)


def test_flip_tta_and_no_paste_options(tiny_model):
    cfg, model = tiny_model
    model.flip_tta, model.paste_masks = True, False
    try:
        x = {"image": torch.rand(3, 160, 237) * 255, "height": 540, "width": 800}
        with torch.no_grad():
            out = model([x])
        assert not out[0]["instances"].has("pred_masks")
    finally:
        model.flip_tta, model.paste_masks = False, True
