"""HC18 dataset: names and split, conversion of annotation rings to COCO, Detectron2 registration.

The conversion tests run on all 809 real training images. The rings are fitted
once per module into a temporary cache, which the registered datasets then
read (``HCMEASURE_CACHE`` points at it).
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_util
from pycocotools.coco import COCO

from hcmeasure.data import hc18
from hcmeasure.io.images import read_scan
from hcmeasure.measurement import Ellipse, ellipse_mask, fit_ellipse, head_circumference_mm

NUM_TRAINING_IMAGES = 809
NUM_TEST_IMAGES = 47


def _quiet_coco(path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / np.logical_or(a, b).sum())


def _summary(diff_mm: np.ndarray) -> str:
    return (
        f"mean signed {diff_mm.mean():+.4f} mm, mean abs {np.abs(diff_mm).mean():.4f} mm, "
        f"max abs {np.abs(diff_mm).max():.4f} mm"
    )


def _centroid(mask: np.ndarray) -> np.ndarray:
    """(x, y) mean of the mask's pixel centres."""
    total = mask.sum()
    return np.array([mask.sum(axis=0) @ np.arange(mask.shape[1]), mask.sum(axis=1) @ np.arange(mask.shape[0])]) / total


def _copy_subset(root: Path, dest: Path, names: list[str]) -> Path:
    """A small HC18 folder: ``names`` with their annotations and CSV rows (CRLF, as released)."""
    (dest / hc18.TRAIN_DIR).mkdir(parents=True)
    for name in names:
        for file in (name, Path(name).stem + hc18.ANNOTATION_SUFFIX):
            shutil.copy(root / hc18.TRAIN_DIR / file, dest / hc18.TRAIN_DIR / file)
    lines = (root / hc18.TRAIN_CSV).read_bytes().split(b"\r\n")
    rows = [line for line in lines[1:] if line.split(b",")[0].decode() in names]
    (dest / hc18.TRAIN_CSV).write_bytes(b"\r\n".join([lines[0], *rows]))
    return dest


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hcmeasure-cache")


@pytest.fixture(scope="module")
def training(hc18_root, cache_dir) -> list[hc18.HC18Image]:
    """All training images, rings fitted (once; the result lands in ``cache_dir``)."""
    return hc18.read_training_set(hc18_root, cache_dir=cache_dir)


@pytest.fixture(scope="module")
def coco(training, tmp_path_factory) -> COCO:
    path = hc18.write_coco_json(training, tmp_path_factory.mktemp("coco") / "hc18_all.json")
    return _quiet_coco(path)


@pytest.fixture(scope="module")
def roundtrip(training, coco) -> dict[str, tuple[float, float, np.ndarray]]:
    """filename -> (IoU of annToMask with the filled ellipse, HC in mm measured back from
    annToMask, centroid of annToMask minus centroid of the filled ellipse (x, y))."""
    out = {}
    for record in training:
        (ann,) = coco.imgToAnns[record.image_id]
        mask = coco.annToMask(ann).astype(bool)
        filled = ellipse_mask(record.ellipse, (record.height, record.width))
        offset = _centroid(mask) - _centroid(filled)
        back = fit_ellipse(mask, kind="filled").ellipse
        out[record.filename] = (_iou(mask, filled), head_circumference_mm(back, record.pixel_size_mm), offset)
    return out


@pytest.fixture
def real_data_env(hc18_root, cache_dir, training, monkeypatch):
    """Registered datasets read the real data, and the ellipses already fitted by ``training``."""
    monkeypatch.setenv(hc18.ENV_ROOT, str(hc18_root))
    monkeypatch.setenv(hc18.ENV_CACHE, str(cache_dir))


@pytest.fixture
def fresh_hc18_metadata():
    """The datasets as registered on import: COCOEvaluator records the COCO JSON it wrote in
    a dataset's metadata (``json_file``), registering again forgets it."""
    hc18.register_hc18()
    yield
    hc18.register_hc18()


# ------------------------------------------------------------- names and split


def test_exam_id_is_the_number_before_the_first_underscore():
    assert hc18.exam_id("010_2HC.png") == 10
    assert hc18.exam_id("010_HC.png") == 10
    assert hc18.exam_id("000_HC_Annotation.png") == 0
    assert hc18.exam_id(Path("/data/training_set/805_HC.png")) == 805
    for bad in ("HC.png", "abc_HC.png", "010HC.png"):
        with pytest.raises(ValueError, match="not an HC18 file name"):
            hc18.exam_id(bad)


def test_image_id_encodes_exam_and_frame():
    assert hc18.image_id_of("000_HC.png") == 1
    assert hc18.image_id_of("010_HC.png") == 101
    assert hc18.image_id_of("010_2HC.png") == 102
    assert hc18.image_id_of("805_4HC.png") == 8054


def test_split_is_by_examination_and_about_80_20():
    exams = range(806)
    splits = [hc18.split_of(f"{e:03d}_HC.png") for e in exams]
    assert set(splits) == {"train", "val"}
    assert 0.15 <= splits.count("val") / len(splits) <= 0.25
    for e in exams:  # every frame of an examination goes the same way
        assert len({hc18.split_of(f"{e:03d}_{k}HC.png") for k in ("", "2", "3", "4")}) == 1
    assert [hc18.split_of(f"{e:03d}_HC.png") for e in exams] == splits  # deterministic


def test_real_split_covers_every_image_with_no_examination_on_both_sides(training):
    train = [r for r in training if r.split == "train"]
    val = [r for r in training if r.split == "val"]
    assert len(train) + len(val) == NUM_TRAINING_IMAGES
    assert {r.exam_id for r in train}.isdisjoint({r.exam_id for r in val})
    assert 0.15 <= len(val) / NUM_TRAINING_IMAGES <= 0.25
    # The byte-identical and near-identical frames listed in the HC18 README stay together.
    by_name = {r.filename: r.split for r in training}
    for a, b in [("392_HC.png", "392_2HC.png"), ("243_HC.png", "243_3HC.png"), ("507_HC.png", "507_2HC.png")]:
        assert by_name[a] == by_name[b]


# ------------------------------------------------------------------ reading


def test_training_set_has_every_image_with_its_real_size(training, hc18_root):
    assert len(training) == NUM_TRAINING_IMAGES
    assert [r.filename for r in training] == sorted(r.filename for r in training)
    odd = {}
    for r in training:
        with Image.open(r.image_path) as im:
            assert (r.width, r.height) == im.size, r.filename
        if im.size != (800, 540):
            odd[r.filename] = im.size
    assert odd["402_HC.png"] == (799, 563)
    assert len(odd) > 10  # 21 in the shared copy


def test_crlf_csv_is_read_to_the_last_row(training, hc18_root):
    raw = (hc18_root / hc18.TRAIN_CSV).read_bytes()
    assert b"\r\n" in raw and not raw.endswith(b"\n")  # as released
    last_name = raw.rsplit(b"\r\n", 1)[1].split(b",")[0].decode()
    by_name = {r.filename: r for r in training}
    assert last_name in by_name
    assert all("\r" not in name for name in by_name)
    assert by_name["000_HC.png"].hc_mm == pytest.approx(44.3)
    assert by_name["000_HC.png"].pixel_size_mm == pytest.approx(0.0691358041432)


def test_ellipses_are_outline_fits_of_the_annotation_rings(training):
    for r in training[::80]:
        expected = fit_ellipse(read_scan(r.annotation_path), kind="outline").ellipse
        got = r.ellipse
        assert (got.cx, got.cy, got.a, got.b) == pytest.approx(
            (expected.cx, expected.cy, expected.a, expected.b), abs=1e-3
        ), r.filename
        assert got.angle == pytest.approx(expected.angle, abs=1e-4), r.filename


def test_ring_fit_reproduces_the_reference_hc(training):
    diff = np.array([head_circumference_mm(r.ellipse, r.pixel_size_mm) - r.hc_mm for r in training])
    summary = _summary(diff)
    print(f"ring fit vs CSV HC over {len(diff)} images: {summary}")
    assert np.abs(diff).mean() <= 0.1, summary


# --------------------------------------------------------------- COCO output


def test_coco_json_has_one_fetal_head_per_image(training, coco):
    assert coco.dataset["categories"] == [{"id": 1, "name": "fetal_head", "supercategory": "fetal_head"}]
    assert len(coco.imgs) == len(coco.anns) == NUM_TRAINING_IMAGES
    for r in training:
        image = coco.imgs[r.image_id]
        assert (image["file_name"], image["width"], image["height"]) == (r.filename, r.width, r.height)
        assert (image["pixel_size_mm"], image["hc_mm"]) == (r.pixel_size_mm, r.hc_mm)
        (ann,) = coco.imgToAnns[r.image_id]
        assert (ann["category_id"], ann["iscrowd"]) == (1, 0)
        xy = np.asarray(ann["segmentation"][0]).reshape(-1, 2)
        assert xy.min() >= 0 and xy[:, 0].max() <= r.width and xy[:, 1].max() <= r.height
        x, y, w, h = ann["bbox"]
        assert (x, y, x + w, y + h) == pytest.approx((*xy.min(0), *xy.max(0)), abs=2e-3)
        # Polygons have the ellipse's area, less what lies outside the image.
        assert ann["area"] <= r.ellipse.area * 1.0001
        if x > 0 and y > 0 and x + w < r.width and y + h < r.height:
            assert ann["area"] == pytest.approx(r.ellipse.area, rel=1e-4)


def test_coco_masks_reproduce_the_filled_ellipse_on_every_image(roundtrip):
    ious = {name: iou for name, (iou, _, _) in roundtrip.items()}
    worst = min(ious, key=ious.get)
    print(f"annToMask vs ellipse_mask over {len(ious)} images: min IoU {ious[worst]:.5f} ({worst})")
    assert len(ious) == NUM_TRAINING_IMAGES
    assert ious[worst] >= 0.98, f"{worst}: IoU {ious[worst]:.4f}"


def test_coco_masks_are_centred_on_the_ellipse(roundtrip):
    # IoU >= 0.98 alone would let a missing half-pixel shift through (it costs ~0.5% IoU);
    # without the shift every mask would sit 0.5 px up and left of its ellipse. What is
    # left is pycocotools' own rasterisation (boundary found on a 5x grid), which puts
    # masks a few hundredths of a pixel higher than their polygon.
    offsets = np.array([offset for _, _, offset in roundtrip.values()])
    mean, worst = offsets.mean(axis=0), np.abs(offsets).max(axis=0)
    print(f"annToMask centroid minus ellipse_mask centroid (x, y): mean {mean.round(4)}, max abs {worst.round(4)} px")
    assert np.abs(mean).max() < 0.1
    assert worst.max() < 0.25


def test_hc_measured_back_from_coco_masks_is_unbiased(roundtrip, training):
    diff = np.array([roundtrip[r.filename][1] - r.hc_mm for r in training])
    summary = _summary(diff)
    print(f"HC from COCO masks vs CSV over {len(diff)} images: {summary}")
    assert abs(diff.mean()) <= 0.1, summary
    assert np.abs(diff).mean() <= 0.2, summary


def test_polygon_is_the_ellipse_shifted_half_a_pixel_into_coco_frame():
    # A circle centred on pixel (row 10, column 12): centre (12, 10) here, (12.5, 10.5) in COCO.
    circle = Ellipse(12.0, 10.0, 6.3, 6.3, 0.0)
    polygon = hc18.coco_polygon(circle, 30, 20)
    xy = np.asarray(polygon).reshape(-1, 2)
    assert xy.mean(axis=0) == pytest.approx((12.5, 10.5), abs=1e-3)
    mask = mask_util.decode(mask_util.frPyObjects([polygon], 20, 30))[:, :, 0].astype(bool)
    assert np.array_equal(mask, ellipse_mask(circle, (20, 30)))


def test_polygon_of_a_head_cut_by_the_border_is_clipped_to_the_image():
    cut = Ellipse(5.0, 30.0, 40.0, 20.0, 0.3)
    polygon = hc18.coco_polygon(cut, 120, 80)
    xy = np.asarray(polygon).reshape(-1, 2)
    assert xy[:, 0].min() == 0.0 and xy.min() >= 0 and xy[:, 0].max() <= 120 and xy[:, 1].max() <= 80
    mask = mask_util.decode(mask_util.frPyObjects([polygon], 80, 120))[:, :, 0].astype(bool)
    assert _iou(mask, ellipse_mask(cut, (80, 120))) >= 0.98


# ------------------------------------------------------ Detectron2 registration


def test_datasets_are_registered_on_import_with_metadata():
    from detectron2.data import DatasetCatalog, MetadataCatalog

    for name in ("hc18_train", "hc18_val", "hc18_test"):
        assert name in DatasetCatalog.list()
        meta = MetadataCatalog.get(name)
        assert meta.thing_classes == ["fetal_head"]
        assert meta.evaluator_type == "hc18"
        # no json_file: Detectron2's COCOEvaluator converts the standard-format dicts itself
        assert "json_file" not in meta.as_dict() and meta.thing_dataset_id_to_contiguous_id == {1: 0}


def test_train_and_val_load_in_detectron2_format(real_data_env, training):
    from detectron2.data import DatasetCatalog
    from detectron2.structures import BoxMode

    train, val = DatasetCatalog.get("hc18_train"), DatasetCatalog.get("hc18_val")
    assert len(train) + len(val) == NUM_TRAINING_IMAGES
    assert {d["exam_id"] for d in train}.isdisjoint({d["exam_id"] for d in val})
    assert {hc18.split_of(d["file_name"]) for d in val} == {"val"}
    records = {r.image_id: r for r in training}
    for d in train[::50] + val[::20]:
        r = records[d["image_id"]]
        assert Path(d["file_name"]) == r.image_path and Path(d["annotation_file"]).is_file()
        assert (d["height"], d["width"]) == (r.height, r.width)
        assert (d["pixel_size_mm"], d["hc_mm"]) == (r.pixel_size_mm, r.hc_mm)
        (ann,) = d["annotations"]
        assert (ann["bbox_mode"], ann["category_id"], ann["iscrowd"]) == (BoxMode.XYWH_ABS, 0, 0)
        assert ann["segmentation"] == [hc18.coco_polygon(r.ellipse, r.width, r.height)]
        mask = mask_util.decode(mask_util.frPyObjects(ann["segmentation"], d["height"], d["width"]))[:, :, 0]
        assert _iou(mask.astype(bool), ellipse_mask(r.ellipse, (r.height, r.width))) >= 0.98


def test_load_hc18_dicts_takes_a_root(hc18_root, cache_dir, training):
    val = hc18.load_hc18_dicts(hc18_root, "val", cache_dir=cache_dir)
    everything = hc18.load_hc18_dicts(hc18_root, "all", cache_dir=cache_dir)
    assert len(everything) == NUM_TRAINING_IMAGES
    assert [d["image_id"] for d in val] == [d["image_id"] for d in everything if hc18.split_of(d["file_name"]) == "val"]


def test_hc18_test_has_47_images_with_pixel_sizes_and_no_annotations(real_data_env, hc18_root):
    from detectron2.data import DatasetCatalog

    test = DatasetCatalog.get("hc18_test")
    assert len(test) == NUM_TEST_IMAGES
    rows = dict(line.split(",") for line in (hc18_root / hc18.TEST_CSV).read_text().splitlines()[1:])
    for d in test:
        name = Path(d["file_name"]).name
        assert d["pixel_size_mm"] == pytest.approx(float(rows[name]))
        assert "annotations" not in d
        with Image.open(d["file_name"]) as im:
            assert (d["width"], d["height"]) == im.size
    assert sum((d["width"], d["height"]) != (800, 540) for d in test) == 8


def test_coco_evaluator_scores_the_reference_ellipses_as_perfect(real_data_env, tmp_path, fresh_hc18_metadata):
    from detectron2.evaluation import COCOEvaluator
    from detectron2.structures import BitMasks, Instances

    from detectron2.data import DatasetCatalog

    evaluator = COCOEvaluator("hc18_val", output_dir=str(tmp_path))
    val_ids = set(evaluator._coco_api.getImgIds())
    assert len(val_ids) == len(evaluator._coco_api.getAnnIds()) > 100
    ellipses = {d["image_id"]: d["ellipse"] for d in DatasetCatalog.get("hc18_val")}
    evaluator.reset()
    for image_id in sorted(val_ids):
        info = evaluator._coco_api.imgs[image_id]
        ellipse = Ellipse(**ellipses[image_id])
        masks = BitMasks(torch.from_numpy(ellipse_mask(ellipse, (info["height"], info["width"])))[None])
        instances = Instances((info["height"], info["width"]))
        instances.pred_masks = masks.tensor
        instances.pred_boxes = masks.get_bounding_boxes()
        instances.scores = torch.ones(1)
        instances.pred_classes = torch.zeros(1, dtype=torch.int64)
        evaluator.process([{"image_id": image_id}], [{"instances": instances}])
    results = evaluator.evaluate()
    assert results["segm"]["AP"] > 99.9 and results["bbox"]["AP"] > 99.9, results


def test_loading_without_data_names_the_environment_variable(monkeypatch, tmp_path):
    from detectron2.data import DatasetCatalog

    monkeypatch.setenv(hc18.ENV_ROOT, str(tmp_path / "nowhere"))
    for name in ("hc18_train", "hc18_test"):
        with pytest.raises(hc18.HC18Error, match=hc18.ENV_ROOT):
            DatasetCatalog.get(name)


# ---------------------------------------------------------- cache and errors


def test_cache_is_reused_until_the_csv_changes(hc18_root, tmp_path, monkeypatch):
    root = _copy_subset(hc18_root, tmp_path / "hc18", ["010_HC.png", "010_2HC.png", "402_HC.png"])
    cache = tmp_path / "cache"
    first = hc18.read_training_set(root, cache_dir=cache)
    assert len(list(cache.glob("hc18/*/training_set.json"))) == 1

    def no_fitting(ring):
        raise AssertionError("the cached ellipses should have been used")

    monkeypatch.setattr(hc18, "fit_ring", no_fitting)
    assert hc18.read_training_set(root, cache_dir=cache) == first

    csv = root / hc18.TRAIN_CSV
    csv.write_bytes(csv.read_bytes().rsplit(b"\r\n", 1)[0])  # drop the last row: 402_HC.png
    (root / hc18.TRAIN_DIR / "402_HC.png").unlink()
    (root / hc18.TRAIN_DIR / "402_HC_Annotation.png").unlink()
    with pytest.raises(AssertionError, match="cached ellipses"):
        hc18.read_training_set(root, cache_dir=cache)
    monkeypatch.undo()
    assert hc18.read_training_set(root, cache_dir=cache) == first[:2]


def test_missing_annotation_is_named(hc18_root, tmp_path):
    root = _copy_subset(hc18_root, tmp_path / "hc18", ["010_HC.png", "010_2HC.png"])
    (root / hc18.TRAIN_DIR / "010_2HC_Annotation.png").unlink()
    with pytest.raises(hc18.HC18Error, match="010_2HC_Annotation.png: annotation not found for image"):
        hc18.read_training_set(root, cache=False)


def test_images_and_csv_rows_must_match(hc18_root, tmp_path):
    root = _copy_subset(hc18_root, tmp_path / "hc18", ["010_HC.png", "010_2HC.png"])
    shutil.copy(hc18_root / hc18.TRAIN_DIR / "000_HC.png", root / hc18.TRAIN_DIR / "000_HC.png")
    (root / hc18.TRAIN_DIR / "010_HC.png").unlink()
    with pytest.raises(hc18.HC18Error) as info:
        hc18.read_training_set(root, cache=False)
    message = str(info.value)
    assert "000_HC.png: image has no row in" in message
    assert "010_HC.png: listed in training_set_pixel_size_and_HC.csv but the image does not exist" in message


def test_empty_annotation_is_named(hc18_root, tmp_path):
    root = _copy_subset(hc18_root, tmp_path / "hc18", ["010_HC.png"])
    ring = root / hc18.TRAIN_DIR / "010_HC_Annotation.png"
    Image.new("L", Image.open(ring).size).save(ring)
    with pytest.raises(hc18.HC18Error, match="010_HC_Annotation.png: no ellipse can be fitted"):
        hc18.read_training_set(root, cache=False)


def test_the_hc18_evaluators_convert_the_dataset_to_coco_as_convert_hc18_does(real_data_env, training, tmp_path,
                                                                              fresh_hc18_metadata):
    from detectron2.config import get_cfg
    from detectron2.data import MetadataCatalog

    from hcmeasure.config import add_hcmeasure_config
    from hcmeasure.evaluation.registry import build_evaluators

    evaluators = build_evaluators(add_hcmeasure_config(get_cfg()), "hc18_val", str(tmp_path))
    assert [type(e).__name__ for e in evaluators._evaluators] == ["HC18Evaluator", "COCOEvaluator"]
    path = tmp_path / "hc18_val_coco_format.json"
    assert MetadataCatalog.get("hc18_val").json_file == str(path)
    data = json.loads(path.read_text())
    assert {image["id"] for image in data["images"]} == {a["image_id"] for a in data["annotations"]}
    # the same images and annotations as hcmeasure's own COCO JSON (convert-hc18)
    ours = hc18.to_coco_dict([r for r in training if r.split == "val"])
    by_image = {a["image_id"]: a for a in ours["annotations"]}
    assert [(i["id"], i["width"], i["height"]) for i in data["images"]] == [
        (i["id"], i["width"], i["height"]) for i in ours["images"]]
    assert data["categories"] == [{"id": 1, "name": "fetal_head"}]
    for a in data["annotations"]:
        mine = by_image[a["image_id"]]
        assert (a["category_id"], a["iscrowd"], a["segmentation"]) == (1, 0, mine["segmentation"])
        assert a["bbox"] == pytest.approx(mine["bbox"], abs=1e-9) and a["area"] == pytest.approx(mine["area"], abs=1e-2)
