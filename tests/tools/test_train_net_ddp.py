"""tools/train_net.py with two processes on the CPU (gloo, through Detectron2's ``launch``):
what makes data-parallel training what it is, for the HC Mask R-CNN and for a semantic
model, and a 2-process evaluation that counts every image once.

Training runs through tests/tools/ddp_probe.py, which is train_net.py's own Trainer
plus a hook writing each rank's parameters and the images it was given."""
import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).resolve().parent / "ddp_probe.py"
TINY_HC = REPO / "tests" / "configs" / "HC18" / "mask_rcnn_effnet_lite0_FPN_tiny_test.yaml"
TINY_UNET = REPO / "tests" / "configs" / "Polyp" / "unet_tiny_test.yaml"
DEFAULT_MODEL = REPO / "hcmeasure" / "model_zoo" / "hc18_default"
N_TRAIN = 4  # two steps of one image per rank: the two ranks together go once through the set


def _env(**extra) -> dict:
    # One thread per process: two processes on two cores, and a run that is reproducible.
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)


def _run(cmd, env) -> str:
    proc = subprocess.run(["nice", "-n", "19", sys.executable, *map(str, cmd)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout + proc.stderr


def _probe(config, out: Path, dist_url: str, env, opts=()):
    """Train ``config`` for 2 steps with 2 processes; returns the two ranks' records."""
    _run([PROBE, out / "probe", "--num-gpus", "2", "--dist-url", dist_url, "--config-file", config,
          "OUTPUT_DIR", out / "train", "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "2",
          "DATASETS.TEST", "()", *opts], env)
    return [torch.load(out / "probe" / f"rank{r}.pth") for r in (0, 1)]


def _assert_data_parallel(ranks, training_images):
    rank0, rank1 = ranks
    assert rank0["world_size"] == rank1["world_size"] == 2
    # Every step averages the gradients of the two ranks: their parameters stay equal
    # (BatchNorm running statistics are buffers, kept per rank as in Detectron2).
    assert rank0["params_final"].keys() == rank1["params_final"].keys()
    for name, value in rank0["params_final"].items():
        assert torch.equal(value, rank1["params_final"][name]), name
    # ... and training did move them.
    moved = [n for n, v in rank0["params_final"].items() if not torch.equal(v, rank0["params_initial"][n])]
    assert len(moved) > len(rank0["params_final"]) // 2
    # Each rank was given its own images: disjoint halves of the training set, which
    # together cover it once.
    assert len(rank0["seen"]) == len(rank1["seen"]) == len(training_images) // 2
    assert not set(rank0["seen"]) & set(rank1["seen"])
    assert sorted(rank0["seen"] + rank1["seen"]) == sorted(training_images)


@pytest.fixture(scope="module")
def hc18_ddp(make_tiny_hc18, new_dist_url, tmp_path_factory):
    root = make_tiny_hc18(tmp_path_factory.mktemp("hc18_ddp"), n_train=N_TRAIN, n_val=3)
    out = tmp_path_factory.mktemp("ddp_out")
    env = _env(HCMEASURE_HC18_ROOT=str(root), HCMEASURE_CACHE=str(out / "cache"))
    return root, out, env, _probe(TINY_HC, out, new_dist_url(), env)


def _hc18_train_images(root: Path) -> list[str]:
    from hcmeasure.data.hc18 import split_of

    return [p.name for p in (root / "training_set").glob("*_HC.png") if split_of(p.name) == "train"]


@pytest.mark.slow
@pytest.mark.shared
def test_two_cpu_processes_train_one_hc_model_on_two_halves_of_the_data(hc18_ddp):
    root, _, _, ranks = hc18_ddp
    training_images = _hc18_train_images(root)
    assert len(training_images) == N_TRAIN
    _assert_data_parallel(ranks, training_images)


@pytest.mark.slow
@pytest.mark.shared
def test_the_checkpoint_written_by_rank_0_loads_in_predict(hc18_ddp, tmp_path):
    root, out, env, ranks = hc18_ddp
    train = out / "train"
    assert (train / "model_final.pth").is_file() and not (train / "model_final.pth.rank1").exists()
    saved = torch.load(train / "model_final.pth", weights_only=False)["model"]
    for name, value in ranks[0]["params_final"].items():
        assert torch.equal(saved[name], value), name
    _run(["-m", "hcmeasure.cli.main", "predict", root / "test_set", "--model", train / "model_final.pth",
          "--config", train / "config.yaml", "--pixel-size-csv", root / "test_set_pixel_size.csv",
          "--out", tmp_path / "pred", "--no-overlays"], env)
    rows = list(csv.DictReader(open(tmp_path / "pred" / "measurements.csv")))
    assert sorted(r["filename"] for r in rows) == sorted(p.name for p in (root / "test_set").iterdir())
    assert {r["status"] for r in rows} <= {"ok", "no_head_detected", "ellipse_fit_failed"}


@pytest.mark.slow
def test_two_cpu_processes_train_a_semantic_model_the_same_way(tmp_path, new_dist_url):
    from hcmeasure.studies.polyp.data import ENV_KVASIR, write_synthetic_polyp_dataset

    root = write_synthetic_polyp_dataset(tmp_path / "kvasir", "kvasir", n=N_TRAIN, size=(72, 96))
    ranks = _probe(TINY_UNET, tmp_path, new_dist_url(), _env(**{ENV_KVASIR: str(root)}),
                   ["DATASETS.TRAIN", "('kvasir_seg_all',)"])
    _assert_data_parallel(ranks, [p.name for p in (root / "images").iterdir()])
    assert (tmp_path / "train" / "model_final.pth").is_file()


def _copypaste(log: str) -> list[str]:
    """Detectron2's printed evaluation results (``copypaste:`` lines), without the log prefix."""
    return [line.split("copypaste: ", 1)[1] for line in log.splitlines() if "copypaste: " in line]


@pytest.mark.slow
@pytest.mark.shared
def test_a_two_process_evaluation_gives_the_figures_of_one_process(hc18_ddp, tmp_path, new_dist_url):
    """inference_on_dataset shards hc18_val over the ranks (2 + 1 images); HC18Evaluator
    and COCOEvaluator gather them on rank 0: every image once, the same figures."""
    root, _, env, _ = hc18_ddp
    results = {}
    for n in (1, 2):
        out = tmp_path / f"eval{n}"
        log = _run([REPO / "tools" / "train_net.py", "--eval-only", "--num-gpus", n, "--dist-url", new_dist_url(),
                    "--config-file", DEFAULT_MODEL / "config.yaml",
                    "MODEL.WEIGHTS", DEFAULT_MODEL / "model_final.pth", "DATASETS.TEST", "('hc18_val',)",
                    "OUTPUT_DIR", out], env)
        rows = (out / "inference" / "hc18_val" / "hc18_val_measurements.csv").read_text()
        results[n] = _copypaste(log), rows
    assert "Task: hc18" in results[1][0] and "Task: segm" in results[1][0]
    assert results[2] == results[1]
    rows = list(csv.DictReader(results[2][1].splitlines()))
    val = sorted(p.name for p in (root / "training_set").glob("*_HC.png") if p.name not in _hc18_train_images(root))
    assert sorted(r["filename"] for r in rows) == val and len(val) == 3
    assert {r["status"] for r in rows} == {"ok"}
    mad = re.search(r"^([\d.]+),", results[2][0][results[2][0].index("Task: hc18") + 2])
    assert mad and float(mad.group(1)) < 20.0  # the shipped model's MAD on these 3 scans, in mm
