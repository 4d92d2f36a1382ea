"""The README and docs/ stay true to the tree: every measurements.csv column is documented,
the paths they name exist, the layout section maps every package, links resolve."""
import re
from pathlib import Path

import pytest

from hcmeasure.io.tables import MEASUREMENT_COLUMNS

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
#: pages another piece of work adds; a link to them is not checked until they exist
PENDING: set[str] = set()


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_readme_is_short():
    assert len(_text(README).splitlines()) <= 250


@pytest.mark.parametrize("page", [README, REPO / "docs" / "outputs.md"], ids=lambda p: p.name)
def test_every_measurement_column_is_documented(page):
    text = _text(page)
    assert [c for c in MEASUREMENT_COLUMNS if f"`{c}`" not in text] == []


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_named_repository_paths_exist(page):
    text = _text(page)
    names = set(re.findall(r"(?<![\w./-])((?:configs|tests/configs|tools|benchmarks|hcmeasure)/[\w./-]+\.(?:yaml|py))", text))
    if page.name == "history.md":  # the page that tells how to restore removed configs
        names = {n for n in names if not n.startswith("configs/")}
    assert [n for n in sorted(names) if not (REPO / n).exists()] == []
    # config names given without their folder (tables of configs) are in the tree too
    if page.name != "history.md":
        bare = set(re.findall(r"`([A-Za-z][\w.-]*\.yaml)`", text))
        roots = (REPO / "configs", REPO / "tests" / "configs", REPO / "hcmeasure" / "model_zoo")
        assert [n for n in sorted(bare) if not any(any(r.rglob(n)) for r in roots)] == []


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of the page's headings."""
    prose = "".join(_text(page).split("```")[::2])  # headings outside code blocks
    heads = re.findall(r"^#+ (.+)$", prose, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_relative_links_resolve(page):
    for target, anchor in re.findall(r"\]\(([^)#:]*)(?:#([^)]*))?\)", _text(page)):
        path = (page.parent / target).resolve() if target else page
        if str(path.relative_to(REPO)) in PENDING:
            continue
        assert path.exists(), f"{page.name} links to {target}"
        if anchor:
            assert anchor in _anchors(path), f"{page.name} links to {target}#{anchor}"


def test_the_layout_section_maps_every_package():
    block = _text(README).split("## Layout", 1)[1].split("```")[1]
    packages = sorted(p.parent.relative_to(REPO / "hcmeasure").as_posix()
                      for p in (REPO / "hcmeasure").rglob("__init__.py") if p.parent != REPO / "hcmeasure")
    top = [p for p in packages if "/" not in p]
    assert [p for p in top if f"{p}/" not in block] == []
    # every file the map names is there
    for name in re.findall(r"[\w/]+\.py", block):
        assert list(REPO.glob(f"hcmeasure/**/{name}")) or any((REPO / d / name).exists() for d in ("tools", "benchmarks")), name
    for entry in re.findall(r"^(\S+/)", block, flags=re.M):
        assert (REPO / entry).is_dir() or (REPO / "hcmeasure" / entry).is_dir(), entry
