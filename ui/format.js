// Numbers, dates, statuses and descriptions as a person reads them.
import { el } from "./dom.js";

const DIGITS = 6; // significant digits shown; the full value stays in data-value and title
// A cancelled job ends "failed" for the API's clients, but for a person it is not a failure.
export function pointStatus(status, error) {
  return status === "failed" && error === "cancelled" ? "cancelled" : status;
}
export function statusOf(job) { return pointStatus(job.job_status, job.error); }
export function hasEnded(job) { return job.job_status === "finished" || job.job_status === "failed"; }

// Every date in one form, local time: 2026-12-01 09:06:58 (the ISO UTC value is in the title).
function when(text) {
  if (!text) return "";
  const date = new Date(text), pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

// A date in that form, its ISO value kept for the title.
export function timeCell(text) { return text ? el("time", { datetime: text, title: text }, when(text)) : ""; }

export function seconds(value) {
  if (value < 1) return Math.round(value * 1000) + " ms";
  if (value < 60) return value.toFixed(value < 10 ? 2 : 1) + " s";
  const minutes = Math.floor(value / 60), rest = Math.floor(value % 60);
  if (minutes < 60) return `${minutes} min ${String(rest).padStart(2, "0")} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

// How long the job ran, or has been running, or has been waiting for a worker.
export function duration(job) {
  if (!job.started_at) {
    return job.job_status === "pending" && job.created_at ? "queued " + seconds(since(job.created_at)) : "";
  }
  const end = job.ended_at ? new Date(job.ended_at) : new Date();
  return seconds(Math.max(0, (end - new Date(job.started_at)) / 1000));
}

// Seconds since a date.
export function since(text) { return Math.max(0, (new Date() - new Date(text)) / 1000); }

// Numbers as engineers read them

// Six significant digits, exponents outside [1e-3, 1e6): 165458.26978768 reads 165458.
export function round(value) {
  if (typeof value !== "number" || !isFinite(value)) return String(value);
  if (Number.isInteger(value) && Math.abs(value) < 1e6) return String(value);
  const size = Math.abs(value);
  const text = size < 1e-3 || size >= 1e6 ? value.toExponential(DIGITS - 1) : value.toPrecision(DIGITS);
  const [mantissa, exponent] = text.split("e");
  const short = mantissa.includes(".") ? mantissa.replace(/\.?0+$/, "") : mantissa;
  return exponent ? short + "e" + exponent.replace("+", "") : short;
}

// A rounded number whose full value is kept for the title, for copying and for downloads.
export function number(value, tag = "span") {
  if (typeof value !== "number") return el(tag, { class: "text" }, JSON.stringify(value));
  return el(tag, { class: "num", "data-value": String(value), title: String(value) }, round(value));
}

export function isNumbers(value) { return Array.isArray(value) && value.every((v) => typeof v === "number"); }

export function sizeOf(value) { return Array.isArray(value) ? String(value.length) : "1"; }

// GEMSEO descriptions carry units in brackets, as in "Beam length [m]".
export function unitOf(description) {
  const match = /\[([^\]]+)\]/.exec(description || "");
  return match ? match[1] : "";
}

export function tidy(description) { return (description || "").replace(/\s+/g, " ").trim(); }

// GEMSEO's docstrings are reStructuredText: :math:`y_1` shows its content in italics, other roles
// (:class:`~gemseo.Foo`, :func:...) and ``literals`` as code, `label <url>`_ as its label, *x* and
// **x** as emphasis. Text nodes only: the server's text is never parsed as HTML.
const RST = new RegExp([
  /:math:`([^`]+)`/, // math
  /:[\w.+-]+:(?:[\w.+-]+:)?`([^`]+)`/, // any other role, with its domain or not (:py:class:)
  /``(.+?)``/, // literal
  /`([^`<]+?)\s*<[^>`]+>`__?/, // link
  /\*\*(.+?)\*\*/, // strong
  /\*([^*\s](?:[^*]*[^*\s])?)\*/, // emphasis
  /`([^`]+)`/, // the default role
].map((part) => part.source).join("|"), "g");

function roleText(text) {
  // :class:`~a.b.C` reads C; :class:`label <a.b.C>` reads label.
  const labelled = /^(.*?)\s*<[^>]+>$/.exec(text);
  if (labelled && labelled[1]) return labelled[1];
  return text.startsWith("~") ? text.slice(1).split(".").pop() : text.replace(/^[!]/, "");
}

export function richText(text) {
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

export function setRich(node, text) {
  if (node.dataset.text === text) return;
  node.dataset.text = text;
  node.replaceChildren(...richText(text));
}


// A date cell that changes only when the date does.
export function showTime(cell, text) {
  if (cell.dataset.shown === (text || "")) return;
  cell.dataset.shown = text || "";
  cell.replaceChildren(timeCell(text));
}
