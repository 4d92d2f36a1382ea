"""Bfloat16 inference (hcmeasure.modeling.precision): only the heavy convolutional parts
run in bfloat16, their outputs go on in float32, and the choice is refused or dropped
where it cannot help."""
import logging

import pytest
import torch
from torch import nn

from detectron2.config import get_cfg

from hcmeasure.config import add_hcmeasure_config
from hcmeasure.modeling import precision
from hcmeasure.modeling.precision import autocast_bf16_inference, bf16_models


class _Backbone(nn.Module):
    size_divisibility = 32

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        return {"p2": self.conv(x), "sizes": torch.tensor([1, 2])}


class _Detector(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = _Backbone()
        self.box_head = nn.Linear(8, 4)

    def forward(self, x):
        feats = self.backbone(x)["p2"]
        return self.box_head(feats.mean((2, 3)))


def _cfg(names, device="cpu"):
    cfg = add_hcmeasure_config(get_cfg())
    cfg.MODEL.DEVICE = device
    cfg.HCMEASURE.INFERENCE.CPU_BF16 = list(names)
    return cfg


def test_the_backbone_runs_in_bf16_and_hands_on_float32_with_its_attributes_kept():
    torch.manual_seed(0)
    model = _Detector().eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.inference_mode():
        want = model(x)
        assert autocast_bf16_inference(model) == ["backbone"]
        feats = model.backbone(x)
        got = model(x)
    assert model.backbone.size_divisibility == 32
    assert feats["p2"].dtype == torch.float32 and feats["sizes"].dtype == torch.int64
    assert got.dtype == torch.float32  # the head after the backbone ran in float32
    assert torch.allclose(got, want, atol=0.05), (got - want).abs().max()


def test_wrapping_twice_wraps_once():
    model = _Detector().eval()
    autocast_bf16_inference(model)
    forward = model.backbone.forward
    autocast_bf16_inference(model)
    assert model.backbone.forward is forward


def test_a_model_without_heavy_parts_is_left_alone():
    model = nn.Linear(2, 2)
    assert autocast_bf16_inference(model) == []
    assert "forward" not in vars(model)


def test_unknown_models_are_an_error_naming_the_choices():
    with pytest.raises(ValueError, match="unknown model.*'encoder'.*detector, refiner"):
        bf16_models(_cfg(["encoder"]))


def test_no_bf16_on_a_gpu_or_when_not_asked():
    assert bf16_models(_cfg(["detector"], device="cuda")) == frozenset()
    assert bf16_models(_cfg([])) == frozenset()


def test_a_cpu_without_native_bf16_runs_float32_and_says_so(monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level(logging.INFO, logger=precision.__name__):
        assert bf16_models(_cfg(["detector", "refiner"])) == frozenset()
    assert "no native bfloat16" in caplog.text


def test_a_cpu_with_native_bf16_runs_what_was_asked(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert bf16_models(_cfg(["refiner"])) == frozenset({"refiner"})
