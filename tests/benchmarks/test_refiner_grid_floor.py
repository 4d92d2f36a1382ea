"""benchmarks/refiner_grid_floor.py: with a perfect network, the refiner's crop grid and
contour fit cost a small fraction of a millimetre of HC."""
import json

import pytest


@pytest.fixture(scope="module")
def grid_floor(load_benchmark):
    return load_benchmark("refiner_grid_floor")


def test_a_drawn_reference_is_measured_within_a_fifth_of_a_millimetre(grid_floor, hc18_root, tmp_path):
    out = tmp_path / "floor.json"
    assert grid_floor.main(["--limit", "5", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n_images"] == result["n_measured"] == 5
    assert 0 < result["mad_mm"] < 0.2
    assert result["max_abs_mm"] >= result["mad_mm"]


def test_a_coarser_grid_costs_more(grid_floor, hc18_root, tmp_path):
    fine, coarse = tmp_path / "fine.json", tmp_path / "coarse.json"
    assert grid_floor.main(["--limit", "5", "--blur-cells", "0", "--json", str(fine)]) == 0
    assert grid_floor.main(["--limit", "5", "--blur-cells", "0", "--size", "32", "--json", str(coarse)]) == 0
    assert json.loads(coarse.read_text())["mad_mm"] > json.loads(fine.read_text())["mad_mm"]
