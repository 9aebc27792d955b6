// Plots: line plots of long arrays, scatter plots of a batch, the colour scales of heat maps.
import { el, scroller, svg } from "./dom.js";
import { number, round } from "./format.js";

const PLOT_COLUMNS = 160; // decimation columns of a plot: at most two points each
const SHOWN_VALUES = 1000; // values listed under a plot; the downloads have them all
const MAX_CIRCLES = 5000; // a scatter plot draws at most this many points; more would look the same

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
    for (let i = start; i < end; i++) {
      if (values[i] < values[lowAt]) lowAt = i;
      if (values[i] > values[highAt]) highAt = i;
    }
    points.push(...(lowAt < highAt ? [lowAt, highAt] : [highAt, lowAt]).map((i) => [i, values[i]]));
  }
  return points;
}

// A line plot with its frame and the min/max of both axes; xs (same length) replaces the index.
export function plot(values, xs = null, xName = "index") {
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
    values.length > SHOWN_VALUES ? el("p", { class: "muted" },
      `The first ${SHOWN_VALUES} of ${values.length} values; the downloads have them all.`) : null);
  });
  return details;
}

// A long array: plot, summary, an x-axis choice among the same-length inputs, the values.
export function longArray(values, xChoices) {
  const [low, high] = range(values);
  const holder = el("div", { class: "plot-holder" }, plot(values));
  const names = Object.keys(xChoices || {});
  const picker = names.length ? el("select", { class: "x-axis", "aria-label": "x axis", onchange: () => {
    holder.replaceChildren(picker.value ? plot(values, xChoices[picker.value], picker.value) : plot(values));
  } }, el("option", { value: "" }, "index"), names.map((name) => el("option", { value: name }, name))) : null;
  return [holder,
    el("div", { class: "row tight" },
      el("span", { class: "muted" }, `${values.length} values, from ${round(low)} to ${round(high)}`),
      picker ? el("label", { class: "inline" }, "x axis ", picker) : null),
    valuesList(values)];
}

// Heat maps

// How strongly an entry is coloured, from -1 to 1. Linear: the square root of the magnitude
// relative to the largest entry. Symmetric log: sign(x)·log10(1 + |x|/c) over the same of the
// largest, with c the smallest non-zero magnitude (at most 12 decades below the largest), so that
// an entry of 1e5 leaves one of 1e-4 visible.
export function heatScale(matrices, log) {
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
export function heatRgb(value, scale) {
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
export function heatLegend(scale) {
  const width = 440, height = 34, left = 30, w = width - 2 * left, steps = 64;
  const x = (value) => left + ((scale.at(value) + 1) / 2) * w;
  const parts = [];
  for (let k = 0; k < steps; k++) {
    const rgb = heatRgb(scale.valueAt(-1 + (2 * (k + 0.5)) / steps), scale);
    const x0 = (left + (k * w) / steps).toFixed(2), wide = (w / steps + 0.4).toFixed(2);
    parts.push(svg("rect", { x: x0, y: 2, width: wide, height: 12, fill: `rgb(${rgb.join(",")})` }));
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
    "aria-label": `colour scale${scale.log ? " (symmetric log)" : ""} from ${round(-scale.top)} to ${round(scale.top)}`,
  }, ...parts);
}

// Scatter plots

// Whether a column takes more than one value.
export function varies(values) { const [low, high] = range(values); return low < high; }

// About `count` round values between low and high, a step of 1, 2 or 5 times a power of ten.
function niceTicks(low, high, count = 5) {
  if (!isFinite(low) || !isFinite(high)) return [];
  if (!(high > low)) return [low];
  const raw = (high - low) / count, power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw * 0.999);
  const ticks = [];
  for (let k = Math.ceil(low / step - 1e-9); k * step <= high + step * 1e-9; k++) {
    ticks.push(Number((k * step).toPrecision(12)));
  }
  return ticks;
}

// ys against xs, one circle a point; points that fall on one pixel are drawn once, and past
// MAX_CIRCLES one in k, so that 10,000 points stay quick to draw.
export function scatter(xs, ys, xName, yName) {
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
  const label = (x, y, text, anchor, extra = {}) =>
    svg("text", { x, y, "text-anchor": anchor, class: "tick", ...extra }, text);
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
  return svg("svg", { class: "plot scatter", id: "scatter", width, height, viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "data-points": shown.length, "aria-label": `${shown.length} points: ${yName} against ${xName}` },
  svg("rect", { x: left, y: top, width: w, height: h, class: "frame" }), svg("g", { class: "grid" }, ...grid),
  svg("g", { class: "dots" }, ...circles), ...parts,
  label(left + w / 2, top + h + 32, xName, "middle", { class: "tick axis" }),
  label(14, top + h / 2, yName, "middle", { class: "tick axis", transform: `rotate(-90 14 ${top + h / 2})` }));
}

