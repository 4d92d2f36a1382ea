"""``hcmeasure fit``: measuring existing masks and outlines."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from hcmeasure.cli.main import main
from hcmeasure.io.tables import MEASUREMENT_COLUMNS, read_measurements_csv, read_reference_hc_csv
from hcmeasure.measurement.ellipse import Ellipse, ellipse_mask, ramanujan_perimeter

NAMES = ["000_HC.png", "001_HC.png", "010_2HC.png", "010_HC.png", "402_HC.png"]
TRAIN_CSV = "training_set_pixel_size_and_HC.csv"


def annotation_name(name: str) -> str:
    return name.replace(".png", "_Annotation.png")


def subset_csv(hc18_root, names, path):
    """The HC18 training CSV cut down to ``names``, keeping its exact format (CRLF, no final newline)."""
    lines = (hc18_root / TRAIN_CSV).read_bytes().decode("utf-8").split("\r\n")
    keep = [lines[0]] + [ln for ln in lines[1:] if ln.split(",")[0] in names]
    path.write_bytes("\r\n".join(keep).encode("utf-8"))
    return path


@pytest.fixture
def annotations(hc18_root, tmp_path):
    """A folder with five real HC18 annotations and the matching CSV rows."""
    folder = tmp_path / "masks"
    folder.mkdir()
    for name in NAMES:
        shutil.copy(hc18_root / "training_set" / annotation_name(name), folder)
    csv_path = subset_csv(hc18_root, NAMES, tmp_path / "px.csv")
    return folder, csv_path, read_reference_hc_csv(csv_path)


def by_name(out_dir):
    return {r["filename"]: r for r in read_measurements_csv(out_dir / "measurements.csv")}


def save_mask(path, mask, high=255):
    Image.fromarray((np.asarray(mask, bool) * high).astype(np.uint8)).save(path)


@pytest.mark.shared
def test_fit_real_annotations_matches_the_csv(annotations, tmp_path, capsys):
    folder, csv_path, ref = annotations
    out = tmp_path / "out"
    rc = main(["fit", str(folder), "--pixel-size-csv", str(csv_path), "--out", str(out)])
    assert rc == 0
    stdout = capsys.readouterr().out
    assert "5 image(s): 5 ok" in stdout and "measurements.csv" in stdout
    rows = by_name(out)
    assert list(rows) == NAMES  # reported under the image name, not the annotation's
    for name, row in rows.items():
        assert row["status"] == "ok"
        assert abs(float(row["hc_mm"]) - ref[name][1]) < 0.1, name
        assert float(row["pixel_size_mm"]) == pytest.approx(ref[name][0], rel=1e-9)
        assert float(row["fit_iou"]) > 0.97
    with open(out / "measurements.csv") as f:
        assert f.readline().strip() == ",".join(MEASUREMENT_COLUMNS)
    assert os.listdir(out) == ["measurements.csv"]  # no temporary file left


@pytest.mark.shared
def test_fit_kind_outline_and_formula(annotations, tmp_path):
    folder, csv_path, ref = annotations
    main(["fit", str(folder), "--pixel-size-csv", str(csv_path), "--out", str(tmp_path / "auto")])
    main(["fit", str(folder), "--pixel-size-csv", str(csv_path), "--out", str(tmp_path / "o"), "--kind", "outline",
          "--perimeter-formula", "1"])
    auto, outline = by_name(tmp_path / "auto"), by_name(tmp_path / "o")
    for name in NAMES:
        assert abs(float(auto[name]["hc_mm"]) - float(outline[name]["hc_mm"])) < 1e-3
    # Read as filled regions, the thin rings are fitted on their outer and inner edges at
    # once: still close to the middle, but not what HC18 measures.
    main(["fit", str(folder), "--pixel-size-csv", str(csv_path), "--out", str(tmp_path / "f"), "--kind", "filled"])
    assert all(r["status"] == "ok" for r in by_name(tmp_path / "f").values())


@pytest.mark.shared
def test_fit_per_image_problems_keep_the_run_going(annotations, hc18_root, tmp_path, capsys):
    folder, csv_path, ref = annotations
    # A row missing from the CSV and one with a bad pixel size.
    lines = csv_path.read_bytes().decode().split("\r\n")
    lines = [ln for ln in lines if not ln.startswith("000_HC.png")]
    lines = [ln if not ln.startswith("001_HC.png") else "001_HC.png,zero,56.81" for ln in lines]
    csv_path.write_bytes("\r\n".join(lines).encode())
    # Broken and odd files next to the real annotations.
    png = (folder / annotation_name("010_HC.png")).read_bytes()
    (folder / "cut_Annotation.png").write_bytes(png[: len(png) // 2])
    (folder / "text.png").write_text("not an image")
    save_mask(folder / "blank.png", np.zeros((540, 800), bool))
    (folder / "readme.txt").write_text("notes")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (540, 800), dtype=np.uint8)).save(folder / "noise.png")
    out = tmp_path / "out"
    rc = main(["fit", str(folder), "--pixel-size-csv", str(csv_path), "--out", str(out)])
    assert rc == 0
    captured = capsys.readouterr()
    assert "readme.txt" in captured.err
    rows = by_name(out)
    status = {name: r["status"] for name, r in rows.items()}
    assert status == {
        "000_HC.png": "missing_pixel_size",
        "001_HC.png": "invalid_pixel_size",
        "010_2HC.png": "ok",
        "010_HC.png": "ok",
        "402_HC.png": "ok",
        "blank.png": "no_head_detected",
        "cut.png": "unreadable_image",
        "noise.png": "not_a_mask",
        "text.png": "unreadable_image",
    }
    # Without a usable pixel size the geometry is still there, in pixels only.
    for name in ("000_HC.png", "001_HC.png"):
        assert rows[name]["hc_mm"] == "" and float(rows[name]["hc_px"]) > 100
    assert "9 image(s): 3 ok" in captured.out


@pytest.mark.shared
def test_fit_skips_scans_next_to_their_annotation(hc18_root, tmp_path, capsys):
    folder = tmp_path / "training_subset"
    folder.mkdir()
    for name in NAMES[:2]:
        shutil.copy(hc18_root / "training_set" / name, folder)
        shutil.copy(hc18_root / "training_set" / annotation_name(name), folder)
    csv_path = subset_csv(hc18_root, NAMES[:2], tmp_path / "px.csv")
    assert main(["fit", str(folder), "--pixel-size-csv", str(csv_path), "--out", str(tmp_path / "o")]) == 0
    assert "skipped 2 scan(s)" in capsys.readouterr().out
    rows = by_name(tmp_path / "o")
    assert list(rows) == NAMES[:2] and all(r["status"] == "ok" for r in rows.values())


def test_fit_synthetic_filled_masks_with_one_pixel_size(tmp_path, capsys):
    folder = tmp_path / "masks"
    folder.mkdir()
    heads = {
        "a.png": Ellipse(200.4, 150.2, 120.0, 90.0, 0.4),
        "b.png": Ellipse(180.0, 160.0, 80.0, 79.5, 2.9),
    }
    for name, e in heads.items():
        save_mask(folder / name, ellipse_mask(e, (300, 400)), high=1)  # 0/1 label image
    save_mask(folder / "c.png", ellipse_mask(heads["a.png"], (300, 400)))  # 0/255
    rc = main(["fit", str(folder), "--pixel-size", "0.2", "--out", str(tmp_path / "out")])
    assert rc == 0
    rows = by_name(tmp_path / "out")
    for name, e in {**heads, "c.png": heads["a.png"]}.items():
        assert rows[name]["status"] == "ok"
        assert float(rows[name]["hc_mm"]) == pytest.approx(0.2 * ramanujan_perimeter(e.a, e.b), rel=1e-3)
        assert float(rows[name]["pixel_size_mm"]) == 0.2


def test_fit_without_pixel_size_gives_pixels_only(tmp_path):
    folder = tmp_path / "masks"
    folder.mkdir()
    e = Ellipse(200.4, 150.2, 120.0, 90.0, 0.4)
    save_mask(folder / "a.png", ellipse_mask(e, (300, 400)))
    assert main(["fit", str(folder / "a.png"), "--out", str(tmp_path / "out")]) == 0  # one file works too
    row = by_name(tmp_path / "out")["a.png"]
    assert row["status"] == "missing_pixel_size"
    assert row["hc_mm"] == "" and row["pixel_size_mm"] == ""
    assert float(row["hc_px"]) == pytest.approx(e.perimeter(), rel=1e-3)


@pytest.mark.parametrize("setup", ["missing", "empty", "only_text"])
def test_fit_stops_on_unusable_input_folder(tmp_path, capsys, setup):
    folder = tmp_path / "masks"
    if setup != "missing":
        folder.mkdir()
    if setup == "only_text":
        (folder / "notes.txt").write_text("x")
    rc = main(["fit", str(folder), "--pixel-size", "0.1", "--out", str(tmp_path / "out")])
    assert rc == 2
    err = capsys.readouterr().err
    assert str(folder) in err and "error" in err
    assert not (tmp_path / "out" / "measurements.csv").exists()


def test_fit_stops_on_wrong_csv_header_or_bad_options(tmp_path, capsys):
    folder = tmp_path / "masks"
    folder.mkdir()
    save_mask(folder / "a.png", ellipse_mask(Ellipse(50, 50, 30, 20, 0), (100, 100)))
    bad_csv = tmp_path / "sizes.csv"
    bad_csv.write_text("image,mm\na.png,0.1\n")
    assert main(["fit", str(folder), "--pixel-size-csv", str(bad_csv), "--out", str(tmp_path / "o")]) == 2
    assert "sizes.csv" in capsys.readouterr().err
    assert main(["fit", str(folder), "--pixel-size-csv", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "absent.csv" in capsys.readouterr().err
    assert main(["fit", str(folder), "--pixel-size", "-1", "--out", str(tmp_path / "o")]) == 2
    assert "--pixel-size" in capsys.readouterr().err
    out_file = tmp_path / "taken"
    out_file.write_text("x")
    assert main(["fit", str(folder), "--pixel-size", "0.1", "--out", str(out_file)]) == 2
    assert "taken" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: the two pixel-size options exclude each other
        main(["fit", str(folder), "--pixel-size", "0.1", "--pixel-size-csv", str(bad_csv), "--out", "o"])


def test_fit_gives_bpd_ofd_and_the_centile_for_a_known_ga(tmp_path, capsys):
    from hcmeasure.measurement.growth import hc_for_age

    folder = tmp_path / "masks"
    folder.mkdir()
    head = Ellipse(200.0, 150.0, 120.0, 100.0, 0.3)  # filled, 0.5 mm: OFD 120 mm, BPD 100 mm, HC 346 mm
    save_mask(folder / "a.png", ellipse_mask(head, (300, 400)))
    save_mask(folder / "b.png", ellipse_mask(head, (300, 400)))
    sizes = tmp_path / "px.csv"
    sizes.write_text("filename,pixel size(mm),ga,pregnancy\na.png,0.5,39+2,P2\nb.png,0.5,39+9,P2\n")
    assert main(["fit", str(folder), "--pixel-size-csv", str(sizes), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    rows = by_name(tmp_path / "out")
    a, b = rows["a.png"], rows["b.png"]
    assert float(a["ofd_mm"]) == pytest.approx(120.0, abs=0.1) and float(a["bpd_mm"]) == pytest.approx(100.0, abs=0.1)
    assert float(a["cephalic_index"]) == pytest.approx(83.3, abs=0.1) and a["ci_flag"] == "brachycephaly"
    assert (a["known_ga"], a["pregnancy"]) == ("39+2", "P2")
    assert float(a["hc_centile"]) == pytest.approx(hc_for_age(float(a["hc_mm"]), 39 * 7 + 2).centile, abs=0.05)
    # A malformed GA marks its own row only.
    assert (b["status"], b["known_ga_status"], b["hc_centile"]) == ("ok", "invalid_ga", "") and b["bpd_mm"]
    assert "b.png: the gestational age '39+9'" in err
    assert main(["fit", str(folder), "--pixel-size", "0.5", "--ga", "39+9", "--out", str(tmp_path / "x")]) == 2
    assert "--ga: '39+9' is not a gestational age in weeks+days" in capsys.readouterr().err
