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
