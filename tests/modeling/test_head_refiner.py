"""The head refiner measures the head again on a crop around the detector's box, and a
detector config names its refiner by relative paths that must both be there."""
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from hcmeasure.measurement.ellipse import Ellipse, ellipse_mask
from hcmeasure.measurement.head import HeadMeasurement
from hcmeasure.modeling.head_refiner import HeadContourRefiner


class BrightIsHead(nn.Module):
    """Stand-in semantic model: head probability = crop brightness / 255."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the refiner a device

    def forward(self, inputs):
        outs = []
        for x in inputs:
            p = (x["image"][0] / 255.0).clamp(0, 1)
            outs.append({"sem_seg": torch.stack([1 - p, p])})
        return outs


def _scan(e: Ellipse) -> np.ndarray:
    return np.where(ellipse_mask(e, (540, 800)), 255, 0).astype(np.uint8)


def test_the_refined_ellipse_comes_from_the_crop_not_the_detector():
    truth = Ellipse(420.3, 260.8, 170.0, 125.0, 0.4)
    coarse = Ellipse(425.0, 255.0, 160.0, 130.0, 0.3)  # what a detector measured
    box = (250.0, 130.0, 590.0, 390.0)  # a loose detection box around the head
    detected = HeadMeasurement(coarse, 0.97, 0.9, "ok", box=box)
    refiner = HeadContourRefiner(BrightIsHead(), crop_size=128, context=0.1)
    (head,) = refiner.refine([_scan(truth)], [detected])
    assert head.status == "ok" and head.score == 0.97 and head.box == box
    assert head.ellipse.perimeter() == pytest.approx(truth.perimeter(), rel=4e-3)
    assert (head.ellipse.cx, head.ellipse.cy) == pytest.approx((truth.cx, truth.cy), abs=1.0)
    assert head.contour is not None and head.fit_iou > 0.97


def test_heads_without_a_detection_box_pass_through():
    missing = HeadMeasurement(None, None, None, "no_head_detected")
    refiner = HeadContourRefiner(BrightIsHead(), crop_size=32, context=0.1)
    assert refiner.refine([np.zeros((540, 800), np.uint8)], [missing]) == [missing]


def test_a_crop_with_no_head_in_it_is_reported_not_guessed():
    detected = HeadMeasurement(Ellipse(100, 100, 50, 40, 0), 0.5, 0.9, "ok", box=(50, 60, 150, 140))
    refiner = HeadContourRefiner(BrightIsHead(), crop_size=32, context=0.1)
    (head,) = refiner.refine([np.zeros((540, 800), np.uint8)], [detected])
    assert head.ellipse is None and head.status == "no_head_detected"


def _detector_config(tmp_path, refiner_lines: str):
    from hcmeasure.predictor import default_model_paths

    paths = default_model_paths()
    if paths is None:
        pytest.skip("the default HC model is not installed")
    config, weights = paths
    cfg = tmp_path / "detector.yaml"
    # (the default's trust.json is named relative to its own folder, not this one; its
    # ensemble's members are replaced by the refiner these lines name)
    cfg.write_text(f'_BASE_: "{config}"\nHCMEASURE:\n  TRUST:\n    CALIBRATION: ""\n  HEAD_REFINER:\n'
                   f'    MEMBER_WEIGHTS: []\n{refiner_lines}')
    return cfg, weights


def test_a_refiner_config_without_its_weights_is_refused(tmp_path):
    from hcmeasure.predictor import HeadPredictor, ModelLoadError

    cfg, weights = _detector_config(tmp_path, '    CONFIG: "refiner.yaml"\n    WEIGHTS: ""\n')
    with pytest.raises(ModelLoadError, match="needs both CONFIG and WEIGHTS"):
        HeadPredictor(cfg, weights, device="cpu")


def test_a_missing_refiner_checkpoint_is_named(tmp_path, repo_root):
    from hcmeasure.predictor import HeadPredictor, ModelLoadError

    shutil.copy(repo_root / "configs" / "HC18" / "head_refiner_unet_effnet_lite0.yaml", tmp_path / "refiner.yaml")
    cfg, weights = _detector_config(tmp_path, '    CONFIG: "refiner.yaml"\n    WEIGHTS: "refiner.pth"\n')
    with pytest.raises(ModelLoadError, match="refiner.pth: checkpoint not found"):
        HeadPredictor(cfg, weights, device="cpu")


def test_the_predictor_runs_its_refiner_on_the_original_scan(tmp_path, repo_root, hc18_root):
    """Refiner paths are relative to the detector config; a refiner checkpoint with random
    weights loads strictly, and predict's measurements then come from the refiner."""
    from detectron2.modeling import build_model

    from hcmeasure.io.images import read_scan
    from hcmeasure.predictor import HeadPredictor, load_config

    shutil.copy(repo_root / "configs" / "HC18" / "head_refiner_unet_effnet_lite0.yaml", tmp_path / "refiner.yaml")
    rcfg = load_config(tmp_path / "refiner.yaml")
    torch.save({"model": build_model(rcfg).state_dict()}, tmp_path / "refiner.pth")
    cfg, weights = _detector_config(tmp_path, '    CONFIG: "refiner.yaml"\n    WEIGHTS: "refiner.pth"\n')
    predictor = HeadPredictor(cfg, weights, device="cpu")
    assert predictor.refiner is not None and predictor.refiner.crop_size == 256
    gray = read_scan(hc18_root / "training_set" / "010_HC.png")
    calls = []
    original = predictor.refiner.refine
    predictor.refiner.refine = lambda grays, heads: calls.append((grays, heads)) or original(grays, heads)
    (head,) = predictor([gray])
    ((grays, heads),) = calls
    assert grays[0] is gray and heads[0].box is not None
    assert head.box == heads[0].box and head.score == heads[0].score
    with pytest.raises(ValueError, match="HeadPredictor.preprocess"):
        predictor.measure([{k: v for k, v in predictor.preprocess(gray).items() if k != "gray"}])


def test_flip_averaging_keeps_a_symmetric_answer():
    truth = Ellipse(420.3, 260.8, 170.0, 125.0, 0.4)
    detected = HeadMeasurement(truth, 0.9, 0.9, "ok", box=(250.0, 130.0, 590.0, 390.0))
    plain = HeadContourRefiner(BrightIsHead(), crop_size=96, context=0.1).refine([_scan(truth)], [detected])[0]
    flipped = HeadContourRefiner(BrightIsHead(), crop_size=96, context=0.1, flip_tta=True).refine(
        [_scan(truth)], [detected])[0]
    assert flipped.ellipse.perimeter() == pytest.approx(plain.ellipse.perimeter(), rel=2e-3)
    assert flipped.ellipse.cx == pytest.approx(plain.ellipse.cx, abs=0.5)


def test_a_second_round_recovers_a_head_the_detection_box_cut_off():
    truth = Ellipse(420.3, 260.8, 170.0, 125.0, 0.4)
    tight = (300.0, 170.0, 540.0, 350.0)  # misses the head's sides
    detected = HeadMeasurement(None, 0.9, None, "ok", box=tight)
    errors = []
    for rounds in (1, 2, 3):
        refiner = HeadContourRefiner(BrightIsHead(), crop_size=128, context=0.1, rounds=rounds)
        (head,) = refiner.refine([_scan(truth)], [detected])
        assert head.box == tight
        errors.append(abs(head.ellipse.perimeter() - truth.perimeter()))
    assert errors[1] < errors[0] / 2 and errors[2] < 0.01 * truth.perimeter()


def test_rounds_must_be_positive():
    with pytest.raises(ValueError, match="ROUNDS"):
        HeadContourRefiner(BrightIsHead(), crop_size=32, context=0.1, rounds=0)


def test_a_refiner_config_that_is_not_a_two_class_segmenter_is_refused(tmp_path, repo_root):
    from hcmeasure.predictor import HeadPredictor, ModelLoadError, default_model_paths

    if default_model_paths() is None:
        pytest.skip("the default HC model is not installed")
    detector_config = default_model_paths()[0]
    cfg, weights = _detector_config(tmp_path, f'    CONFIG: "{detector_config}"\n    WEIGHTS: "x.pth"\n')
    with pytest.raises(ModelLoadError, match="two-class .* semantic-segmentation model, but this config builds HeadRCNN"):
        HeadPredictor(cfg, weights, device="cpu")
