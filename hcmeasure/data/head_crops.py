"""Head crops: the region around a detected head, resampled to a fixed square grid.

The head-contour refiner (``configs/HC18/head_refiner_unet_effnet_lite0.yaml``) is a
semantic-segmentation model that sees only this crop, so a head of any size fills the
same ``size x size`` grid. Geometry follows Detectron2's continuous box convention
(pixel ``i`` spans ``[i, i + 1)``): cell ``u`` of a crop of ``box = (x0, y0, x1, y1)``
is centred at ``x0 + (u + 0.5) * (x1 - x0) / size``, the same mapping
:func:`hcmeasure.measurement.head.measure_head_from_mask_probs` uses for mask
probabilities, so the refiner's output is measured with that function unchanged.

* :func:`head_crop_box`: a box enlarged by ``context`` of its width/height on each side.
* :func:`crop_image`: the crop itself (area average per cell, zero outside the image).
* :func:`ellipse_box`: the tight box of an ellipse (training crops start from it).
* :func:`rotate_about_centre`: a scan and its ellipse rotated together (augmentation).
* :class:`HeadCropDatasetMapper`: training samples from HC18 dicts (their ``ellipse``):
  a jittered box, its crop, and the filled ellipse as ``sem_seg`` (1 = head).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch

from detectron2.config import configurable

from ..measurement.ellipse import Ellipse
from ..measurement.head import grid_to_image

__all__ = [
    "head_crop_box", "crop_image", "ellipse_box", "ellipse_cells", "rotate_about_centre", "HeadCropDatasetMapper",
]


def head_crop_box(box_xyxy, context: float) -> tuple[float, float, float, float]:
    """``box_xyxy`` (pixels, continuous) grown by ``context`` times its width (height) on
    the left and right (top and bottom)."""
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    dx, dy = (x1 - x0) * context, (y1 - y0) * context
    return (x0 - dx, y0 - dy, x1 + dx, y1 + dy)


def crop_image(image: torch.Tensor, box_xyxy, size: int) -> torch.Tensor:
    """Resample ``box_xyxy`` of ``image`` ((C, H, W) or (H, W), any float/uint8 dtype) to
    a ``(C, size, size)`` float32 crop. Each cell is the mean of the image over the cell:
    the values of ``torchvision.ops.roi_align`` with adaptive sampling and
    ``aligned=True`` (``ceil(cell side)`` bilinear samples per cell along each axis); the
    part of the box outside the image reads as 0 (black, like the background of an
    ultrasound frame).

    Bilinear sampling on a regular grid is separable, so the crop is computed as rows
    then columns (``_axis_samples``), which on a CPU is faster than ``roi_align``'s
    per-sample loop (benchmarks/predict_speed.py, README) and equal to it up to float32
    rounding (tests/data/test_head_crops.py).
    """
    if image.dim() == 2:
        image = image[None]
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    rows, row_w = _axis_samples(y0, y1, size, image.shape[1], image.device)
    cols, col_w = _axis_samples(x0, x1, size, image.shape[2], image.device)
    # Only the columns the samples read take part (the box is usually narrower than the scan).
    first = int(cols.min()) if cols.numel() else 0
    last = int(cols.max()) + 1 if cols.numel() else 1
    per_row = _resample_rows(image[:, :, first:last].float(), rows, row_w, size)  # (C, size, last - first)
    per_col = _resample_rows(per_row.transpose(1, 2).contiguous(), cols - first, col_w, size)
    return per_col.transpose(1, 2).contiguous()


def _resample_rows(image: torch.Tensor, index: torch.Tensor, weight: torch.Tensor, size: int) -> torch.Tensor:
    """``(C, H, W)`` -> ``(C, size, W)``: each output row the mean of its cell's bilinear
    samples along H (``index``/``weight`` from :func:`_axis_samples`)."""
    c, _, w = image.shape
    if index.shape[0] == 0:
        return image.new_zeros((c, size, w))
    picked = image.index_select(1, index.flatten()).view(c, index.shape[0], 2, w)
    samples = torch.addcmul(picked[:, :, 0] * weight[None, :, 0, None], picked[:, :, 1], weight[None, :, 1, None])
    return samples.view(c, size, -1, w).mean(2)


def _axis_samples(start: float, end: float, size: int, length: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear samples of ``roi_align(aligned=True, sampling_ratio=0)`` along one axis of
    an image ``length`` pixels long: the box ``[start, end)`` (continuous coordinates) cut
    into ``size`` cells of ``ceil(cell side)`` samples each. Returns the two neighbour
    indices ``(size * grid, 2)`` and their weights (0 for a sample outside the image),
    cell by cell, as torchvision computes them (float32 positions)."""
    start32 = torch.tensor(start, dtype=torch.float32) - 0.5
    extent = torch.tensor(end, dtype=torch.float32) - 0.5 - start32
    bin_size = extent / size
    grid = max(int(math.ceil(float(extent) / size)), 0)
    cell = torch.arange(size, dtype=torch.float32).repeat_interleave(grid)
    sub = torch.arange(grid, dtype=torch.float32).repeat(size)
    pos = start32 + cell * bin_size + (sub + 0.5) * bin_size / max(grid, 1)
    inside = ((pos >= -1.0) & (pos <= length)).float()
    pos = pos.clamp(min=0.0)
    low = pos.floor().long()
    at_end = low >= length - 1
    low = torch.where(at_end, torch.full_like(low, length - 1), low)
    frac = torch.where(at_end, torch.zeros_like(pos), pos - low.float())
    high = torch.where(at_end, low, low + 1)
    index = torch.stack([low, high], 1)
    weight = torch.stack([1.0 - frac, frac], 1) * inside[:, None]
    return index.to(device), weight.to(device)


def ellipse_box(ellipse: Ellipse) -> tuple[float, float, float, float]:
    """The axis-aligned box tight around ``ellipse`` (given in hcmeasure's pixel-centre
    frame), in Detectron2's continuous coordinates (+0.5)."""
    ca, sa = math.cos(ellipse.angle), math.sin(ellipse.angle)
    hx = math.hypot(ellipse.a * ca, ellipse.b * sa)
    hy = math.hypot(ellipse.a * sa, ellipse.b * ca)
    cx, cy = ellipse.cx + 0.5, ellipse.cy + 0.5
    return (cx - hx, cy - hy, cx + hx, cy + hy)


def ellipse_cells(ellipse: Ellipse, box_xyxy, size: int) -> np.ndarray:
    """``(size, size)`` uint8: 1 where the centre of a crop cell lies inside ``ellipse``."""
    xs, ys = grid_to_image(np.arange(size), np.arange(size), box_xyxy, (size, size))
    gx, gy = np.meshgrid(xs, ys)
    return (ellipse.normalized_radius(gx, gy) <= 1.0).astype(np.uint8)


def rotate_about_centre(grey: np.ndarray, ellipse: Ellipse, degrees: float) -> tuple[np.ndarray, Ellipse]:
    """Rotate the ``(H, W)`` scan about ``ellipse``'s centre by ``degrees`` (positive turns
    +x towards -y: counter-clockwise on screen), bilinear, black where the rotated scan
    leaves the frame; returns the scan and the ellipse in the same rotated frame."""
    import cv2

    m = cv2.getRotationMatrix2D((ellipse.cx, ellipse.cy), degrees, 1.0)
    h, w = grey.shape[:2]
    rotated = cv2.warpAffine(grey, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # cv2's matrix maps (x, y) to (x cos t + y sin t, -x sin t + y cos t) about the centre:
    # an angle measured from +x towards +y decreases by t.
    return rotated, Ellipse.normalized(ellipse.cx, ellipse.cy, ellipse.a, ellipse.b,
                                       ellipse.angle - math.radians(degrees))


class HeadCropDatasetMapper:
    """HC18 dict -> ``{"image": (3, S, S) float 0-255, "sem_seg": (S, S) long, ...}``.

    Training: the scan (and its ellipse) rotated about the ellipse's centre by a random
    angle of up to ``rotation`` degrees either way; the ellipse's tight box, each edge moved
    by up to ``jitter`` of the box's width/height (a detector's box is not exact), grown by
    ``context``, cropped; random horizontal/vertical flips and brightness/contrast
    (``HCMEASURE.AUG``). Testing: the same without rotation, jitter and augmentation. The
    grey image is repeated to 3 channels.
    """

    @configurable
    def __init__(self, is_train: bool, *, size: int, context: float, jitter: float = 0.0, rotation: float = 0.0,
                 hflip: bool = False, vflip: bool = False, brightness=(1.0, 1.0), contrast=(1.0, 1.0)):
        self.is_train = is_train
        self.size, self.context, self.jitter = int(size), float(context), float(jitter)
        self.rotation = float(rotation)
        self.hflip, self.vflip = hflip, vflip
        self.brightness, self.contrast = tuple(brightness), tuple(contrast)

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        c, aug = cfg.HCMEASURE.HEAD_CROP, cfg.HCMEASURE.AUG
        return {
            "is_train": is_train,
            "size": c.SIZE,
            "context": c.CONTEXT,
            "jitter": c.TRAIN_JITTER if is_train else 0.0,
            "rotation": c.TRAIN_ROTATION if is_train else 0.0,
            "hflip": bool(aug.HFLIP) and is_train,
            "vflip": bool(aug.VFLIP) and is_train,
            "brightness": aug.BRIGHTNESS if is_train else (1.0, 1.0),
            "contrast": aug.CONTRAST if is_train else (1.0, 1.0),
        }

    def __call__(self, dataset_dict: dict) -> dict:
        from ..io.images import read_scan

        d = copy.deepcopy(dataset_dict)
        if "ellipse" not in d:
            raise KeyError(f"{d.get('file_name')}: head crops need the annotation's fitted 'ellipse' "
                           "(an HC18 training or val dict)")
        ellipse = Ellipse(**d["ellipse"])
        grey = read_scan(d["file_name"])
        if self.rotation:
            grey, ellipse = rotate_about_centre(grey, ellipse, np.random.uniform(-self.rotation, self.rotation))
        box = ellipse_box(ellipse)
        if self.jitter:
            w, h = box[2] - box[0], box[3] - box[1]
            j = np.random.uniform(-self.jitter, self.jitter, size=4) * np.array([w, h, w, h])
            box = tuple(float(v) for v in np.asarray(box) + j)
        box = head_crop_box(box, self.context)
        crop = crop_image(torch.from_numpy(np.ascontiguousarray(grey, dtype=np.float32)), box, self.size)[0]
        target = torch.from_numpy(ellipse_cells(ellipse, box, self.size))
        if self.is_train:
            if self.hflip and np.random.rand() < 0.5:
                crop, target = crop.flip(-1), target.flip(-1)
            if self.vflip and np.random.rand() < 0.5:
                crop, target = crop.flip(-2), target.flip(-2)
            b = np.random.uniform(*self.brightness)
            c = np.random.uniform(*self.contrast)
            mean = crop.mean()
            crop = (((crop - mean) * c + mean) * b).clamp(0, 255)
        d["image"] = crop[None].expand(3, -1, -1).contiguous()
        d["sem_seg"] = target.long()
        d["crop_box"] = box
        d["height"] = d["width"] = self.size
        d.pop("annotations", None)
        return d
