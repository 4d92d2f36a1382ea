"""Reading ultrasound DICOM files: frames as 8-bit grey, pixel calibration, identifiers.

* Pixel data is decoded by pydicom with the decoders installed beside it:
  uncompressed (implicit/explicit VR), deflated and RLE lossless natively; JPEG
  baseline and extended (8-bit) through Pillow; JPEG 2000 (lossless and lossy,
  incl. the YBR_RCT/YBR_ICT colour transforms) through ``pylibjpeg-openjpeg``; JPEG-LS
  through ``pyjpegls`` (installed with ``highdicom``). JPEG lossless (process 14) needs
  an extra decoder (``pylibjpeg-libjpeg``, GPL-3.0), which hcmeasure does not install.
  :func:`supported_transfer_syntaxes` lists what this
  installation can decode; a file in any other transfer syntax gets the status
  ``unsupported_transfer_syntax`` with the syntax's name.
* Frames are converted to 8-bit grey: MONOCHROME2 as is, MONOCHROME1 inverted,
  RGB / YBR_* (converted to RGB by pydicom) and PALETTE COLOR to luminance
  (ITU-R 601 weights, as PIL's "L"); data deeper than 8 bits is rescaled linearly so
  that its range maps to 0-255.
* Pixel size, in this order of preference (:func:`pixel_calibrations`):
  the ``SequenceOfUltrasoundRegions`` item whose region contains the head, with
  ``PhysicalUnitsXDirection`` and ``PhysicalUnitsYDirection`` = 3 (cm) and positive
  ``PhysicalDeltaX``/``PhysicalDeltaY`` (converted to mm); then ``PixelSpacing``; then
  ``ImagerPixelSpacing`` (both in mm, ``[row spacing (y), column spacing (x)]``).
* Patient identifiers are read only when asked for (:func:`identifiers`).
* A known gestational age, when the file carries ``LastMenstrualDate`` (0010,21D0):
  the days from it to the scan's ``AcquisitionDate`` (else ``ContentDate``, else
  ``StudyDate``) (:func:`known_ga_from_dataset`). Only that number of days is kept;
  the dates themselves go nowhere.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..measurement.growth import KnownGA, ga_from_dates, known_ga_from_days
from .images import DICOM_EXTENSIONS, ImageReadError, is_dicom_file  # noqa: F401 (part of this module's API)

__all__ = [
    "DICOM_EXTENSIONS",
    "Calibration",
    "DicomFrame",
    "is_dicom_file",
    "read_dicom",
    "pixel_calibrations",
    "choose_calibration",
    "identifiers",
    "known_ga_from_dataset",
    "supported_transfer_syntaxes",
]

#: Written to ``pixel_size_source`` for each calibration source.
SOURCE_REGION = "dicom_us_region"
SOURCE_PIXEL_SPACING = "dicom_pixel_spacing"
SOURCE_IMAGER_PIXEL_SPACING = "dicom_imager_pixel_spacing"

#: Identifying attributes copied to the outputs only with ``--keep-identifiers``.
IDENTIFIER_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber",
                       "StudyDate", "StudyInstanceUID")

_UNITS_CM = 3


@dataclass(frozen=True)
class Calibration:
    """Pixel spacing in mm along x (columns) and y (rows), where it applies, and its source."""

    dx_mm: float
    dy_mm: float
    source: str
    region: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 inclusive, pixels

    def contains(self, x: float, y: float) -> bool:
        if self.region is None:
            return True
        x0, y0, x1, y1 = self.region
        return x0 - 0.5 <= x <= x1 + 0.5 and y0 - 0.5 <= y <= y1 + 0.5

    @property
    def area(self) -> float:
        if self.region is None:
            return float("inf")
        x0, y0, x1, y1 = self.region
        return float((x1 - x0 + 1) * (y1 - y0 + 1))

    @property
    def square(self) -> bool:
        return abs(self.dx_mm - self.dy_mm) <= 1e-9 * max(self.dx_mm, self.dy_mm)


@dataclass
class DicomFrame:
    """One frame of a DICOM file, ready for measurement."""

    name: str  # "scan.dcm" for a single frame, "scan.dcm#3" (1-based) in a multi-frame file
    gray: np.ndarray
    calibrations: list[Calibration] = field(default_factory=list)
    identifiers: dict[str, str] = field(default_factory=dict)
    burned_in_annotation: bool = False
    known_ga: KnownGA | None = None  # from LastMenstrualDate and the scan date, when present


def supported_transfer_syntaxes() -> list[str]:
    """Names of the transfer syntaxes whose pixel data this installation can decode."""
    from pydicom.pixels.decoders.base import _PIXEL_DATA_DECODERS

    names = []
    for uid, (decoder, *_rest) in _PIXEL_DATA_DECODERS.items():
        try:
            if decoder.is_available:
                names.append(uid.name)
        except Exception:  # a broken plugin must not stop the listing
            continue
    return sorted(names)


def _float(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None


def pixel_calibrations(ds) -> list[Calibration]:
    """All usable calibrations of a dataset, most preferred first (see module docstring)."""
    cals: list[Calibration] = []
    for item in ds.get("SequenceOfUltrasoundRegions", None) or []:
        if item.get("PhysicalUnitsXDirection") != _UNITS_CM or item.get("PhysicalUnitsYDirection") != _UNITS_CM:
            continue  # time, velocity... axes, or no units: not a spatial calibration
        dx, dy = _float(item.get("PhysicalDeltaX")), _float(item.get("PhysicalDeltaY"))
        if dx is None or dy is None:
            continue
        try:
            region = tuple(int(item[k].value) for k in
                           ("RegionLocationMinX0", "RegionLocationMinY0", "RegionLocationMaxX1", "RegionLocationMaxY1"))
        except (KeyError, TypeError, ValueError):
            region = None
        cals.append(Calibration(dx * 10.0, dy * 10.0, SOURCE_REGION, region))
    for keyword, source in (("PixelSpacing", SOURCE_PIXEL_SPACING), ("ImagerPixelSpacing", SOURCE_IMAGER_PIXEL_SPACING)):
        value = ds.get(keyword)
        if value is not None and len(value) == 2:
            dy, dx = _float(value[0]), _float(value[1])
            if dx is not None and dy is not None:
                cals.append(Calibration(dx, dy, source))
    return cals


def choose_calibration(cals: list[Calibration], point: tuple[float, float] | None = None) -> Calibration | None:
    """The calibration that applies at ``point`` (x, y pixels; e.g. the head centre).

    Regions containing the point come first (the smallest, when nested); without a
    point (no head found) the largest region is used. A point outside every region
    falls back to ``PixelSpacing`` / ``ImagerPixelSpacing``.
    """
    regions = [c for c in cals if c.source == SOURCE_REGION]
    others = [c for c in cals if c.source != SOURCE_REGION]
    if regions:
        if point is None:
            return max(regions, key=lambda c: c.area if c.region is not None else -1.0)
        inside = [c for c in regions if c.contains(*point)]
        if inside:
            return min(inside, key=lambda c: c.area)
    return others[0] if others else None


def identifiers(ds) -> dict[str, str]:
    """Patient/study identifiers (only for ``--keep-identifiers``)."""
    return {k: str(ds.get(k, "") or "") for k in IDENTIFIER_KEYWORDS}


#: Where the GA from the last menstrual period is recorded (``known_ga_source``).
SOURCE_LMP = "dicom_lmp"


def _dicom_date(value) -> datetime.date | None:
    text = str(value or "").strip()
    try:
        return datetime.datetime.strptime(text[:8], "%Y%m%d").date() if len(text) >= 8 else None
    except ValueError:
        return None


def known_ga_from_dataset(ds) -> KnownGA | None:
    """GA from ``LastMenstrualDate`` to the scan date (``AcquisitionDate``, else
    ``ContentDate``, else ``StudyDate``); None when the file has no LMP. A date that
    cannot be read gives status ``invalid_ga`` (the dates are never repeated)."""
    if not str(ds.get("LastMenstrualDate", "") or "").strip():
        return None
    lmp = _dicom_date(ds.get("LastMenstrualDate"))
    scan = next((d for d in (_dicom_date(ds.get(k)) for k in ("AcquisitionDate", "ContentDate", "StudyDate"))
                 if d is not None), None)
    if lmp is None or scan is None:
        what = "LastMenstrualDate is not a valid DICOM date" if lmp is None else \
            "no AcquisitionDate, ContentDate or StudyDate to count the GA to"
        return KnownGA(None, SOURCE_LMP, "invalid_ga", "", f"{what}; no GA from the file")
    return known_ga_from_days(ga_from_dates(lmp, scan), SOURCE_LMP)


def _to_gray(arr: np.ndarray, photometric: str, ds) -> np.ndarray:
    arr = np.asarray(arr)
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        rgb = arr[..., :3].astype(np.float64)
        if arr.dtype != np.uint8:
            rgb = _scale(rgb)
        gray = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
        return np.clip(np.round(gray), 0, 255).astype(np.uint8)
    if arr.ndim != 2:
        raise ValueError(f"unexpected frame shape {arr.shape}")
    if arr.dtype == np.uint8:
        gray = arr.copy()
    else:
        gray = np.round(_scale(arr.astype(np.float64))).astype(np.uint8)
    if photometric == "MONOCHROME1":  # minimum value is white
        gray = 255 - gray
    return gray


def _scale(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    lo = min(lo, 0.0)  # unsigned data keeps 0 as black, as for 16-bit PNGs
    if hi <= lo:
        return np.zeros_like(arr)
    return (arr - lo) * (255.0 / (hi - lo))


def read_dicom(path, frame: int | None = None, keep_identifiers: bool = False) -> list[DicomFrame]:
    """Read a DICOM file's frames (all, or the 1-based ``frame`` of a multi-frame file;
    a single-frame file ignores ``frame``) as :class:`DicomFrame`.

    Raises :class:`ImageReadError` with reason ``unreadable_image`` (not DICOM, corrupt,
    no pixel data), ``unsupported_transfer_syntax`` or ``frame_out_of_range``.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import pixel_array

    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except FileNotFoundError:
        if path.is_symlink():
            raise ImageReadError(path, "a symbolic link to a file that does not exist; fix or remove the link") from None
        raise ImageReadError(path, "file not found", "missing_file") from None
    except PermissionError:
        raise ImageReadError(path, "cannot be opened: permission denied; give the user running "
                                   "hcmeasure read access to it") from None
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError) as exc:
        raise ImageReadError(path, f"not a readable DICOM file ({exc})") from None
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise ImageReadError(path, "the DICOM file holds no pixel data (not an image object)", "no_pixel_data")
    tsyntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    try:
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        n_frames = 1
    if n_frames > 1 and frame is not None and not 1 <= frame <= n_frames:
        raise ImageReadError(path, f"--frame {frame} asked for, but the file has {n_frames} frames",
                             "frame_out_of_range")
    indices = [frame - 1] if (frame is not None and n_frames > 1) else list(range(n_frames))
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    cals = pixel_calibrations(ds)
    ids = identifiers(ds) if keep_identifiers else {}
    burned = str(ds.get("BurnedInAnnotation", "")).upper() == "YES"
    ga = known_ga_from_dataset(ds)
    frames = []
    for i in indices:
        try:
            arr = pixel_array(ds, index=i if n_frames > 1 else None)
        except NotImplementedError as exc:
            name = getattr(tsyntax, "name", str(tsyntax))
            raise ImageReadError(
                path,
                f"pixel data in transfer syntax {name!r} cannot be decoded here ({exc}); supported: "
                f"{', '.join(supported_transfer_syntaxes())}",
                "unsupported_transfer_syntax",
            ) from None
        except RuntimeError as exc:
            name = getattr(tsyntax, "name", str(tsyntax))
            msg = str(exc).lower()
            if "missing" in msg or "no plugin" in msg:
                raise ImageReadError(
                    path,
                    f"pixel data in transfer syntax {name!r} cannot be decoded by the installed decoders; "
                    f"supported here: {', '.join(supported_transfer_syntaxes())}",
                    "unsupported_transfer_syntax",
                ) from None
            raise ImageReadError(path, f"cannot decode the pixel data ({name}): {exc}") from None
        except (ValueError, AttributeError, TypeError, KeyError, OSError, EOFError) as exc:
            raise ImageReadError(path, f"the pixel data is corrupt or truncated ({exc})") from None
        try:
            gray = _to_gray(arr, photometric, ds)
        except (ValueError, AttributeError, KeyError) as exc:
            raise ImageReadError(path, f"cannot convert {photometric} pixel data to grey ({exc})") from None
        name = path.name if n_frames == 1 else f"{path.name}#{i + 1}"
        frames.append(DicomFrame(name, gray, cals, ids, burned, ga))
    return frames
