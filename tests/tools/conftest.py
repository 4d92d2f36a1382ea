"""Fixtures for the scripts in tools/ (they are scripts, not modules of the package)."""
import importlib.util
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"


@pytest.fixture(scope="session")
def load_tool():
    """``load_tool("publish_model")`` -> tools/publish_model.py imported as a module."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"hcmeasure_tool_{name}", TOOLS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
