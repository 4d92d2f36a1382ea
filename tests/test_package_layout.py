"""Who may import whom inside hcmeasure: no library module imports the CLI, the HC core
imports none of the sister studies (polyp, VOC, cells), the shared semantic base imports
no study, no study imports another, and no two modules import each other."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hcmeasure"

#: The HC core: HC18 data, head crops, HeadRCNN, backbone, refiner, measurement, io,
#: predictor, report, the HC18 evaluator and the HC commands.
HC_CORE = [
    "data", "io", "measurement", "modeling", "evaluation", "engine", "solver.py",
    "predictor.py", "report.py", "report_chart.py", "known_warnings.py",
    "cli/predict.py", "cli/predict_journal.py", "cli/predict_launch.py", "cli/fit.py",
    "cli/evaluate.py", "cli/report.py", "cli/convert_hc18.py", "cli/doctor.py", "cli/common.py", "cli/main.py",
]
#: The sister studies, each a package under hcmeasure/studies/.
STUDY_PACKAGES = sorted(p.name for p in (PACKAGE / "studies").iterdir() if (p / "__init__.py").is_file())
#: Where the package's parts are put together: importing them imports everything.
COMPOSITION_ROOTS = {"hcmeasure", "hcmeasure.config", "hcmeasure.studies"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of the hcmeasure modules ``path`` imports (at any depth of the file)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("hcmeasure")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("hcmeasure"):
                out.add(mod)
                out |= {f"{mod}.{a.name}" for a in node.names}  # "from . import data"
    return out


def _files(entries) -> list[Path]:
    files = []
    for e in entries:
        p = PACKAGE / e
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return files


KNOWN = {_module_name(p) for p in PACKAGE.rglob("*.py")}
GRAPH = {_module_name(p): {m for m in _imports(p) if m in KNOWN} for p in PACKAGE.rglob("*.py")}
#: Modules of the sister studies.
STUDIES = {m for m in KNOWN if m.startswith("hcmeasure.studies.")}


def _imported_modules(path: Path) -> set[str]:
    return GRAPH[_module_name(path)]


def _with_packages(module: str) -> set[str]:
    """``module`` and the packages above it, which Python runs first."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & KNOWN


def _reached(module: str) -> set[str]:
    """Every module that importing ``module`` runs (its packages included), following
    imports but not through the composition roots."""
    seen, todo = set(), [module]
    while todo:
        for m in set().union(*map(_with_packages, GRAPH[todo.pop()])) - seen:
            if m not in COMPOSITION_ROOTS:
                seen.add(m)
                todo.append(m)
    return seen


def _study_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "studies" else None


def test_there_are_three_studies_and_a_semantic_base():
    assert STUDY_PACKAGES == ["cells", "polyp", "voc"]
    assert "hcmeasure.semseg.unet" in KNOWN and "hcmeasure.semseg.segmentor" in KNOWN


def test_no_library_module_imports_the_cli():
    offenders = {
        _module_name(p): sorted(m for m in _imported_modules(p) if m.startswith("hcmeasure.cli"))
        for p in PACKAGE.rglob("*.py") if "cli" not in p.relative_to(PACKAGE).parts
    }
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize("path", _files(HC_CORE), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_hc_core_imports_no_sister_study(path):
    assert sorted(_imported_modules(path) & STUDIES) == []
    # nor through the modules it imports (the HC core may use the semantic base)
    assert sorted(m for m in _reached(_module_name(path)) if m in STUDIES or m == "hcmeasure.studies") == []


@pytest.mark.parametrize("path", _files(["semseg"]), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_semantic_base_imports_no_study(path):
    assert sorted(m for m in _reached(_module_name(path)) if m in STUDIES or m == "hcmeasure.studies") == []


@pytest.mark.parametrize("path", _files([f"studies/{s}" for s in STUDY_PACKAGES]),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_study_imports_another(path):
    own = _study_of(_module_name(path))
    others = {m for m in _imported_modules(path) if _study_of(m) not in (None, own)}
    assert sorted(others) == []


@pytest.mark.parametrize("study", STUDY_PACKAGES)
def test_each_study_keeps_its_config_data_and_models_together(study):
    room = PACKAGE / "studies" / study
    assert {"__init__.py", "config.py", "data.py"} <= {p.name for p in room.glob("*.py")}
    init = GRAPH[f"hcmeasure.studies.{study}"]
    # importing the study registers its datasets and models, and gives its config function
    assert f"hcmeasure.studies.{study}.data" in init and f"hcmeasure.studies.{study}.config" in init
    assert f"def add_{study}_config(cfg)" in (room / "config.py").read_text()


def test_no_two_modules_import_each_other():
    graph = GRAPH
    loops = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps
                    if b != a and a in graph.get(b, ()) and not b.startswith(a) and not a.startswith(b)})
    assert loops == []
