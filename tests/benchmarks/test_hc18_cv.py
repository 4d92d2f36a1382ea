"""benchmarks/hc18_cv.py: the out-of-fold tables are computed from the CSV rows as stated,
and the reference-box stand-in detector moves the box edges as asked."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def hc18_cv(load_benchmark):
    return load_benchmark("hc18_cv")


def _write_oof(path: Path, diffs_mm, truths_mm):
    from hcmeasure.measurement.trust import FEATURE_NAMES

    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["filename", "fold", "exam_id", "status", "truth_hc_mm", "hc_mm", "diff_mm",
                                          "dice", "hausdorff_mm", "center_x_px", "center_y_px", "semi_axes_a_px",
                                          "semi_axes_b_px", "angle_rad", *FEATURE_NAMES])
        w.writeheader()
        for i, (d, t) in enumerate(zip(diffs_mm, truths_mm)):
            measured = d is not None
            w.writerow({"filename": f"{i:03d}_HC.png", "fold": 4, "exam_id": i, "status": "ok" if measured else
                        "no_head_detected", "truth_hc_mm": t, "hc_mm": t + d if measured else "",
                        "diff_mm": d if measured else "", "dice": 0.98 if measured else "",
                        "hausdorff_mm": 1.0 if measured else ""})


def test_accuracy_counts_an_unmeasured_image_with_its_whole_reference_as_error(hc18_cv, tmp_path):
    path = tmp_path / "oof.csv"
    _write_oof(path, [1.0, -3.0, None], [80.0, 150.0, 300.0])
    table = hc18_cv.accuracy_table(hc18_cv._load_oof(path))
    assert table["all"]["n"] == 3 and table["all"]["n_not_measured"] == 1
    assert table["all"]["mad_mm"] == pytest.approx((1 + 3 + 300) / 3)
    assert table["all"]["msd_mm"] == pytest.approx((1 - 3 - 300) / 3)
    assert table["0-100"]["mad_mm"] == pytest.approx(1.0)
    assert table["100-200"]["mad_mm"] == pytest.approx(3.0)
    assert table["200-250"]["n"] == 0
    assert table["all"]["dice_pct"] == pytest.approx(100 * 2 * 0.98 / 3)


def test_variants_prints_and_writes_one_row_per_csv(hc18_cv, tmp_path, capsys):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _write_oof(a, [1.0, -1.0], [80.0, 260.0])
    _write_oof(b, [2.0, 4.0], [80.0, 260.0])
    out = tmp_path / "variants.json"
    assert hc18_cv.main(["variants", f"first={a}", str(b), "--json", str(out)]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:3]]
    assert names == ["first", "b"]  # a NAME= when given, else the file's stem
    result = json.loads(out.read_text())
    assert list(result["variants"]) == ["first", "b"]
    assert result["variants"]["first"]["accuracy"]["all"]["mad_mm"] == pytest.approx(1.0)
    assert result["variants"]["b"]["accuracy"]["all"]["mad_mm"] == pytest.approx(3.0)
    assert result["variants"]["b"]["accuracy"][">250"]["mad_mm"] == pytest.approx(4.0)
    # image by image, |error| grows by 1 and 3 mm: mean 2, standard error sd/sqrt(2) = 1
    change = result["variants"]["b"]["change_vs_first"]
    assert change == {"n": 2, "mean_mm": pytest.approx(2.0), "se_mm": pytest.approx(1.0)}
    assert "change_vs_first" not in result["variants"]["first"]


def test_the_reference_box_moves_each_edge_by_at_most_the_jitter_and_stays_in_the_image(hc18_cv):
    from hcmeasure.data.head_crops import ellipse_box
    from hcmeasure.measurement.ellipse import Ellipse

    e = Ellipse(cx=100.0, cy=80.0, a=60.0, b=40.0, angle=0.3)
    exact = np.array(ellipse_box(e))
    rng = np.random.default_rng(1)
    assert np.allclose(hc18_cv.reference_box(e, (540, 800), 0.0, rng), exact)
    w, h = exact[2] - exact[0], exact[3] - exact[1]
    moves = np.array([np.array(hc18_cv.reference_box(e, (540, 800), 0.2, rng)) - exact for _ in range(200)])
    limit = 0.2 * np.array([w, h, w, h])
    assert (np.abs(moves) <= limit + 1e-9).all()
    assert (np.abs(moves).max(0) > 0.8 * limit).all()  # edges do move about as far as asked
    near_edge = Ellipse(cx=20.0, cy=20.0, a=30.0, b=30.0, angle=0.0)
    box = hc18_cv.reference_box(near_edge, (540, 800), 0.0, rng)
    assert box[0] == 0.0 and box[1] == 0.0


def test_folds_are_measured_with_the_detector_recipes_test_settings_of_now(hc18_cv, tmp_path):
    """A fold trained before a test setting changed is measured as the published ensemble
    measures: the test keys come from the recipe, not from the run's own config."""
    def as_dict(opts):
        return dict(zip(opts[0::2], opts[1::2]))

    opts = hc18_cv.recipe_test_opts()
    assert opts[0::2] == list(hc18_cv.TEST_KEYS)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f'_BASE_: "{hc18_cv.DETECTOR_RECIPE}"\nINPUT:\n  MIN_SIZE_TEST: 224\n')
    changed = as_dict(hc18_cv.recipe_test_opts(recipe))
    assert changed["INPUT.MIN_SIZE_TEST"] == 224
    assert changed["HCMEASURE.INFERENCE.CPU_BF16"] == as_dict(opts)["HCMEASURE.INFERENCE.CPU_BF16"]


def test_refiners_of_several_variant_roots_are_one_folds_ensemble_members(hc18_cv, tmp_path):
    """``--refiner-root A --refiner-root B``: fold k's refiner of each root, in that order,
    as members averaged by one predictor; a root without fold k's refiner stops the run,
    naming the file."""
    for root in ("recipe", "variant"):
        ref = tmp_path / root / "f4" / "head_refiner"
        ref.mkdir(parents=True)
        (ref / "config.yaml").write_text("")
        (ref / "model_final.pth").write_bytes(b"")
    config, weights = hc18_cv._fold_refiner([tmp_path / "recipe", tmp_path / "variant"], 4)
    assert config == tmp_path / "recipe" / "f4" / "head_refiner" / "config.yaml"
    assert weights == [tmp_path / r / "f4" / "head_refiner" / "model_final.pth" for r in ("recipe", "variant")]
    with pytest.raises(SystemExit, match=r"variant/f0/head_refiner/model_final.pth: not trained yet"):
        hc18_cv._fold_refiner([tmp_path / "variant"], 0)
    args = hc18_cv.build_parser().parse_args(["predict", "--refiner-root", "A", "--refiner-root", "B"])
    assert args.refiner_root == [Path("A"), Path("B")]
