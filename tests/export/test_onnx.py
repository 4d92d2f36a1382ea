"""ONNX export: onnxruntime's scores match PyTorch's (max abs diff <= 1e-4) for sizes
that need padding, for the cell U-Net and the polyp U-Net; ``hcmeasure export-onnx``."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[test]')")
pytest.importorskip("onnx", reason="onnx is not installed (pip install -e '.[test]')")

from hcmeasure.export.onnx import export_semantic_onnx, run_onnx  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(config, opts=()):
    from detectron2.modeling import build_model

    from hcmeasure.predictor import load_config

    cfg = load_config(REPO / config, list(opts), device="cpu")
    torch.manual_seed(0)
    model = build_model(cfg)
    # non-trivial BN statistics, so that the export must carry them
    model.train()
    with torch.no_grad():
        model.net(torch.randn(2, 3, 32, 32) * 2 + 0.5)
    return cfg, model.eval()


@pytest.mark.parametrize("config,sizes", [
    ("tests/configs/Cells/unet_tiled_tiny_test.yaml", [(37, 53), (64, 48)]),
    ("tests/configs/Polyp/unet_tiny_test.yaml", [(45, 33)]),
])
def test_onnx_matches_pytorch(tmp_path, config, sizes):
    cfg, model = _model(config, ["HCMEASURE.TILE.TEST_SIZE", "0"])
    path = export_semantic_onnx(model, tmp_path / "m.onnx", height=40, width=40)
    rng = np.random.default_rng(0)
    for h, w in sizes:  # dynamic sizes, not multiples of the padding divisor
        image = rng.integers(0, 256, (3, h, w)).astype(np.float32)
        with torch.no_grad():
            ref = model([{"image": torch.as_tensor(image)}])[0]["sem_seg"].numpy()
        got = run_onnx(path, image)[0]
        assert got.shape == ref.shape == (cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, h, w)
        assert np.abs(got - ref).max() <= 1e-4


def test_export_onnx_cli(tmp_path, capsys):
    from PIL import Image

    from hcmeasure.cli.main import main
    from hcmeasure.studies.cells.data import synthetic_cells

    cfg, model = _model("tests/configs/Cells/unet_tiled_tiny_test.yaml")
    torch.save({"model": model.state_dict(), "iteration": 0}, tmp_path / "model_final.pth")
    (tmp_path / "config.yaml").write_text(cfg.dump())
    img, _ = synthetic_cells(np.random.default_rng(0), 50, 70)
    Image.fromarray(img).save(tmp_path / "x.png")
    rc = main(["export-onnx", "--model", str(tmp_path / "model_final.pth"), "--out", str(tmp_path / "m.onnx"),
               "--height", "48", "--width", "48", "--check", str(tmp_path / "x.png")])
    assert rc == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["max_abs_diff"] <= 1e-4 and (tmp_path / "m.onnx").is_file()
