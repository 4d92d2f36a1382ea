"""Evaluation: HC18 metrics and Detectron2 evaluators."""
from .hc18 import (  # noqa: F401
    HC18Evaluator,
    dice,
    evaluate_measurements,
    hausdorff_mm,
    hc_differences,
)
from .registry import EVALUATOR_REGISTRY, build_evaluators, register_evaluator_builder  # noqa: F401
from .medseg import MedSegEvaluator  # noqa: F401  (registers evaluator_type "medseg")
from .cells import CellsEvaluator  # noqa: F401  (registers evaluator_type "cells")
