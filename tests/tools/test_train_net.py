"""tools/train_net.py trains the tiny config on a handful of real HC18 images, evaluates
with HC18Evaluator + COCOEvaluator, and its checkpoint is usable by ``hcmeasure predict``."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "configs" / "HC18" / "mask_rcnn_effnet_lite0_FPN_tiny_test.yaml"


@pytest.fixture(scope="module")
def tiny_hc18(make_tiny_hc18, tmp_path_factory):
    """A real HC18 layout with a few examinations on each side of the train/val split."""
    return make_tiny_hc18(tmp_path_factory.mktemp("hc18_tiny"), n_train=3, n_val=3)


@pytest.fixture(scope="module")
def trained(tiny_hc18, tmp_path_factory):
    out = tmp_path_factory.mktemp("train_out")
    env = dict(os.environ, HCMEASURE_HC18_ROOT=str(tiny_hc18), HCMEASURE_CACHE=str(out / "cache"))
    cmd = [sys.executable, str(REPO / "tools" / "train_net.py"), "--config-file", str(TINY),
           "OUTPUT_DIR", str(out), "SOLVER.MAX_ITER", "3"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, proc.stdout + proc.stderr, env


@pytest.mark.slow
def test_training_writes_a_checkpoint_and_its_config(trained):
    out, log, _ = trained
    assert (out / "model_final.pth").is_file()
    assert (out / "config.yaml").is_file()
    assert "Starting training from iteration 0" in log


@pytest.mark.slow
def test_training_ends_with_hc18_and_coco_evaluation(trained):
    out, log, _ = trained
    metrics = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines() if line.strip()]
    final = {k: v for m in metrics for k, v in m.items()}
    # HC18Evaluator reports the share of val images with a measured head; a 3-iteration
    # model may measure none, but the figure must be there and in range.
    assert 0.0 <= final["hc18/detected_pct"] <= 100.0
    assert any(k.startswith("segm/") or k.startswith("bbox/") for k in final)


def _predict_test_set(model_dir, tiny_hc18, env, res, extra=()):
    """``hcmeasure predict`` on the tiny test set with ``model_dir``'s model_final.pth and
    config.yaml; returns the rows of measurements.csv (each with an allowed status)."""
    cmd = [sys.executable, "-m", "hcmeasure.cli.main", "predict", str(tiny_hc18 / "test_set"),
           "--model", str(model_dir / "model_final.pth"), "--config", str(model_dir / "config.yaml"),
           "--pixel-size-csv", str(tiny_hc18 / "test_set_pixel_size.csv"), "--out", str(res), *extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = list(csv.DictReader(open(res / "measurements.csv")))
    assert len(rows) == 2
    assert {r["status"] for r in rows} <= {"ok", "review", "no_head_detected", "ellipse_fit_failed"}
    return rows


@pytest.mark.slow
def test_predict_loads_the_trained_checkpoint(trained, tiny_hc18, tmp_path):
    out, _, env = trained
    res = tmp_path / "pred"
    _predict_test_set(out, tiny_hc18, env, res)
    sub = open(res / "submission.csv").read().splitlines()
    assert sub[0] == "filename,center_x_mm,center_y_mm,semi_axes_a_mm,semi_axes_b_mm,angle_rad"
    assert len(sub) == 3


@pytest.mark.slow
def test_a_missing_starting_checkpoint_is_named_before_training(tiny_hc18, tmp_path):
    """A second-stage config run before its first stage stops with the file and the fix,
    not a bare assertion: the trainer loads through hcmeasure's checkpointer."""
    env = dict(os.environ, HCMEASURE_HC18_ROOT=str(tiny_hc18), HCMEASURE_CACHE=str(tmp_path / "cache"))
    missing = tmp_path / "stage1" / "model_final.pth"
    cmd = [sys.executable, str(REPO / "tools" / "train_net.py"), "--config-file", str(TINY),
           "OUTPUT_DIR", str(tmp_path / "out"), "SOLVER.MAX_ITER", "1", "MODEL.WEIGHTS", str(missing)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode != 0
    assert f"MODEL.WEIGHTS {missing}: no such checkpoint file" in proc.stderr
    assert "Train the model it names first" in proc.stderr
    assert not (tmp_path / "out" / "model_final.pth").exists()


@pytest.mark.slow
def test_a_head_refiner_trains_on_head_crops_and_predict_uses_it(trained, tiny_hc18, tmp_path):
    """The refiner config trains on crops around the training ellipses; publish_model ships
    it beside the detector (float16, named in the detector's config by relative paths), and
    predict measures through it."""
    det_out, _, env = trained
    ref_out = tmp_path / "refiner"
    cmd = [sys.executable, str(REPO / "tools" / "train_net.py"), "--config-file",
           str(REPO / "tests" / "configs" / "HC18" / "head_refiner_unet_effnet_lite0_tiny_test.yaml"),
           "OUTPUT_DIR", str(ref_out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "loss_dice" in proc.stdout + proc.stderr
    assert (ref_out / "model_final.pth").is_file()
    published = tmp_path / "published"
    cmd = [sys.executable, str(REPO / "tools" / "publish_model.py"), str(det_out / "model_final.pth"),
           "--config", str(det_out / "config.yaml"), "--half", "--out-dir", str(published),
           "--refiner", str(ref_out / "model_final.pth"), "--refiner-config", str(ref_out / "config.yaml")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert sorted(p.name for p in published.iterdir()) == [
        "config.yaml", "head_refiner.pth", "head_refiner.yaml", "model_final.pth"]
    assert 'CONFIG: head_refiner.yaml' in (published / "config.yaml").read_text()
    single_rows = _predict_test_set(published, tiny_hc18, env, tmp_path / "pred")

    # An ensemble of refiners (here the same checkpoint twice) with a trust calibration and a
    # test setting of its own.
    trust = tmp_path / "trust.json"
    trust.write_text('{"q": 2.0, "intercept": 0.01}')
    cmd = cmd[:cmd.index("--refiner") + 2] + [str(ref_out / "model_final.pth"), "--refiner-config",
                                              str(ref_out / "config.yaml"), "--trust", str(trust),
                                              "--opts", "INPUT.MAX_SIZE_TEST", "321"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert sorted(p.name for p in published.iterdir()) == [
        "config.yaml", "config_single.yaml", "head_refiner.yaml", "head_refiner_m0.pth", "head_refiner_m1.pth",
        "model_final.pth", "trust.json"]
    assert "WEIGHTS: head_refiner_m0.pth" in (published / "config_single.yaml").read_text()
    text = (published / "config.yaml").read_text()
    assert "- head_refiner_m0.pth" in text and "CALIBRATION: trust.json" in text
    assert "MAX_SIZE_TEST: 321" in text  # --opts: the published test settings (no effect here)
    rows = _predict_test_set(published, tiny_hc18, env, tmp_path / "pred_ensemble")
    for r in rows:
        if r["hc_mm"]:
            assert float(r["hc_low_mm"]) <= float(r["hc_mm"]) <= float(r["hc_high_mm"])
    # two copies of one refiner average to that refiner; --single-model uses the first alone
    first = _predict_test_set(published, tiny_hc18, env, tmp_path / "pred_first", ["--single-model"])
    for a, b, c in zip(single_rows, rows, first):
        assert a["hc_mm"] == b["hc_mm"] == c["hc_mm"]


def test_channels_last_training_is_the_same_computation(load_tool):
    """HCMEASURE.SOLVER.CHANNELS_LAST stores the convolution weights channels-last (faster
    on CPUs, benchmarks/train_speed.py) and changes neither the loss nor the gradients of
    a training step beyond float rounding (oneDNN sums in another order: the gradient
    vector moves by well under 1 %; single near-zero entries may differ more)."""
    import torch
    from detectron2.config import get_cfg

    from hcmeasure.config import add_hcmeasure_config

    train_net = load_tool("train_net")
    refiner = REPO / "tests" / "configs" / "HC18" / "head_refiner_unet_effnet_lite0_tiny_test.yaml"
    gen = torch.Generator().manual_seed(0)
    batch = [{"image": torch.randint(0, 256, (3, 64, 64), generator=gen).float(),
              "sem_seg": (torch.rand(64, 64, generator=gen) > 0.5).long()} for _ in range(2)]
    steps = {}
    for channels_last in (False, True):
        cfg = get_cfg()
        add_hcmeasure_config(cfg)
        cfg.merge_from_file(str(refiner))
        cfg.merge_from_list(["MODEL.DEVICE", "cpu", "HCMEASURE.SOLVER.CHANNELS_LAST", channels_last])
        torch.manual_seed(0)
        model = train_net.Trainer.build_model(cfg)
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1)
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) == channels_last
        model.train()
        loss = sum(model(batch).values())
        loss.backward()
        steps[channels_last] = (float(loss.detach()), [p.grad.clone() for p in model.parameters() if p.grad is not None])
    (loss_a, grads_a), (loss_b, grads_b) = steps[False], steps[True]
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    assert len(grads_a) == len(grads_b) > 50
    a, b = torch.cat([g.flatten() for g in grads_a]), torch.cat([g.flatten() for g in grads_b])
    assert float((a - b).norm() / a.norm()) < 0.01
