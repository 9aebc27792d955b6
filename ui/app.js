// The gaas dashboard: plain JavaScript on the JSON API. The token lives in sessionStorage and is
// sent as a bearer header, never as a cookie, so there is no CSRF surface.
"use strict";

const view = document.getElementById("view");
const PAGE = 20;
const LOG_TAIL = 64 * 1024;
const DIGITS = 6; // significant digits shown; the full value stays in data-value and title
const LONG_ARRAY = 10; // longer arrays are plotted rather than written out
const LONG_FIELD = 20; // longer arrays get a textarea and a file loader in forms
const PLOT_COLUMNS = 160; // decimation columns of a plot: at most two points each
const SHOWN_VALUES = 1000; // values listed under a plot; the downloads have them all
const HEAT_FROM = 16; // Jacobian blocks with more cells get a background by value
const MATRIX_MAX = 50; // blocks with more rows or columns are drawn as an image, not a table
let generation = 0; // bumped on every navigation: loops of an old view stop
let me = null; // the signed-in user, asked once per token

// Talking to the API

function token() { return sessionStorage.getItem("gaas-token"); }

// Remember where the user wanted to go (a deep link, or the page whose token expired), so that
// signing in leads there rather than to the jobs table.
function signIn() {
  if (!location.hash.startsWith("#/login")) sessionStorage.setItem("gaas-wanted", location.hash);
  sessionStorage.removeItem("gaas-token");
  me = null;
  location.hash = "#/login";
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token()) headers.Authorization = "Bearer " + token();
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    signIn();
    throw new Error("Please sign in.");
  }
  return response;
}

async function apiJson(path, options) {
  const response = await api(path, options);
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error((body && body.detail) || response.statusText);
  return { body, response };
}

function postJson(path, body) {
  return apiJson(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

// Building the page

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

function show(...nodes) { view.replaceChildren(...nodes.flat().filter((node) => node !== null && node !== undefined)); }
function setText(node, text) { if (node.textContent !== text) node.textContent = text; }
function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }
function scroller(...children) { return el("div", { class: "scroll" }, ...children); }

// A cancelled job ends "failed" for the API's clients, but for a person it is not a failure.
function statusOf(job) { return job.job_status === "failed" && job.error === "cancelled" ? "cancelled" : job.job_status; }
function hasEnded(job) { return job.job_status === "finished" || job.job_status === "failed"; }
function badge(status) { return el("span", { class: "status " + status, "data-status": status }, status); }

// Every date in one form, local time: 2026-12-01 09:06:58 (the ISO UTC value is in the title).
function when(text) {
  if (!text) return "";
  const date = new Date(text), pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

function timeCell(text) { return text ? el("time", { datetime: text, title: text }, when(text)) : ""; }

function seconds(value) {
  if (value < 1) return Math.round(value * 1000) + " ms";
  if (value < 60) return value.toFixed(value < 10 ? 2 : 1) + " s";
  const minutes = Math.floor(value / 60), rest = Math.floor(value % 60);
  if (minutes < 60) return `${minutes} min ${String(rest).padStart(2, "0")} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

// How long the job ran, or has been running, or has been waiting for a worker.
function duration(job) {
  if (!job.started_at) return job.job_status === "pending" && job.created_at ? "queued " + seconds(since(job.created_at)) : "";
  const end = job.ended_at ? new Date(job.ended_at) : new Date();
  return seconds(Math.max(0, (end - new Date(job.started_at)) / 1000));
}

function since(text) { return Math.max(0, (new Date() - new Date(text)) / 1000); }

// Numbers as engineers read them

// Six significant digits, exponents outside [1e-3, 1e6): 165458.26978768 reads 165458.
function round(value) {
  if (typeof value !== "number" || !isFinite(value)) return String(value);
  if (Number.isInteger(value) && Math.abs(value) < 1e6) return String(value);
  const size = Math.abs(value);
  const text = size < 1e-3 || size >= 1e6 ? value.toExponential(DIGITS - 1) : value.toPrecision(DIGITS);
  const [mantissa, exponent] = text.split("e");
  const short = mantissa.includes(".") ? mantissa.replace(/\.?0+$/, "") : mantissa;
  return exponent ? short + "e" + exponent.replace("+", "") : short;
}

// A rounded number whose full value is kept for the title, for copying and for downloads.
function number(value, tag = "span") {
  if (typeof value !== "number") return el(tag, { class: "text" }, JSON.stringify(value));
  return el(tag, { class: "num", "data-value": String(value), title: String(value) }, round(value));
}

function isNumbers(value) { return Array.isArray(value) && value.every((v) => typeof v === "number"); }

// Copying rounded numbers would lose digits: a selection inside a table copies the full values of
// its number cells, a tab between cells and a line per row, ready for a spreadsheet.
document.addEventListener("copy", (event) => {
  const selection = getSelection();
  if (!selection.rangeCount || selection.isCollapsed) return;
  const common = selection.getRangeAt(0).commonAncestorContainer;
  const table = (common.nodeType === Node.ELEMENT_NODE ? common : common.parentElement).closest("table");
  if (!table) return;
  const cells = [...table.querySelectorAll("[data-value]")].filter((cell) => selection.containsNode(cell, true));
  if (!cells.length) return;
  const lines = [];
  let row = null;
  for (const cell of cells) {
    if (cell.closest("tr") !== row) { lines.push([]); row = cell.closest("tr"); }
    lines[lines.length - 1].push(cell.dataset.value);
  }
  event.clipboardData.setData("text/plain", lines.map((line) => line.join("\t")).join("\n"));
  event.preventDefault();
});

// Downloads made in the browser

function saveBlob(filename, blob) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: filename });
  document.body.append(link); link.click(); link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function saveFile(filename, text, type) { saveBlob(filename, new Blob([text], { type })); }

// A file of the API, fetched with the bearer token (a plain link would need a cookie).
async function downloadFrom(path, filename) {
  const response = await api(path);
  if (!response.ok) { alert((await response.json()).detail); return; }
  saveBlob(filename, await response.blob());
}

// One value per line, or one matrix row per line: what numpy.loadtxt(path, delimiter=",") reads.
function toCsv(value) {
  const rows = Array.isArray(value) ? value : [value];
  return rows.map((row) => (Array.isArray(row) ? row.map(String).join(",") : String(row))).join("\n") + "\n";
}

function downloads(basename, value) {
  const file = basename.replace(/[^\w.-]+/g, "_");
  return el("span", { class: "downloads" },
    el("button", { type: "button", class: "link", "data-download": "csv", title: `Download ${file}.csv`,
      onclick: () => saveFile(file + ".csv", toCsv(value), "text/csv") }, "CSV"),
    el("button", { type: "button", class: "link", "data-download": "json", title: `Download ${file}.json`,
      onclick: () => saveFile(file + ".json", JSON.stringify(value), "application/json") }, "JSON"));
}

function downloadJobFile(jobId, path) {
  return downloadFrom(`/v1/job/${jobId}/files/download?filename=${encodeURIComponent(path)}`, path.split("/").pop());
}

// Plots of long arrays

// Lowest and highest finite values, in one pass: Math.min(...values) overflows the call stack
// past about 10^5 elements.
function range(values) {
  let low = Infinity, high = -Infinity;
  for (const v of values) if (typeof v === "number" && isFinite(v)) { if (v < low) low = v; if (v > high) high = v; }
  return [low, high];
}

// At most two points (the lowest and highest) per column: the line looks the same as with every
// value, and a million values draw as 320 points.
function decimate(values, columns) {
  if (values.length <= 2 * columns) return values.map((v, i) => [i, v]);
  const points = [];
  for (let c = 0; c < columns; c++) {
    const start = Math.floor((c * values.length) / columns), end = Math.floor(((c + 1) * values.length) / columns);
    let lowAt = start, highAt = start;
    for (let i = start; i < end; i++) { if (values[i] < values[lowAt]) lowAt = i; if (values[i] > values[highAt]) highAt = i; }
    points.push(...(lowAt < highAt ? [lowAt, highAt] : [highAt, lowAt]).map((i) => [i, values[i]]));
  }
  return points;
}

// A line plot with its frame and the min/max of both axes; xs (same length) replaces the index.
function plot(values, xs = null, xName = "index") {
  const width = 440, height = 170, left = 64, right = 12, top = 10, bottom = 34;
  const w = width - left - right, h = height - top - bottom;
  const [low, high] = range(values);
  const [xLow, xHigh] = xs ? range(xs) : [0, values.length - 1];
  const px = (x) => (left + (xHigh > xLow ? (x - xLow) / (xHigh - xLow) : 0.5) * w).toFixed(1);
  const py = (y) => (top + h - (high > low ? (y - low) / (high - low) : 0.5) * h).toFixed(1);
  const points = decimate(values, PLOT_COLUMNS).filter(([i, v]) => isFinite(v) && (!xs || isFinite(xs[i])))
    .map(([i, v]) => `${px(xs ? xs[i] : i)},${py(v)}`).join(" ");
  const label = (x, y, text, anchor) => svg("text", { x, y, "text-anchor": anchor, class: "tick" }, text);
  const parts = [
    svg("rect", { x: left, y: top, width: w, height: h, class: "frame" }),
    low < 0 && high > 0 ? svg("line", { x1: left, x2: left + w, y1: py(0), y2: py(0), class: "zero" }) : null,
    svg("polyline", { points, fill: "none", stroke: "#2563eb", "stroke-width": "1.5" }),
    label(left - 6, top + 10, round(high), "end"), label(left - 6, top + h, round(low), "end"),
    label(left, top + h + 14, round(xLow), "start"), label(left + w, top + h + 14, round(xHigh), "end"),
    label(left + w / 2, top + h + 28, xName, "middle"),
  ].filter(Boolean);
  return svg("svg", { class: "plot", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `plot of ${values.length} values against ${xName}` }, ...parts);
}

// The values themselves, listed only when asked: a table of 10^6 rows would freeze the page.
function valuesList(values) {
  const details = el("details", { class: "values" }, el("summary", {}, "Values"));
  details.addEventListener("toggle", () => {
    if (!details.open || details.children.length > 1) return;
    details.append(scroller(el("table", { class: "list" },
      el("thead", {}, el("tr", {}, el("th", {}, "#"), el("th", {}, "value"))),
      el("tbody", {}, values.slice(0, SHOWN_VALUES).map((v, i) => el("tr", {}, el("th", {}, i), number(v, "td")))))),
    values.length > SHOWN_VALUES ? el("p", { class: "muted" }, `The first ${SHOWN_VALUES} of ${values.length} values; the downloads have them all.`) : null);
  });
  return details;
}

// A long array: plot, summary, an x-axis choice among the same-length inputs, the values.
function longArray(values, xChoices) {
  const [low, high] = range(values);
  const holder = el("div", { class: "plot-holder" }, plot(values));
  const names = Object.keys(xChoices || {});
  const picker = names.length ? el("select", { class: "x-axis", "aria-label": "x axis", onchange: () => {
    holder.replaceChildren(picker.value ? plot(values, xChoices[picker.value], picker.value) : plot(values));
  } }, el("option", { value: "" }, "index"), names.map((name) => el("option", { value: name }, name))) : null;
  return [holder,
    el("div", { class: "row tight" }, el("span", { class: "muted" }, `${values.length} values, from ${round(low)} to ${round(high)}`),
      picker ? el("label", { class: "inline" }, "x axis ", picker) : null),
    valuesList(values)];
}

function vector(values) {
  return el("table", { class: "vector" }, el("tbody", {}, el("tr", {}, values.map((v) => number(v, "td")))));
}

function valueCell(value, xChoices) {
  if (isNumbers(value) && value.length > LONG_ARRAY) return el("td", { class: "value" }, longArray(value, xChoices));
  // Short arrays and scalars alike in columns of equal width, so that first components line up.
  if (isNumbers(value)) return el("td", { class: "value" }, vector(value));
  if (typeof value === "number") return el("td", { class: "value" }, vector([value]));
  return el("td", { class: "value" }, el("span", { class: "text" }, JSON.stringify(value)));
}

function sizeOf(value) { return Array.isArray(value) ? String(value.length) : "1"; }

// GEMSEO descriptions carry units in brackets, as in "Beam length [m]".
function unitOf(description) { const match = /\[([^\]]+)\]/.exec(description || ""); return match ? match[1] : ""; }
function tidy(description) { return (description || "").replace(/\s+/g, " ").trim(); }

// GEMSEO's docstrings are reStructuredText: :math:`y_1` shows its content in italics, other roles
// (:class:`~gemseo.Foo`, :func:...) and ``literals`` as code, `label <url>`_ as its label, *x* and
// **x** as emphasis. Text nodes only: the server's text is never parsed as HTML.
const RST = /:math:`([^`]+)`|:[\w.+-]+:(?:[\w.+-]+:)?`([^`]+)`|``(.+?)``|`([^`<]+?)\s*<[^>`]+>`__?|\*\*(.+?)\*\*|\*([^*\s](?:[^*]*[^*\s])?)\*|`([^`]+)`/g;

function roleText(text) {
  // :class:`~a.b.C` reads C; :class:`label <a.b.C>` reads label.
  const labelled = /^(.*?)\s*<[^>]+>$/.exec(text);
  if (labelled && labelled[1]) return labelled[1];
  return text.startsWith("~") ? text.slice(1).split(".").pop() : text.replace(/^[!]/, "");
}

function richText(text) {
  const nodes = [];
  let at = 0;
  for (const match of (text || "").matchAll(RST)) {
    if (match.index > at) nodes.push(text.slice(at, match.index));
    const [, math, role, literal, link, strong, emphasis, plain] = match;
    if (math !== undefined) nodes.push(el("var", { class: "math" }, math));
    else if (role !== undefined) nodes.push(el("code", {}, roleText(role)));
    else if (literal !== undefined) nodes.push(el("code", {}, literal));
    else if (link !== undefined) nodes.push(link);
    else if (strong !== undefined) nodes.push(el("strong", {}, strong));
    else if (emphasis !== undefined) nodes.push(el("em", {}, emphasis));
    else nodes.push(el("em", {}, plain));
    at = match.index + match[0].length;
  }
  if (at < (text || "").length) nodes.push(text.slice(at));
  return nodes;
}

function setRich(node, text) {
  if (node.dataset.text === text) return;
  node.dataset.text = text;
  node.replaceChildren(...richText(text));
}

// Name, size, value and downloads of each variable; xChoices(length) gives same-length x axes.
function dataTable(data, id, basename, xChoices = () => ({})) {
  const names = Object.keys(data || {});
  if (!names.length) return el("p", { class: "muted", id }, "None.");
  return scroller(el("table", { id, class: "data" },
    el("thead", {}, el("tr", {}, ["Name", "Size", "Value", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, names.map((name) => {
      const value = data[name];
      const choices = Array.isArray(value) ? xChoices(value.length) : {};
      return el("tr", { "data-name": name },
        el("td", { class: "name" }, el("code", {}, name), el("span", { class: "unit" }), el("div", { class: "description muted" })),
        el("td", { class: "size" }, sizeOf(value)), valueCell(value, choices),
        el("td", {}, Array.isArray(value) && value.length > 1 ? downloads(`${basename}-${name}`, value) : null));
    }))));
}

// Units and descriptions arrive after the page is drawn: the schema may take a moment to build.
function describe(table, schema) {
  for (const row of table.querySelectorAll("tr[data-name]")) {
    const description = tidy((((schema || {}).properties || {})[row.dataset.name] || {}).description);
    const unit = unitOf(description);
    setText(row.querySelector(".unit"), unit ? ` [${unit}]` : "");
    setRich(row.querySelector(".description"), description);
  }
}

// The Jacobian, block by block

// How strongly an entry is coloured, from -1 to 1. Linear: the square root of the magnitude
// relative to the largest entry. Symmetric log: sign(x)·log10(1 + |x|/c) over the same of the
// largest, with c the smallest non-zero magnitude (at most 12 decades below the largest), so that
// an entry of 1e5 leaves one of 1e-4 visible.
function heatScale(matrices, log) {
  let top = 0, small = Infinity;
  for (const matrix of matrices) {
    for (const row of matrix) {
      for (const v of row) {
        const size = Math.abs(v);
        if (!isFinite(size) || !size) continue;
        if (size > top) top = size;
        if (size < small) small = size;
      }
    }
  }
  if (!top) return null;
  const c = Math.max(small, top * 1e-12);
  const squash = (v) => Math.log10(1 + Math.abs(v) / c);
  const full = squash(top);
  const at = log
    ? (v) => Math.sign(v) * Math.min(1, squash(v) / full)
    : (v) => Math.sign(v) * Math.sqrt(Math.min(1, Math.abs(v) / top));
  // The value at a position of the colour bar, for its ticks.
  const valueAt = log
    ? (p) => Math.sign(p) * c * (10 ** (Math.abs(p) * full) - 1)
    : (p) => Math.sign(p) * p * p * top;
  return { log, top, c, at, valueAt };
}

// Red above zero, blue below, white only at zero; from a faint tint, so that small non-zero
// entries show.
function heatRgb(value, scale) {
  if (!scale || !value || !isFinite(value)) return [255, 255, 255];
  const position = scale.at(value);
  const strength = 0.7 * (0.1 + 0.9 * Math.abs(position));
  const [r, g, b] = value > 0 ? [220, 38, 38] : [37, 99, 235];
  return [r, g, b].map((c) => Math.round(255 + (c - 255) * strength));
}

// Values of the colour bar's ticks: zero, both ends, and between them decades (powers of ten)
// on a log scale, else a quarter of the largest magnitude (the middle of the bar's half).
function heatTicks(scale) {
  const { top, c } = scale;
  let magnitudes = [top / 4];
  if (scale.log) {
    const decades = [];
    for (let k = Math.ceil(Math.log10(c)); 10 ** k < top * 0.7; k++) decades.push(Number("1e" + k));
    const keep = Math.ceil(decades.length / 4); // at most four a side, the largest kept
    magnitudes = decades.filter((_, i) => (decades.length - 1 - i) % keep === 0);
  }
  return [0, top, ...magnitudes.reverse()].flatMap((v) => (v ? [-v, v] : [0]));
}

// A colour bar from minus to plus the largest magnitude, its ticks labelled with real values;
// the ends and zero first, then the others where their labels do not overlap.
function heatLegend(scale) {
  const width = 440, height = 34, left = 30, w = width - 2 * left, steps = 64;
  const x = (value) => left + ((scale.at(value) + 1) / 2) * w;
  const parts = [];
  for (let k = 0; k < steps; k++) {
    const rgb = heatRgb(scale.valueAt(-1 + (2 * (k + 0.5)) / steps), scale);
    parts.push(svg("rect", { x: (left + (k * w) / steps).toFixed(2), y: 2, width: (w / steps + 0.4).toFixed(2), height: 12,
      fill: `rgb(${rgb.join(",")})` }));
  }
  parts.push(svg("rect", { x: left, y: 2, width: w, height: 12, class: "frame", fill: "none" }));
  const placed = [];
  for (const value of heatTicks(scale)) {
    const where = x(value);
    if (placed.some((other) => Math.abs(other - where) < 52)) continue;
    placed.push(where);
    parts.push(svg("line", { x1: where, x2: where, y1: 14, y2: 18, class: "tick-mark" }),
      svg("text", { x: where, y: 30, "text-anchor": "middle", class: "tick", "data-value": value }, round(value)));
  }
  return svg("svg", { class: "legend", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `colour scale${scale.log ? " (symmetric log)" : ""} from ${round(-scale.top)} to ${round(scale.top)}` }, ...parts);
}

function matrixTable(matrix, rows, cols, scale) {
  const headers = rows * cols > 1;
  return el("table", { class: "matrix" + (scale ? " heat" : ""), "data-rows": rows, "data-cols": cols },
    headers ? el("thead", {}, el("tr", {}, el("th"), Array.from({ length: cols }, (_, j) => el("th", { scope: "col" }, j)))) : null,
    el("tbody", {}, matrix.map((row, i) => el("tr", {}, headers ? el("th", { scope: "row" }, i) : null, row.map((v) => {
      const cell = number(v, "td");
      if (scale) cell.style.background = `rgb(${heatRgb(v, scale).join(",")})`;
      return cell;
    })))));
}

// A block too big for a table: one pixel per entry (the largest entry of the pixel when shrunk).
function heatImage(matrix, rows, cols, scale) {
  const width = Math.min(cols, 480), height = Math.min(rows, 480);
  const strongest = new Float64Array(width * height);
  matrix.forEach((row, i) => row.forEach((v, j) => {
    const at = Math.floor((i * height) / rows) * width + Math.floor((j * width) / cols);
    if (Math.abs(v) > Math.abs(strongest[at])) strongest[at] = v;
  }));
  const canvas = el("canvas", { class: "heatmap", width, height, "data-rows": rows, "data-cols": cols,
    title: `${rows} × ${cols}, largest magnitude ${round(scale ? scale.top : 0)}` });
  const context = canvas.getContext("2d"), image = context.createImageData(width, height);
  strongest.forEach((v, at) => { image.data.set([...heatRgb(v, scale), 255], at * 4); });
  context.putImageData(image, 0, 0);
  return canvas;
}

function jacobianBlock(output, input, matrix, basename, log) {
  const rows = matrix.length, cols = rows ? matrix[0].length : 0;
  const big = rows > MATRIX_MAX || cols > MATRIX_MAX;
  const scale = big || rows * cols > HEAT_FROM ? heatScale([matrix], log) : null;
  return el("figure", { class: "block", "data-output": output, "data-input": input },
    el("figcaption", {}, el("span", { class: "derivative" }, `∂${output} / ∂${input}`),
      el("span", { class: "shape muted", title: `rows: components of ${output}, columns: components of ${input}` }, `${rows} × ${cols}`),
      rows * cols > 1 ? downloads(`${basename}-d_${output}-d_${input}`, matrix) : null),
    scroller(big ? heatImage(matrix, rows, cols, scale) : matrixTable(matrix, rows, cols, scale)),
    scale ? heatLegend(scale) : null);
}

// The colour scale chosen last, kept for the next Jacobian.
function logScaleWanted() { return localStorage.getItem("gaas-jacobian-scale") === "log"; }

function jacobianView(jacobian, basename) {
  const outputs = Object.entries(jacobian || {});
  if (!outputs.length) return el("p", { class: "muted", id: "jacobian" }, "None.");
  const blocks = el("div", { class: "jacobian-blocks" });
  const toggle = el("input", { type: "checkbox", id: "jacobian-log", checked: logScaleWanted() ? "" : null, onchange: draw });
  function draw() {
    localStorage.setItem("gaas-jacobian-scale", toggle.checked ? "log" : "linear");
    blocks.dataset.scale = toggle.checked ? "log" : "linear";
    blocks.replaceChildren(...outputs.map(([output, inputs]) => el("section", { class: "jacobian-output" }, el("h3", {}, el("code", {}, output)),
      el("div", { class: "blocks" }, Object.entries(inputs).map(([input, matrix]) => jacobianBlock(output, input, matrix, basename, toggle.checked))))));
  }
  draw();
  return el("div", { id: "jacobian" },
    el("p", { class: "muted" }, "Rows are the output's components, columns the input's. Colour: red above zero, blue below, stronger for larger magnitudes; white is zero."),
    el("label", { class: "inline", title: "sign(x)·log10(1 + |x|/c), c the smallest non-zero magnitude of the block" }, toggle,
      "logarithmic colour scale (shows small entries beside large ones)"),
    blocks);
}

// Sign in

function loginView() {
  document.getElementById("nav").hidden = true;
  const message = el("p", { class: "error", id: "login-error", role: "alert" });
  const form = el("form", { class: "card login", id: "login" },
    el("h1", {}, "Sign in to gaas"),
    el("label", { for: "username" }, "User name"), el("input", { id: "username", name: "username", autocomplete: "username", required: "" }),
    el("label", { for: "password" }, "Password"), el("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: "" }),
    el("p", {}, el("button", { type: "submit" }, "Sign in")), message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const response = await fetch("/token", { method: "POST", body: new URLSearchParams(new FormData(form)) });
    const body = await response.json();
    if (!response.ok) { message.textContent = body.detail; return; }
    sessionStorage.setItem("gaas-token", body.access_token);
    const wanted = sessionStorage.getItem("gaas-wanted");
    sessionStorage.removeItem("gaas-wanted");
    location.hash = wanted && wanted !== "#/login" ? wanted : "#/jobs";
  });
  show(form);
  document.getElementById("username").focus();
}

// Jobs table, updated live

// The server filters by status, name and exact discipline; a partial discipline name (while it
// is typed) filters the fetched page here too.
function jobMatches(job, filters) {
  const has = (text, part) => (text || "").toLowerCase().includes(part.toLowerCase());
  return has(job.discipline_class_name, filters.discipline) && has(job.name, filters.name) &&
    (filters.status !== "cancelled" || job.error === "cancelled");
}

function jobsHash(filters, offset) {
  const query = new URLSearchParams();
  for (const key of ["batch", "status", "discipline", "name"]) if (filters[key]) query.set(key, filters[key]);
  if (offset) query.set("offset", offset);
  return "#/jobs" + (query.toString() ? "?" + query : "");
}

// Newer and Older buttons and a count, for a list the server pages.
function pager(hashAt, offset, infoId) {
  const info = el("span", { class: "muted", id: infoId });
  const previous = el("button", { class: "secondary", onclick: () => { location.hash = hashAt(Math.max(0, offset - PAGE)); } }, "Newer");
  const next = el("button", { class: "secondary", onclick: () => { location.hash = hashAt(offset + PAGE); } }, "Older");
  return { info, node: el("div", { class: "pager" }, previous, next, info),
    update(shown, total) { previous.disabled = offset === 0; next.disabled = offset + shown >= total; } };
}

// The filter on one batch's points, shown as a chip that links to the batch and can be cleared.
function batchChip(filters) {
  if (!filters.batch) return null;
  return el("span", { class: "chip", id: "batch-chip" }, el("a", { href: "#/batch/" + filters.batch }, "batch #" + filters.batch),
    el("button", { type: "button", class: "link", title: "Show every job", "aria-label": "Clear the batch filter",
      onclick: () => { location.hash = jobsHash({ ...filters, batch: "" }, 0); } }, "×"));
}

const SCAN = 1000; // jobs asked at once when looking for the real failures among the cancelled
const SCAN_MAX = 20; // requests at most per poll: past 20,000 failed jobs, the rest come unsorted

// The "failed" filter: real failures (errors, timeouts, crashes) first, newest first, then the
// cancelled jobs (failed too for the API, error "cancelled"), which would otherwise bury them
// after a batch is cancelled. The server filters by one error kind only, so the real failures of
// a page are found by reading the failed jobs past the cancelled ones.
async function failedFirst(query, offset) {
  const ask = async (extra) => {
    const { body, response } = await apiJson(`/v1/job?${new URLSearchParams({ ...Object.fromEntries(query), ...extra })}`);
    return { jobs: body, total: Number(response.headers.get("X-Total-Count")) };
  };
  const [all, cancelled] = await Promise.all([ask({ limit: PAGE, offset }), ask({ error: "cancelled", limit: 1 })]);
  const real = all.total - cancelled.total;
  if (!cancelled.total || !real) return all;
  const jobs = [];
  if (offset < real) {
    const found = [];
    for (let at = 0, asked = 0; found.length < Math.min(real, offset + PAGE) && at < all.total && asked < SCAN_MAX; at += SCAN, asked++) {
      const chunk = await ask({ limit: SCAN, offset: at });
      found.push(...chunk.jobs.filter((job) => job.error !== "cancelled"));
      if (!chunk.jobs.length) break;
    }
    jobs.push(...found.slice(offset, offset + PAGE));
  }
  if (jobs.length < PAGE && offset + jobs.length >= real) {
    const from = Math.max(0, offset - real);
    jobs.push(...(await ask({ error: "cancelled", limit: PAGE - jobs.length, offset: from })).jobs);
  }
  return { jobs, total: all.total };
}

async function jobsView(params) {
  const mine = generation;
  const filters = { batch: params.get("batch") || "", status: params.get("status") || "", discipline: params.get("discipline") || "", name: params.get("name") || "" };
  const offset = Number(params.get("offset") || 0);
  const statusBox = el("select", { id: "status-filter", onchange: () => { location.hash = jobsHash({ ...filters, status: statusBox.value }, 0); } },
    ["", "pending", "running", "finished", "failed", "cancelled"].map((value) =>
      el("option", { value, selected: value === filters.status ? "" : null }, value || "all statuses")));
  // Typing filters the rows in place; the address follows without a navigation that would reset the view.
  const refilter = () => {
    filters.discipline = disciplineBox.value.trim(); filters.name = nameBox.value.trim();
    history.replaceState(null, "", jobsHash(filters, offset));
    draw();
  };
  const disciplineBox = el("input", { id: "discipline-filter", type: "search", list: "discipline-names", value: filters.discipline, placeholder: "any discipline", oninput: refilter });
  const nameBox = el("input", { id: "name-filter", type: "search", value: filters.name, placeholder: "any name", oninput: refilter });
  const names = el("datalist", { id: "discipline-names" });
  const catalogue = new Set();
  apiJson("/v1/discipline").then(({ body }) => {
    body.forEach((n) => catalogue.add(n));
    names.replaceChildren(...body.map((n) => el("option", { value: n })));
  }).catch(() => {});
  const body = el("tbody");
  const pages = pager((at) => jobsHash(filters, at), offset, "jobs-count");
  show(el("h1", {}, "Jobs"),
    el("div", { class: "row filters" }, batchChip(filters),
      el("label", { class: "inline" }, "Status ", statusBox), el("label", { class: "inline" }, "Discipline ", disciplineBox),
      el("label", { class: "inline" }, "Name ", nameBox), names),
    scroller(el("table", { id: "jobs" }, el("thead", {}, el("tr", {},
      ["Id", "Name", "Discipline", "Status", "Message", "Created", "Duration"].map((h) => el("th", {}, h)))), body)),
    pages.node);
  const rows = new Map(); // job id -> row: rows are patched, not rebuilt, so a click never hits a replaced node
  let jobs = [], total = 0;
  function draw() {
    const fresh = jobs.filter((job) => jobMatches(job, filters)).map((job) => jobRow(rows, job));
    if (fresh.length !== body.children.length || fresh.some((row, i) => body.children[i] !== row)) body.replaceChildren(...fresh);
    const filtered = filters.batch || filters.discipline || filters.name || filters.status;
    pages.info.textContent = !total ? (filtered ? "No jobs match the filters." : "No jobs yet: run one from Disciplines.")
      : `${offset + 1}–${offset + jobs.length} of ${total}` + (filtered ? " jobs that match the filters" : "");
    pages.update(jobs.length, total);
  }
  while (mine === generation) {
    try {
      const query = new URLSearchParams({ limit: PAGE, offset });
      if (filters.batch) query.set("batch_id", filters.batch); // the server gives the points in their order
      if (filters.status === "cancelled") { query.set("status", "failed"); query.set("error", "cancelled"); }
      else if (filters.status) query.set("status", filters.status);
      if (filters.name) query.set("name", filters.name);
      if (catalogue.has(filters.discipline)) query.set("discipline", filters.discipline);
      let found;
      if (filters.status === "failed") found = await failedFirst(query, offset);
      else {
        const { body: page, response } = await apiJson(`/v1/job?${query}`);
        found = { jobs: page, total: Number(response.headers.get("X-Total-Count")) };
      }
      if (mine !== generation) return;
      jobs = found.jobs; total = found.total;
      draw();
    } catch (error) { pages.info.textContent = error.message; }
    await sleep(1000);
  }
}

// A batch's point is named by its place in the batch, after its own name if it has one.
function jobLabel(job) {
  const point = job.batch_id ? `batch #${job.batch_id} · point ${job.batch_index}` : "";
  return [job.name, point].filter(Boolean).join(" · ");
}

function jobRow(rows, job) {
  let row = rows.get(job.id);
  if (!row) {
    row = el("tr", { class: "clickable", "data-job": job.id, "data-batch-index": job.batch_id ? job.batch_index : null, onclick: () => { location.hash = "#/job/" + job.id; } },
      el("td", {}, el("a", { href: "#/job/" + job.id }, "#" + job.id)), el("td"), el("td"), el("td"),
      el("td", { class: "message error" }), el("td", { class: "date" }), el("td", { class: "duration" }));
    rows.set(job.id, row);
  }
  const [, name, discipline, status, message, created, took] = row.children;
  setText(name, jobLabel(job));
  setText(discipline, job.discipline_class_name);
  if (status.dataset.shown !== statusOf(job)) { status.dataset.shown = statusOf(job); status.replaceChildren(badge(statusOf(job))); }
  const why = statusOf(job) === "cancelled" ? "" : job.message || job.error || "";
  setText(message, why);
  message.title = why;
  if (!created.firstChild && job.created_at) created.append(timeCell(job.created_at));
  setText(took, duration(job));
  return row;
}

// One job

function jobFiles(jobId, node, prefix = "") {
  return el("ul", { class: "tree" }, Object.entries(node).map(([name, child]) => child === null
    ? el("li", {}, el("a", { href: "#", "data-file": prefix + name, onclick: (event) => { event.preventDefault(); downloadJobFile(jobId, prefix + name); } }, name))
    : el("li", {}, name + "/", jobFiles(jobId, child, prefix + name + "/"))));
}

// The discipline form, prefilled with this job's inputs and settings (read once by the form).
function runAgain(job) {
  sessionStorage.setItem("gaas-prefill", JSON.stringify({
    discipline: job.discipline_class_name, input_data: job.input_data || {}, name: job.name || "",
    timeout: job.timeout, linearize: job.job_type === "execute_and_linearize",
  }));
  location.hash = `#/discipline/${encodeURIComponent(job.discipline_class_name)}?options=${encodeURIComponent(JSON.stringify(job.discipline_options || {}))}`;
}

// The job's facts, label over value; the cells that change are returned to be patched.
function jobSummary(job) {
  const cells = { status: el("dd"), created: el("dd"), started: el("dd"), ended: el("dd"), duration: el("dd", { id: "elapsed" }) };
  const mode = `${job.execution_mode}, ${job.job_type === "execute_and_linearize" ? "with its Jacobian" : "values only"}` +
    (job.timeout ? `, timeout ${job.timeout} s` : "");
  const discipline = el("a", { href: "#/discipline/" + encodeURIComponent(job.discipline_class_name) }, job.discipline_class_name);
  const batch = job.batch_id ? el("dd", {}, el("a", { href: "#/batch/" + job.batch_id, id: "batch-link" }, `batch #${job.batch_id}`), `, point ${job.batch_index}`) : null;
  const items = [["Status", cells.status, "wide"], ["Discipline", el("dd", {}, discipline)], ["Mode", el("dd", {}, mode)],
    batch ? ["Batch", batch] : null, ["Duration", cells.duration], ["Created", cells.created], ["Started", cells.started], ["Ended", cells.ended],
    ["Options", el("dd", {}, el("code", {}, JSON.stringify(job.discipline_options || {}))), "wide"]].filter(Boolean);
  const node = el("dl", { id: "summary", class: "summary" },
    items.map(([key, value, wide]) => el("div", { class: wide || null }, el("dt", {}, key), value)));
  return { node, cells };
}

// The badge, and beside it why the job failed (or that it was cancelled).
function showStatus(cell, job) {
  const status = statusOf(job), why = job.message || (status === "cancelled" ? "" : job.error) || "";
  if (cell.dataset.shown === status + why) return;
  cell.dataset.shown = status + why;
  cell.replaceChildren(badge(status), why ? el("span", { class: "message " + (status === "cancelled" ? "muted" : "error"), id: "message" }, why) : "");
}

function showTime(cell, text) {
  if (cell.dataset.shown === (text || "")) return;
  cell.dataset.shown = text || "";
  cell.replaceChildren(timeCell(text));
}

// The page of one job, built once and patched: a poll must not replace what the user points at.
function jobPage(job) {
  const id = job.id, basename = `job-${id}`;
  const { node: summary, cells } = jobSummary(job);
  const cancel = el("button", { class: "secondary", id: "cancel", onclick: async () => {
    try { page.update((await apiJson(`/v1/job/${id}/cancel`, { method: "POST" })).body); } catch (error) { alert(error.message); }
  } }, "Cancel");
  const remove = el("button", { class: "danger", id: "delete", onclick: async () => {
    if (!confirm(`Delete job #${id} and its files?`)) return;
    await apiJson("/v1/job/" + id, { method: "DELETE" }); location.hash = "#/jobs";
  } }, "Delete");
  const again = el("button", { class: "secondary", id: "run-again", onclick: () => runAgain(job) }, "Run again with these inputs");
  const failure = el("div", { id: "failure" });
  const inputs = dataTable(job.input_data, "inputs", `${basename}-input`);
  const outputs = el("div", { id: "outputs-holder" }, el("p", { class: "muted" }, "When the job ends."));
  const jacobian = el("div", { id: "jacobian-holder" }, el("p", { class: "muted" }, "When the job ends."));
  const log = el("pre", { id: "log", tabindex: "0" }, "(empty)");
  // The log box follows the end of the log, until the user scrolls up to read something.
  let follow = true;
  log.addEventListener("scroll", () => { follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 24; });
  const logNote = el("p", { class: "muted", hidden: "" }, `The last ${LOG_TAIL / 1024} KiB of the log:`);
  const files = el("div", { class: "card", id: "files" }, el("span", { class: "muted" }, "When the job ends."));
  const root = el("section", { class: "job-page", "data-job-page": id },
    el("h1", {}, `Job #${id}` + (job.name ? ` — ${job.name}` : "")), el("div", { class: "row" }, cancel, again, remove),
    el("div", { class: "card" }, summary), failure,
    el("h2", {}, "Inputs"), inputs, el("h2", {}, "Outputs"), outputs,
    job.job_type === "execute_and_linearize" ? [el("h2", {}, "Jacobian"), jacobian] : null,
    el("h2", {}, "Log"), logNote, log, el("h2", {}, "Files"), files);
  let schemas = null; // {inputs, outputs}, once they arrive
  const page = {
    root,
    update(fresh) {
      job = fresh;
      showStatus(cells.status, job);
      for (const key of ["created", "started", "ended"]) showTime(cells[key], job[key + "_at"]);
      page.tick();
      cancel.disabled = hasEnded(job);
      // The traceback only says more than the message for an exception in the discipline.
      const traceback = (job.traceback || "").trim();
      if (traceback && traceback !== (job.message || "").trim() && !failure.firstChild) {
        failure.append(el("h2", {}, "Traceback"), el("pre", { id: "traceback", tabindex: "0" }, job.traceback));
      }
    },
    tick() { setText(cells.duration, duration(job)); },
    setLog(text) {
      setText(log, text || "(empty)");
      logNote.hidden = text.length < LOG_TAIL - 4096;
      if (follow) log.scrollTop = log.scrollHeight;
    },
    setSchemas(found) {
      schemas = found;
      describe(inputs, schemas.inputs);
      const table = outputs.querySelector("table");
      if (table) describe(table, schemas.outputs);
    },
    finish(tree) {
      // An output can be drawn against any input of the same length.
      const xChoices = (length) => Object.fromEntries(Object.entries(job.input_data || {}).filter(([, v]) => isNumbers(v) && v.length === length));
      outputs.replaceChildren(dataTable(job.output_data, "outputs", `${basename}-output`, xChoices));
      if (schemas) page.setSchemas(schemas);
      jacobian.replaceChildren(jacobianView(job.jacobian_data, basename));
      files.replaceChildren(jobFiles(id, tree));
    },
  };
  page.update(job);
  return page;
}

// The end of a log is what matters, and a solver's log can be gigabytes: ask for the tail.
function logTail(id) { return api(`/v1/job/${id}/log?tail=${LOG_TAIL}`).then((r) => (r.ok ? r.text() : "")).catch(() => ""); }

function schemasOf(job) {
  const body = { discipline_options: job.discipline_options || {} };
  const name = encodeURIComponent(job.discipline_class_name);
  const ask = (kind) => postJson(`/v1/discipline/${name}/${kind}_schema`, body).then((r) => r.body).catch(() => ({}));
  return Promise.all([ask("inputs"), ask("outputs")]).then(([inputs, outputs]) => ({ inputs, outputs }));
}

function filesOf(id) { return apiJson(`/v1/job/${id}/files`).then((r) => r.body).catch(() => ({})); }

async function jobView(id) {
  const mine = generation;
  const current = () => mine === generation;
  let job = (await apiJson("/v1/job/" + id)).body;
  const page = jobPage(job);
  const ended = hasEnded(job);
  const [text, tree] = await Promise.all([logTail(id), ended ? filesOf(id) : null]);
  if (!current()) return;
  show(page.root);
  page.setLog(text);
  schemasOf(job).then((found) => { if (current()) page.setSchemas(found); });
  if (ended) { page.finish(tree); return; }
  // While it runs: the elapsed time and the end of the log, every second.
  (async () => {
    while (current() && !hasEnded(job)) {
      page.tick();
      const tail = await logTail(id);
      if (current() && !hasEnded(job)) page.setLog(tail);
      await sleep(1000);
    }
  })();
  // Long polling answers as soon as the job ends; a pending job is asked again sooner, to show it start.
  while (current() && !hasEnded(job)) {
    try {
      const wait = job.job_status === "running" ? 10 : 1;
      job = (await apiJson(`/v1/job/${id}?long_polling=true&long_polling_timeout=${wait}`)).body;
    } catch (error) { await sleep(1000); }
    if (current()) page.update(job);
  }
  const [finalTree, last] = await Promise.all([filesOf(id), logTail(id)]);
  if (!current()) return;
  page.setLog(last);
  page.finish(finalTree);
}

// Batches

const BATCH_STATES = ["finished", "failed", "running", "pending"]; // the bar's parts, left to right
const RATE_WINDOW = 5; // seconds: the rate is that of the points that ended over this last while
const MAX_CIRCLES = 5000; // a scatter plot draws at most this many points; more would look the same
const MAX_COMPONENTS = 50; // components of an array variable offered as plot axes

function endedCount(batch) { return batch.counts.finished + batch.counts.failed; }
function batchEnded(batch) { return batch.batch_status === "finished" || batch.batch_status === "failed"; }

// The points by status, in the colours of the job badges; the counts are in data-finished etc.
function progressBar() {
  const parts = Object.fromEntries(BATCH_STATES.map((state) => [state, el("span", { class: "part " + state })]));
  const node = el("div", { class: "progress", role: "progressbar", "aria-valuemin": "0" }, Object.values(parts));
  function update(batch) {
    const total = Math.max(1, batch.n_samples);
    for (const state of BATCH_STATES) {
      parts[state].style.width = (100 * batch.counts[state]) / total + "%";
      node.dataset[state] = batch.counts[state];
    }
    node.setAttribute("aria-valuemax", batch.n_samples);
    node.setAttribute("aria-valuenow", endedCount(batch));
    node.title = BATCH_STATES.map((state) => `${batch.counts[state]} ${state}`).join(", ");
  }
  return { node, update };
}

// What the points are: explicit samples, or a DOE over some inputs.
function designOf(batch) {
  const design = batch.design || {};
  if (!design.algo_name) return `${batch.n_samples} samples`;
  return `${design.algo_name}, ${design.n_samples} samples over ${Object.keys(design.design_space || {}).join(", ")}`;
}

function batchesHash(offset) { return "#/batches" + (offset ? "?offset=" + offset : ""); }

async function batchesView(params) {
  const mine = generation;
  const offset = Number(params.get("offset") || 0);
  const body = el("tbody");
  const pages = pager(batchesHash, offset, "batches-count");
  show(el("h1", {}, "Batches"),
    scroller(el("table", { id: "batches" }, el("thead", {}, el("tr", {},
      ["Id", "Name", "Discipline", "Status", "Progress", "Points", "Created"].map((h) => el("th", {}, h)))), body)),
    pages.node);
  const rows = new Map(); // batch id -> row, patched in place as in the jobs table
  while (mine === generation) {
    try {
      const { body: batches, response } = await apiJson(`/v1/batch?limit=${PAGE}&offset=${offset}`);
      if (mine !== generation) return;
      const total = Number(response.headers.get("X-Total-Count"));
      const fresh = batches.map((batch) => batchRow(rows, batch));
      if (fresh.length !== body.children.length || fresh.some((row, i) => body.children[i] !== row)) body.replaceChildren(...fresh);
      pages.info.textContent = total ? `${offset + 1}–${offset + batches.length} of ${total}`
        : "No batches yet: submit one from a discipline's page, or with POST /v1/discipline/{name}/batch.";
      pages.update(batches.length, total);
    } catch (error) { pages.info.textContent = error.message; }
    await sleep(1000);
  }
}

function batchRow(rows, batch) {
  let row = rows.get(batch.id);
  if (!row) {
    const bar = progressBar();
    row = el("tr", { class: "clickable", "data-batch": batch.id, onclick: () => { location.hash = "#/batch/" + batch.id; } },
      el("td", {}, el("a", { href: "#/batch/" + batch.id }, "#" + batch.id)), el("td"), el("td"), el("td"),
      el("td", {}, el("div", { class: "progress-cell" }, bar.node, el("span", { class: "muted done" }))), el("td", { class: "points" }), el("td", { class: "date" }));
    row.bar = bar;
    rows.set(batch.id, row);
  }
  const [, name, discipline, status, progress, points, created] = row.children;
  setText(name, batch.name || "");
  setText(discipline, batch.discipline_class_name);
  if (status.dataset.shown !== batch.batch_status) { status.dataset.shown = batch.batch_status; status.replaceChildren(badge(batch.batch_status)); }
  row.bar.update(batch);
  setText(progress.querySelector(".done"), `${endedCount(batch)}/${batch.n_samples}`);
  setText(points, String(batch.n_samples));
  if (!created.firstChild) created.append(timeCell(batch.created_at));
  return row;
}

// One batch

// Points per second: over the last RATE_WINDOW seconds of polls, else since the first point started.
function rateMeter() {
  const seen = []; // [seconds, ended points], one per poll
  return (batch) => {
    if (batchEnded(batch)) {
      const took = batch.started_at && batch.ended_at ? (new Date(batch.ended_at) - new Date(batch.started_at)) / 1000 : 0;
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
    if (typeof sample === "number") columns.set(name, values);
    else if (isNumbers(sample) && sample.length === 1) columns.set(name, values.map((v) => (Array.isArray(v) ? v[0] : null)));
    else if (isNumbers(sample)) {
      for (let k = 0; k < Math.min(sample.length, MAX_COMPONENTS); k++) columns.set(`${name}[${k}]`, values.map((v) => (Array.isArray(v) ? v[k] : null)));
    }
  }
  return columns;
}

function varies(values) { const [low, high] = range(values); return low < high; }

// About `count` round values between low and high, a step of 1, 2 or 5 times a power of ten.
function niceTicks(low, high, count = 5) {
  if (!isFinite(low) || !isFinite(high)) return [];
  if (!(high > low)) return [low];
  const raw = (high - low) / count, power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw * 0.999);
  const ticks = [];
  for (let k = Math.ceil(low / step - 1e-9); k * step <= high + step * 1e-9; k++) ticks.push(Number((k * step).toPrecision(12)));
  return ticks;
}

// ys against xs, one circle a point; points that fall on one pixel are drawn once, and past
// MAX_CIRCLES one in k, so that 10,000 points stay quick to draw.
function scatter(xs, ys, xName, yName) {
  const width = 720, height = 360, left = 72, right = 16, top = 12, bottom = 42, pad = 6;
  const w = width - left - right, h = height - top - bottom;
  const finite = (v) => typeof v === "number" && isFinite(v);
  const shown = [];
  for (let i = 0; i < ys.length; i++) if (finite(xs[i]) && finite(ys[i])) shown.push(i);
  const [xLow, xHigh] = range(shown.map((i) => xs[i])), [low, high] = range(shown.map((i) => ys[i]));
  // The extremes sit a few pixels inside the frame, so that their circles are not cut by it.
  const px = (x) => left + pad + (xHigh > xLow ? (x - xLow) / (xHigh - xLow) : 0.5) * (w - 2 * pad);
  const py = (y) => top + h - pad - (high > low ? (y - low) / (high - low) : 0.5) * (h - 2 * pad);
  const pixels = new Set(), dots = [];
  for (const i of shown) {
    const x = px(xs[i]), y = py(ys[i]), pixel = Math.round(x) + "," + Math.round(y);
    if (!pixels.has(pixel)) { pixels.add(pixel); dots.push([x, y, i]); }
  }
  const step = Math.ceil(dots.length / MAX_CIRCLES);
  const circles = dots.filter((_, k) => k % step === 0)
    .map(([x, y, i]) => svg("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 2.5, "data-index": i }));
  const label = (x, y, text, anchor, extra = {}) => svg("text", { x, y, "text-anchor": anchor, class: "tick", ...extra }, text);
  const grid = [], parts = [];
  if (shown.length) {
    for (const v of niceTicks(low, high)) {
      const y = py(v).toFixed(1);
      grid.push(svg("line", { x1: left, x2: left + w, y1: y, y2: y, class: "grid" }));
      parts.push(svg("line", { x1: left - 4, x2: left, y1: y, y2: y, class: "tick-mark" }),
        label(left - 6, Number(y) + 4, round(v), "end", { class: "tick y", "data-value": v }));
    }
    for (const v of niceTicks(xLow, xHigh, 8)) {
      const x = px(v).toFixed(1);
      grid.push(svg("line", { x1: x, x2: x, y1: top, y2: top + h, class: "grid" }));
      parts.push(svg("line", { x1: x, x2: x, y1: top + h, y2: top + h + 4, class: "tick-mark" }),
        label(x, top + h + 16, round(v), "middle", { class: "tick x", "data-value": v }));
    }
  } else parts.push(label(left + w / 2, top + h / 2, "No finished point to draw.", "middle"));
  return svg("svg", { class: "plot scatter", id: "scatter", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "data-points": shown.length, "aria-label": `${shown.length} points: ${yName} against ${xName}` },
  svg("rect", { x: left, y: top, width: w, height: h, class: "frame" }), svg("g", { class: "grid" }, ...grid),
  svg("g", { class: "dots" }, ...circles), ...parts,
  label(left + w / 2, top + h + 32, xName, "middle", { class: "tick axis" }),
  label(14, top + h / 2, yName, "middle", { class: "tick axis", transform: `rotate(-90 14 ${top + h / 2})` }));
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

// A point's status as a person reads it: a cancelled point did not fail.
function pointStatus(status, error) { return status === "failed" && error === "cancelled" ? "cancelled" : status; }

// The points under the plot, a page at a time: index, job, status, and the two plotted values.
function pointsTable() {
  let offset = 0, table = null, xs = [], ys = [], xName = "", yName = "", lastShown = "";
  const head = el("tr");
  const body = el("tbody");
  const info = el("span", { class: "muted", id: "points-count" });
  const previous = el("button", { type: "button", class: "secondary", onclick: () => { offset = Math.max(0, offset - PAGE); draw(); } }, "Previous");
  const next = el("button", { type: "button", class: "secondary", onclick: () => { offset += PAGE; draw(); } }, "Next");
  function draw() {
    if (!table) return;
    const n = table.job_id.length;
    offset = Math.min(offset, Math.max(0, Math.floor((n - 1) / PAGE) * PAGE));
    // Rebuilt only when what it shows changed: a poll must not replace the row under the pointer.
    const end = Math.min(n, offset + PAGE);
    const shown = JSON.stringify([offset, n, xName, yName, table.job_id.slice(offset, end), table.job_status.slice(offset, end),
      table.error.slice(offset, end), xs.slice(offset, end), ys.slice(offset, end)]);
    if (shown === lastShown) return;
    lastShown = shown;
    head.replaceChildren(...["Point", "Job", "Status", xName, yName].map((h) => el("th", {}, h)));
    const rows = [];
    for (let i = offset; i < end; i++) {
      const id = table.job_id[i], status = pointStatus(table.job_status[i], table.error[i]);
      const why = status === "failed" && table.error[i] ? el("span", { class: "muted error-kind" }, " " + table.error[i]) : null;
      rows.push(el("tr", { class: "clickable", "data-index": i, "data-job": id, onclick: () => { location.hash = "#/job/" + id; } },
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
    setText(note, [`${drawn} point${drawn === 1 ? "" : "s"} drawn`, failed ? `${failed} failed (not drawn)` : null,
      cancelled ? `${cancelled} cancelled` : null, waiting ? `${waiting} still to come` : null].filter(Boolean).join(" · ") + ".");
    note.dataset.failed = failed;
  }
  return {
    node: el("div", { class: "card", id: "plot" },
      el("div", { class: "row" }, el("label", { class: "inline" }, "y ", yBox), el("label", { class: "inline" }, "against x ", xBox)),
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
  const discipline = el("a", { href: "#/discipline/" + encodeURIComponent(batch.discipline_class_name) }, batch.discipline_class_name);
  const items = [["Status", cells.status], ["Discipline", el("dd", {}, discipline)], ["Design", el("dd", {}, designOf(batch)), "wide"],
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
  const cancel = el("button", { class: "secondary", id: "cancel", onclick: async () => {
    cancel.disabled = true;
    try { page.update((await apiJson(`/v1/batch/${id}/cancel`, { method: "POST" })).body); } catch (error) { alert(error.message); cancel.disabled = false; }
  } }, "Cancel");
  const remove = el("button", { class: "danger", id: "delete", onclick: async () => {
    if (!confirm(`Delete batch #${id}, its ${batch.n_samples} points and their files?`)) return;
    try { await apiJson("/v1/batch/" + id, { method: "DELETE" }); location.hash = "#/batches"; } catch (error) { alert(error.message); }
  } }, "Delete");
  const csv = el("button", { class: "secondary", id: "download-csv", onclick: () => downloadFrom(`/v1/batch/${id}/results?format=csv`, `batch-${id}.csv`) }, "Download CSV");
  const plot = batchPlot();
  const root = el("section", { class: "batch-page", "data-batch-page": id },
    el("h1", {}, `Batch #${id}` + (batch.name ? ` — ${batch.name}` : "")),
    el("div", { class: "row" }, cancel, remove, csv, el("a", { href: `#/jobs?batch=${id}`, id: "batch-jobs" }, "points in the jobs table")),
    el("div", { class: "card" }, bar.node, summary),
    el("h2", {}, "Plot"), plot.node);
  const page = {
    root,
    setResults: plot.setResults,
    update(fresh) {
      batch = fresh;
      bar.update(batch);
      if (cells.status.dataset.shown !== batch.batch_status) { cells.status.dataset.shown = batch.batch_status; cells.status.replaceChildren(badge(batch.batch_status)); }
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

async function batchView(id) {
  const mine = generation;
  const current = () => mine === generation;
  let batch = (await apiJson("/v1/batch/" + id)).body;
  if (!current()) return;
  const page = batchPage(batch);
  show(page.root);
  // The results, again every 1.5 s while points end (not when none has ended since), and at once
  // when the batch ends, so that the plot does not lag behind the badge.
  let wake = () => {};
  const nap = (ms) => (batchEnded(batch) ? Promise.resolve() : new Promise((resolve) => { wake = resolve; setTimeout(resolve, ms); }));
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

// Disciplines and the generated form

async function disciplinesView() {
  const names = (await apiJson("/v1/discipline")).body;
  const grid = el("div", { class: "grid", id: "disciplines" });
  const search = el("input", { type: "search", placeholder: "Filter", "aria-label": "Filter disciplines", oninput: () => fill(search.value.toLowerCase()) });
  function fill(text) {
    grid.replaceChildren(...names.filter((n) => n.toLowerCase().includes(text)).map((n) => el("a", { href: "#/discipline/" + encodeURIComponent(n) }, n)));
  }
  fill("");
  show(el("h1", {}, "Disciplines"), el("div", { class: "row" }, search), grid);
}

function typeOf(property, fallback) {
  if (property.type === "array") return `array of ${(property.items || {}).type || "values"}`;
  if (property.type) return property.type;
  return fallback === undefined ? "" : Array.isArray(fallback) ? "array" : typeof fallback;
}

// What the server would refuse anyway, said next to the field before anything is sent.
function checkValue(text, property, fallback) {
  let value;
  try { value = JSON.parse(text); } catch (error) {
    if (property.type === "string") return { value: text };
    return { error: "Not JSON: write an array as [1.0, 2.0]." };
  }
  const numbers = (property.type === "array" && (property.items || {}).type === "number") || (Array.isArray(fallback) && isNumbers(fallback));
  if (numbers && typeof value === "number" && (!Array.isArray(fallback) || fallback.length === 1)) value = [value];
  if (numbers && !isNumbers(value)) return { error: "Expected an array of numbers, like [1.0, 2.0]." };
  if (Array.isArray(fallback) && Array.isArray(value) && value.length !== fallback.length) {
    return { error: `Expected ${fallback.length} value${fallback.length === 1 ? "" : "s"}, got ${value.length}.` };
  }
  if (property.type === "number" && typeof value !== "number") return { error: "Expected a number." };
  if (property.type === "string" && typeof value !== "string") return { value: text };
  return { value };
}

// A JSON array (or {name: array}), or numbers separated by commas, semicolons, tabs or line
// breaks; lines that do not start with a number (a CSV header) are skipped.
function parseNumbers(text, filename, name) {
  const trimmed = text.trim();
  if (filename.toLowerCase().endsWith(".json") || /^[[{]/.test(trimmed)) {
    const data = JSON.parse(trimmed);
    const values = Array.isArray(data) ? data.flat(Infinity) : data[name];
    if (!isNumbers(values)) throw new Error(`${filename}: expected an array of numbers` + (Array.isArray(data) ? "." : ` under "${name}".`));
    return values;
  }
  const values = [];
  trimmed.split(/\r?\n/).forEach((line, index) => {
    const tokens = line.split(/[\s,;]+/).filter(Boolean);
    if (!tokens.length || isNaN(Number(tokens[0]))) return;
    for (const token of tokens) {
      if (isNaN(Number(token))) throw new Error(`${filename}, line ${index + 1}: "${token}" is not a number.`);
      values.push(Number(token));
    }
  });
  return values;
}

function inputField(input, property, fallback, prefill) {
  const long = Array.isArray(fallback) && fallback.length > LONG_FIELD;
  const value = prefill !== undefined ? prefill : fallback;
  const text = value === undefined || value === null ? "" : JSON.stringify(value);
  const id = "input-" + input;
  const box = long
    ? el("textarea", { id, name: input, "data-input": input, rows: 4 }, text)
    : el("input", { id, name: input, "data-input": input, value: text, spellcheck: "false" });
  const error = el("p", { class: "error field-error", id: id + "-error", "aria-live": "polite" });
  const field = { input, box, error, check, property, fallback };
  function check() {
    const result = box.value.trim() ? checkValue(box.value, property, fallback) : {};
    setText(error, result.error || "");
    box.setAttribute("aria-invalid", result.error ? "true" : "false");
    return result;
  }
  box.addEventListener("change", check);
  const loader = long ? el("input", { type: "file", accept: ".csv,.json,.txt", class: "file", "data-load": input, onchange: async () => {
    const file = loader.files[0];
    if (!file) return;
    try { box.value = JSON.stringify(parseNumbers(await file.text(), file.name, input)); check(); } catch (reason) { setText(error, reason.message); }
  } }) : null;
  const description = tidy(property.description), unit = unitOf(description);
  field.node = el("div", { class: "field" },
    el("label", { for: id }, el("code", {}, input), unit ? el("span", { class: "unit" }, ` [${unit}]`) : null),
    el("div", { class: "meta muted" }, [typeOf(property, fallback), Array.isArray(fallback) ? `size ${fallback.length}` : null].filter(Boolean).join(" · "),
      description ? [" · ", el("span", { class: "description" }, richText(description))] : null),
    box, loader ? el("label", { class: "inline loader" }, el("span", {}, "Load from file (CSV or JSON)"), loader) : null, error);
  return field;
}

function parametersTable(info) {
  const parameters = (info && info.parameters) || [];
  if (!parameters.length) return el("p", { class: "muted" }, "The constructor takes no parameters.");
  return scroller(el("table", { id: "parameters" },
    el("thead", {}, el("tr", {}, ["Parameter", "Type", "Default", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, parameters.map((p) => el("tr", {}, el("td", {}, el("code", {}, p.name)), el("td", {}, p.type || ""),
      el("td", {}, "default" in p ? el("code", {}, JSON.stringify(p.default)) : ""), el("td", {}, p.required ? el("strong", {}, "required") : ""))))));
}

function optionsCard(name, info, optionsText, unfold = false) {
  const options = el("textarea", { id: "options", rows: 2, spellcheck: "false" }, optionsText);
  const required = info && info.options_required;
  const needed = ((info && info.parameters) || []).filter((p) => p.required && p.name !== "name").map((p) => p.name);
  // Folded when the defaults do: most disciplines need no options.
  const names = ((info && info.parameters) || []).map((p) => p.name).join(", ");
  return { options, node: el("details", { class: "card", id: "constructor", open: required || unfold || optionsText.trim() !== "{}" ? "" : null },
    el("summary", {}, el("strong", {}, "Constructor"), el("span", { class: "muted" }, names ? ` (${names})` : "")),
    required ? el("p", { class: "warning", id: "options-required" }, "This discipline needs options" + (needed.length ? ": " + needed.join(", ") : "") + ".") : null,
    parametersTable(info),
    el("label", { for: "options" }, "Discipline options (JSON)"), options,
    el("p", {}, el("button", { class: "secondary", type: "button", onclick: () => {
      location.hash = `#/discipline/${encodeURIComponent(name)}?options=${encodeURIComponent(options.value)}`;
    } }, "Apply options"))) };
}

// The DOE algorithms of the server (GET /v1/algorithms), asked once; those that take a number of
// samples, which a batch always gives. Without the route, the one algorithm every gaas has.
let doeAlgorithms = null;
const DOE_FALLBACK = [{ name: "PYDOE_LHS", description: "Latin hypercube sampling.", settings: {} }];

function loadDoeAlgorithms() {
  if (!doeAlgorithms) {
    doeAlgorithms = apiJson("/v1/algorithms").then(({ body }) => {
      const offered = ((body && body.doe) || []).filter((a) => a.name !== "CustomDOE" && (!a.settings || "n_samples" in a.settings));
      return offered.length ? offered : DOE_FALLBACK;
    }).catch(() => { doeAlgorithms = null; return DOE_FALLBACK; });
  }
  return doeAlgorithms;
}

// A Latin hypercube unless the user picks another; LHS where PYDOE_LHS is not offered.
function defaultDoe(algorithms) {
  const names = algorithms.map((a) => a.name);
  return ["PYDOE_LHS", "LHS", "OT_LHS"].find((name) => names.includes(name)) || names[0];
}

// A design of experiments over the ticked inputs, between their bounds, by the chosen algorithm;
// the other inputs, the name and the timeout come from the form above (request() checks them).
function batchForm(path, fields, request) {
  const rows = fields.filter((field) => isNumbers(field.fallback)).map((field) => {
    const bound = (which) => el("input", { "data-bound": which, "data-for": field.input, value: JSON.stringify(field.fallback),
      spellcheck: "false", "aria-label": `${which} bound of ${field.input}` });
    const row = { field, vary: el("input", { type: "checkbox", "data-vary": field.input, "aria-label": "vary " + field.input }),
      lower: bound("lower"), upper: bound("upper") };
    row.node = el("tr", {}, el("td", {}, row.vary), el("td", {}, el("code", {}, field.input)), el("td", {}, row.lower), el("td", {}, row.upper));
    return row;
  });
  const count = el("input", { id: "n-samples", type: "number", min: "1", step: "1", value: "20" });
  const algorithm = el("select", { id: "doe-algo", "aria-label": "DOE algorithm", onchange: explain },
    DOE_FALLBACK.map((a) => el("option", { value: a.name }, a.name)));
  const about = el("p", { class: "muted", id: "doe-description" });
  let algorithms = DOE_FALLBACK;
  function explain() {
    const chosen = algorithms.find((a) => a.name === algorithm.value) || {};
    about.replaceChildren(...richText(tidy(chosen.description)));
    const setting = (chosen.settings || {}).n_samples || {};
    count.title = tidy(setting.description) || "The number of points";
  }
  explain();
  loadDoeAlgorithms().then((offered) => {
    algorithms = offered;
    algorithm.replaceChildren(...offered.map((a) => el("option", { value: a.name, title: tidy(a.description) },
      a.description ? `${a.name} — ${tidy(a.description).slice(0, 90)}` : a.name)));
    algorithm.value = defaultDoe(offered);
    explain();
  });
  const message = el("p", { class: "error", id: "batch-error", role: "alert" });
  const run = el("button", { type: "button", id: "run-batch" }, "Run the batch");
  // The design space of the ticked inputs, or the reason there is none.
  function designSpace() {
    const space = {};
    for (const row of rows.filter((r) => r.vary.checked)) {
      const [lower, upper] = [row.lower, row.upper].map((box) => checkValue(box.value, row.field.property, row.field.fallback));
      const wrong = lower.error || upper.error || (lower.value.some((v, i) => v > upper.value[i]) ? "the lower bound is above the upper bound." : "");
      if (wrong) return `${row.field.input}: ${wrong}`;
      space[row.field.input] = { lower_bound: lower.value, upper_bound: upper.value };
    }
    return Object.keys(space).length ? space : "Tick at least one input to vary.";
  }
  run.addEventListener("click", async () => {
    message.textContent = "";
    const body = request(), space = designSpace(), n = Number(count.value);
    if (!body) { message.textContent = "Some values of the form above are not right."; return; }
    if (typeof space === "string") { message.textContent = space; return; }
    if (!Number.isInteger(n) || n < 1) { message.textContent = "The number of points must be a positive integer."; return; }
    for (const name of Object.keys(space)) delete body.input_data[name];
    body.doe = { algo_name: algorithm.value, n_samples: n, design_space: space };
    run.disabled = true; // one batch per click
    try { location.hash = "#/batch/" + (await postJson(`${path}/batch`, body)).body.id; } catch (error) { message.textContent = error.message; run.disabled = false; }
  });
  if (!rows.length) return null;
  return el("details", { class: "card", id: "batch-form" },
    el("summary", {}, el("strong", {}, "Run a batch"), el("span", { class: "muted" }, " (a design of experiments over the inputs you tick)")),
    scroller(el("table", { class: "bounds" }, el("thead", {}, el("tr", {}, ["Vary", "Input", "Lower bound", "Upper bound"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((row) => row.node)))),
    el("div", { class: "row" }, el("label", { class: "inline" }, "Algorithm ", algorithm), el("label", { class: "inline" }, "Points ", count), run),
    about, message);
}

function outputsCard(schema) {
  const properties = Object.entries((schema && schema.properties) || {});
  return el("div", { class: "card", id: "output-list" }, el("h2", {}, "Outputs"),
    properties.length ? el("ul", { class: "outputs" }, properties.map(([output, property]) => {
      const description = tidy(property.description);
      return el("li", {}, el("code", {}, output), el("span", { class: "muted" }, " " + typeOf(property),
        description ? [typeOf(property) ? " · " : "", el("span", { class: "description" }, richText(description))] : null));
    })) : el("p", { class: "muted" }, "None."));
}

async function disciplineView(name, params) {
  const mine = generation;
  const optionsText = params.get("options") || "{}";
  const path = `/v1/discipline/${encodeURIComponent(name)}`;
  const info = await apiJson(path).then((r) => r.body).catch(() => null);
  let options, schema, defaults, outputSchema;
  try {
    options = JSON.parse(optionsText);
    const describeBody = { discipline_options: options };
    [schema, defaults, outputSchema] = await Promise.all(["inputs_schema", "default_input_data", "outputs_schema"]
      .map((kind) => postJson(`${path}/${kind}`, describeBody).then((r) => r.body)));
  } catch (error) {
    if (mine !== generation) return;
    const card = optionsCard(name, info, optionsText, true);
    show(el("h1", {}, name), info ? el("p", { class: "muted", id: "description" }, richText(info.description)) : null, card.node, el("p", { class: "error", id: "form-error" }, error.message));
    return;
  }
  if (mine !== generation) return;
  // "Run again" leaves the job's inputs here; they are used once, for this discipline only.
  let prefill = JSON.parse(sessionStorage.getItem("gaas-prefill") || "null");
  sessionStorage.removeItem("gaas-prefill");
  if (!prefill || prefill.discipline !== name) prefill = { input_data: {} };
  const card = optionsCard(name, info, optionsText);
  const fields = Object.entries(schema.properties || {}).map(([input, property]) => inputField(input, property, defaults[input], prefill.input_data[input]));
  const jobName = el("input", { id: "job-name", value: prefill.name || "", placeholder: "optional" });
  const timeout = el("input", { id: "timeout", type: "number", min: "0", step: "any", value: prefill.timeout || "", placeholder: "server default" });
  const linearize = el("input", { type: "checkbox", id: "linearize", checked: prefill.linearize ? "" : null });
  const message = el("p", { class: "error", id: "form-error", role: "alert" });
  const runNow = el("button", { type: "button", id: "run-sync", onclick: () => submit("synchronous", runNow) }, "Run now");
  const runLater = el("button", { type: "button", id: "run-async", class: "secondary", onclick: () => submit("asynchronous", runLater) }, "Submit as a job");
  const form = el("form", { class: "card", id: "inputs", onsubmit: (event) => event.preventDefault() },
    el("h2", {}, "Inputs"), el("p", { class: "muted" }, "Values are JSON; an empty field takes the default."),
    el("div", { class: "fields" }, fields.map((field) => field.node)),
    el("h2", {}, "Job"),
    el("div", { class: "row" }, el("label", { class: "inline" }, "Name ", jobName), el("label", { class: "inline" }, "Timeout (s) ", timeout),
      el("label", { class: "inline" }, linearize, " also compute the Jacobian")),
    el("div", { class: "row" }, runNow, runLater), message);

  // The whole request, or null when a field is wrong (its error is shown beside it).
  function request() {
    const input_data = {};
    let wrong = null;
    for (const field of fields) {
      const result = field.check();
      if (result.error) wrong = wrong || field;
      else if ("value" in result) input_data[field.input] = result.value;
    }
    let discipline_options;
    try { discipline_options = JSON.parse(card.options.value || "{}"); } catch (error) { message.textContent = "The discipline options are not JSON."; return null; }
    if (wrong) { message.textContent = "Some values are not right: see the fields in red."; wrong.box.focus(); return null; }
    if (timeout.value && !(Number(timeout.value) > 0)) { message.textContent = "The timeout must be a positive number of seconds."; return null; }
    const body = { discipline_options, input_data, linearize: linearize.checked };
    if (jobName.value.trim()) body.name = jobName.value.trim();
    if (timeout.value) body.timeout = Number(timeout.value);
    return body;
  }
  // One request at a time: the buttons stay disabled until the answer, so a double click runs once.
  let busy = false;
  async function submit(mode, button) {
    if (busy) return;
    message.textContent = "";
    const body = request();
    if (!body) return;
    busy = true;
    const label = button.textContent;
    runNow.disabled = runLater.disabled = true;
    form.setAttribute("aria-busy", "true");
    button.classList.add("busy");
    button.textContent = mode === "synchronous" ? "Running…" : "Submitting…";
    try {
      const { body: job } = await postJson(`${path}/execute?execution_mode=${mode}`, body);
      location.hash = "#/job/" + job.id;
    } catch (error) {
      message.textContent = error.message;
      busy = false;
      runNow.disabled = runLater.disabled = false;
      form.removeAttribute("aria-busy");
      button.classList.remove("busy");
      button.textContent = label;
    }
  }
  show(el("h1", {}, name), info ? el("p", { class: "muted", id: "description" }, richText(info.description)) : null,
    card.node, form, batchForm(path, fields, request), outputsCard(outputSchema));
}

// Routing

function showNav(path) {
  const nav = document.getElementById("nav");
  nav.hidden = false;
  const section = path.startsWith("/discipline") ? "#/disciplines" : path.startsWith("/batch") ? "#/batches" : "#/jobs";
  for (const link of nav.querySelectorAll("a[href^='#']")) {
    if (link.getAttribute("href") === section) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
}

async function route() {
  generation += 1;
  const [path, query] = (location.hash.slice(1) || "/jobs").split("?");
  const params = new URLSearchParams(query || "");
  if (path === "/login") { loginView(); return; }
  if (!token()) { signIn(); return; }
  showNav(path);
  show(el("p", { class: "muted" }, "Loading…"));
  try {
    if (!me) me = (await apiJson("/v1/user/me/")).body;
    document.getElementById("who").textContent = me.username;
    const parts = path.split("/").filter(Boolean);
    if (parts[0] === "job" && parts[1]) await jobView(parts[1]);
    else if (parts[0] === "batch" && parts[1]) await batchView(parts[1]);
    else if (parts[0] === "batches") await batchesView(params);
    else if (parts[0] === "disciplines") await disciplinesView();
    else if (parts[0] === "discipline" && parts[1]) await disciplineView(decodeURIComponent(parts[1]), params);
    else await jobsView(params);
  } catch (error) { if (token()) show(el("p", { class: "error" }, error.message)); }
}

document.getElementById("logout").addEventListener("click", () => {
  sessionStorage.removeItem("gaas-token");
  sessionStorage.removeItem("gaas-wanted");
  me = null;
  location.hash = "#/login";
});
window.addEventListener("hashchange", route);
route();
