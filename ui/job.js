// The page of one job: its facts, inputs, outputs, Jacobian, log and files, followed live.
import { api, apiJson, downloadFrom, postJson } from "./api.js";
import { badge, downloads, el, scroller, setText, show, sleep, stillHere } from "./dom.js";
import { duration, hasEnded, isNumbers, number, setRich, showTime, sizeOf, statusOf, tidy, unitOf } from "./format.js";
import { jacobianView } from "./jacobian.js";
import { longArray } from "./plot.js";

const LOG_TAIL = 64 * 1024;
const LONG_ARRAY = 10; // longer arrays are plotted rather than written out

function downloadJobFile(jobId, path) {
  const file = encodeURIComponent(path);
  return downloadFrom(`/v1/job/${jobId}/files/download?filename=${file}`, path.split("/").pop());
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
        el("td", { class: "name" }, el("code", {}, name), el("span", { class: "unit" }),
          el("div", { class: "description muted" })),
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

// Where the results come from: the job that computed them (a hit of the results cache), the
// versions, host and code that did, and the inputs' digest.
function provenanceView(job) {
  const from = job.cached_from != null
    ? el("p", { id: "cached-from" }, "From cache (", el("a", { href: "#/job/" + job.cached_from }, "job #" + job.cached_from),
      "): that job computed these results; this one did not run.")
    : null;
  const found = job.provenance;
  if (!found) return el("div", { id: "provenance" }, from, el("p", { class: "muted" }, "When the job has run."));
  const code = found.discipline || {};
  const rows = [
    ["Discipline", `${code.class_name || ""} (${code.module || ""})`],
    ["Distribution", code.distribution || "none: a plugin found on GEMSEO_PATH"],
    ["Code SHA-256", code.code_sha256], ["Inputs SHA-256", found.inputs_sha256], ["Host", found.host],
    ["gaas", found.gaas], ["GEMSEO", found.gemseo], ["Python", found.python],
  ];
  return el("div", { id: "provenance" }, from, el("table", { class: "facts" }, el("tbody", {},
    rows.map(([name, value]) => el("tr", {}, el("th", {}, name), el("td", {}, el("code", {}, value || "")))))));
}

// The job's directory, a file a link that downloads it.
export function jobFiles(jobId, node, prefix = "") {
  const fetchFile = (path) => (event) => { event.preventDefault(); downloadJobFile(jobId, path); };
  return el("ul", { class: "tree" }, Object.entries(node).map(([name, child]) => child === null
    ? el("li", {}, el("a", { href: "#", "data-file": prefix + name, onclick: fetchFile(prefix + name) }, name))
    : el("li", {}, name + "/", jobFiles(jobId, child, prefix + name + "/"))));
}

// The discipline form, prefilled with this job's inputs and settings (read once by the form).
function runAgain(job) {
  sessionStorage.setItem("gaas-prefill", JSON.stringify({
    discipline: job.discipline_class_name, input_data: job.input_data || {}, name: job.name || "",
    timeout: job.timeout, linearize: job.job_type === "execute_and_linearize",
  }));
  const options = encodeURIComponent(JSON.stringify(job.discipline_options || {}));
  location.hash = `#/discipline/${encodeURIComponent(job.discipline_class_name)}?options=${options}`;
}

// The job's facts, label over value; the cells that change are returned to be patched.
function jobSummary(job) {
  const cells = { status: el("dd"), created: el("dd"), started: el("dd"), ended: el("dd"),
    duration: el("dd", { id: "elapsed" }) };
  const what = job.job_type === "execute_and_linearize" ? "with its Jacobian" : "values only";
  const mode = `${job.execution_mode}, ${what}` + (job.timeout ? `, timeout ${job.timeout} s` : "");
  const name = job.discipline_class_name;
  const discipline = el("a", { href: "#/discipline/" + encodeURIComponent(name) }, name);
  const batch = job.batch_id ? el("dd", {}, el("a", { href: "#/batch/" + job.batch_id, id: "batch-link" },
    `batch #${job.batch_id}`), `, point ${job.batch_index}`) : null;
  const study = job.study_id ? el("dd", {}, el("a", { href: "#/study/" + job.study_id, id: "study-link" },
    `study #${job.study_id}`)) : null;
  const items = [["Status", cells.status, "wide"], ["Discipline", el("dd", {}, discipline)],
    ["Mode", el("dd", {}, mode)], batch ? ["Batch", batch] : null, study ? ["Study", study] : null,
    ["Duration", cells.duration],
    ["Created", cells.created], ["Started", cells.started], ["Ended", cells.ended],
    ["Options", el("dd", {}, el("code", {}, JSON.stringify(job.discipline_options || {}))), "wide"],
  ].filter(Boolean);
  const node = el("dl", { id: "summary", class: "summary" },
    items.map(([key, value, wide]) => el("div", { class: wide || null }, el("dt", {}, key), value)));
  return { node, cells };
}

// The badge, and beside it why the job failed (or that it was cancelled).
export function showStatus(cell, job) {
  const status = statusOf(job), why = job.message || (status === "cancelled" ? "" : job.error) || "";
  if (cell.dataset.shown === status + why) return;
  cell.dataset.shown = status + why;
  const kind = status === "cancelled" ? "muted" : "error";
  cell.replaceChildren(badge(status), why ? el("span", { class: "message " + kind, id: "message" }, why) : "");
}

// The page of one job, built once and patched: a poll must not replace what the user points at.
function jobPage(job) {
  const id = job.id, basename = `job-${id}`;
  const { node: summary, cells } = jobSummary(job);
  const cancel = el("button", { class: "secondary", id: "cancel", onclick: async () => {
    try {
      page.update((await apiJson(`/v1/job/${id}/cancel`, { method: "POST" })).body);
    } catch (error) { alert(error.message); }
  } }, "Cancel");
  const remove = el("button", { class: "danger", id: "delete", onclick: async () => {
    if (!confirm(`Delete job #${id} and its files?`)) return;
    await apiJson("/v1/job/" + id, { method: "DELETE" }); location.hash = "#/jobs";
  } }, "Delete");
  const again = el("button", { class: "secondary", id: "run-again", onclick: () => runAgain(job) },
    "Run again with these inputs");
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
  const origin = el("div", { class: "card", id: "origin" }, provenanceView(job));
  const root = el("section", { class: "job-page", "data-job-page": id },
    el("h1", {}, `Job #${id}` + (job.name ? ` — ${job.name}` : "")),
    el("div", { class: "row" }, cancel, again, remove),
    el("div", { class: "card" }, summary), failure,
    el("h2", {}, "Inputs"), inputs, el("h2", {}, "Outputs"), outputs,
    job.job_type === "execute_and_linearize" ? [el("h2", {}, "Jacobian"), jacobian] : null,
    el("h2", {}, "Log"), logNote, log, el("h2", {}, "Files"), files, el("h2", {}, "Provenance"), origin);
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
      const xChoices = (length) => Object.fromEntries(Object.entries(job.input_data || {})
        .filter(([, v]) => isNumbers(v) && v.length === length));
      outputs.replaceChildren(dataTable(job.output_data, "outputs", `${basename}-output`, xChoices));
      if (schemas) page.setSchemas(schemas);
      jacobian.replaceChildren(jacobianView(job.jacobian_data, basename));
      origin.replaceChildren(provenanceView(job));
      files.replaceChildren(jobFiles(id, tree));
    },
  };
  page.update(job);
  return page;
}

// The end of a log is what matters, and a solver's log can be gigabytes: ask for the tail.
function logTail(id) {
  return api(`/v1/job/${id}/log?tail=${LOG_TAIL}`).then((r) => (r.ok ? r.text() : "")).catch(() => "");
}

function schemasOf(job) {
  const body = { discipline_options: job.discipline_options || {} };
  const name = encodeURIComponent(job.discipline_class_name);
  const ask = (kind) => postJson(`/v1/discipline/${name}/${kind}_schema`, body).then((r) => r.body).catch(() => ({}));
  return Promise.all([ask("inputs"), ask("outputs")]).then(([inputs, outputs]) => ({ inputs, outputs }));
}

function filesOf(id) { return apiJson(`/v1/job/${id}/files`).then((r) => r.body).catch(() => ({})); }

export async function jobView(id) {
  const current = stillHere();
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

