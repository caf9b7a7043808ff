// A turn's time to first audio against its budgets, drawn on a canvas from the `turn`
// event's metrics: the picture of `voxpipe run --plot` (voxpipe/plot/timeline.py), left
// panel. x = 0 is the end of the user's speech; the stages tile it up to first audio.

// The stages, in order: name -> [start stamp, end stamp] (voxpipe.metrics.STAGES).
const STAGES = {
  asr_finalization: ["speech_end", "asr_final"],
  handoff: ["asr_final", "llm_request"],
  llm_ttft: ["llm_request", "llm_first_token"],
  first_phrase: ["llm_first_token", "tts_request"],
  tts_ttfb: ["tts_request", "tts_first_audio"],
  playout: ["tts_first_audio", "playout_start"],
};
// Deadline budgets: name -> the stamp their clock starts at (voxpipe.budgets.DEADLINES).
const DEADLINE_STARTS = {
  asr_processing: "speech_start",
  asr_finalization: "speech_end",
  llm_first_token: "llm_request",
  tts_first_chunk: "tts_request",
  time_to_first_audio: "speech_end",
};
// Rate budgets: name -> what their figure is (voxpipe.budgets.RATES).
const RATES = {
  llm_token_generation: "mean ms between LLM text deltas after the first",
  tts_chunk_generation: "mean ms between TTS audio frames of a phrase after its first",
};

export const STAGE_COLOURS = {
  asr_finalization: "#1f77b4",
  handoff: "#8c564b",
  llm_ttft: "#ff7f0e",
  first_phrase: "#e377c2",
  tts_ttfb: "#9467bd",
  playout: "#17becf",
};
const LIGHT_STAGES = new Set(["first_phrase", "playout"]); // dark text on these
export const VERDICT_COLOURS = { met: "#009e73", missed: "#d55e00", undecided: "#8c8c8c" };
export const OUTCOME_COLOURS = {
  ok: "#56b4e9",
  interrupted: "#e69f00",
  failed: "#404040",
  cancelled: "#cc79a7",
};

const FONT = "12px system-ui, sans-serif";
const SMALL = "11px system-ui, sans-serif";
const BOLD = "bold 12px system-ui, sans-serif";
const TITLE = "bold 13px system-ui, sans-serif";
const GEOMETRY = { title: 24, lane: 32, bar: 34, events: 24, row: 20, axis: 34, gap: 8 };

// --- what a turn shows, in ms from its origin ------------------------------------------

function stampsOf(turn) {
  return Object.fromEntries(
    Object.entries(turn.timestamps_ms).filter(([, value]) => value !== null),
  );
}

function originOf(stamps) {
  const times = Object.values(stamps);
  if ("speech_end" in stamps) return stamps.speech_end;
  return times.length ? Math.min(...times) : null;
}

function stopOf(stamps) {
  const times = Object.values(stamps);
  if ("turn_end" in stamps) return stamps.turn_end;
  return times.length ? Math.max(...times) : null;
}

function stageSegments(stamps, origin) {
  const stop = stopOf(stamps);
  const segments = [];
  for (const [name, [a, b]] of Object.entries(STAGES)) {
    const start = stamps[a];
    const end = stamps[b];
    if (start !== undefined && end !== undefined && end >= start) {
      segments.push({ name, start: start - origin, end: end - origin, unfinished: false });
    } else if (start !== undefined && end === undefined && stop !== null && stop > start) {
      segments.push({ name, start: start - origin, end: stop - origin, unfinished: true });
    }
  }
  return segments;
}

function budgetOrder(name) {
  const known = [...Object.keys(DEADLINE_STARTS), ...Object.keys(RATES)];
  const at = known.indexOf(name);
  return at === -1 ? known.length : at;
}

function verdictText(budget) {
  if (budget.ok === null) return "n/a";
  const acted = ["none", "warn"].includes(budget.action) ? "" : `, ${budget.action}`;
  if (budget.actual_ms === null) return `over${acted}`;
  const rate = budget.name in RATES;
  const actual = rate ? budget.actual_ms.toFixed(1) : msText(budget.actual_ms);
  const unit = rate ? " ms avg" : " ms";
  if (budget.ok) return `${actual}${unit} ok`;
  return `${actual}${unit} over +${msText(budget.actual_ms - budget.budget_ms)}${acted}`;
}

function verdictColour(ok) {
  if (ok === null) return VERDICT_COLOURS.undecided;
  return ok ? VERDICT_COLOURS.met : VERDICT_COLOURS.missed;
}

function budgetRow(budget, stamps, origin) {
  const row = {
    label: `${budget.name} ≤${msText(budget.budget_ms)} ms`,
    verdict: verdictText(budget),
    colour: verdictColour(budget.ok),
    ok: budget.ok,
    note: "",
  };
  if (!(budget.name in DEADLINE_STARTS)) {
    return { ...row, note: `rate: ${RATES[budget.name] ?? "judged when its stage ends"}` };
  }
  const begin = stamps[DEADLINE_STARTS[budget.name]];
  if (begin === undefined) return { ...row, note: "stage not reached" };
  const start = begin - origin;
  const deadline = start + budget.budget_ms;
  const stop = stopOf(stamps);
  let end = budget.actual_ms === null ? null : start + budget.actual_ms;
  const unfinished = end === null && stop !== null && stop > begin;
  if (unfinished) end = stop - origin;
  const note = deadline >= 0 ? "" : `during user speech (deadline at ${msText(deadline)} ms)`;
  return { ...row, start, deadline, end, unfinished, note };
}

function budgetRows(turn, stamps, origin) {
  return [...turn.budgets]
    .sort((a, b) => budgetOrder(a.name) - budgetOrder(b.name))
    .map((budget) => budgetRow(budget, stamps, origin));
}

function fillerSaid(turn) {
  const filler = turn.budgets.find((budget) => budget.action === "filler");
  return filler ? filler.detail.replace(/^said /, "") : "";
}

// First audio, a filler's first sound, a barge-in before first audio, no audio at all.
function markedEvents(turn, stamps, origin) {
  const events = [];
  const playout = stamps.playout_start;
  if (playout !== undefined) {
    const at = playout - origin;
    events.push({ at, text: `first audio ${msText(at)} ms`, kind: "first-audio" });
  }
  const sound = stamps.first_sound;
  if (sound !== undefined && (playout === undefined || sound < playout)) {
    const at = sound - origin;
    const what = fillerSaid(turn) ? "filler" : "first sound";
    events.push({ at, text: `${what} ${msText(at)} ms`, kind: "first-sound" });
  }
  const detected = stamps.interruption_detected;
  if (detected !== undefined && (playout === undefined || detected < playout)) {
    const at = detected - origin;
    events.push({ at, text: `barge-in ${msText(at)} ms`, kind: "barge-in" });
  }
  const stop = stopOf(stamps);
  if (playout === undefined && detected === undefined && stop !== null) {
    const at = stop - origin;
    const what = ["failed", "cancelled"].includes(turn.outcome) ? turn.outcome : "no audio by";
    events.push({ at, text: `${what} ${msText(at)} ms`, kind: "no-audio" });
  }
  return events.sort((a, b) => a.at - b.at);
}

function shownMs(segments, events, rows) {
  const ends = [100];
  for (const segment of segments) ends.push(segment.end);
  for (const event of events) ends.push(event.at);
  for (const row of rows) {
    for (const x of [row.deadline, row.end]) if (x !== undefined && x !== null) ends.push(x);
  }
  return Math.max(...ends) * 1.12;
}

// --- numbers and text ---------------------------------------------------------------------

function msText(value) {
  return Math.abs(value) < 10 && value !== Math.round(value) ? value.toFixed(1) : value.toFixed(0);
}

function clip(text, most = 40) {
  return text.length <= most ? text : `${text.slice(0, most - 1)}…`;
}

function titleOf(turn) {
  const title = `Turn ${turn.index}: "${clip(turn.user_text)}" → "${clip(turn.agent_text)}"`;
  return turn.interrupted ? `${title} (interrupted)` : title;
}

function textWidth(ctx, text, font) {
  ctx.font = font;
  return ctx.measureText(text).width;
}

// Place boxes of `widths` wanting to start at `starts` side by side within [lo, hi].
function spread(starts, widths, lo, hi, gap) {
  const lefts = [];
  starts.forEach((start, i) => {
    const after = i === 0 ? lo : lefts[i - 1] + widths[i - 1] + gap;
    lefts.push(Math.max(start, after));
  });
  for (let i = lefts.length - 1; i >= 0; i--) {
    const limit = i === lefts.length - 1 ? hi : lefts[i + 1] - gap;
    lefts[i] = Math.max(lo, Math.min(lefts[i], limit - widths[i]));
  }
  return lefts;
}

// --- drawing ------------------------------------------------------------------------------

// The turn's layout: columns sized to its labels and verdicts, rows below the bar.
function layoutOf(ctx, width, rows) {
  const g = GEOMETRY;
  const labelW = Math.max(90, ...rows.map((row) => textWidth(ctx, row.label, FONT))) + 14;
  const verdictW = Math.max(110, ...rows.map((row) => textWidth(ctx, row.verdict, BOLD))) + 14;
  const panelTop = g.title;
  const barTop = panelTop + g.lane;
  const rowsTop = barTop + g.bar + g.events;
  const panelBottom = rowsTop + g.row * rows.length + g.gap;
  return {
    width,
    left: labelW,
    right: width - verdictW,
    panelTop,
    barTop,
    eventsY: barTop + g.bar + g.events / 2,
    rowsTop,
    panelBottom,
    height: panelBottom + g.axis,
  };
}

function drawTitle(ctx, turn, layout) {
  ctx.font = TITLE;
  ctx.textBaseline = "middle";
  ctx.textAlign = "left";
  ctx.fillStyle = "#000";
  ctx.fillText(titleOf(turn), 0, GEOMETRY.title / 2);
  ctx.textAlign = "right";
  ctx.fillStyle = OUTCOME_COLOURS[turn.outcome] ?? "#000";
  ctx.fillText(turn.outcome, layout.width, GEOMETRY.title / 2);
}

function tickStep(maxMs) {
  const raw = maxMs / 8;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= raw);
}

function drawAxis(ctx, x, maxMs, layout) {
  const { left, right, panelTop, panelBottom } = layout;
  ctx.font = SMALL;
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const step = tickStep(maxMs);
  for (let ms = 0; ms <= maxMs; ms += step) {
    ctx.strokeStyle = "#e6e6e6";
    ctx.lineWidth = 1;
    line(ctx, x(ms), panelTop, x(ms), panelBottom);
    ctx.fillStyle = "#333";
    ctx.fillText(String(ms), x(ms), panelBottom + 3);
  }
  ctx.fillText(
    "time to first audio: ms from the end of the user's speech",
    (left + right) / 2,
    panelBottom + 17,
  );
  ctx.strokeStyle = "#555";
  ctx.strokeRect(left + 0.5, panelTop + 0.5, right - left - 1, panelBottom - panelTop - 1);
}

function stageLabel(segment) {
  const width = msText(segment.end - segment.start);
  return segment.unfinished
    ? `${segment.name} ≥${width} ms, unfinished`
    : `${segment.name} ${width} ms`;
}

function drawStageBar(ctx, segments, x, layout) {
  const top = layout.barTop;
  const h = GEOMETRY.bar;
  const outside = [];
  for (const segment of segments) {
    const colour = STAGE_COLOURS[segment.name];
    const a = x(segment.start);
    const w = Math.max(x(segment.end) - a, 1);
    ctx.fillStyle = segment.unfinished ? hatch(ctx, colour) : colour;
    ctx.fillRect(a, top, w, h);
    if (segment.unfinished) {
      ctx.strokeStyle = colour;
      ctx.strokeRect(a + 0.5, top + 0.5, w - 1, h - 1);
    }
    if (!segment.unfinished && w >= insideWidth(ctx, segment) + 8) {
      drawInsideLabel(ctx, segment, a + w / 2, top + h / 2);
    } else {
      outside.push(segment);
    }
  }
  drawLeaderLabels(ctx, outside, x, layout);
}

// Inside the bar a stage's label takes two lines: its name, then its ms.
function insideLines(segment) {
  return [segment.name, `${msText(segment.end - segment.start)} ms`];
}

function insideWidth(ctx, segment) {
  return Math.max(...insideLines(segment).map((text) => textWidth(ctx, text, SMALL)));
}

function drawInsideLabel(ctx, segment, centre, middle) {
  const [name, ms] = insideLines(segment);
  ctx.font = SMALL;
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillStyle = LIGHT_STAGES.has(segment.name) ? "#000" : "#fff";
  ctx.fillText(name, centre, middle - 7);
  ctx.fillText(ms, centre, middle + 7);
}

// Labels of stages too narrow for them, side by side above the bar, each with a leader line.
function drawLeaderLabels(ctx, segments, x, layout) {
  ctx.font = SMALL;
  const widths = segments.map((segment) => textWidth(ctx, stageLabel(segment), SMALL));
  const centres = segments.map((segment) => (x(segment.start) + x(segment.end)) / 2);
  const starts = centres.map((centre, i) => centre - widths[i] / 2);
  const lefts = spread(starts, widths, layout.left + 2, layout.right - 2, 8);
  const textY = layout.panelTop + GEOMETRY.lane / 2 - 2;
  segments.forEach((segment, i) => {
    ctx.strokeStyle = "#555";
    ctx.lineWidth = 0.8;
    line(ctx, centres[i], layout.barTop, lefts[i] + widths[i] / 2, textY + 7);
    ctx.fillStyle = "#000";
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.fillText(stageLabel(segment), lefts[i], textY);
  });
}

// Markers and labels below the bar; first audio (and a filler's first sound) as a line
// down through the budget rows.
function drawEvents(ctx, events, x, layout) {
  const y = layout.eventsY;
  const widths = events.map((event) => textWidth(ctx, event.text, BOLD));
  const starts = events.map((event, i) => {
    const limit = i + 1 < events.length ? x(events[i + 1].at) : layout.right;
    const right = x(event.at) + 8;
    return right + widths[i] + 8 <= limit ? right : x(event.at) - 8 - widths[i];
  });
  const lefts = spread(starts, widths, layout.left + 2, layout.right - 2, 8);
  events.forEach((event, i) => {
    if (event.kind === "first-audio" || event.kind === "first-sound") {
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 1.5;
      ctx.setLineDash(event.kind === "first-sound" ? [2, 3] : []);
      line(ctx, x(event.at), layout.barTop, x(event.at), layout.panelBottom);
      ctx.setLineDash([]);
    }
    drawMarker(ctx, event.kind, x(event.at), y);
    ctx.font = BOLD;
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.fillStyle = "#000";
    ctx.fillText(event.text, lefts[i], y);
  });
}

// First audio: a triangle pointing down; first sound: a diamond; barge-in: a bar; no
// audio: a cross.
function drawMarker(ctx, kind, cx, cy) {
  ctx.fillStyle = "#000";
  ctx.beginPath();
  if (kind === "first-audio") {
    ctx.moveTo(cx - 5, cy - 5);
    ctx.lineTo(cx + 5, cy - 5);
    ctx.lineTo(cx, cy + 4);
  } else if (kind === "first-sound") {
    ctx.moveTo(cx, cy - 5);
    ctx.lineTo(cx + 5, cy);
    ctx.lineTo(cx, cy + 5);
    ctx.lineTo(cx - 5, cy);
  } else if (kind === "barge-in") {
    ctx.rect(cx - 1, cy - 6, 2, 12);
  } else {
    ctx.strokeStyle = "#000";
    ctx.lineWidth = 2;
    line(ctx, cx - 4, cy - 4, cx + 4, cy + 4);
    line(ctx, cx - 4, cy + 4, cx + 4, cy - 4);
  }
  ctx.fill();
}

function drawBudgetRows(ctx, rows, x, layout) {
  rows.forEach((row, i) => {
    const y = layout.rowsTop + GEOMETRY.row * (i + 0.5);
    if (i % 2 === 0) {
      ctx.fillStyle = "#f4f4f4";
      ctx.fillRect(
        layout.left + 1,
        y - GEOMETRY.row / 2,
        layout.right - layout.left - 2,
        GEOMETRY.row,
      );
    }
    drawRowTexts(ctx, row, y, layout);
    drawRowSpan(ctx, row, y, x);
  });
}

// The budget's name and limit left of the panel, its verdict right of it in its colour, and
// a note in the row when it has no span to show.
function drawRowTexts(ctx, row, y, layout) {
  ctx.textBaseline = "middle";
  ctx.font = FONT;
  ctx.textAlign = "right";
  ctx.fillStyle = "#000";
  ctx.fillText(row.label, layout.left - 8, y);
  ctx.font = row.ok === false ? BOLD : FONT;
  ctx.textAlign = "left";
  ctx.fillStyle = row.colour;
  ctx.fillText(row.verdict, layout.right + 8, y);
  if (row.note) {
    ctx.font = `italic ${SMALL}`;
    ctx.fillStyle = "#666";
    ctx.fillText(row.note, layout.left + 8, y);
  }
}

// The window from the stage's start to its deadline (grey), the actual time (a bar in the
// verdict's colour, hatched while the stage never ended) and the deadline (a tick).
function drawRowSpan(ctx, row, y, x) {
  if (row.start === undefined || row.deadline < 0) return;
  const h = GEOMETRY.row;
  ctx.strokeStyle = "#b0b0b0";
  ctx.lineWidth = 1;
  line(ctx, x(row.start), y, x(row.deadline), y);
  if (row.end !== null) {
    const a = x(row.start);
    const w = Math.max(x(row.end) - a, 1);
    ctx.globalAlpha = row.unfinished ? 1 : 0.45;
    ctx.fillStyle = row.unfinished ? hatch(ctx, row.colour) : row.colour;
    ctx.fillRect(a, y - h * 0.22, w, h * 0.44);
    ctx.globalAlpha = 1;
  }
  ctx.fillStyle = row.colour;
  ctx.fillRect(x(row.deadline) - 2, y - h * 0.42, 4, h * 0.84);
}

function line(ctx, x1, y1, x2, y2) {
  ctx.beginPath();
  ctx.moveTo(x1, y1);
  ctx.lineTo(x2, y2);
  ctx.stroke();
}

function hatch(ctx, colour) {
  const tile = new OffscreenCanvas(6, 6);
  const t = tile.getContext("2d");
  t.strokeStyle = colour;
  t.lineWidth = 1.2;
  line(t, 0, 6, 6, 0);
  return ctx.createPattern(tile, "repeat");
}

/** Draw `turn` (a `turn` event's metrics) on `canvas`, as wide as the canvas is shown. */
export function drawTurn(canvas, turn) {
  const ctx = canvas.getContext("2d");
  const stamps = stampsOf(turn);
  const origin = originOf(stamps);
  const segments = origin === null ? [] : stageSegments(stamps, origin);
  const events = origin === null ? [] : markedEvents(turn, stamps, origin);
  const rows = origin === null ? [] : budgetRows(turn, stamps, origin);
  const layout = layoutOf(ctx, canvas.clientWidth, rows);
  const ratio = window.devicePixelRatio || 1;
  canvas.height = Math.round(layout.height * ratio);
  canvas.style.height = `${layout.height}px`;
  canvas.width = Math.round(layout.width * ratio);
  ctx.scale(ratio, ratio);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, layout.width, layout.height);
  drawTitle(ctx, turn, layout);
  const maxMs = shownMs(segments, events, rows);
  const x = (ms) =>
    layout.left + (Math.min(Math.max(ms, 0), maxMs) / maxMs) * (layout.right - layout.left);
  drawAxis(ctx, x, maxMs, layout);
  drawBudgetRows(ctx, rows, x, layout);
  drawStageBar(ctx, segments, x, layout);
  drawEvents(ctx, events, x, layout);
}
