"""HC core models: the EfficientNet-Lite backbones and HeadRCNN (registered in Detectron2's
registries), the head refiner, checkpoints and loading of trained models."""
from . import backbone  # noqa: F401
from . import meta_arch  # noqa: F401
