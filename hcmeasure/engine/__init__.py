"""Running over several processes and machines through Detectron2's ``launch``
(gloo on CPUs, NCCL on GPUs): the DDP wrapper and small collective helpers."""
from .distributed import broadcast_from_main, create_ddp_model, first_error  # noqa: F401
