"""A normal ``hcmeasure predict`` prints only hcmeasure's own lines; ``--verbose`` also
shows the known warnings of other packages. The command runs in a fresh process, as a
user runs it (the console script's ``main()``), with the default model on a sample scan."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "hc18"
MODEL = REPO / "hcmeasure" / "model_zoo" / "hc18_default" / "model_final.pth"
#: lines hcmeasure itself writes to stderr
OWN_LINE = re.compile(r"^(warning|note): |^hcmeasure \S+: ")


def _hcmeasure(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HCMEASURE_NUM_THREADS="1")
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run([sys.executable, "-c", "import sys; from hcmeasure.cli.main import main; sys.exit(main())",
                           *map(str, args)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    if not MODEL.is_file():
        pytest.skip(f"{MODEL}: the default model is not in this checkout")
    d = tmp_path_factory.mktemp("sample")
    (d / "000_HC.png").symlink_to(SAMPLES / "000_HC.png")
    return d


def test_predict_prints_no_warnings_of_other_packages(sample, tmp_path):
    run = _hcmeasure("predict", sample, "--pixel-size-csv", SAMPLES / "pixel_size.csv", "--out", tmp_path / "out")
    assert run.returncode == 0, run.stderr
    foreign = [line for line in run.stderr.splitlines() if line.strip() and not OWN_LINE.match(line)]
    assert not foreign, "stderr lines not written by hcmeasure:\n" + run.stderr
    assert re.match(r"measured 1 image\(s\) in .*: 1 ok -> ", run.stdout), run.stdout
    assert (tmp_path / "out" / "measurements.csv").is_file()


def test_verbose_shows_them(sample, tmp_path):
    run = _hcmeasure("predict", sample, "--pixel-size-csv", SAMPLES / "pixel_size.csv", "--out", tmp_path / "out",
                     "--no-overlays", "--verbose")
    assert run.returncode == 0, run.stderr
    # Held back while hcmeasure imported Detectron2, and raised by Detectron2 while measuring.
    assert "`torch.jit.script` is deprecated" in run.stderr
    assert "torch.meshgrid" in run.stderr
    assert "measured 1 image(s)" in run.stdout
