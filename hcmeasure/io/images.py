"""Reading scans from disk into the arrays the models expect.

``read_scan`` returns an 8-bit greyscale (H, W) array whatever the file holds:
8-bit or 16-bit greyscale, RGB or RGBA (converted to luminance, alpha dropped),
palette images. 16-bit data is rescaled linearly so that its maximum maps to 255.
Failures raise :class:`ImageReadError` with the file name and what is wrong.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["IMAGE_EXTENSIONS", "DICOM_EXTENSIONS", "ImageReadError", "is_dicom_file", "read_scan", "list_images",
           "list_image_names", "gray_to_bgr"]

#: File extensions treated as images when a folder is measured (lower case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
#: File extensions of DICOM files (read by :mod:`hcmeasure.io.dicom`).
DICOM_EXTENSIONS = (".dcm", ".dicom", ".dic")


class ImageReadError(ValueError):
    """The file is not a readable image; ``reason`` is a short status code."""

    def __init__(self, path, message: str, reason: str = "unreadable_image"):
        super().__init__(f"{path}: {message}")
        self.path = Path(path)
        self.reason = reason


def is_dicom_file(path) -> bool:
    """True for a DICOM extension, or an extensionless file with the 'DICM' preamble marker."""
    path = Path(path)
    if path.suffix.lower() in DICOM_EXTENSIONS:
        return True
    if path.suffix == "":
        try:
            with open(path, "rb") as f:
                head = f.read(132)
        except OSError:
            return False
        return len(head) == 132 and head[128:132] == b"DICM"
    return False


def list_images(folder) -> tuple[list[Path], list[Path]]:
    """Split a folder's files (sorted by name, non-recursive) into images and others.

    Images are the :data:`IMAGE_EXTENSIONS` and DICOM files (``.dcm``/``.dicom``/``.dic``,
    or no extension and the DICOM preamble marker); see :mod:`hcmeasure.io.dicom`."""
    folder = Path(folder)
    images, others = list_image_names(folder)
    return [folder / n for n in images], [folder / n for n in others]


def list_image_names(folder) -> tuple[list[str], list[str]]:
    """As :func:`list_images`, but file names (sorted) instead of paths: a folder of a few
    hundred thousand scans costs a few tens of MB here instead of a few hundred."""
    images, others = [], []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") or entry.is_dir():
                continue
            suffix = Path(entry.name).suffix
            if suffix.lower() in IMAGE_EXTENSIONS or is_dicom_file(entry.path):
                images.append(entry.name)
            elif suffix == "" and not _readable(entry.path):
                # An entry that cannot be opened at all (a dangling link, no read permission) gets
                # a row saying so rather than being skipped: it may be the scan the user wanted.
                images.append(entry.name)
            else:
                others.append(entry.name)
    images.sort()
    others.sort()
    return images, others


def _readable(path) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False


def read_scan(path) -> np.ndarray:
    """Read an image file as an 8-bit greyscale ``(height, width)`` array."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()  # forces decoding: truncated or corrupt data fails here
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                arr = np.asarray(im, dtype=np.float64)
                peak = float(arr.max()) if arr.size else 0.0
                arr = np.zeros_like(arr) if peak <= 0 else np.clip(arr, 0, None) * (255.0 / peak)
                return np.round(arr).astype(np.uint8)
            if mode == "L":
                return np.asarray(im, dtype=np.uint8).copy()
            if mode in ("LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "1"):
                return np.asarray(im.convert("L"), dtype=np.uint8).copy()
            return np.asarray(im.convert("L"), dtype=np.uint8).copy()
    except FileNotFoundError:
        if path.is_symlink():
            raise ImageReadError(path, f"a symbolic link to {os.readlink(path)}, which does not exist; "
                                       "fix or remove the link") from None
        raise ImageReadError(path, "file not found", "missing_file") from None
    except PermissionError:
        raise ImageReadError(path, "cannot be opened: permission denied; give the user running "
                                   "hcmeasure read access to it") from None
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image file PIL can identify (wrong format or corrupt)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(path, f"image data is corrupt or truncated ({exc})") from None


def gray_to_bgr(gray: np.ndarray) -> np.ndarray:
    """Replicate an (H, W) greyscale array into the (H, W, 3) BGR layout Detectron2 models take."""
    return np.repeat(np.asarray(gray, np.uint8)[:, :, None], 3, axis=2)
