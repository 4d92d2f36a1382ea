"""Head crops: the box, the crop and the target share one geometry, so a mask fitted on
the crop grid lands back on the ellipse it came from."""
import math

import numpy as np
import pytest
import torch

from hcmeasure.data.head_crops import (
    HeadCropDatasetMapper,
    crop_image,
    ellipse_box,
    ellipse_cells,
    head_crop_box,
    rotate_about_centre,
)
from hcmeasure.measurement.ellipse import Ellipse, ellipse_mask
from hcmeasure.measurement.head import measure_head_from_mask_probs


def test_the_crop_box_grows_by_the_context_on_each_side():
    assert head_crop_box((10, 20, 110, 70), 0.1) == pytest.approx((0, 15, 120, 75))


def test_the_ellipse_box_is_tight_in_continuous_coordinates():
    e = Ellipse(100.0, 80.0, 40.0, 20.0, 0.0)
    assert ellipse_box(e) == pytest.approx((60.5, 60.5, 140.5, 100.5))
    rotated = Ellipse(100.0, 80.0, 40.0, 20.0, math.pi / 2)
    assert ellipse_box(rotated) == pytest.approx((80.5, 40.5, 120.5, 120.5))


def test_a_crop_of_the_whole_image_at_its_own_size_is_the_image():
    img = torch.arange(12 * 16, dtype=torch.float32).reshape(12, 16)
    crop = crop_image(img, (0, 0, 16, 12), 16)
    assert crop.shape == (1, 16, 16)
    # rows are resampled 12 -> 16, columns kept: column means match the image's
    assert torch.allclose(crop[0].mean(0), img.mean(0), atol=1e-3)


def test_cells_outside_the_image_read_black():
    img = torch.full((20, 20), 200.0)
    crop = crop_image(img, (-20, 0, 20, 20), 8)[0]
    assert torch.all(crop[:, :3] == 0) and torch.all(crop[:, 5:] == 200)


def test_downscaling_averages_each_cell():
    img = torch.zeros(8, 8)
    img[:, ::2] = 100.0  # stripes one pixel wide
    crop = crop_image(img, (0, 0, 8, 8), 4)[0]
    assert torch.allclose(crop, torch.full((4, 4), 50.0))


def test_the_crop_equals_torchvisions_roi_align_for_any_box():
    from torchvision.ops import roi_align

    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(3, 90, 2))
        img = torch.from_numpy(rng.integers(0, 256, (h, w), dtype=np.uint8))
        x0, y0 = rng.uniform(-0.5 * w, 0.9 * w), rng.uniform(-0.5 * h, 0.9 * h)
        box = (x0, y0, x0 + rng.uniform(0.2, 1.3 * w), y0 + rng.uniform(0.2, 1.3 * h))
        size = int(rng.choice([1, 4, 7, 32]))
        expected = roi_align(img[None, None].float(), torch.tensor([[0.0, *box]], dtype=torch.float32),
                             output_size=(size, size), spatial_scale=1.0, sampling_ratio=0, aligned=True)[0]
        torch.testing.assert_close(crop_image(img, box, size), expected, atol=1e-3, rtol=0)


def test_a_crop_keeps_the_channels():
    img = torch.stack([torch.full((10, 12), 10.0), torch.full((10, 12), 20.0), torch.full((10, 12), 30.0)])
    crop = crop_image(img, (2, 2, 8, 8), 5)
    assert crop.shape == (3, 5, 5)
    assert crop[:, 2, 2].tolist() == [10.0, 20.0, 30.0]


@pytest.mark.parametrize("angle", [0.0, 0.6, 2.0])
def test_the_target_cells_measure_back_to_the_ellipse(angle):
    e = Ellipse(300.2, 210.7, 150.0, 110.0, angle)
    box = head_crop_box(ellipse_box(e), 0.1)
    cells = ellipse_cells(e, box, 128)
    head = measure_head_from_mask_probs(cells.astype(np.float32), box, (540, 800))
    assert head.status == "ok"
    # 128 cells over ~360 px: a cell is ~2.8 px, the contour fit is sub-cell
    assert head.ellipse.perimeter() == pytest.approx(e.perimeter(), rel=2e-3)
    assert (head.ellipse.cx, head.ellipse.cy) == pytest.approx((e.cx, e.cy), abs=0.5)


def test_the_mapper_crops_a_drawn_head_where_its_target_is(tmp_path):
    from PIL import Image

    e = Ellipse(400.0, 270.0, 160.0, 120.0, 0.3)
    img = np.where(ellipse_mask(e, (540, 800)), 180, 20).astype(np.uint8)
    path = tmp_path / "scan.png"
    Image.fromarray(img).save(path)
    mapper = HeadCropDatasetMapper(False, size=96, context=0.1)
    out = mapper({"file_name": str(path), "ellipse": vars(e), "annotations": []})
    assert out["image"].shape == (3, 96, 96) and out["sem_seg"].shape == (96, 96)
    bright = out["image"][0] > 100
    agree = (bright == out["sem_seg"].bool()).float().mean().item()
    assert agree > 0.98
    assert "annotations" not in out


def test_training_jitter_moves_the_box_but_keeps_the_head_in_view(tmp_path):
    from PIL import Image

    e = Ellipse(400.0, 270.0, 160.0, 120.0, 0.3)
    path = tmp_path / "scan.png"
    Image.fromarray(np.where(ellipse_mask(e, (540, 800)), 180, 20).astype(np.uint8)).save(path)
    mapper = HeadCropDatasetMapper(True, size=64, context=0.1, jitter=0.05)
    np.random.seed(0)
    boxes = [mapper({"file_name": str(path), "ellipse": vars(e)})["crop_box"] for _ in range(5)]
    assert len({tuple(round(v, 3) for v in b) for b in boxes}) == 5
    tight = head_crop_box(ellipse_box(e), 0.1)
    for b in boxes:
        assert np.max(np.abs(np.asarray(b) - np.asarray(tight))) <= 0.05 * 1.2 * 2 * 160 + 1e-6


@pytest.mark.parametrize("degrees", [25.0, -70.0])
def test_a_rotated_scan_and_its_rotated_ellipse_still_coincide(degrees):
    e = Ellipse(400.0, 270.0, 160.0, 120.0, 0.3)
    scan = np.where(ellipse_mask(e, (540, 800)), 200, 0).astype(np.uint8)
    rotated, r = rotate_about_centre(scan, e, degrees)
    assert (r.cx, r.cy, r.a, r.b) == pytest.approx((e.cx, e.cy, e.a, e.b))
    # Positive degrees turn the head counter-clockwise on screen: its angle (from +x
    # towards +y, y pointing down) decreases.
    assert math.cos(2 * (r.angle - (e.angle - math.radians(degrees)))) == pytest.approx(1.0)
    drawn, expected = rotated > 100, ellipse_mask(r, (540, 800))
    assert (drawn & expected).sum() / (drawn | expected).sum() > 0.99
    unrotated = ellipse_mask(e, (540, 800))
    assert (drawn & unrotated).sum() / (drawn | unrotated).sum() < 0.9


def test_training_rotation_turns_the_crop_and_its_target_together(tmp_path):
    from PIL import Image

    e = Ellipse(400.0, 270.0, 160.0, 100.0, 0.0)
    path = tmp_path / "scan.png"
    Image.fromarray(np.where(ellipse_mask(e, (540, 800)), 180, 20).astype(np.uint8)).save(path)
    mapper = HeadCropDatasetMapper(True, size=96, context=0.1, rotation=45.0)
    np.random.seed(0)
    targets = []
    for _ in range(4):
        out = mapper({"file_name": str(path), "ellipse": vars(e)})
        bright = out["image"][0] > 100
        assert (bright == out["sem_seg"].bool()).float().mean().item() > 0.97
        targets.append(out["sem_seg"])
    assert any(not torch.equal(targets[0], t) for t in targets[1:])


def test_rotation_comes_from_the_config_for_training_only():
    from detectron2.config import get_cfg

    from hcmeasure.config import add_hcmeasure_config

    cfg = get_cfg()
    add_hcmeasure_config(cfg)
    cfg.HCMEASURE.HEAD_CROP.TRAIN_ROTATION = 20.0
    assert HeadCropDatasetMapper(cfg, is_train=True).rotation == 20.0
    assert HeadCropDatasetMapper(cfg, is_train=False).rotation == 0.0


def test_a_dict_without_an_ellipse_is_refused_by_name(tmp_path):
    mapper = HeadCropDatasetMapper(False, size=32, context=0.1)
    with pytest.raises(KeyError, match="scan.png"):
        mapper({"file_name": str(tmp_path / "scan.png")})
