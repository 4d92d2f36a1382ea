"""EDNet and its FCN baseline: every VOC config builds on the CPU, trains and infers at
64x64, and each module switch changes the module tree and parameter count as designed.

Models use random initialisation (building never loads ``MODEL.WEIGHTS``; ImageNet
weights cannot be downloaded here); loading a torchvision ResNet is tested with a random
torchvision ResNet-18 saved to a file.
"""
from pathlib import Path

import pytest
import torch
import torchvision

from detectron2.config import get_cfg
from detectron2.modeling import build_model

import hcmeasure  # noqa: F401  (registers EDNet)
from hcmeasure.config import add_hcmeasure_config
from hcmeasure.modeling.checkpoint import HCMeasureCheckpointer
from hcmeasure.studies.voc.ednet import EDNet, SpatialInformationModule

REPO = Path(__file__).resolve().parents[3]
VOC = REPO / "configs" / "VOC2012"
TEST_VOC = REPO / "tests" / "configs" / "VOC2012"  # the tiny schedule
ROWS = {  # config -> (SIB, GPM, FFM, BRM)
    "fcn_R_50.yaml": (False, False, False, False),
    "ednet_R_50_sim.yaml": (True, False, False, False),
    "ednet_R_50_sim_gpm.yaml": (True, True, False, False),
    "ednet_R_50_sim_gpm_ffm.yaml": (True, True, True, False),
    "ednet_R_50.yaml": (True, True, True, True),
    "ednet_R_50_tiny_test.yaml": (True, True, True, True),
}
MODULES = ("sib", "gpm", "ffm", "brm")
RESNET50_TRUNK = 23_508_032  # torchvision resnet50 without its fc layer
NUM_CLASSES = 21


def _cfg(name="ednet_R_50.yaml", **ednet):
    cfg = get_cfg()
    add_hcmeasure_config(cfg)
    cfg.merge_from_file(str((TEST_VOC if name.endswith("_tiny_test.yaml") else VOC) / name))
    cfg.MODEL.DEVICE = "cpu"
    for k, v in ednet.items():
        setattr(cfg.MODEL.EDNET, k, v)
    return cfg


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: tiny tensors gain nothing from more, and on a busy machine
    OpenMP threads waiting on each other make these tests 10-50x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


_CACHE = {}


def _model(name="ednet_R_50.yaml", **ednet):
    key = (name, tuple(sorted(ednet.items())))
    if key not in _CACHE:
        torch.manual_seed(0)
        _CACHE[key] = build_model(_cfg(name, **ednet))
    return _CACHE[key]


def _count(model, prefix=""):
    return sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and n.startswith(prefix))


def _batch(h=64, w=64, n=2, with_targets=True):
    g = torch.Generator().manual_seed(0)
    batch = []
    for _ in range(n):
        d = {"image": torch.rand(3, h, w, generator=g) * 255, "height": h, "width": w}
        if with_targets:
            t = torch.randint(0, NUM_CLASSES, (h, w), generator=g)
            t[:2] = 255  # an ignored border
            d["sem_seg"] = t
        batch.append(d)
    return batch


@pytest.mark.parametrize("name", sorted(ROWS))
def test_every_voc_config_builds_with_its_modules(name):
    model = _model(name)
    assert isinstance(model, EDNet)
    present = tuple(any(n.startswith(f"net.{m}.") for n, _ in model.named_parameters()) for m in MODULES)
    assert present == ROWS[name]
    assert model.size_divisibility == 32


@pytest.mark.parametrize("name", [n for n in sorted(ROWS) if n != "ednet_R_50_tiny_test.yaml"])
def test_forward_backward_and_inference_at_64px(name):
    model = _model(name)
    model.train()
    losses = model(_batch())
    assert set(losses) == {"loss_ce"} and torch.isfinite(losses["loss_ce"])
    model.zero_grad()
    losses["loss_ce"].backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None for g in grads.values()), [n for n, g in grads.items() if g is None][:5]
    # The decoder's classifier and every enabled module learn from the loss.
    for m in ("score",) + tuple(mod for mod, on in zip(MODULES, ROWS[name]) if on):
        assert any(g.abs().sum() > 0 for n, g in grads.items() if n.startswith(f"net.{m}."))

    model.eval()
    with torch.no_grad():
        # A size that is not a multiple of 32 and an output size different from the input.
        out = model([{"image": torch.rand(3, 70, 90) * 255, "height": 35, "width": 45}])
    assert out[0]["sem_seg"].shape == (NUM_CLASSES, 35, 45)
    torch.testing.assert_close(out[0]["sem_seg"].sum(0), torch.ones(35, 45))
    with torch.no_grad():
        logits = model.net(torch.zeros(2, 3, 64, 96))
    assert logits.shape == (2, NUM_CLASSES, 64, 96)


def test_fcn_is_resnet50_plus_a_1x1_classifier():
    fcn = _model("fcn_R_50.yaml")
    names = [n for n, _ in fcn.named_parameters()]
    assert not [n for n in names if any(n.startswith(f"net.{m}") for m in MODULES)]
    assert {n.split(".")[1] for n in names} == {"encoder", "score"}
    assert list(fcn.net.score) == ["res5"] and fcn.net.decoder_features == ["res5"]
    assert _count(fcn, "net.encoder") == RESNET50_TRUNK
    assert _count(fcn) == RESNET50_TRUNK + 2048 * NUM_CLASSES + NUM_CLASSES


def test_sim_and_gpm_rows_add_exactly_their_modules_and_score_layers():
    sib_outputs = {"res2": 35 + 64, "res3": 99 + 128, "res4": 227 + 256}  # conv + pooled input
    resnet = {"res2": 256, "res3": 512, "res4": 1024, "res5": 2048}
    sim = _model("ednet_R_50_sim.yaml")
    assert [m.out_channels for m in sim.net.sib.children()] == [35, 99, 227, 483]
    sib = _count(sim, "net.sib")
    assert sib == sum(9 * cin * cout + 2 * cout for cin, cout in [(3, 32), (35, 64), (99, 128), (227, 256)])
    scores = sum((resnet[f] + sib_outputs.get(f, 0)) * NUM_CLASSES + NUM_CLASSES for f in resnet)
    assert _count(sim) == RESNET50_TRUNK + sib + scores

    gpm = _model("ednet_R_50_sim_gpm.yaml")
    assert _count(gpm, "net.gpm") == 2048 * 256 + 256
    assert _count(gpm) == _count(sim) + 2048 * 256 + 256 + 256 * NUM_CLASSES


@pytest.mark.parametrize("module", MODULES)
def test_switching_one_module_off_removes_it(module):
    full = _model()
    flag = {"sib": "USE_SIM", "gpm": "USE_GPM", "ffm": "USE_FFM", "brm": "USE_BRM"}[module]
    off = _model(**{flag: False})
    children = {n for n, _ in off.net.named_children()}
    assert module not in children
    assert children | {module} == {n for n, _ in full.net.named_children()}
    assert _count(off, f"net.{module}") == 0 < _count(full, f"net.{module}")
    assert _count(off) < _count(full)
    if module in ("sib", "gpm"):
        # Without X2 the FFMs lose their concatenation convolutions: more than the module goes.
        assert _count(full) - _count(off) > _count(full, f"net.{module}")
    if module == "brm":
        # FCN-style fusion: one classifier per scale instead of one on the finest BRM.
        assert list(off.net.score) == ["res2", "res3", "res4", "res5"] and list(full.net.score) == ["res2"]
    if module == "ffm":
        # The BRMs then see the plain concatenation [X1, X2]: wider 1x1 inputs.
        assert off.net.brm["res5"].proj.in_channels == 2048 + 256
        assert full.net.brm["res5"].proj.in_channels == 160


def test_parameter_counts_of_fcn_and_ednet():
    fcn, ednet = _count(_model("fcn_R_50.yaml")), _count(_model("ednet_R_50.yaml"))
    print(f"FCN-R50 {fcn / 1e6:.2f} M (paper 24.23 M), EDNet-R50 {ednet / 1e6:.2f} M (paper 30.11 M)")
    assert 23.4e6 < fcn < 23.7e6
    assert 29.0e6 < ednet < 30.2e6
    # What the four modules add is close to the paper's 30.11 - 24.23 = 5.88 M.
    assert abs((ednet - fcn) - 5.88e6) < 0.25e6


def test_sim_halves_the_size_and_concatenates():
    sim = SpatialInformationModule(3, 8, norm="BN")
    x = torch.rand(1, 3, 17, 20)
    y = sim(x)
    assert y.shape == (1, 11, 9, 10)
    # The last three channels are the 3x3 average pooling of the input.
    torch.testing.assert_close(y[:, 8:], torch.nn.functional.avg_pool2d(x, 3, 2, 1, count_include_pad=False))


def test_torchvision_resnet_weights_load_into_the_encoder(tmp_path):
    cfg = _cfg("ednet_R_50.yaml")
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    model = build_model(cfg)
    tv = torchvision.models.resnet18(weights=None)  # random: no download here
    path = tmp_path / "resnet18_tv.pth"
    torch.save(tv.state_dict(), path)
    HCMeasureCheckpointer(model).load(str(path))
    torch.testing.assert_close(model.net.encoder.stem.conv1.weight, tv.conv1.weight)
    torch.testing.assert_close(model.net.encoder.res5[1].conv2.weight, tv.layer4[1].conv2.weight)
    torch.testing.assert_close(model.net.encoder.res3[0].shortcut.norm.running_var,
                               tv.layer2[0].downsample[1].running_var)
