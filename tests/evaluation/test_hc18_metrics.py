"""HC18 metrics and the Detectron2 evaluator (hcmeasure.evaluation.hc18)."""
from __future__ import annotations

import math
import shutil
import uuid

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.structures import Boxes, Instances
from scipy.spatial.distance import directed_hausdorff

from hcmeasure.evaluation.hc18 import (
    HC18Evaluator,
    annotation_path,
    dice,
    ellipse_from_row,
    evaluate_measurements,
    hausdorff_mm,
    hc_differences,
    image_metrics,
    reference_ellipse,
    summarize,
)
from hcmeasure.io.tables import measurement_row, read_measurements_csv, read_reference_hc_csv
from hcmeasure.measurement.ellipse import Ellipse, ellipse_mask

# --------------------------------------------------------------------------- pure metrics


def test_hc_differences_known_values():
    d = hc_differences([101.0, 99.0, 103.0, 100.0], [100.0, 100.0, 100.0, 100.0])
    # diffs +1, -1, +3, 0
    assert d["n"] == 4
    assert d["mean_diff_mm"] == pytest.approx(0.75)
    assert d["mean_abs_diff_mm"] == pytest.approx(1.25)
    assert d["median_abs_diff_mm"] == pytest.approx(1.0)
    assert d["sd_diff_mm"] == pytest.approx(np.std([1, -1, 3, 0], ddof=1))
    assert d["sd_abs_diff_mm"] == pytest.approx(np.std([1, 1, 3, 0], ddof=1))


def test_hc_differences_small_and_bad_inputs():
    one = hc_differences([50.5], [50.0])
    assert one["n"] == 1 and one["mean_diff_mm"] == pytest.approx(0.5)
    assert math.isnan(one["sd_diff_mm"])
    none = hc_differences([], [])
    assert none["n"] == 0 and math.isnan(none["mean_abs_diff_mm"]) and math.isnan(none["median_abs_diff_mm"])
    with pytest.raises(ValueError):
        hc_differences([1.0, 2.0], [1.0])


def test_bpd_and_ofd_are_compared_where_a_reference_ellipse_exists():
    truth = Ellipse(200.0, 150.0, 100.0, 80.0, 0.3)
    pred = Ellipse(201.0, 150.0, 110.0, 90.0, 0.3)
    rec = image_metrics("a.png", 130.0, 128.0, pred_ellipse=pred, truth_ellipse=truth, shape=(300, 400),
                        pixel_size_mm=0.2)
    assert (rec["pred_bpd_mm"], rec["truth_bpd_mm"]) == pytest.approx((36.0, 32.0))
    assert (rec["pred_ofd_mm"], rec["truth_ofd_mm"]) == pytest.approx((44.0, 40.0))
    assert (rec["bpd_diff_mm"], rec["ofd_diff_mm"]) == pytest.approx((4.0, 4.0))
    smaller = image_metrics("b.png", 120.0, 128.0, pred_ellipse=Ellipse(200.0, 150.0, 95.0, 79.0, 0.3),
                            truth_ellipse=truth, shape=(300, 400), pixel_size_mm=0.2)
    s = summarize([rec, smaller, image_metrics("c.png", 100.0, 101.0)])  # c: no reference ellipse
    assert s["bpd_mean_abs_diff_mm"] == pytest.approx((4.0 + 0.4) / 2)
    assert s["bpd_mean_diff_mm"] == pytest.approx((4.0 - 0.4) / 2)
    assert s["ofd_mean_abs_diff_mm"] == pytest.approx((4.0 + 2.0) / 2)
    assert image_metrics("c.png", 100.0, 101.0)["bpd_diff_mm"] is None


def test_dice():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    assert dice(a, b) == 1.0  # two empty masks agree
    a[:, :5] = True
    assert dice(a, a) == 1.0
    assert dice(a, b) == 0.0
    b[:, 2:7] = True  # overlap 3 columns of 5 and 5
    assert dice(a, b) == pytest.approx(2 * 30 / 100)
    assert dice(a.astype(np.uint8), b.astype(np.uint8)) == dice(a, b)
    with pytest.raises(ValueError):
        dice(a, b[:5])


def test_hausdorff_of_circles_and_shifts():
    c1 = Ellipse(100.0, 80.0, 50.0, 50.0, 0.0)
    c2 = Ellipse(100.0, 80.0, 53.0, 53.0, 0.0)
    assert hausdorff_mm(c1, c1, 0.2) == pytest.approx(0.0, abs=1e-9)
    assert hausdorff_mm(c1, c2, 1.0) == pytest.approx(3.0, abs=0.05)
    assert hausdorff_mm(c2, c1, 0.2) == pytest.approx(0.6, abs=0.01)
    # A shift along the major axis: the vertex is the farthest point, d away.
    e = Ellipse(200.0, 150.0, 120.0, 90.0, 0.0)
    shifted = Ellipse(207.0, 150.0, 120.0, 90.0, 0.0)
    assert hausdorff_mm(e, shifted, 0.1) == pytest.approx(0.7, abs=0.005)
    # Rotated copy of the same shift.
    er = Ellipse(200.0, 150.0, 120.0, 90.0, 1.0)
    sr = Ellipse(200.0 + 7 * math.cos(1.0), 150.0 + 7 * math.sin(1.0), 120.0, 90.0, 1.0)
    assert hausdorff_mm(er, sr, 1.0) == pytest.approx(7.0, abs=0.05)


def test_hausdorff_matches_scipy_directed_hausdorff():
    a = Ellipse(300.0, 250.0, 150.0, 100.0, 0.3)
    b = Ellipse(303.0, 248.0, 140.0, 104.0, 0.5)
    pa, pb = a.points(20000), b.points(20000)
    reference = max(directed_hausdorff(pa, pb)[0], directed_hausdorff(pb, pa)[0])
    assert hausdorff_mm(a, b, 1.0) == pytest.approx(reference, abs=0.05)
    assert hausdorff_mm(a, b, 0.25) == pytest.approx(0.25 * hausdorff_mm(a, b, 1.0))
    assert hausdorff_mm(a, b, 1.0) == pytest.approx(hausdorff_mm(b, a, 1.0), abs=1e-9)


def test_annotation_path_and_ellipse_from_row(tmp_path):
    assert annotation_path(tmp_path, "010_2HC.png") == tmp_path / "010_2HC_Annotation.png"
    e = Ellipse(400.25, 270.5, 120.0, 95.0, 0.75)
    got = ellipse_from_row(measurement_row("a.png", e, None))
    assert got.cx == pytest.approx(400.25) and got.a == pytest.approx(120.0) and got.angle == pytest.approx(0.75)
    assert ellipse_from_row(measurement_row("a.png", None, 0.1, status="no_head_detected")) is None


def test_ellipse_from_row_takes_the_pixel_ellipses_own_angle():
    from hcmeasure.measurement.spacing import ellipse_in_mm

    mm = Ellipse(30.0, 26.0, 25.0, 15.0, 0.4)
    px = ellipse_in_mm(mm, 1 / 0.2, 1 / 0.1)  # non-square pixels: 0.2 x 0.1 mm
    row = measurement_row("a.dcm", px, 0.2, pixel_size_y_mm=0.1, ellipse_mm=mm)
    assert ellipse_from_row(row).angle == pytest.approx(px.angle, abs=1e-5)
    # A row written before angle_px_rad existed: angle_rad (right for square pixels).
    old = dict(row, angle_px_rad="")
    assert ellipse_from_row(old).angle == pytest.approx(0.4, abs=1e-5)


def _row(name, hc_mm, status="ok", ps=0.1):
    return {"filename": name, "hc_mm": "" if hc_mm is None else f"{hc_mm}", "status": status,
            "pixel_size_mm": f"{ps}"}


def test_evaluate_measurements_counts_failures_and_unknown_rows():
    truth = {"a.png": (0.1, 100.0), "b.png": (0.1, 200.0), "c.png": (0.1, 150.0), "d.png": (0.1, 120.0)}
    rows = [
        _row("a.png", 101.0),
        _row("b.png", 198.0),
        _row("c.png", None, "no_head_detected"),
        _row("d.png", None, "ok"),  # ok but no HC: an invalid row, counted as failed
        _row("x.png", 50.0),  # not in the reference
        _row("a.png", 300.0),  # duplicate: ignored
    ]
    res = evaluate_measurements(rows, truth)
    s = res["summary"]
    assert s["n"] == 2 and s["n_failed"] == 2 and s["n_images"] == 4
    assert s["mean_abs_diff_mm"] == pytest.approx(1.5)
    assert s["mean_diff_mm"] == pytest.approx(-0.5)
    assert s["detected_pct"] == pytest.approx(50.0)
    assert res["failed"] == [
        {"filename": "c.png", "status": "no_head_detected"},
        {"filename": "d.png", "status": "invalid_row"},
    ]
    assert res["not_in_truth"] == ["x.png"] and s["n_not_in_truth"] == 1
    assert res["duplicates"] == ["a.png"] and s["n_duplicates"] == 1
    assert [r["filename"] for r in res["per_image"]] == ["a.png", "b.png"]
    assert res["per_image"][1]["diff_mm"] == pytest.approx(-2.0)
    assert s["n_annotated"] == 0 and math.isnan(s["dice_mean"])


def test_evaluate_measurements_notes_pixel_size_mismatch():
    res = evaluate_measurements([_row("a.png", 100.0, ps=0.2)], {"a.png": (0.1, 100.0)})
    assert "differs" in res["per_image"][0]["note"]


# --------------------------------------------------------------------------- real annotations

NAMES = ["000_HC.png", "001_HC.png", "402_HC.png"]  # 402_HC is 799 x 563


@pytest.fixture(scope="module")
def hc18_cases(hc18_root):
    """Dataset-like dicts for a few real HC18 images, with their reference ellipses."""
    reference = read_reference_hc_csv(hc18_root / "training_set_pixel_size_and_HC.csv")
    cases = []
    for i, name in enumerate(NAMES):
        ps, hc = reference[name]
        ann = annotation_path(hc18_root / "training_set", name)
        ellipse, shape = reference_ellipse(ann)
        record = {
            "file_name": str(hc18_root / "training_set" / name),
            "image_id": i,
            "height": shape[0],
            "width": shape[1],
            "pixel_size_mm": ps,
            "hc_mm": hc,
            "annotation_file": str(ann),
        }
        cases.append((record, ellipse))
    return cases


def fake_output(ellipse: Ellipse | None, shape, score=0.98) -> dict:
    inst = Instances(shape)
    if ellipse is None:
        inst.pred_boxes = Boxes(torch.zeros((0, 4)))
        inst.scores = torch.zeros(0)
        inst.pred_classes = torch.zeros(0, dtype=torch.int64)
        inst.pred_masks = torch.zeros((0, *shape), dtype=torch.bool)
        return {"instances": inst}
    mask = torch.from_numpy(ellipse_mask(ellipse, shape))
    ys, xs = torch.nonzero(mask, as_tuple=True)
    inst.pred_boxes = Boxes(torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32))
    inst.scores = torch.tensor([score])
    inst.pred_classes = torch.zeros(1, dtype=torch.int64)
    inst.pred_masks = mask[None]
    return {"instances": inst}


def scaled(e: Ellipse, f: float) -> Ellipse:
    return Ellipse(e.cx, e.cy, e.a * f, e.b * f, e.angle)


def run_evaluator(evaluator, cases, transform, batch=2):
    evaluator.reset()
    pairs = [(rec, fake_output(transform(e), (rec["height"], rec["width"]))) for rec, e in cases]
    for i in range(0, len(pairs), batch):
        chunk = pairs[i : i + batch]
        evaluator.process([dict(r) for r, _ in chunk], [o for _, o in chunk])
    return evaluator.evaluate()


@pytest.mark.shared
def test_evaluator_perfect_prediction(hc18_cases, tmp_path):
    ev = HC18Evaluator("hc18_fake", output_dir=str(tmp_path))
    res = run_evaluator(ev, hc18_cases, lambda e: e)["hc18"]
    assert set(res) >= {"MAD_mm", "MAD_sd_mm", "MSD_mm", "DSC", "HD_mm", "detected_pct"}
    assert res["MAD_mm"] < 0.1
    assert res["DSC"] > 0.995
    assert res["HD_mm"] < 0.1
    assert res["detected_pct"] == 100.0
    rows = read_measurements_csv(tmp_path / "hc18_fake_measurements.csv")
    assert [r["filename"] for r in rows] == NAMES
    for row, (rec, _) in zip(rows, hc18_cases):
        assert row["status"] == "ok"
        assert float(row["hc_mm"]) == pytest.approx(rec["hc_mm"], abs=0.1)


@pytest.mark.shared
def test_evaluator_scaled_prediction_gives_the_expected_errors(hc18_cases):
    ev = HC18Evaluator("hc18_fake")
    res = run_evaluator(ev, hc18_cases, lambda e: scaled(e, 1.1))["hc18"]
    expected = [1.1 * e.perimeter() * rec["pixel_size_mm"] - rec["hc_mm"] for rec, e in hc18_cases]
    assert res["MAD_mm"] == pytest.approx(np.mean(np.abs(expected)), abs=0.05)
    assert res["MSD_mm"] == pytest.approx(np.mean(expected), abs=0.05)
    assert res["MAD_mm"] == pytest.approx(0.1 * np.mean([rec["hc_mm"] for rec, _ in hc18_cases]), rel=0.01)
    # Area ratio 1.21: Dice 2 / 2.21.
    assert res["DSC"] == pytest.approx(2 / 2.21, abs=0.003)
    # Concentric and 1.1 times larger: the outlines are 0.1 b to 0.1 a apart.
    hd_low = np.mean([0.1 * e.b * rec["pixel_size_mm"] for rec, e in hc18_cases])
    hd_high = np.mean([0.1 * e.a * rec["pixel_size_mm"] for rec, e in hc18_cases])
    assert hd_low - 0.01 <= res["HD_mm"] <= hd_high + 0.01
    # Diameters 1.1 times the reference: BPD and OFD off by 0.1 of the reference's 2b and 2a
    # (to within the refit of the predicted mask, as for HC above).
    assert res["BPD_MAD_mm"] == pytest.approx(np.mean([0.2 * e.b * rec["pixel_size_mm"] for rec, e in hc18_cases]),
                                              abs=0.02)
    assert res["OFD_MAD_mm"] == pytest.approx(np.mean([0.2 * e.a * rec["pixel_size_mm"] for rec, e in hc18_cases]),
                                              abs=0.02)


@pytest.mark.shared
def test_evaluator_missed_head_and_catalog_lookup(hc18_cases):
    name = f"hc18_fake_{uuid.uuid4().hex[:8]}"
    DatasetCatalog.register(name, lambda: [dict(rec) for rec, _ in hc18_cases])
    try:
        ev = HC18Evaluator(name, min_score=0.5)
        ev.reset()
        for i, (rec, e) in enumerate(hc18_cases):
            # Inputs as a mapper that dropped the HC18 fields would pass them: only the id.
            inp = {"image_id": rec["image_id"], "height": rec["height"], "width": rec["width"]}
            out = fake_output(None if i == 0 else e, (rec["height"], rec["width"]), score=0.98 if i != 2 else 0.3)
            ev.process([inp], [out])
        res = ev.evaluate()["hc18"]
    finally:
        DatasetCatalog.remove(name)
    # Image 0: no instance; image 2: score below min_score; image 1 measured.
    assert res["detected_pct"] == pytest.approx(100.0 / 3)
    assert res["n_images"] == 3
    assert res["MAD_mm"] < 0.1 and res["DSC"] > 0.995


@pytest.mark.shared
def test_evaluator_without_references(hc18_cases):
    # The HC18 test set: pixel sizes only, so only the detection rate is known.
    ev = HC18Evaluator("hc18_fake_test")
    ev.reset()
    for rec, e in hc18_cases:
        inp = {k: rec[k] for k in ("file_name", "image_id", "height", "width", "pixel_size_mm")}
        ev.process([inp], [fake_output(e, (rec["height"], rec["width"]))])
    res = ev.evaluate()["hc18"]
    assert res["detected_pct"] == 100.0
    assert math.isnan(res["MAD_mm"]) and math.isnan(res["DSC"])


@pytest.mark.shared
def test_evaluate_measurements_with_annotations(hc18_root, hc18_cases, tmp_path):
    ann_dir = tmp_path / "ann"
    ann_dir.mkdir()
    for rec, _ in hc18_cases[:2]:
        shutil.copy(rec["annotation_file"], ann_dir)
    truth = {rec["file_name"].rsplit("/", 1)[-1]: (rec["pixel_size_mm"], rec["hc_mm"]) for rec, _ in hc18_cases}
    rows = [measurement_row(n, scaled(e, 1.02), rec["pixel_size_mm"]) for n, (rec, e) in zip(NAMES, hc18_cases)]
    res = evaluate_measurements(rows, truth, ann_dir)
    s = res["summary"]
    assert s["n"] == 3 and s["n_annotated"] == 2
    assert s["dice_mean"] == pytest.approx(2 / (1 + 1.02**2), abs=0.003)
    assert s["mean_diff_mm"] == pytest.approx(0.02 * np.mean([r["hc_mm"] for r, _ in hc18_cases]), rel=0.05)
    # 402_HC has no annotation in ann_dir: noted, HC still compared.
    assert "annotation not usable" in res["per_image"][2]["note"]
    assert res["per_image"][2]["dice"] is None and res["per_image"][2]["diff_mm"] is not None


@pytest.mark.shared
def test_evaluator_prefers_the_dataset_ellipse(hc18_cases):
    # hcmeasure's HC18 dataset dicts carry the fitted reference "ellipse"; when present
    # it is used instead of refitting the annotation. Here it is deliberately 10 %
    # larger than the annotation, so Dice shows which one was used.
    ev = HC18Evaluator("hc18_fake")
    ev.reset()
    for rec, e in hc18_cases:
        big = scaled(e, 1.1)
        inp = dict(rec, ellipse={"cx": big.cx, "cy": big.cy, "a": big.a, "b": big.b, "angle": big.angle})
        ev.process([inp], [fake_output(e, (rec["height"], rec["width"]))])
    res = ev.evaluate()["hc18"]
    assert res["DSC"] == pytest.approx(2 / 2.21, abs=0.003)
    assert res["MAD_mm"] < 0.1  # HC is compared with hc_mm, not with the ellipse
