// The batch form of a discipline's page: a design of experiments over the inputs one ticks, by
// one of the server's DOE algorithms.
import { apiJson, postJson } from "./api.js";
import { el, scroller } from "./dom.js";
import { checkValue } from "./fields.js";
import { isNumbers, richText, tidy } from "./format.js";

// The DOE algorithms of the server (GET /v1/algorithms), asked once; those that take a number of
// samples, which a batch always gives. Without the route, the one algorithm every gaas has.
let doeAlgorithms = null;
const DOE_FALLBACK = [{ name: "PYDOE_LHS", description: "Latin hypercube sampling.", settings: {} }];

function loadDoeAlgorithms() {
  if (!doeAlgorithms) {
    doeAlgorithms = apiJson("/v1/algorithms").then(({ body }) => {
      const usable = (a) => a.name !== "CustomDOE" && (!a.settings || "n_samples" in a.settings);
      const offered = ((body && body.doe) || []).filter(usable);
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
export function batchForm(path, fields, request) {
  const rows = fields.filter((field) => isNumbers(field.fallback)).map((field) => {
    const bound = (which) => el("input", { "data-bound": which, "data-for": field.input,
      value: JSON.stringify(field.fallback), spellcheck: "false", "aria-label": `${which} bound of ${field.input}` });
    const vary = el("input", { type: "checkbox", "data-vary": field.input, "aria-label": "vary " + field.input });
    const row = { field, vary, lower: bound("lower"), upper: bound("upper") };
    row.node = el("tr", {}, el("td", {}, row.vary), el("td", {}, el("code", {}, field.input)),
      el("td", {}, row.lower), el("td", {}, row.upper));
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
      const [lower, upper] = [row.lower, row.upper]
        .map((box) => checkValue(box.value, row.field.property, row.field.fallback));
      const crossed = !lower.error && !upper.error && lower.value.some((v, i) => v > upper.value[i]);
      const wrong = lower.error || upper.error || (crossed ? "the lower bound is above the upper bound." : "");
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
    if (!Number.isInteger(n) || n < 1) {
      message.textContent = "The number of points must be a positive integer.";
      return;
    }
    for (const name of Object.keys(space)) delete body.input_data[name];
    body.doe = { algo_name: algorithm.value, n_samples: n, design_space: space };
    run.disabled = true; // one batch per click
    try {
      location.hash = "#/batch/" + (await postJson(`${path}/batch`, body)).body.id;
    } catch (error) { message.textContent = error.message; run.disabled = false; }
  });
  if (!rows.length) return null;
  return el("details", { class: "card", id: "batch-form" },
    el("summary", {}, el("strong", {}, "Run a batch"),
      el("span", { class: "muted" }, " (a design of experiments over the inputs you tick)")),
    scroller(el("table", { class: "bounds" },
      el("thead", {}, el("tr", {}, ["Vary", "Input", "Lower bound", "Upper bound"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((row) => row.node)))),
    el("div", { class: "row" }, el("label", { class: "inline" }, "Algorithm ", algorithm),
      el("label", { class: "inline" }, "Points ", count), run),
    about, message);
}

