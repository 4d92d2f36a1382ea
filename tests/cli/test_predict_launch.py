"""``hcmeasure predict`` as a user runs it (a subprocess, the shipped default model, real
HC18 scans with broken files mixed in): two processes write the tables of one process
byte for byte, and a run killed with SIGKILL part-way resumes to them.

Every run here uses one torch thread per process (HCMEASURE_NUM_THREADS=1): the CPU
kernels add up in an order that depends on the thread count, which can move the last
printed digit of a coordinate between a 1-thread and a 2-thread process."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

N_SCANS = 6
TABLES = ("measurements.csv", "submission.csv")


def _env() -> dict:
    return dict(os.environ, HCMEASURE_NUM_THREADS="1", OMP_NUM_THREADS="1")


def _cmd(folder: Path, out: Path, *extra) -> list[str]:
    return ["nice", "-n", "19", sys.executable, "-m", "hcmeasure.cli.main", "predict", str(folder),
            "--out", str(out), "--pixel-size-csv", str(folder.parent / "sizes.csv"), *map(str, extra)]


def _predict(folder: Path, out: Path, *extra) -> subprocess.CompletedProcess:
    proc = subprocess.run(_cmd(folder, out, *extra), env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def scans(hc18_root, tmp_path_factory):
    """A folder of real HC18 test scans, a truncated scan, a text file named .png and a
    non-image file; plus the pixel-size CSV beside it."""
    root = tmp_path_factory.mktemp("launch")
    folder = root / "scans"
    folder.mkdir()
    with open(hc18_root / "test_set_pixel_size.csv", newline="") as f:
        rows = list(csv.reader(f))
    for name, _ in rows[1:N_SCANS + 1]:
        (folder / name).symlink_to(hc18_root / "test_set" / name)
    broken = rows[N_SCANS + 1][0]
    (folder / broken).write_bytes((hc18_root / "test_set" / broken).read_bytes()[:3000])
    (folder / "000_notes.png").write_text("not an image")
    (folder / "readme.txt").write_text("not an image either")
    with open(root / "sizes.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows[: N_SCANS + 2])
    return folder


@pytest.fixture(scope="module")
def one_process(scans, tmp_path_factory):
    """The tables and overlays of an uninterrupted 1-process run."""
    out = tmp_path_factory.mktemp("one") / "out"
    _predict(scans, out)
    rows = list(csv.DictReader(open(out / "measurements.csv")))
    # every real scan is measured (a measurement may be flagged for review)
    assert sum(r["status"] in ("ok", "review") for r in rows) == N_SCANS
    assert [r["status"] for r in rows].count("unreadable_image") == 2
    return out


@pytest.mark.slow
@pytest.mark.shared
def test_two_processes_write_the_tables_of_one_process_byte_for_byte(scans, one_process, tmp_path):
    out = tmp_path / "out"
    proc = _predict(scans, out, "--num-processes", 2)
    for name in TABLES:
        assert (out / name).read_bytes() == (one_process / name).read_bytes(), name
    # Each process measured its own share (every second file) into its own journal.
    shares = [len((out / "journal" / f"rows-rank{r}.jsonl").read_text().splitlines()) for r in (0, 1)]
    assert shares == [4, 4]
    assert sorted(p.name for p in (out / "overlays").iterdir()) == sorted(
        p.name for p in (one_process / "overlays").iterdir())
    # The messages are those of one run: the broken files and the skipped one, once each.
    assert proc.stderr.count("000_notes.png: not an image file") == 1
    assert proc.stderr.count("skipped 1 non-image file(s): readme.txt") == 1


@pytest.mark.slow
@pytest.mark.shared
def test_a_run_killed_part_way_resumes_to_the_tables_of_an_uninterrupted_run(scans, one_process, tmp_path):
    out = tmp_path / "out"
    journal = out / "journal" / "rows-rank0.jsonl"
    proc = subprocess.Popen(_cmd(scans, out), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (journal.is_file() and journal.read_bytes().count(b"\n") >= 3):
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it was killed"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    journaled = journal.read_bytes().count(b"\n")
    assert 3 <= journaled < N_SCANS + 2  # killed part-way
    # Nothing half-written under a final name: no tables yet, every overlay a whole PNG.
    assert not any((out / name).exists() for name in TABLES)
    for png in (out / "overlays").glob("*.png"):
        with Image.open(png) as im:
            im.load()
    resumed = _predict(scans, out, "--resume")
    assert f"took {journaled} from the journal of an earlier run" in resumed.stdout
    for name in TABLES:
        assert (out / name).read_bytes() == (one_process / name).read_bytes(), name
    assert sorted(p.name for p in (out / "overlays").iterdir()) == sorted(
        p.name for p in (one_process / "overlays").iterdir())


@pytest.mark.slow
@pytest.mark.shared
def test_a_problem_in_a_2_process_run_stops_both_with_one_message(scans, tmp_path):
    missing = tmp_path / "missing.pth"
    proc = subprocess.run(_cmd(scans, tmp_path / "out", "--num-processes", 2, "--model", missing), env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2
    assert proc.stderr.count(f"hcmeasure predict: error: {missing}: checkpoint not found") == 1
    assert not (tmp_path / "out" / "measurements.csv").exists()


@pytest.mark.parametrize("args, message", [
    (["--num-processes", "0"], "--num-processes 0: must be at least 1"),
    (["--num-machines", "2"], "--num-machines > 1 needs --dist-url tcp://HOST:PORT"),
    (["--num-machines", "2", "--machine-rank", "2", "--dist-url", "tcp://10.0.0.1:29500"], "--machine-rank 2"),
])
def test_impossible_process_layouts_are_refused_before_anything_starts(tmp_path, args, message, capsys):
    from hcmeasure.cli.main import main

    (tmp_path / "a.png").write_bytes(b"")
    assert main(["predict", str(tmp_path), "--out", str(tmp_path / "out"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
