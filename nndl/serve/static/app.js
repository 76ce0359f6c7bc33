// The page of `nndl serve`: draw a digit (or a whole number) and see what the network makes of it.
//
// The canvas is white paper with black ink; it is sent as a PNG to POST api/predict (one digit) or
// POST api/read (a whole number) and the JSON answer is drawn: the digit, the ten probabilities as
// bars, and the 28x28 image the network received. While drawing a digit, requests are throttled:
// at most one every PREDICT_EVERY_MS, never two at once, and always one after the last stroke.
// Reading a number waits until the pen has rested for READ_AFTER_MS. Uploaded files are sent as
// they are, as a multipart upload in the field "image". No library, nothing fetched from elsewhere.
"use strict";

const PREDICT_EVERY_MS = 150;
const READ_AFTER_MS = 400;
const SIZES = { digit: [280, 280], number: [840, 280] };    // canvas width, height in pixels
const PAPER = "#ffffff";
const INK = "#000000";

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ctx = pad.getContext("2d");
const padBoxes = $("pad-boxes");
const uploadView = $("upload-view");
const uploadPreview = $("upload-preview");
const uploadBoxes = $("upload-boxes");
const fileInput = $("file");
const resultSection = document.querySelector("section.result");

const state = {
  mode: "digit",        // "digit" (api/predict) or "number" (api/read)
  source: "pad",        // what is being read: "pad" (the drawing) or "upload" (state.file)
  file: null,
  hasInk: false,
  pointer: null,        // the id of the pointer drawing now, or null
  last: null,           // the previous point of the stroke, [x, y] in canvas pixels
  generation: 0,        // bumped by Clear, a new mode or an upload: answers to older requests are dropped
  readTimer: null,
  uploading: false,
  boxes: [],            // the boxes of the last reading, drawn again once an uploaded image has loaded
  maxUpload: 5 * 1024 * 1024,
};

// --- requests ---------------------------------------------------------------------------------

/**
 * Calls `send` at most once per `interval` ms, never twice at once, and once more after the last request().
 * `send(started)` calls started() as its request leaves, so the interval is counted between requests,
 * not between the work (encoding a PNG) that comes before them.
 */
class Throttle {
  constructor(send, interval) {
    this.send = send;
    this.interval = interval;
    this.pending = false;
    this.running = false;
    this.timer = null;
    this.lastStart = -Infinity;
  }

  request() {
    this.pending = true;
    this.schedule();
  }

  schedule() {
    if (!this.pending || this.running || this.timer !== null) return;
    const wait = Math.max(0, this.lastStart + this.interval - performance.now());
    this.timer = setTimeout(() => this.run(), wait);
  }

  async run() {
    this.timer = null;
    this.pending = false;
    this.running = true;
    this.lastStart = performance.now();
    try {
      await this.send(() => { this.lastStart = performance.now(); });
    } finally {
      this.running = false;
      this.schedule();
      updateBusy();
    }
  }

  cancel() {
    this.pending = false;
    clearTimeout(this.timer);
    this.timer = null;
  }

  get busy() {
    return this.pending || this.running || this.timer !== null;
  }
}

const predictor = new Throttle((started) => sendDrawing("predict", started), PREDICT_EVERY_MS);
const reader = new Throttle((started) => sendDrawing("read", started), 0);

function updateBusy() {
  const busy = predictor.busy || reader.busy || state.readTimer !== null || state.uploading;
  resultSection.setAttribute("aria-busy", String(busy));
}

/** POST `body` to api/`endpoint`; the parsed JSON answer, or an Error with the server's message. */
async function post(endpoint, body, headers) {
  let response;
  try {
    response = await fetch(`api/${endpoint}`, { method: "POST", body, headers });
  } catch (error) {
    throw new Error("The server cannot be reached. Is nndl serve still running?");
  }
  let answer = null;
  try {
    answer = await response.json();
  } catch (error) {
    answer = null;
  }
  if (!response.ok) {
    const reason = answer && answer.error ? answer.error : `${response.status} ${response.statusText}`;
    throw new Error(`The server refused the image: ${reason}`);
  }
  return answer;
}

async function sendDrawing(endpoint, started) {
  if (!state.hasInk || state.source !== "pad") return;
  const generation = state.generation;
  const blob = await new Promise((resolve) => pad.toBlob(resolve, "image/png"));
  started();
  try {
    const answer = await post(endpoint, blob, { "Content-Type": "image/png" });
    if (generation === state.generation) show(endpoint, answer);
  } catch (error) {
    if (generation === state.generation) showError(error.message);
  }
}

async function sendUpload() {
  const file = state.file;
  if (file.size > state.maxUpload) {
    showError(`That file is ${megabytes(file.size)}; the limit is ${megabytes(state.maxUpload)}.`);
    return;
  }
  const endpoint = state.mode === "digit" ? "predict" : "read";
  const generation = state.generation;
  const form = new FormData();
  form.append("image", file, file.name);
  state.uploading = true;
  updateBusy();
  try {
    const answer = await post(endpoint, form);
    if (generation === state.generation) show(endpoint, answer);
  } catch (error) {
    if (generation === state.generation) showError(error.message);
  } finally {
    state.uploading = false;
    updateBusy();
  }
}

// --- drawing ----------------------------------------------------------------------------------

function resetPad() {
  ctx.fillStyle = PAPER;      // opaque paper: a transparent PNG would read as black on black
  ctx.fillRect(0, 0, pad.width, pad.height);
  clearBoxes();
  state.hasInk = false;
}

/** The pointer's position in canvas pixels (the canvas may be shown smaller or larger than it is). */
function position(event) {
  const rect = pad.getBoundingClientRect();
  return [(event.clientX - rect.left) * (pad.width / rect.width),
          (event.clientY - rect.top) * (pad.height / rect.height)];
}

/** Stroke width: a fourteenth of the canvas height (MNIST's strokes are about 2 of 28 pixels); pens press harder. */
function strokeWidth(event) {
  const width = pad.height / 14;
  return event.pointerType === "pen" && event.pressure > 0 ? width * (0.6 + 0.8 * event.pressure) : width;
}

function segment(from, to, width) {
  ctx.strokeStyle = INK;
  ctx.lineWidth = width;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(from[0], from[1]);
  ctx.lineTo(to[0], to[1]);
  ctx.stroke();
}

function inked() {
  state.hasInk = true;
  clearBoxes();
  if (state.mode === "digit") predictor.request();
  updateBusy();
}

pad.addEventListener("pointerdown", (event) => {
  if (state.pointer !== null || (event.pointerType === "mouse" && event.button !== 0)) return;
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  state.pointer = event.pointerId;
  clearTimeout(state.readTimer);
  state.readTimer = null;
  state.last = position(event);
  segment(state.last, state.last, strokeWidth(event));    // a dot, for a tap
  inked();
});

pad.addEventListener("pointermove", (event) => {
  if (event.pointerId !== state.pointer) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const e of events.length ? events : [event]) {
    const point = position(e);
    segment(state.last, point, strokeWidth(e));
    state.last = point;
  }
  inked();
});

function endStroke(event) {
  if (event.pointerId !== state.pointer) return;
  state.pointer = null;
  if (state.mode === "digit") {
    predictor.request();
  } else {
    state.readTimer = setTimeout(() => {
      state.readTimer = null;
      reader.request();
    }, READ_AFTER_MS);
  }
  updateBusy();
}

pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);
pad.addEventListener("lostpointercapture", endStroke);

// --- showing the answers ----------------------------------------------------------------------

const percent = (p) => `${(100 * p).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1)}%`;
const megabytes = (n) => `${(n / (1024 * 1024)).toFixed(1)} MB`;

function show(endpoint, answer) {
  hideError();
  if (endpoint === "predict") showPrediction(answer);
  else showReading(answer);
}

/** Paint a 28x28 image (28 rows of 28 numbers 0..255) into `canvas`. */
function paint28(canvas, rows) {
  const size = rows.length;
  canvas.width = size;
  canvas.height = size;
  const c = canvas.getContext("2d");
  const image = c.createImageData(size, size);
  rows.forEach((row, y) => row.forEach((v, x) => {
    const i = 4 * (y * size + x);
    image.data[i] = image.data[i + 1] = image.data[i + 2] = v;
    image.data[i + 3] = 255;
  }));
  c.putImageData(image, 0, 0);
}

function showPrediction(p) {
  const best = p.digit === null ? null : p.probabilities[p.digit];
  $("digit").textContent = p.digit === null ? "–" : String(p.digit);
  let text;
  if (p.digit === null) text = p.message || "No digit found.";
  else if (p.confident) text = `${percent(best)} sure.`;
  else {
    const guesses = p.top3.map(([d, q]) => `${d} (${percent(q)})`);
    text = `Not sure: maybe ${guesses.slice(0, -1).join(", ")} or ${guesses[guesses.length - 1]}.`;
  }
  $("confidence").textContent = text;
  document.querySelectorAll("#bars li").forEach((li) => {
    const d = Number(li.dataset.digit);
    const q = p.probabilities[d];
    li.querySelector(".fill").style.height = `${(100 * q).toFixed(2)}%`;
    li.querySelector(".value").textContent = percent(q);
    li.classList.toggle("top", d === p.digit);
    li.setAttribute("aria-label", `${d}: ${percent(q)}`);
  });
  paint28($("seen"), p.image);
  if (state.pointer === null) {
    $("announce").textContent = p.digit === null ? text : `The network reads ${p.digit}, ${percent(best)} sure.`;
  }
}

function showReading(r) {
  const digits = r.digits || [];
  $("number").textContent = r.text || "–";
  $("number-detail").textContent = r.message ||
    `${digits.length} digit${digits.length === 1 ? "" : "s"} found (${r.method === "components" ?
      "separate pieces of ink" : "splits scored by the network"}).`;
  const list = $("number-digits");
  list.replaceChildren();
  digits.forEach((p) => {
    const li = document.createElement("li");
    const figure = document.createElement("figure");
    const canvas = document.createElement("canvas");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", `28 by 28 image read as ${p.digit === null ? "nothing" : p.digit}`);
    paint28(canvas, p.image);
    const caption = document.createElement("figcaption");
    caption.textContent = p.digit === null ? "?" : `${p.digit} (${percent(p.probabilities[p.digit])})`;
    figure.append(canvas, caption);
    li.append(figure);
    list.append(li);
  });
  drawBoxes(r.boxes || []);
  $("announce").textContent = r.text ? `The network reads ${r.text}.` : (r.message || "No digits found.");
}

function clearBoxes() {
  state.boxes = [];
  for (const canvas of [padBoxes, uploadBoxes]) {
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  }
}

/** Outline each digit's box (x0, y0, x1, y1 in the image's pixels) over the drawing or the upload. */
function drawBoxes(boxes) {
  clearBoxes();
  state.boxes = boxes;
  const canvas = state.source === "pad" ? padBoxes : uploadBoxes;
  const c = canvas.getContext("2d");
  const scale = canvas.height / 280;
  c.lineWidth = Math.max(2, 3 * scale);
  c.strokeStyle = "#d9480f";
  c.fillStyle = "#d9480f";
  c.font = `${Math.round(16 * Math.max(scale, 1))}px system-ui, sans-serif`;
  boxes.forEach(([x0, y0, x1, y1], i) => {
    c.strokeRect(x0, y0, x1 - x0, y1 - y0);
    c.fillText(String(i + 1), x0 + 2, Math.max(y0 - 4, 14 * Math.max(scale, 1)));
  });
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function hideError() {
  $("error").hidden = true;
}

function resetResults() {
  hideError();
  $("digit").textContent = "–";
  $("confidence").textContent = "Draw a digit to begin.";
  document.querySelectorAll("#bars li").forEach((li) => {
    li.querySelector(".fill").style.height = "0";
    li.querySelector(".value").textContent = "–";
    li.classList.remove("top");
    li.removeAttribute("aria-label");
  });
  const seen = $("seen");
  seen.getContext("2d").clearRect(0, 0, seen.width, seen.height);
  $("number").textContent = "–";
  $("number-detail").textContent = "Write a number to begin.";
  $("number-digits").replaceChildren();
  $("announce").textContent = "";
}

// --- clear, modes, uploads --------------------------------------------------------------------

/** Forget the drawing, the upload and the answers; requests still under way are ignored. */
function clearAll() {
  state.generation += 1;
  predictor.cancel();
  reader.cancel();
  clearTimeout(state.readTimer);
  state.readTimer = null;
  showPad();
  resetPad();
  resetResults();
  updateBusy();
}

function showPad() {
  state.source = "pad";
  state.file = null;
  fileInput.value = "";
  uploadView.hidden = true;
  if (uploadPreview.src) URL.revokeObjectURL(uploadPreview.src);
  uploadPreview.removeAttribute("src");
  pad.hidden = padBoxes.hidden = false;
}

function setMode(mode) {
  const file = state.file;
  state.mode = mode;
  const [width, height] = SIZES[mode];
  for (const canvas of [pad, padBoxes]) {
    canvas.width = width;
    canvas.height = height;
  }
  document.body.classList.toggle("mode-number", mode === "number");
  pad.setAttribute("aria-label", mode === "digit"
    ? "Drawing area: draw a digit here with a mouse, pen or finger"
    : "Drawing area: write a number here, digits side by side, with a mouse, pen or finger");
  $("digit-result").hidden = mode !== "digit";
  $("number-result").hidden = mode !== "number";
  clearAll();
  if (file) upload(file);     // an uploaded image is read again the new way
}

function upload(file) {
  state.generation += 1;
  predictor.cancel();
  reader.cancel();
  clearTimeout(state.readTimer);
  state.readTimer = null;
  resetResults();
  state.source = "upload";
  state.file = file;
  if (uploadPreview.src) URL.revokeObjectURL(uploadPreview.src);
  uploadPreview.src = URL.createObjectURL(file);
  pad.hidden = padBoxes.hidden = true;
  uploadView.hidden = false;
  sendUpload();
}

uploadPreview.addEventListener("load", () => {
  uploadBoxes.width = uploadPreview.naturalWidth;     // boxes are drawn in the image's own pixels
  uploadBoxes.height = uploadPreview.naturalHeight;
  if (state.source === "upload" && state.boxes.length) drawBoxes(state.boxes);
});

fileInput.addEventListener("change", () => {
  if (fileInput.files.length) upload(fileInput.files[0]);
});

$("stage").addEventListener("dragover", (event) => event.preventDefault());
$("stage").addEventListener("drop", (event) => {
  event.preventDefault();
  if (event.dataTransfer.files.length) upload(event.dataTransfer.files[0]);
});

$("clear").addEventListener("click", clearAll);
document.querySelectorAll('input[name="mode"]').forEach((radio) => {
  radio.addEventListener("change", () => { if (radio.checked) setMode(radio.value); });
});

// --- start ------------------------------------------------------------------------------------

document.querySelectorAll(".origin").forEach((span) => { span.textContent = window.location.origin; });
const checked = document.querySelector('input[name="mode"]:checked');
setMode(checked ? checked.value : "digit");      // a reload may keep the other radio button checked

fetch("api/health")
  .then((response) => response.json())
  .then((health) => {
    $("model").textContent = `Model: ${health.model}.`;
    state.maxUpload = health.max_upload_bytes;
    $("max-upload").textContent = megabytes(health.max_upload_bytes);
    document.body.dataset.ready = "true";
  })
  .catch(() => showError("The server cannot be reached. Is nndl serve still running?"));
