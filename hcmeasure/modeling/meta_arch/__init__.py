"""Meta-architectures registered in Detectron2's META_ARCH_REGISTRY."""
from .head_rcnn import HeadRCNN  # noqa: F401
from .ednet import EDNet  # noqa: F401
from .gloffnet import GLoFFNet  # noqa: F401
from .plain_unet import PlainUNet  # noqa: F401
