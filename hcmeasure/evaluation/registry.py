"""Which Detectron2 evaluators a dataset gets, by its metadata's ``evaluator_type``.

``tools/train_net.py`` calls :func:`build_evaluators`; a module adding a kind of
dataset registers a builder ``fn(cfg, dataset_name, output_folder) -> list`` in
:data:`EVALUATOR_REGISTRY` (Detectron2's ``Registry``) with
:func:`register_evaluator_builder` instead of editing the trainer: "hc18" here,
"sem_seg" in :mod:`hcmeasure.semseg.evaluation`, each study's in its own ``evaluation``
module (``hcmeasure.studies.<study>.evaluation``).
"""
from __future__ import annotations

import os

from detectron2.data import MetadataCatalog
from detectron2.evaluation import COCOEvaluator, DatasetEvaluators
from detectron2.utils.registry import Registry

__all__ = ["EVALUATOR_REGISTRY", "register_evaluator_builder", "build_evaluators"]

EVALUATOR_REGISTRY = Registry("EVALUATOR")
EVALUATOR_REGISTRY.__doc__ = """
Evaluator builders by a dataset's ``evaluator_type``: ``fn(cfg, dataset_name,
output_folder) -> [DatasetEvaluator, ...]``.
"""


def register_evaluator_builder(evaluator_type: str):
    """Decorator: register a builder in :data:`EVALUATOR_REGISTRY` under ``evaluator_type``."""

    def wrap(fn):
        EVALUATOR_REGISTRY._do_register(evaluator_type, fn)
        return fn

    return wrap


def build_evaluators(cfg, dataset_name: str, output_folder: str) -> DatasetEvaluators:
    evaluator_type = MetadataCatalog.get(dataset_name).get("evaluator_type", None)
    if evaluator_type not in EVALUATOR_REGISTRY:
        raise NotImplementedError(
            f"no evaluator for dataset {dataset_name!r} (evaluator_type={evaluator_type!r}); "
            f"known types: {sorted(n for n, _ in EVALUATOR_REGISTRY)}"
        )
    return DatasetEvaluators(EVALUATOR_REGISTRY.get(evaluator_type)(cfg, dataset_name, output_folder))


@register_evaluator_builder("hc18")
def _hc18(cfg, dataset_name, output_folder):
    from .hc18 import HC18Evaluator

    pp = cfg.HCMEASURE.POSTPROCESS
    evaluators = [
        HC18Evaluator(dataset_name, mask_threshold=pp.MASK_THRESHOLD, min_score=pp.MIN_SCORE,
                      perimeter_formula=pp.PERIMETER_FORMULA, output_dir=output_folder)
    ]
    if cfg.HCMEASURE.EVAL.COCO:
        # COCOEvaluator converts the dataset to COCO itself, into its output folder, once per
        # process (never a JSON an earlier run left there, which may be of other data).
        coco_dir = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        evaluators.append(COCOEvaluator(dataset_name, output_dir=coco_dir, allow_cached_coco=False))
    return evaluators

