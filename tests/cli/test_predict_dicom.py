"""``hcmeasure predict`` on DICOM: calibration sources, non-square pixels, multi-frame,
overrides, identifiers, GA columns, mixed folders with broken files.

The model is a randomly initialised tiny HeadRCNN; ``HeadPredictor.measure`` is
replaced by one that returns a known head chosen by the image size, so every HC and
GA below is exact."""
import csv
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pydicom")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _dicom_synth import region, write_us_dicom  # noqa: E402

from hcmeasure.cli.main import main  # noqa: E402
from hcmeasure.measurement.ellipse import Ellipse, ramanujan_perimeter  # noqa: E402
from hcmeasure.measurement.gestational_age import estimate_ga  # noqa: E402
from hcmeasure.measurement.head import HeadMeasurement  # noqa: E402
from hcmeasure.measurement.spacing import ellipse_in_mm  # noqa: E402


# Square pixels, 0.25 mm (region delta 0.025 cm): HC = perimeter(150, 100 px) * 0.25 = 198.3 mm.
SQUARE = Ellipse(200.0, 150.0, 150.0, 100.0, 0.25)
# Non-square pixels dx = 0.2 mm, dy = 0.1 mm: a circle of radius 20 mm is 100 px wide, 200 px tall.
CIRCLE_PX = Ellipse.normalized(150.0, 250.0, 100.0, 200.0, 0.0)
CIRCLE_HC = 2 * math.pi * 20.0
# Non-square, rotated: an ellipse with semi-axes 25 and 15 mm at 0.4 rad, given with its contour.
ROTATED_MM = Ellipse(30.0, 26.0, 25.0, 15.0, 0.4)
ROTATED_PX = ellipse_in_mm(ROTATED_MM, 1 / 0.2, 1 / 0.1)
# Larger head, 0.4 mm pixels: 317.3 mm, past the INTERGROWTH-21st dating window.
LATE = Ellipse(200.0, 150.0, 150.0, 100.0, 0.0)

HEADS = {  # (height, width) -> head in pixels (and contour)
    (300, 400): (SQUARE, None),
    (310, 400): (LATE, None),
    (500, 300): (CIRCLE_PX, None),
    (520, 300): (ROTATED_PX, ROTATED_PX.points(720)),
    (200, 260): (Ellipse(130.0, 100.0, 60.0, 50.0, 0.0), None),
    (240, 320): (Ellipse(160.0, 120.0, 100.0, 80.0, 0.0), None),
    (480, 640): (Ellipse(320.0, 240.0, 150.0, 120.0, 0.0), None),
    (220, 300): (Ellipse(150.0, 110.0, 90.0, 70.0, 0.1), None),
}


@pytest.fixture
def heads_by_size(monkeypatch):
    from hcmeasure.predictor import HeadPredictor

    def measure(self, inputs):
        out = []
        for inp in inputs:
            head = HEADS.get((inp["height"], inp["width"]))
            if head is None:
                out.append(HeadMeasurement(None, None, None, "no_head_detected"))
            else:
                out.append(HeadMeasurement(head[0], 0.98, 0.95, "ok", None, head[1]))
        return out

    monkeypatch.setattr(HeadPredictor, "measure", measure)


@pytest.fixture(scope="module")
def real_uncr():
    pytest.importorskip("data_store", reason="pydicom-data (US1_UNCR.dcm) is not installed")
    from pydicom.data import get_testdata_file

    path = get_testdata_file("US1_UNCR.dcm")
    if path is None:
        pytest.skip("pydicom-data does not provide US1_UNCR.dcm")
    return Path(path)


def _noise(shape, dtype=np.uint8, seed=0):
    hi = 255 if dtype == np.uint8 else 4095
    return np.random.default_rng(seed).integers(0, hi, size=shape).astype(dtype)


def _full(h, w, dx_cm, dy_cm):
    return [region(0, 0, w - 1, h - 1, dx_cm, dy_cm)]


@pytest.fixture
def study(tmp_path, real_uncr):
    """A folder mixing calibrated, non-square, multi-frame, 16-bit DICOM, a PNG, the real
    uncalibrated US1_UNCR.dcm and broken files; plus a pixel-size CSV."""
    d = tmp_path / "study"
    d.mkdir()
    write_us_dicom(d / "square.dcm", _noise((300, 400)), regions=_full(300, 400, 0.025, 0.025))
    write_us_dicom(d / "override.dcm", _noise((300, 400)), regions=_full(300, 400, 0.025, 0.025))
    write_us_dicom(d / "late.dcm", _noise((310, 400)), regions=_full(310, 400, 0.04, 0.04))
    write_us_dicom(d / "aniso.dcm", _noise((500, 300)), regions=_full(500, 300, 0.02, 0.01))
    write_us_dicom(d / "rotated.dcm", _noise((520, 300)), regions=_full(520, 300, 0.02, 0.01), rle=True)
    write_us_dicom(d / "cine.dcm", _noise((3, 200, 260)), pixel_spacing=[0.3, 0.3], burned_in=True)
    write_us_dicom(d / "deep.dcm", _noise((220, 300), np.uint16), photometric="MONOCHROME1",
                   imager_pixel_spacing=[0.15, 0.15])
    Image.fromarray(_noise((240, 320))).save(d / "plain.png")
    shutil.copy(real_uncr, d / "US1_UNCR.dcm")
    (d / "broken.dcm").write_text("this is not DICOM")
    data = (d / "square.dcm").read_bytes()
    (d / "truncated.dcm").write_bytes(data[: len(data) // 3])
    (d / "notes.txt").write_text("not an image")
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("filename,pixel size(mm)\nplain.png,0.2\noverride.dcm,0.3\n")
    return d, sizes


def _run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _rows(out: Path):
    with open(out / "measurements.csv", newline="") as f:
        return {r["filename"]: r for r in csv.DictReader(f)}


def test_mixed_folder_is_measured_in_one_call(tmp_path, tiny_checkpoint, heads_by_size, study, capsys):
    model, config = tiny_checkpoint
    folder, sizes = study
    out = tmp_path / "out"
    code, stdout, err = _run(["predict", folder, "--out", out, "--model", model, "--config", config,
                              "--pixel-size-csv", sizes, "--report"], capsys)
    assert code == 0, err
    rows = _rows(out)
    assert list(rows) == [
        "US1_UNCR.dcm", "aniso.dcm", "broken.dcm", "cine.dcm#1", "cine.dcm#2", "cine.dcm#3", "deep.dcm",
        "late.dcm", "override.dcm", "plain.png", "rotated.dcm", "square.dcm", "truncated.dcm"]
    status = {n: r["status"] for n, r in rows.items()}
    assert status.pop("US1_UNCR.dcm") == "missing_pixel_size"
    assert status.pop("broken.dcm") == "unreadable_image"
    assert status.pop("truncated.dcm") == "unreadable_image"
    assert set(status.values()) == {"ok"}

    # Region calibration, square pixels; GA by INTERGROWTH-21st (the default).
    sq = rows["square.dcm"]
    hc = ramanujan_perimeter(150, 100) * 0.25
    assert float(sq["hc_mm"]) == pytest.approx(hc, abs=1e-3)
    assert (sq["pixel_size_mm"], sq["pixel_size_y_mm"], sq["pixel_size_source"]) == ("0.25", "0.25", "dicom_us_region")
    ga = estimate_ga(hc)
    assert (sq["ga_formula"], sq["ga_status"]) == ("intergrowth", "ok")
    assert (int(sq["ga_weeks"]), int(sq["ga_days"])) == ga.weeks_days
    assert float(sq["ga_uncertainty_days"]) == pytest.approx(ga.uncertainty_days, abs=0.05)

    # Non-square pixels: the mm-space circle's true perimeter, not pixel perimeter times one factor.
    an = rows["aniso.dcm"]
    assert float(an["hc_mm"]) == pytest.approx(CIRCLE_HC, abs=1e-3)
    assert float(an["semi_axes_a_mm"]) == pytest.approx(20.0, abs=1e-4)
    assert float(an["semi_axes_b_mm"]) == pytest.approx(20.0, abs=1e-4)
    assert (an["pixel_size_mm"], an["pixel_size_y_mm"]) == ("0.2", "0.1")
    rot = rows["rotated.dcm"]  # refitted on the contour in mm space
    assert float(rot["hc_mm"]) == pytest.approx(ramanujan_perimeter(25, 15), rel=1e-4)
    assert float(rot["semi_axes_a_mm"]) == pytest.approx(25.0, rel=1e-4)
    assert float(rot["angle_rad"]) == pytest.approx(0.4, abs=1e-3)
    assert float(rot["center_x_mm"]) == pytest.approx(30.0, abs=1e-3)

    # Multi-frame, PixelSpacing; MONOCHROME1 16-bit, ImagerPixelSpacing; PNG from the CSV.
    for n in ("cine.dcm#1", "cine.dcm#2", "cine.dcm#3"):
        assert rows[n]["pixel_size_source"] == "dicom_pixel_spacing"
        assert float(rows[n]["hc_mm"]) == pytest.approx(ramanujan_perimeter(60, 50) * 0.3, abs=1e-3)
    assert rows["deep.dcm"]["pixel_size_source"] == "dicom_imager_pixel_spacing"
    assert rows["plain.png"]["pixel_size_source"] == "pixel_size_csv"
    assert float(rows["plain.png"]["hc_mm"]) == pytest.approx(ramanujan_perimeter(100, 80) * 0.2, abs=1e-3)

    # An override that disagrees with the file is used and reported.
    ov = rows["override.dcm"]
    assert float(ov["hc_mm"]) == pytest.approx(ramanujan_perimeter(150, 100) * 0.3, abs=1e-3)
    assert ov["pixel_size_source"].startswith("pixel_size_csv (disagrees with dicom_us_region")
    assert "override.dcm: --pixel-size-csv gives 0.3 mm" in err and "0.25" in err and "override is used" in err

    # Real file without calibration: HC in pixels only, the status says the pixel size is missing.
    uncr = rows["US1_UNCR.dcm"]
    assert uncr["hc_mm"] == "" and float(uncr["hc_px"]) > 0 and uncr["pixel_size_source"] == ""

    # HC past the INTERGROWTH-21st window: HC stays, GA is empty and ga_status says why.
    late = rows["late.dcm"]
    assert late["status"] == "ok" and float(late["hc_mm"]) > 300
    assert (late["ga_weeks"], late["ga_days"], late["ga_status"]) == ("", "", "hc_above_range")
    assert late["ga_uncertainty_days"] == ""
    assert "outside the INTERGROWTH-21st range" in err

    # Overlays per frame, the report, and no identifiers anywhere.
    overlays = sorted(p.name for p in (out / "overlays").iterdir())
    assert "cine_frame2.png" in overlays and "aniso.png" in overlays and "plain.png" in overlays
    assert "BurnedInAnnotation" in err and "cine.dcm" in err
    assert "skipped 1 non-image file(s): notes.txt" in err
    assert (out / "report.html").is_file() and "report ->" in stdout
    for f in (out / "measurements.csv", out / "submission.csv", out / "report.html"):
        text = f.read_text()
        for ident in ("Doe^Jane", "PAT-0042", "13US1", "CompressedSamples", "19900101"):
            assert ident not in text, (f.name, ident)


def test_frame_option_hadlock_and_keep_identifiers(tmp_path, tiny_checkpoint, heads_by_size, study, capsys):
    model, config = tiny_checkpoint
    folder, _ = study
    out = tmp_path / "out"
    code, _, err = _run(["predict", folder, "--out", out, "--model", model, "--config", config,
                         "--frame", "2", "--ga-formula", "hadlock", "--keep-identifiers", "--no-overlays"], capsys)
    assert code == 0, err
    rows = _rows(out)
    assert [n for n in rows if n.startswith("cine")] == ["cine.dcm#2"]
    assert rows["square.dcm"]["status"] == "ok"  # --frame 2 on a single-frame file: only frame 1 exists
    late = rows["late.dcm"]
    hc = float(late["hc_mm"])
    assert late["ga_formula"] == "hadlock" and late["ga_status"] == "ok"
    assert (int(late["ga_weeks"]), int(late["ga_days"])) == estimate_ga(hc, "hadlock").weeks_days
    assert float(late["ga_uncertainty_days"]) == pytest.approx(estimate_ga(hc, "hadlock").uncertainty_days, abs=0.05)
    assert rows["square.dcm"]["patient_id"] == "PAT-0042"
    assert rows["square.dcm"]["patient_name"] == "Doe^Jane"
    assert rows["US1_UNCR.dcm"]["patient_id"] == "13US1"
    assert rows["plain.png"]["patient_id"] == ""


def test_single_dicom_file_and_pixel_size_override(tmp_path, tiny_checkpoint, heads_by_size, study, capsys):
    model, config = tiny_checkpoint
    folder, _ = study
    out = tmp_path / "out"
    code, _, err = _run(["predict", folder / "aniso.dcm", "--out", out, "--model", model, "--config", config,
                         "--pixel-size", "0.2", "--ga-formula", "none", "--no-overlays"], capsys)
    assert code == 0, err
    row = _rows(out)["aniso.dcm"]
    # The override is one square size: it wins, and its disagreement with dy = 0.1 mm is reported.
    assert float(row["hc_mm"]) == pytest.approx(ramanujan_perimeter(200, 100) * 0.2, abs=1e-3)
    assert row["pixel_size_source"].startswith("pixel_size_arg (disagrees")
    assert "aniso.dcm" in err and "override is used" in err
    assert row["ga_formula"] == "" and row["ga_weeks"] == ""


def test_the_real_model_path_runs_on_dicom(tmp_path, tiny_checkpoint, study, capsys):
    """No monkeypatching: the random tiny model runs on non-square, multi-frame and
    colour DICOM; every row gets a known status and the report is written."""
    model, config = tiny_checkpoint
    folder, _ = study
    scans = tmp_path / "scans"
    scans.mkdir()
    for name in ("aniso.dcm", "cine.dcm", "US1_UNCR.dcm"):
        shutil.copy(folder / name, scans / name)
    out = tmp_path / "out"
    code, _, err = _run(["predict", scans, "--out", out, "--model", model, "--config", config,
                         "--batch-size", "2", "--report"], capsys)
    assert code == 0, err
    rows = _rows(out)
    assert list(rows) == ["US1_UNCR.dcm", "aniso.dcm", "cine.dcm#1", "cine.dcm#2", "cine.dcm#3"]
    assert {r["status"] for r in rows.values()} <= {"ok", "review", "no_head_detected", "ellipse_fit_failed",
                                                    "missing_pixel_size"}
    assert rows["aniso.dcm"]["pixel_size_source"] == "dicom_us_region"
    assert (out / "report.html").read_text().count('<td class="file"') == 5


def test_files_sharing_a_stem_get_separate_overlays(tmp_path, tiny_checkpoint, heads_by_size, study, capsys):
    # a.png and a.dcm (and a multi-frame a.cine-like file) in one folder: no overlay overwrites another.
    model, config = tiny_checkpoint
    folder, _ = study
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(folder / "plain.png", mixed / "scan.png")
    shutil.copy(folder / "square.dcm", mixed / "scan.dcm")
    shutil.copy(folder / "cine.dcm", mixed / "other.dcm")
    out = tmp_path / "out"
    code, stdout, err = _run(["predict", mixed, "--out", out, "--model", model, "--config", config,
                              "--pixel-size", "0.2", "--report"], capsys)
    assert code == 0, err
    assert list(_rows(out)) == ["other.dcm#1", "other.dcm#2", "other.dcm#3", "scan.dcm", "scan.png"]
    overlays = sorted(p.name for p in (out / "overlays").iterdir())
    assert overlays == ["other_frame1.png", "other_frame2.png", "other_frame3.png", "scan.png", "scan_dcm.png"]
    body = (out / "report.html").read_text().split("<tbody>")[1]
    assert body.count('src="data:image/jpeg;base64,') == 5  # every row found its own overlay


def test_non_square_pixels_keep_the_pixel_ellipse_whole_in_its_row(tmp_path, tiny_checkpoint, heads_by_size, capsys):
    """PhysicalDeltaX 0.2 mm, PhysicalDeltaY 0.1 mm: ``angle_rad`` is the mm ellipse's (for the
    HC18 submission), ``angle_px_rad`` the pixel ellipse's, and the row's pixel ellipse, as
    the evaluation rebuilds it, is the one the model gave."""
    from hcmeasure.evaluation.hc18 import ellipse_from_row
    from hcmeasure.measurement.ellipse import ellipse_mask

    model, config = tiny_checkpoint
    scans = tmp_path / "scans"
    scans.mkdir()
    write_us_dicom(scans / "rotated.dcm", _noise((520, 300)), regions=_full(520, 300, 0.02, 0.01))
    out = tmp_path / "out"
    code, _, err = _run(["predict", scans, "--out", out, "--model", model, "--config", config, "--no-overlays"],
                        capsys)
    assert code == 0, err
    row = _rows(out)["rotated.dcm"]
    assert (row["pixel_size_mm"], row["pixel_size_y_mm"], row["status"]) == ("0.2", "0.1", "ok")
    assert abs(ROTATED_PX.angle - ROTATED_MM.angle) > 0.1  # the two angles really differ here
    assert float(row["angle_rad"]) == pytest.approx(ROTATED_MM.angle, abs=1e-3)
    assert float(row["angle_px_rad"]) == pytest.approx(ROTATED_PX.angle, abs=1e-5)
    rebuilt = ellipse_from_row(row)
    for field in ("cx", "cy", "a", "b", "angle"):
        assert getattr(rebuilt, field) == pytest.approx(getattr(ROTATED_PX, field), abs=1e-3), field
    assert (ellipse_mask(rebuilt, (520, 300)) == ellipse_mask(ROTATED_PX, (520, 300))).mean() > 0.999
    sub = (out / "submission.csv").read_text().splitlines()[1].split(",")
    assert float(sub[5]) == pytest.approx(ROTATED_MM.angle, abs=1e-3)  # HC18 wants the mm ellipse
