"""``hcmeasure predict``: BPD / OFD / cephalic index, known gestational age and HC
centile, the diameters on the overlay, and ``--dicom-sr``; each bad input (malformed
GA, GA outside 14-40 weeks, ``--dicom-sr`` on a PNG) is reported and loses no row.

As in test_predict_dicom.py, the model is a randomly initialised tiny HeadRCNN and
``HeadPredictor.measure`` returns a known head chosen by the image size."""
import csv
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
from hcmeasure.measurement.growth import hc_for_age  # noqa: E402
from hcmeasure.measurement.head import HeadMeasurement  # noqa: E402


HEADS = {  # (height, width) -> head in pixels
    (300, 400): Ellipse(200.0, 150.0, 150.0, 100.0, 0.25),  # 0.25 mm: OFD 75, BPD 50 mm, HC 198.3 mm
    (200, 260): Ellipse(130.0, 100.0, 90.0, 80.0, 0.0),  # cine, 0.3 mm: OFD 54, BPD 48 mm
    (240, 320): Ellipse(160.0, 120.0, 100.0, 80.0, 0.0),  # PNG, 0.2 mm: OFD 40, BPD 32 mm
}


@pytest.fixture
def heads_by_size(monkeypatch):
    from hcmeasure.predictor import HeadPredictor

    def measure(self, inputs):
        return [HeadMeasurement(HEADS[(i["height"], i["width"])], 0.98, 0.95, "ok") if (i["height"], i["width"])
                in HEADS else HeadMeasurement(None, None, None, "no_head_detected") for i in inputs]

    monkeypatch.setattr(HeadPredictor, "measure", measure)


@pytest.fixture
def scans(tmp_path):
    """square.dcm (LMP gives 32+0), cine.dcm (3 frames, no GA), plain.png, empty.png (no head)."""
    d = tmp_path / "scans"
    d.mkdir()
    write_us_dicom(d / "square.dcm", np.zeros((300, 400), np.uint8), regions=[region(0, 0, 399, 299, 0.025, 0.025)],
                   extra={"LastMenstrualDate": "20260101", "AcquisitionDate": "20260813", "StudyTime": "101500",
                          "StudyID": "S1"})
    write_us_dicom(d / "cine.dcm", np.zeros((3, 200, 260), np.uint8), pixel_spacing=[0.3, 0.3])
    Image.fromarray(np.zeros((240, 320), np.uint8)).save(d / "plain.png")
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(d / "empty.png")
    return d


def _run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _rows(out: Path):
    with open(out / "measurements.csv", newline="") as f:
        return {r["filename"]: r for r in csv.DictReader(f)}


def test_diameters_known_ga_centiles_and_pregnancy_from_every_source(tmp_path, tiny_checkpoint, heads_by_size,
                                                                     scans, capsys):
    model, config = tiny_checkpoint
    sizes = tmp_path / "sizes.csv"
    # plain.png: pixel size and GA; cine frame 2 and the rest of cine: GA only (its own calibration stays).
    sizes.write_text("filename,pixel size(mm),ga,pregnancy\nplain.png,0.2,20+3,P7\ncine.dcm#2,,12+0,P7\n"
                     "cine.dcm,,2O+1,\nempty.png,0.2,22+0,P7\n")
    out = tmp_path / "out"
    code, _, err = _run(["predict", scans, "--out", out, "--model", model, "--config", config,
                         "--pixel-size-csv", sizes], capsys)
    assert code == 0, err
    rows = _rows(out)
    assert list(rows) == ["cine.dcm#1", "cine.dcm#2", "cine.dcm#3", "empty.png", "plain.png", "square.dcm"]

    # Biometry from the mm ellipse, for every measured row.
    sq = rows["square.dcm"]
    assert (float(sq["ofd_mm"]), float(sq["bpd_mm"]), float(sq["cephalic_index"])) == (75.0, 50.0, 66.67)
    assert sq["ci_flag"] == "dolichocephaly" and sq["status"] == "ok"  # the shape never changes the status
    cine = rows["cine.dcm#1"]
    assert float(cine["ofd_mm"]) == pytest.approx(54.0) and cine["ci_flag"] == "brachycephaly"

    # GA from the DICOM LMP: 32+0, centile of HC 198.3 mm at 32 weeks: far below the 3rd.
    assert (sq["known_ga"], sq["known_ga_source"], sq["known_ga_status"]) == ("32+0", "dicom_lmp", "ok")
    assert float(sq["hc_centile"]) == pytest.approx(hc_for_age(float(sq["hc_mm"]), 224).centile, abs=0.05)
    assert sq["hc_centile_flag"] == "below_3rd"
    # The dating estimate stays beside it (a different question).
    assert sq["ga_status"] == "ok" and sq["ga_weeks"]

    # GA from the CSV, with the pregnancy label.
    pl = rows["plain.png"]
    assert (pl["known_ga"], pl["known_ga_source"], pl["pregnancy"]) == ("20+3", "ga_csv", "P7")
    assert float(pl["hc_mm"]) == pytest.approx(ramanujan_perimeter(100, 80) * 0.2, abs=1e-3)
    assert float(pl["hc_zscore"]) == pytest.approx(hc_for_age(float(pl["hc_mm"]), 143).zscore, abs=1e-3)

    # Bad GAs: one row each, reported, the other columns kept; the other frames untouched.
    c2, c1 = rows["cine.dcm#2"], rows["cine.dcm#1"]
    assert (c2["known_ga"], c2["known_ga_status"], c2["hc_centile"]) == ("12+0", "ga_out_of_range", "")
    assert (c1["known_ga"], c1["known_ga_status"], c1["hc_centile"]) == ("2O+1", "invalid_ga", "")
    for r in (c1, c2):
        assert r["status"] == "ok" and r["hc_mm"] and r["pixel_size_source"] == "dicom_pixel_spacing"
    assert "cine.dcm#2: gestational age 12+0 from the CSV's ga column is outside" in err
    assert "cine.dcm#1: the gestational age '2O+1' from the CSV's ga column is not weeks+days" in err
    # A failed measurement keeps its known GA and gets no centile.
    assert (rows["empty.png"]["status"], rows["empty.png"]["known_ga"], rows["empty.png"]["hc_centile"]) == \
        ("no_head_detected", "22+0", "")
    # The dates behind the DICOM GA are written nowhere.
    text = (out / "measurements.csv").read_text()
    assert "20260101" not in text and "20260813" not in text and "2026-" not in text


def test_ga_argument_overlay_diameters_and_malformed_ga(tmp_path, tiny_checkpoint, heads_by_size, scans, capsys):
    model, config = tiny_checkpoint
    out = tmp_path / "out"
    code, _, err = _run(["predict", scans / "plain.png", "--out", out, "--model", model, "--config", config,
                         "--pixel-size", "0.2", "--ga", "15+2"], capsys)
    assert code == 0, err
    row = _rows(out)["plain.png"]  # HC 113.4 mm, about the median at 15+2 weeks
    assert (row["known_ga"], row["known_ga_source"], row["hc_centile_flag"]) == ("15+2", "ga_arg", "within")
    # The overlay draws both diameters (yellow) through the head's centre, along its axes.
    overlay = np.asarray(Image.open(out / "overlays" / "plain.png").convert("RGB")).astype(int)
    yellow = (overlay[..., 0] > 200) & (overlay[..., 1] > 200) & (overlay[..., 2] < 80)
    assert yellow[120, 70:250].sum() > 150 and yellow[70:195, 160].sum() > 110
    assert yellow[120, 55:60].sum() == 0  # and they stop at the ellipse (the OFD spans x = 60 to 260)

    for bad in ("32-4", "32+7", "thirty"):
        code, _, err = _run(["predict", scans / "plain.png", "--out", tmp_path / "bad", "--model", model,
                             "--config", config, "--ga", bad], capsys)
        assert code == 2 and f"--ga: {bad!r} is not a gestational age in weeks+days" in err and "32+4" in err
    assert not (tmp_path / "bad").exists()  # stopped before anything was measured or written

    code, _, err = _run(["predict", scans / "plain.png", "--out", tmp_path / "late", "--model", model,
                         "--config", config, "--pixel-size", "0.2", "--ga", "41+2"], capsys)
    assert code == 0
    row = _rows(tmp_path / "late")["plain.png"]
    assert (row["status"], row["known_ga_status"], row["hc_centile"]) == ("ok", "ga_out_of_range", "")
    assert "plain.png: gestational age 41+2 from --ga is outside the INTERGROWTH-21st HC standard" in err


def test_dicom_sr_for_each_measured_dicom_image_and_none_for_png(tmp_path, tiny_checkpoint, heads_by_size, scans,
                                                                 capsys):
    import highdicom as hd
    import pydicom

    model, config = tiny_checkpoint
    out = tmp_path / "out"
    code, stdout, err = _run(["predict", scans, "--out", out, "--model", model, "--config", config,
                              "--dicom-sr", "--no-overlays"], capsys)
    assert code == 0, err
    rows = _rows(out)
    assert len(rows) == 6  # no row lost to --dicom-sr
    assert sorted(p.name for p in (out / "sr").iterdir()) == [
        "cine_frame1_sr.dcm", "cine_frame2_sr.dcm", "cine_frame3_sr.dcm", "square_sr.dcm"]
    assert "2 input(s) are not DICOM files (empty.png, plain.png): no SR for them" in err
    assert "DICOM SR: 4 written to" in stdout
    source = pydicom.dcmread(scans / "square.dcm")
    sr = hd.sr.srread(out / "sr" / "square_sr.dcm")
    (group,) = sr.content.get_planar_roi_measurement_groups()
    hc = group.get_measurements(name=hd.sr.CodedConcept("11984-2", "LN", "Head Circumference"))[0]
    assert hc.value == float(rows["square.dcm"]["hc_mm"])
    ref = group.roi.ContentSequence[0].ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert (sr.PatientID, sr.StudyInstanceUID) == (source.PatientID, source.StudyInstanceUID)
    cine = hd.sr.srread(out / "sr" / "cine_frame3_sr.dcm")
    (cine_group,) = cine.content.get_planar_roi_measurement_groups()
    assert int(cine_group.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedFrameNumber) == 3
    # The SR is the one output with identifiers: the CSV still has none.
    assert "PAT-0042" not in (out / "measurements.csv").read_text()
