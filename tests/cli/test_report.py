"""``hcmeasure report``: one self-contained HTML page, doubtful rows first, growth charts
for the scans with a known GA, rendered in headless Chromium (skipped, saying why, when
Chromium is not installed)."""
import base64
import csv
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
from hcmeasure.measurement.growth import known_ga
from hcmeasure.report import doubts
from hcmeasure.report_chart import POINT_COLOUR, growth_charts

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


def _head(hc_mm: float, ps: float = 0.2) -> Ellipse:
    """A circle-ish head (b = 0.8 a) whose HC is ``hc_mm`` at pixel size ``ps``."""
    a = hc_mm / ps / (2 * 3.14159265 * 0.9)
    return Ellipse(300.0, 200.0, a, 0.8 * a, 0.3)


@pytest.fixture
def growth_run(tmp_path):
    """One pregnancy (P1) scanned three times, one scan without a group, one bad GA, one scan without GA."""
    out = tmp_path / "growth"
    (out / "overlays").mkdir(parents=True)
    rows = [
        measurement_row("p1_late.png", _head(300.0), 0.2, score=0.9, fit_iou=0.95, known_ga=known_ga("32+1", "ga_csv"),
                        pregnancy="P1"),
        measurement_row("p1_early.png", _head(175.0), 0.2, score=0.9, fit_iou=0.95,
                        known_ga=known_ga("20+0", "ga_csv"), pregnancy="P1"),
        measurement_row("p1_mid.png", _head(235.0), 0.2, score=0.9, fit_iou=0.95, known_ga=known_ga("26+3", "ga_csv"),
                        pregnancy="P1"),
        measurement_row("small.png", _head(280.0), 0.2, score=0.9, fit_iou=0.95, known_ga=known_ga("36+0", "ga_arg")),
        measurement_row("bad_ga.png", _head(200.0), 0.2, score=0.9, fit_iou=0.95, known_ga=known_ga("2O", "ga_csv")),
        measurement_row("no_ga.png", _head(200.0), 0.2, score=0.9, fit_iou=0.95),
    ]
    write_csv_atomic(out / "measurements.csv", MEASUREMENT_COLUMNS, rows)
    return out


def test_growth_charts_group_the_scans_of_one_pregnancy(growth_run):
    rows = [dict(r) for r in csv.DictReader(open(growth_run / "measurements.csv", newline=""))]
    charts = growth_charts(rows)
    assert [c.title for c in charts] == ["pregnancy P1: 3 scan(s)", "scans without a group"]
    assert [p.filename for p in charts[0].points] == ["p1_early.png", "p1_mid.png", "p1_late.png"]  # GA order
    assert charts[0].joined and not charts[1].joined
    assert [p.ga_text for p in charts[1].points] == ["36+0"]
    # Grouping by an identifier column numbers the charts instead of naming them.
    for r in rows:
        r["patient_id"] = "PAT-0042" if r["pregnancy"] else ""
    assert growth_charts(rows, "patient_id")[0].title == "patient id 1: 3 scan(s)"


def test_report_shows_biometry_centiles_and_one_chart_per_pregnancy(growth_run, tmp_path):
    assert main(["report", str(growth_run)]) == 0
    page = (growth_run / "report.html").read_text()
    section = page.split('<section id="growth">')[1].split("</section>")[0]
    charts = re.findall(r'<img class="chart" alt="([^"]+)" src="data:image/png;base64,([^"]+)"', section)
    assert [alt for alt, _ in charts] == ["growth chart, pregnancy P1: 3 scan(s)",
                                          "growth chart, scans without a group"]
    assert "1: p1_early.png at 20+0" in section and "3: p1_late.png at 32+1" in section
    # Each chart is a real PNG with the scans' points painted in their colour.
    want = np.array([int(POINT_COLOUR[i:i + 2], 16) for i in (5, 3, 1)])  # BGR
    for _, data in charts:
        img = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (400, 640, 3)
        assert (np.abs(img.astype(int) - want).sum(axis=2) < 30).sum() > 40
    # The table: BPD / OFD, CI, known GA and the centile with its z-score; a bad GA is noted.
    body = page.split("<tbody>")[1]
    late = next(r for r in body.split("<tr") if "p1_late.png" in r)
    assert re.search(r"\d+\.\d / \d+\.\d", late) and ">32+1<" in late and re.search(r"z [+-]\d\.\d\d", late)
    assert "known GA not weeks+days: no centile" in body
    assert "with an HC centile for a known GA" in page
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", page) and "url(" not in page


def test_report_group_by_another_column(growth_run):
    # A column no row fills: no pregnancy groups, one chart of the four scans with a usable GA.
    assert main(["report", str(growth_run), "--group-by", "ga_formula"]) == 0
    page = (growth_run / "report.html").read_text()
    assert re.findall(r'<img class="chart" alt="([^"]+)"', page) == ["growth chart, 4 scan(s)"]


def test_report_without_known_ga_has_no_charts(run_dir):
    assert main(["report", str(run_dir)]) == 0
    assert 'id="growth"' not in (run_dir / "report.html").read_text()


def test_growth_charts_render_in_headless_chromium(growth_run, tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium, or 'make browser-deps' as root); "
                    "set HCMEASURE_CHROMIUM to another Chromium-based browser")
    assert main(["report", str(growth_run)]) == 0
    page = (growth_run / "report.html").resolve()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
             "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "growth.png"
    res = subprocess.run([chromium, *flags, "--window-size=1400,1000", f"--screenshot={shot}", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (1000, 1400)
    # The browser decoded and painted both charts: their points' red appears, side by side.
    want = np.array([int(POINT_COLOUR[i:i + 2], 16) for i in (5, 3, 1)])
    red = np.abs(img.astype(int) - want).sum(axis=2) < 40
    ys, xs = np.nonzero(red)
    assert red.sum() > 80
    assert xs.min() < 700 < xs.max()  # points on the left chart and on the right one
