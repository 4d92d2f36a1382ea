"""Optimizer built from the config: SGD (Detectron2's default), Adam or AdamW, with
per-module learning-rate multipliers.

``HCMEASURE.SOLVER.OPTIMIZER``: "SGD" | "ADAM" | "ADAMW".
``HCMEASURE.SOLVER.LR_MULTIPLIERS``: list of ``[module_name_prefix, factor]``; a
parameter whose name starts with a prefix gets ``SOLVER.BASE_LR * factor`` (first
match wins), e.g. ``[["net.encoder", 0.1]]`` trains a pretrained encoder 10x slower.
Weight decay is ``SOLVER.WEIGHT_DECAY``, without decay on normalisation layers when
``SOLVER.WEIGHT_DECAY_NORM`` is 0, as in Detectron2.
"""
from __future__ import annotations

import torch
from torch import nn

from detectron2.solver.build import maybe_add_gradient_clipping

__all__ = ["build_optimizer", "param_groups"]

_NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm,
               nn.InstanceNorm2d)


def param_groups(model: nn.Module, base_lr: float, weight_decay: float, weight_decay_norm: float,
                 multipliers) -> list[dict]:
    """One group per (lr, weight decay) pair, by name prefix and layer type."""
    norm_params = {id(p) for m in model.modules() if isinstance(m, _NORM_TYPES) for p in m.parameters()}
    groups: dict[tuple[float, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        factor = 1.0
        for prefix, f in multipliers:
            if name.startswith(prefix):
                factor = float(f)
                break
        wd = weight_decay_norm if id(p) in norm_params else weight_decay
        groups.setdefault((base_lr * factor, wd), []).append(p)
    return [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]


def build_optimizer(cfg, model: nn.Module) -> torch.optim.Optimizer:
    s = cfg.SOLVER
    groups = param_groups(model, s.BASE_LR, s.WEIGHT_DECAY, s.WEIGHT_DECAY_NORM,
                          cfg.HCMEASURE.SOLVER.LR_MULTIPLIERS)
    kind = cfg.HCMEASURE.SOLVER.OPTIMIZER.upper()
    if kind == "SGD":
        cls, kwargs = torch.optim.SGD, {"momentum": s.MOMENTUM, "nesterov": s.NESTEROV}
    elif kind == "ADAM":
        cls, kwargs = torch.optim.Adam, {}
    elif kind == "ADAMW":
        cls, kwargs = torch.optim.AdamW, {}
    else:
        raise ValueError(f"HCMEASURE.SOLVER.OPTIMIZER must be SGD, ADAM or ADAMW, got {kind!r}")
    return maybe_add_gradient_clipping(cfg, cls)(groups, lr=s.BASE_LR, **kwargs)
