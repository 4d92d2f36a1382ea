"""Browser-side prediction: the static page in ``web/`` loads an ONNX model exported by
``hcmeasure export-onnx`` with onnxruntime-web, runs it in a web worker on an image
picked through the file input, and its mask matches the Python prediction (IoU >= 0.99
of the foreground class). Driven by puppeteer-core in headless Chromium; a screenshot is
written to ``web/test-output/page.png``.

Needs Debian's chromium (``/usr/bin/chromium`` or ``$CHROMIUM``) and ``npm ci`` in
``web/``; skipped, saying which is missing, otherwise. One command: ``make browser-test``.
"""
import functools
import json
import os
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "web"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def _need_browser():
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set $CHROMIUM)")
    if shutil.which("node") is None:
        pytest.skip("node is not installed (needed to drive Chromium with puppeteer-core)")
    for pkg in ("onnxruntime-web", "puppeteer-core"):
        if not (WEB / "node_modules" / pkg / "package.json").is_file():
            pytest.skip(f"web/node_modules/{pkg} missing: run `npm ci` in web/ (or `make browser-test`)")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")


class _Handler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".js": "text/javascript", ".wasm": "application/wasm", ".onnx": "application/octet-stream"}

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(WEB)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _trained_like_model():
    """Tiny cell U-Net, a few steps on one synthetic image so the mask is not trivial."""
    from detectron2.modeling import build_model

    from hcmeasure.studies.cells.data import outline_target, synthetic_cells
    from hcmeasure.predictor import load_config

    cfg = load_config(REPO / "tests/configs/Cells/unet_tiled_tiny_test.yaml",
                      ["HCMEASURE.TILE.TEST_SIZE", "0", "MODEL.PLAIN_UNET.NORM", ""], device="cpu")
    torch.manual_seed(0)
    model = build_model(cfg)
    img, ann = synthetic_cells(np.random.default_rng(3), 72, 96, n_cells=4, membrane=0.6)
    batch = [{"image": torch.as_tensor(img.transpose(2, 0, 1).copy()),
              "sem_seg": torch.as_tensor(outline_target(ann, widen="dilate").astype(np.int64))}]
    opt = torch.optim.Adam(model.parameters(), lr=0.005)
    model.train()
    for _ in range(25):
        loss = sum(model(batch).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), img


def test_page_mask_matches_python(server):
    _need_browser()
    from hcmeasure.export.onnx import export_semantic_onnx

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, img = _trained_like_model()
        out = WEB / "test-output"
        out.mkdir(exist_ok=True)
        export_semantic_onnx(model, out / "model.onnx", height=64, width=64)
        Image.fromarray(img).save(out / "image.png")
        with torch.no_grad():
            ref = model([{"image": torch.as_tensor(img.transpose(2, 0, 1).copy()).float()}])[0]["sem_seg"]
        ref = ref.argmax(0).numpy()
    finally:
        torch.set_num_threads(before)
    assert 0 < (ref == 1).mean() < 0.5  # a real, non-trivial mask

    cmd = ["node", str(WEB / "tests" / "run_page.mjs"), "--url", f"{server}/index.html?model=test-output/model.onnx",
           "--image", str(out / "image.png"), "--mask-out", str(out / "mask.json"),
           "--screenshot", str(out / "page.png"), "--chromium", CHROMIUM]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=WEB, capture_output=True, text=True, timeout=240, env=env)
    result = json.loads((out / "mask.json").read_text()) if (out / "mask.json").is_file() else {}
    assert proc.returncode == 0, f"page run failed: {proc.stderr[-2000:]} {result.get('error')} {result.get('logs')}"
    assert (result["width"], result["height"]) == (img.shape[1], img.shape[0])
    page = np.asarray(result["mask"], np.uint8).reshape(img.shape[:2])
    inter = np.logical_and(page == 1, ref == 1).sum()
    union = np.logical_or(page == 1, ref == 1).sum()
    iou = inter / union
    print(f"\npage vs Python: IoU {iou:.5f}, {int((page != ref).sum())} differing pixels, page ran {result['ms']:.0f} ms")
    assert iou >= 0.99
    assert (out / "page.png").stat().st_size > 1000  # the screenshot
