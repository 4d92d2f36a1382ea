"""hcmeasure.known_warnings: the known warnings of other packages are held back at import,
hidden by the CLI, shown by --verbose, and listed the same in pyproject.toml."""
import logging
import os
import re
import sys
import warnings
from pathlib import Path

import pytest

from hcmeasure import known_warnings as kw

REPO = Path(__file__).resolve().parents[1]


def test_pyproject_filters_the_same_warnings():
    tomllib = pytest.importorskip("tomllib")
    with open(REPO / "pyproject.toml", "rb") as f:
        filters = tomllib.load(f)["tool"]["pytest"]["ini_options"]["filterwarnings"]
    expected = [":".join(["ignore", k.message, k.category.__name__] + ([k.module] if k.module else []))
                for k in kw.KNOWN_WARNINGS]
    assert filters == expected
    for k in kw.KNOWN_WARNINGS:
        assert ":" not in k.message and re.compile(k.message) and k.source


def test_import_holds_back_the_known_warnings_and_shows_the_others():
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        before = len(kw.DEFERRED)
        with kw.deferred_import_warnings():
            warnings.warn("`torch.jit.script` is deprecated. Please switch to `torch.compile`", FutureWarning)
            warnings.warn("something new", UserWarning)
    assert [str(w.message) for w in shown] == ["something new"]
    assert str(kw.DEFERRED[-1].message).startswith("`torch.jit.script` is deprecated")
    del kw.DEFERRED[before:]


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_quiet_cli_hides_known_warnings_and_notices_verbose_shows_them():
    fx = logging.getLogger("torch.fx._symbolic_trace")
    records = _Records()
    fx.addHandler(records)

    def emit():
        warnings.warn("torch.meshgrid: in an upcoming release, it will be required to pass the indexing "
                      "argument.", UserWarning)
        warnings.warn("our own problem", UserWarning)
        fx.warning("is_fx_tracing will return true for both fx.symbolic_trace and torch.export.")
        fx.warning("another torch.fx notice")

    try:
        for verbose, expected in ((False, ["our own problem"]),
                                  (True, ["torch.meshgrid: in an upcoming release, it will be required to "
                                          "pass the indexing argument.", "our own problem"])):
            records.messages.clear()
            with warnings.catch_warnings(record=True) as shown:
                warnings.simplefilter("always")
                with kw.quiet_cli(verbose, show_deferred=False):
                    emit()
            assert [str(w.message) for w in shown] == expected
            assert [m.startswith("is_fx_tracing") for m in records.messages] == [True, False][not verbose:]
    finally:
        fx.removeHandler(records)
    # Outside a command nothing is filtered.
    assert not fx.filters


def test_the_fvcore_filter_is_for_fvcore_only():
    assert kw.is_known("The given NumPy array is not writable, and PyTorch ...", UserWarning,
                       "fvcore.transforms.transform")
    assert not kw.is_known("The given NumPy array is not writable, and PyTorch ...", UserWarning,
                           "hcmeasure.predictor")
    import fvcore.nn
    import fvcore.transforms.transform

    assert kw._module_of(fvcore.transforms.transform.__file__) == "fvcore.transforms.transform"
    assert kw._module_of(fvcore.nn.__file__) == "fvcore.nn"
    assert kw._module_of(kw.__file__) == "hcmeasure.known_warnings"


def test_started_processes_get_the_import_time_ones_through_pythonwarnings(monkeypatch):
    monkeypatch.setenv("PYTHONWARNINGS", "error::ResourceWarning")
    with kw.quiet_child_processes():
        options = os.environ["PYTHONWARNINGS"].split(",")
    assert options[0] == "error::ResourceWarning"
    import_time = [k for k in kw.KNOWN_WARNINGS if k.at_import]
    assert len(options) == 1 + len(import_time) >= 2
    for option, k in zip(options[1:], import_time):
        _, literal, category = option.split(":")
        assert re.fullmatch(k.message, literal) and category == k.category.__name__
    assert os.environ["PYTHONWARNINGS"] == "error::ResourceWarning"
    with kw.quiet_child_processes(verbose=True):
        assert os.environ["PYTHONWARNINGS"] == "error::ResourceWarning"
