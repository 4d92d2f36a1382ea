"""Polyp segmentation: GLoFF-Net, the plain and the ResNet-34 U-Net (the base's ``UNet``).

Importing registers the datasets ``kvasir_seg_*``, ``cvc_colondb_*``, ``pranet_*`` and
``neopolyp_*`` with their label decoders ``binary_threshold`` and ``neopolyp_rgb``
(``data.py``), the evaluator type "medseg" (``evaluation.py``) and the meta-architecture
"GLoFFNet" (``gloffnet.py``). ``submission.py`` writes the BKAI-IGH Kaggle CSV; configs:
``configs/Polyp/``, ``configs/NeoPolyp/``.
"""
from .config import add_polyp_config  # noqa: F401
from . import data  # noqa: F401  (registers the datasets and label decoders)
from .evaluation import MedSegEvaluator  # noqa: F401  (registers evaluator_type "medseg")
from .gloffnet import GLoFFNet  # noqa: F401  (registers "GLoFFNet")
