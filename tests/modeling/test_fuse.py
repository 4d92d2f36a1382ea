"""Inference-time fusion: BatchNorm folded into convolutions changes no output."""
import pytest
import torch
from torch import nn

from detectron2.layers import FrozenBatchNorm2d

from hcmeasure.modeling.backbone.efficientnet_lite import EfficientNetLite
from hcmeasure.modeling.fuse import fold_batchnorm, fuse_for_inference, static_same_padding_conv


def _random_bn(channels: int, frozen: bool = False) -> nn.Module:
    bn = FrozenBatchNorm2d(channels) if frozen else nn.BatchNorm2d(channels)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(channels) + 0.5)
        bn.bias.copy_(torch.randn(channels))
        bn.running_mean.copy_(torch.randn(channels))
        bn.running_var.copy_(torch.rand(channels) + 0.1)
    return bn.eval()


@pytest.mark.parametrize("conv_bias", [False, True])
@pytest.mark.parametrize("frozen", [False, True])
def test_folded_convolution_equals_convolution_then_batchnorm(conv_bias, frozen):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 8, 3, padding=1, bias=conv_bias).eval()
    bn = _random_bn(8, frozen)
    x = torch.randn(2, 6, 11, 13)
    with torch.no_grad():
        expected = bn(conv(x))
        fold_batchnorm(conv, bn)
        torch.testing.assert_close(conv(x), expected, rtol=1e-5, atol=1e-5)
    assert conv.bias is not None


def test_batchnorm_in_training_mode_is_not_folded():
    conv, bn = nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4).train()
    with pytest.raises(RuntimeError, match="eval"):
        fold_batchnorm(conv, bn)


def test_batchnorm_of_other_width_is_rejected():
    with pytest.raises(ValueError, match="5 BatchNorm channels after a 4-channel"):
        fold_batchnorm(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(5).eval())


@pytest.mark.parametrize("kernel,size", [(3, (9, 14)), (5, (10, 7)), (1, (6, 6))])
def test_static_padding_equals_tensorflow_same_padding_at_stride_one(kernel, size):
    from efficientnet_lite_pytorch.utils import Conv2dDynamicSamePadding

    torch.manual_seed(0)
    dynamic = Conv2dDynamicSamePadding(4, 4, kernel, stride=1, groups=4, bias=False)
    static = static_same_padding_conv(dynamic)
    assert type(static) is nn.Conv2d
    x = torch.randn(1, 4, *size)
    with torch.no_grad():
        torch.testing.assert_close(static(x), dynamic(x))


def test_a_plain_convolution_keeps_its_own_padding():
    valid = nn.Conv2d(4, 4, 3, padding=0)
    assert static_same_padding_conv(valid) is valid


def test_strided_same_padding_stays_dynamic():
    from efficientnet_lite_pytorch.utils import Conv2dDynamicSamePadding

    conv = Conv2dDynamicSamePadding(4, 4, 3, stride=2)
    assert static_same_padding_conv(conv) is conv


def test_fused_efficientnet_lite_gives_the_same_features_without_batchnorm():
    torch.manual_seed(0)
    net = EfficientNetLite("efficientnet-lite0").eval()
    for m in net.modules():  # non-trivial statistics, so folding really changes the weights
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    x = torch.randn(1, 3, 97, 130)  # odd sizes: the strided convolutions pad unevenly
    with torch.no_grad():
        expected = net(x)
        # stem + 16 blocks x (depthwise, projection) + 15 expansions (block 0 has none)
        assert fuse_for_inference(net) == 1 + 16 * 2 + 15
        got = net(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    for k in expected:
        torch.testing.assert_close(got[k], expected[k], rtol=1e-4, atol=1e-4)
    assert fuse_for_inference(net) == 0  # already fused


def test_fusing_a_training_model_is_refused():
    with pytest.raises(RuntimeError, match="eval"):
        fuse_for_inference(EfficientNetLite("efficientnet-lite0").train())
