"""Overlay PNGs: names, captions, drawing."""
import io

import numpy as np
from PIL import Image

from hcmeasure.io.overlays import draw_overlay, overlay_caption, overlay_filename, shared_overlay_stems
from hcmeasure.io.tables import measurement_row
from hcmeasure.measurement.ellipse import Ellipse
from hcmeasure.measurement.head import HeadMeasurement


def test_overlay_names_keep_files_that_share_a_stem_apart():
    assert overlay_filename("a.png") == "a.png"
    assert overlay_filename("b.dcm") == "b.png"
    assert overlay_filename("c.dcm#3") == "c_frame3.png"
    shared = shared_overlay_stems(["a.png", "a.dcm", "a.dcm#2", "c.dcm#1", "c.dcm#2"])
    assert shared == frozenset({"a"})  # the frames of one file count once
    assert overlay_filename("a.png", shared) == "a.png"
    assert overlay_filename("a.dcm", shared) == "a_dcm.png"
    assert overlay_filename("a.dcm#2", shared) == "a_dcm_frame2.png"


def test_the_caption_shows_the_rows_values():
    row = measurement_row("a.png", Ellipse(400.0, 270.0, 150.0, 120.0, 0.0), 0.2, status="review",
                          hc_interval_mm=(168.0, 172.5), review_reasons=("weak_skull_echo", "poor_ellipse_fit"))
    lines = overlay_caption(row).split("\n")
    assert lines[0] == f"HC {float(row['hc_mm']):.1f} mm (168.0-172.5)"
    assert lines[1].startswith("BPD 48.0  OFD 60.0 mm  CI 80.0")
    assert lines[2] == "REVIEW: weak_skull_echo, poor_ellipse_fit"
    assert overlay_caption(measurement_row("b.png", None, None, status="no_head_detected")) == "no_head_detected"


def test_an_overlay_is_a_palette_png_of_the_scan():
    gray = np.full((120, 160), 128, np.uint8)
    head = HeadMeasurement(Ellipse(80.0, 60.0, 40.0, 30.0, 0.2), 0.9, 0.9, "ok", None,
                           Ellipse(80.0, 60.0, 39.0, 29.0, 0.2).points(90))
    png = Image.open(io.BytesIO(draw_overlay(gray, head, "HC 1.0 mm")))
    assert png.mode == "P" and png.size == (160, 120)
    drawn = np.asarray(png)
    assert (drawn == 253).any() and (drawn == 252).any()  # the ellipse (red) and the outline (green)
