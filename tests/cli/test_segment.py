"""``hcmeasure segment``: class-index masks, overlays, segmentation.csv, the BKAI-IGH
RLE submission, per-image errors, and checkpoints that do not fit their config.

Models are tiny and randomly initialised, saved like trained checkpoints; where exact
masks matter, ``SemanticPredictor.predict`` is replaced by one returning known masks."""
import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hcmeasure.cli.main import main
from hcmeasure.studies.polyp.submission import rle_decode, rle_encode, submission_image_id, submission_rows

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _checkpoint(d: Path, config: Path, opts=()):
    from detectron2.modeling import build_model

    from hcmeasure.predictor import load_config

    cfg = load_config(config, list(opts), device="cpu")
    torch.manual_seed(0)
    model = build_model(cfg)
    d.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "iteration": 0}, d / "model_final.pth")
    (d / "config.yaml").write_text(cfg.dump())
    return d / "model_final.pth", d / "config.yaml"


@pytest.fixture(scope="module")
def neo_model(tmp_path_factory):
    """3-class plain U-Net (tiny), NeoPolyp datasets in its config."""
    opts = ["MODEL.SEM_SEG_HEAD.NUM_CLASSES", "3", "DATASETS.TRAIN", "('neopolyp_train',)",
            "DATASETS.TEST", "('neopolyp_val',)"]
    return _checkpoint(tmp_path_factory.mktemp("neo"), REPO / "tests/configs/Polyp/unet_tiny_test.yaml", opts)


@pytest.fixture(scope="module")
def gloff_model(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("gloff"), REPO / "tests/configs/Polyp/gloffnet_tiny_test.yaml")


def _images(folder: Path, sizes):
    from hcmeasure.studies.polyp.data import synthetic_polyp

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i, (w, h) in enumerate(sizes):
        img, _ = synthetic_polyp(rng, h, w)
        p = folder / f"img{i}.{'jpeg' if i % 2 else 'png'}"
        Image.fromarray(img).save(p)
        paths.append(p)
    return paths


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------- RLE


def test_rle_by_hand_row_major_one_based():
    assert rle_encode(np.array([[0, 1, 1], [1, 0, 0]])) == "2 3"
    assert rle_encode(np.array([[1, 0], [1, 0]])) == "1 1 3 1"
    assert rle_encode(np.zeros((3, 4))) == ""
    assert rle_encode(np.ones((2, 2))) == "1 4"
    assert rle_encode(np.array([[0, 0], [0, 1]])) == "4 1"


@pytest.mark.parametrize("seed", range(5))
def test_rle_round_trip(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 40, 2)
    mask = (rng.random((h, w)) < rng.random()).astype(np.uint8)
    assert np.array_equal(rle_decode(rle_encode(mask), (h, w)), mask)


def test_rle_decode_rejects_bad_runs():
    with pytest.raises(ValueError):
        rle_decode("1 2 3", (2, 2))
    with pytest.raises(ValueError):
        rle_decode("3 5", (2, 2))


def test_submission_rows_name_classes_by_colour_channel():
    classes = np.array([[0, 1, 1], [2, 2, 0]])
    rows = submission_rows(submission_image_id("/x/abc123.jpeg"), classes)
    assert rows == [{"Id": "abc123_0", "Expected": "2 2"}, {"Id": "abc123_1", "Expected": "4 2"}]
    assert submission_image_id("a.b.png") == "a"


# ---------------------------------------------------------------------- CLI


def test_segment_folder_with_known_masks_writes_exact_outputs(neo_model, tmp_path, monkeypatch):
    from hcmeasure.cli.segment import SemanticPredictor

    model, config = neo_model
    paths = _images(tmp_path / "in", [(40, 30), (33, 21)])

    def predict(self, inputs):
        out = []
        for inp in inputs:
            m = np.zeros((inp["height"], inp["width"]), np.uint8)
            m[2:6, 3:9] = 1
            m[10:12, :] = 2
            out.append(m)
        return out

    monkeypatch.setattr(SemanticPredictor, "predict", predict)
    out, sub = tmp_path / "out", tmp_path / "submission.csv"
    rc = main(["segment", str(tmp_path / "in"), "--model", str(model), "--config", str(config),
               "--out", str(out), "--rle-csv", str(sub)])
    assert rc == 0
    rows = _read_csv(out / "segmentation.csv")
    assert [r["filename"] for r in rows] == [p.name for p in paths]
    assert rows[0]["status"] == "ok" and rows[0]["neoplastic_pixels"] == "24"
    assert rows[1]["non-neoplastic_pixels"] == str(2 * 33)
    for p, (w, h) in zip(paths, [(40, 30), (33, 21)]):
        mask_png = Image.open(out / "masks" / f"{p.stem}.png")
        assert mask_png.mode == "P" and mask_png.size == (w, h)
        mask = np.asarray(mask_png)
        assert set(np.unique(mask)) == {0, 1, 2}
        assert mask_png.getpalette()[:9] == [0, 0, 0, 255, 0, 0, 0, 255, 0]
        assert Image.open(out / "overlays" / f"{p.stem}.png").size == (w, h)
    lines = sub.read_text().splitlines()
    assert lines[0] == "Id,Expected"
    sub_rows = _read_csv(sub)
    assert [r["Id"] for r in sub_rows] == ["img0_0", "img0_1", "img1_0", "img1_1"]
    mask0 = np.asarray(Image.open(out / "masks" / "img0.png"))
    assert np.array_equal(rle_decode(sub_rows[0]["Expected"], mask0.shape), mask0 == 1)
    assert np.array_equal(rle_decode(sub_rows[1]["Expected"], mask0.shape), mask0 == 2)


def test_segment_keeps_going_past_a_bad_image(gloff_model, tmp_path):
    model, config = gloff_model
    _images(tmp_path / "in", [(50, 40), (64, 48)])
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "in" / "notes.txt").write_text("x")
    out, sub = tmp_path / "out", tmp_path / "sub.csv"
    rc = main(["segment", str(tmp_path / "in"), "--model", str(model), "--out", str(out),
               "--rle-csv", str(sub), "--no-overlays"])  # config found beside the model
    assert rc == 0
    status = {r["filename"]: r["status"] for r in _read_csv(out / "segmentation.csv")}
    assert status == {"broken.png": "unreadable_image", "img0.png": "ok", "img1.jpeg": "ok"}
    assert not (out / "overlays").exists()
    sub_rows = _read_csv(sub)
    # Binary model: one class, suffix _0; the broken image still has its (empty) row.
    assert [r["Id"] for r in sub_rows] == ["broken_0", "img0_0", "img1_0"]
    assert sub_rows[0]["Expected"] == ""
    for name, r in zip(("img0", "img1"), sub_rows[1:]):
        mask = np.asarray(Image.open(out / "masks" / f"{name}.png"))
        assert np.array_equal(rle_decode(r["Expected"], mask.shape), mask == 1)


def test_checkpoint_that_does_not_fit_the_config_is_an_error(gloff_model, neo_model, tmp_path, capsys):
    gloff_ckpt, _ = gloff_model
    _, neo_config = neo_model
    _images(tmp_path / "in", [(32, 32)])
    rc = main(["segment", str(tmp_path / "in"), "--model", str(gloff_ckpt), "--config", str(neo_config),
               "--out", str(tmp_path / "out")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "does not fit config" in err and str(gloff_ckpt) in err


def test_missing_input_is_an_error(gloff_model, tmp_path, capsys):
    model, config = gloff_model
    rc = main(["segment", str(tmp_path / "nope"), "--model", str(model), "--out", str(tmp_path / "o")])
    assert rc == 2 and "no such file or folder" in capsys.readouterr().err


@pytest.mark.shared
def test_segment_real_neopolyp_test_images(neo_model, neopolyp_root, tmp_path):
    """The real test folder: masks back at each image's original size, two RLE rows each."""
    model, config = neo_model
    test_dir = neopolyp_root / "test"
    out, sub = tmp_path / "out", tmp_path / "submission.csv"
    rc = main(["segment", str(test_dir), "--model", str(model), "--config", str(config), "--out", str(out),
               "--rle-csv", str(sub), "--batch-size", "2", "--no-overlays"])
    assert rc == 0
    images = sorted(test_dir.iterdir())
    sub_rows = _read_csv(sub)
    assert len(sub_rows) == 2 * len(images) == 20
    assert sub_rows[0]["Id"] == f"{images[0].name.split('.')[0]}_0"
    for img in images[:2]:
        mask = np.asarray(Image.open(out / "masks" / f"{img.stem}.png"))
        assert mask.shape == Image.open(img).size[::-1]
        row = {r["Id"]: r["Expected"] for r in sub_rows}
        assert np.array_equal(rle_decode(row[f"{img.stem}_1"], mask.shape), mask == 2)
