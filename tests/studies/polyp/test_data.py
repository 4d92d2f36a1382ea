"""Polyp datasets: loaders on each real layout (synthetic copies and the shared subsets),
mask decoding (binary JPEG masks, NeoPolyp RGB masks with JPEG noise), registration,
and the NeoPolyp augmentations."""
import io
import shutil

import numpy as np
import pytest
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog

from hcmeasure.studies.polyp import data as polyp
from hcmeasure.studies.polyp.data import (
    PolypDataError,
    decode_binary_threshold,
    decode_neopolyp_rgb,
    load_cvc_colondb,
    load_kvasir_seg,
    load_neopolyp,
    load_pranet,
    neopolyp_rgb_to_classes,
    split_of,
    write_synthetic_polyp_dataset,
)
from hcmeasure.semseg.data import decode_label


def _jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


# ------------------------------------------------------------------ decoding


def test_neopolyp_decoder_on_exact_and_noisy_colours():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 0]],
                    [[200, 40, 30], [45, 230, 60], [100, 20, 10]],       # JPEG-noisy red / green; dim red
                    [[140, 140, 0], [250, 250, 250], [20, 30, 200]]],    # tie, white, blue
                   np.uint8)
    assert neopolyp_rgb_to_classes(rgb).tolist() == [[1, 2, 0], [1, 2, 0], [0, 0, 0]]


def test_neopolyp_decoder_survives_jpeg_compression():
    truth = np.zeros((64, 96), np.uint8)
    truth[8:40, 10:50] = 1
    truth[20:60, 55:90] = 2
    colours = np.array(polyp.NEOPOLYP_COLORS, np.uint8)
    noisy = _jpeg_roundtrip(colours[truth], quality=60)
    assert not np.array_equal(noisy, colours[truth])  # JPEG really changed the colours
    decoded = neopolyp_rgb_to_classes(noisy)
    assert (decoded == truth).mean() > 0.99
    # Away from the edges every pixel is exact.
    assert (decoded[12:36, 14:46] == 1).all() and (decoded[24:56, 59:86] == 2).all()
    assert (decoded[:4] == 0).all()


def test_binary_decoder_thresholds_grey_jpeg_masks(tmp_path):
    truth = np.zeros((40, 50), np.uint8)
    truth[10:30, 15:40] = 1
    path = tmp_path / "m.jpg"
    Image.fromarray(np.repeat(truth[..., None] * 255, 3, axis=2)).save(path, quality=70)
    decoded = decode_binary_threshold(str(path))
    assert decoded.dtype == np.uint8 and set(np.unique(decoded)) <= {0, 1}
    assert (decoded == truth).mean() > 0.99
    assert np.array_equal(decode_label(str(path), "binary_threshold"), decoded)


# --------------------------------------------------------- synthetic layouts


def test_kvasir_layout_and_hash_split(tmp_path):
    root = write_synthetic_polyp_dataset(tmp_path / "kvasir", "kvasir", n=12)
    everything = load_kvasir_seg(root, "all")
    assert len(everything) == 12
    d = everything[0]
    assert d["sem_seg_decoder"] == "binary_threshold"
    assert Image.open(d["file_name"]).size == Image.open(d["sem_seg_file_name"]).size
    assert set(np.unique(decode_label(d["sem_seg_file_name"], "binary_threshold"))) == {0, 1}
    parts = {}
    for s in ("train", "val", "test"):
        try:
            parts[s] = {x["image_id"] for x in load_kvasir_seg(root, s)}
        except PolypDataError as exc:  # a split can be empty on 12 images
            assert "empty" in str(exc)
            parts[s] = set()
    assert set().union(*parts.values()) == {x["image_id"] for x in everything}
    assert sum(len(v) for v in parts.values()) == 12
    for s, ids in parts.items():
        assert all(split_of(i) == s for i in ids)


def test_kvasir_pranet_lists(tmp_path):
    root = write_synthetic_polyp_dataset(tmp_path / "kvasir", "kvasir", n=5)
    ids = sorted(p.stem for p in (root / "images").iterdir())
    with pytest.raises(PolypDataError, match="pranet_test.txt"):
        load_kvasir_seg(root, "pranet_test")
    (root / "pranet_test.txt").write_text("\n".join(ids[:2]) + "\n")
    assert [d["image_id"] for d in load_kvasir_seg(root, "pranet_test")] == ids[:2]
    # Without pranet_train.txt, training is every other image ...
    assert [d["image_id"] for d in load_kvasir_seg(root, "pranet_train")] == ids[2:]
    # ... with it, exactly the listed ids.
    (root / "pranet_train.txt").write_text(ids[4] + "\n")
    assert [d["image_id"] for d in load_kvasir_seg(root, "pranet_train")] == ids[4:]


def test_cvc_colondb_original_tiff_layout(tmp_path):
    root = write_synthetic_polyp_dataset(tmp_path / "cvc", "cvc_colondb", n=4)
    names = sorted(p.name for p in (root / "CVC-ColonDB").iterdir())
    assert "11.tif" in names and "1.tiff" in names and "cp1.tiff" in names
    dicts = load_cvc_colondb(root, "all")
    assert [d["image_id"] for d in dicts] == [1, 11, 21, 31]
    assert dicts[1]["file_name"].endswith("11.tif")
    assert dicts[1]["sem_seg_file_name"].endswith("p11.tiff")
    # The folder itself is accepted as root too.
    assert len(load_cvc_colondb(root / "CVC-ColonDB", "all")) == 4
    mask = decode_label(dicts[0]["sem_seg_file_name"], "binary_threshold")
    assert mask.shape == (48, 64) and set(np.unique(mask)) == {0, 1}


def test_pranet_layout(tmp_path):
    root = write_synthetic_polyp_dataset(tmp_path / "pranet", "pranet", n=3)
    assert len(load_pranet(root, "train")) == 3
    for folder in polyp.PRANET_TEST_SETS:
        dicts = load_pranet(root, folder)
        assert len(dicts) == 3 and dicts[0]["file_name"].endswith(".png")
    with pytest.raises(PolypDataError, match="Nowhere"):
        load_pranet(root, "Nowhere")


def test_neopolyp_layout_with_and_without_kaggle_nesting(tmp_path):
    root = write_synthetic_polyp_dataset(tmp_path / "neo", "neopolyp", n=6)
    dicts = load_neopolyp(root, "trainval")
    assert len(dicts) == 6 and dicts[0]["sem_seg_decoder"] == "neopolyp_rgb"
    labels = np.concatenate([decode_neopolyp_rgb(d["sem_seg_file_name"]).ravel() for d in dicts])
    assert set(np.unique(labels)) == {0, 1, 2}
    test = load_neopolyp(root, "test")
    assert len(test) == 3 and "sem_seg_file_name" not in test[0]
    nested = tmp_path / "kaggle"
    for part in ("train", "train_gt", "test"):
        shutil.copytree(root / part, nested / part / part)
    assert len(load_neopolyp(nested, "trainval")) == 6
    assert len(load_neopolyp(nested, "test")) == 3


def test_registered_datasets_read_env_roots(tmp_path, monkeypatch):
    root = write_synthetic_polyp_dataset(tmp_path / "kvasir", "kvasir", n=4)
    monkeypatch.setenv(polyp.ENV_KVASIR, str(root))
    assert len(DatasetCatalog.get("kvasir_seg_all")) == 4
    meta = MetadataCatalog.get("kvasir_seg_all")
    assert meta.stuff_classes == ["background", "polyp"]
    assert meta.ignore_label == 255 and meta.evaluator_type == "medseg"
    assert meta.label_decoder == "binary_threshold" and meta.is_semantic
    neo = MetadataCatalog.get("neopolyp_train")
    assert neo.stuff_classes == ["background", "neoplastic", "non-neoplastic"]
    assert neo.stuff_colors == [[0, 0, 0], [255, 0, 0], [0, 255, 0]]


def test_registration_survives_absent_data(tmp_path, monkeypatch):
    monkeypatch.setenv(polyp.ENV_NEOPOLYP, str(tmp_path / "nothing"))
    polyp.register_polyp_datasets()  # nothing is read on registration
    for name in polyp.DATASETS:
        assert name in DatasetCatalog.list()
    with pytest.raises(PolypDataError, match=polyp.ENV_NEOPOLYP):
        DatasetCatalog.get("neopolyp_train")


# -------------------------------------------------------------- real subsets


@pytest.mark.shared
def test_real_kvasir_seg(kvasir_root):
    dicts = load_kvasir_seg(kvasir_root, "all")
    assert len(dicts) == 200
    assert len(load_kvasir_seg(kvasir_root, "pranet_test")) == 100
    assert len(load_kvasir_seg(kvasir_root, "pranet_train")) == 100
    sizes = sum(len(load_kvasir_seg(kvasir_root, s)) for s in ("train", "val", "test"))
    assert sizes == 200
    for d in dicts[:3]:
        mask = decode_label(d["sem_seg_file_name"], "binary_threshold")
        assert mask.shape == Image.open(d["file_name"]).size[::-1]
        assert set(np.unique(mask)) == {0, 1}
        assert 0.005 < mask.mean() < 0.65  # README: polyps cover 0.7 % to 62 %


@pytest.mark.shared
def test_real_cvc_colondb(cvc_colondb_root):
    dicts = load_cvc_colondb(cvc_colondb_root, "all")
    assert len(dicts) == 15
    by_id = {d["image_id"]: d for d in dicts}
    assert by_id[87]["file_name"].endswith("87.tif")  # the extension oddity
    for d in (by_id[87], by_id[310]):
        mask = decode_label(d["sem_seg_file_name"], "binary_threshold")
        assert mask.shape == (500, 574)
        assert Image.open(d["file_name"]).size == (574, 500)
    assert decode_label(by_id[310]["sem_seg_file_name"], "binary_threshold").mean() > 0.5  # 63 %


@pytest.mark.shared
def test_real_neopolyp_masks_match_readme_counts(neopolyp_root):
    dicts = load_neopolyp(neopolyp_root, "trainval")
    assert len(dicts) == 50
    assert len(load_neopolyp(neopolyp_root, "test")) == 10
    red = green = both = 0
    for d in dicts:
        lab = decode_neopolyp_rgb(d["sem_seg_file_name"])
        assert lab.shape == Image.open(d["file_name"]).size[::-1]
        has_r, has_g = bool((lab == 1).any()), bool((lab == 2).any())
        red += has_r
        green += has_g
        both += has_r and has_g
    # README: 37 masks contain red pixels, 15 green, 2 both.
    assert (red, green, both) == (37, 15, 2)


# ------------------------------------------------------------- augmentations


def _neopolyp_aug_cfg(**probs):
    from detectron2.config import get_cfg

    from hcmeasure.config import add_hcmeasure_config

    cfg = get_cfg()
    add_hcmeasure_config(cfg)
    cfg.merge_from_file("tests/configs/NeoPolyp/unet_R_34_tiny_test.yaml")
    for k, v in probs.items():
        setattr(cfg.HCMEASURE.SEMSEG, k, v)
    return cfg


@pytest.fixture
def repo_cwd(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)


def test_geometric_augmentations_move_image_and_mask_together(repo_cwd):
    from detectron2.data import transforms as T

    from hcmeasure.semseg.data import build_semantic_augmentations

    cfg = _neopolyp_aug_cfg(ROT90_PROB=1.0, GAMMA_PROB=0.0, RGB_SHIFT_PROB=0.0)
    cfg.HCMEASURE.SEMSEG.FIXED_SIZE = (40, 40)
    augs = T.AugmentationList(build_semantic_augmentations(cfg, is_train=True))
    rng = np.random.default_rng(0)
    label = rng.integers(0, 3, (40, 40)).astype(np.uint8)
    image = np.stack([label * 100, label * 50, 255 - label * 100], axis=2).astype(np.uint8)
    np.random.seed(0)
    seen = set()
    for _ in range(12):
        aug = T.AugInput(image.copy(), sem_seg=label.copy())
        tfms = augs(aug)
        assert np.array_equal(aug.image[..., 0], aug.sem_seg.astype(np.uint8) * 100)
        seen.add(aug.sem_seg.tobytes())
        # The inverse brings the label back exactly.
        assert np.array_equal(tfms.inverse().apply_segmentation(aug.sem_seg), label)
    assert len(seen) > 3


def test_photometric_augmentations_leave_the_mask_alone():
    from detectron2.data import transforms as T

    from hcmeasure.semseg.data import RandomGamma, RandomRGBShift

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)
    label = rng.integers(0, 3, (16, 16)).astype(np.uint8)
    np.random.seed(3)
    for aug_cls, kwargs in ((RandomGamma, {"low": 0.7, "high": 1.2}), (RandomRGBShift, {"limit": 10})):
        aug = T.AugInput(image.copy(), sem_seg=label.copy())
        T.AugmentationList([aug_cls(**kwargs)])(aug)
        assert np.array_equal(aug.sem_seg, label)
        assert aug.image.dtype == np.uint8 and not np.array_equal(aug.image, image)
    shifted = T.AugInput(image.copy())
    RandomRGBShift(10)(shifted)
    diff = shifted.image.astype(int) - image.astype(int)
    assert np.abs(diff).max() <= 10
    # One offset per channel (where nothing was clipped).
    for c in range(3):
        inner = (image[..., c] > 20) & (image[..., c] < 235)
        assert len(np.unique(diff[..., c][inner])) == 1
    gamma = T.AugInput(np.full((2, 2, 3), 128, np.uint8))
    np.random.seed(0)
    RandomGamma(0.5, 0.5)(gamma)
    assert gamma.image[0, 0, 0] == round(255 * (128 / 255) ** 0.5)


@pytest.mark.shared
def test_mapper_on_a_real_neopolyp_pair(repo_cwd, neopolyp_root):
    from hcmeasure.semseg.data import SemanticDatasetMapper

    cfg = _neopolyp_aug_cfg()
    d = load_neopolyp(neopolyp_root, "trainval")[0]
    np.random.seed(0)
    out = SemanticDatasetMapper(cfg, is_train=True)(d)
    assert tuple(out["image"].shape) == (3, 64, 64)
    assert tuple(out["sem_seg"].shape) == (64, 64)
    assert set(out["sem_seg"].unique().tolist()) <= {0, 1, 2}
    test_out = SemanticDatasetMapper(cfg, is_train=False)(d)
    assert "sem_seg" not in test_out and (test_out["height"], test_out["width"]) == Image.open(
        d["file_name"]).size[::-1]
