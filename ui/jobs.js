// The jobs table, updated live, with its filters.
import { apiJson, ownerCells, scopeSwitch } from "./api.js";
import { PAGE, el, pager, replaceRows, scroller, setText, show, showBadge, sleep, stillHere } from "./dom.js";
import { duration, statusOf, timeCell } from "./format.js";

// The server filters by status, name and exact discipline; a partial discipline name (while it
// is typed) filters the fetched page here too.
function jobMatches(job, filters) {
  const has = (text, part) => (text || "").toLowerCase().includes(part.toLowerCase());
  return has(job.discipline_class_name, filters.discipline) && has(job.name, filters.name) &&
    (filters.status !== "cancelled" || job.error === "cancelled");
}

const JOB_FILTERS = ["batch", "status", "discipline", "name", "scope"];

function jobsHash(filters, offset) {
  const query = new URLSearchParams();
  for (const key of JOB_FILTERS) if (filters[key]) query.set(key, filters[key]);
  if (offset) query.set("offset", offset);
  return "#/jobs" + (query.toString() ? "?" + query : "");
}

// The filter on one batch's points, shown as a chip that links to the batch and can be cleared.
function batchChip(filters) {
  if (!filters.batch) return null;
  return el("span", { class: "chip", id: "batch-chip" },
    el("a", { href: "#/batch/" + filters.batch }, "batch #" + filters.batch),
    el("button", { type: "button", class: "link", title: "Show every job", "aria-label": "Clear the batch filter",
      onclick: () => { location.hash = jobsHash({ ...filters, batch: "" }, 0); } }, "×"));
}

// The "failed" filter: real failures (errors, timeouts, crashes) first, newest first, then the
// cancelled jobs (failed too for the API, error "cancelled"), which would otherwise bury them
// after a batch is cancelled.
async function failedFirst(query, offset) {
  const ask = async (extra) => {
    const asked = new URLSearchParams({ ...Object.fromEntries(query), ...extra });
    const { body, response } = await apiJson(`/v1/job?${asked}`);
    return { jobs: body, total: Number(response.headers.get("X-Total-Count")) };
  };
  const [real, cancelled] = await Promise.all([
    ask({ not_error: "cancelled", limit: PAGE, offset }), ask({ error: "cancelled", limit: 1 })]);
  const jobs = real.jobs;
  if (jobs.length < PAGE && cancelled.total) {
    const from = Math.max(0, offset - real.total);
    jobs.push(...(await ask({ error: "cancelled", limit: PAGE - jobs.length, offset: from })).jobs);
  }
  return { jobs, total: real.total + cancelled.total };
}

// The query of a page of jobs, from the filters.
function jobsQuery(filters, offset, catalogue) {
  const query = new URLSearchParams({ limit: PAGE, offset });
  if (filters.batch) query.set("batch_id", filters.batch); // the server gives the points in their order
  if (filters.status === "cancelled") { query.set("status", "failed"); query.set("error", "cancelled"); }
  else if (filters.status) query.set("status", filters.status);
  if (filters.name) query.set("name", filters.name);
  if (filters.scope === "group") query.set("scope", "group");
  if (catalogue.has(filters.discipline)) query.set("discipline", filters.discipline);
  return query;
}

export async function jobsView(params) {
  const current = stillHere();
  const filters = Object.fromEntries(JOB_FILTERS.map((key) => [key, params.get(key) || ""]));
  const offset = Number(params.get("offset") || 0);
  const statusBox = el("select", { id: "status-filter",
    onchange: () => { location.hash = jobsHash({ ...filters, status: statusBox.value }, 0); } },
  ["", "pending", "running", "finished", "failed", "cancelled"].map((value) =>
    el("option", { value, selected: value === filters.status ? "" : null }, value || "all statuses")));
  // Typing filters the rows in place; the address follows without a navigation that would reset the view.
  const refilter = () => {
    filters.discipline = disciplineBox.value.trim(); filters.name = nameBox.value.trim();
    history.replaceState(null, "", jobsHash(filters, offset));
    draw();
  };
  const disciplineBox = el("input", { id: "discipline-filter", type: "search", list: "discipline-names",
    value: filters.discipline, placeholder: "any discipline", oninput: refilter });
  const nameBox = el("input", { id: "name-filter", type: "search", value: filters.name, placeholder: "any name",
    oninput: refilter });
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
      scopeSwitch(filters.scope, (scope) => jobsHash({ ...filters, scope }, 0)),
      el("label", { class: "inline" }, "Status ", statusBox),
      el("label", { class: "inline" }, "Discipline ", disciplineBox),
      el("label", { class: "inline" }, "Name ", nameBox), names),
    scroller(el("table", { id: "jobs" }, el("thead", {}, el("tr", {},
      ["Id", "Name", "Discipline", "Status", "Message", "Created", "Duration", "Owner", "Group"].map((h) =>
        el("th", {}, h)))), body)),
    pages.node);
  const rows = new Map(); // job id -> row: rows are patched, not rebuilt, so a click never hits a replaced node
  let jobs = [], total = 0;
  function draw() {
    replaceRows(body, jobs.filter((job) => jobMatches(job, filters)).map((job) => jobRow(rows, job)));
    const filtered = filters.batch || filters.discipline || filters.name || filters.status;
    const none = filtered ? "No jobs match the filters." : "No jobs yet: run one from Disciplines.";
    pages.info.textContent = !total ? none
      : `${offset + 1}–${offset + jobs.length} of ${total}` + (filtered ? " jobs that match the filters" : "");
    pages.update(jobs.length, total);
  }
  while (current()) {
    try {
      const query = jobsQuery(filters, offset, catalogue);
      let found;
      if (filters.status === "failed") found = await failedFirst(query, offset);
      else {
        const { body: page, response } = await apiJson(`/v1/job?${query}`);
        found = { jobs: page, total: Number(response.headers.get("X-Total-Count")) };
      }
      if (!current()) return;
      jobs = found.jobs; total = found.total;
      draw();
    } catch (error) { pages.info.textContent = error.message; }
    await sleep(1000);
  }
}

// A batch's point is named by its place in the batch, a study's job by its study, after its own
// name if it has one.
function jobLabel(job) {
  const point = job.batch_id ? `batch #${job.batch_id} · point ${job.batch_index}` : "";
  const study = job.study_id ? `study #${job.study_id}` : "";
  const cached = job.cached_from != null ? `from cache (job #${job.cached_from})` : "";
  return [job.name, point, study, cached].filter(Boolean).join(" · ");
}

// Where a row leads: a study's job to its study (its convergence, best point, images).
function rowTarget(job) { return job.study_id ? "#/study/" + job.study_id : "#/job/" + job.id; }

function jobRow(rows, job) {
  let row = rows.get(job.id);
  if (!row) {
    row = el("tr", { class: "clickable", "data-job": job.id, "data-batch-index": job.batch_id ? job.batch_index : null,
      "data-study": job.study_id || null, onclick: () => { location.hash = rowTarget(job); } },
    el("td", {}, el("a", { href: rowTarget(job) }, "#" + job.id)), el("td"), el("td"), el("td"),
    el("td", { class: "message error" }), el("td", { class: "date" }), el("td", { class: "duration" }));
    rows.set(job.id, row);
  }
  const [, name, discipline, status, message, created, took] = row.children;
  setText(name, jobLabel(job));
  setText(discipline, job.discipline_class_name);
  showBadge(status, statusOf(job));
  const why = statusOf(job) === "cancelled" ? "" : job.message || job.error || "";
  setText(message, why);
  message.title = why;
  if (!created.firstChild && job.created_at) created.append(timeCell(job.created_at));
  setText(took, duration(job));
  return ownerCells(row, job);
}
