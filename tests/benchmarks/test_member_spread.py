"""benchmarks/member_spread.py: the ensemble members' disagreement on unseen scans, from
which the review limit on it is set; a single model is refused."""
import json

import pytest

from hcmeasure.predictor import DEFAULT_MODEL_DIR


@pytest.fixture(scope="module")
def member_spread(load_benchmark):
    return load_benchmark("member_spread")


def test_the_default_ensemble_reports_each_scans_spread(member_spread, hc18_root, tmp_path):
    if not (DEFAULT_MODEL_DIR / "config.yaml").is_file():
        pytest.skip("no default model installed")
    out = tmp_path / "spread.json"
    assert member_spread.main(["--images", str(hc18_root / "test_set"), "--limit", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["members"] == 5 and result["images"] == 2
    spreads = list(result["per_image_pct"].values())
    assert len(spreads) == result["measured"] > 0
    # five members trained on different folds never agree exactly, and agree within a few %
    assert all(0 < s < 5 for s in spreads)
    assert result["max_pct"] == pytest.approx(max(spreads), abs=1e-3)


def test_a_single_model_is_refused_naming_its_config(member_spread, hc18_root, tmp_path):
    if not (DEFAULT_MODEL_DIR / "config_single.yaml").is_file():
        pytest.skip("no default ensemble installed")
    single = tmp_path / "single"
    single.mkdir()
    (single / "config.yaml").write_bytes((DEFAULT_MODEL_DIR / "config_single.yaml").read_bytes())
    for name in ("model_final.pth", "head_refiner.yaml", "head_refiner_m0.pth", "trust.json"):
        (single / name).symlink_to(DEFAULT_MODEL_DIR / name)
    with pytest.raises(SystemExit, match=r"config\.yaml names 1 refiner member"):
        member_spread.main(["--model-dir", str(single), "--images", str(hc18_root / "test_set"), "--limit", "1"])


def _write_oof(path, spreads, errors_mm):
    import csv

    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["filename", "diff_mm", "member_spread"])
        w.writeheader()
        for i, (s, e) in enumerate(zip(spreads, errors_mm)):
            w.writerow({"filename": f"{i:03d}_HC.png", "diff_mm": e, "member_spread": s})


def test_out_of_fold_rows_report_what_the_limit_catches(member_spread, tmp_path):
    """With ``--oof``, the spread of members that never saw the image is compared with
    the error: the 2 % limit's catches of errors over 5 and 10 mm, and the AUC."""
    oof, out = tmp_path / "oof.csv", tmp_path / "spread.json"
    # errors 12, -6 and 1 mm above the limit; 7 and 0.5 mm below it
    _write_oof(oof, [0.05, 0.03, 0.025, 0.001, 0.002], [12.0, -6.0, 1.0, 7.0, 0.5])
    assert member_spread.main(["--oof", str(oof), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["measured"] == 5 and result["above_limit"] == 3
    assert (result["caught_over_5mm"], result["errors_over_5mm"]) == (2, 3)
    assert (result["caught_over_10mm"], result["errors_over_10mm"]) == (1, 1)
    # positives (12, 6, 7 mm) against negatives (1, 0.5 mm): 4 of 6 pairs ordered
    assert result["auc_over_5mm"] == pytest.approx(4 / 6)
    assert result["max_pct"] == pytest.approx(5.0)


def test_out_of_fold_rows_of_one_model_are_refused(member_spread, tmp_path):
    oof = tmp_path / "oof.csv"
    _write_oof(oof, [0.0, 0.0], [1.0, 7.0])
    with pytest.raises(SystemExit, match="member_spread is 0 on every row: one model per image"):
        member_spread.main(["--oof", str(oof)])
