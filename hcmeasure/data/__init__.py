"""Datasets: readers, converters and Detectron2 registration."""
from . import hc18  # noqa: F401  (registers hc18_train / hc18_val / hc18_test)
