"""``hcmeasure predict`` keeps each file's rows in OUT/journal as soon as it is measured;
``--resume`` measures only what is missing; results of another model or option are never
mixed into an OUT. The model here is the tiny random HeadRCNN with a known head
(``measured_sizes``), run in this process; the real model, a SIGKILL and two processes
are in test_predict_launch.py."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _dicom_synth import write_us_dicom  # noqa: E402

from hcmeasure.cli.main import main  # noqa: E402
from hcmeasure.cli.predict_journal import (  # noqa: E402
    FileRecord,
    JournalIndex,
    JournalWriter,
    OutLock,
    check_run_id,
)

HEIGHTS = (200, 210, 220, 230)


@pytest.fixture
def folder(tmp_path, scan_writer):
    """Four PNG scans of distinct heights, a 3-frame DICOM (240 x 320) and a broken file."""
    d = tmp_path / "scans"
    d.mkdir()
    for i, h in enumerate(HEIGHTS):
        scan_writer(d / f"s{i}.png", h)
    rng = np.random.default_rng(0)
    write_us_dicom(d / "s2_cine.dcm", rng.integers(0, 255, size=(3, 240, 320)).astype(np.uint8),
                   pixel_spacing=[0.3, 0.3])
    (d / "s3_broken.png").write_text("not an image")
    return d


def _predict(folder, out, model, *extra):
    weights, config = model
    return main([str(a) for a in ("predict", folder, "--out", out, "--model", weights, "--config", config,
                                  "--pixel-size", "0.2", "--no-overlays", *extra)])


def _journal_lines(out: Path) -> list[dict]:
    return [json.loads(line) for p in sorted((out / "journal").glob("rows-rank*.jsonl"))
            for line in p.read_text().splitlines()]


ALL_FILES = ["s0.png", "s1.png", "s2.png", "s2_cine.dcm", "s3.png", "s3_broken.png"]


def test_each_file_is_in_the_journal_before_the_next_is_measured(folder, tmp_path, tiny_checkpoint, measured_sizes,
                                                                 monkeypatch):
    from hcmeasure.predictor import HeadPredictor

    out = tmp_path / "out"
    measure = HeadPredictor.measure
    journaled_at_call = []

    def spy(self, inputs):
        journaled_at_call.append([r["file"] for r in _journal_lines(out)])
        return measure(self, inputs)

    monkeypatch.setattr(HeadPredictor, "measure", spy)
    assert _predict(folder, out, tiny_checkpoint) == 0
    # Calls: s0, s1, s2, the cine's 3 frames, s3 (the broken file needs no call).
    assert journaled_at_call == [[], ["s0.png"], ["s0.png", "s1.png"]] + [["s0.png", "s1.png", "s2.png"]] * 3 + [
        ["s0.png", "s1.png", "s2.png", "s2_cine.dcm"]]
    records = _journal_lines(out)
    assert [r["file"] for r in records] == ALL_FILES
    assert [row["filename"] for row in records[3]["rows"]] == [f"s2_cine.dcm#{i}" for i in (1, 2, 3)]
    assert records[5]["rows"][0]["status"] == "unreadable_image" and "s3_broken.png" in records[5]["warnings"][0]


def test_resume_measures_only_the_files_missing_from_the_journal(folder, tmp_path, tiny_checkpoint, measured_sizes,
                                                                 capsys):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert _predict(folder, full, tiny_checkpoint, "--batch-size", "2") == 0
    assert _predict(folder, cut, tiny_checkpoint, "--batch-size", "2") == 0
    # As a kill leaves it: two files journaled, the third cut short, no tables yet.
    journal = cut / "journal" / "rows-rank0.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:2]) + lines[2][:40])
    for name in ("measurements.csv", "submission.csv"):
        (cut / name).unlink()
    # ... and the temporary file of an overlay being written when the kill came
    stale = cut / "overlays" / ".s2.png.k3j9x2ab.tmp"
    stale.parent.mkdir(exist_ok=True)
    stale.write_bytes(b"\x89PNG half")
    measured_sizes.clear()
    capsys.readouterr()
    assert _predict(folder, cut, tiny_checkpoint, "--batch-size", "2", "--resume") == 0
    assert not stale.exists()
    assert "took 2 from the journal of an earlier run" in capsys.readouterr().out
    # s0 (200 rows) and s1 (210) came from the journal; s2, the cine's frames, s3 were measured.
    assert measured_sizes == [(220, 320), (240, 320), (240, 320), (240, 320), (230, 320)]
    for name in ("measurements.csv", "submission.csv"):
        assert (cut / name).read_bytes() == (full / name).read_bytes(), name
    assert [r["file"] for r in _journal_lines(cut)] == ALL_FILES  # the cut line is gone, none twice


def test_resume_after_a_complete_run_measures_nothing_and_rewrites_the_same_tables(
        folder, tmp_path, tiny_checkpoint, measured_sizes, scan_writer):
    out = tmp_path / "out"
    assert _predict(folder, out, tiny_checkpoint) == 0
    before = (out / "measurements.csv").read_bytes()
    measured_sizes.clear()
    assert _predict(folder, out, tiny_checkpoint, "--resume") == 0
    assert measured_sizes == []
    assert (out / "measurements.csv").read_bytes() == before
    # A file added to the folder since: only it is measured, and it takes its place in the order.
    scan_writer(folder / "s1b.png", 250)
    assert _predict(folder, out, tiny_checkpoint, "--resume") == 0
    assert measured_sizes == [(250, 320)]
    names = [line.split(",")[0] for line in (out / "measurements.csv").read_text().splitlines()[1:]]
    assert names[:3] == ["s0.png", "s1.png", "s1b.png"]


def test_a_run_without_resume_starts_the_journal_afresh(folder, tmp_path, tiny_checkpoint, measured_sizes):
    out = tmp_path / "out"
    assert _predict(folder, out, tiny_checkpoint) == 0
    measured_sizes.clear()
    assert _predict(folder, out, tiny_checkpoint) == 0
    assert len(measured_sizes) == 7  # every image again
    assert [r["file"] for r in _journal_lines(out)] == ALL_FILES


@pytest.mark.parametrize("change", [["--ga-formula", "hadlock"], ["--pixel-size", "0.3"], ["--perimeter-formula", "1"],
                                    "model", "input"])
def test_another_model_option_or_input_into_the_same_out_is_refused(
        folder, tmp_path, tiny_checkpoint, measured_sizes, change, capsys):
    out = tmp_path / "out"
    assert _predict(folder, out, tiny_checkpoint, "--resume") == 0
    before = (out / "measurements.csv").read_bytes()
    weights, config = tiny_checkpoint
    source, extra = folder, []
    if change == "model":
        import torch

        weights = tmp_path / "other.pth"  # other bytes, the same tensors
        torch.save({**torch.load(tiny_checkpoint[0]), "iteration": 1}, weights)
    elif change == "input":
        source = tmp_path / "elsewhere"
        source.mkdir()
        (source / "s0.png").write_bytes((folder / "s0.png").read_bytes())
    else:
        extra = change
    capsys.readouterr()
    measured_sizes.clear()
    for mode in ([], ["--resume"]):
        assert _predict(source, out, (weights, config), *extra, *mode) == 2
        err = capsys.readouterr().err
        assert f"{out}: holds the results of another run" in err and "--overwrite" in err
        assert measured_sizes == []
        assert (out / "measurements.csv").read_bytes() == before
    assert _predict(source, out, (weights, config), *extra, "--overwrite") == 0
    measured_sizes.clear()
    assert _predict(source, out, (weights, config), *extra, "--resume") == 0  # OUT is the new run's now
    assert measured_sizes == []


def test_overwrite_removes_the_other_run_s_tables_before_measuring(folder, tmp_path, tiny_checkpoint, measured_sizes,
                                                                   monkeypatch):
    from hcmeasure.predictor import HeadPredictor

    out = tmp_path / "out"
    assert _predict(folder, out, tiny_checkpoint, "--ga-formula", "hadlock") == 0

    def fail(self, inputs):
        raise KeyboardInterrupt  # the new run stops at its first image

    monkeypatch.setattr(HeadPredictor, "measure", fail)
    assert _predict(folder, out, tiny_checkpoint, "--overwrite") == 130
    assert not (out / "measurements.csv").exists() and not (out / "submission.csv").exists()


def test_resume_and_overwrite_together_are_refused(folder, tmp_path, tiny_checkpoint, capsys):
    assert _predict(folder, tmp_path / "out", tiny_checkpoint, "--resume", "--overwrite") == 2
    assert "--resume and --overwrite" in capsys.readouterr().err


def test_a_second_run_into_an_out_being_written_is_refused(folder, tmp_path, tiny_checkpoint, measured_sizes, capsys):
    out = tmp_path / "out"
    lock = OutLock(out)
    lock.acquire()  # as a run in progress holds it
    try:
        assert _predict(folder, out, tiny_checkpoint) == 2
    finally:
        lock.release()
    assert "another 'hcmeasure predict' is writing into this folder" in capsys.readouterr().err
    assert measured_sizes == []
    assert _predict(folder, out, tiny_checkpoint) == 0


def test_a_line_cut_short_is_ignored_then_cut_off_before_the_next_append(tmp_path):
    with JournalWriter(tmp_path, rank=0) as journal:
        journal.append(FileRecord("a.png", rows=[{"filename": "a.png", "status": "ok"}]))
    path = tmp_path / "journal" / "rows-rank0.jsonl"
    with open(path, "ab") as f:
        f.write(b'{"file":"b.png","rows":[{"filen')  # a kill in the middle of a write
    index = JournalIndex(tmp_path)
    assert "a.png" in index and "b.png" not in index and len(index) == 1
    with JournalWriter(tmp_path, rank=0) as journal:
        journal.append(FileRecord("c.png", rows=[{"filename": "c.png", "status": "ok"}], warnings=["w"]))
    assert [json.loads(line)["file"] for line in path.read_text().splitlines()] == ["a.png", "c.png"]
    assert JournalIndex(tmp_path).record("c.png") == {
        "file": "c.png", "rows": [{"filename": "c.png", "status": "ok"}], "warnings": ["w"], "burned_in": False,
        "read": True}


def test_a_process_that_cannot_see_out_as_process_0_wrote_it_is_told_why(tmp_path):
    (tmp_path / "journal").mkdir()
    (tmp_path / "journal" / "fingerprint.json").write_text(json.dumps({"run_id": "abc"}))
    assert check_run_id(tmp_path, "abc", rank=1) is None
    message = check_run_id(tmp_path, "def", rank=1)
    assert "process 1" in message and "shared file system" in message


def test_dicom_srs_cover_the_files_of_earlier_runs_too(folder, tmp_path, tiny_checkpoint, measured_sizes):
    pytest.importorskip("highdicom")
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert _predict(folder, full, tiny_checkpoint, "--dicom-sr") == 0
    assert _predict(folder, cut, tiny_checkpoint, "--dicom-sr") == 0
    srs = sorted(p.name for p in (full / "sr").iterdir())
    assert srs == [f"s2_cine_frame{i}_sr.dcm" for i in (1, 2, 3)]
    journal = cut / "journal" / "rows-rank0.jsonl"
    journal.write_bytes(b"".join(journal.read_bytes().splitlines(keepends=True)[:4]))  # up to the cine
    for p in (cut / "sr").iterdir():
        p.unlink()
    measured_sizes.clear()
    assert _predict(folder, cut, tiny_checkpoint, "--dicom-sr", "--resume") == 0
    assert (240, 320) not in measured_sizes  # the cine came from the journal ...
    assert sorted(p.name for p in (cut / "sr").iterdir()) == srs  # ... and still has its SRs
