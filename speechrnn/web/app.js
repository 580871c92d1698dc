// The speechrnn page: record speech (sent as 16-bit PCM WAV to /api/transcribe), write on a canvas (strokes
// of [x, y, t] points sent as JSON to /api/ink), and have words written (JSON text to /api/write; the strokes that
// come back are drawn point by point). Plain JavaScript, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
let limits = { max_upload_bytes: 50e6 };

function say(section, text, isError = false) {
  const element = $(section + "-message");
  element.textContent = text;
  element.classList.toggle("error", isError);
}

async function post(path, body, type) {
  let response;
  try {
    response = await fetch(path, { method: "POST", body, headers: { "Content-Type": type } });
  } catch (err) {
    throw new Error("could not reach the server (is `speechrnn serve` still running?)");
  }
  let data = null;
  try { data = await response.json(); } catch (err) { /* not JSON: reported below */ }
  if (!response.ok) throw new Error((data && data.error) || `the server answered HTTP ${response.status}`);
  return data;
}

function showWords(section, words, withTimes) {
  // each word in bold with its confidence (and, for speech, its time in the recording)
  const list = $(section + "-words");
  list.replaceChildren();
  for (const w of words) {
    const item = document.createElement("li");
    const word = document.createElement("b");
    word.textContent = w.word;
    const times = withTimes ? `${w.start.toFixed(2)}–${w.end.toFixed(2)} s, ` : "";
    item.append(word, ` ${times}${Math.round(100 * w.confidence)} %`);
    list.append(item);
  }
}

async function start() {
  let models;
  try {
    const response = await fetch("api/models");
    models = await response.json();
  } catch (err) {
    $("status").textContent = "cannot reach the server: is `speechrnn serve` running?";
    return;
  }
  limits = models;
  const describe = (m) => `${m.bundle} (${m.decoder}): ${m.knows}.`;
  for (const section of ["audio", "ink"]) {
    if (models[section]) $(section + "-how").textContent = models[section].how;
  }
  if (models.audio) {
    $("audio-model").textContent = describe(models.audio);
    $("record").disabled = false;
    $("audio-file").disabled = false;
  } else {
    $("audio-model").textContent = "no speech model loaded";
  }
  if (models.ink) {
    $("ink-model").textContent = describe(models.ink);
    $("ink-read").disabled = false;
  } else {
    $("ink-model").textContent = "no handwriting model loaded";
  }
  if (models.writer) {
    $("write-how").textContent = models.writer.how;
    $("write-model").textContent = `${models.writer.bundle}: ${models.writer.knows}.`;
    for (const id of ["write-text", "write-go", "write-bias", "write-seed", "write-style", "write-style-text"]) {
      $(id).disabled = false;
    }
    $("write-text").maxLength = $("write-style-text").maxLength = models.writer.max_chars;
    $("write-bias").value = models.writer.default_bias;
    showBias();
  } else {
    $("write-model").textContent = "no writer loaded: start `speechrnn serve an4 unipen unipen-writer` to have " +
      "words written";
  }
  $("status").textContent = "ready";
  document.body.dataset.ready = "1";
}

// ---------------------------------------------------------------------------------------------------- speech

const recording = { stream: null, context: null, chunks: [], samples: 0, timer: null, started: 0 };

function showAudio(data) {
  $("audio-text").textContent = data.text;
  showWords("audio", data.words, true);
  const seconds = data.duration.toFixed(1);
  const heard = data.gate && data.gate.speech === false
    ? `no speech heard (${data.gate.reason}): speak closer to the microphone, or louder`
    : "nothing recognised: say one of the things the model knows";
  say("audio", data.text ? `${seconds} s of audio, read in ${data.seconds.toFixed(2)} s` : `${seconds} s of audio: ${heard}`);
}

async function transcribe(body, type) {
  $("audio").dataset.state = "busy";
  $("audio-text").textContent = "";
  $("audio-words").replaceChildren();
  say("audio", "recognising…");
  try {
    showAudio(await post("api/transcribe", body, type));
  } catch (err) {
    say("audio", `Could not read that recording: ${err.message}`, true);
  }
  $("audio").dataset.state = "done";
}

function wavFile(chunks, count, rate) {
  // 16-bit PCM mono WAV: the 44-byte RIFF header, then little-endian samples
  const view = new DataView(new ArrayBuffer(44 + 2 * count));
  const text = (at, s) => { for (let i = 0; i < s.length; i++) view.setUint8(at + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * count, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, 2 * count, true);
  let at = 44;
  for (const chunk of chunks) {
    for (let i = 0; i < chunk.length; i++, at += 2) {
      const s = Math.max(-1, Math.min(1, chunk[i]));
      view.setInt16(at, s < 0 ? s * 32768 : s * 32767, true);
    }
  }
  return new Blob([view], { type: "audio/wav" });
}

async function startRecording() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    say("audio", "this browser gives the microphone only to https:// or localhost pages: open the page at " +
        "http://127.0.0.1:PORT/ on the machine running `speechrnn serve` (or tunnel the port with ssh -L)", true);
    return;
  }
  $("record").disabled = true;
  say("audio", "asking for the microphone…");
  try {
    // raw sound: the model was trained on unprocessed recordings
    recording.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
    recording.context = new AudioContext();
    await recording.context.audioWorklet.addModule("worklet.js");
  } catch (err) {
    stopDevices();
    $("record").disabled = false;
    const denied = err.name === "NotAllowedError";
    say("audio", denied ? "microphone access was refused: allow it in the browser's site settings and try again"
                        : `cannot record (${err.name}: ${err.message})`, true);
    return;
  }
  const context = recording.context;
  const source = context.createMediaStreamSource(recording.stream);
  const node = new AudioWorkletNode(context, "capture");
  recording.chunks = [];
  recording.samples = 0;
  const maxSamples = Math.floor((limits.max_upload_bytes - 44) / 2);
  node.port.onmessage = (event) => {
    if (recording.context !== context) return;
    recording.chunks.push(event.data);
    recording.samples += event.data.length;
    if (recording.samples >= maxSamples) stopRecording("the upload limit is reached: ");
  };
  source.connect(node);
  node.connect(context.destination);  // keeps the worklet running; it outputs silence
  recording.started = performance.now();
  recording.timer = setInterval(() => {
    $("record-time").textContent = `${((performance.now() - recording.started) / 1000).toFixed(1)} s`;
  }, 100);
  $("record").textContent = "Stop";
  $("record").disabled = false;
  $("audio").dataset.state = "recording";
  say("audio", "recording… press Stop when done");
}

function stopDevices() {
  if (recording.stream) recording.stream.getTracks().forEach((track) => track.stop());
  if (recording.context) recording.context.close();
  clearInterval(recording.timer);
  recording.stream = recording.context = null;
}

function stopRecording(why = "") {
  if (!recording.context) return;
  const rate = recording.context.sampleRate;
  stopDevices();
  $("record").textContent = "Record";
  const wav = wavFile(recording.chunks, recording.samples, rate);
  recording.chunks = [];
  const playback = $("audio-playback");
  if (playback.src) URL.revokeObjectURL(playback.src);
  playback.src = URL.createObjectURL(wav);
  playback.hidden = false;
  if (why) say("audio", why + "stopped");
  transcribe(wav, "audio/wav");
}

$("record").addEventListener("click", () => {
  if (recording.context) stopRecording(); else startRecording();
});

$("audio-file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (!file) return;
  if (file.size > limits.max_upload_bytes) {
    say("audio", `${file.name} is ${(file.size / 1e6).toFixed(1)} MB, over the server's limit of ` +
        `${limits.max_upload_bytes / 1e6} MB; choose a shorter file`, true);
    return;
  }
  $("audio-playback").hidden = true;
  transcribe(file, file.type || "application/octet-stream");
  event.target.value = "";
});

// ---------------------------------------------------------------------------------------------------- handwriting

const canvas = $("ink-canvas");
const pen = canvas.getContext("2d");
const ink = { strokes: [], current: null, pointer: null, t0: null };

// a canvas sized to its box in device pixels, and its pen reset (resizing clears both)
function fitToBox(surface, context) {
  const ratio = window.devicePixelRatio || 1;
  surface.width = Math.round(surface.clientWidth * ratio);
  surface.height = Math.round(surface.clientHeight * ratio);
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.lineWidth = 2.5;
  context.lineCap = context.lineJoin = "round";
  context.strokeStyle = "#1a237e";
}

function fitCanvas() {
  fitToBox(canvas, pen);
  redraw();
}

function redraw() {
  pen.clearRect(0, 0, canvas.width, canvas.height);
  for (const stroke of ink.strokes) {
    pen.beginPath();
    stroke.forEach(([x, y], i) => (i ? pen.lineTo(x, y) : pen.moveTo(x, y)));
    if (stroke.length === 1) pen.lineTo(stroke[0][0] + 0.1, stroke[0][1]);
    pen.stroke();
  }
}

function addPoint(event) {
  const box = canvas.getBoundingClientRect();
  const x = +(event.clientX - box.left).toFixed(2), y = +(event.clientY - box.top).toFixed(2);
  if (ink.t0 === null) ink.t0 = event.timeStamp;
  const stroke = ink.current;
  const last = stroke[stroke.length - 1];
  if (last && last[0] === x && last[1] === y) return;
  const t = Math.max(+((event.timeStamp - ink.t0) / 1000).toFixed(3), last ? last[2] : 0);
  stroke.push([x, y, t]);
  if (last) {
    pen.beginPath();
    pen.moveTo(last[0], last[1]);
    pen.lineTo(x, y);
    pen.stroke();
  }
}

canvas.addEventListener("pointerdown", (event) => {
  if (event.pointerType === "mouse" && event.button !== 0) return;
  if (ink.current) return;  // one pen at a time
  canvas.setPointerCapture(event.pointerId);
  ink.pointer = event.pointerId;
  ink.current = [];
  ink.strokes.push(ink.current);
  addPoint(event);
  event.preventDefault();
});

canvas.addEventListener("pointermove", (event) => {
  if (!ink.current || event.pointerId !== ink.pointer) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const e of events.length ? events : [event]) addPoint(e);
});

function endStroke(event) {
  if (!ink.current || event.pointerId !== ink.pointer) return;
  addPoint(event);
  if (ink.current.length === 1) redraw();  // a dot
  ink.current = ink.pointer = null;
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

function clearInk() {
  ink.strokes = [];
  ink.current = ink.pointer = ink.t0 = null;
  $("ink-text").textContent = "";
  $("ink-words").replaceChildren();
  say("ink", "");
  redraw();
}

$("ink-clear").addEventListener("click", clearInk);
$("ink-undo").addEventListener("click", () => {
  if (ink.current) return;
  ink.strokes.pop();
  if (!ink.strokes.length) ink.t0 = null;
  redraw();
});

$("ink-read").addEventListener("click", async () => {
  if (!ink.strokes.length) {
    say("ink", "write something on the canvas first", true);
    return;
  }
  $("ink").dataset.state = "busy";
  $("ink-text").textContent = "";
  $("ink-words").replaceChildren();
  say("ink", "recognising…");
  try {
    const data = await post("api/ink", JSON.stringify({ strokes: ink.strokes, y_down: true }), "application/json");
    $("ink-text").textContent = data.text;
    showWords("ink", data.words, false);  // ink word times are in resampled points: only the confidences
    say("ink", data.text ? `read in ${data.seconds.toFixed(2)} s`
                         : "nothing recognised: write a word or a line, as large as the box allows");
  } catch (err) {
    say("ink", `Could not read that writing: ${err.message}`, true);
  }
  $("ink").dataset.state = "done";
});

// ---------------------------------------------------------------------------------------------------- writing

const board = $("write-canvas");
const quill = board.getContext("2d");
// the last answer's strokes (writing heights, y up) as screen points in the order written ({x, y, first: the
// first of its stroke}), and how many of them are drawn so far
const writing = { strokes: [], path: [], drawn: 0, perFrame: 2, frame: null };
const WRITE_MARGIN = 20;  // px around the writing

function fitBoard() {
  fitToBox(board, quill);
  placeWriting();
  quill.clearRect(0, 0, board.width, board.height);
  drawPoints(0, writing.drawn);  // what was drawn already, at the new size
}

function placeWriting() {
  // y flipped (the writer's y is up), scaled to fit the canvas within the margin, one writing height at most half
  // its height (a short word is not blown up), centred
  let [minX, minY, maxX, maxY] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const stroke of writing.strokes) {
    for (const [x, y] of stroke) {
      minX = Math.min(minX, x); maxX = Math.max(maxX, x);
      minY = Math.min(minY, y); maxY = Math.max(maxY, y);
    }
  }
  const width = board.clientWidth - 2 * WRITE_MARGIN, height = board.clientHeight - 2 * WRITE_MARGIN;
  const scale = Math.min(width / Math.max(maxX - minX, 1e-6), height / Math.max(maxY - minY, 1e-6), height / 2);
  const left = (board.clientWidth - (maxX - minX) * scale) / 2, top = (board.clientHeight - (maxY - minY) * scale) / 2;
  writing.path = writing.strokes.flatMap((stroke) => stroke.map(([x, y], i) => (
    { x: left + (x - minX) * scale, y: top + (maxY - y) * scale, first: i === 0 })));
}

function drawPoints(from, to) {
  // the lines to points from..to-1 (each from the point before it in its stroke); a stroke of one point is a dot
  const path = writing.path;
  quill.beginPath();
  for (let i = from; i < to; i++) {
    const p = path[i];
    if (!p.first) {
      quill.moveTo(path[i - 1].x, path[i - 1].y);
      quill.lineTo(p.x, p.y);
    } else if (i + 1 >= path.length || path[i + 1].first) {
      quill.moveTo(p.x, p.y);
      quill.lineTo(p.x + 0.1, p.y);
    }
  }
  quill.stroke();
}

function step() {
  // a few points a frame: a line of text takes a few seconds at most
  const next = Math.min(writing.path.length, writing.drawn + writing.perFrame);
  drawPoints(writing.drawn, next);
  writing.drawn = next;
  if (next < writing.path.length) {
    writing.frame = requestAnimationFrame(step);
  } else {
    writing.frame = null;
    $("write").dataset.state = "done";
  }
}

function finishWriting() {
  // the writing being animated, drawn to its end at once
  if (writing.frame === null) return;
  cancelAnimationFrame(writing.frame);
  writing.frame = null;
  drawPoints(writing.drawn, writing.path.length);
  writing.drawn = writing.path.length;
}

function showWriting(strokes) {
  finishWriting();
  writing.strokes = strokes;
  writing.drawn = 0;
  placeWriting();
  writing.perFrame = Math.max(2, Math.ceil(writing.path.length / 240));
  quill.clearRect(0, 0, board.width, board.height);
  $("write").dataset.state = "writing";
  writing.frame = requestAnimationFrame(step);
}

function showBias() {
  $("write-bias-value").textContent = Number($("write-bias").value).toFixed(1);
}

async function writeText(inMyStyle) {
  const text = $("write-text").value.trim();
  if (!text) {
    say("write", "type the words to write first", true);
    return;
  }
  const seed = $("write-seed").value.trim();
  const body = { text, bias: Number($("write-bias").value), seed: seed === "" ? 0 : Number(seed) };
  if (inMyStyle) {
    if (!ink.strokes.length) {
      say("write", "write a sample on the handwriting canvas above first: the writer imitates it", true);
      return;
    }
    body.style = { strokes: ink.strokes.filter((stroke) => stroke.length), y_down: true };
    const said = $("write-style-text").value.trim();
    if (said) body.style_text = said;  // else the server reads the sample with its handwriting model
  }
  finishWriting();
  $("write").dataset.state = "busy";
  $("write-go").disabled = $("write-style").disabled = true;
  say("write", inMyStyle ? "writing in your style…" : "writing…");
  try {
    const data = await post("api/write", JSON.stringify(body), "application/json");
    const style = data.style_text === undefined ? "" : ` in the style of your “${data.style_text}”`;
    const unfinished = data.finished ? "" : "; the writer stopped before the end: try another seed, or a higher bias";
    say("write", `“${data.text}” written${style} in ${data.seconds.toFixed(2)} s${unfinished}`);
    showWriting(data.strokes);
  } catch (err) {
    say("write", `Could not write that: ${err.message}`, true);
    $("write").dataset.state = "done";
  }
  $("write-go").disabled = $("write-style").disabled = false;
}

$("write-go").addEventListener("click", () => writeText(false));
$("write-style").addEventListener("click", () => writeText(true));
$("write-text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !$("write-go").disabled) writeText(false);
});
$("write-bias").addEventListener("input", showBias);

window.addEventListener("resize", () => { fitCanvas(); fitBoard(); });
fitCanvas();
fitBoard();
start();
