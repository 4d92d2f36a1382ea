"""Torchvision ResNet checkpoints load into Detectron2's ResNet with the same outputs."""
import pytest
import torch
import torchvision
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone.resnet import build_resnet_backbone

from hcmeasure.modeling.checkpoint import (
    HCMeasureCheckpointer,
    convert_torchvision_resnet,
    is_torchvision_resnet,
)


def _d2_resnet(depth):
    cfg = get_cfg()
    cfg.MODEL.RESNETS.DEPTH = depth
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res5"]
    cfg.MODEL.RESNETS.STRIDE_IN_1X1 = False  # torchvision's bottleneck layout
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64 if depth < 50 else 256
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    cfg.MODEL.RESNETS.NORM = "FrozenBN"
    return build_resnet_backbone(cfg, ShapeSpec(channels=3)).eval()


def _randomised(tv):
    """Random but non-trivial BN statistics, so a wrong mapping cannot pass by chance."""
    g = torch.Generator().manual_seed(0)
    for m in tv.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return tv.eval()


def test_converted_resnet50_reproduces_torchvision_features(tmp_path):
    tv = _randomised(torchvision.models.resnet50(weights=None))
    path = tmp_path / "resnet50_tv.pth"
    torch.save(tv.state_dict(), path)
    assert is_torchvision_resnet(tv.state_dict())

    d2 = _d2_resnet(50)
    HCMeasureCheckpointer(d2).load(str(path))
    x = torch.rand(1, 3, 128, 160)
    with torch.no_grad():
        feats = tv.layer4(tv.layer3(tv.layer2(tv.layer1(tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))))))
        ours = d2(x)["res5"]
    torch.testing.assert_close(ours, feats, rtol=1e-4, atol=1e-4)


def test_conversion_names_cover_every_detectron2_parameter():
    tv = torchvision.models.resnet18(weights=None)
    converted = convert_torchvision_resnet(tv.state_dict())
    d2 = _d2_resnet(18)
    assert set(d2.state_dict()) == set(converted)
    assert not any(k.startswith("fc.") for k in converted)


def test_missing_local_weights_name_the_file_and_the_fix(tmp_path):
    missing = tmp_path / "stage1" / "model_final.pth"
    checkpointer = HCMeasureCheckpointer(torch.nn.Linear(2, 2))
    with pytest.raises(FileNotFoundError, match="MODEL.WEIGHTS .*model_final.pth: no such checkpoint file") as err:
        checkpointer.load(str(missing))
    assert "first stage" in str(err.value)
    assert checkpointer.load("") == {}  # no weights: nothing to load, as in Detectron2
