// The page of `dalle-c serve` (docs/SERVER.md). The prompt and its sampling settings go to
// POST /v1/images/generations with "stream": true; the server-sent events that come back
// (where the job waits, a partial PNG after every sampled row, then the finished PNGs
// carrying their settings in text chunks) are drawn as they arrive. With "candidates" above
// 1 every candidate is drawn, then the ones the model's scorer ranked lower are taken away
// and the kept image shows its score. Plain JavaScript with no framework and nothing from
// elsewhere: the file is embedded in the binary.
"use strict";

const $ = (id) => document.getElementById(id);

const page = {
  key: sessionStorage.getItem("dallec.key") || "",
  model: null,
  running: null,      // the AbortController of the generation under way
  history: [],        // this session's generations, newest first
  temperatureChosen: false,  // the user set the temperature: candidates no longer move it
};

function authHeaders(extra) {
  const h = Object.assign({}, extra);
  if (page.key) h.Authorization = "Bearer " + page.key;
  return h;
}

function say(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.classList.toggle("error-text", Boolean(isError));
}

function askForKey(message) {
  $("keyrow").hidden = false;
  $("key").focus();
  say(message, true);
}

async function loadModel() {
  try {
    const res = await fetch("v1/models", { headers: authHeaders() });
    if (res.status === 401) {
      $("model").textContent = "this server wants an API key";
      askForKey("Enter the server's API key, then generate.");
      return;
    }
    const body = await res.json();
    const m = body.data[0];
    page.model = m;
    // a temperature the browser restored into the form is the user's
    if ($("temperature").value !== $("temperature").defaultValue) page.temperatureChosen = true;
    $("model").textContent = `${m.id} · ${m.size} images drawn in ${m.grid} rows`;
    $("n").max = m.max_images;
    startAtModelDefaults(m.defaults || {});
    if (!m.scorer) {
      const c = $("candidates");
      c.value = 1;
      c.disabled = true;
      c.parentElement.title = "this model has no scorer to rank candidates by " +
                              "(dalle-c rerank add; docs/RERANK.md)";
    }
    followCandidates();
  } catch (err) {
    $("model").textContent = "cannot reach the server";
  }
}

// The shortest decimal of a float32 the server sent as a double (0.95, not 0.949999988).
function shortFloat(x) {
  for (let digits = 1; digits < 9; digits++) {
    const y = Number(x.toPrecision(digits));
    if (Math.fround(y) === Math.fround(x)) return y;
  }
  return x;
}

// The sampling controls start at the settings the model recommends (the server uses them
// for fields a request leaves out); a control the user already changed keeps its value.
function startAtModelDefaults(defaults) {
  for (const id of ["temperature", "top_k", "top_p", "guidance"]) {
    const input = $(id);
    if (typeof defaults[id] === "number" && input.value === input.defaultValue)
      input.value = String(shortFloat(defaults[id]));
  }
}

// Until the user sets a temperature, it is the one the model recommends for the number of
// candidates asked for (reranking gains most from candidates that differ), as the server
// would choose for a request without one.
function followCandidates() {
  if (page.temperatureChosen) return;
  const t = temperatureFor(Number($("candidates").value));
  if (t !== undefined) $("temperature").value = String(shortFloat(t));
}

// The model's temperature for that many candidates (its defaults_with_candidates above 1).
function temperatureFor(candidates) {
  const m = page.model || {};
  const d = (candidates > 1 && m.scorer ? m.defaults_with_candidates : m.defaults) || {};
  return typeof d.temperature === "number" ? d.temperature : undefined;
}

// ------------------------------------------------------------------ the request

const NUMBERS = ["n", "candidates", "temperature", "top_k", "top_p", "guidance"];

// The request body, or null after saying what is wrong with the form.
function requestBody() {
  const prompt = $("prompt").value.trim();
  if (!prompt) {
    say("Write a prompt first.", true);
    $("prompt").focus();
    return null;
  }
  const body = { prompt, response_format: "b64_json", stream: true };
  for (const id of NUMBERS) {
    const input = $(id);
    if (input.disabled) continue;
    if (!input.checkValidity() || input.value === "") {
      say(`${input.parentElement.textContent.trim()}: ${input.validationMessage || "needs a number"}`, true);
      input.focus();
      return null;
    }
    body[id] = Number(input.value);
  }
  const seed = $("seed").value.trim();
  if (seed !== "") {
    // JSON numbers reach JavaScript as doubles: seeds above 2^53 would change on the way
    if (!/^[0-9]+$/.test(seed) || Number(seed) > Number.MAX_SAFE_INTEGER) {
      say(`Seed: a whole number from 0 to ${Number.MAX_SAFE_INTEGER}, or empty for a random one.`, true);
      $("seed").focus();
      return null;
    }
    body.seed = Number(seed);
  }
  return body;
}

// Calls onEvent(name, data) for each server-sent event of a fetch body.
async function readEvents(stream, onEvent) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

// ------------------------------------------------------------------ images

function pngBlob(b64) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type: "image/png" });
}

// A file name as the command line makes one: the prompt's letters and digits, the seed.
function fileName(prompt, seed, index, n) {
  let slug = prompt.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "");
  slug = slug.slice(0, 60).replace(/-+$/, "") || "image";
  return `${slug}-${seed}${n > 1 ? "-" + (index + 1) : ""}.png`;
}

function makeCard(label) {
  const fig = $("card").content.firstElementChild.cloneNode(true);
  fig.dataset.state = "waiting";
  fig.querySelector(".what").textContent = label;
  return fig;
}

// "score 0.9133 · candidate 3 of 8": what the scorer said of a finished image, if it has one
function scoreText(image) {
  if (typeof image.score !== "number") return "";
  const pick = typeof image.candidate === "number"
    ? ` · candidate ${image.candidate + 1} of ${image.candidates}` : "";
  return `score ${image.score.toFixed(4)}${pick}`;
}

function showFinished(fig, prompt, image) {
  const score = fig.querySelector(".score");
  score.textContent = scoreText(image);
  score.hidden = score.textContent === "";
  const url = URL.createObjectURL(pngBlob(image.b64));
  fig.querySelector("img").src = url;
  const a = fig.querySelector("a.download");
  a.href = url;
  a.download = fileName(prompt, image.seed, image.index, image.n);
  a.hidden = false;
  fig.dataset.state = "done";
  fig.dataset.seed = String(image.seed);
}

// ------------------------------------------------------------------ generating

async function generate(event) {
  event.preventDefault();
  if (page.running) return;
  if (!$("keyrow").hidden) {
    page.key = $("key").value.trim();
    sessionStorage.setItem("dallec.key", page.key);
  }
  // behind a key the model (and its recommended settings) comes once the key is in
  if (!page.model) await loadModel();
  const body = requestBody();
  if (!body) return;
  const job = { prompt: body.prompt, settings: Object.assign({}, body), seed: null, images: [] };
  delete job.settings.prompt;
  delete job.settings.stream;
  delete job.settings.response_format;

  // a card per sample: candidate c of image i is cards[c * n + i], as the server numbers them
  const n = body.n, m = body.candidates || 1;
  const cards = [];
  const current = $("current");
  current.replaceChildren();
  const imageLabel = (i) => (n > 1 ? `image ${i + 1} of ${n}` : "image");
  for (let k = 0; k < n * m; k++) {
    const i = k % n, c = Math.floor(k / n);
    cards.push(makeCard(m > 1 ? `${imageLabel(i)} · candidate ${c + 1} of ${m}` : imageLabel(i)));
  }
  for (let i = 0; i < n; i++)
    for (let c = 0; c < m; c++) current.append(cards[c * n + i]);
  const progress = $("progress");
  progress.value = 0;
  const controller = new AbortController();
  page.running = controller;
  $("generate").disabled = true;
  $("stop").disabled = false;
  say("sending…");

  const onEvent = (name, d) => {
    if (name === "queued") {
      say(d.ahead > 0 ? `waiting: ${d.ahead} ahead in the queue` : "starting…");
    } else if (name === "image_generation.partial_image") {
      const fig = cards[(d.candidate || 0) * n + d.image_index];
      fig.querySelector("img").src = "data:image/png;base64," + d.b64_json;
      fig.dataset.state = "drawing";
      fig.dataset.rows = String(d.rows);
      fig.dataset.grid = String(d.grid);
      progress.value = d.progress;
      job.seed = d.seed;
      say(`drawing row ${d.rows} of ${d.grid} · seed ${d.seed}`);
    } else if (name === "image_generation.completed") {
      const image = { b64: d.b64_json, seed: d.seed, index: d.image_index, n: d.n,
                      score: d.score, candidate: d.candidate, candidates: m };
      job.images[d.image_index] = image;
      job.seed = d.seed;
      const kept = (d.candidate || 0) * n + d.image_index;
      for (let c = 0; c < m; c++)
        if (c * n + d.image_index !== kept) cards[c * n + d.image_index].remove();
      cards[kept].querySelector(".what").textContent = imageLabel(d.image_index);
      showFinished(cards[kept], job.prompt, image);
      const done = job.images.filter(Boolean).length;
      progress.value = done === body.n ? 1 : progress.value;
      if (done === body.n) say(`done in ${d.seconds.toFixed(2)} s · seed ${d.seed}`);
    } else if (name === "error") {
      throw new Error(d.error.message);
    }
  };

  try {
    const res = await fetch("v1/images/generations", {
      method: "POST",
      headers: authHeaders({ "Content-Type": "application/json" }),
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    if (!res.ok) {
      let message = `the server answered ${res.status}`;
      try {
        const e = (await res.json()).error;
        message = e.message + (e.param ? ` (${e.param})` : "");
        if (e.param && $(e.param)) $(e.param).focus();
      } catch (ignored) { /* not JSON: keep the status */ }
      if (res.status === 401) askForKey(message);
      else say(message, true);
      for (const fig of cards) fig.classList.add("error");
      return;
    }
    await readEvents(res.body, onEvent);
    if (job.images.filter(Boolean).length === body.n) remember(job);
    else if (!$("status").classList.contains("error-text")) say("the stream ended early", true);
  } catch (err) {
    if (err.name === "AbortError") say("stopped");
    else say(err.message, true);
    for (const fig of cards) if (fig.dataset.state !== "done") fig.classList.add("error");
  } finally {
    page.running = null;
    $("generate").disabled = false;
    $("stop").disabled = true;
  }
}

// ------------------------------------------------------------------ this session

function describe(entry) {
  const s = entry.settings;
  return `seed ${entry.seed} · temperature ${s.temperature} · top-k ${s.top_k} · ` +
         `top-p ${s.top_p} · guidance ${s.guidance}` +
         (s.candidates > 1 ? ` · best of ${s.candidates}` : "");
}

function reuse(entry) {
  $("prompt").value = entry.prompt;
  $("seed").value = String(entry.seed);
  for (const id of NUMBERS) {
    const value = id === "candidates" ? entry.settings[id] || 1 : entry.settings[id];
    if (value !== undefined && !$(id).disabled) $(id).value = value;
  }
  // a temperature the page chose itself keeps following the candidates
  const own = temperatureFor(entry.settings.candidates || 1);
  if (own === undefined || Number(entry.settings.temperature) !== shortFloat(own))
    page.temperatureChosen = true;
  $("prompt").focus();
}

function renderHistory() {
  const box = $("history");
  box.replaceChildren();
  $("empty").hidden = page.history.length > 0;
  for (const entry of page.history) {
    const div = document.createElement("div");
    div.className = "entry";
    const p = document.createElement("p");
    const strong = document.createElement("strong");
    strong.textContent = entry.prompt;
    const again = document.createElement("a");
    again.href = "#";
    again.textContent = "use these settings";
    again.addEventListener("click", (e) => { e.preventDefault(); reuse(entry); });
    p.append(strong, ` — ${describe(entry)} · `, again);
    const images = document.createElement("div");
    images.className = "images";
    entry.images.forEach((image) => {
      const fig = makeCard(entry.images.length > 1 ? `${image.index + 1} of ${image.n}` : "");
      showFinished(fig, entry.prompt, image);
      images.append(fig);
    });
    div.append(p, images);
    box.append(div);
  }
}

function remember(job) {
  page.history.unshift(job);
  // sessionStorage holds a few MB: forget the oldest generations when it is full
  while (page.history.length) {
    try {
      sessionStorage.setItem("dallec.history", JSON.stringify(page.history));
      break;
    } catch (full) {
      if (page.history.length === 1) break;
      page.history.pop();
    }
  }
  renderHistory();
}

function restoreHistory() {
  try {
    page.history = JSON.parse(sessionStorage.getItem("dallec.history") || "[]");
  } catch (ignored) {
    page.history = [];
  }
  renderHistory();
}

document.addEventListener("DOMContentLoaded", () => {
  $("form").addEventListener("submit", generate);
  $("stop").addEventListener("click", () => page.running && page.running.abort());
  $("temperature").addEventListener("input", () => { page.temperatureChosen = true; });
  $("candidates").addEventListener("input", followCandidates);
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("form").requestSubmit();
  });
  if (page.key) $("key").value = page.key;
  restoreHistory();
  loadModel();
});
