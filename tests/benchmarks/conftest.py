"""Fixtures for the scripts in benchmarks/ (they are scripts, not modules of the package)."""
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="session")
def load_benchmark(load_script):
    """``load_benchmark("hc18_cv")`` -> benchmarks/hc18_cv.py imported as a module."""
    return lambda name: load_script(BENCHMARKS / f"{name}.py", f"hcmeasure_bench_{name}")
