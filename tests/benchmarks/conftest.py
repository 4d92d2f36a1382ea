"""Fixtures for the scripts in benchmarks/ (they are scripts, not modules of the package)."""
import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="session")
def load_benchmark():
    """``load_benchmark("hc18_cv")`` -> benchmarks/hc18_cv.py imported as a module."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"hcmeasure_bench_{name}", BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
