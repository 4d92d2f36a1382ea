"""The semantic base's parts: encoders report their maps and are built by name from a
Detectron2 registry, decoder widths, pretrained ResNet weights from a local file."""
import pytest
import torch

from hcmeasure.semseg.parts import ResNetEncoder, UNetDecoder, build_encoder


def test_encoders_report_their_maps():
    x = torch.rand(1, 3, 64, 64)
    for enc in (build_encoder("unet", width=4), ResNetEncoder("resnet34")):
        feats = enc(x)
        assert len(feats) == 5
        for f, c, s in zip(feats, enc.out_channels, enc.strides):
            assert f.shape[1] == c and f.shape[-1] == 64 // s


def test_encoders_are_built_by_name_from_a_detectron2_registry():
    from detectron2.utils.registry import Registry

    from hcmeasure.semseg.parts import SEG_ENCODER_REGISTRY

    assert isinstance(SEG_ENCODER_REGISTRY, Registry)
    assert {"unet", "resnet18", "resnet34", "resnet50", "efficientnet-lite0"} <= {n for n, _ in SEG_ENCODER_REGISTRY}
    with pytest.raises(KeyError, match="unknown MODEL.SEG_ENCODER.NAME 'vgg16'; known: .*'resnet34'"):
        build_encoder("vgg16")


def test_decoder_channels_are_checked():
    with pytest.raises(ValueError, match="5 channel values"):
        UNetDecoder((64, 64, 128, 256, 512), (2, 4, 8, 16, 32), [64, 32])


def test_classic_unet_decoder_widths():
    dec = UNetDecoder((64, 128, 256, 512, 1024), (1, 2, 4, 8, 16))
    assert [b.conv[1][0].out_channels for b in dec.blocks] == [512, 256, 128, 64]


def test_pretrained_resnet_from_a_local_file(tmp_path):
    import torchvision

    torch.manual_seed(1)
    reference = torchvision.models.resnet34(weights=None)
    path = tmp_path / "resnet34.pth"
    torch.save(reference.state_dict(), path)
    enc = ResNetEncoder("resnet34", pretrained=str(path))
    assert torch.equal(enc.body.layer3[2].conv1.weight, reference.layer3[2].conv1.weight)
    assert torch.equal(enc.body.bn1.running_mean, reference.bn1.running_mean)
    with pytest.raises(FileNotFoundError, match="PRETRAINED"):
        ResNetEncoder("resnet34", pretrained=str(tmp_path / "missing.pth"))
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ValueError, match="not a torchvision resnet34"):
        ResNetEncoder("resnet34", pretrained=str(tmp_path / "r18.pth"))
