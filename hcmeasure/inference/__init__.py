"""Inference helpers shared by every model (tiled prediction of large images)."""
