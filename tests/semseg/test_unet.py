"""The one U-Net: tiled inference is a config option of every ``UNet`` config, and
``PlainUNet`` (the cell study's name) builds the same network with the same parameter names."""
import pytest
import torch

from detectron2.config import get_cfg
from detectron2.modeling import META_ARCH_REGISTRY, build_model

from hcmeasure.config import add_hcmeasure_config
from hcmeasure.semseg.parts import PlainUNetEncoder
from hcmeasure.semseg.unet import UNet


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _build(config, opts=()):
    cfg = add_hcmeasure_config(get_cfg())
    cfg.merge_from_file(config)
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", *opts])
    torch.manual_seed(0)
    return cfg, build_model(cfg).eval()


def test_a_polyp_unet_tiles_large_images_when_the_config_asks():
    config = "tests/configs/Polyp/unet_tiny_test.yaml"
    _, whole = _build(config)
    assert type(whole) is UNet and whole.test_tile == 0
    _, tiled = _build(config, ["HCMEASURE.TILE.TEST_SIZE", 32, "HCMEASURE.TILE.TEST_OVERLAP", 8,
                               "HCMEASURE.TILE.TEST_BATCH", 2])
    tiled.load_state_dict(whole.state_dict())
    calls = []
    inner = tiled.net.forward
    tiled.net.forward = lambda x: calls.append(tuple(x.shape)) or inner(x)
    image = torch.randint(0, 255, (3, 40, 70)).float()
    with torch.no_grad():
        scores = tiled([{"image": image, "height": 80, "width": 140}])[0]["sem_seg"]
        reference = whole([{"image": image, "height": 80, "width": 140}])[0]["sem_seg"]
    assert scores.shape == reference.shape == (2, 80, 140)
    # 2 x 3 tiles of 32 px, two per pass
    assert [s[0] for s in calls] == [2, 2, 2] and all(s[-2:] == (32, 32) for s in calls)
    # an image no larger than a tile runs whole, exactly as without tiling
    small = image[:, :32, :30]
    with torch.no_grad():
        torch.testing.assert_close(tiled([{"image": small}])[0]["sem_seg"], whole([{"image": small}])[0]["sem_seg"])


def test_plain_unet_is_the_unet_under_the_cell_study_name():
    cfg, plain = _build("tests/configs/Cells/unet_tiled_tiny_test.yaml")
    assert isinstance(plain, UNet) and META_ARCH_REGISTRY.get("PlainUNet") is not UNet
    same = UNet(encoder=PlainUNetEncoder(channels=[8, 16, 32]), num_classes=2, criterion=plain.criterion,
                pixel_mean=cfg.MODEL.PIXEL_MEAN, pixel_std=cfg.MODEL.PIXEL_STD, test_tile=48, test_overlap=16,
                tile_merge="max", tile_batch=4).eval()
    assert {k: v.shape for k, v in plain.state_dict().items()} == {k: v.shape for k, v in same.state_dict().items()}
    same.load_state_dict(plain.state_dict(), strict=True)
    image = torch.randint(0, 255, (3, 60, 90)).float()
    with torch.no_grad():
        torch.testing.assert_close(same([{"image": image}])[0]["sem_seg"], plain([{"image": image}])[0]["sem_seg"])
