"""Shared fixtures. Real datasets are read from ``../shared/data`` beside the repo
(or ``$HCMEASURE_SHARED``); tests that need them are skipped, saying so, when absent."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HCMEASURE_SHARED", REPO.parent / "shared"))


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(
            f"{what} not found at {path}: put the shared data folder beside the repository "
            "(../shared) or set HCMEASURE_SHARED"
        )
    return path


@pytest.fixture(scope="session")
def load_script():
    """``load_script(path, module_name)`` -> the script at ``path`` (tools/, benchmarks/:
    scripts, not modules of the package) imported as a module of that name."""

    def load(path: Path, module_name: str):
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def hc18_root() -> Path:
    """Root of the real HC18 copy (training_set/, test_set/, the two CSVs)."""
    return _need(SHARED / "data" / "hc18", "HC18 data")


@pytest.fixture(scope="session")
def kvasir_root() -> Path:
    """Real Kvasir-SEG subset (images/, masks/, pranet_*.txt)."""
    return _need(SHARED / "data" / "kvasir-seg", "Kvasir-SEG data")


@pytest.fixture(scope="session")
def neopolyp_root() -> Path:
    """Real BKAI-IGH NeoPolyp subset (train/, train_gt/, test/)."""
    return _need(SHARED / "data" / "bkai-neopolyp", "BKAI-IGH NeoPolyp data")


@pytest.fixture(scope="session")
def cvc_colondb_root() -> Path:
    """Real CVC-ColonDB subset (CVC-ColonDB/<n>.tif(f), p<n>.tiff, cp<n>.tiff)."""
    return _need(SHARED / "data" / "cvc-colondb", "CVC-ColonDB data")


@pytest.fixture
def one_torch_thread():
    """Torch runs on one thread during the test (small models: threads only add overhead)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
