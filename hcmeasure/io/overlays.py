"""Overlay PNGs of measured heads: drawing, caption and file names.

:func:`draw_overlay` draws a scan with the fitted outline, the ellipse, the OFD / BPD
diameters and a caption; :func:`overlay_caption` is that caption for a
``measurements.csv`` row (so the overlay shows the values the CSV holds);
:func:`overlay_filename` names the overlay of a row, the same way for ``hcmeasure
predict``, which writes them, and the report, which shows them.
"""
from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping

import cv2
import numpy as np

from .biometry_outputs import biometry_caption
from .tables import hc_text

__all__ = ["draw_overlay", "overlay_caption", "overlay_filename", "shared_overlay_stems"]

#: Overlay palette: indices 0..251 are grey levels, then the drawing colours (RGB).
_GREY_LEVELS = 252
_GREEN, _RED, _YELLOW, _BLACK = 252, 253, 254, 255
_OVERLAY_PALETTE = (
    [round(i * 255 / (_GREY_LEVELS - 1)) for i in range(_GREY_LEVELS) for _ in range(3)]
    + [0, 200, 0] + [255, 0, 0] + [255, 255, 0] + [0, 0, 0]
)


def draw_overlay(gray: np.ndarray, head, caption: str, diameters=()) -> bytes:
    """PNG bytes: the scan ``gray`` (H, W), the fitted outline ``head.contour`` (green), the
    ellipse ``head.ellipse`` (red; both in image pixels, either may be None), the
    ``diameters`` (OFD and BPD segments in pixels, yellow) and the ``caption`` (one line of
    text per line).

    Written as an 8-bit palette PNG (252 grey levels + the drawing colours): a third of
    the bytes of an RGB PNG to compress, so overlays cost little next to the network.
    """
    from PIL import Image

    img = (gray.astype(np.uint16) * (_GREY_LEVELS - 1) // 255).astype(np.uint8)
    shift = 4  # sub-pixel drawing: coordinates in 1/16 pixel
    scale = 1 << shift
    if head.contour is not None and len(head.contour):
        pts = np.round(head.contour * scale).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(img, [pts], False, _GREEN, 1, cv2.LINE_8, shift)
    if head.ellipse is not None:
        e = head.ellipse
        cv2.ellipse(
            img,
            (int(round(e.cx * scale)), int(round(e.cy * scale))),
            (int(round(e.a * scale)), int(round(e.b * scale))),
            float(np.degrees(e.angle)), 0, 360, _RED, 2, cv2.LINE_8, shift,
        )
    for seg in diameters:
        p0, p1 = (tuple(int(v) for v in np.round(np.asarray(q) * scale)) for q in seg)
        cv2.line(img, p0, p1, _YELLOW, 1, cv2.LINE_8, shift)
    for i, line in enumerate(caption.split("\n")):
        cv2.putText(img, line, (10, 28 + 30 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.8, _BLACK, 4, cv2.LINE_8)
        cv2.putText(img, line, (10, 28 + 30 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.8, _YELLOW, 2, cv2.LINE_8)
    pil = Image.fromarray(img, mode="P")
    pil.putpalette(_OVERLAY_PALETTE)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def overlay_caption(row: Mapping[str, str]) -> str:
    """The caption of a row's overlay: HC (with its interval) and GA, then BPD / OFD / CI and
    the HC centile for a known GA, then the review reasons."""
    text = hc_text(row)
    if row.get("ga_weeks"):
        text += f"  GA {row['ga_weeks']}+{row['ga_days']}"
    biometry = biometry_caption(row)
    if biometry:
        text += "\n" + biometry
    if row.get("status") == "review":
        text += f"\nREVIEW: {row.get('review_reason', '').replace(';', ', ')}"
    return text


def overlay_filename(name: str, shared_stems: frozenset[str] = frozenset()) -> str:
    """Overlay PNG name for a row: ``a.png`` -> ``a.png``, ``b.dcm`` -> ``b.png``,
    ``c.dcm#3`` -> ``c_frame3.png``.

    ``shared_stems`` (from :func:`shared_overlay_stems`) are stems that several input
    files of the run share; such a file keeps its extension in the name unless it is a
    PNG (``a.png`` -> ``a.png``, ``a.dcm`` -> ``a_dcm.png``, ``a.dcm#2`` ->
    ``a_dcm_frame2.png``), so no overlay overwrites another."""
    base, _, frame = name.partition("#")
    path = Path(base)
    stem = path.stem
    if stem in shared_stems and path.suffix.lower() != ".png":
        stem = f"{stem}_{path.suffix.lstrip('.').lower()}"
    return f"{stem}_frame{frame}.png" if frame else f"{stem}.png"


def shared_overlay_stems(names: Iterable[str]) -> frozenset[str]:
    """Stems shared by more than one input file among row or file ``names``
    (``a.png`` and ``a.dcm``; the frames of one file count once)."""
    stems = Counter(Path(f).stem for f in {n.partition("#")[0] for n in names})
    return frozenset(s for s, k in stems.items() if k > 1)
