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
