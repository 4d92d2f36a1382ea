"""Evaluation: HC18 metrics and Detectron2 evaluators."""
