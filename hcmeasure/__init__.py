"""hcmeasure: fetal head circumference on 2D ultrasound, as a Detectron2 plugin.

Importing the package registers its datasets (``hc18_train``, ``hc18_val``,
``hc18_test``) and its backbones / meta-architectures in Detectron2's registries.
"""
from .config import add_hcmeasure_config  # noqa: F401
from . import data  # noqa: F401  (registers datasets)
from . import modeling  # noqa: F401  (registers backbones and meta-architectures)

__version__ = "0.1.0"
