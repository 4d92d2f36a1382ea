"""The optimizer's parameter groups (Detectron2's get_default_optimizer_params): per-module
learning-rate factors by name prefix, first match winning; weight decay of normalisation
layers; frozen parameters left out; the three optimizers."""
import pytest
import torch
from torch import nn

from detectron2.config import get_cfg

from hcmeasure.config import add_hcmeasure_config
from hcmeasure.solver import build_optimizer, param_groups


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.encoder_head = nn.Conv2d(4, 4, 1)
        self.head = nn.Sequential(nn.Conv2d(4, 2, 1), nn.GroupNorm(1, 2))
        self.frozen = nn.Conv2d(2, 2, 1)
        for p in self.frozen.parameters():
            p.requires_grad_(False)


def _by_param(groups, model):
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}


def test_groups_by_prefix_and_layer_type_by_hand():
    model = Net()
    groups = param_groups(model, 0.1, 1e-4, 0.0, [["encoder.", 0.1], ["encoder", 0.5], ["head.1", 2.0]])
    assert _by_param(groups, model) == {
        "encoder.0.weight": (0.1 * 0.1, 1e-4), "encoder.0.bias": (0.1 * 0.1, 1e-4),
        "encoder.1.weight": (0.1 * 0.1, 0.0), "encoder.1.bias": (0.1 * 0.1, 0.0),  # BatchNorm
        "encoder_head.weight": (0.1 * 0.5, 1e-4), "encoder_head.bias": (0.1 * 0.5, 1e-4),  # the second prefix
        "head.0.weight": (0.1, 1e-4), "head.0.bias": (0.1, 1e-4),
        "head.1.weight": (0.1 * 2.0, 0.0), "head.1.bias": (0.1 * 2.0, 0.0),  # GroupNorm
    }
    # one group per (lr, weight decay) pair
    assert len(groups) == len({(g["lr"], g["weight_decay"]) for g in groups}) == 5


@pytest.mark.parametrize("kind,cls", [("SGD", torch.optim.SGD), ("ADAM", torch.optim.Adam), ("ADAMW", torch.optim.AdamW)])
def test_build_optimizer_from_the_config(kind, cls):
    cfg = add_hcmeasure_config(get_cfg())
    cfg.SOLVER.BASE_LR, cfg.SOLVER.WEIGHT_DECAY_NORM = 0.02, 1e-5
    cfg.HCMEASURE.SOLVER.OPTIMIZER = kind
    cfg.HCMEASURE.SOLVER.LR_MULTIPLIERS = [["head", 0.5]]
    model = Net()
    optimizer = build_optimizer(cfg, model)
    assert isinstance(optimizer, cls)
    got = _by_param(optimizer.param_groups, model)
    assert got["head.0.weight"] == (0.01, cfg.SOLVER.WEIGHT_DECAY) and got["encoder.1.bias"] == (0.02, 1e-5)
    assert "frozen.weight" not in got
    cfg.HCMEASURE.SOLVER.OPTIMIZER = "LAMB"
    with pytest.raises(ValueError, match="SGD, ADAM or ADAMW"):
        build_optimizer(cfg, model)
