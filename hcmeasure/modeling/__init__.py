"""Models: backbones and meta-architectures registered in Detectron2's registries."""
from . import backbone  # noqa: F401
from . import meta_arch  # noqa: F401
