"""The BKAI-IGH NeoPolyp Kaggle submission: run-length encoded class masks.

``hcmeasure segment --rle-csv FILE`` writes it: header ``Id,Expected``, per image and per
foreground class c = 1, 2 one row ``<image id>_<c - 1>`` (``_0`` neoplastic, red; ``_1``
non-neoplastic, green) whose ``Expected`` is :func:`rle_encode` of that class's mask at the
test image's original size.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["SUBMISSION_COLUMNS", "rle_encode", "rle_decode", "submission_image_id", "submission_rows"]

#: Header of the BKAI-IGH NeoPolyp submission CSV.
SUBMISSION_COLUMNS = ["Id", "Expected"]


def rle_encode(mask: np.ndarray) -> str:
    """Run-length encoding of a binary mask: pixels in row-major order (rows top to
    bottom, each left to right), numbered from 1; ``"start length start length ..."``
    for each run of nonzero pixels; ``""`` for an empty mask."""
    flat = np.asarray(mask).reshape(-1) != 0
    padded = np.concatenate([[False], flat, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])  # run starts and ends (0-based, end exclusive)
    starts, ends = edges[0::2], edges[1::2]
    runs = np.empty(2 * len(starts), dtype=np.int64)
    runs[0::2] = starts + 1
    runs[1::2] = ends - starts
    return " ".join(map(str, runs.tolist()))


def rle_decode(rle: str, shape) -> np.ndarray:
    """Inverse of :func:`rle_encode`: (H, W) uint8 {0, 1}."""
    h, w = shape
    flat = np.zeros(h * w, np.uint8)
    values = [int(v) for v in str(rle).split()]
    if len(values) % 2:
        raise ValueError(f"RLE has an odd number of values ({len(values)}): {rle[:60]!r}")
    for start, length in zip(values[0::2], values[1::2]):
        if start < 1 or length < 0 or start - 1 + length > h * w:
            raise ValueError(f"RLE run ({start}, {length}) is outside a {h}x{w} mask")
        flat[start - 1:start - 1 + length] = 1
    return flat.reshape(h, w)


def submission_image_id(filename) -> str:
    """Image id of a test file as the competition's sample script takes it: the file
    name up to its first dot (``"abc.jpeg"`` -> ``"abc"``)."""
    return Path(filename).name.split(".")[0]


def submission_rows(image_id: str, classes: np.ndarray, num_classes: int = 3) -> list[dict]:
    """Rows of the BKAI-IGH NeoPolyp submission for one image.

    ``classes`` is the (H, W) class-index mask at the test image's original size. One row
    per foreground class c = 1 .. num_classes-1: ``Id = f"{image_id}_{c - 1}"``, so
    ``<id>_0`` is class 1 (neoplastic; the red channel of the masks) and ``<id>_1`` class 2
    (non-neoplastic; green), and ``Expected`` = :func:`rle_encode` of ``classes == c``
    (row-major, 1-based starts; empty when the class is absent).
    """
    classes = np.asarray(classes)
    return [{"Id": f"{image_id}_{c - 1}", "Expected": rle_encode(classes == c)} for c in range(1, num_classes)]
