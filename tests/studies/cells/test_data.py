"""RGBA outline targets: channel decoding, widening, filled regions, signed distance;
tiled dataset dicts and the mapper's tile crops."""
import numpy as np
import pytest
from PIL import Image

from hcmeasure.studies.cells.data import (
    decode_rgba_outline, fill_outlines, load_cells, outline_mask, outline_target, signed_distance_map,
    synthetic_cells, widen_outline, write_synthetic_cells)
from hcmeasure.semseg.data import decode_label


def square_annotation(size=12, lo=3, hi=8, color=(255, 0, 0, 255)):
    """Transparent RGBA with a 1-px square outline from (lo, lo) to (hi, hi)."""
    a = np.zeros((size, size, 4), np.uint8)
    a[lo, lo:hi + 1] = a[hi, lo:hi + 1] = color
    a[lo:hi + 1, lo] = a[lo:hi + 1, hi] = color
    return a


def expected_outline(size=12, lo=3, hi=8):
    m = np.zeros((size, size), bool)
    m[lo, lo:hi + 1] = m[hi, lo:hi + 1] = m[lo:hi + 1, lo] = m[lo:hi + 1, hi] = True
    return m


def test_alpha_and_red_channels():
    a = square_annotation()
    assert np.array_equal(outline_mask(a, "alpha"), expected_outline())
    assert np.array_equal(outline_mask(a, "red"), expected_outline())
    # an opaque white background is not outline in the red channel; semi-transparent junk
    # below the threshold is not outline in the alpha channel
    b = a.copy()
    b[a[..., 3] == 0] = (255, 255, 255, 255)
    assert np.array_equal(outline_mask(b, "red"), expected_outline())
    c = a.copy()
    c[0, 0] = (255, 0, 0, 40)
    assert np.array_equal(outline_mask(c, "alpha"), expected_outline())
    with pytest.raises(ValueError, match="RGBA"):
        outline_mask(a[..., :3], "alpha")
    assert np.array_equal(outline_mask(expected_outline().astype(np.uint8) * 255), expected_outline())


def test_widening():
    thin = expected_outline()
    assert np.array_equal(widen_outline(thin, "none"), thin)
    d = widen_outline(thin, "dilate", 1)
    assert d[2, 3] and d[4, 4] and not d[5, 5] and not d[0, 0]  # one pixel each side
    assert d.sum() > thin.sum() and (d | thin).sum() == d.sum()
    b = widen_outline(thin, "blur", 1.0)
    assert (b & thin).sum() == thin.sum() and b.sum() > thin.sum() and not b[0, 0] and not b[5, 5]


def test_filled_and_three_class_targets_and_sdm():
    a = square_annotation()
    filled = outline_target(a, target="filled")
    want = np.zeros((12, 12), np.uint8)
    want[3:9, 3:9] = 1
    assert np.array_equal(filled, want)
    three = outline_target(a, target="outline_filled")
    assert np.array_equal(three == 1, expected_outline()) and (three == 2).sum() == 16
    assert np.array_equal(fill_outlines(expected_outline()), want.astype(bool))
    sdm = signed_distance_map(expected_outline())
    assert sdm[3, 5] == 0 and sdm[5, 5] == -2 and sdm[4, 4] == -1 and sdm[0, 3] == 3
    assert sdm[1, 1] == pytest.approx(np.hypot(2, 2))


def test_decoder_reads_rgba_png_and_options(tmp_path):
    p = tmp_path / "m.png"
    Image.fromarray(square_annotation(), mode="RGBA").save(p)
    assert np.array_equal(decode_rgba_outline(str(p)), expected_outline().astype(np.uint8))
    wide = decode_label(str(p), "rgba_outline", widen="dilate", radius=1)
    assert wide.sum() > expected_outline().sum()
    # an RGB drawing needs the red channel
    q = tmp_path / "rgb.png"
    Image.fromarray(square_annotation()[..., :3]).save(q)
    assert np.array_equal(decode_label(str(q), "rgba_outline", channel="red"), expected_outline().astype(np.uint8))


def test_tiled_dicts_and_mapper_crops(tmp_path):
    import torch
    from detectron2.config import get_cfg

    from hcmeasure.config import add_hcmeasure_config
    from hcmeasure.semseg.data import SemanticDatasetMapper

    root = write_synthetic_cells(tmp_path, n=1, size=(70, 90))
    dicts = load_cells(root / "images", root / "masks", tile=40, overlap=10)
    assert [d["tile"] for d in dicts][:3] == [(0, 0, 40, 40), (0, 30, 40, 40), (0, 50, 40, 40)]
    assert len(dicts) == 2 * 3  # rows start at 0, 30 (70 px); columns at 0, 30, 50 (90 px)
    cfg = add_hcmeasure_config(get_cfg())
    cfg.merge_from_file("tests/configs/Cells/unet_tiled_tiny_test.yaml")
    cfg.HCMEASURE.SEMSEG.HFLIP = cfg.HCMEASURE.SEMSEG.VFLIP = False
    cfg.HCMEASURE.SEMSEG.ROT90_PROB = 0.0
    mapper = SemanticDatasetMapper(cfg, is_train=True)
    out = mapper(dicts[4])
    y, x, h, w = dicts[4]["tile"]
    full = outline_target(np.asarray(Image.open(root / "masks" / "cell0.png")), widen="dilate", radius=1.0)
    assert out["image"].shape == (3, 40, 40)
    assert torch.equal(out["sem_seg"], torch.as_tensor(full[y:y + h, x:x + w].astype(np.int64)))
    img = np.asarray(Image.open(root / "images" / "cell0.png"))
    assert torch.equal(out["image"], torch.as_tensor(img[y:y + h, x:x + w].transpose(2, 0, 1).copy()))
    # random tile of the config grid (48 px, overlap 16) for whole-image dicts marked "tiled"
    whole = load_cells(root / "images", root / "masks", tiled=True)[0]
    out = mapper(whole)
    assert out["image"].shape == (3, 48, 48) and out["sem_seg"].shape == (48, 48)
    # the test mapper keeps whole images at native size (no resize)
    test = SemanticDatasetMapper(cfg, is_train=False)(load_cells(root / "images", root / "masks")[0])
    assert test["image"].shape == (3, 70, 90)


def test_synthetic_outlines_are_rare():
    img, ann = synthetic_cells(np.random.default_rng(0), 96, 128)
    frac = outline_mask(ann).mean()
    assert img.shape == (96, 128, 3) and 0.01 < frac < 0.1  # thin outlines: a few percent


def test_the_outline_decoder_declares_its_options_from_the_config():
    from detectron2.config import get_cfg
    from detectron2.utils.registry import Registry

    from hcmeasure.config import add_hcmeasure_config
    from hcmeasure.semseg.data import LABEL_DECODER_REGISTRY, label_options_from_cfg

    assert isinstance(LABEL_DECODER_REGISTRY, Registry)
    assert LABEL_DECODER_REGISTRY.get("rgba_outline") is decode_rgba_outline
    cfg = add_hcmeasure_config(get_cfg())
    cfg.HCMEASURE.CELLS.CHANNEL, cfg.HCMEASURE.CELLS.WIDEN = "red", "dilate"
    options = label_options_from_cfg(cfg)
    assert options["rgba_outline"] == {"channel": "red", "threshold": 127, "widen": "dilate", "radius": 1.0,
                                       "target": "outline"}
    assert set(options) == {"rgba_outline"}  # the other decoders take no options
