"""``hcmeasure evaluate``: measurements.csv against HC18 references."""
from __future__ import annotations

import json
import shutil

import pytest

from hcmeasure.cli.main import main
from hcmeasure.io.tables import MEASUREMENT_COLUMNS, measurement_row, write_csv_atomic
from hcmeasure.measurement.ellipse import Ellipse

NAMES = ["000_HC.png", "001_HC.png", "010_2HC.png", "010_HC.png", "402_HC.png"]
TRAIN_CSV = "training_set_pixel_size_and_HC.csv"
TRAIN_HEADER = "filename,pixel size(mm),head circumference (mm)"


@pytest.fixture
def fitted(hc18_root, tmp_path):
    """measurements.csv from ``hcmeasure fit`` on five real annotations, and the annotation folder."""
    ann = tmp_path / "ann"
    ann.mkdir()
    for name in NAMES:
        shutil.copy(hc18_root / "training_set" / name.replace(".png", "_Annotation.png"), ann)
    truth = hc18_root / TRAIN_CSV
    assert main(["fit", str(ann), "--pixel-size-csv", str(truth), "--out", str(tmp_path / "out")]) == 0
    return tmp_path / "out" / "measurements.csv", truth, ann


@pytest.mark.shared
def test_evaluate_fitted_annotations(fitted, tmp_path, capsys):
    pred, truth, ann = fitted
    capsys.readouterr()
    out_json = tmp_path / "eval.json"
    rc = main(["evaluate", "--pred", str(pred), "--truth", str(truth), "--annotations", str(ann),
               "--json", str(out_json)])
    assert rc == 0
    table = capsys.readouterr().out
    for word in ("MAD", "MSD", "median", "DSC", "HD (mm)", "failed", "BPD MAD", "OFD MAD"):
        assert word in table
    result = json.loads(out_json.read_text())
    s = result["summary"]
    assert s["n"] == 5 and s["n_failed"] == 0 and s["n_annotated"] == 5
    assert s["mean_abs_diff_mm"] < 0.1
    assert s["dice_mean"] > 0.99
    assert s["hausdorff_mm_mean"] < 0.1
    # The fit of an annotation against its own reference: the diameters agree too.
    assert s["bpd_mean_abs_diff_mm"] < 0.05 and s["ofd_mean_abs_diff_mm"] < 0.05
    assert all(5 < r["truth_bpd_mm"] < r["truth_ofd_mm"] < 130 for r in result["per_image"])
    assert [r["filename"] for r in result["per_image"]] == NAMES


@pytest.mark.shared
def test_evaluate_json_to_stdout_and_failures(fitted, tmp_path, capsys):
    pred, truth, ann = fitted
    # Add a failed row and a row for an image that has no reference.
    text = pred.read_text()
    text += "000_HC.png,,,,,,,,,,,,,,,duplicate\n011_HC.png,,,,,,,,,,,,,,,no_head_detected\nzzz.png,0.1,1,,,,,,,,,,,,,ok\n"
    pred.write_text(text)
    capsys.readouterr()
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth), "--json", "-"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # stdout holds only the JSON
    assert "MAD" in captured.err  # the table went to stderr
    s = result["summary"]
    assert s["n"] == 5 and s["n_failed"] == 1 and s["n_not_in_truth"] == 1 and s["n_duplicates"] == 1
    assert result["failed"] == [{"filename": "011_HC.png", "status": "no_head_detected"}]
    assert result["not_in_truth"] == ["zzz.png"]
    assert s["dice_mean"] is None  # no --annotations: NaN is written as null
    assert s["detected_pct"] == pytest.approx(100 * 5 / 6)


def synthetic_files(tmp_path):
    """A reference CSV and a measurements.csv for two synthetic heads (no shared data)."""
    truth = tmp_path / "truth.csv"
    truth.write_text(f"{TRAIN_HEADER}\r\na.png,0.1,100.0\r\nb.png,0.2,150.5")
    pred = tmp_path / "measurements.csv"
    e = Ellipse(200.0, 150.0, 180.0, 140.0, 0.1)  # 0.1 * perimeter = 101.1 mm
    rows = [measurement_row("a.png", e, 0.1), measurement_row("b.png", None, 0.2, status="no_head_detected")]
    write_csv_atomic(pred, MEASUREMENT_COLUMNS, rows)
    return pred, truth, 0.1 * e.perimeter() - 100.0


def test_evaluate_synthetic(tmp_path, capsys):
    pred, truth, diff = synthetic_files(tmp_path)
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth)]) == 0
    out = capsys.readouterr().out
    assert f"{abs(diff):.3f}" in out
    assert "b.png: no_head_detected" in out
    assert "DSC" not in out  # only with --annotations


@pytest.mark.parametrize(
    "which,content,needle",
    [
        ("truth", "filename,pixel size(mm)\r\na.png,0.1", "truth.csv"),  # the test-set CSV: no HC column
        ("truth", f"{TRAIN_HEADER}\na.png,0.1,abc\n", "row 2"),
        ("pred", "filename,pixel size(mm)\na.png,0.1\n", "measurements.csv"),  # not a measurements file
        ("pred", ",".join(MEASUREMENT_COLUMNS) + "\n", "no rows"),
        ("pred", "filename,hc_mm,status\nother.png,100,ok\n", "none of its 1 filename"),
    ],
)
def test_evaluate_wrong_files(tmp_path, capsys, which, content, needle):
    pred, truth, _ = synthetic_files(tmp_path)
    (truth if which == "truth" else pred).write_text(content)
    rc = main(["evaluate", "--pred", str(pred), "--truth", str(truth)])
    assert rc == 2
    err = capsys.readouterr().err
    assert needle in err and f"--{which}" in err


def test_evaluate_missing_files_and_folders(tmp_path, capsys):
    pred, truth, _ = synthetic_files(tmp_path)
    assert main(["evaluate", "--pred", str(tmp_path / "absent.csv"), "--truth", str(truth)]) == 2
    assert "absent.csv" in capsys.readouterr().err
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth), "--annotations", str(tmp_path / "nodir")]) == 2
    assert "nodir" in capsys.readouterr().err


def test_evaluate_missing_annotation_is_noted(tmp_path, capsys):
    pred, truth, _ = synthetic_files(tmp_path)
    (tmp_path / "ann").mkdir()
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth), "--annotations", str(tmp_path / "ann"),
                 "--json", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    assert "a_Annotation.png" in out and "annotation not usable" in out
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["summary"]["n_annotated"] == 0 and result["summary"]["n"] == 1
