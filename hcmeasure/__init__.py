"""hcmeasure: fetal head circumference on 2D ultrasound, as a Detectron2 plugin.

Importing the package registers its datasets (``hc18_train``, ``hc18_val``,
``hc18_test``) and its backbones / meta-architectures in Detectron2's registries, and
those of the shared semantic-segmentation base (:mod:`hcmeasure.semseg`).
Known deprecation notices of Detectron2's and fvcore's own imports are held back
(:mod:`hcmeasure.known_warnings`; ``hcmeasure COMMAND --verbose`` shows them).
"""
from .known_warnings import deferred_import_warnings

with deferred_import_warnings():
    from .config import add_hcmeasure_config  # noqa: F401
    from . import data  # noqa: F401  (registers datasets)
    from . import modeling  # noqa: F401  (registers backbones and meta-architectures)
    from . import semseg  # noqa: F401  (registers UNet, the "index_png" decoder, the "sem_seg" evaluator)

__version__ = "0.1.0"
