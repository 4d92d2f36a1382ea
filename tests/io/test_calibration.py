"""Which pixel size a scan is measured with: overrides against the file's calibration."""
import pytest

from hcmeasure.io.calibration import PixelSizeOverrides, read_pixel_size_overrides, resolve_calibration
from hcmeasure.io.dicom import Calibration
from hcmeasure.io.tables import PixelSize, TableError
from hcmeasure.measurement.record import PixelCalibration

REGION = Calibration(0.25, 0.25, "dicom_us_region", (0, 0, 399, 299))
SPACING = Calibration(0.3, 0.3, "dicom_pixel_spacing")


def test_without_override_the_files_calibration_is_used():
    cal, note = resolve_calibration("a.dcm", "a.dcm", PixelSizeOverrides(), [REGION, SPACING], (200.0, 150.0))
    assert (cal, note) == (PixelCalibration(0.25, 0.25, "dicom_us_region"), None)
    # A head outside every region falls back to PixelSpacing.
    cal, _ = resolve_calibration("a.dcm", "a.dcm", PixelSizeOverrides(), [REGION, SPACING], (900.0, 150.0))
    assert cal.source == "dicom_pixel_spacing"
    assert resolve_calibration("a.png", "a.png") == (PixelCalibration(), None)


def test_an_override_wins_and_a_disagreement_is_reported():
    single = PixelSizeOverrides(single=PixelSize(0.3))
    cal, note = resolve_calibration("a.dcm", "a.dcm", single, [REGION], (200.0, 150.0))
    assert (cal.dx_mm, cal.dy_mm) == (0.3, 0.3)
    assert cal.source == "pixel_size_arg (disagrees with dicom_us_region 0.25x0.25 mm)"
    assert note.startswith("a.dcm: --pixel-size gives 0.3 mm") and note.endswith("the override is used")
    cal, note = resolve_calibration("a.dcm", "a.dcm", PixelSizeOverrides(single=PixelSize(0.251)), [REGION])
    assert cal.source == "pixel_size_arg" and note is None  # within 1 %


def test_a_table_is_looked_up_by_row_name_then_file_name_and_keeps_bad_entries_as_errors():
    table = PixelSizeOverrides(table={"cine.dcm#2": PixelSize(0.2), "cine.dcm": PixelSize(0.4),
                                      "bad.png": PixelSize(None, "pixel size 'zero' is not a number")})
    assert resolve_calibration("cine.dcm#2", "cine.dcm", table)[0].dx_mm == 0.2
    assert resolve_calibration("cine.dcm#1", "cine.dcm", table)[0].dx_mm == 0.4
    bad, _ = resolve_calibration("bad.png", "bad.png", table)
    assert (bad.source, bad.error, bad.usable) == ("pixel_size_csv", "pixel size 'zero' is not a number", False)
    assert resolve_calibration("other.png", "other.png", table)[0] == PixelCalibration()


def test_an_implausible_file_calibration_is_an_error_naming_its_source():
    cal, _ = resolve_calibration("a.dcm", "a.dcm", PixelSizeOverrides(), [Calibration(25.0, 25.0, "dicom_pixel_spacing")])
    assert not cal.usable and cal.error.startswith("dicom_pixel_spacing: pixel size 25 mm is outside")


def test_reading_the_overrides(tmp_path):
    assert read_pixel_size_overrides() == PixelSizeOverrides()
    assert read_pixel_size_overrides(0.1).single == PixelSize(0.1)
    with pytest.raises(ValueError, match="outside the plausible range"):
        read_pixel_size_overrides(50.0)
    csv = tmp_path / "px.csv"
    csv.write_text("filename,pixel size(mm)\na.png,0.1\n")
    assert read_pixel_size_overrides(pixel_size_csv=csv).table == {"a.png": PixelSize(0.1)}
    csv.write_text("name,size\n")
    with pytest.raises(TableError):
        read_pixel_size_overrides(pixel_size_csv=csv)
