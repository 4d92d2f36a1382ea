"""Cell outlines in large microscopy images: the tiled U-Net.

Importing registers the datasets ``cells_train`` / ``cells_val`` and the label decoder
``rgba_outline`` (``data.py``), the evaluator type "cells" (``evaluation.py``) and the
meta-architecture name "PlainUNet" of the base's U-Net (``plain_unet.py``). Config:
``configs/Cells/unet_tiled.yaml``.
"""
from .config import add_cells_config  # noqa: F401
from . import data  # noqa: F401  (registers the datasets and the "rgba_outline" decoder)
from .evaluation import CellsEvaluator  # noqa: F401  (registers evaluator_type "cells")
from .plain_unet import PlainUNet  # noqa: F401  (registers "PlainUNet")
