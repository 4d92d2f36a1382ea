"""Helpers for code started by :func:`detectron2.engine.launch`.

:func:`create_ddp_model` replaces Detectron2's function of the same name, which gives
``DistributedDataParallel`` the local rank as ``device_ids`` whatever the model's
device; torch refuses ``device_ids`` for a CPU module, so a multi-process run on CPUs
(gloo) failed there. The other two are the collectives the predict command needs,
over Detectron2's ``comm`` (its gloo group, so they work on CPUs and GPUs alike).
"""
from __future__ import annotations

import torch
from detectron2.utils import comm

__all__ = ["create_ddp_model", "broadcast_from_main", "first_error"]


def create_ddp_model(model: torch.nn.Module, *, fp16_compression: bool = False, **kwargs) -> torch.nn.Module:
    """``model`` wrapped in ``DistributedDataParallel`` when there are several processes.

    As :func:`detectron2.engine.create_ddp_model`, but ``device_ids`` defaults to the
    local rank only for a model on a CUDA device; a CPU model gets none (torch's rule).
    ``kwargs`` go to ``DistributedDataParallel``.
    """
    if comm.get_world_size() == 1:
        return model
    first = next(model.parameters(), None)
    on_cuda = first is not None and first.device.type == "cuda"
    if on_cuda and "device_ids" not in kwargs:
        kwargs["device_ids"] = [comm.get_local_rank()]
    ddp = torch.nn.parallel.DistributedDataParallel(model, **kwargs)
    if fp16_compression:
        from torch.distributed.algorithms.ddp_comm_hooks import default as comm_hooks

        ddp.register_comm_hook(state=None, hook=comm_hooks.fp16_compress_hook)
    return ddp


def broadcast_from_main(data=None):
    """Rank 0's ``data`` on every rank (the others pass None); with one process, ``data``."""
    if comm.get_world_size() == 1:
        return data
    return comm.all_gather(data if comm.is_main_process() else None)[0]


def first_error(message: str | None) -> str | None:
    """The first non-None ``message`` over the ranks (by rank), on every rank.

    Every rank calls it after a step that may fail on any of them, so that all of them
    stop together with the same message instead of the others waiting for the one that
    failed."""
    if comm.get_world_size() == 1:
        return message
    return next((m for m in comm.all_gather(message) if m is not None), None)
