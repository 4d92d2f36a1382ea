"""CSV tables (hcmeasure.io.tables)."""
from __future__ import annotations

import csv
import math
import os

import pytest

from hcmeasure.io import tables
from hcmeasure.io.tables import (
    MEASUREMENT_COLUMNS,
    SUBMISSION_COLUMNS,
    PixelSize,
    TableError,
    measurement_row,
    read_measurements_csv,
    read_pixel_size_csv,
    read_reference_hc_csv,
    submission_row,
    write_csv_atomic,
    write_json_atomic,
)
from hcmeasure.measurement.ellipse import Ellipse, ramanujan_perimeter

TEST_HEADER = "filename,pixel size(mm)"
TRAIN_HEADER = "filename,pixel size(mm),head circumference (mm)"


def write(path, text: str, encoding="utf-8", newline=""):
    with open(path, "w", encoding=encoding, newline=newline) as f:
        f.write(text)
    return path


# --------------------------------------------------------------------------- pixel sizes


def test_pixel_size_csv_hc18_format_crlf_no_final_newline(tmp_path):
    # As released: CRLF line ends and no terminator after the last row.
    p = write(tmp_path / "px.csv", f"{TEST_HEADER}\r\n000_HC.png,0.0691358041432\r\n001_HC.png,0.089658520051")
    sizes = read_pixel_size_csv(p)
    assert sizes == {
        "000_HC.png": PixelSize(0.0691358041432),
        "001_HC.png": PixelSize(0.089658520051),
    }


def test_pixel_size_csv_with_bom_blank_lines_and_spaces(tmp_path):
    p = write(tmp_path / "px.csv", f"\ufeff{TEST_HEADER}\n\n 000_HC.png , 0.1 \n\n")
    assert read_pixel_size_csv(p) == {"000_HC.png": PixelSize(0.1)}


def test_pixel_size_csv_accepts_the_training_csv(tmp_path):
    p = write(tmp_path / "train.csv", f"{TRAIN_HEADER}\r\n000_HC.png,0.0691358041432,44.3")
    assert read_pixel_size_csv(p)["000_HC.png"].value_mm == pytest.approx(0.0691358041432)


@pytest.mark.parametrize(
    "text,what",
    [("abc", "not a number"), ("", "not a number"), ("0", "not a positive"), ("-0.1", "not a positive"),
     ("nan", "not a positive"), ("inf", "not a positive"),
     ("1e9", "outside the plausible range 0.01-2 mm"), ("0.0001", "outside the plausible range 0.01-2 mm"),
     ("2.5", "pixel size 2.5 mm is outside")],
)
def test_bad_pixel_size_is_kept_as_an_error(tmp_path, text, what):
    p = write(tmp_path / "px.csv", f"{TEST_HEADER}\nbad.png,{text}\ngood.png,0.2\n")
    sizes = read_pixel_size_csv(p)
    assert sizes["good.png"] == PixelSize(0.2)
    bad = sizes["bad.png"]
    assert bad.value_mm is None
    assert what in bad.error


def test_pixel_size_csv_wrong_header_names_the_file(tmp_path):
    p = write(tmp_path / "sizes.csv", "name,mm\n000_HC.png,0.1\n")
    with pytest.raises(TableError, match="sizes.csv") as info:
        read_pixel_size_csv(p)
    assert "pixel size(mm)" in str(info.value)


def test_empty_missing_and_binary_files(tmp_path):
    empty = write(tmp_path / "empty.csv", "")
    with pytest.raises(TableError, match="empty.csv.*empty"):
        read_pixel_size_csv(empty)
    with pytest.raises(TableError, match="absent.csv.*not found"):
        read_pixel_size_csv(tmp_path / "absent.csv")
    binary = tmp_path / "image.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00")
    with pytest.raises(TableError, match="image.csv"):
        read_pixel_size_csv(binary)
    header_only = write(tmp_path / "header.csv", f"{TEST_HEADER}\r\n")
    assert read_pixel_size_csv(header_only) == {}


# --------------------------------------------------------------------------- reference HC


def test_reference_csv_reads_floats(tmp_path):
    p = write(
        tmp_path / "train.csv",
        f"{TRAIN_HEADER}\r\n010_2HC.png,0.0799272457758,69.90\r\n010_HC.png,0.0799272457758,70.0",
    )
    ref = read_reference_hc_csv(p)
    assert ref["010_2HC.png"] == (pytest.approx(0.0799272457758), 69.9)
    assert list(ref) == ["010_2HC.png", "010_HC.png"]


def test_reference_csv_rejects_the_test_set_csv(tmp_path):
    p = write(tmp_path / "test_set_pixel_size.csv", f"{TEST_HEADER}\r\n000_HC.png,0.1")
    with pytest.raises(TableError, match="test_set_pixel_size.csv"):
        read_reference_hc_csv(p)


def test_reference_csv_bad_row_names_file_and_row(tmp_path):
    p = write(tmp_path / "train.csv", f"{TRAIN_HEADER}\n000_HC.png,0.1,44.3\n001_HC.png,0.1,n/a\n")
    with pytest.raises(TableError, match=r"train.csv: row 3"):
        read_reference_hc_csv(p)


@pytest.mark.shared
def test_real_hc18_csvs(hc18_root):
    ref = read_reference_hc_csv(hc18_root / "training_set_pixel_size_and_HC.csv")
    assert len(ref) == 809
    assert all(0.04 < ps < 0.4 and 40 < hc < 350 for ps, hc in ref.values())
    test = read_pixel_size_csv(hc18_root / "test_set_pixel_size.csv")
    assert len(test) == 47
    assert all(p.error is None and 0.04 < p.value_mm < 0.4 for p in test.values())
    train_sizes = read_pixel_size_csv(hc18_root / "training_set_pixel_size_and_HC.csv")
    assert {k: v.value_mm for k, v in train_sizes.items()} == {k: v[0] for k, v in ref.items()}


# --------------------------------------------------------------------------- measurement rows

ELLIPSE = Ellipse(400.25, 270.5, 120.0, 95.0, 0.75)


def test_measurement_row_with_pixel_size():
    row = measurement_row("000_HC.png", ELLIPSE, 0.1, score=0.987654, fit_iou=0.99, status="ok")
    assert list(row) == MEASUREMENT_COLUMNS
    assert float(row["hc_px"]) == pytest.approx(ramanujan_perimeter(120.0, 95.0), abs=1e-3)
    assert float(row["hc_mm"]) == pytest.approx(0.1 * ramanujan_perimeter(120.0, 95.0), abs=1e-3)
    assert float(row["center_x_mm"]) == pytest.approx(40.025)
    assert float(row["semi_axes_b_mm"]) == pytest.approx(9.5)
    assert float(row["angle_rad"]) == pytest.approx(0.75)
    assert row["score"] == "0.9877" and row["status"] == "ok"
    assert float(row["pixel_size_mm"]) == 0.1


def test_measurement_row_without_pixel_size_leaves_mm_columns_empty():
    row = measurement_row("a.png", ELLIPSE, None, status="missing_pixel_size")
    for c in ("pixel_size_mm", "hc_mm", "center_x_mm", "center_y_mm", "semi_axes_a_mm", "semi_axes_b_mm"):
        assert row[c] == "", c
    for c in ("hc_px", "center_x_px", "center_y_px", "semi_axes_a_px", "semi_axes_b_px", "angle_rad"):
        assert row[c] != "", c
    assert row["status"] == "missing_pixel_size"


def test_measurement_row_without_ellipse_and_perimeter_formula():
    row = measurement_row("a.png", None, 0.2, status="no_head_detected")
    assert {c for c, v in row.items() if v} == {"filename", "pixel_size_mm", "status"}
    e = Ellipse(0, 0, 200.0, 40.0, 0.0)
    r1 = measurement_row("a.png", e, None, perimeter_formula=1)
    r2 = measurement_row("a.png", e, None, perimeter_formula=2)
    assert float(r1["hc_px"]) < float(r2["hc_px"])


def test_submission_row():
    ok = measurement_row("000_HC.png", ELLIPSE, 0.1, status="ok")
    sub = submission_row(ok)
    assert list(sub) == SUBMISSION_COLUMNS
    assert sub["filename"] == "000_HC.png" and sub["semi_axes_a_mm"] == ok["semi_axes_a_mm"]
    for status in ("no_head_detected", "unreadable_image", "missing_pixel_size"):
        row = measurement_row("001_HC.png", ELLIPSE if status == "missing_pixel_size" else None, None, status=status)
        sub = submission_row(row)
        assert sub == {"filename": "001_HC.png", **{c: "0" for c in SUBMISSION_COLUMNS[1:]}}


# --------------------------------------------------------------------------- atomic writer


def test_write_and_read_back(tmp_path):
    rows = [
        measurement_row("000_HC.png", ELLIPSE, 0.1, status="ok"),
        measurement_row("weird, name.png", None, None, status="unreadable_image"),
    ]
    out = tmp_path / "sub" / "measurements.csv"
    write_csv_atomic(out, MEASUREMENT_COLUMNS, rows)
    data = out.read_bytes()
    assert b"\r\n" not in data and data.endswith(b"\n")
    assert data.splitlines()[0].decode() == ",".join(MEASUREMENT_COLUMNS)
    back = read_measurements_csv(out)
    assert back == rows
    assert os.listdir(out.parent) == ["measurements.csv"]


def test_failing_row_leaves_the_old_file_and_no_temp(tmp_path):
    out = tmp_path / "measurements.csv"
    write_csv_atomic(out, MEASUREMENT_COLUMNS, [measurement_row("old.png", None, None, status="ok")])
    before = out.read_bytes()

    def rows():
        yield measurement_row("new1.png", ELLIPSE, 0.1)
        raise RuntimeError("model crashed mid-run")

    with pytest.raises(RuntimeError):
        write_csv_atomic(out, MEASUREMENT_COLUMNS, rows())
    assert out.read_bytes() == before
    assert os.listdir(tmp_path) == ["measurements.csv"]


def test_rows_go_to_a_temporary_file_while_the_old_table_stays_whole(tmp_path):
    out = tmp_path / "measurements.csv"
    write_csv_atomic(out, MEASUREMENT_COLUMNS, [measurement_row("old.png", None, None, status="ok")])
    before = out.read_bytes()
    seen = []

    def rows():
        for i in range(3):
            seen.append((out.read_bytes() == before, len(list(tmp_path.glob(".measurements.csv.*.tmp")))))
            yield measurement_row(f"{i}.png", ELLIPSE, 0.1)

    write_csv_atomic(out, MEASUREMENT_COLUMNS, rows())
    assert seen == [(True, 1)] * 3
    assert [r["filename"] for r in csv.DictReader(open(out, newline=""))] == ["0.png", "1.png", "2.png"]
    assert os.listdir(tmp_path) == ["measurements.csv"]


def test_failure_while_writing_removes_the_temp_file(tmp_path, monkeypatch):
    out = tmp_path / "measurements.csv"

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(tables.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_csv_atomic(out, MEASUREMENT_COLUMNS, [measurement_row("a.png", ELLIPSE, 0.1)])
    assert os.listdir(tmp_path) == []


def test_json_is_written_whole_with_numpy_floats_and_a_final_newline(tmp_path):
    import json

    import numpy as np

    out = tmp_path / "sub" / "result.json"
    write_json_atomic(out, {"mad_mm": np.float32(1.5), "n": 3})
    text = out.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert json.loads(text) == {"mad_mm": 1.5, "n": 3}
    assert sorted(os.listdir(out.parent)) == ["result.json"]


def test_json_that_cannot_be_encoded_leaves_the_old_file(tmp_path):
    out = tmp_path / "result.json"
    write_json_atomic(out, {"old": True})
    with pytest.raises(TypeError):
        write_json_atomic(out, {"new": object()})
    assert out.read_text(encoding="utf-8") == '{\n "old": true\n}\n'
    assert os.listdir(tmp_path) == ["result.json"]


def test_read_measurements_csv_checks_columns_and_pads_short_rows(tmp_path):
    bad = write(tmp_path / "pred.csv", "filename,hc\n000_HC.png,44\n")
    with pytest.raises(TableError, match="pred.csv.*hc_mm, status"):
        read_measurements_csv(bad)
    short = write(tmp_path / "short.csv", "filename,hc_mm,status\n000_HC.png,44.1\n")
    assert read_measurements_csv(short) == [{"filename": "000_HC.png", "hc_mm": "44.1", "status": ""}]


def test_written_numbers_round_trip_closely(tmp_path):
    row = measurement_row("a.png", ELLIPSE, 0.0691358041432)
    out = tmp_path / "m.csv"
    write_csv_atomic(out, MEASUREMENT_COLUMNS, [row])
    with open(out, newline="") as f:
        back = next(csv.DictReader(f))
    hc = ramanujan_perimeter(ELLIPSE.a, ELLIPSE.b) * 0.0691358041432
    assert math.isclose(float(back["hc_mm"]), hc, abs_tol=5e-4)
    assert math.isclose(float(back["pixel_size_mm"]), 0.0691358041432, rel_tol=1e-9)


# --------------------------------------------------------------------------- biometry and known GA


def test_biometry_columns_come_from_the_mm_ellipse():
    row = measurement_row("a.png", ELLIPSE, 0.1, status="ok")
    assert float(row["ofd_mm"]) == pytest.approx(24.0) and float(row["bpd_mm"]) == pytest.approx(19.0)
    assert float(row["cephalic_index"]) == pytest.approx(100 * 19 / 24, abs=0.005)
    assert row["ci_flag"] == "within"
    assert float(row["bpd_outer_inner_est_mm"]) == pytest.approx(-0.403458 + 0.9714153 * 19.0, abs=1e-3)
    # Non-square pixels: the mm ellipse's axes, not the pixel ones times a factor.
    mm = Ellipse(30.0, 26.0, 25.0, 15.0, 0.4)
    row = measurement_row("b.dcm", ELLIPSE, 0.2, pixel_size_y_mm=0.1, ellipse_mm=mm, status="ok")
    assert (float(row["ofd_mm"]), float(row["bpd_mm"])) == (50.0, 30.0)
    assert float(row["cephalic_index"]) == 60.0 and row["ci_flag"] == "dolichocephaly"
    # No pixel size: no diameters in mm either.
    row = measurement_row("c.png", ELLIPSE, None, status="missing_pixel_size")
    assert row["bpd_mm"] == row["ofd_mm"] == row["cephalic_index"] == row["ci_flag"] == ""


def test_angle_rad_is_the_mm_ellipses_and_angle_px_rad_the_pixel_ellipses():
    from hcmeasure.measurement.spacing import ellipse_in_mm

    assert MEASUREMENT_COLUMNS[-1] == "angle_px_rad"  # appended: older columns keep their places
    row = measurement_row("a.png", ELLIPSE, 0.1)
    assert row["angle_rad"] == row["angle_px_rad"] == "0.750000"
    mm = Ellipse(30.0, 26.0, 25.0, 15.0, 0.4)
    px = ellipse_in_mm(mm, 1 / 0.2, 1 / 0.1)
    row = measurement_row("b.dcm", px, 0.2, pixel_size_y_mm=0.1, ellipse_mm=mm)
    assert float(row["angle_rad"]) == pytest.approx(0.4)
    assert float(row["angle_px_rad"]) == pytest.approx(px.angle) and abs(px.angle - 0.4) > 0.1
    assert float(row["semi_axes_a_px"]) == pytest.approx(px.a, abs=1e-3)


def test_format_measurement_writes_a_record_as_it_is():
    from hcmeasure.measurement.head import HeadMeasurement
    from hcmeasure.measurement.record import PixelCalibration, measure_head

    head = measure_head("a.png", HeadMeasurement(ELLIPSE, 0.9, 0.95, "ok"), PixelCalibration(0.1, 0.1, "pixel_size_csv"))
    row = tables.format_measurement(head)
    assert row == measurement_row("a.png", ELLIPSE, 0.1, score=0.9, fit_iou=0.95, pixel_size_y_mm=0.1,
                                  pixel_size_source="pixel_size_csv")
    assert float(row["hc_mm"]) == pytest.approx(head.hc_mm, abs=5e-4)
    assert float(row["bpd_mm"]) == pytest.approx(head.biometry.bpd_mm, abs=5e-4)


def test_known_ga_gives_a_centile_only_for_a_usable_age_and_an_ok_row():
    from hcmeasure.measurement.growth import hc_for_age, known_ga

    head = Ellipse(400.0, 270.0, 150.0, 120.0, 0.0)  # HC 0.2 mm * 851.4 px = 170.3 mm
    row = measurement_row("a.png", head, 0.2, status="ok", known_ga=known_ga("20+0", "ga_arg"), pregnancy="P1")
    expected = hc_for_age(float(row["hc_mm"]), 140)
    assert (row["known_ga"], row["known_ga_source"], row["known_ga_status"]) == ("20+0", "ga_arg", "ok")
    assert float(row["hc_centile"]) == pytest.approx(expected.centile, abs=0.05)
    assert float(row["hc_zscore"]) == pytest.approx(expected.zscore, abs=5e-4)
    assert row["hc_centile_flag"] == "within" and row["pregnancy"] == "P1"
    # Outside the standard, malformed, or a failed measurement: no centile, status unchanged.
    for ga, status in ((known_ga("41+0", "ga_csv"), "ok"), (known_ga("4x", "ga_csv"), "ok"),
                       (known_ga("20+0", "ga_csv"), "missing_pixel_size")):
        r = measurement_row("b.png", head, 0.2 if status == "ok" else None, status=status, known_ga=ga)
        assert r["hc_centile"] == r["hc_zscore"] == r["hc_centile_flag"] == "" and r["status"] == status
    assert measurement_row("b.png", head, 0.2, known_ga=known_ga("41+0", "ga_csv"))["known_ga_status"] == \
        "ga_out_of_range"
    failed = measurement_row("c.png", None, None, status="unreadable_image", known_ga=known_ga("4x", "ga_csv"))
    assert (failed["known_ga"], failed["known_ga_status"]) == ("4x", "invalid_ga")


def test_scan_info_columns_of_the_pixel_size_csv(tmp_path):
    from hcmeasure.io.tables import ScanInfo, read_scan_info_csv

    p = write(tmp_path / "px.csv", "filename,pixel size(mm),GA,pregnancy\n"
                                   "a.png,0.1,32+4,P1\nb.dcm,,20+1,P1\nc.png,0.2,,\nd.dcm#2,,4x,\n")
    assert read_scan_info_csv(p) == {"a.png": ScanInfo("32+4", "P1"), "b.dcm": ScanInfo("20+1", "P1"),
                                     "d.dcm#2": ScanInfo("4x", "")}
    # A row given only for its GA gives no pixel size (the DICOM file keeps its own) ...
    assert read_pixel_size_csv(p) == {"a.png": PixelSize(0.1), "c.png": PixelSize(0.2)}
    # ... while an empty pixel size without anything else is still reported as bad.
    bare = write(tmp_path / "bare.csv", f"{TEST_HEADER},ga\ne.png,,\n")
    assert read_pixel_size_csv(bare)["e.png"].error and read_scan_info_csv(bare) == {}
    assert read_scan_info_csv(write(tmp_path / "plain.csv", f"{TEST_HEADER}\na.png,0.1\n")) == {}
