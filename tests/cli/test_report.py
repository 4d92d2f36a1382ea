"""``hcmeasure report``: one self-contained HTML page, doubtful rows first, rendered in
headless Chromium (skipped, saying why, when Chromium is not installed)."""
import os
import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from hcmeasure.cli.main import main
from hcmeasure.io.tables import MEASUREMENT_COLUMNS, measurement_row, write_csv_atomic
from hcmeasure.measurement.ellipse import Ellipse
from hcmeasure.measurement.gestational_age import estimate_ga
from hcmeasure.report import doubts

GOOD = Ellipse(300.0, 200.0, 150.0, 110.0, 0.2)


def _chromium() -> str | None:
    for name in (os.environ.get("HCMEASURE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture
def run_dir(tmp_path):
    """A predict output folder: 5 rows (2 fine, 3 doubtful, 1 failed) with overlays."""
    out = tmp_path / "run"
    (out / "overlays").mkdir(parents=True)
    rows = [
        measurement_row("b_fine.png", GOOD, 0.2, score=0.99, fit_iou=0.97, pixel_size_source="pixel_size_csv",
                        ga=estimate_ga(212.0)),
        measurement_row("a_fine.dcm", GOOD, 0.25, score=0.95, fit_iou=0.96, pixel_size_y_mm=0.25,
                        pixel_size_source="dicom_us_region", ga=estimate_ga(260.0)),
        measurement_row("c_low_score.png", GOOD, 0.2, score=0.31, fit_iou=0.96),
        measurement_row("d_poor_fit.dcm#2", GOOD, 0.2, score=0.9, fit_iou=0.6),
        measurement_row("e_huge.png", GOOD, 1.0, score=0.9, fit_iou=0.95),  # HC 830 mm
        measurement_row("f_broken.dcm", None, None, status="unreadable_image"),
    ]
    write_csv_atomic(out / "measurements.csv", MEASUREMENT_COLUMNS, rows)
    rng = np.random.default_rng(0)
    for name in ("b_fine.png", "a_fine.png", "c_low_score.png", "d_poor_fit_frame2.png", "e_huge.png"):
        img = rng.integers(0, 255, size=(400, 600, 3), dtype=np.uint8)
        cv2.imwrite(str(out / "overlays" / name), img)
    return out


def test_doubts():
    assert doubts({"status": "ok", "score": "0.9", "fit_iou": "0.95", "hc_mm": "200"}) == []
    assert doubts({"status": "no_head_detected"}) == ["failed: no_head_detected"]
    assert len(doubts({"status": "ok", "score": "0.2", "fit_iou": "0.5", "hc_mm": "20"})) == 3
    assert doubts({"status": "ok", "pixel_size_source": "pixel_size_arg (disagrees with dicom_us_region 0.1x0.1 mm)"})


def test_report_is_self_contained_with_doubtful_rows_first(run_dir, capsys):
    assert main(["report", str(run_dir)]) == 0
    assert "report.html" in capsys.readouterr().out
    page = (run_dir / "report.html").read_text()
    body = page.split("<tbody>")[1].split("</tbody>")[0]
    names = re.findall(r"<td class=\"file\" data-sort=\"([^\"]+)\">", body)
    assert names[:4] == ["c_low_score.png", "d_poor_fit.dcm#2", "e_huge.png", "f_broken.dcm"]
    assert sorted(names[4:]) == ["a_fine.dcm", "b_fine.png"]
    assert body.count("<tr") == 6 and body.count('class="doubtful"') == 4
    assert body.count('src="data:image/jpeg;base64,') == 5  # f_broken has no overlay
    assert "low score 0.31" in body and "poor ellipse fit (IoU 0.60)" in body and "out of physiological range" in body
    assert "no GA: HC above range of the intergrowth formula" in body
    # GA with its ~95 % interval: HC 212 mm -> 164.0 days = 23+3, +-(7 + 7 * (164.0 - 98) / 84) = +-12.5 days.
    assert "23+3 <span class=\"note\">&plusmn;12&nbsp;d</span>" in body
    # Nothing is fetched from elsewhere: no external scripts, styles, fonts or images.
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", page)
    assert "@import" not in page and "url(" not in page and "<link" not in page


def test_report_on_a_folder_without_measurements_is_an_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "measurements.csv" in capsys.readouterr().err


def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium, or 'make browser-deps' as root); "
                    "set HCMEASURE_CHROMIUM to another Chromium-based browser")
    assert main(["report", str(run_dir)]) == 0
    page = (run_dir / "report.html").resolve()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
             "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert html.count("<tr") == 1 + 6  # header row + one per image
    assert 'id="summary"' in html and "6 image(s); 4 flagged" in html
    # The inline script sorts: open the page sorted by HC (column 3), descending.
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri() + "#sort=3-desc"], capture_output=True,
                         text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    order = re.findall(r'<td class="file" data-sort="([^"]+)">', dom.stdout)
    assert order[:2] == ["e_huge.png", "a_fine.dcm"] and order[-1] == "f_broken.dcm"
    assert 'class="sorted-desc"' in dom.stdout
    shot = tmp_path / "report.png"
    res = subprocess.run([chromium, *flags, "--window-size=1400,1000", f"--screenshot={shot}", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (1000, 1400)
    assert float(img.std()) > 10  # not a blank page: text, table lines and thumbnails were painted
