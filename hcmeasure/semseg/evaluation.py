"""Detectron2's semantic-segmentation evaluation for every semantic dataset.

* :class:`SemSegEvaluator`: Detectron2's (mIoU, fwIoU, pixel accuracy) with a
  ground-truth reader that works under numpy 2. Detectron2 (2024-04 sources) reads label
  PNGs with ``np.array(Image.open(f), copy=False, dtype=...)``, and numpy 2 raises
  ``ValueError`` whenever such a call needs a copy (always, for a PIL image); the subclass
  only swaps that reader for one that lets numpy copy, everything else is Detectron2's.
  hcmeasure code imports ``SemSegEvaluator`` from here.
* The ``"sem_seg"`` evaluator builder (:data:`hcmeasure.evaluation.registry.EVALUATOR_REGISTRY`):
  a dataset with ``evaluator_type`` "sem_seg" (PASCAL VOC) gets a :class:`SemSegEvaluator`
  whose ground truth goes through the dataset's ``label_decoder``.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from detectron2.data import MetadataCatalog
from detectron2.evaluation import SemSegEvaluator as _D2SemSegEvaluator
from detectron2.utils.file_io import PathManager

from ..evaluation.registry import register_evaluator_builder
from .data import decode_label

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


@register_evaluator_builder("sem_seg")
def build_sem_seg_evaluators(cfg, dataset_name, output_folder):
    """[:class:`SemSegEvaluator`] reading the ground truth with the dataset's label decoder."""
    decoder = MetadataCatalog.get(dataset_name).get("label_decoder", "index_png")
    return [SemSegEvaluator(dataset_name, output_dir=output_folder,
                            sem_seg_loading_fn=lambda path, dtype=int: decode_label(path, decoder).astype(dtype))]
