"""HC18 data: readers, COCO conversion, Detectron2 registration, head crops, augmentation."""
from . import hc18  # noqa: F401  (registers hc18_train / hc18_val / hc18_test ...)
