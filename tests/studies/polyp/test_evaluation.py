"""MedSegEvaluator: JA/DI/SE/SP/ACC on hand-computed cases, pooled vs per-image means,
NeoPolyp per-class Dice, and the evaluator on synthetic and real masks."""
import math

import numpy as np
import pytest
import torch

from detectron2.data import DatasetCatalog, MetadataCatalog

from hcmeasure.semseg.confusion import confusion_counts
from hcmeasure.studies.polyp.evaluation import MedSegEvaluator, metrics_from_counts, summarize


def test_counts_and_metrics_by_hand():
    gt = np.array([[1, 1, 0, 0],
                   [1, 1, 0, 0],
                   [0, 0, 0, 0],
                   [0, 0, 0, 255]])
    pred = np.array([[1, 1, 1, 0],
                     [1, 0, 0, 0],
                     [0, 0, 0, 0],
                     [0, 0, 0, 1]])    # the last pixel is ignored
    c = confusion_counts(pred, gt, num_classes=2)
    # polyp: TP 3, FP 1, TN 10, FN 1 (15 valid pixels)
    assert c[1].tolist() == [3, 1, 10, 1]
    assert c[0].tolist() == [10, 1, 3, 1]           # background, one-vs-rest
    assert c[2].tolist() == c[1].tolist()           # foreground = class 1 here
    m = metrics_from_counts(*c[1].tolist())
    assert m["JA"] == pytest.approx(3 / 5)
    assert m["DI"] == pytest.approx(6 / 8)
    assert m["SE"] == pytest.approx(3 / 4)
    assert m["SP"] == pytest.approx(10 / 11)
    assert m["ACC"] == pytest.approx(13 / 15)


def test_empty_cases():
    m = metrics_from_counts(0, 0, 10, 0)       # nothing to find, nothing found
    assert m["JA"] == 1.0 and m["DI"] == 1.0 and math.isnan(m["SE"]) and m["SP"] == 1.0
    m = metrics_from_counts(0, 4, 6, 0)        # false alarm on an empty image
    assert m["JA"] == 0.0 and m["DI"] == 0.0 and math.isnan(m["SE"]) and m["SP"] == 0.6


def test_pooled_and_mean_over_images_differ_as_computed_by_hand():
    # Image A: big polyp, 90 of 100 found, no FP, 900 TN.  Image B: small polyp, 1 of 10
    # found, 9 FP, 980 TN.
    # Rows: background (unused here), polyp, foreground; columns TP, FP, TN, FN.
    counts_a = np.array([[0, 0, 0, 0], [90, 0, 900, 10], [90, 0, 900, 10]])
    counts_b = np.array([[0, 0, 0, 0], [1, 9, 980, 9], [1, 9, 980, 9]])
    res = summarize([counts_a, counts_b], ["background", "polyp"])
    assert res["DI_pooled"] == pytest.approx(2 * 91 / (2 * 91 + 9 + 19))
    assert res["DI_mean_img"] == pytest.approx((180 / 190 + 2 / 20) / 2)
    assert res["JA_pooled"] == pytest.approx(91 / (91 + 9 + 19))
    assert res["JA_mean_img"] == pytest.approx((90 / 100 + 1 / 19) / 2)
    assert res["SE_pooled"] == pytest.approx(91 / 110)
    assert res["SE_mean_img"] == pytest.approx((0.9 + 0.1) / 2)
    assert res["SP_pooled"] == pytest.approx(1880 / 1889)
    assert res["SP_mean_img"] == pytest.approx((1.0 + 980 / 989) / 2)
    assert res["n_images"] == 2 and res["n_img_SE"] == 2
    assert "mDI_mean_img" not in res  # binary: no per-class block


def test_neopolyp_per_class_dice_and_kaggle_style_mean():
    gt1 = np.array([[1, 1, 0], [0, 0, 0]])
    pr1 = np.array([[1, 2, 0], [0, 0, 0]])
    gt2 = np.array([[2, 2, 2], [0, 0, 0]])
    pr2 = np.array([[2, 2, 0], [0, 0, 0]])
    names = ["background", "neoplastic", "non-neoplastic"]
    res = summarize([confusion_counts(pr1, gt1, 3), confusion_counts(pr2, gt2, 3)], names)
    # Image 1: neoplastic DI = 2*1/(2+1+0) = 2/3; non-neoplastic: GT empty, 1 FP -> 0.
    # Image 2: neoplastic absent in both -> 1; non-neoplastic DI = 2*2/(4+0+1) = 0.8.
    assert res["DI_mean_img-neoplastic"] == pytest.approx((2 / 3 + 1) / 2)
    assert res["DI_mean_img-non-neoplastic"] == pytest.approx((0 + 0.8) / 2)
    assert res["mDI_mean_img"] == pytest.approx(((2 / 3 + 1) / 2 + 0.4) / 2)
    # Pooled per class: neoplastic TP 1, FP 0, FN 1; non-neoplastic TP 2, FP 1, FN 1.
    assert res["DI_pooled-neoplastic"] == pytest.approx(2 / 3)
    assert res["DI_pooled-non-neoplastic"] == pytest.approx(4 / 6)
    assert res["mDI_pooled"] == pytest.approx((2 / 3 + 4 / 6) / 2)
    # Polyp vs background (union of the two classes): image 1 TP 2 FN 0; image 2 TP 2 FN 1.
    assert res["DI_pooled"] == pytest.approx(2 * 4 / (2 * 4 + 0 + 1))


def _one_hot_scores(label: np.ndarray, num_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.as_tensor(label.astype(np.int64)), num_classes).permute(2, 0, 1).float()


@pytest.fixture
def temp_dataset():
    names = []

    def make(name, dicts, meta):
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        DatasetCatalog.register(name, lambda: dicts)
        MetadataCatalog.get(name).set(**meta)
        names.append(name)
        return name

    yield make
    for n in names:
        DatasetCatalog.remove(n)
        MetadataCatalog.remove(n)


def test_evaluator_on_synthetic_kvasir(tmp_path, temp_dataset):
    from hcmeasure.studies.polyp.data import _binary_meta, load_kvasir_seg, write_synthetic_polyp_dataset
    from hcmeasure.semseg.data import decode_label

    root = write_synthetic_polyp_dataset(tmp_path / "k", "kvasir", n=3)
    dicts = load_kvasir_seg(root, "all")
    name = temp_dataset("medseg_test_synthetic", dicts, _binary_meta())
    ev = MedSegEvaluator(name, output_dir=str(tmp_path / "eval"), distributed=False)
    ev.reset()
    for i, d in enumerate(dicts):
        gt = decode_label(d["sem_seg_file_name"], "binary_threshold")
        pred = gt if i else np.zeros_like(gt)  # first image: polyp missed entirely
        ev.process([d], [{"sem_seg": _one_hot_scores(pred, 2)}])
    res = ev.evaluate()["medseg"]
    assert res["DI_mean_img"] == pytest.approx(2 / 3)
    assert res["SE_mean_img"] == pytest.approx(2 / 3)
    assert res["SP_pooled"] == 1.0 and res["SP_mean_img"] == 1.0
    assert 0 < res["DI_pooled"] < 1
    lines = (tmp_path / "eval" / "medseg_per_image.csv").read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("file_name,background_TP")


def test_build_evaluators_for_medseg_gives_both(tmp_path, temp_dataset):
    from detectron2.config import get_cfg

    from hcmeasure.config import add_hcmeasure_config
    from hcmeasure.studies.polyp.data import _neopolyp_meta
    from hcmeasure.semseg.evaluation import SemSegEvaluator
    from hcmeasure.evaluation.registry import build_evaluators

    name = temp_dataset("medseg_test_neo", [], _neopolyp_meta())
    cfg = add_hcmeasure_config(get_cfg())
    evs = build_evaluators(cfg, name, str(tmp_path))._evaluators
    assert [type(e) for e in evs] == [SemSegEvaluator, MedSegEvaluator]


@pytest.mark.shared
def test_evaluator_on_real_neopolyp_masks(neopolyp_root, tmp_path, temp_dataset):
    """Ground truth scored against itself: every figure is 1; against a model that
    swaps the two classes, the per-class Dice drop to 0 while polyp-vs-background stays 1."""
    from hcmeasure.studies.polyp.data import _neopolyp_meta, decode_neopolyp_rgb, load_neopolyp

    dicts = [d for d in load_neopolyp(neopolyp_root, "trainval")][:4]
    name = temp_dataset("medseg_test_real_neo", dicts, _neopolyp_meta())
    same = MedSegEvaluator(name, distributed=False)
    swapped = MedSegEvaluator(name, distributed=False)
    for d in dicts:
        lab = decode_neopolyp_rgb(d["sem_seg_file_name"])
        same.process([d], [{"sem_seg": _one_hot_scores(lab, 3)}])
        swap = np.choose(lab, [0, 2, 1]).astype(np.uint8)
        swapped.process([d], [{"sem_seg": _one_hot_scores(swap, 3)}])
    r = same.evaluate()["medseg"]
    assert r["mDI_pooled"] == 1.0 and r["mDI_mean_img"] == 1.0 and r["DI_pooled"] == 1.0
    s = swapped.evaluate()["medseg"]
    assert s["DI_pooled"] == 1.0 and s["JA_mean_img"] == 1.0
    assert s["mDI_pooled"] == 0.0


def test_evaluator_builders_are_a_detectron2_registry_of_every_kind_of_dataset(temp_dataset, tmp_path):
    from detectron2.config import get_cfg
    from detectron2.utils.registry import Registry

    from hcmeasure.config import add_hcmeasure_config
    from hcmeasure.evaluation.registry import EVALUATOR_REGISTRY, build_evaluators

    assert isinstance(EVALUATOR_REGISTRY, Registry)
    assert {"hc18", "sem_seg", "medseg", "cells"} <= {name for name, _ in EVALUATOR_REGISTRY}
    name = temp_dataset("no_evaluator_type", [], {})
    with pytest.raises(NotImplementedError, match="evaluator_type=None.*known types: .*'cells'"):
        build_evaluators(add_hcmeasure_config(get_cfg()), name, str(tmp_path))
