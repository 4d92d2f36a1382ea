"""HC18 dataset (being written)."""
