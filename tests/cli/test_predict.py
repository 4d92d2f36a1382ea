"""``hcmeasure predict``: outputs, per-image statuses and errors that stop the run.

The model is a randomly initialised tiny HeadRCNN saved like a trained checkpoint;
where a test needs a known head, ``HeadPredictor.measure`` is replaced by one that
returns a fixed ellipse, so the CLI's bookkeeping is checked exactly."""
import csv
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hcmeasure.cli.main import main
from hcmeasure.measurement.ellipse import Ellipse, ramanujan_perimeter
from hcmeasure.measurement.head import HeadMeasurement

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "configs" / "HC18" / "mask_rcnn_effnet_lite0_FPN_tiny_test.yaml"
KNOWN = Ellipse(400.0, 270.0, 150.0, 100.0, 0.25)
SUBMISSION_HEADER = "filename,center_x_mm,center_y_mm,semi_axes_a_mm,semi_axes_b_mm,angle_rad"


@pytest.fixture
def known_head(monkeypatch):
    """Every image gets the same head (pixels): cx=400, cy=270, a=150, b=100, angle=0.25."""
    from hcmeasure.predictor import HeadPredictor

    def measure(self, inputs):
        return [HeadMeasurement(KNOWN, 0.99, 0.97, "ok") for _ in inputs]

    monkeypatch.setattr(HeadPredictor, "measure", measure)


def _scan(path: Path, size=(800, 540), mode="L"):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, size=(size[1], size[0]), dtype=np.uint8)
    Image.fromarray(arr).convert(mode).save(path)


def _rows(out: Path):
    with open(out / "measurements.csv", newline="") as f:
        return {r["filename"]: r for r in csv.DictReader(f)}


def _run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_folder_is_measured_in_mm_with_csv_submission_and_overlays(tmp_path, tiny_checkpoint, known_head, capsys):
    model, config = tiny_checkpoint
    scans = tmp_path / "scans"
    scans.mkdir()
    _scan(scans / "a_HC.png")
    _scan(scans / "b_HC.png")
    sizes = tmp_path / "sizes.csv"
    sizes.write_bytes(b"filename,pixel size(mm)\r\na_HC.png,0.1\r\nb_HC.png,0.2")
    code, out, _ = _run(["predict", scans, "--out", tmp_path / "out", "--model", model,
                         "--config", config, "--pixel-size-csv", sizes], capsys)
    assert code == 0
    rows = _rows(tmp_path / "out")
    perimeter = ramanujan_perimeter(KNOWN.a, KNOWN.b)
    assert float(rows["a_HC.png"]["hc_mm"]) == pytest.approx(perimeter * 0.1, abs=1e-3)
    assert float(rows["b_HC.png"]["hc_mm"]) == pytest.approx(perimeter * 0.2, abs=1e-3)
    assert float(rows["b_HC.png"]["semi_axes_a_mm"]) == pytest.approx(30.0)
    assert float(rows["b_HC.png"]["center_x_mm"]) == pytest.approx(80.0)
    assert float(rows["a_HC.png"]["angle_rad"]) == pytest.approx(0.25)
    assert {r["status"] for r in rows.values()} == {"ok"}
    sub = (tmp_path / "out" / "submission.csv").read_text().splitlines()
    assert sub[0] == SUBMISSION_HEADER and len(sub) == 3
    assert sorted(p.name for p in (tmp_path / "out" / "overlays").iterdir()) == ["a_HC.png", "b_HC.png"]
    assert "measured 2 image(s)" in out
    assert not list((tmp_path / "out").glob(".*tmp"))  # atomic writes leave no temporaries


def test_without_pixel_size_hc_is_given_in_pixels(tmp_path, tiny_checkpoint, known_head, capsys):
    model, config = tiny_checkpoint
    _scan(tmp_path / "x.png")
    code, _, _ = _run(["predict", tmp_path / "x.png", "--out", tmp_path / "out", "--model", model,
                       "--config", config, "--no-overlays"], capsys)
    assert code == 0
    row = _rows(tmp_path / "out")["x.png"]
    assert row["status"] == "missing_pixel_size"
    assert row["hc_mm"] == "" and row["center_x_mm"] == ""
    assert float(row["hc_px"]) == pytest.approx(ramanujan_perimeter(150, 100), abs=1e-3)
    assert not (tmp_path / "out" / "overlays").exists()
    sub = (tmp_path / "out" / "submission.csv").read_text().splitlines()
    assert sub[1] == "x.png,0,0,0,0,0"


def test_each_bad_image_or_size_is_reported_in_its_row_and_the_run_goes_on(
        tmp_path, tiny_checkpoint, known_head, capsys):
    model, config = tiny_checkpoint
    scans = tmp_path / "scans"
    scans.mkdir()
    _scan(scans / "good.png")
    _scan(scans / "odd_size.png", size=(799, 563))
    _scan(scans / "rgb.png", mode="RGB")
    _scan(scans / "rgba.png", mode="RGBA")
    Image.fromarray((np.arange(540 * 800).reshape(540, 800) % 65536).astype(np.uint16)).save(scans / "deep.png")
    _scan(scans / "truncated.png")
    data = (scans / "truncated.png").read_bytes()
    (scans / "truncated.png").write_bytes(data[: len(data) // 2])
    (scans / "text.png").write_text("this is not an image")
    (scans / "notes.txt").write_text("not an image either")
    _scan(scans / "not_in_csv.png")
    _scan(scans / "zero.png")
    _scan(scans / "word.png")
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("filename,pixel size(mm)\n" + "".join(
        f"{n},0.1\n" for n in ("good.png", "odd_size.png", "rgb.png", "rgba.png", "deep.png",
                               "truncated.png", "text.png")) + "zero.png,0\nword.png,abc\n")
    code, _, err = _run(["predict", scans, "--out", tmp_path / "out", "--model", model,
                         "--config", config, "--pixel-size-csv", sizes], capsys)
    assert code == 0
    status = {n: r["status"] for n, r in _rows(tmp_path / "out").items()}
    assert status == {
        "good.png": "ok", "odd_size.png": "ok", "rgb.png": "ok", "rgba.png": "ok", "deep.png": "ok",
        "truncated.png": "unreadable_image", "text.png": "unreadable_image",
        "not_in_csv.png": "missing_pixel_size", "zero.png": "invalid_pixel_size",
        "word.png": "invalid_pixel_size",
    }
    assert "truncated.png" in err and "text.png" in err
    assert "skipped 1 non-image file(s): notes.txt" in err


def test_the_real_model_path_runs_on_odd_inputs(tmp_path, tiny_checkpoint, capsys):
    """No monkeypatching: the random tiny model runs, every row gets a known status."""
    model, config = tiny_checkpoint
    scans = tmp_path / "scans"
    scans.mkdir()
    _scan(scans / "a.png", size=(799, 544))
    _scan(scans / "b.png", mode="RGB")
    code, _, _ = _run(["predict", scans, "--out", tmp_path / "out", "--model", model, "--config", config,
                       "--pixel-size", "0.1", "--batch-size", "2", "--flip-tta"], capsys)
    assert code == 0
    rows = _rows(tmp_path / "out")
    assert set(rows) == {"a.png", "b.png"}
    assert {r["status"] for r in rows.values()} <= {"ok", "review", "no_head_detected", "ellipse_fit_failed"}


@pytest.mark.parametrize("case", ["missing_input", "empty_folder", "only_text", "missing_model",
                                  "missing_config", "bad_header", "bad_pixel_size"])
def test_problems_that_stop_the_run_name_the_file_and_exit_non_zero(tmp_path, tiny_checkpoint, case, capsys):
    model, config = tiny_checkpoint
    scans = tmp_path / "scans"
    scans.mkdir()
    args = ["predict", scans, "--out", tmp_path / "out", "--model", model, "--config", config]
    expect = str(scans)
    if case == "missing_input":
        args[1] = expect = str(tmp_path / "nowhere")
    elif case == "only_text":
        (scans / "readme.txt").write_text("x")
    elif case != "empty_folder":
        _scan(scans / "a.png")
    if case == "missing_model":
        args[5] = expect = str(tmp_path / "missing.pth")
    elif case == "missing_config":
        args[7] = expect = str(tmp_path / "missing.yaml")
    elif case == "bad_header":
        bad = tmp_path / "sizes.csv"
        bad.write_text("name,size\na.png,0.1\n")
        args += ["--pixel-size-csv", bad]
        expect = str(bad)
    elif case == "bad_pixel_size":
        args += ["--pixel-size", "-1"]
        expect = "--pixel-size"
    code, _, err = _run(args, capsys)
    assert code == 2
    assert expect in err
    assert not (tmp_path / "out" / "measurements.csv").exists()


def test_a_checkpoint_that_does_not_fit_the_config_is_an_error(tmp_path, tiny_checkpoint, capsys):
    model, _ = tiny_checkpoint
    other = tmp_path / "other.yaml"
    other.write_text(f'_BASE_: "{TINY}"\nMODEL:\n  FPN:\n    OUT_CHANNELS: 64\n')
    _scan(tmp_path / "a.png")
    code, _, err = _run(["predict", tmp_path / "a.png", "--out", tmp_path / "out", "--model", model,
                         "--config", other], capsys)
    assert code == 2
    assert "does not fit config" in err and str(model) in err


def test_a_failing_batch_is_reported_and_the_others_are_kept(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    from hcmeasure.predictor import HeadPredictor

    calls = []

    def measure(self, inputs):
        calls.append(len(inputs))
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return [HeadMeasurement(KNOWN, 0.9, 0.9, "ok") for _ in inputs]

    monkeypatch.setattr(HeadPredictor, "measure", measure)
    model, config = tiny_checkpoint
    for n in "abc":
        _scan(tmp_path / f"{n}.png")
    code, _, err = _run(["predict", tmp_path, "--out", tmp_path / "out", "--model", model, "--config", config,
                         "--pixel-size", "0.1", "--batch-size", "1", "--no-overlays"], capsys)
    assert code == 0
    status = {n: r["status"] for n, r in _rows(tmp_path / "out").items()}
    assert status == {"a.png": "ok", "b.png": "inference_error", "c.png": "ok"}
    assert "out of memory" in err


@pytest.mark.parametrize("io_workers", [None, "0", "2"])
def test_an_overlay_that_cannot_be_written_is_reported_and_the_measurements_are_kept(
        tmp_path, tiny_checkpoint, known_head, monkeypatch, io_workers, capsys):
    import hcmeasure.cli.predict as predict_cli

    draw = predict_cli.draw_overlay

    def draw_or_fail(gray, head, text, *diameters):
        if gray[0, 0] == 7:  # the one scan marked below
            raise OSError("No space left on device")
        return draw(gray, head, text, *diameters)

    monkeypatch.setattr(predict_cli, "draw_overlay", draw_or_fail)
    model, config = tiny_checkpoint
    for n in "abc":
        _scan(tmp_path / f"{n}.png")
    marked = np.asarray(Image.open(tmp_path / "b.png")).copy()
    marked[0, 0] = 7
    Image.fromarray(marked).save(tmp_path / "b.png")
    workers = ["--io-workers", io_workers] if io_workers else []
    code, _, err = _run(["predict", tmp_path, "--out", tmp_path / "out", "--model", model, "--config", config,
                         "--pixel-size", "0.1"] + workers, capsys)
    assert code == 0
    assert {r["status"] for r in _rows(tmp_path / "out").values()} == {"ok"}
    assert sorted(p.name for p in (tmp_path / "out" / "overlays").iterdir()) == ["a.png", "c.png"]
    assert "overlay not written to" in err and "b.png" in err and "No space left" in err


def test_files_are_read_one_ahead_in_order():
    from concurrent.futures import ThreadPoolExecutor

    from hcmeasure.cli.predict import _read_ahead

    started = []

    def read(item):
        started.append(item)
        return item * 10

    with ThreadPoolExecutor(max_workers=1) as pool:
        results = _read_ahead(read, range(5), pool)
        assert next(results) == 0
        pool.submit(lambda: None).result()  # let the pool finish what it was given
        # The caller has the first file; only the second is being read ahead of it.
        assert started == [0, 1]
        assert list(results) == [10, 20, 30, 40]
    assert started == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("value", ["1e9", "nan", "inf", "-inf", "1e-6", "2.5"])
def test_an_implausible_pixel_size_is_reported_in_its_row_and_the_other_rows_are_kept(
        tmp_path, tiny_checkpoint, known_head, capsys, value):
    """A metre, a micron, nan or inf per pixel is a typo: that row gets invalid_pixel_size with the
    value and the plausible range in the warning; the row beside it is measured, GA included."""
    model, config = tiny_checkpoint
    scans = tmp_path / "scans"
    scans.mkdir()
    _scan(scans / "bad.png")
    _scan(scans / "good.png")
    sizes = tmp_path / "sizes.csv"
    sizes.write_text(f"filename,pixel size(mm)\nbad.png,{value}\ngood.png,0.15\n")
    code, _, err = _run(["predict", scans, "--out", tmp_path / "out", "--model", model,
                         "--config", config, "--pixel-size-csv", sizes, "--no-overlays"], capsys)
    assert code == 0
    rows = _rows(tmp_path / "out")
    assert rows["bad.png"]["status"] == "invalid_pixel_size" and rows["bad.png"]["hc_mm"] == ""
    assert rows["good.png"]["status"] == "ok" and rows["good.png"]["ga_weeks"] != ""
    warning = next(line for line in err.splitlines() if "bad.png" in line)
    assert value.lstrip("-") in warning.lower() or f"{float(value):g}" in warning
    if value not in ("nan", "inf", "-inf"):
        assert "0.01-2 mm" in warning


def test_an_implausible_pixel_size_flag_stops_the_run_before_measuring(tmp_path, tiny_checkpoint, capsys):
    model, config = tiny_checkpoint
    _scan(tmp_path / "a.png")
    code, _, err = _run(["predict", tmp_path / "a.png", "--out", tmp_path / "out", "--model", model,
                         "--config", config, "--pixel-size", "1e9"], capsys)
    assert code != 0 and "--pixel-size 1000000000.0" in err and "0.01-2 mm" in err
    assert not (tmp_path / "out" / "measurements.csv").exists()


def test_folder_entries_that_cannot_be_read_get_an_unreadable_image_row(
        tmp_path, tiny_checkpoint, known_head, capsys):
    """A dangling symbolic link (and, when not root, a file without read permission) is a row
    with unreadable_image and a message naming it, never a silent skip."""
    import os

    model, config = tiny_checkpoint
    scans = tmp_path / "scans"
    scans.mkdir()
    _scan(scans / "good.png")
    (scans / "gone.png").symlink_to(tmp_path / "deleted.png")
    (scans / "gone_scan").symlink_to(tmp_path / "deleted")
    expected = {"good.png": "ok", "gone.png": "unreadable_image", "gone_scan": "unreadable_image"}
    if os.geteuid() != 0:  # root reads any file, so the permission case needs another user
        _scan(scans / "locked.png")
        (scans / "locked.png").chmod(0)
        expected["locked.png"] = "unreadable_image"
    code, _, err = _run(["predict", scans, "--out", tmp_path / "out", "--model", model,
                         "--config", config, "--pixel-size", "0.1", "--no-overlays"], capsys)
    assert code == 0
    assert {n: r["status"] for n, r in _rows(tmp_path / "out").items()} == expected
    assert "gone.png: a symbolic link to" in err and "does not exist" in err
    if "locked.png" in expected:
        assert "locked.png: cannot be opened: permission denied" in err


def _with_trust(tiny_checkpoint, tmp_path, calibration: dict):
    """A copy of the tiny model's config that names a trust calibration JSON beside it."""
    import json

    from hcmeasure.predictor import load_config

    model, config = tiny_checkpoint
    cfg = load_config(config, device="cpu")
    cfg.HCMEASURE.TRUST.CALIBRATION = "trust.json"
    (tmp_path / "trust.json").write_text(json.dumps(calibration))
    (tmp_path / "config.yaml").write_text(cfg.dump())
    return model, tmp_path / "config.yaml"


def test_every_measured_hc_gets_its_interval_columns_in_order(tmp_path, tiny_checkpoint, known_head, capsys):
    model, config = _with_trust(tiny_checkpoint, tmp_path, {"q": 2.0, "intercept": 0.01})
    _scan(tmp_path / "x.png")
    code, out, _ = _run(["predict", tmp_path / "x.png", "--out", tmp_path / "out", "--model", model,
                         "--config", config, "--pixel-size", "0.2"], capsys)
    assert code == 0
    row = _rows(tmp_path / "out")["x.png"]
    low, hc, high = (float(row[k]) for k in ("hc_low_mm", "hc_mm", "hc_high_mm"))
    assert low <= hc <= high
    assert (low, high) == pytest.approx((hc * 0.98, hc * 1.02), abs=2e-3)
    assert row["status"] == "ok" and row["review_reason"] == ""


def test_a_head_cut_by_the_image_border_is_measured_in_full_and_flagged_for_review(
        tmp_path, tiny_checkpoint, monkeypatch, capsys):
    """status review: every column and the submission row are written, the reason is given,
    the summary counts it and the report lists it first."""
    from hcmeasure.predictor import HeadPredictor

    cut = Ellipse(760.0, 270.0, 150.0, 100.0, 0.0)  # the right third of the outline is off the scan

    def measure(self, inputs):
        return [HeadMeasurement(KNOWN if i % 2 else cut, 0.99, 0.97, "ok") for i, _ in enumerate(inputs)]

    monkeypatch.setattr(HeadPredictor, "measure", measure)
    model, config = _with_trust(tiny_checkpoint, tmp_path, {"q": 2.0, "intercept": 0.01})
    scans = tmp_path / "scans"
    scans.mkdir()
    _scan(scans / "a_cut.png")
    _scan(scans / "b_fine.png")
    code, out, _ = _run(["predict", scans, "--out", tmp_path / "out", "--model", model, "--config", config,
                         "--pixel-size", "0.2", "--batch-size", "2", "--report"], capsys)
    assert code == 0
    rows = _rows(tmp_path / "out")
    flagged, fine = rows["a_cut.png"], rows["b_fine.png"]
    assert flagged["status"] == "review" and flagged["review_reason"] == "ellipse_leaves_image"
    assert flagged["hc_mm"] and flagged["hc_low_mm"] and flagged["ga_weeks"]
    assert fine["status"] == "ok"
    sub = (tmp_path / "out" / "submission.csv").read_text().splitlines()
    assert sub[1].startswith("a_cut.png,") and sub[1] != "a_cut.png,0,0,0,0,0"
    assert "1 review" in out and "1 ok" in out
    report = (tmp_path / "out" / "report.html").read_text()
    assert report.index("a_cut.png") < report.index("b_fine.png")
    assert "review: ellipse leaves image" in report
