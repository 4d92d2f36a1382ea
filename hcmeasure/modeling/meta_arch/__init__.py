"""HeadRCNN, the HC detector, registered in Detectron2's META_ARCH_REGISTRY."""
from .head_rcnn import HeadRCNN  # noqa: F401
