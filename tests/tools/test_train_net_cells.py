"""tools/train_net.py on the cell U-Net: a few iterations on random tiles of synthetic
RGBA-outline images ($HCMEASURE_CELLS_ROOT layout), tiled evaluation of the whole
validation image with the "cells" evaluator (outline Dice/IoU, weighted recall)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_cells_unet_trains_on_tiles_and_evaluates(tmp_path):
    from hcmeasure.studies.cells.data import write_synthetic_cells

    write_synthetic_cells(tmp_path / "cells" / "train", n=2, size=(120, 160), seed=0)
    write_synthetic_cells(tmp_path / "cells" / "val", n=1, size=(120, 160), seed=1)
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HCMEASURE_CELLS_ROOT=str(tmp_path / "cells"))
    cmd = ["nice", "-n", "19", sys.executable, str(REPO / "tools" / "train_net.py"), "--config-file",
           str(REPO / "tests/configs/Cells/unet_tiled_tiny_test.yaml"), "OUTPUT_DIR", str(out), "SOLVER.MAX_ITER", "3"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = proc.stdout + proc.stderr
    assert "copypaste: Task: cells" in log
    metrics = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines() if line.strip()]
    final = {k: v for m in metrics for k, v in m.items()}
    for key in ("cells/dice", "cells/iou", "cells/weighted_recall", "cells/recall_outline"):
        assert 0.0 <= final[key] <= 1.0, key
    assert (out / "model_final.pth").is_file()
