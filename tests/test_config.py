"""Every config under configs/ (and the tiny test schedules under tests/configs/) loads
with get_cfg() + add_hcmeasure_config() and builds."""
from pathlib import Path

import pytest
from detectron2.config import get_cfg

import hcmeasure
from hcmeasure.config import add_hcmeasure_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for root in (REPO / "configs", REPO / "tests" / "configs") for p in root.rglob("*.yaml")
                 if not p.name.startswith("Base-"))


def test_there_are_configs():
    assert CONFIGS
    # Tiny test schedules live with the tests, the recipes under configs/.
    assert not [p for p in (REPO / "configs").rglob("*tiny_test*")]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_config_merges(path):
    cfg = get_cfg()
    hcmeasure.add_hcmeasure_config(cfg)
    cfg.merge_from_file(str(path))
    assert cfg.MODEL.META_ARCHITECTURE


def test_add_config_twice_is_harmless():
    cfg = get_cfg()
    add_hcmeasure_config(cfg)
    cfg.HCMEASURE.POSTPROCESS.MASK_THRESHOLD = 0.3
    add_hcmeasure_config(cfg)
    assert cfg.HCMEASURE.POSTPROCESS.MASK_THRESHOLD == 0.3


def test_importing_hcmeasure_registers_datasets_and_architectures():
    from detectron2.data import DatasetCatalog
    from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY

    assert {"hc18_train", "hc18_val", "hc18_test"} <= set(DatasetCatalog.list())
    assert "HeadRCNN" in META_ARCH_REGISTRY
    assert "build_efficientnet_lite_fpn_backbone" in BACKBONE_REGISTRY


def _keys(node, prefix=""):
    out = set()
    for k, v in node.items():
        out |= _keys(v, f"{prefix}{k}.") if isinstance(v, type(node)) else {prefix + k}
    return out


def test_add_hcmeasure_config_composes_the_hc_core_the_semantic_base_and_each_study():
    from hcmeasure.config import add_hc_config
    from hcmeasure.semseg import add_semseg_config
    from hcmeasure.studies.cells import add_cells_config
    from hcmeasure.studies.polyp import add_polyp_config
    from hcmeasure.studies.voc import add_voc_config

    rooms = [add_hc_config, add_semseg_config, add_polyp_config, add_voc_config, add_cells_config]
    base = _keys(get_cfg())
    added = {f.__name__: _keys(f(get_cfg())) - base for f in rooms}
    # every room adds keys of its own, no key is added by two
    assert all(added.values())
    names = list(added)
    assert [(a, b) for i, a in enumerate(names) for b in names[i + 1:] if added[a] & added[b]] == []
    cfg = get_cfg()
    for f in reversed(rooms):  # in any order
        f(cfg)
    assert cfg.dump() == add_hcmeasure_config(get_cfg()).dump()
    assert _keys(cfg) - base == set().union(*added.values())


@pytest.mark.parametrize("module", ["hcmeasure/config.py", "hcmeasure/semseg/config.py",
                                    *sorted(str(p.relative_to(REPO)) for p in (REPO / "hcmeasure/studies").glob("*/config.py"))])
def test_every_config_key_has_a_comment(module):
    lines = (REPO / module).read_text().splitlines()
    missing = []
    for i, line in enumerate(lines):
        if not line.lstrip().startswith("_C.") or " = " not in line:
            continue
        j = i - 1
        while j >= 0 and lines[j].lstrip().startswith("if "):  # a guard between comment and key
            j -= 1
        if "#" not in line and not lines[j].lstrip().startswith("#"):
            missing.append(line.strip())
    assert missing == []
