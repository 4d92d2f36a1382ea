"""Fixtures of the predict tests that run the command in this process."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "configs" / "HC18" / "mask_rcnn_effnet_lite0_FPN_tiny_test.yaml"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """``(model_final.pth, config.yaml)`` of a randomly initialised tiny HeadRCNN."""
    from detectron2.modeling import build_model

    from hcmeasure.predictor import load_config

    d = tmp_path_factory.mktemp("tiny_checkpoint")
    cfg = load_config(TINY, device="cpu")
    torch.save({"model": build_model(cfg).state_dict(), "iteration": 0}, d / "model_final.pth")
    (d / "config.yaml").write_text(cfg.dump())
    return d / "model_final.pth", d / "config.yaml"


@pytest.fixture
def measured_sizes(monkeypatch):
    """Every image gets the same known head; returns the ``(height, width)`` of each image
    the model was given, in order (so a test can tell which scans were measured)."""
    from hcmeasure.measurement.ellipse import Ellipse
    from hcmeasure.measurement.head import HeadMeasurement
    from hcmeasure.predictor import HeadPredictor

    sizes = []

    def measure(self, inputs):
        sizes.extend((x["height"], x["width"]) for x in inputs)
        return [HeadMeasurement(Ellipse(120.0, 90.0, 80.0, 60.0, 0.3), 0.99, 0.97, "ok") for _ in inputs]

    monkeypatch.setattr(HeadPredictor, "measure", measure)
    return sizes


def write_scan(path: Path, height: int, width: int = 320) -> None:
    """A noise scan of ``height`` x ``width`` pixels (distinct heights tell the scans apart)."""
    rng = np.random.default_rng(height)
    Image.fromarray(rng.integers(0, 255, size=(height, width), dtype=np.uint8)).save(path)


@pytest.fixture
def scan_writer():
    return write_scan
