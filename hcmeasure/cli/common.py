"""Helpers shared by the subcommands."""
from __future__ import annotations


class CLIError(Exception):
    """A problem that stops the command; the message names the file and the fix."""


def pixel_size_overrides(pixel_size_mm: float | None, pixel_size_csv):
    """The :class:`~hcmeasure.io.calibration.PixelSizeOverrides` of ``--pixel-size`` /
    ``--pixel-size-csv``; a value or a file that cannot be used is a :class:`CLIError`."""
    from ..io.calibration import read_pixel_size_overrides
    from ..io.tables import TableError

    try:
        return read_pixel_size_overrides(pixel_size_mm, pixel_size_csv)
    except TableError as exc:
        raise CLIError(str(exc)) from None
    except ValueError as exc:
        raise CLIError(f"--pixel-size {pixel_size_mm}: {exc}.") from None
