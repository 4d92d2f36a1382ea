"""PASCAL VOC 2012 registration, read from a tiny synthetic copy in VOC's exact layout.

No VOC copy exists on these machines: ``write_synthetic_voc`` writes genuine palette
PNGs (mode "P", VOC's colour map, 255 rings around objects), which these tests check
independently of hcmeasure with PIL and VOC's published colours.
"""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import detection_utils as utils

import hcmeasure  # noqa: F401  (registers the datasets)
from hcmeasure.config import add_hcmeasure_config
from hcmeasure.semseg.data import SemanticDatasetMapper, decode_label
from hcmeasure.studies.voc.data import (
    DATASET_NAMES,
    ENV_ROOT,
    VOC_CLASSES,
    VOCDataError,
    load_voc_sem_seg,
    voc_colormap,
    write_synthetic_voc,
)
from hcmeasure.evaluation.registry import build_evaluators

REPO = Path(__file__).resolve().parents[3]

# A few entries of VOC's colour map as published with the devkit.
KNOWN_COLOURS = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 12: (64, 0, 128), 15: (192, 128, 128),
                 20: (0, 64, 128), 255: (224, 224, 192)}


@pytest.fixture()
def voc_root(tmp_path, monkeypatch):
    root = write_synthetic_voc(tmp_path / "VOC2012", train=4, val=2, size=(60, 80), seed=1)
    monkeypatch.setenv(ENV_ROOT, str(root))
    return root


def test_colour_map_and_class_names_are_vocs():
    cmap = voc_colormap()
    for index, rgb in KNOWN_COLOURS.items():
        assert tuple(cmap[index]) == rgb
    assert len(VOC_CLASSES) == 21 and VOC_CLASSES[0] == "background" and VOC_CLASSES[15] == "person"


def test_registered_without_data_and_loading_names_the_variable(tmp_path, monkeypatch):
    for name in DATASET_NAMES:
        assert name in DatasetCatalog.list()
        meta = MetadataCatalog.get(name)
        assert meta.evaluator_type == "sem_seg" and meta.ignore_label == 255
        assert meta.label_decoder == "index_png"
        assert meta.stuff_classes == list(VOC_CLASSES)
        assert [tuple(c) for c in meta.stuff_colors][15] == KNOWN_COLOURS[15]
    # Detectron2's own (detection) VOC datasets are left as they were.
    assert MetadataCatalog.get("voc_2012_train").evaluator_type == "pascal_voc"

    monkeypatch.setenv(ENV_ROOT, str(tmp_path / "nowhere"))
    with pytest.raises(VOCDataError, match=ENV_ROOT):
        DatasetCatalog.get("voc_2012_sem_seg_val")


def test_synthetic_labels_are_genuine_voc_palette_pngs(voc_root):
    path = next((voc_root / "SegmentationClass").glob("*.png"))
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "P"
        palette = np.array(im.getpalette()[:256 * 3]).reshape(-1, 3)
        indices = np.array(im)
        rgb = np.array(im.convert("RGB"))
    for index, colour in KNOWN_COLOURS.items():
        assert tuple(palette[index]) == colour
    assert 255 in indices and 0 in indices
    objects = set(np.unique(indices)) - {0, 255}
    assert objects and objects <= set(range(1, 21))
    # Displayed colours are VOC's class colours.
    for c in objects | {255}:
        assert tuple(rgb[indices == c][0]) == KNOWN_COLOURS.get(c, tuple(voc_colormap()[c]))


def test_loader_dicts_follow_the_split_lists(voc_root):
    train = DatasetCatalog.get("voc_2012_sem_seg_train")
    val = DatasetCatalog.get("voc_2012_sem_seg_val")
    trainval = DatasetCatalog.get("voc_2012_sem_seg_trainval")
    assert len(train) == 4 and len(val) == 2 and len(trainval) == 6
    ids = (voc_root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    assert [d["image_id"] for d in val] == ids
    d = val[0]
    assert d["file_name"].endswith(f"JPEGImages/{ids[0]}.jpg")
    assert d["sem_seg_file_name"].endswith(f"SegmentationClass/{ids[0]}.png")
    assert (d["height"], d["width"]) == (60, 80) and d["sem_seg_decoder"] == "index_png"


def test_root_may_be_the_devkit_folder(tmp_path):
    write_synthetic_voc(tmp_path / "VOCdevkit" / "VOC2012", train=1, val=1, size=(32, 40))
    assert len(load_voc_sem_seg("val", root=tmp_path)) == 1


def test_palette_labels_survive_the_mapper_and_read_image_L_would_corrupt_them(voc_root):
    d = DatasetCatalog.get("voc_2012_sem_seg_train")[0]
    with Image.open(d["sem_seg_file_name"]) as im:
        truth = np.array(im)  # the stored indices
    assert 255 in truth and set(np.unique(truth)) - {0, 255}  # objects and ignore ring

    cfg = get_cfg()
    add_hcmeasure_config(cfg)
    cfg.INPUT.MIN_SIZE_TRAIN = (60,)  # the image's own size: an identity resize
    cfg.INPUT.MAX_SIZE_TRAIN = 1000
    cfg.INPUT.CROP.ENABLED = False
    cfg.HCMEASURE.SEMSEG.HFLIP = False
    out = SemanticDatasetMapper(cfg, is_train=True)(d)
    assert out["sem_seg"].dtype == torch.int64
    np.testing.assert_array_equal(out["sem_seg"].numpy(), truth)
    np.testing.assert_array_equal(decode_label(d["sem_seg_file_name"], "index_png"), truth)

    # With random scaling and a crop, values stay class indices (nearest resampling).
    cfg.INPUT.MIN_SIZE_TRAIN = (90,)
    cfg.INPUT.CROP.ENABLED = True
    cfg.INPUT.CROP.TYPE = "absolute"
    cfg.INPUT.CROP.SIZE = (48, 48)
    out = SemanticDatasetMapper(cfg, is_train=True)(d)
    assert out["sem_seg"].shape == (48, 48)
    assert set(out["sem_seg"].unique().tolist()) <= set(np.unique(truth).tolist())

    # Detectron2's grey reader turns palette colours into luminance: wrong labels.
    grey = utils.read_image(d["sem_seg_file_name"], format="L")[..., 0]
    assert not np.array_equal(grey, truth)
    assert grey[truth == 255].min() != 255  # the ignore ring is lost (colour 224,224,192)
    objects = set(np.unique(truth)) - {0, 255}
    assert all(np.any(grey[truth == c] != c) for c in objects)  # every class index is lost


def test_sem_seg_evaluator_reads_indices(voc_root, tmp_path):
    """A perfect prediction scores 100 % mIoU: the evaluator reads the PNGs as indices."""
    cfg = get_cfg()
    add_hcmeasure_config(cfg)
    evaluator = build_evaluators(cfg, "voc_2012_sem_seg_val", str(tmp_path / "eval"))
    evaluator.reset()
    for d in DatasetCatalog.get("voc_2012_sem_seg_val"):
        truth = decode_label(d["sem_seg_file_name"]).astype(np.int64)
        scores = torch.nn.functional.one_hot(torch.from_numpy(truth).clamp(max=20), 21)
        evaluator.process([{"file_name": d["file_name"]}],
                          [{"sem_seg": scores.permute(2, 0, 1).float()}])
    res = evaluator.evaluate()["sem_seg"]
    assert res["mIoU"] == pytest.approx(100.0) and res["pACC"] == pytest.approx(100.0)


def test_train_aug_uses_sbd_labels_and_leaves_val_out(voc_root):
    with pytest.raises(VOCDataError, match="SegmentationClassAug"):
        DatasetCatalog.get("voc_2012_sem_seg_train_aug")
    aug = voc_root / "SegmentationClassAug"
    aug.mkdir()
    ids = [p.stem for p in sorted((voc_root / "SegmentationClass").glob("*.png"))]
    for image_id in ids:  # SBD's converted labels are grey ("L") index PNGs
        Image.fromarray(np.array(Image.open(voc_root / "SegmentationClass" / f"{image_id}.png"))).save(
            aug / f"{image_id}.png")
    val = set((voc_root / "ImageSets" / "Segmentation" / "val.txt").read_text().split())
    dicts = DatasetCatalog.get("voc_2012_sem_seg_train_aug")
    assert {d["image_id"] for d in dicts} == set(ids) - val
    assert all("SegmentationClassAug" in d["sem_seg_file_name"] for d in dicts)
    # A list file wins; DeepLab's "/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png" lines work too.
    (voc_root / "ImageSets" / "Segmentation" / "train_aug.txt").write_text(
        f"{ids[0]}\n/JPEGImages/{ids[1]}.jpg /SegmentationClassAug/{ids[1]}.png\n")
    assert [d["image_id"] for d in DatasetCatalog.get("voc_2012_sem_seg_train_aug")] == ids[:2]


def test_base_config_scales_and_crops_for_training_and_keeps_the_size_for_testing(voc_root):
    cfg = get_cfg()
    add_hcmeasure_config(cfg)
    cfg.merge_from_file(str(REPO / "configs" / "VOC2012" / "Base-VOC2012.yaml"))
    d = DatasetCatalog.get("voc_2012_sem_seg_train")[0]
    out = SemanticDatasetMapper(cfg, is_train=False)(d)
    assert tuple(out["image"].shape) == (3, 60, 80) and "sem_seg" not in out
    for _ in range(3):
        out = SemanticDatasetMapper(cfg, is_train=True)(d)
        h, w = out["sem_seg"].shape
        assert out["image"].shape[1:] == (h, w)
        # The short side is scaled to 188..750 px, then a crop of at most 380x380 is taken.
        assert h <= 380 and w <= 380 and max(h, w) >= 188
