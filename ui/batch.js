// The page of one batch: its progress, rate, plot and table of points, followed live.
import { apiJson, cancelAndDelete, downloadFrom, openPage } from "./api.js";
import { PAGE, badge, el, scroller, setText, showBadge, sleep } from "./dom.js";
import { isNumbers, number, pointStatus, seconds, showTime, since } from "./format.js";
import { scatter, varies } from "./plot.js";
import { BATCH_STATES, batchEnded, endedCount, progressBar } from "./batches.js";

const RATE_WINDOW = 5; // seconds: the rate is that of the points that ended over this last while
const MAX_COMPONENTS = 50; // components of an array variable offered as plot axes

// What the points are: explicit samples, or a DOE over some inputs.
function designOf(batch) {
  const design = batch.design || {};
  if (!design.algo_name) return `${batch.n_samples} samples`;
  return `${design.algo_name}, ${design.n_samples} samples over ${Object.keys(design.design_space || {}).join(", ")}`;
}

// Points per second: over the last RATE_WINDOW seconds of polls, else since the first point started.
function rateMeter() {
  const seen = []; // [seconds, ended points], one per poll
  return (batch) => {
    if (batchEnded(batch)) {
      const ran = batch.started_at && batch.ended_at;
      const took = ran ? (new Date(batch.ended_at) - new Date(batch.started_at)) / 1000 : 0;
      return took > 0 ? endedCount(batch) / took : null;
    }
    const now = performance.now() / 1000;
    seen.push([now, endedCount(batch)]);
    while (seen.length > 2 && now - seen[1][0] >= RATE_WINDOW) seen.shift();
    const [then, before] = seen[0];
    if (now - then >= 1) return (endedCount(batch) - before) / (now - then);
    return batch.started_at ? endedCount(batch) / Math.max(1, since(batch.started_at)) : null;
  };
}

function perSecond(rate) {
  if (rate === null) return "—";
  return (rate >= 10 ? Math.round(rate) : rate >= 1 ? rate.toFixed(1) : rate.toPrecision(2)) + " points/s";
}

function timeLeft(batch, rate) {
  if (batchEnded(batch)) return "none";
  const left = (batch.counts.pending + batch.counts.running) / rate;
  if (!rate) return "—";
  return "about " + (left < 60 ? Math.ceil(left) + " s" : seconds(left)); // an estimate: no decimals
}

// The scalar columns of a results group, {name: [value per point]}: a variable of size 1 is one
// column, a longer array one column per component, x[0], x[1]...
function scalarColumns(group) {
  const columns = new Map();
  for (const [name, values] of Object.entries(group || {})) {
    const sample = values.find((v) => v !== null && v !== undefined);
    const component = (k) => values.map((v) => (Array.isArray(v) ? v[k] : null));
    if (typeof sample === "number") columns.set(name, values);
    else if (isNumbers(sample) && sample.length === 1) columns.set(name, component(0));
    else if (isNumbers(sample)) {
      for (let k = 0; k < Math.min(sample.length, MAX_COMPONENTS); k++) columns.set(`${name}[${k}]`, component(k));
    }
  }
  return columns;
}

// A select of column names that keeps its choice when the names are offered again.
function fillSelect(select, names, fallback) {
  const wanted = select.value || fallback;
  if (select.dataset.names !== names.join("\n")) {
    select.dataset.names = names.join("\n");
    select.replaceChildren(...names.map((name) => el("option", { value: name }, name)));
  }
  if (names.includes(wanted)) select.value = wanted;
}

// The points under the plot, a page at a time: index, job, status, and the two plotted values.
function pointsTable() {
  let offset = 0, table = null, xs = [], ys = [], xName = "", yName = "", lastShown = "";
  const head = el("tr");
  const body = el("tbody");
  const info = el("span", { class: "muted", id: "points-count" });
  const move = (by) => () => { offset = Math.max(0, offset + by); draw(); };
  const previous = el("button", { type: "button", class: "secondary", onclick: move(-PAGE) }, "Previous");
  const next = el("button", { type: "button", class: "secondary", onclick: move(PAGE) }, "Next");
  function draw() {
    if (!table) return;
    const n = table.job_id.length;
    offset = Math.min(offset, Math.max(0, Math.floor((n - 1) / PAGE) * PAGE));
    // Rebuilt only when what it shows changed: a poll must not replace the row under the pointer.
    const end = Math.min(n, offset + PAGE);
    const page = (values) => values.slice(offset, end);
    const shown = JSON.stringify([offset, n, xName, yName,
      page(table.job_id), page(table.job_status), page(table.error), page(xs), page(ys)]);
    if (shown === lastShown) return;
    lastShown = shown;
    head.replaceChildren(...["Point", "Job", "Status", xName, yName].map((h) => el("th", {}, h)));
    const rows = [];
    for (let i = offset; i < end; i++) {
      const id = table.job_id[i], status = pointStatus(table.job_status[i], table.error[i]);
      const error = table.error[i];
      const why = status === "failed" && error ? el("span", { class: "muted error-kind" }, " " + error) : null;
      const open = () => { location.hash = "#/job/" + id; };
      rows.push(el("tr", { class: "clickable", "data-index": i, "data-job": id, onclick: open },
        el("td", { class: "num" }, i), el("td", {}, el("a", { href: "#/job/" + id }, "#" + id)),
        el("td", { class: "status-cell" }, badge(status), why),
        xs[i] === null || xs[i] === undefined ? el("td") : number(xs[i], "td"),
        ys[i] === null || ys[i] === undefined ? el("td") : number(ys[i], "td")));
    }
    body.replaceChildren(...rows);
    info.textContent = n ? `points ${offset + 1}–${end} of ${n}` : "No points.";
    previous.disabled = offset === 0;
    next.disabled = offset + PAGE >= n;
  }
  return {
    node: el("div", { id: "points-holder" }, scroller(el("table", { id: "points" }, el("thead", {}, head), body)),
      el("div", { class: "pager" }, previous, next, info)),
    set(results, x, y, xLabel, yLabel) { table = results; xs = x; ys = y; xName = xLabel; yName = yLabel; draw(); },
  };
}

// The plot of a chosen output against a chosen input (or the point index), and what it leaves out.
function batchPlot() {
  const INDEX = "point index";
  let inputs = new Map(), outputs = new Map(), table = null;
  const xBox = el("select", { id: "plot-x", "aria-label": "x axis", onchange: draw });
  const yBox = el("select", { id: "plot-y", "aria-label": "y axis", onchange: draw });
  const holder = el("div", { class: "plot-holder" });
  const note = el("p", { class: "muted", id: "plot-note" });
  const points = pointsTable();
  function draw() {
    if (!table) return;
    const n = table.job_id.length;
    const xs = xBox.value === INDEX || !inputs.has(xBox.value) ? table.job_id.map((_, i) => i) : inputs.get(xBox.value);
    const ys = outputs.get(yBox.value) || new Array(n).fill(null);
    holder.replaceChildren(scatter(xs, ys, xBox.value || INDEX, yBox.value || "output"));
    points.set(table, xs, ys, xBox.value || INDEX, yBox.value || "output");
    const count = (test) => table.job_status.filter((status, i) => test(status, table.error[i])).length;
    const failed = count((status, error) => status === "failed" && error !== "cancelled");
    const cancelled = count((status, error) => status === "failed" && error === "cancelled");
    const waiting = count((status) => status === "pending" || status === "running");
    const drawn = Number(holder.firstChild.dataset.points);
    const parts = [`${drawn} point${drawn === 1 ? "" : "s"} drawn`, failed ? `${failed} failed (not drawn)` : null,
      cancelled ? `${cancelled} cancelled` : null, waiting ? `${waiting} still to come` : null];
    setText(note, parts.filter(Boolean).join(" · ") + ".");
    note.dataset.failed = failed;
  }
  return {
    node: el("div", { class: "card", id: "plot" },
      el("div", { class: "row" }, el("label", { class: "inline" }, "y ", yBox),
        el("label", { class: "inline" }, "against x ", xBox)),
      holder, note, el("h3", {}, "Points"), points.node),
    setResults(results) {
      table = results;
      inputs = scalarColumns(results.input_data);
      outputs = scalarColumns(results.output_data);
      const names = [...inputs.keys()];
      fillSelect(xBox, [INDEX, ...names], names.find((name) => varies(inputs.get(name))) || INDEX);
      fillSelect(yBox, [...outputs.keys()], [...outputs.keys()][0]);
      yBox.disabled = !outputs.size; // the outputs are known once a point has finished
      draw();
    },
  };
}

// The batch's facts, label over value, as on a job's page.
function batchSummary(batch) {
  const cells = { status: el("dd"), progress: el("dd", { id: "batch-counts" }), rate: el("dd", { id: "rate" }),
    left: el("dd", { id: "time-left" }), created: el("dd"), started: el("dd"), ended: el("dd") };
  const name = batch.discipline_class_name;
  const discipline = el("a", { href: "#/discipline/" + encodeURIComponent(name) }, name);
  const items = [["Status", cells.status], ["Discipline", el("dd", {}, discipline)],
    ["Design", el("dd", {}, designOf(batch)), "wide"],
    ["Points", cells.progress, "wide"], ["Rate", cells.rate], ["Time left", cells.left],
    ["Created", cells.created], ["Started", cells.started], ["Ended", cells.ended]];
  const node = el("dl", { id: "summary", class: "summary" },
    items.map(([key, value, wide]) => el("div", { class: wide || null }, el("dt", {}, key), value)));
  return { node, cells };
}

// The counts under the bar, each with the colour of its part.
function countsText(batch) {
  return BATCH_STATES.map((state) => el("span", { class: "count", "data-state": state },
    el("span", { class: "swatch " + state }), `${batch.counts[state]} ${state}`));
}

// The page of one batch, built once and patched by the polls.
function batchPage(batch) {
  const id = batch.id;
  const { node: summary, cells } = batchSummary(batch);
  const bar = progressBar();
  bar.node.id = "batch-progress";
  const rate = rateMeter();
  const { cancel, remove } = cancelAndDelete("/v1/batch/" + id, (fresh) => page.update(fresh),
    `Delete batch #${id}, its ${batch.n_samples} points and their files?`, "#/batches");
  const csv = el("button", { class: "secondary", id: "download-csv",
    onclick: () => downloadFrom(`/v1/batch/${id}/results?format=csv`, `batch-${id}.csv`) }, "Download CSV");
  const plot = batchPlot();
  const root = el("section", { class: "batch-page", "data-batch-page": id },
    el("h1", {}, `Batch #${id}` + (batch.name ? ` — ${batch.name}` : "")),
    el("div", { class: "row" }, cancel, remove, csv,
      el("a", { href: `#/jobs?batch=${id}` + (batch.group ? "&scope=group" : ""), id: "batch-jobs" },
        "points in the jobs table")),
    el("div", { class: "card" }, bar.node, summary),
    el("h2", {}, "Plot"), plot.node);
  const page = {
    root,
    batch,
    setResults: plot.setResults,
    update(fresh) {
      batch = fresh;
      bar.update(batch);
      showBadge(cells.status, batch.batch_status);
      cells.progress.replaceChildren(...countsText(batch), el("span", { class: "muted" }, `of ${batch.n_samples}`));
      const now = rate(batch);
      setText(cells.rate, perSecond(now));
      setText(cells.left, timeLeft(batch, now));
      for (const key of ["created", "started", "ended"]) showTime(cells[key], batch[key + "_at"]);
      cancel.disabled = batchEnded(batch);
    },
  };
  page.update(batch);
  return page;
}

export async function batchView(id) {
  const opened = await openPage("/v1/batch/" + id, batchPage);
  if (!opened) return;
  const { page, current } = opened;
  let batch = page.batch;
  // The results, again every 1.5 s while points end (not when none has ended since), and at once
  // when the batch ends, so that the plot does not lag behind the badge.
  let wake = () => {};
  const nap = (ms) => (batchEnded(batch) ? Promise.resolve()
    : new Promise((resolve) => { wake = resolve; setTimeout(resolve, ms); }));
  (async () => {
    let drawn = -1; // the ended points when the results were last asked
    while (current()) {
      const count = endedCount(batch), ended = batchEnded(batch);
      if (count !== drawn) {
        try {
          const results = (await apiJson(`/v1/batch/${id}/results`)).body;
          if (!current()) return;
          page.setResults(results);
          drawn = count;
        } catch (error) { await sleep(1500); continue; }
      }
      if (ended) return;
      await nap(1500);
    }
  })();
  // The counts every second; long polling answers at once when the last point ends.
  while (current() && !batchEnded(batch)) {
    try {
      batch = (await apiJson(`/v1/batch/${id}?long_polling=true&long_polling_timeout=1`)).body;
    } catch (error) { await sleep(1000); continue; }
    if (current()) page.update(batch);
  }
  wake();
}

