"""Optimizer built from the config: SGD (Detectron2's default), Adam or AdamW, with
per-module learning-rate multipliers.

``HCMEASURE.SOLVER.OPTIMIZER``: "SGD" | "ADAM" | "ADAMW".
``HCMEASURE.SOLVER.LR_MULTIPLIERS``: list of ``[module_name_prefix, factor]``; a
parameter whose name starts with a prefix gets ``SOLVER.BASE_LR * factor`` (first
match wins), e.g. ``[["net.encoder", 0.1]]`` trains a pretrained encoder 10x slower.
Weight decay is ``SOLVER.WEIGHT_DECAY``, ``SOLVER.WEIGHT_DECAY_NORM`` on normalisation
layers (0 by default), as in Detectron2. The parameter groups are Detectron2's
(``detectron2.solver.get_default_optimizer_params``): one per (lr, weight decay) pair.
"""
from __future__ import annotations

import torch
from torch import nn

from detectron2.solver import get_default_optimizer_params
from detectron2.solver.build import maybe_add_gradient_clipping

__all__ = ["build_optimizer", "param_groups"]


def _lr_factor(multipliers):
    """``name -> factor`` of the first prefix of ``multipliers`` that ``name`` starts with."""
    rules = [(str(prefix), float(factor)) for prefix, factor in multipliers]

    def factor(name: str) -> float:
        name = name.lstrip(".")  # Detectron2 names a root module's own parameters ".name"
        return next((f for prefix, f in rules if name.startswith(prefix)), 1.0)

    return factor


def param_groups(model: nn.Module, base_lr: float, weight_decay: float, weight_decay_norm: float,
                 multipliers) -> list[dict]:
    """One group per (lr, weight decay) pair, by name prefix and layer type (trainable
    parameters only)."""
    return get_default_optimizer_params(model, base_lr=base_lr, weight_decay=weight_decay,
                                        weight_decay_norm=weight_decay_norm,
                                        lr_factor_func=_lr_factor(multipliers))


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
