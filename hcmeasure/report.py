"""One self-contained HTML report per run of ``hcmeasure predict``.

:func:`write_report` reads ``OUT/measurements.csv`` and the overlays in
``OUT/overlays`` and writes ``OUT/report.html``: one table row per image (or DICOM
frame) with a thumbnail of its overlay, HC, GA, BPD / OFD and the cephalic index, the
known GA and the HC centile for it, detection score, ellipse-fit IoU, pixel-size
source and status. Above the table, growth charts (:mod:`hcmeasure.report_chart`)
put every scan with a known GA on the INTERGROWTH-21st HC centiles, one chart per
pregnancy (the ``pregnancy`` column, or another given as ``group_column``). Rows
that need a look come first and are flagged:

* review: status ``review`` (measured, but the trust rules ask for a human look; the
  reasons come from ``review_reason``), listed before all others;
* failed: status other than ``ok`` (unreadable, no head, no pixel size, ...);
* low score: detection score below :data:`LOW_SCORE`;
* poor fit: IoU between the mask and its ellipse below :data:`POOR_FIT_IOU`;
* HC out of range: HC outside :data:`PHYSIOLOGICAL_HC_MM` (no fetal head measured
  on a second- or third-trimester scan is that small or that large);
* calibration conflict: a ``--pixel-size``/CSV override that disagrees with the
  DICOM file's own calibration.

An HC centile outside the 3rd-97th or a cephalic index outside its range is shown in
its cell and notes but not flagged: those describe the fetus, not a doubt about the
measurement.

The page needs nothing from outside: CSS and the sorting script are inline,
thumbnails and growth charts are ``data:`` URIs, fonts are the browser's own. Patient identifiers
are never shown (even when ``measurements.csv`` holds them).
"""
from __future__ import annotations

import base64
import html
import math
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from .io.overlays import overlay_filename, shared_overlay_stems
from .io.tables import TableError, atomic_write_bytes, read_measurements_csv
from .measurement.head import MEASURED_STATUSES
from .measurement.biometry import CEPHALIC_INDEX_RANGE

__all__ = ["LOW_SCORE", "POOR_FIT_IOU", "PHYSIOLOGICAL_HC_MM", "doubts", "write_report", "ReportError"]

#: Detection scores below this are flagged.
LOW_SCORE = 0.5
#: Mask/ellipse IoU below this is flagged as a poor ellipse fit.
POOR_FIT_IOU = 0.85
#: HC (mm) outside this range is flagged (about 11 weeks to well past term).
PHYSIOLOGICAL_HC_MM = (50.0, 400.0)
#: Thumbnail width in pixels.
THUMB_WIDTH = 240


class ReportError(ValueError):
    """The run folder cannot be reported on; the message names the file and the fix."""


def _num(text: str | None) -> float | None:
    try:
        v = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def doubts(row: dict[str, str]) -> list[str]:
    """Why a measurements row needs a look (empty when it does not)."""
    out = []
    status = row.get("status", "")
    if status == "review":
        reasons = (row.get("review_reason") or "").replace(";", ", ").replace("_", " ")
        out.append(f"review: {reasons or 'flagged'}")
    elif status != "ok":
        out.append(f"failed: {status or 'no status'}")
    score = _num(row.get("score"))
    if score is not None and score < LOW_SCORE:
        out.append(f"low score {score:.2f}")
    iou = _num(row.get("fit_iou"))
    if iou is not None and iou < POOR_FIT_IOU:
        out.append(f"poor ellipse fit (IoU {iou:.2f})")
    if "disagrees" in row.get("pixel_size_source", ""):
        out.append("pixel-size override disagrees with the DICOM calibration")
    hc = _num(row.get("hc_mm"))
    lo, hi = PHYSIOLOGICAL_HC_MM
    if hc is not None and not lo <= hc <= hi:
        out.append(f"HC {hc:.1f} mm out of physiological range {lo:.0f}-{hi:.0f} mm")
    return out


def _centile(value: float, digits: int) -> str:
    """A centile as text; values that round to 0 or 100 are shown as below / above the last step."""
    step = 10.0 ** -digits
    if value < step / 2:
        return f"&lt;{step:.{digits}f}"
    if value > 100 - step / 2:
        return f"&gt;{100 - step:.{digits}f}"
    return f"{value:.{digits}f}"


def _thumbnail(path: Path) -> str | None:
    if not path.is_file():
        return None
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        return None
    h, w = img.shape[:2]
    if w > THUMB_WIDTH:
        img = cv2.resize(img, (THUMB_WIDTH, max(1, round(h * THUMB_WIDTH / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.4em;margin:0 0 .3em}
.summary{margin:.2em 0 1em;color:#444}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:middle;font-size:.92em}
th{background:#eef;cursor:pointer;user-select:none;position:sticky;top:0}
th.sorted-asc::after{content:" \\25B2"} th.sorted-desc::after{content:" \\25BC"}
tr.doubtful{background:#fff1e6} tr.doubtful td.flag{color:#b00;font-weight:bold}
td.num{text-align:right;font-variant-numeric:tabular-nums}
img.thumb{display:block;max-width:240px;height:auto}
.note{color:#555;font-size:.85em}
.review{color:#fff;background:#b00;border-radius:3px;padding:0 4px;font-size:.8em}
h2{font-size:1.15em;margin:1em 0 .4em}
figure.chart{display:inline-block;margin:0 1em 1em 0;vertical-align:top;max-width:660px}
figure.chart img{display:block;width:640px;max-width:100%;height:auto;border:1px solid #ddd}
figure.chart figcaption{font-size:.85em;color:#333;margin-top:.3em}
td.centile-flag{color:#b00;font-weight:bold}
"""

_JS = r"""
(function(){
  var table=document.getElementById('measurements');
  var heads=table.tHead.rows[0].cells;
  function key(cell,numeric){var v=cell.getAttribute('data-sort');
    if(numeric){var f=parseFloat(v);return isNaN(f)?null:f;} return (v||'').toLowerCase();}
  for(var i=0;i<heads.length;i++){(function(col){
    heads[col].addEventListener('click',function(){
      var th=heads[col],asc=!th.classList.contains('sorted-asc');
      for(var j=0;j<heads.length;j++){heads[j].classList.remove('sorted-asc','sorted-desc');}
      th.classList.add(asc?'sorted-asc':'sorted-desc');
      var numeric=th.getAttribute('data-type')==='num';
      var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(a,b){var x=key(a.cells[col],numeric),y=key(b.cells[col],numeric);
        if(x===null||y===null){return (x===null)-(y===null);}  // empty cells last, either way
        return (x<y?-1:x>y?1:0)*(asc?1:-1);});
      rows.forEach(function(r){body.appendChild(r);});
    });})(i);}
  // report.html#sort=N or #sort=N-desc opens the page sorted by column N (from 0).
  var m=/^#sort=(\d+)(-desc)?$/.exec(window.location.hash);
  if(m&&heads[+m[1]]){heads[+m[1]].click();if(m[2]){heads[+m[1]].click();}}
})();
"""

_COLUMNS = [  # header, data-type
    ("Flag", "text"), ("Overlay", "text"), ("File", "text"), ("HC (mm)", "num"), ("GA (weeks+days)", "num"),
    ("BPD / OFD (mm)", "num"), ("CI", "num"), ("Known GA", "num"), ("HC centile", "num"),
    ("Score", "num"), ("Fit IoU", "num"), ("Pixel size (mm)", "num"), ("Pixel size source", "text"),
    ("Status", "text"), ("Notes", "text"),
]


def _cell(text: str, sort: str | float | None = None, cls: str = "") -> str:
    sort_attr = "" if sort is None else f' data-sort="{html.escape(str(sort), quote=True)}"'
    cls_attr = f' class="{cls}"' if cls else ""
    return f"<td{cls_attr}{sort_attr}>{text}</td>"


def _row_html(row: dict[str, str], overlays: Path, index: int, shared_stems: frozenset[str] = frozenset()) -> str:
    e = html.escape
    why = doubts(row)
    thumb = _thumbnail(overlays / overlay_filename(row["filename"], shared_stems))
    img = f'<img class="thumb" alt="overlay of {e(row["filename"])}" src="{thumb}">' if thumb else \
        '<span class="note">no overlay</span>'
    hc = _num(row.get("hc_mm"))
    hc_px = _num(row.get("hc_px"))
    hc_text = f"{hc:.1f}" if hc is not None else (f'<span class="note">{hc_px:.1f} px</span>' if hc_px else "")
    lo, hi = _num(row.get("hc_low_mm")), _num(row.get("hc_high_mm"))
    if hc is not None and lo is not None and hi is not None:
        hc_text += f' <span class="note">({lo:.1f}-{hi:.1f})</span>'
    if row.get("status") == "review":
        hc_text += ' <span class="review">review</span>'

    ga_text, ga_sort = "", None
    if row.get("ga_weeks"):
        ga_text = f"{e(row['ga_weeks'])}+{e(row.get('ga_days', '0'))}"
        pm = _num(row.get("ga_uncertainty_days"))
        if pm is not None:
            ga_text += f' <span class="note">&plusmn;{pm:.0f}&nbsp;d</span>'
        ga_sort = int(row["ga_weeks"]) * 7 + int(row.get("ga_days") or 0)
    notes = list(why[1:] if why and why[0].startswith("failed") else why)
    if row.get("ga_status", "").startswith("hc_"):
        notes.append(f"no GA: HC {row['ga_status'].replace('hc_', '').replace('_', ' ')} of the "
                     f"{row.get('ga_formula', '')} formula")
    if row.get("ci_flag") in ("dolichocephaly", "brachycephaly"):
        lo, hi = CEPHALIC_INDEX_RANGE
        notes.append(f"cephalic index {row.get('cephalic_index')}: {row['ci_flag']} (outside {lo:.0f}-{hi:.0f})")
    if row.get("known_ga_status") == "invalid_ga":
        notes.append("known GA not weeks+days: no centile")
    elif row.get("known_ga_status") == "ga_out_of_range":
        notes.append(f"known GA {row.get('known_ga')} outside the standard's 14+0-40+0 weeks: no centile")
    bpd, ofd, ci = _num(row.get("bpd_mm")), _num(row.get("ofd_mm")), _num(row.get("cephalic_index"))
    known_sort = None
    kw, _, kd = row.get("known_ga", "").partition("+")
    if row.get("known_ga_status") in ("ok", "ga_out_of_range") and kw.isdigit():
        known_sort = int(kw) * 7 + (int(kd) if kd.isdigit() else 0)
    centile, z = _num(row.get("hc_centile")), _num(row.get("hc_zscore"))
    centile_text = ""
    if centile is not None:
        centile_text = _centile(centile, 1) + (f' <span class="note">z {z:+.2f}</span>' if z is not None else "")
        if row.get("hc_centile_flag") in ("below_3rd", "above_97th"):
            centile_text += f"<br>{e(row['hc_centile_flag'].replace('_', ' '))}"
    score, iou = _num(row.get("score")), _num(row.get("fit_iou"))
    dx, dy = _num(row.get("pixel_size_mm")), _num(row.get("pixel_size_y_mm"))
    size = "" if dx is None else (f"{dx:.4g}" if dy is None or abs(dx - dy) < 1e-12 else f"{dx:.4g} x {dy:.4g}")
    cells = [
        _cell("&#9888; check" if why else "", 0 if why else 1, "flag"),
        _cell(img, index),
        _cell(e(row["filename"]), row["filename"], "file"),
        _cell(hc_text, hc if hc is not None else "", "num"),
        _cell(ga_text, ga_sort if ga_sort is not None else "", "num"),
        _cell("" if bpd is None or ofd is None else f"{bpd:.1f} / {ofd:.1f}", "" if bpd is None else bpd, "num"),
        _cell("" if ci is None else f"{ci:.1f}", "" if ci is None else ci, "num"),
        _cell(e(row.get("known_ga", "")) if known_sort is not None else "", "" if known_sort is None else known_sort,
              "num"),
        _cell(centile_text, "" if centile is None else centile,
              "num centile-flag" if row.get("hc_centile_flag") in ("below_3rd", "above_97th") else "num"),
        _cell("" if score is None else f"{score:.3f}", "" if score is None else score, "num"),
        _cell("" if iou is None else f"{iou:.3f}", "" if iou is None else iou, "num"),
        _cell(size, "" if dx is None else dx, "num"),
        _cell(e(row.get("pixel_size_source", "")), row.get("pixel_size_source", "")),
        _cell(e(row.get("status", "")), row.get("status", "")),
        _cell(e("; ".join(notes)), "; ".join(notes)),
    ]
    cls = ' class="doubtful"' if why else ""
    return f"<tr{cls}>" + "".join(cells) + "</tr>"


def _charts_html(rows, group_column: str) -> str:
    """The growth-chart section (empty when no row has a usable known GA)."""
    from .report_chart import chart_data_uri, growth_charts

    charts = growth_charts(rows, group_column)
    if not charts:
        return ""
    e = html.escape
    figures = []
    for chart in charts:
        items = "; ".join(
            f"{i}: {e(p.filename)} at {e(p.ga_text)}, HC {p.hc_mm:.1f} mm"
            + (f", centile {_centile(p.centile, 0)}" if p.centile is not None else "")
            for i, p in enumerate(chart.points, start=1))
        figures.append(f'<figure class="chart"><img class="chart" alt="growth chart, {e(chart.title)}" '
                       f'src="{chart_data_uri(chart)}"><figcaption>{e(chart.title)}. {items}</figcaption></figure>')
    return ('<section id="growth"><h2>Growth charts: HC for the known gestational age</h2>\n'
            '<p class="note">INTERGROWTH-21st fetal growth standard (Papageorghiou et al., Lancet 2014): 3rd, 50th '
            'and 97th centiles, 14 to 40 weeks; the shaded band lies between the 3rd and 97th. Scans of one pregnancy '
            'are joined in order of gestational age.</p>\n' + "\n".join(figures) + "</section>")


def write_report(run_dir, target=None, group_column: str = "pregnancy") -> Path:
    """Write ``report.html`` for a ``hcmeasure predict`` output folder; returns its path.

    ``group_column``: the ``measurements.csv`` column whose equal values put scans on one
    growth chart (one pregnancy); identifier columns give numbered, unnamed charts."""
    run_dir = Path(run_dir)
    csv_path = run_dir / "measurements.csv"
    if not csv_path.is_file():
        raise ReportError(f"{csv_path}: not found; point at an output folder of 'hcmeasure predict'.")
    try:
        rows = read_measurements_csv(csv_path)
    except TableError as exc:
        raise ReportError(str(exc)) from exc
    target = Path(target) if target is not None else run_dir / "report.html"
    review = [r for r in rows if r.get("status") == "review"]
    flagged = [r for r in rows if r.get("status") != "review" and doubts(r)]
    fine = [r for r in rows if r.get("status") != "review" and not doubts(r)]
    ordered = review + flagged + fine
    flagged = review + flagged
    formulas = sorted({r.get("ga_formula", "") for r in rows if r.get("ga_formula")})
    hcs = np.array([v for v in (_num(r.get("hc_mm")) for r in rows) if v is not None])
    e = html.escape
    centiles = [r for r in rows if r.get("hc_centile")]
    outside = sum(1 for r in centiles if r.get("hc_centile_flag") in ("below_3rd", "above_97th"))
    summary = (f"{len(rows)} image(s); {len(flagged)} flagged (listed first), {len(review)} of them with "
               f"status review; {sum(1 for r in rows if r.get('status') in MEASURED_STATUSES)} measured in mm"
               + (f", HC {hcs.min():.1f}-{hcs.max():.1f} mm" if hcs.size else "")
               + (f"; GA formula: {e(', '.join(formulas))}" if formulas else "")
               + (f"; {len(centiles)} with an HC centile for a known GA, {outside} outside the 3rd-97th"
                  if centiles else ""))
    charts = _charts_html(rows, group_column)
    head = "".join(f'<th data-type="{t}">{e(h)}</th>' for h, t in _COLUMNS)
    shared = shared_overlay_stems(r["filename"] for r in rows)
    body = "\n".join(_row_html(r, run_dir / "overlays", i, shared) for i, r in enumerate(ordered))
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hcmeasure report: {e(run_dir.name)}</title>
<style>{_CSS}</style></head>
<body>
<h1>Head circumference report</h1>
<p class="summary" id="summary">{summary}</p>
<p class="note">Generated {stamp} from {e(csv_path.name)}. Flagged: failed measurements, detection score
below {LOW_SCORE}, ellipse-fit IoU below {POOR_FIT_IOU}, HC outside {PHYSIOLOGICAL_HC_MM[0]:.0f}-{PHYSIOLOGICAL_HC_MM[1]:.0f} mm.
BPD and OFD are the head ellipse's minor and major axes, outer-to-outer at the ellipse; CI = 100 BPD / OFD.
Click a column header to sort. For research use; every value needs a clinician's review.</p>
{charts}
<table id="measurements"><thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody></table>
<script>{_JS}</script>
</body></html>
"""
    atomic_write_bytes(target, page.encode("utf-8"))
    return target
