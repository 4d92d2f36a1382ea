"""DICOM reading: real ultrasound files from pydicom-data, and synthetic files built with pydicom."""
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pydicom")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _dicom_synth import region, write_us_dicom  # noqa: E402

from hcmeasure.io.dicom import (  # noqa: E402
    Calibration,
    choose_calibration,
    is_dicom_file,
    pixel_calibrations,
    read_dicom,
    supported_transfer_syntaxes,
)
from hcmeasure.io.images import ImageReadError, list_images  # noqa: E402


@pytest.fixture(scope="module")
def real_us():
    pytest.importorskip("data_store", reason="pydicom-data (the real US1_*.dcm files) is not installed")
    from pydicom.data import get_testdata_file

    uncr, j2kr = get_testdata_file("US1_UNCR.dcm"), get_testdata_file("US1_J2KR.dcm")
    if uncr is None or j2kr is None:
        pytest.skip("pydicom-data does not provide US1_UNCR.dcm / US1_J2KR.dcm")
    return Path(uncr), Path(j2kr)


def _noise(shape, dtype=np.uint8, seed=0):
    hi = 255 if dtype == np.uint8 else 4095
    return np.random.default_rng(seed).integers(0, hi, size=shape).astype(dtype)


def test_real_rgb_and_jpeg2000_ybr_rct_files_read_the_same_grey_and_have_no_calibration(real_us):
    uncr, j2kr = real_us
    (a,), (b,) = read_dicom(uncr), read_dicom(j2kr)
    assert a.gray.shape == (480, 640) and a.gray.dtype == np.uint8
    assert np.array_equal(a.gray, b.gray)  # lossless JPEG 2000 + YBR_RCT decodes to the same pixels
    assert 5 < a.gray.mean() < 250
    assert a.calibrations == [] and b.calibrations == []
    assert a.identifiers == {}  # not read unless asked for
    assert read_dicom(uncr, keep_identifiers=True)[0].identifiers["PatientID"] == "13US1"


def test_decoders_for_ultrasound_transfer_syntaxes_are_installed():
    names = supported_transfer_syntaxes()
    for expected in ("Explicit VR Little Endian", "RLE Lossless", "JPEG Baseline (Process 1)", "JPEG Extended (Process 2 and 4)",
                     "JPEG 2000 Image Compression (Lossless Only)"):
        assert expected in names


def test_calibration_order_region_then_pixel_spacing_then_imager(tmp_path):
    img = _noise((60, 80))
    p = write_us_dicom(tmp_path / "all.dcm", img, regions=[region(0, 0, 79, 59, 0.015, 0.015)],
                       pixel_spacing=[0.3, 0.3], imager_pixel_spacing=[0.4, 0.4])
    (frame,) = read_dicom(p)
    assert [c.source for c in frame.calibrations] == [
        "dicom_us_region", "dicom_pixel_spacing", "dicom_imager_pixel_spacing"]
    chosen = choose_calibration(frame.calibrations, (40, 30))
    assert chosen.source == "dicom_us_region" and chosen.dx_mm == pytest.approx(0.15)
    p2 = write_us_dicom(tmp_path / "ps.dcm", img, pixel_spacing=[0.25, 0.5], imager_pixel_spacing=[0.4, 0.4])
    c = choose_calibration(read_dicom(p2)[0].calibrations)
    assert (c.source, c.dx_mm, c.dy_mm) == ("dicom_pixel_spacing", 0.5, 0.25)  # [row (y), column (x)]
    p3 = write_us_dicom(tmp_path / "ips.dcm", img, imager_pixel_spacing=[0.4, 0.4])
    assert choose_calibration(read_dicom(p3)[0].calibrations).source == "dicom_imager_pixel_spacing"


def test_the_region_containing_the_head_is_used_and_non_cm_regions_are_ignored(tmp_path):
    img = _noise((100, 200))
    regs = [
        region(0, 0, 99, 99, 0.01, 0.01),            # left B-mode image
        region(100, 0, 199, 99, 0.03, 0.02),         # right B-mode image, other depth, non-square
        region(0, 80, 199, 99, 0.5, 0.5, units=4),   # a time axis strip (units 4 = seconds): ignored
    ]
    p = write_us_dicom(tmp_path / "dual.dcm", img, regions=regs, pixel_spacing=[0.9, 0.9])
    cals = read_dicom(p)[0].calibrations
    assert len([c for c in cals if c.source == "dicom_us_region"]) == 2
    left, right = choose_calibration(cals, (30, 50)), choose_calibration(cals, (150, 50))
    assert (left.dx_mm, left.dy_mm) == pytest.approx((0.1, 0.1))
    assert (right.dx_mm, right.dy_mm) == pytest.approx((0.3, 0.2))
    assert choose_calibration(cals, (500, 500)).source == "dicom_pixel_spacing"  # outside every region
    nested = [Calibration(0.1, 0.1, "dicom_us_region", (0, 0, 99, 99)),
              Calibration(0.2, 0.2, "dicom_us_region", (10, 10, 40, 40))]
    assert choose_calibration(nested, (20, 20)).dx_mm == 0.2  # smallest region that holds the head
    assert choose_calibration(nested).dx_mm == 0.1  # no head: the largest region


def test_multiframe_frames_are_named_from_one_and_frame_selects(tmp_path):
    frames = _noise((3, 30, 40))
    p = write_us_dicom(tmp_path / "cine.dcm", frames, pixel_spacing=[0.2, 0.2])
    got = read_dicom(p)
    assert [f.name for f in got] == ["cine.dcm#1", "cine.dcm#2", "cine.dcm#3"]
    assert all(np.array_equal(f.gray, frames[i]) for i, f in enumerate(got))
    (second,) = read_dicom(p, frame=2)
    assert second.name == "cine.dcm#2" and np.array_equal(second.gray, frames[1])
    with pytest.raises(ImageReadError) as exc:
        read_dicom(p, frame=4)
    assert exc.value.reason == "frame_out_of_range"


@pytest.mark.parametrize("kind", ["MONOCHROME1", "MONOCHROME2_16bit", "RGB", "YBR_FULL", "RLE"])
def test_photometric_interpretations_and_bit_depths(tmp_path, kind):
    from pydicom.pixels import convert_color_space

    grey = _noise((32, 48))
    if kind == "MONOCHROME1":
        p = write_us_dicom(tmp_path / "m1.dcm", 255 - grey, photometric="MONOCHROME1")
        expected = grey
    elif kind == "MONOCHROME2_16bit":
        deep = grey.astype(np.uint16) * 16  # 12-bit range stored in 16 bits
        p = write_us_dicom(tmp_path / "m2.dcm", deep)
        expected = np.round(deep / deep.max() * 255).astype(np.uint8)
    elif kind in ("RGB", "YBR_FULL"):
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
        data = rgb if kind == "RGB" else convert_color_space(rgb, "RGB", "YBR_FULL")
        p = write_us_dicom(tmp_path / "c.dcm", data, photometric=kind)
        expected = grey
    else:
        p = write_us_dicom(tmp_path / "rle.dcm", grey, rle=True)
        expected = grey
    (frame,) = read_dicom(p)
    assert frame.gray.dtype == np.uint8 and frame.gray.shape == (32, 48)
    assert np.abs(frame.gray.astype(int) - expected.astype(int)).max() <= 1


def test_broken_files_raise_image_read_errors_with_reasons(tmp_path, real_us):
    (tmp_path / "text.dcm").write_text("not a dicom file at all")
    with pytest.raises(ImageReadError) as exc:
        read_dicom(tmp_path / "text.dcm")
    assert exc.value.reason == "unreadable_image" and "text.dcm" in str(exc.value)
    data = real_us[0].read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as exc:
        read_dicom(tmp_path / "cut.dcm")
    assert exc.value.reason == "unreadable_image"
    import pydicom

    ds = pydicom.dcmread(real_us[0])
    del ds.PixelData
    ds.save_as(tmp_path / "nopixels.dcm")
    with pytest.raises(ImageReadError) as exc:
        read_dicom(tmp_path / "nopixels.dcm")
    assert exc.value.reason == "no_pixel_data"


def test_folders_list_dicom_by_extension_or_preamble(tmp_path, real_us):
    shutil.copy(real_us[0], tmp_path / "IM0001")  # no extension, as on many DICOM media
    shutil.copy(real_us[1], tmp_path / "b.DCM")
    (tmp_path / "notes").write_text("plain text, no extension")
    (tmp_path / "c.png").write_bytes(b"")
    images, others = list_images(tmp_path)
    assert [p.name for p in images] == ["IM0001", "b.DCM", "c.png"]
    assert [p.name for p in others] == ["notes"]
    assert is_dicom_file(tmp_path / "IM0001") and not is_dicom_file(tmp_path / "notes")


def test_pixel_calibrations_ignores_zero_or_missing_deltas(tmp_path):
    img = _noise((20, 20))
    p = write_us_dicom(tmp_path / "z.dcm", img, regions=[region(0, 0, 19, 19, 0.0, 0.01)])
    import pydicom

    assert pixel_calibrations(pydicom.dcmread(p)) == []


def test_real_jpeg_baseline_decodes_and_an_unsupported_syntax_says_so():
    from pydicom.data import get_testdata_file

    baseline = get_testdata_file("SC_jpeg_no_color_transform.dcm")  # JPEG Baseline, shipped with pydicom
    (frame,) = read_dicom(baseline)
    assert frame.gray.shape == (256, 256) and frame.gray.dtype == np.uint8
    lossless = get_testdata_file("SC_rgb_jpeg_gdcm.dcm")  # JPEG Lossless, process 14
    if "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])" in \
            supported_transfer_syntaxes():
        assert read_dicom(lossless)[0].gray.shape == (100, 100)
        return
    with pytest.raises(ImageReadError) as exc:
        read_dicom(lossless)
    assert exc.value.reason == "unsupported_transfer_syntax"
    assert "JPEG Lossless" in str(exc.value) and "supported here: " in str(exc.value)
    assert "JPEG Baseline (Process 1)" in str(exc.value)


def test_a_known_ga_is_counted_from_the_last_menstrual_date_to_the_scan_date(tmp_path, real_us):
    # LMP 2026-01-01, acquired 2026-08-13: 224 days = 32+0 (AcquisitionDate wins over StudyDate).
    p = write_us_dicom(tmp_path / "lmp.dcm", _noise((20, 20)),
                       extra={"LastMenstrualDate": "20260101", "AcquisitionDate": "20260813"})
    (frame,) = read_dicom(p)
    assert (frame.known_ga.days, frame.known_ga.text, frame.known_ga.source) == (224, "32+0", "dicom_lmp")
    assert frame.known_ga.status == "ok"
    # Without AcquisitionDate the StudyDate (2026-01-01 in the helper) is used: 0 days, outside 14-40 weeks.
    (early,) = read_dicom(write_us_dicom(tmp_path / "early.dcm", _noise((20, 20)),
                                         extra={"LastMenstrualDate": "20260101"}))
    assert early.known_ga.status == "ga_out_of_range" and early.known_ga.days == 0
    # A date that cannot be read marks the GA invalid and repeats no date.
    with pytest.warns(UserWarning, match="Invalid value for VR DA"):  # pydicom, writing it
        bad_file = write_us_dicom(tmp_path / "bad.dcm", _noise((20, 20)), extra={"LastMenstrualDate": "2026XX01"})
    (bad,) = read_dicom(bad_file)
    assert bad.known_ga.status == "invalid_ga" and "2026" not in bad.known_ga.message + bad.known_ga.text
    # No LMP, no known GA (the real files carry none).
    assert read_dicom(real_us[0])[0].known_ga is None


def test_jpeg_ls_decodes_with_the_pyjpegls_that_highdicom_brings():
    from pydicom.data import get_testdata_file

    assert "JPEG-LS Lossless Image Compression" in supported_transfer_syntaxes()
    (frame,) = read_dicom(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"))  # shipped with pydicom
    assert frame.gray.shape == (64, 64) and frame.gray.dtype == np.uint8 and frame.gray.max() > 0
