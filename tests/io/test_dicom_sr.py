"""DICOM SR of the measured head (hcmeasure.io.dicom_sr): a valid Comprehensive SR
(checked by dciodvfy when installed), read back by highdicom and pydicom with the
CSV's values, the source's patient, study and image, and the ellipse in DICOM image
coordinates. Non-DICOM inputs get no SR and one clear message."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pydicom")
hd = pytest.importorskip("highdicom")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _dicom_synth import region, write_us_dicom  # noqa: E402

from hcmeasure.io.dicom_sr import head_ellipse_graphic_data, write_head_srs  # noqa: E402
from hcmeasure.io.tables import measurement_row  # noqa: E402
from hcmeasure.measurement.ellipse import Ellipse  # noqa: E402
from hcmeasure.measurement.spacing import ellipse_in_mm  # noqa: E402

HEAD = Ellipse(200.0, 150.0, 150.0, 100.0, 0.25)
IDENTITY = {"StudyTime": "101500", "StudyID": "S1", "AccessionNumber": "ACC-7", "PatientSex": "F",
            "ReferringPhysicianName": "Ref^Doctor", "IssuerOfPatientID": "HOSP"}


def _source(tmp_path, name="scan.dcm", frames=1, **kw):
    shape = (frames, 300, 400) if frames > 1 else (300, 400)
    return write_us_dicom(tmp_path / name, np.zeros(shape, np.uint8), regions=[region(0, 0, 399, 299, 0.025, 0.025)],
                          extra=IDENTITY, **kw)


def _row(name, ellipse=HEAD, ps=0.25, **kw):
    return measurement_row(name, ellipse, ps, pixel_size_y_mm=kw.pop("dy", ps), status="ok", **kw)


def _group(sr_path):
    sr = hd.sr.srread(sr_path)
    (group,) = sr.content.get_planar_roi_measurement_groups()
    return sr, group


def _text_items(ds) -> dict[str, set[str]]:
    """Every TEXT content item of an SR tree: concept name -> values."""
    out: dict[str, set[str]] = {}
    for item in ds.get("ContentSequence", []):
        if item.get("ValueType") == "TEXT":
            out.setdefault(item.ConceptNameCodeSequence[0].CodeMeaning, set()).add(str(item.TextValue))
        for k, v in _text_items(item).items():
            out.setdefault(k, set()).update(v)
    return out


def _dciodvfy():
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy is not installed (Debian package dicom3tools: 'make dicom-deps' as root, or "
                    "apt-get install dicom3tools); the SR's IOD is not validated")
    return tool


def test_the_sr_holds_the_csv_values_the_ellipse_and_the_source_identity(tmp_path):
    import pydicom

    src_path = _source(tmp_path)
    src = pydicom.dcmread(src_path)
    row = _row("scan.dcm")
    written, messages = write_head_srs([(src_path, "scan.dcm", row)], tmp_path / "sr", algorithm_version="9.9",
                                       algorithm_parameters=["model=hc18_default/model_final.pth"])
    assert messages == [] and [p.name for p in written] == ["scan_sr.dcm"]
    sr, group = _group(written[0])
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR
    assert sr.Modality == "SR" and sr.SeriesInstanceUID != src.SeriesInstanceUID
    for keyword in ("StudyInstanceUID", "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                    "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName", "IssuerOfPatientID"):
        assert sr.get(keyword) == src.get(keyword), keyword
    # TID 1500 root, HC / BPD / OFD in mm with their LOINC codes, equal to the CSV's values.
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    values = {m.name.value: (m.value, m.unit.value) for m in group.get_measurements()}
    assert values == {"11984-2": (float(row["hc_mm"]), "mm"), "11820-8": (float(row["bpd_mm"]), "mm"),
                      "11851-3": (float(row["ofd_mm"]), "mm")}
    # The ellipse: major then minor axis end points, +0.5 px (DICOM puts 0 at the pixel's corner).
    assert group.roi.graphic_type == hd.sr.GraphicTypeValues.ELLIPSE
    major, minor = group.roi.value[:2], group.roi.value[2:]
    np.testing.assert_allclose(np.linalg.norm(major[1] - major[0]), 300.0, atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(minor[1] - minor[0]), 200.0, atol=1e-3)
    np.testing.assert_allclose(group.roi.value.mean(axis=0), [200.5, 150.5], atol=1e-3)
    (ref,) = group.roi.ContentSequence[0].ReferencedSOPSequence
    assert (ref.ReferencedSOPInstanceUID, ref.ReferencedSOPClassUID) == (src.SOPInstanceUID, src.SOPClassUID)
    assert "ReferencedFrameNumber" not in ref  # single-frame source
    # The algorithm, and the evidence pointing back to the source's series.
    texts = _text_items(sr)
    assert texts["Algorithm Name"] == {"hcmeasure"} and texts["Algorithm Version"] == {"9.9"}
    assert texts["Algorithm Parameters"] == {"model=hc18_default/model_final.pth"}
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID


def test_the_sr_is_valid_for_its_iod_by_dciodvfy(tmp_path):
    tool = _dciodvfy()
    src = _source(tmp_path, "cine.dcm", frames=3)
    written, _ = write_head_srs([(src, "cine.dcm#2", _row("cine.dcm#2"))], tmp_path / "sr", algorithm_version="0.1.0")
    res = subprocess.run([tool, str(written[0])], capture_output=True, text=True, timeout=60)
    report = res.stdout + res.stderr
    assert res.returncode == 0, report
    assert "ComprehensiveSR" in report
    assert not [line for line in report.splitlines() if line.startswith("Error")], report


def test_a_frame_of_a_multiframe_file_is_referenced_by_number(tmp_path):
    import pydicom

    src = _source(tmp_path, "cine.dcm", frames=3)
    requests = [(src, f"cine.dcm#{n}", _row(f"cine.dcm#{n}")) for n in (1, 3)]
    written, _ = write_head_srs(requests, tmp_path / "sr", algorithm_version="0.1.0")
    assert [p.name for p in written] == ["cine_frame1_sr.dcm", "cine_frame3_sr.dcm"]
    frames = []
    for p in written:
        sr, group = _group(p)
        frames.append(int(group.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedFrameNumber))
    assert frames == [1, 3]
    a, b = (pydicom.dcmread(p) for p in written)
    assert a.SeriesInstanceUID == b.SeriesInstanceUID and (a.InstanceNumber, b.InstanceNumber) == (1, 2)
    assert a.SOPInstanceUID != b.SOPInstanceUID


def test_non_square_pixels_put_the_mm_ellipse_on_the_image(tmp_path):
    # The SCOORD is in pixels: taken back to mm, its axes are the CSV's OFD and BPD.
    dx, dy = 0.2, 0.1
    mm = Ellipse(30.0, 26.0, 25.0, 15.0, 0.4)
    row = measurement_row("aniso.dcm", ellipse_in_mm(mm, 1 / dx, 1 / dy), dx, pixel_size_y_mm=dy, ellipse_mm=mm,
                          status="ok")
    pts = (head_ellipse_graphic_data(row).astype(np.float64) - 0.5) * [dx, dy]
    assert np.linalg.norm(pts[1] - pts[0]) == pytest.approx(float(row["ofd_mm"]), abs=1e-3)
    assert np.linalg.norm(pts[3] - pts[2]) == pytest.approx(float(row["bpd_mm"]), abs=1e-3)


def test_png_inputs_and_unmeasured_rows_get_no_sr_and_say_why(tmp_path):
    src = _source(tmp_path)
    failed = measurement_row("broken.dcm", None, None, status="no_head_detected")
    requests = [(tmp_path / "a.png", "a.png", _row("a.png")), (tmp_path / "b.png", "b.png", _row("b.png")),
                (src, "scan.dcm", failed), (src, "scan.dcm", _row("scan.dcm"))]
    written, messages = write_head_srs(requests, tmp_path / "sr", algorithm_version="0.1.0")
    assert [p.name for p in written] == ["scan_sr.dcm"]  # the other rows did not stop it
    assert len(messages) == 2
    assert "2 input(s) are not DICOM files (a.png, b.png)" in messages[0] and "measurements.csv" in messages[0]
    assert "no DICOM SR" in messages[1] and "no_head_detected" in messages[1]


def test_the_loinc_codes_are_dicoms_fetal_biometry_codes():
    # CID 12005 "Fetal Biometry Measurements", from pydicom's copy of the DICOM code dictionary (PS3.16).
    from pydicom.sr.codedict import codes

    cid = codes.cid12005
    assert (cid.HeadCircumference.value, cid.BiparietalDiameter.value, cid.OccipitalFrontalDiameter.value) == \
        ("11984-2", "11820-8", "11851-3")
    assert {cid.HeadCircumference.scheme_designator, cid.BiparietalDiameter.scheme_designator,
            cid.OccipitalFrontalDiameter.scheme_designator} == {"LN"}
