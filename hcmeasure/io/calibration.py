"""Which pixel size a scan is measured with: the user's overrides against the file's own
calibration.

The pixel size of an image (or DICOM frame) comes from, in order:

1. an override: one pixel size for every image (source ``pixel_size_arg``) or a
   per-file table (``pixel_size_csv``, by row name such as ``file.dcm#2``, then by file
   name); an override that differs from the file's own calibration by more than
   :data:`DISAGREEMENT_TOLERANCE` is used, and the disagreement is reported;
2. the file's calibration (:mod:`hcmeasure.io.dicom`): the ultrasound region containing
   the head, ``PixelSpacing``, ``ImagerPixelSpacing``.

The result is a :class:`~hcmeasure.measurement.record.PixelCalibration`; a value that is
not a plausible pixel size (:func:`~hcmeasure.measurement.spacing.pixel_size_problem`) is
kept as its ``error`` (status ``invalid_pixel_size``), so one bad entry never stops a run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..measurement.record import PixelCalibration
from ..measurement.spacing import pixel_size_problem
from .dicom import Calibration, choose_calibration
from .tables import PixelSize, read_pixel_size_csv

__all__ = ["DISAGREEMENT_TOLERANCE", "PixelSizeOverrides", "read_pixel_size_overrides", "resolve_calibration"]

#: Relative difference between an override and the file's calibration that is reported.
DISAGREEMENT_TOLERANCE = 0.01


@dataclass(frozen=True)
class PixelSizeOverrides:
    """Pixel sizes given by the user: ``single`` for every image, or ``table`` by name
    (neither: every image keeps its file's calibration)."""

    single: PixelSize | None = None
    table: Mapping[str, PixelSize] | None = None

    def lookup(self, name: str, file_name: str) -> tuple[PixelSize | None, str]:
        """``(override or None, its source)`` for the row ``name`` of the file ``file_name``."""
        if self.single is not None:
            return self.single, "pixel_size_arg"
        if self.table is not None:
            return self.table.get(name) or self.table.get(file_name), "pixel_size_csv"
        return None, ""


def read_pixel_size_overrides(pixel_size_mm: float | None = None, pixel_size_csv=None) -> PixelSizeOverrides:
    """The overrides from one pixel size (mm) or an HC18-style pixel-size CSV (at most
    one of them). An unusable single value is a ``ValueError`` saying why; a CSV that
    cannot be read a :class:`~hcmeasure.io.tables.TableError` (bad entries in it are kept
    as errors of their rows)."""
    if pixel_size_mm is not None:
        problem = pixel_size_problem(pixel_size_mm)
        if problem:
            raise ValueError(problem)
        return PixelSizeOverrides(single=PixelSize(float(pixel_size_mm)))
    if pixel_size_csv is not None:
        return PixelSizeOverrides(table=read_pixel_size_csv(Path(pixel_size_csv)))
    return PixelSizeOverrides()


def resolve_calibration(name: str, file_name: str, overrides: PixelSizeOverrides = PixelSizeOverrides(),
                        file_calibrations: Sequence[Calibration] = (),
                        point: tuple[float, float] | None = None) -> tuple[PixelCalibration, str | None]:
    """``(calibration, disagreement)`` of the row ``name`` of ``file_name``.

    ``file_calibrations`` are the file's own (DICOM) calibrations, ``point`` the head
    centre ``(x, y)`` in pixels that picks the ultrasound region (None: no head found).
    ``disagreement`` is a message when an override differs from the file's calibration."""
    override, how = overrides.lookup(name, file_name)
    cal = choose_calibration(list(file_calibrations), point) if file_calibrations else None
    if override is not None:
        if override.error:
            return PixelCalibration(source=how, error=override.error), None
        v = override.value_mm
        note = None
        if cal is not None and max(abs(v - cal.dx_mm) / cal.dx_mm,
                                   abs(v - cal.dy_mm) / cal.dy_mm) > DISAGREEMENT_TOLERANCE:
            note = (f"{name}: --{how.replace('_', '-').replace('-arg', '')} gives {v:.6g} mm but the file's "
                    f"{cal.source} says {cal.dx_mm:.6g} x {cal.dy_mm:.6g} mm (x, y); the override is used")
            how = f"{how} (disagrees with {cal.source} {cal.dx_mm:.6g}x{cal.dy_mm:.6g} mm)"
        return PixelCalibration(v, v, how), note
    if cal is not None:
        problem = pixel_size_problem(cal.dx_mm) or pixel_size_problem(cal.dy_mm)
        if problem:
            return PixelCalibration(source=cal.source, error=f"{cal.source}: {problem}"), None
        return PixelCalibration(cal.dx_mm, cal.dy_mm, cal.source), None
    return PixelCalibration(), None
