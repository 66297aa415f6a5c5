// The page of `dalle-c serve` in headless Chromium, driven by playwright-core (run by
// scripts/test-browser.sh, which installs both and starts the server):
//   node tests/browser/serve_page.js URL HOLD_FILE TOOLS_DIR SCREENSHOT
// The page loads and names the model; with a scorer, the temperature follows the candidates
// (defaults_with_candidates above 1) until the user sets one; a prompt is typed
// and Generate clicked; the images are seen partly drawn (rows 1..G-1 of G) before they
// are complete, and a screenshot is taken then; the finished PNG downloads and its text
// chunks carry the seed the page showed; the generation appears in this session's
// history; the page logged no error.
// The server holds each job after half its rows while HOLD_FILE exists
// ($DALLEC_SERVE_TEST_HOLD), so "partly drawn" is caught without racing the sampler.
"use strict";

const fs = require("fs");
const path = require("path");
const zlib = require("zlib");

const [url, holdFile, toolsDir, screenshot] = process.argv.slice(2);
const { chromium } = require(path.join(toolsDir, "node_modules", "playwright-core"));

const PROMPT = "a red heart, openmoji style";
const IMAGES = 4;
const SEED = "2024";

function fail(message) {
  throw new Error(message);
}

// The text chunks (tEXt, zTXt, iTXt) of a PNG file as an object.
function pngText(buf) {
  if (buf.subarray(0, 8).toString("latin1") !== "\x89PNG\r\n\x1a\n") fail("the download is not a PNG");
  const text = {};
  for (let p = 8; p + 12 <= buf.length;) {
    const len = buf.readUInt32BE(p);
    const type = buf.toString("latin1", p + 4, p + 8);
    const data = buf.subarray(p + 8, p + 8 + len);
    const nul = data.indexOf(0);
    const key = data.toString("latin1", 0, nul);
    if (type === "tEXt") text[key] = data.toString("latin1", nul + 1);
    if (type === "zTXt") text[key] = zlib.inflateSync(data.subarray(nul + 2)).toString("latin1");
    if (type === "iTXt") {
      const compressed = data[nul + 1] === 1;
      let q = data.indexOf(0, nul + 3) + 1;        // after the language tag
      q = data.indexOf(0, q) + 1;                  // after the translated keyword
      const body = data.subarray(q);
      text[key] = (compressed ? zlib.inflateSync(body) : body).toString("utf8");
    }
    p += 12 + len;
  }
  return text;
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const context = await browser.newContext({
      acceptDownloads: true, viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1,
    });
    const page = await context.newPage();
    const problems = [];
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });

    await page.goto(url);
    await page.waitForFunction(() => document.getElementById("model").textContent.includes("rows"));
    const model = await page.evaluate(async () => (await (await fetch("v1/models")).json()).data[0]);
    console.log(`  page loaded: ${await page.textContent("#model")}`);

    // until the user sets one, the temperature is the model's for the candidates asked for
    const d = model.defaults, dc = model.defaults_with_candidates;
    if (!model.scorer || dc.temperature === d.temperature) {
      console.log("  (no scorer, or one temperature with and without candidates: not checked)");
    } else {
      const shown = async () => Math.fround(Number(await page.inputValue("#temperature")));
      if (await shown() !== Math.fround(d.temperature)) fail(`temperature starts at ${await shown()}`);
      await page.fill("#candidates", "8");
      if (await shown() !== Math.fround(dc.temperature))
        fail(`candidates 8: temperature ${await shown()}, want ${dc.temperature}`);
      await page.fill("#candidates", "1");
      if (await shown() !== Math.fround(d.temperature))
        fail(`candidates 1 again: temperature ${await shown()}, want ${d.temperature}`);
      await page.fill("#temperature", "0.7");
      await page.fill("#candidates", "8");
      if (await shown() !== Math.fround(0.7)) fail("a temperature the user set moved with candidates");
      await page.fill("#candidates", "1");
      await page.fill("#temperature", String(Math.fround(d.temperature).toPrecision(6) * 1));
      console.log(`  temperature follows candidates: ${d.temperature} with 1, ` +
                  `${dc.temperature} with 8, until the user sets one`);
    }

    // hold the job once half of its rows are drawn
    const half = Math.max(1, Math.floor(model.grid / 2));
    fs.writeFileSync(holdFile, `${half}\n`);
    await page.fill("#prompt", PROMPT);
    await page.fill("#n", String(IMAGES));
    await page.fill("#seed", SEED);
    await page.click("#generate");

    await page.waitForFunction((rows) =>
      [...document.querySelectorAll("#current figure.card")].every(
        (f) => f.dataset.state === "drawing" && Number(f.dataset.rows) >= rows), half,
      { timeout: 120000 });
    const partly = await page.evaluate(() => ({
      cards: [...document.querySelectorAll("#current figure.card")].map((f) => ({
        state: f.dataset.state, rows: Number(f.dataset.rows), grid: Number(f.dataset.grid),
        src: f.querySelector("img").src.slice(0, 22),
      })),
      progress: document.getElementById("progress").value,
      status: document.getElementById("status").textContent,
    }));
    if (partly.cards.length !== IMAGES) fail(`${partly.cards.length} images shown, want ${IMAGES}`);
    for (const c of partly.cards) {
      if (!(c.rows >= 1 && c.rows < c.grid)) fail(`not partly drawn: row ${c.rows} of ${c.grid}`);
      if (c.src !== "data:image/png;base64,") fail(`a partial image is not a PNG: ${c.src}`);
    }
    if (!(partly.progress > 0 && partly.progress < 1)) fail(`progress ${partly.progress} mid-way`);
    console.log(`  partly drawn: row ${partly.cards[0].rows} of ${partly.cards[0].grid}, ` +
                `progress ${partly.progress.toFixed(2)}, "${partly.status}"`);
    if (screenshot) {
      await page.screenshot({ path: screenshot });
      console.log(`  screenshot mid-generation: ${screenshot}`);
    }

    fs.unlinkSync(holdFile);
    await page.waitForFunction((n) =>
      document.querySelectorAll('#current figure.card[data-state="done"]').length === n,
      IMAGES, { timeout: 120000 });
    const shownSeed = await page.getAttribute("#current figure.card", "data-seed");
    if (shownSeed !== SEED) fail(`the page shows seed ${shownSeed}, want ${SEED}`);

    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.click("#current figure.card a.download"),
    ]);
    const file = path.join(toolsDir, download.suggestedFilename());
    await download.saveAs(file);
    const chunks = pngText(fs.readFileSync(file));
    if (chunks["dalle-c:seed"] !== SEED) fail(`the PNG's dalle-c:seed is ${chunks["dalle-c:seed"]}`);
    if (chunks["dalle-c:prompt"] !== PROMPT) fail(`the PNG's prompt is ${chunks["dalle-c:prompt"]}`);
    if (chunks["dalle-c:image"] !== "1" || chunks["dalle-c:n"] !== String(IMAGES))
      fail(`the PNG is image ${chunks["dalle-c:image"]} of ${chunks["dalle-c:n"]}`);
    console.log(`  downloaded ${download.suggestedFilename()}: dalle-c:seed ${chunks["dalle-c:seed"]}, ` +
                `model ${chunks["dalle-c:model"]}, ${Object.keys(chunks).length} text chunks`);

    const history = await page.$$eval("#history .entry", (e) => e.length);
    if (history !== 1) fail(`${history} entries in this session's history, want 1`);
    if (problems.length) fail(problems.join("; "));
    console.log("  history holds the generation; no page errors");
  } finally {
    await browser.close();
  }
}

main().then(
  () => console.log("browser test: ok"),
  (e) => {
    try { fs.unlinkSync(holdFile); } catch (ignored) { /* already gone */ }
    console.error(`browser test: FAILED: ${e.message}`);
    process.exit(1);
  });
