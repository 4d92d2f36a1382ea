// Web worker: runs the ONNX model with onnxruntime-web (WebAssembly, one thread, so the
// page needs no cross-origin isolation). Input: "image" float32 (1, 3, H, W), RGB 0-255;
// output: "scores" (1, K, H, W) class probabilities; the mask is their arg-max.
import * as ort from "./node_modules/onnxruntime-web/dist/ort.wasm.min.mjs";

ort.env.wasm.wasmPaths = new URL("./node_modules/onnxruntime-web/dist/", import.meta.url).href;
ort.env.wasm.numThreads = 1;
ort.env.wasm.proxy = false;

let session = null;

async function load(source) {
  const model = typeof source === "string" ? new Uint8Array(await (await fetch(source)).arrayBuffer())
                                           : new Uint8Array(source);
  session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"] });
  postMessage({ type: "ready", inputs: session.inputNames, outputs: session.outputNames });
}

function toTensor(bitmap) {
  const { width, height } = bitmap;
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const n = width * height;
  const chw = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) {
    chw[i] = rgba[4 * i];
    chw[n + i] = rgba[4 * i + 1];
    chw[2 * n + i] = rgba[4 * i + 2];
  }
  return new ort.Tensor("float32", chw, [1, 3, height, width]);
}

async function predict(bitmap) {
  if (!session) throw new Error("no model loaded");
  const t0 = performance.now();
  const input = toTensor(bitmap);
  const [height, width] = input.dims.slice(2);
  const out = await session.run({ [session.inputNames[0]]: input });
  const scores = out[session.outputNames[0]];
  const k = scores.dims[1];
  const n = width * height;
  const data = scores.data;
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bestScore = data[i];
    for (let c = 1; c < k; c++) {
      const s = data[c * n + i];
      if (s > bestScore) { best = c; bestScore = s; }
    }
    mask[i] = best;
  }
  postMessage({ type: "result", mask: mask.buffer, width, height, classes: k, ms: performance.now() - t0 },
              [mask.buffer]);
}

onmessage = async (event) => {
  const msg = event.data;
  try {
    if (msg.type === "load") await load(msg.source);
    else if (msg.type === "predict") await predict(msg.bitmap);
  } catch (err) {
    postMessage({ type: "error", message: String(err && err.message ? err.message : err) });
  }
};
