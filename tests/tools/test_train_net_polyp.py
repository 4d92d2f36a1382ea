"""tools/train_net.py on the polyp models: a few iterations on a synthetic NeoPolyp-layout
dataset (ResNet-34 U-Net, 3 classes, the augmentation recipe) and on a few real
Kvasir-SEG images (GLoFF-Net), each ending with SemSegEvaluator + MedSegEvaluator;
``hcmeasure segment`` then loads the trained checkpoint with its config.yaml."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def _train(config: str, env_extra: dict, out: Path, opts=()):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **env_extra)
    cmd = ["nice", "-n", "19", sys.executable, str(REPO / "tools" / "train_net.py"), "--config-file",
           str(REPO / config), "OUTPUT_DIR", str(out), "SOLVER.MAX_ITER", "3", *opts]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    metrics = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines() if line.strip()]
    final = {k: v for m in metrics for k, v in m.items()}
    return final, proc.stdout + proc.stderr


@pytest.mark.slow
def test_neopolyp_resnet34_unet_on_synthetic_data(tmp_path):
    from hcmeasure.studies.polyp.data import ENV_NEOPOLYP, write_synthetic_polyp_dataset

    root = write_synthetic_polyp_dataset(tmp_path / "neo", "neopolyp", n=6, size=(72, 96))
    out = tmp_path / "out"
    final, log = _train("tests/configs/NeoPolyp/unet_R_34_tiny_test.yaml", {ENV_NEOPOLYP: str(root)}, out,
                        ["DATASETS.TRAIN", "('neopolyp_trainval',)", "DATASETS.TEST", "('neopolyp_trainval',)"])
    assert "Starting training from iteration 0" in log
    # Detectron2 prints every evaluator's results (print_csv_format).
    assert "Evaluation results for neopolyp_trainval in csv format" in log
    assert "copypaste: Task: sem_seg" in log and "copypaste: Task: medseg" in log
    for key in ("sem_seg/mIoU", "medseg/DI_pooled", "medseg/DI_mean_img", "medseg/mDI_pooled",
                "medseg/mDI_mean_img", "medseg/DI_pooled-neoplastic", "medseg/DI_mean_img-non-neoplastic"):
        assert key in final, key
    assert 0.0 <= final["medseg/mDI_mean_img"] <= 1.0
    assert (out / "inference" / "neopolyp_trainval" / "medseg_per_image.csv").is_file()
    assert (out / "model_final.pth").is_file()


@pytest.fixture(scope="module")
def tiny_real_kvasir(kvasir_root, tmp_path_factory):
    """Four training and two validation images of the real subset, in Kvasir's layout."""
    from hcmeasure.studies.polyp.data import split_of

    root = tmp_path_factory.mktemp("kvasir")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    picked = {"train": [], "val": []}
    for p in sorted((kvasir_root / "images").iterdir()):
        side = split_of(p.stem)
        if side in picked and len(picked[side]) < (4 if side == "train" else 2):
            picked[side].append(p.name)
    for name in picked["train"] + picked["val"]:
        shutil.copy(kvasir_root / "images" / name, root / "images" / name)
        shutil.copy(kvasir_root / "masks" / name, root / "masks" / name)
    return root, picked


@pytest.mark.slow
@pytest.mark.shared
def test_gloffnet_on_real_kvasir_then_segment(tiny_real_kvasir, tmp_path):
    from hcmeasure.studies.polyp.data import ENV_KVASIR

    root, picked = tiny_real_kvasir
    out = tmp_path / "out"
    final, log = _train("tests/configs/Polyp/gloffnet_tiny_test.yaml", {ENV_KVASIR: str(root)}, out,
                        ["DATASETS.TRAIN", "('kvasir_seg_train',)", "DATASETS.TEST", "('kvasir_seg_val',)"])
    assert "Evaluation results for kvasir_seg_val in csv format" in log
    assert "copypaste: Task: sem_seg" in log and "copypaste: Task: medseg" in log
    for key in ("sem_seg/mIoU", "sem_seg/IoU-polyp", "medseg/JA_pooled", "medseg/DI_pooled",
                "medseg/SE_pooled", "medseg/SP_pooled", "medseg/JA_mean_img", "medseg/DI_mean_img",
                "medseg/SE_mean_img", "medseg/SP_mean_img"):
        assert key in final, key
    assert final["medseg/n_images"] == 2
    assert 0.0 <= final["medseg/SP_pooled"] <= 1.0
    # Two views of one quantity: pooled Jaccard of the polyp class is its IoU (in %).
    assert final["medseg/JA_pooled"] * 100 == pytest.approx(final["sem_seg/IoU-polyp"], abs=1e-6)

    # The checkpoint and the config.yaml train_net wrote are what `segment` takes.
    import torch

    from hcmeasure.cli.main import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seg_out = tmp_path / "seg"
        rc = main(["segment", str(root / "images"), "--model", str(out / "model_final.pth"),
                   "--out", str(seg_out)])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    for name in picked["val"]:
        stem = Path(name).stem
        mask = Image.open(seg_out / "masks" / f"{stem}.png")
        assert mask.size == Image.open(root / "images" / name).size
        assert set(np.unique(np.asarray(mask))) <= {0, 1}
        assert (seg_out / "overlays" / f"{stem}.png").is_file()
