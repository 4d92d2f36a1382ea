"""Compatibility of Detectron2 (2024-04 sources) with current numpy.

``detectron2.evaluation.SemSegEvaluator`` reads ground-truth PNGs with
``np.array(Image.open(f), copy=False, dtype=...)``; numpy 2 raises
``ValueError`` whenever such a call needs a copy (always, for a PIL image).
The subclass below only swaps the loading function for one that lets numpy copy;
everything else is Detectron2's. hcmeasure code imports ``SemSegEvaluator`` from here.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from detectron2.evaluation import SemSegEvaluator as _D2SemSegEvaluator
from detectron2.utils.file_io import PathManager

__all__ = ["load_label_image", "SemSegEvaluator"]


def load_label_image(filename: str, dtype=None) -> np.ndarray:
    """Read a label PNG as an array of its stored values (palette indices stay indices)."""
    with PathManager.open(filename, "rb") as f:
        return np.asarray(Image.open(f), dtype=dtype)


class SemSegEvaluator(_D2SemSegEvaluator):
    """Detectron2's ``SemSegEvaluator`` with a numpy-2-safe ground-truth reader."""

    def __init__(self, dataset_name, distributed=True, output_dir=None, **kwargs):
        kwargs.setdefault("sem_seg_loading_fn", load_label_image)
        super().__init__(dataset_name, distributed=distributed, output_dir=output_dir, **kwargs)
