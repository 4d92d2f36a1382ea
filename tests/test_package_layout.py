"""Who may import whom inside hcmeasure: no library module imports the CLI, the HC core
imports none of the sister studies (polyp, VOC, cells), and no two modules import each
other."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hcmeasure"

#: The HC core: HC18 data, head crops, HeadRCNN, backbone, refiner, measurement, io,
#: predictor, report, the HC18 evaluator and the HC commands.
HC_CORE = [
    "data/hc18.py", "data/head_crops.py", "data/transforms.py", "io", "measurement",
    "modeling/meta_arch/head_rcnn.py", "modeling/backbone", "modeling/head_refiner.py", "modeling/loading.py",
    "modeling/checkpoint.py", "modeling/fuse.py", "predictor.py", "report.py", "report_chart.py",
    "evaluation/hc18.py", "cli/predict.py", "cli/predict_journal.py", "cli/predict_launch.py", "cli/fit.py",
    "cli/evaluate.py", "cli/report.py", "cli/convert_hc18.py", "cli/doctor.py", "cli/common.py",
]
#: Modules of the sister studies.
STUDIES = {
    "hcmeasure.data.polyp", "hcmeasure.data.voc", "hcmeasure.data.cells", "hcmeasure.evaluation.medseg",
    "hcmeasure.evaluation.cells", "hcmeasure.modeling.meta_arch.ednet", "hcmeasure.modeling.meta_arch.gloffnet",
    "hcmeasure.modeling.meta_arch.plain_unet",
}


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


def _imported_modules(path: Path) -> set[str]:
    known = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in _imports(path) if m in known}


def test_no_library_module_imports_the_cli():
    offenders = {
        _module_name(p): sorted(m for m in _imported_modules(p) if m.startswith("hcmeasure.cli"))
        for p in PACKAGE.rglob("*.py") if "cli" not in p.relative_to(PACKAGE).parts
    }
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize("path", _files(HC_CORE), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_hc_core_imports_no_sister_study(path):
    assert sorted(_imported_modules(path) & STUDIES) == []


def test_no_two_modules_import_each_other():
    graph = {_module_name(p): _imported_modules(p) for p in PACKAGE.rglob("*.py")}
    loops = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps
                    if b != a and a in graph.get(b, ()) and not b.startswith(a) and not a.startswith(b)})
    assert loops == []
