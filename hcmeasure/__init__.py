"""hcmeasure: fetal head circumference on 2D ultrasound, as a Detectron2 plugin.

Importing the package registers, in Detectron2's registries, the HC core's datasets
(``hc18_train``, ``hc18_val``, ``hc18_test`` ...), backbones and HeadRCNN, the shared
semantic-segmentation base's U-Net (:mod:`hcmeasure.semseg`) and the sister studies'
datasets, evaluators and models (:mod:`hcmeasure.studies`: polyp, VOC, cells).
Known deprecation notices of Detectron2's and fvcore's own imports are held back
(:mod:`hcmeasure.known_warnings`; ``hcmeasure COMMAND --verbose`` shows them).
"""
from .known_warnings import deferred_import_warnings

with deferred_import_warnings():
    from .config import add_hcmeasure_config  # noqa: F401
    from . import data  # noqa: F401  (registers the HC18 datasets)
    from . import modeling  # noqa: F401  (registers the EfficientNet-Lite backbones and HeadRCNN)
    from . import semseg  # noqa: F401  (registers UNet, the "index_png" decoder, the "sem_seg" evaluator)
    from . import studies  # noqa: F401  (registers the polyp, VOC and cells datasets, evaluators, models)

__version__ = "0.1.0"
