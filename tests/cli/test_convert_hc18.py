"""``hcmeasure convert-hc18``: end to end on a small copy of real HC18 images, and bad inputs."""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from hcmeasure.cli.main import main
from hcmeasure.data import hc18
from hcmeasure.io.images import read_scan
from hcmeasure.measurement import ellipse_mask, fit_ellipse

#: Two frames of a training exam, two of a validation exam, and a 799 x 563 image.
NAMES = ["010_HC.png", "010_2HC.png", "032_HC.png", "032_2HC.png", "402_HC.png"]


@pytest.fixture
def small_hc18(hc18_root, tmp_path, monkeypatch) -> Path:
    """A copy of NAMES with their annotations and their rows of the CSV (CRLF, as released)."""
    monkeypatch.setenv(hc18.ENV_CACHE, str(tmp_path / "cache"))
    dest = tmp_path / "hc18"
    (dest / "training_set").mkdir(parents=True)
    for name in NAMES:
        for file in (name, name.replace(".png", "_Annotation.png")):
            shutil.copy(hc18_root / "training_set" / file, dest / "training_set" / file)
    lines = (hc18_root / "training_set_pixel_size_and_HC.csv").read_bytes().split(b"\r\n")
    rows = [line for line in lines[1:] if line.split(b",")[0].decode() in NAMES]
    (dest / "training_set_pixel_size_and_HC.csv").write_bytes(b"\r\n".join([lines[0], *rows]))
    return dest


def _reference(root: Path) -> dict[str, tuple[float, float]]:
    text = (root / "training_set_pixel_size_and_HC.csv").read_text()
    return {name: (float(ps), float(hc)) for name, ps, hc in (line.split(",") for line in text.splitlines()[1:])}


def test_converts_a_folder_to_coco_json_that_pycocotools_reads(small_hc18, tmp_path, capsys):
    out = tmp_path / "out" / "hc18_coco.json"
    assert main(["convert-hc18", str(small_hc18), "--out", str(out)]) == 0
    assert f"wrote {out}: 5 images" in capsys.readouterr().out

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(out))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["fetal_head"]
    assert coco.getCatIds() == [1]
    reference = _reference(small_hc18)
    assert sorted(image["file_name"] for image in coco.dataset["images"]) == sorted(NAMES)
    for image in coco.dataset["images"]:
        name = image["file_name"]
        with Image.open(small_hc18 / "training_set" / name) as im:
            assert (image["width"], image["height"]) == im.size
        assert (image["pixel_size_mm"], image["hc_mm"]) == reference[name]
        (ann,) = coco.imgToAnns[image["id"]]
        assert ann["bbox"][2] > 0 and ann["area"] > 0
        ring = read_scan(small_hc18 / "training_set" / name.replace(".png", "_Annotation.png"))
        filled = ellipse_mask(fit_ellipse(ring, kind="outline").ellipse, ring.shape)
        mask = coco.annToMask(ann).astype(bool)
        assert np.logical_and(mask, filled).sum() / np.logical_or(mask, filled).sum() >= 0.98, name
    assert (coco.imgs[4021]["width"], coco.imgs[4021]["height"]) == (799, 563)


def test_split_option_writes_one_side_of_the_examination_split(small_hc18, tmp_path):
    names = {}
    for split in ("train", "val"):
        out = tmp_path / f"{split}.json"
        assert main(["convert-hc18", str(small_hc18), "--out", str(out), "--split", split, "--no-cache"]) == 0
        names[split] = {image["file_name"] for image in json.loads(out.read_text())["images"]}
        assert {hc18.split_of(name) for name in names[split]} == {split}
    assert names["train"] | names["val"] == set(NAMES)
    assert {"010_HC.png", "010_2HC.png"} <= names["train"] and {"032_HC.png", "032_2HC.png"} <= names["val"]


def _fails(argv, capsys, *expected) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("hcmeasure convert-hc18: error: ")
    for text in expected:
        assert text in err, err


def test_missing_folder_is_an_error(tmp_path, capsys):
    out = tmp_path / "out.json"
    missing = tmp_path / "nowhere"
    _fails(["convert-hc18", str(missing), "--out", str(out)], capsys, f"{missing}: folder not found")
    assert not out.exists()


def test_missing_csv_is_an_error(small_hc18, tmp_path, capsys):
    csv = small_hc18 / "training_set_pixel_size_and_HC.csv"
    csv.unlink()
    out = tmp_path / "out.json"
    _fails(["convert-hc18", str(small_hc18), "--out", str(out)], capsys, f"{csv}: file not found")
    assert not out.exists()


def test_passing_training_set_itself_points_to_its_parent(small_hc18, tmp_path, capsys):
    _fails(
        ["convert-hc18", str(small_hc18 / "training_set"), "--out", str(tmp_path / "out.json")],
        capsys,
        f"pass its parent, {small_hc18}",
    )


def test_image_without_annotation_is_named(small_hc18, tmp_path, capsys):
    missing = small_hc18 / "training_set" / "032_2HC_Annotation.png"
    missing.unlink()
    out = tmp_path / "out.json"
    _fails(
        ["convert-hc18", str(small_hc18), "--out", str(out)],
        capsys,
        f"{missing}: annotation not found for image {small_hc18 / 'training_set' / '032_2HC.png'}",
    )
    assert not out.exists()


def test_unreadable_annotation_is_named(small_hc18, tmp_path, capsys):
    broken = small_hc18 / "training_set" / "010_HC_Annotation.png"
    broken.write_bytes(b"not a png")
    _fails(["convert-hc18", str(small_hc18), "--out", str(tmp_path / "out.json"), "--no-cache"], capsys, str(broken))


def test_out_must_not_be_a_folder(small_hc18, tmp_path, capsys):
    _fails(["convert-hc18", str(small_hc18), "--out", str(tmp_path)], capsys, f"{tmp_path}: is a folder")
