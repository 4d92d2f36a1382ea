"""Fixtures for the scripts in tools/ (they are scripts, not modules of the package)."""
import csv
import shutil
import socket
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"


@pytest.fixture(scope="session")
def load_tool(load_script):
    """``load_tool("publish_model")`` -> tools/publish_model.py imported as a module."""
    return lambda name: load_script(TOOLS / f"{name}.py", f"hcmeasure_tool_{name}")


@pytest.fixture(scope="session")
def make_tiny_hc18(hc18_root):
    """``make_tiny_hc18(root, n_train, n_val)`` -> ``root`` holding a real HC18 layout:
    the first ``n_train`` / ``n_val`` training images on each side of the train/val split
    (with their annotations and CSV rows) and the first two test images with theirs."""
    from hcmeasure.data.hc18 import split_of

    def make(root: Path, n_train: int, n_val: int) -> Path:
        (root / "training_set").mkdir(parents=True)
        (root / "test_set").mkdir()
        with open(hc18_root / "training_set_pixel_size_and_HC.csv", newline="") as f:
            rows = list(csv.reader(f))
        picked = {"train": [], "val": []}
        wanted = {"train": n_train, "val": n_val}
        for row in rows[1:]:
            side = split_of(row[0])
            if len(picked[side]) < wanted[side]:
                picked[side].append(row)
        chosen = picked["train"] + picked["val"]
        for row in chosen:
            stem = row[0][: -len(".png")]
            for name in (f"{stem}.png", f"{stem}_Annotation.png"):
                shutil.copy(hc18_root / "training_set" / name, root / "training_set" / name)
        with open(root / "training_set_pixel_size_and_HC.csv", "w", newline="") as f:
            csv.writer(f, lineterminator="\r\n").writerows([rows[0]] + chosen)
        with open(hc18_root / "test_set_pixel_size.csv", newline="") as f:
            test_rows = list(csv.reader(f))[:3]
        for row in test_rows[1:]:
            shutil.copy(hc18_root / "test_set" / row[0], root / "test_set" / row[0])
        with open(root / "test_set_pixel_size.csv", "w", newline="") as f:
            csv.writer(f, lineterminator="\r\n").writerows(test_rows)
        return root

    return make


@pytest.fixture(scope="session")
def new_dist_url():
    """``new_dist_url()`` -> ``tcp://127.0.0.1:PORT`` on a port free now (``--dist-url``
    of a 2-process test)."""

    def make() -> str:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return f"tcp://127.0.0.1:{s.getsockname()[1]}"

    return make
