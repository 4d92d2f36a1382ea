"""Overlapping tiles: split a large image, run a model tile by tile, stitch the scores.

Any semantic model whose inference maps an image to per-class scores of the same size
can run on images larger than its training size this way (``hcmeasure segment --tile
SIZE --overlap N``; ``HCMEASURE.TILE.TEST_*`` inside :class:`~hcmeasure.semseg.unet.UNet`).

* :func:`tile_starts` — the start offsets along one axis: a step of ``size - overlap``,
  the last tile moved back so that it ends at the border (so every tile is full size
  when the image is at least one tile large, and sizes not divisible by the step are
  covered); an axis shorter than a tile gets a single, shorter tile.
* :func:`tile_grid` — the (y0, x0, h, w) boxes of an image.
* :func:`stitch` / :func:`tiled_apply` — run ``fn`` on batches of tiles and merge them
  into one (K, H, W) map, ``merge="max"`` (element-wise maximum over overlapping tiles,
  as the cell-outline study did) or ``merge="blend"`` (average weighted by a smooth
  window that falls towards each tile's inner edges, which hides tile seams).

Only ``batch_size`` tiles are in flight at once: the output map is filled as batches
come back, so peak memory is that of one batch's activations plus the (K, H, W) output,
not of all tiles (``benchmarks/tiled_memory.py`` measures it).
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator, Sequence

import torch

__all__ = ["tile_starts", "tile_grid", "blend_window", "tiled_apply", "TiledSemanticModel"]

MERGE_MODES = ("max", "blend")


def tile_starts(length: int, size: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``size`` with at least ``overlap`` pixels shared by
    neighbours, covering ``[0, length)``."""
    if size < 1:
        raise ValueError(f"tile size must be positive, got {size}")
    if not 0 <= overlap < size:
        raise ValueError(f"tile overlap must be in [0, size) = [0, {size}), got {overlap}")
    if length <= size:
        return [0]
    step = size - overlap
    starts = list(range(0, length - size, step))
    starts.append(length - size)
    return starts


def tile_grid(height: int, width: int, size: int | Sequence[int], overlap: int | Sequence[int]
              ) -> list[tuple[int, int, int, int]]:
    """(y0, x0, h, w) of every tile, row by row. ``size``/``overlap``: one value or
    (along y, along x)."""
    sy, sx = (size, size) if isinstance(size, int) else size
    oy, ox = (overlap, overlap) if isinstance(overlap, int) else overlap
    ys, xs = tile_starts(height, sy, oy), tile_starts(width, sx, ox)
    return [(y, x, min(sy, height), min(sx, width)) for y in ys for x in xs]


def blend_window(h: int, w: int, ramp: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """(h, w) weights: 1 inside, rising linearly over ``ramp`` pixels from each edge
    (never 0, so every pixel of an image border keeps a positive total weight)."""
    def axis(n):
        i = torch.arange(n, device=device, dtype=dtype)
        d = torch.minimum(i + 1, n - i)  # 1 at the edges
        return torch.clamp(d / max(ramp, 1), max=1.0)

    return axis(h)[:, None] * axis(w)[None, :]


def _batches(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def tiled_apply(fn: Callable[[list[torch.Tensor]], Iterable[torch.Tensor]], image: torch.Tensor, *,
                size: int, overlap: int, merge: str = "max", batch_size: int = 1,
                out_device=None) -> torch.Tensor:
    """Run ``fn`` on the tiles of ``image`` (C, H, W) and stitch its outputs.

    ``fn`` takes a list of (C, h, w) tiles and returns one (K, h, w) map per tile. The
    result is (K, H, W) (dtype of the outputs, on ``out_device`` or the outputs'
    device). With ``merge="max"`` an identity ``fn`` gives back ``image`` exactly.
    """
    if merge not in MERGE_MODES:
        raise ValueError(f"tile merge must be one of {MERGE_MODES}, got {merge!r}")
    if batch_size < 1:
        raise ValueError(f"tile batch size must be at least 1, got {batch_size}")
    H, W = image.shape[-2:]
    boxes = tile_grid(H, W, size, overlap)
    out = weight = None
    for group in _batches(boxes, batch_size):
        tiles = [image[..., y:y + h, x:x + w] for y, x, h, w in group]
        results = list(fn(tiles))
        if len(results) != len(group):
            raise ValueError(f"the tiled function returned {len(results)} maps for {len(group)} tiles")
        for (y, x, h, w), res in zip(group, results):
            if tuple(res.shape[-2:]) != (h, w):
                raise ValueError(f"the tiled function returned a {tuple(res.shape[-2:])} map for a "
                                 f"({h}, {w}) tile; it must keep the tile's size")
            res = res.detach()
            if out is None:
                dev = res.device if out_device is None else out_device
                fill = float("-inf") if merge == "max" else 0.0
                out = torch.full((res.shape[0], H, W), fill, dtype=res.dtype, device=dev)
                if merge == "blend":
                    weight = torch.zeros((H, W), dtype=res.dtype, device=dev)
            res = res.to(out.device)
            region = out[:, y:y + h, x:x + w]
            if merge == "max":
                region.copy_(torch.maximum(region, res))
            else:
                win = blend_window(h, w, overlap, device=out.device, dtype=out.dtype)
                region.add_(res * win)
                weight[y:y + h, x:x + w].add_(win)
        del results, tiles
    if merge == "blend":
        out.div_(weight)
    return out


class TiledSemanticModel:
    """Wrap a Detectron2 semantic model (inference returns ``[{"sem_seg": (K, h, w)}]``)
    so that each input image is split into tiles, run ``batch_size`` tiles at a time and
    stitched back; outputs are resized to the inputs' ``height``/``width`` when given.

    Scores are probabilities (the protocol's softmax); "max" keeps, per class, the
    highest probability any tile gave, "blend" their weighted mean.
    """

    def __init__(self, model, size: int, overlap: int, merge: str = "max", batch_size: int = 1):
        tile_starts(size, size, overlap)  # validates size and overlap
        if merge not in MERGE_MODES:
            raise ValueError(f"tile merge must be one of {MERGE_MODES}, got {merge!r}")
        self.model, self.size, self.overlap = model, int(size), int(overlap)
        self.merge, self.batch_size = merge, int(batch_size)

    def _run_tiles(self, tiles):
        outs = self.model([{"image": t} for t in tiles])
        return [o["sem_seg"] for o in outs]

    def __call__(self, batched_inputs):
        from torch.nn import functional as F

        results = []
        for x in batched_inputs:
            image = x["image"]
            scores = tiled_apply(self._run_tiles, image, size=self.size, overlap=self.overlap,
                                 merge=self.merge, batch_size=self.batch_size)
            h, w = x.get("height", image.shape[-2]), x.get("width", image.shape[-1])
            if (h, w) != tuple(scores.shape[-2:]):
                scores = F.interpolate(scores[None], size=(h, w), mode="bilinear", align_corners=False)[0]
            results.append({"sem_seg": scores})
        return results
