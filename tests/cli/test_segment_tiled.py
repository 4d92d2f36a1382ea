"""``hcmeasure segment --tile SIZE --overlap N``: tiled prediction of images larger than
the tile, at native resolution, equal to the tiler applied to the model by hand."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hcmeasure.cli.main import main

REPO = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_segment_tiled_matches_tiler(tmp_path):
    from detectron2.modeling import build_model

    from hcmeasure.studies.cells.data import synthetic_cells
    from hcmeasure.semseg.tiling import tiled_apply
    from hcmeasure.predictor import load_config

    cfg = load_config(REPO / "tests/configs/Cells/unet_tiled_tiny_test.yaml", [], device="cpu")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    torch.save({"model": model.state_dict(), "iteration": 0}, tmp_path / "model_final.pth")
    (tmp_path / "config.yaml").write_text(cfg.dump())
    img, _ = synthetic_cells(np.random.default_rng(1), 90, 110)
    (tmp_path / "in").mkdir()
    Image.fromarray(img).save(tmp_path / "in" / "big.png")

    rc = main(["segment", str(tmp_path / "in"), "--model", str(tmp_path / "model_final.pth"), "--out",
               str(tmp_path / "out"), "--tile", "40", "--overlap", "12", "--no-overlays", "--device", "cpu"])
    assert rc == 0
    mask = np.asarray(Image.open(tmp_path / "out" / "masks" / "big.png"))
    assert mask.shape == (90, 110)

    model.test_tile = 0
    image = torch.as_tensor(img.transpose(2, 0, 1).copy())
    with torch.no_grad():
        scores = tiled_apply(lambda tiles: [o["sem_seg"] for o in model([{"image": t} for t in tiles])],
                             image, size=40, overlap=12, merge="max")
    assert np.array_equal(mask, scores.argmax(0).numpy().astype(np.uint8))

    assert main(["segment", str(tmp_path / "in"), "--model", str(tmp_path / "model_final.pth"), "--out",
                 str(tmp_path / "bad"), "--tile", "40", "--overlap", "40"]) == 2
