// The Jacobian of a job, block by block, coloured by value.
import { downloads, el, scroller } from "./dom.js";
import { number, round } from "./format.js";
import { heatLegend, heatRgb, heatScale } from "./plot.js";

const HEAT_FROM = 16; // Jacobian blocks with more cells get a background by value
const MATRIX_MAX = 50; // blocks with more rows or columns are drawn as an image, not a table

function matrixTable(matrix, rows, cols, scale) {
  const headers = rows * cols > 1;
  return el("table", { class: "matrix" + (scale ? " heat" : ""), "data-rows": rows, "data-cols": cols },
    headers ? el("thead", {}, el("tr", {}, el("th"),
      Array.from({ length: cols }, (_, j) => el("th", { scope: "col" }, j)))) : null,
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
      el("span", { class: "shape muted", title: `rows: components of ${output}, columns: components of ${input}` },
        `${rows} × ${cols}`),
      rows * cols > 1 ? downloads(`${basename}-d_${output}-d_${input}`, matrix) : null),
    scroller(big ? heatImage(matrix, rows, cols, scale) : matrixTable(matrix, rows, cols, scale)),
    scale ? heatLegend(scale) : null);
}

// The colour scale chosen last, kept for the next Jacobian.
function logScaleWanted() { return localStorage.getItem("gaas-jacobian-scale") === "log"; }

export function jacobianView(jacobian, basename) {
  const outputs = Object.entries(jacobian || {});
  if (!outputs.length) return el("p", { class: "muted", id: "jacobian" }, "None.");
  const blocks = el("div", { class: "jacobian-blocks" });
  const toggle = el("input", { type: "checkbox", id: "jacobian-log", checked: logScaleWanted() ? "" : null,
    onchange: draw });
  function draw() {
    localStorage.setItem("gaas-jacobian-scale", toggle.checked ? "log" : "linear");
    blocks.dataset.scale = toggle.checked ? "log" : "linear";
    const block = (output) => ([input, matrix]) => jacobianBlock(output, input, matrix, basename, toggle.checked);
    blocks.replaceChildren(...outputs.map(([output, inputs]) => el("section", { class: "jacobian-output" },
      el("h3", {}, el("code", {}, output)),
      el("div", { class: "blocks" }, Object.entries(inputs).map(block(output))))));
  }
  draw();
  return el("div", { id: "jacobian" },
    el("p", { class: "muted" }, "Rows are the output's components, columns the input's. Colour: red above zero, "
      + "blue below, stronger for larger magnitudes; white is zero."),
    el("label", { class: "inline", title: "sign(x)·log10(1 + |x|/c), c the smallest non-zero magnitude of the block" },
      toggle,
      "logarithmic colour scale (shows small entries beside large ones)"),
    blocks);
}

