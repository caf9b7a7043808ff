// The voxpipe serve page: talk to the agent over the WebSocket protocol
// (README.md, "The wire protocol"). The microphone streams from `start` to `stop`, silence
// included; the agent's audio plays through a queue that `clear` (barge-in) empties.

import { drawTurn, STAGE_COLOURS, VERDICT_COLOURS } from "./timeline.js";

const CAPTURE_MS = 20; // audio per message to the server
const JITTER_MS = 80; // playback waits this long after its queue ran dry
const MAX_RATE = 48000; // the protocol's highest sample rate
const DRAIN_MAX_MS = 2000; // longest wait for queued audio to play out at the end

const ui = Object.fromEntries(
  "talk connection state backends problem transcript log turns legend"
    .split(" ")
    .map((id) => [id, document.getElementById(id)]),
);

// What the page has done so far, for a look from the console (and the browser test).
const voxpipe = {
  connection: "idle",
  state: null,
  sampleRate: null, // the AudioContext's: audio goes both ways at this rate
  sentSamples: 0,
  playedSamples: 0,
  queuedSamples: 0,
  clears: [], // per barge-in: the samples dropped from the queue, and the queue after
  drawnTurns: 0,
  events: [], // the server's JSON events, in order
};
window.voxpipe = voxpipe;

let call = null; // the conversation under way
const drawn = new Map(); // canvas -> the turn's metrics, to redraw on resize

// --- the talk button ------------------------------------------------------------------

ui.talk.addEventListener("click", () => (call ? stopTalking() : startTalking()));

function setButton(label, enabled) {
  ui.talk.textContent = label;
  ui.talk.disabled = !enabled;
  ui.talk.classList.toggle("live", label === "Stop");
}

async function startTalking() {
  resetPage();
  setButton("Connecting…", false);
  setConnection("connecting", "opening the microphone…");
  const context = makeAudioContext();
  let stream;
  try {
    stream = await openMicrophone();
  } catch (error) {
    context.close();
    endCall(microphoneProblem(error));
    return;
  }
  call = { context, stream, live: false, opened: false, userLine: null, agentLine: null };
  call.agentLines = new Map();
  try {
    await startAudio(call);
  } catch (error) {
    stream.getTracks().forEach((track) => track.stop());
    context.close();
    call = null;
    endCall(`The page's audio could not start: ${error.message}`);
    return;
  }
  connect(call);
}

function stopTalking() {
  call.live = false;
  send({ type: "stop" });
  setButton("Finishing…", false);
  setConnection("stopping", "finishing the last answer…");
}

// --- audio ----------------------------------------------------------------------------

function makeAudioContext() {
  const context = new AudioContext();
  if (context.sampleRate <= MAX_RATE) return context;
  context.close();
  return new AudioContext({ sampleRate: MAX_RATE });
}

function openMicrophone() {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new DOMException("no mediaDevices", "InsecureContext");
  }
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  return navigator.mediaDevices.getUserMedia({ audio });
}

function microphoneProblem(error) {
  switch (error.name) {
    case "InsecureContext":
      return (
        "This page cannot use the microphone here: browsers allow it only on https:// pages " +
        "and on http://localhost. Open the page at http://localhost:PORT/ or serve it over https."
      );
    case "NotAllowedError":
    case "SecurityError":
      return (
        "The microphone was refused. Allow it for this page (the icon in the address bar), " +
        "then press Talk again."
      );
    case "NotFoundError":
    case "OverconstrainedError":
      return "No microphone was found. Connect one, then press Talk again.";
    case "NotReadableError":
      return "The microphone could not be started: another application may be using it.";
    default:
      return `The microphone could not be opened: ${error.message}`;
  }
}

async function startAudio(call) {
  const { context } = call;
  const rate = context.sampleRate;
  voxpipe.sampleRate = rate;
  await Promise.all(
    ["capture-worklet.js", "playback-worklet.js"].map((file) =>
      context.audioWorklet.addModule(new URL(file, import.meta.url)),
    ),
  );
  call.capture = new AudioWorkletNode(context, "capture", {
    numberOfOutputs: 0,
    processorOptions: { batchSamples: Math.round((rate * CAPTURE_MS) / 1000) },
  });
  context.createMediaStreamSource(call.stream).connect(call.capture);
  call.playback = new AudioWorkletNode(context, "playback", {
    numberOfInputs: 0,
    outputChannelCount: [1],
    processorOptions: { jitterSamples: Math.round((rate * JITTER_MS) / 1000) },
  });
  call.playback.connect(context.destination);
  call.playback.port.onmessage = ({ data }) => onPlaybackReport(data);
  await context.resume();
}

function pcm16ToFloat32(buffer) {
  const view = new DataView(buffer);
  const samples = new Float32Array(buffer.byteLength >> 1);
  for (let i = 0; i < samples.length; i++) {
    samples[i] = view.getInt16(i * 2, true) / 32768;
  }
  return samples;
}

function play(buffer) {
  const samples = pcm16ToFloat32(buffer);
  call.playback.port.postMessage(samples, [samples.buffer]);
}

function onPlaybackReport(report) {
  voxpipe.playedSamples = report.played;
  voxpipe.queuedSamples = report.queued;
  if (report.type === "cleared") {
    voxpipe.clears.push({ dropped: report.dropped, queued: report.queued });
    const ms = Math.round((report.dropped / call.context.sampleRate) * 1000);
    log("clear", `playback cleared: ${ms} ms of the interrupted answer dropped`);
  }
}

// Let the queued audio play out (bounded), then release the microphone and the audio.
async function closeAudio(call) {
  call.stream.getTracks().forEach((track) => track.stop());
  call.capture.port.onmessage = null;
  const queuedMs = (voxpipe.queuedSamples / call.context.sampleRate) * 1000;
  await new Promise((done) => setTimeout(done, Math.min(queuedMs + JITTER_MS, DRAIN_MAX_MS)));
  await call.context.close();
}

// --- the socket -----------------------------------------------------------------------

function socketUrl() {
  const url = new URL("ws", window.location.href);
  url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

function connect(call) {
  setConnection("connecting", "connecting to the agent…");
  const socket = new WebSocket(socketUrl());
  socket.binaryType = "arraybuffer";
  call.socket = socket;
  socket.onopen = () => {
    call.opened = true;
    const rate = call.context.sampleRate;
    send({ type: "start", sample_rate: rate, output_sample_rate: rate });
  };
  socket.onmessage = ({ data }) =>
    typeof data === "string" ? onEvent(JSON.parse(data)) : play(data);
  socket.onclose = (close) => onClose(call, close);
  call.capture.port.onmessage = ({ data }) => {
    if (call.live && socket.readyState === WebSocket.OPEN) {
      socket.send(data);
      voxpipe.sentSamples += data.byteLength / 2;
    }
  };
}

function send(message) {
  call.socket.send(JSON.stringify(message));
}

async function onClose(ended, close) {
  call = null;
  const problem = closeProblem(ended, close);
  if (problem) {
    endCall(problem);
  } else {
    setButton("Talk", true);
    setConnection("ended", `ended: ${ended.end.message}`);
  }
  await closeAudio(ended);
}

// What went wrong, in words, when a conversation closed ("" when it simply ended).
function closeProblem(ended, close) {
  const reason = close.reason ? `: ${close.reason}` : "";
  if (ended.refusal) return `The server refused the conversation: ${ended.refusal}.`;
  if (ended.end?.reason === "completed") return "";
  if (ended.end)
    return `The server ended the conversation (${ended.end.reason}): ${ended.end.message}.`;
  if (!ended.opened) return `Could not connect to ${socketUrl()}: is voxpipe serve running?`;
  return `The connection closed unexpectedly (code ${close.code}${reason}).`;
}

function endCall(problem) {
  setButton("Talk", true);
  setConnection("failed", "not connected");
  showProblem(problem);
}

// --- the server's events --------------------------------------------------------------

const handlers = {
  ready(event) {
    call.live = true;
    call.readyAt = performance.now();
    setButton("Stop", true);
    setConnection("live", "live: talk to the agent");
    ui.backends.textContent = Object.entries(event.backends)
      .map(([role, name]) => `${role}: ${name}`)
      .join(" · ");
  },
  state: (event) => setState(event.state),
  transcript: (event) => showUserText(event.text, event.final),
  agent_text: (event) => showAgentText(event.text, event.turn),
  turn: (event) => addTurn(event.metrics),
  budget(event) {
    const detail = event.detail ? `: ${event.detail}` : "";
    const passed = `${event.name} passed its ${event.budget_ms} ms budget`;
    log("budget", `turn ${event.turn}: ${passed}, ${event.action}${detail}`);
  },
  interruption(event) {
    const whose = event.turn === null ? "the filler" : `turn ${event.turn}`;
    const what = event.held
      ? "user speech over the agent: paused until words come"
      : "barge-in: the agent stopped";
    log("interruption", `${whose}: ${what}`);
  },
  clear: () => call.playback.port.postMessage("clear"),
  error(event) {
    if (event.code === "refused") call.refusal = event.message;
    log("error", `${event.code}: ${event.message}`);
  },
  shutdown(event) {
    showProblem(event.message);
    log("error", event.message);
  },
  end(event) {
    call.end = event;
    call.live = false;
    log(
      event.reason === "completed" ? "info" : "error",
      `session ended (${event.reason}): ${event.message}`,
    );
  },
};

function onEvent(event) {
  voxpipe.events.push(event);
  handlers[event.type]?.(event);
}

// --- the views ------------------------------------------------------------------------

// Empty views and counters for a new conversation.
function resetPage() {
  for (const view of [ui.transcript, ui.log, ui.turns]) view.replaceChildren();
  drawn.clear();
  showProblem("");
  setState(null);
  ui.backends.textContent = "";
  Object.assign(voxpipe, { sentSamples: 0, playedSamples: 0, queuedSamples: 0 });
  Object.assign(voxpipe, { clears: [], drawnTurns: 0, events: [] });
}

function setConnection(status, text) {
  voxpipe.connection = status;
  ui.connection.textContent = text;
  ui.connection.className = `connection ${status}`;
}

function setState(state) {
  voxpipe.state = state;
  ui.state.textContent = state ? state.replaceAll("_", " ") : "—";
  ui.state.className = `state ${state ?? ""}`;
}

function showProblem(text) {
  ui.problem.textContent = text;
  ui.problem.hidden = !text;
}

function addLine(who) {
  const line = document.createElement("p");
  line.className = `line ${who}`;
  const name = document.createElement("span");
  name.className = "who";
  name.textContent = who === "user" ? "You" : "Agent";
  const text = document.createElement("span");
  text.className = "text";
  line.append(name, text);
  ui.transcript.append(line);
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
  return line;
}

function setLineText(line, text) {
  line.querySelector(".text").textContent = text;
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

// Partials replace each other until the final; the next speech starts a new line.
function showUserText(text, final) {
  if (!call.userLine) {
    call.userLine = addLine("user");
    call.agentLine = null;
  }
  setLineText(call.userLine, text);
  call.userLine.classList.toggle("partial", !final);
  if (final) call.userLine = null;
}

// A later agent_text for the same answer carries its whole text again: replace it.
function showAgentText(text, turn) {
  if (!call.agentLine || call.agentLine.dataset.turn !== String(turn)) {
    call.agentLine = addLine("agent");
    call.agentLine.dataset.turn = String(turn);
    if (turn !== null) call.agentLines.set(turn, call.agentLine);
  }
  setLineText(call.agentLine, text.trim());
}

function markInterrupted(metrics) {
  const line = call.agentLines.get(metrics.index);
  if (!line || !metrics.interrupted) return;
  line.classList.add("interrupted");
  const heard = document.createElement("span");
  heard.className = "heard";
  heard.textContent = `interrupted; heard: "${metrics.heard_text}"`;
  line.append(heard);
}

function addTurn(metrics) {
  markInterrupted(metrics);
  const canvas = document.createElement("canvas");
  canvas.className = "turn";
  canvas.dataset.turn = metrics.index;
  ui.turns.prepend(canvas); // the newest turn on top
  drawn.set(canvas, metrics);
  drawTurn(canvas, metrics);
  voxpipe.drawnTurns += 1;
}

function log(kind, text) {
  const entry = document.createElement("li");
  entry.className = kind;
  const time = document.createElement("time");
  const since = call?.readyAt === undefined ? 0 : performance.now() - call.readyAt;
  time.textContent = `${(since / 1000).toFixed(1)} s`;
  entry.append(time, ` ${text}`);
  ui.log.append(entry);
  ui.log.scrollTop = ui.log.scrollHeight;
}

function buildLegend() {
  const items = [
    ...Object.entries(STAGE_COLOURS).map(([name, colour]) => [name, colour, "stage"]),
    ["deadline met", VERDICT_COLOURS.met, "tick"],
    ["deadline missed", VERDICT_COLOURS.missed, "tick"],
    ["not decided", VERDICT_COLOURS.undecided, "tick"],
    ["budget window", "#b0b0b0", "window"],
    ["first audio", "#000", "tick"],
  ];
  for (const [name, colour, kind] of items) {
    const item = document.createElement("span");
    item.className = `key ${kind}`;
    item.style.setProperty("--colour", colour);
    item.textContent = name;
    ui.legend.append(item);
  }
}

window.addEventListener("resize", () => {
  for (const [canvas, metrics] of drawn) drawTurn(canvas, metrics);
});

buildLegend();
