"""Warnings and notices of other packages that hcmeasure knows, and keeps off the console.

Detectron2, fvcore, pycocotools and torch print a few deprecation notices about their
own code, which a user of hcmeasure can do nothing about. They are listed once, in
:data:`KNOWN_WARNINGS`, each with where it comes from:

* importing :mod:`hcmeasure` holds back those raised while it imports Detectron2
  (:func:`deferred_import_warnings`); any other warning of that import is shown as usual;
* each ``hcmeasure`` command runs inside :func:`quiet_cli`, which hides the known ones
  (and torch's ``is_fx_tracing`` log notice) and, with ``--verbose``, shows them all;
* processes a command starts (``predict --num-processes``) import Detectron2 before
  hcmeasure; :func:`quiet_child_processes` gives them the import-time ones through
  ``PYTHONWARNINGS``;
* ``pyproject.toml``'s ``[tool.pytest.ini_options] filterwarnings`` names the same
  messages for the test suite (``tests/test_known_warnings.py`` checks that the two lists
  agree), so that a new warning stands out.

Warnings of hcmeasure's own code are fixed where they arise, not listed here.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KnownWarning", "KNOWN_WARNINGS", "KNOWN_LOG_NOTICES", "deferred_import_warnings",
           "quiet_cli", "quiet_child_processes", "is_known"]


@dataclass(frozen=True)
class KnownWarning:
    category: type[Warning]
    #: regular expression matched at the start of the message (no ':', so that the same
    #: text serves as a pytest ``filterwarnings`` entry)
    message: str
    #: regular expression matched against the module the warning is attributed to ("" any)
    module: str
    source: str
    #: raised while Detectron2 is imported (so before any command runs)
    at_import: bool = False


KNOWN_WARNINGS: tuple[KnownWarning, ...] = (
    KnownWarning(FutureWarning, r"`torch\.jit\.script` is deprecated", "",
                 "fvcore.nn and detectron2.modeling script a few functions when imported", at_import=True),
    KnownWarning(UserWarning, r"torch\.meshgrid. in an upcoming release", "",
                 "detectron2.modeling.anchor_generator calls torch.meshgrid without indexing="),
    KnownWarning(UserWarning, r"pkg_resources is deprecated as an API", "",
                 "detectron2.model_zoo imports pkg_resources"),
    KnownWarning(DeprecationWarning, r"__array__ implementation doesn't accept a copy keyword", "",
                 "numpy 2 on torch tensors and pycocotools masks in detectron2.evaluation and "
                 "pycocotools.mask"),
    KnownWarning(UserWarning, r"The given NumPy array is not writable", r"fvcore\.transforms",
                 "fvcore's flip after Detectron2's resize, which returns a read-only array"),
)

#: (logger, start of the message): notices torch logs through :mod:`logging`
KNOWN_LOG_NOTICES: tuple[tuple[str, str], ...] = (
    # detectron2.modeling.poolers asks torch.fx whether it is tracing, on every forward
    ("torch.fx._symbolic_trace", "is_fx_tracing will return true"),
)

#: known warnings raised while ``import hcmeasure`` imported Detectron2 (shown by ``--verbose``)
DEFERRED: list[warnings.WarningMessage] = []


def is_known(message: Warning | str, category: type[Warning], module: str = "") -> bool:
    text = str(message)
    return any(issubclass(category, k.category) and re.match(k.message, text, re.I)
               and (not k.module or re.match(k.module, module)) for k in KNOWN_WARNINGS)


def _module_of(filename: str) -> str:
    """Dotted name of the module in ``filename`` (its enclosing packages up to the first
    folder without ``__init__.py``), as ``warnings`` attributes a warning raised there."""
    path = Path(filename)
    parts = [] if path.stem == "__init__" else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts)


@contextlib.contextmanager
def deferred_import_warnings():
    """Hold back the known warnings raised inside the block (kept in :data:`DEFERRED`);
    every other warning is shown as it would have been."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        yield
    for w in caught:
        module = _module_of(w.filename)
        if is_known(w.message, w.category, module):
            DEFERRED.append(w)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, module=module, source=w.source)


class _DropNotices(logging.Filter):
    def __init__(self, start: str):
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.start)


@contextlib.contextmanager
def quiet_cli(verbose: bool = False, *, show_deferred: bool = True):
    """One command's warnings: the known ones hidden, or with ``verbose`` shown, those
    held back at import included (``show_deferred``; a started worker process, whose
    parent showed them, passes False). stdout is line-buffered, so that its lines and
    stderr's come out in the order they were written."""
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(line_buffering=True)
    if verbose:
        if show_deferred:
            for w in DEFERRED:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        yield
        return
    filters = [(logging.getLogger(name), _DropNotices(start)) for name, start in KNOWN_LOG_NOTICES]
    with warnings.catch_warnings():
        for k in KNOWN_WARNINGS:
            warnings.filterwarnings("ignore", message=k.message, category=k.category, module=k.module)
        for logger, f in filters:
            logger.addFilter(f)
        try:
            yield
        finally:
            for logger, f in filters:
                logger.removeFilter(f)


@contextlib.contextmanager
def quiet_child_processes(verbose: bool = False):
    """Processes started inside the block (Python reads ``PYTHONWARNINGS`` when it starts)
    ignore the known import-time warnings, unless ``verbose``."""
    if verbose:
        yield
        return
    before = os.environ.get("PYTHONWARNINGS")
    options = [f"ignore:{k.message.replace(chr(92), '')}:{k.category.__name__}"
               for k in KNOWN_WARNINGS if k.at_import]
    os.environ["PYTHONWARNINGS"] = ",".join(([before] if before else []) + options)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONWARNINGS", None)
        else:
            os.environ["PYTHONWARNINGS"] = before
