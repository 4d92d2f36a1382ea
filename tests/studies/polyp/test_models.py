"""The polyp studies' models, GLoFF-Net and the U-Net (plain / ResNet encoders):
registration, shapes in training and inference, the shipped configs, pretrained weights
skipped under a checkpoint, and overfitting two small synthetic images. ResNet encoders
use random initialisation here (no ImageNet download is possible on the test machines)."""
import numpy as np
import pytest
import torch

from detectron2.config import get_cfg
from detectron2.modeling import META_ARCH_REGISTRY, build_model

from hcmeasure.config import add_hcmeasure_config
from hcmeasure.semseg.unet import UNet
from hcmeasure.studies.polyp.data import synthetic_polyp
from hcmeasure.studies.polyp.gloffnet import GLoFFNet


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: far faster than two on a shared, busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_cfg(arch, encoder="unet", *, width=8, num_classes=2, opts=()):
    cfg = add_hcmeasure_config(get_cfg())
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = arch
    cfg.MODEL.SEG_ENCODER.NAME = encoder
    cfg.MODEL.SEG_ENCODER.WIDTH = width
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = num_classes
    cfg.MODEL.SEG_LOSS.DICE_WEIGHT = 1.0
    cfg.MODEL.GLOFFNET.GLOBAL_CHANNELS = 8
    cfg.MODEL.GLOFFNET.CA_REDUCTION = 4
    if encoder.startswith("resnet"):
        cfg.MODEL.UNET.DECODER_CHANNELS = [32, 16, 16, 8, 8]
        cfg.MODEL.GLOFFNET.DECODER_CHANNELS = [32, 16, 16, 8, 8]
    cfg.merge_from_list(list(opts))
    return cfg


def test_registered():
    assert META_ARCH_REGISTRY.get("GLoFFNet") is GLoFFNet
    assert META_ARCH_REGISTRY.get("UNet") is UNet


@pytest.mark.parametrize("arch,encoder", [("GLoFFNet", "unet"), ("UNet", "unet"),
                                          ("UNet", "resnet34"), ("GLoFFNet", "resnet18")])
def test_forward_backward_and_inference_shapes(arch, encoder):
    torch.manual_seed(0)
    model = build_model(make_cfg(arch, encoder, num_classes=3))
    batch = [{"image": torch.rand(3, 64, 64) * 255, "sem_seg": torch.randint(0, 3, (64, 64))} for _ in range(2)]
    losses = model(batch)
    assert set(losses) == {"loss_ce", "loss_dice"}
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and all(torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        # Odd size (padded inside), output at the requested height/width.
        out = model([{"image": torch.rand(3, 45, 70) * 255, "height": 90, "width": 140},
                     {"image": torch.rand(3, 64, 64) * 255}])
    assert out[0]["sem_seg"].shape == (3, 90, 140)
    assert out[1]["sem_seg"].shape == (3, 64, 64)
    assert torch.allclose(out[0]["sem_seg"].sum(0), torch.ones(90, 140), atol=1e-5)


@pytest.mark.parametrize("config,arch,params", [
    ("configs/Polyp/gloffnet_kvasir.yaml", GLoFFNet, 39_027_218),
    ("configs/Polyp/gloffnet_colondb.yaml", GLoFFNet, 39_027_218),
    ("configs/Polyp/unet_kvasir.yaml", UNet, 31_037_698),
    ("configs/NeoPolyp/unet_R_34.yaml", UNet, 24_349_475),
])
def test_shipped_configs_build(repo_root, config, arch, params):
    cfg = add_hcmeasure_config(get_cfg())
    cfg.merge_from_file(str(repo_root / config))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.SEG_ENCODER.PRETRAINED = ""  # no ImageNet download here: random init
    model = build_model(cfg)
    assert type(model) is arch
    assert sum(p.numel() for p in model.parameters()) == params


def test_tiny_configs_build(repo_root):
    for config in ("tests/configs/Polyp/gloffnet_tiny_test.yaml", "tests/configs/Polyp/unet_tiny_test.yaml",
                   "tests/configs/NeoPolyp/unet_R_34_tiny_test.yaml"):
        cfg = add_hcmeasure_config(get_cfg())
        cfg.merge_from_file(str(repo_root / config))
        cfg.MODEL.DEVICE = "cpu"
        assert isinstance(build_model(cfg), (GLoFFNet, UNet))


def test_pretrained_skipped_when_a_checkpoint_is_given(tmp_path):
    cfg = make_cfg("UNet", "resnet34", opts=["MODEL.SEG_ENCODER.PRETRAINED", str(tmp_path / "missing.pth")])
    with pytest.raises(FileNotFoundError):
        build_model(cfg)
    cfg.MODEL.WEIGHTS = str(tmp_path / "model_final.pth")  # replaces the encoder's weights anyway
    assert isinstance(build_model(cfg), UNet)


# ------------------------------------------------------------------- overfitting


def _two_images(size=32):
    rng = np.random.default_rng(0)
    batch = []
    for _ in range(2):
        img, lab = synthetic_polyp(rng, size, size)
        batch.append({"image": torch.as_tensor(img.transpose(2, 0, 1).copy()).float(),
                      "sem_seg": torch.as_tensor(lab.astype(np.int64))})
    return batch


def _dice(model, batch) -> float:
    model.eval()
    with torch.no_grad():
        out = model([{"image": b["image"]} for b in batch])
    model.train()
    pred = torch.stack([o["sem_seg"].argmax(0) for o in out]) == 1
    gt = torch.stack([b["sem_seg"] for b in batch]) == 1
    return float(2 * (pred & gt).sum() / (pred.sum() + gt.sum()))


def _overfit(model, batch, lr, max_steps=300, check_every=20, target=0.9):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    dice = 0.0
    for step in range(1, max_steps + 1):
        loss = sum(model(batch).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % check_every == 0:
            dice = _dice(model, batch)  # eval mode: BatchNorm running statistics
            if dice >= target and step >= 40:
                return step, dice
    return max_steps, dice


@pytest.mark.slow
def test_gloffnet_overfits_two_images():
    torch.manual_seed(0)
    model = build_model(make_cfg("GLoFFNet", "unet", width=8))
    steps, dice = _overfit(model, _two_images(), lr=3e-3)
    assert dice >= 0.9, f"Dice {dice:.3f} after {steps} steps"


@pytest.mark.slow
def test_resnet34_unet_overfits_two_images():
    torch.manual_seed(0)
    model = build_model(make_cfg("UNet", "resnet34"))  # random init, narrow decoder
    steps, dice = _overfit(model, _two_images(), lr=1e-3)
    assert dice >= 0.9, f"Dice {dice:.3f} after {steps} steps"
