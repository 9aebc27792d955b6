// The page of one discipline: its constructor options, a form generated from its input grammar,
// the batch form and its outputs.
import { apiJson, groupPicker, postJson } from "./api.js";
import { el, scroller, show, stillHere } from "./dom.js";
import { batchForm } from "./doe.js";
import { inputField, typeOf } from "./fields.js";
import { richText, tidy } from "./format.js";

// The class's docstring, its reStructuredText roles rendered.
function summary(info) {
  return info ? el("p", { class: "muted", id: "description" }, richText(info.description)) : null;
}

// The constructor's parameters: what discipline_options may hold.
function parametersTable(info) {
  const parameters = (info && info.parameters) || [];
  if (!parameters.length) return el("p", { class: "muted" }, "The constructor takes no parameters.");
  return scroller(el("table", { id: "parameters" },
    el("thead", {}, el("tr", {}, ["Parameter", "Type", "Default", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, parameters.map((p) => el("tr", {}, el("td", {}, el("code", {}, p.name)), el("td", {}, p.type || ""),
      el("td", {}, "default" in p ? el("code", {}, JSON.stringify(p.default)) : ""),
      el("td", {}, p.required ? el("strong", {}, "required") : ""))))));
}

function optionsCard(name, info, optionsText, unfold = false) {
  const options = el("textarea", { id: "options", rows: 2, spellcheck: "false" }, optionsText);
  const required = info && info.options_required;
  const needed = ((info && info.parameters) || []).filter((p) => p.required && p.name !== "name").map((p) => p.name);
  // Folded when the defaults do: most disciplines need no options.
  const names = ((info && info.parameters) || []).map((p) => p.name).join(", ");
  const open = required || unfold || optionsText.trim() !== "{}";
  const warning = "This discipline needs options" + (needed.length ? ": " + needed.join(", ") : "") + ".";
  return { options, node: el("details", { class: "card", id: "constructor", open: open ? "" : null },
    el("summary", {}, el("strong", {}, "Constructor"), el("span", { class: "muted" }, names ? ` (${names})` : "")),
    required ? el("p", { class: "warning", id: "options-required" }, warning) : null,
    parametersTable(info),
    el("label", { for: "options" }, "Discipline options (JSON)"), options,
    el("p", {}, el("button", { class: "secondary", type: "button", onclick: () => {
      location.hash = `#/discipline/${encodeURIComponent(name)}?options=${encodeURIComponent(options.value)}`;
    } }, "Apply options"))) };
}

// What the discipline computes, with descriptions where its grammar has them.
function outputsCard(schema) {
  const properties = Object.entries((schema && schema.properties) || {});
  return el("div", { class: "card", id: "output-list" }, el("h2", {}, "Outputs"),
    properties.length ? el("ul", { class: "outputs" }, properties.map(([output, property]) => {
      const description = tidy(property.description);
      const type = typeOf(property);
      return el("li", {}, el("code", {}, output), el("span", { class: "muted" }, " " + type,
        description ? [type ? " · " : "", el("span", { class: "description" }, richText(description))] : null));
    })) : el("p", { class: "muted" }, "None."));
}

export async function disciplineView(name, params) {
  const current = stillHere();
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
    if (!current()) return;
    const card = optionsCard(name, info, optionsText, true);
    show(el("h1", {}, name), summary(info), card.node, el("p", { class: "error", id: "form-error" }, error.message));
    return;
  }
  if (!current()) return;
  // "Run again" leaves the job's inputs here; they are used once, for this discipline only.
  let prefill = JSON.parse(sessionStorage.getItem("gaas-prefill") || "null");
  sessionStorage.removeItem("gaas-prefill");
  if (!prefill || prefill.discipline !== name) prefill = { input_data: {} };
  const card = optionsCard(name, info, optionsText);
  const fields = Object.entries(schema.properties || {})
    .map(([input, property]) => inputField(input, property, defaults[input], prefill.input_data[input]));
  const jobName = el("input", { id: "job-name", value: prefill.name || "", placeholder: "optional" });
  const timeout = el("input", { id: "timeout", type: "number", min: "0", step: "any", value: prefill.timeout || "",
    placeholder: "server default" });
  const linearize = el("input", { type: "checkbox", id: "linearize", checked: prefill.linearize ? "" : null });
  const message = el("p", { class: "error", id: "form-error", role: "alert" });
  const share = groupPicker();
  const runNow = el("button", { type: "button", id: "run-sync", onclick: () => submit("synchronous", runNow) },
    "Run now");
  const runLater = el("button", { type: "button", id: "run-async", class: "secondary",
    onclick: () => submit("asynchronous", runLater) }, "Submit as a job");
  const form = el("form", { class: "card", id: "inputs", onsubmit: (event) => event.preventDefault() },
    el("h2", {}, "Inputs"), el("p", { class: "muted" }, "Values are JSON; an empty field takes the default."),
    el("div", { class: "fields" }, fields.map((field) => field.node)),
    el("h2", {}, "Job"),
    el("div", { class: "row" }, el("label", { class: "inline" }, "Name ", jobName),
      el("label", { class: "inline" }, "Timeout (s) ", timeout),
      el("label", { class: "inline" }, linearize, " also compute the Jacobian"), share.node),
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
    const refuse = (text) => { message.textContent = text; return null; };
    let discipline_options;
    try { discipline_options = JSON.parse(card.options.value || "{}"); } catch (error) {
      return refuse("The discipline options are not JSON.");
    }
    if (wrong) { wrong.box.focus(); return refuse("Some values are not right: see the fields in red."); }
    if (timeout.value && !(Number(timeout.value) > 0)) {
      return refuse("The timeout must be a positive number of seconds.");
    }
    const body = { discipline_options, input_data, linearize: linearize.checked };
    if (jobName.value.trim()) body.name = jobName.value.trim();
    if (timeout.value) body.timeout = Number(timeout.value);
    if (share.select.value) body.group = share.select.value; // the batch form's request too
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
  show(el("h1", {}, name), summary(info),
    card.node, form, batchForm(path, fields, request), outputsCard(outputSchema));
}

