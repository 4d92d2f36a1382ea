"""Evaluation: HC18 metrics, HC18Evaluator and the registry of evaluators by dataset kind."""
from .hc18 import (  # noqa: F401
    HC18Evaluator,
    dice,
    evaluate_measurements,
    hausdorff_mm,
    hc_differences,
)
from .registry import EVALUATOR_REGISTRY, build_evaluators, register_evaluator_builder  # noqa: F401
