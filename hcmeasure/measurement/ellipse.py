"""Ellipse fitting on binary masks, and ellipse perimeters.

Conventions (used everywhere in hcmeasure):

* Image coordinates in pixels: ``x`` is the column (increasing to the right),
  ``y`` is the row (increasing downwards); ``(0, 0)`` is the *centre* of the
  top-left pixel, so pixel ``(row r, column c)`` covers ``[c-0.5, c+0.5] x [r-0.5, r+0.5]``.
* An :class:`Ellipse` has centre ``(cx, cy)``, semi-axes ``a >= b`` (pixels) and
  ``angle`` (radians, in ``[0, pi)``): the direction of the semi-axis ``a``
  measured from the +x axis towards the +y axis. Because y points down, a
  positive angle appears *clockwise* on screen. Boundary points are
  ``x = cx + a cos(t) cos(angle) - b sin(t) sin(angle)``,
  ``y = cy + a cos(t) sin(angle) + b sin(t) cos(angle)``.
* A pixel belongs to a filled ellipse when its centre lies inside the ellipse.

Masks come in two kinds, told apart automatically:

* *filled* (a segmentation such as Mask R-CNN's): the ellipse is fitted to the
  sub-pixel contour at level 0.5 between inside and outside pixel centres,
  which lies on the true edge (pixel centres on the boundary sit about half a
  pixel inside it). Contour points on the image border are dropped, so a head
  cut by the border is still fitted to its real outline only.
* *outline* (an HC18 annotation: a ring 2-3 px thick): the ellipse is fitted to
  the centres of the ring's pixels, i.e. the middle of the ring, which is where
  the HC18 reference circumference runs.

The fit is a least-squares conic fit (OpenCV ``fitEllipse``) made robust by
iteratively dropping points far from the current ellipse.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage
from skimage import measure

__all__ = [
    "Ellipse",
    "EllipseFit",
    "EllipseFitError",
    "fit_ellipse",
    "fit_ellipse_to_points",
    "ellipse_mask",
    "ellipse_polygon",
    "ramanujan_perimeter",
    "is_outline_mask",
]

#: A mask whose largest inscribed disc has a radius below this (pixels) is an outline.
OUTLINE_MAX_THICKNESS_PX = 4.0


class EllipseFitError(ValueError):
    """The mask holds too few usable points to fit an ellipse."""


@dataclass(frozen=True)
class Ellipse:
    """An ellipse in image pixels; see the module docstring for conventions."""

    cx: float
    cy: float
    a: float
    b: float
    angle: float

    def __post_init__(self):
        if not (self.a >= self.b > 0):
            raise ValueError(f"need a >= b > 0 semi-axes, got a={self.a}, b={self.b}")

    @classmethod
    def normalized(cls, cx, cy, a, b, angle) -> "Ellipse":
        """Build an ellipse from any axis order/angle, returning ``a >= b`` and angle in [0, pi)."""
        a, b = float(abs(a)), float(abs(b))
        angle = float(angle)
        if b > a:
            a, b = b, a
            angle += math.pi / 2
        angle = math.fmod(angle, math.pi)
        if angle < 0:
            angle += math.pi
        return cls(float(cx), float(cy), a, b, angle)

    def perimeter(self, formula: int = 2) -> float:
        """Perimeter in pixels (Ramanujan's approximation, see :func:`ramanujan_perimeter`)."""
        return ramanujan_perimeter(self.a, self.b, formula)

    @property
    def area(self) -> float:
        """Area in square pixels."""
        return math.pi * self.a * self.b

    def scaled(self, factor: float) -> "Ellipse":
        """The same ellipse in units ``factor`` times larger (e.g. ``factor`` = mm per pixel)."""
        return Ellipse(self.cx * factor, self.cy * factor, self.a * factor, self.b * factor, self.angle)

    def points(self, num: int = 360) -> np.ndarray:
        """``num`` boundary points as an ``(num, 2)`` array of ``(x, y)``."""
        t = np.linspace(0.0, 2 * np.pi, num, endpoint=False)
        ca, sa = math.cos(self.angle), math.sin(self.angle)
        x = self.cx + self.a * np.cos(t) * ca - self.b * np.sin(t) * sa
        y = self.cy + self.a * np.cos(t) * sa + self.b * np.sin(t) * ca
        return np.stack([x, y], axis=1)

    def normalized_radius(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``sqrt((u/a)^2 + (v/b)^2)`` in the ellipse frame: 1 on the boundary, < 1 inside."""
        dx, dy = np.asarray(x, float) - self.cx, np.asarray(y, float) - self.cy
        ca, sa = math.cos(self.angle), math.sin(self.angle)
        u = dx * ca + dy * sa
        v = -dx * sa + dy * ca
        return np.sqrt((u / self.a) ** 2 + (v / self.b) ** 2)


@dataclass(frozen=True)
class EllipseFit:
    """Result of :func:`fit_ellipse`: the ellipse and how well it matches the mask."""

    ellipse: Ellipse
    iou: float
    """IoU between the (filled) mask and the filled fitted ellipse, in [0, 1]."""
    kind: str
    """``"filled"`` or ``"outline"``: how the mask was interpreted."""
    num_points: int
    """Number of boundary points used by the final fit."""


def ramanujan_perimeter(a: float, b: float, formula: int = 2) -> float:
    """Perimeter of an ellipse with semi-axes ``a`` and ``b`` (same unit as a and b).

    ``formula=1``: Ramanujan's first approximation ``pi (3(a+b) - sqrt((3a+b)(a+3b)))``
    (the one quoted by HC18). ``formula=2`` (default): Ramanujan's second,
    ``pi (a+b) (1 + 3h / (10 + sqrt(4 - 3h)))`` with ``h = ((a-b)/(a+b))^2``, which is
    more accurate. Both are exact for a circle and fall slightly short otherwise.
    Relative error against the exact perimeter ``4 a E(1 - b^2/a^2)``: for
    ``b/a >= 0.5`` (all HC18 heads) below 3e-6 (formula 1) and 5e-10 (formula 2);
    at worst, for a degenerate ellipse (``b -> 0``), 0.42 % and 0.040 %.
    """
    a, b = float(a), float(b)
    if a < 0 or b < 0:
        raise ValueError(f"semi-axes must be non-negative, got a={a}, b={b}")
    if a + b == 0:
        return 0.0
    if formula == 1:
        return math.pi * (3 * (a + b) - math.sqrt((3 * a + b) * (a + 3 * b)))
    if formula == 2:
        h = ((a - b) / (a + b)) ** 2
        return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))
    raise ValueError(f"formula must be 1 or 2, got {formula}")


def is_outline_mask(mask: np.ndarray) -> bool:
    """True when the mask is a thin outline (ring) rather than a filled region."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return False
    depth = ndimage.distance_transform_edt(np.pad(mask, 1))
    return float(depth.max()) < OUTLINE_MAX_THICKNESS_PX


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(sizes.argmax())


def _filled_boundary_points(mask: np.ndarray) -> np.ndarray:
    """Sub-pixel contour points ``(x, y)`` at level 0.5, off the image border."""
    h, w = mask.shape
    padded = np.pad(mask.astype(np.float32), 1)
    contours = measure.find_contours(padded, 0.5)
    if not contours:
        return np.empty((0, 2))
    pts = np.concatenate(contours, axis=0) - 1.0  # (row, col), back to unpadded coordinates
    rows, cols = pts[:, 0], pts[:, 1]
    # Contour segments along the image border are the border, not the head's edge.
    on_border = (rows < 0.01) | (cols < 0.01) | (rows > h - 1.01) | (cols > w - 1.01)
    return np.stack([cols[~on_border], rows[~on_border]], axis=1)


def fit_ellipse_to_points(
    points: np.ndarray, *, max_iter: int = 3, outlier_px: float = 3.0
) -> tuple[Ellipse, int]:
    """Robust least-squares ellipse through ``(x, y)`` points (pixels).

    Fits with OpenCV, then repeatedly drops points whose distance to the ellipse
    (approximated along the ray from the centre) exceeds ``max(outlier_px, 3 * MAD)``
    and refits. Returns the ellipse and the number of points kept.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 5:
        raise EllipseFitError(f"need at least 5 points to fit an ellipse, got {len(pts)}")
    # A conic has 5 degrees of freedom: fewer distinct points (e.g. the closed 4-point
    # contour of a single pixel) would give an arbitrary ellipse.
    unique = np.unique(pts, axis=0)
    if len(unique) < 5:
        raise EllipseFitError(f"need at least 5 distinct points to fit an ellipse, got {len(unique)}")
    centred = unique - unique.mean(axis=0)
    spread = np.linalg.eigvalsh(centred.T @ centred)
    if spread[0] <= 1e-9 * max(spread[1], 1.0):
        raise EllipseFitError("points are collinear: no ellipse passes through them")
    keep = np.ones(len(pts), bool)
    ellipse = None
    for _ in range(max_iter + 1):
        sel = pts[keep]
        if len(sel) < 5:
            break
        (cx, cy), (d1, d2), angle_deg = cv2.fitEllipse(sel.astype(np.float32))
        if not (np.isfinite([cx, cy, d1, d2, angle_deg]).all()) or min(d1, d2) <= 0:
            raise EllipseFitError("points are degenerate (collinear or too few distinct)")
        # OpenCV: d1 is the full axis along angle_deg (measured from +x towards +y).
        ellipse = Ellipse.normalized(cx, cy, d1 / 2, d2 / 2, math.radians(angle_deg))
        r = ellipse.normalized_radius(pts[:, 0], pts[:, 1])
        dist = np.abs(r - 1.0) * np.sqrt(ellipse.a * ellipse.b)
        resid = dist[keep]
        mad = float(np.median(np.abs(resid - np.median(resid)))) * 1.4826
        new_keep = dist <= max(outlier_px, 3.0 * mad)
        if new_keep.sum() < 5 or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    if ellipse is None:
        raise EllipseFitError("too few points left after outlier removal")
    return ellipse, int(keep.sum())


def ellipse_mask(ellipse: Ellipse, shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``(height, width)`` mask of the pixels whose centres lie inside ``ellipse``."""
    h, w = int(shape[0]), int(shape[1])
    mask = np.zeros((h, w), bool)
    r = ellipse.a
    x0, x1 = max(0, int(math.floor(ellipse.cx - r))), min(w, int(math.ceil(ellipse.cx + r)) + 1)
    y0, y1 = max(0, int(math.floor(ellipse.cy - r))), min(h, int(math.ceil(ellipse.cy + r)) + 1)
    if x0 >= x1 or y0 >= y1:
        return mask
    ys, xs = np.mgrid[y0:y1, x0:x1]
    mask[y0:y1, x0:x1] = ellipse.normalized_radius(xs, ys) <= 1.0
    return mask


def ellipse_polygon(ellipse: Ellipse, num_points: int = 256) -> np.ndarray:
    """Boundary polygon ``(num_points, 2)`` of ``(x, y)`` in hcmeasure's pixel-centre frame."""
    return ellipse.points(num_points)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def fit_ellipse(mask: np.ndarray, kind: str = "auto") -> EllipseFit:
    """Fit an ellipse to a binary mask (any non-zero value is foreground).

    ``kind``: ``"filled"``, ``"outline"`` or ``"auto"`` (decided by
    :func:`is_outline_mask`). For filled masks only the largest connected
    component is used. Raises :class:`EllipseFitError` for an empty or degenerate mask.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (height, width), got shape {mask.shape}")
    mask = mask > 0
    if not mask.any():
        raise EllipseFitError("mask is empty")
    if kind == "auto":
        kind = "outline" if is_outline_mask(mask) else "filled"
    if kind == "outline":
        rows, cols = np.nonzero(mask)
        points = np.stack([cols, rows], axis=1).astype(np.float64)
        region = ndimage.binary_fill_holes(mask)
    elif kind == "filled":
        mask = _largest_component(mask)
        points = _filled_boundary_points(mask)
        region = mask
    else:
        raise ValueError(f"kind must be 'auto', 'filled' or 'outline', got {kind!r}")
    ellipse, used = fit_ellipse_to_points(points)
    iou = _iou(region, ellipse_mask(ellipse, mask.shape))
    return EllipseFit(ellipse=ellipse, iou=iou, kind=kind, num_points=used)
