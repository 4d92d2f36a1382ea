"""tools/train_net.py trains EDNet (tiny config, random initialisation) for a few
iterations on a synthetic dataset in PASCAL VOC 2012's exact layout and evaluates it
with SemSegEvaluator; the VOC recipe's optimizer groups and poly schedule are as configured."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "configs" / "VOC2012" / "ednet_R_50_tiny_test.yaml"
MAX_ITER = 3


def _train_net_module():
    spec = importlib.util.spec_from_file_location("hcmeasure_train_net", REPO / "tools" / "train_net.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from hcmeasure.studies.voc.data import ENV_ROOT, write_synthetic_voc

    root = write_synthetic_voc(tmp_path_factory.mktemp("voc") / "VOC2012", train=4, val=2, size=(60, 80))
    out = tmp_path_factory.mktemp("train_out")
    # One thread: the run is tiny, and on a busy CPU spinning OpenMP threads slow it down.
    env = dict(os.environ, **{ENV_ROOT: str(root), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    cmd = ["nice", "-n", "19", sys.executable, str(REPO / "tools" / "train_net.py"), "--config-file", str(TINY),
           "OUTPUT_DIR", str(out), "SOLVER.MAX_ITER", str(MAX_ITER)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, proc.stdout + proc.stderr


@pytest.mark.slow
def test_training_writes_a_checkpoint(trained):
    out, log = trained
    assert (out / "model_final.pth").is_file()
    assert "Starting training from iteration 0" in log
    assert "EDNet" in (out / "config.yaml").read_text()


@pytest.mark.slow
def test_training_ends_with_sem_seg_evaluation(trained):
    out, _ = trained
    metrics = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines() if line.strip()]
    final = {k: v for m in metrics for k, v in m.items()}
    for key in ("sem_seg/mIoU", "sem_seg/fwIoU", "sem_seg/pACC"):
        assert 0.0 <= final[key] <= 100.0
    # Detectron2 reports the learning rate of the largest parameter group: the ResNet's,
    # 0.1 x BASE_LR, at the last iteration of the poly schedule.
    expected = 0.01 * 0.1 * (1 - (MAX_ITER - 1) / MAX_ITER) ** 0.9
    assert final["lr"] == pytest.approx(expected, rel=1e-3)
    assert (out / "inference" / "voc_2012_sem_seg_val" / "sem_seg_evaluation.pth").is_file()


def test_voc_recipe_optimizer_groups_and_poly_schedule():
    from detectron2.config import get_cfg
    from torch import nn

    from hcmeasure.config import add_hcmeasure_config

    train_net = _train_net_module()
    cfg = get_cfg()
    add_hcmeasure_config(cfg)
    cfg.merge_from_file(str(REPO / "configs" / "VOC2012" / "ednet_R_50.yaml"))
    assert cfg.SOLVER.LR_SCHEDULER_NAME == "WarmupPolyLR" and cfg.SOLVER.POLY_LR_POWER == 0.9
    assert cfg.SOLVER.IMS_PER_BATCH == 8 and cfg.SOLVER.MOMENTUM == 0.9 and cfg.SOLVER.WEIGHT_DECAY == 1e-4
    assert tuple(cfg.INPUT.CROP.SIZE) == (380, 380) and cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE == 255

    # A stand-in with the same parameter names as EDNet keeps this test instant.
    class Stub(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Module()
            self.net.encoder = nn.Conv2d(3, 4, 3)
            self.net.ffm = nn.Conv2d(4, 4, 1)

    model = Stub()
    optimizer = train_net.Trainer.build_optimizer(cfg, model)
    assert isinstance(optimizer, torch.optim.SGD)
    lrs = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert lrs[id(model.net.encoder.weight)] == pytest.approx(0.001)
    assert lrs[id(model.net.ffm.weight)] == pytest.approx(0.01)

    cfg.SOLVER.MAX_ITER = 10
    scheduler = train_net.Trainer.build_lr_scheduler(cfg, optimizer)
    seen = []
    for _ in range(5):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    for it, group_lrs in enumerate(seen):
        factor = (1 - it / 10) ** 0.9
        assert sorted(group_lrs) == pytest.approx(sorted(g["initial_lr"] * factor for g in optimizer.param_groups))


def test_count_params_reports_parameters_and_flops(capsys):
    spec = importlib.util.spec_from_file_location("hcmeasure_count_params", REPO / "tools" / "count_params.py")
    count_params = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(count_params)
    fcn = str(REPO / "configs" / "VOC2012" / "fcn_R_50.yaml")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors; extra threads only contend on a busy CPU
    try:
        assert count_params.main([fcn, "--size", "64", "64", "--json"]) == 0
    finally:
        torch.set_num_threads(threads)
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["meta_architecture"] == "EDNet" and row["input_size"] == [64, 64]
    assert row["trainable_params"] == row["total_params"] == 23_508_032 + 2048 * 21 + 21
    # ResNet-50 at 64x64 is about 0.34 G multiply-adds (4.1 G at 224x224).
    assert 0.25e9 < row["flops"] < 0.45e9
