// Page logic: pick a model and an image, hand them to the worker, draw the mask over the image.
// The last result is exposed as window.hcmeasure = {status, width, height, mask, classes, ms}
// (mask: Uint8Array of class indices, row-major) for automated checks.
const statusEl = document.getElementById("status");
const view = document.getElementById("view");
const alphaEl = document.getElementById("alpha");
const COLORS = [[0, 0, 0], [255, 0, 0], [0, 200, 255], [0, 255, 0], [255, 255, 0], [255, 0, 255]];

window.hcmeasure = { status: "loading", error: null, mask: null, width: 0, height: 0, classes: 0, ms: 0 };
let bitmap = null;
let modelReady = false;
let pendingImage = null;

function setStatus(text, kind = "") {
  statusEl.textContent = text;
  statusEl.className = kind;
}

const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
worker.onmessage = (event) => {
  const msg = event.data;
  if (msg.type === "ready") {
    modelReady = true;
    window.hcmeasure.status = "ready";
    setStatus(`model loaded (${msg.inputs.join(", ")} -> ${msg.outputs.join(", ")}); pick an image`);
    if (pendingImage) { const f = pendingImage; pendingImage = null; predict(f); }
  } else if (msg.type === "result") {
    const mask = new Uint8Array(msg.mask);
    Object.assign(window.hcmeasure, { status: "done", mask, width: msg.width, height: msg.height,
                                      classes: msg.classes, ms: msg.ms });
    draw(mask, msg.width, msg.height);
    const fg = mask.reduce((n, v) => n + (v > 0 ? 1 : 0), 0);
    setStatus(`done in ${msg.ms.toFixed(0)} ms: ${msg.width}x${msg.height}, ` +
              `${(100 * fg / mask.length).toFixed(2)} % foreground`);
  } else if (msg.type === "error") {
    Object.assign(window.hcmeasure, { status: "error", error: msg.message });
    setStatus(`error: ${msg.message}`, "error");
  }
};

function loadModel(source) {
  modelReady = false;
  window.hcmeasure.status = "loading";
  setStatus("loading the model…");
  worker.postMessage({ type: "load", source });
}

function draw(mask, width, height) {
  view.width = width;
  view.height = height;
  view.style.width = `${Math.max(width, 480)}px`; // small images shown enlarged (pixelated)
  const ctx = view.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  if (!mask) return;
  const img = ctx.getImageData(0, 0, width, height);
  const a = Number(alphaEl.value);
  for (let i = 0; i < mask.length; i++) {
    const c = mask[i];
    if (c === 0) continue;
    const col = COLORS[c % COLORS.length];
    for (let k = 0; k < 3; k++) img.data[4 * i + k] = Math.round((1 - a) * img.data[4 * i + k] + a * col[k]);
  }
  ctx.putImageData(img, 0, 0);
}

async function predict(file) {
  if (!modelReady) { pendingImage = file; setStatus("waiting for the model…"); return; }
  window.hcmeasure.status = "running";
  setStatus("running…");
  // Exact pixel values: no colour-space conversion, no premultiplication.
  bitmap = await createImageBitmap(file, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  draw(null, bitmap.width, bitmap.height);
  const copy = await createImageBitmap(bitmap);
  worker.postMessage({ type: "predict", bitmap: copy }, [copy]);
}

document.getElementById("model-file").addEventListener("change", async (e) => {
  const f = e.target.files[0];
  if (f) loadModel(await f.arrayBuffer());
});
document.getElementById("image-file").addEventListener("change", (e) => {
  const f = e.target.files[0];
  if (f) predict(f);
});
alphaEl.addEventListener("input", () => {
  if (bitmap && window.hcmeasure.mask) draw(window.hcmeasure.mask, window.hcmeasure.width, window.hcmeasure.height);
});

const modelUrl = new URLSearchParams(location.search).get("model") || "model.onnx";
loadModel(new URL(modelUrl, location.href).href);
