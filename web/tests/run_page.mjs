// Drive index.html in headless Chromium: wait for the model, pick an image through the
// file input, wait for the mask, write it and a screenshot.
//   node tests/run_page.mjs --url http://127.0.0.1:8000/index.html?model=m.onnx \
//        --image img.png --mask-out mask.json --screenshot shot.png [--chromium /usr/bin/chromium]
import { writeFileSync } from "node:fs";
import puppeteer from "puppeteer-core";

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

const url = arg("url");
const image = arg("image");
const maskOut = arg("mask-out");
const screenshot = arg("screenshot");
const chromium = arg("chromium", process.env.CHROMIUM || "/usr/bin/chromium");
const timeout = Number(arg("timeout-ms", "120000"));

const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let exitCode = 0;
try {
  const page = await browser.newPage();
  const logs = [];
  page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
  await page.setViewport({ width: 900, height: 700 });
  await page.goto(url, { waitUntil: "load" });
  await page.waitForFunction(() => ["ready", "error"].includes(window.hcmeasure?.status), { timeout });
  const input = await page.$("#image-file");
  await input.uploadFile(image);
  await page.waitForFunction(() => ["done", "error"].includes(window.hcmeasure?.status), { timeout });
  const result = await page.evaluate(() => {
    const h = window.hcmeasure;
    return { status: h.status, error: h.error, width: h.width, height: h.height, classes: h.classes, ms: h.ms,
             mask: h.mask ? Array.from(h.mask) : null, statusText: document.getElementById("status").textContent };
  });
  result.logs = logs;
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  writeFileSync(maskOut, JSON.stringify(result));
  if (result.status !== "done") exitCode = 1;
} finally {
  await browser.close();
}
process.exit(exitCode);
