// The gaas dashboard: plain JavaScript on the JSON API. The token lives in sessionStorage and is
// sent as a bearer header, never as a cookie, so there is no CSRF surface.
"use strict";

const view = document.getElementById("view");
const PAGE = 20;
let generation = 0; // bumped on every navigation: loops of an old view stop

const LOG_TAIL = 64 * 1024;

function token() { return sessionStorage.getItem("gaas-token"); }

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token()) headers.Authorization = "Bearer " + token();
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    sessionStorage.removeItem("gaas-token");
    location.hash = "#/login";
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

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function show(...nodes) { view.replaceChildren(...nodes.flat().filter((node) => node !== null && node !== undefined)); }
function badge(status) { return el("span", { class: "status " + status, "data-status": status }, status); }
function when(text) { return text ? new Date(text).toLocaleString() : ""; }

function duration(job) {
  if (!job.started_at) return "";
  const end = job.ended_at ? new Date(job.ended_at) : new Date();
  const seconds = (end - new Date(job.started_at)) / 1000;
  return seconds < 1 ? Math.round(seconds * 1000) + " ms" : seconds.toFixed(2) + " s";
}

function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

// Sign in

function loginView() {
  document.getElementById("nav").hidden = true;
  const message = el("p", { class: "error", id: "login-error" });
  const form = el("form", { class: "card login", id: "login" },
    el("h1", {}, "Sign in to gaas"),
    el("label", { for: "username" }, "User name"), el("input", { id: "username", name: "username", autocomplete: "username", required: "" }),
    el("label", { for: "password" }, "Password"), el("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: "" }),
    el("p", {}, el("button", { type: "submit" }, "Sign in")), message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new URLSearchParams(new FormData(form));
    const response = await fetch("/token", { method: "POST", body: data });
    const body = await response.json();
    if (!response.ok) { message.textContent = body.detail; return; }
    sessionStorage.setItem("gaas-token", body.access_token);
    location.hash = "#/jobs";
  });
  show(form);
}

// Jobs table, updated live

async function jobsView(params) {
  const mine = generation;
  const status = params.get("status") || "";
  const offset = Number(params.get("offset") || 0);
  const filter = el("select", { id: "status-filter", onchange: () => { location.hash = "#/jobs?status=" + filter.value; } },
    ...["", "pending", "running", "finished", "failed"].map((value) =>
      el("option", value === status ? { value, selected: "" } : { value }, value || "all statuses")));
  const body = el("tbody");
  const info = el("span", { class: "muted", id: "jobs-count" });
  const previous = el("button", { class: "secondary", onclick: () => go(offset - PAGE) }, "Newer");
  const next = el("button", { class: "secondary", onclick: () => go(offset + PAGE) }, "Older");
  function go(to) { location.hash = `#/jobs?status=${status}&offset=${Math.max(0, to)}`; }
  show(el("h1", {}, "Jobs"), el("div", { class: "row" }, el("label", {}, "Status"), filter),
    el("table", { id: "jobs" }, el("thead", {}, el("tr", {}, ...["Id", "Discipline", "Status", "Created", "Duration", "Error"].map((h) => el("th", {}, h)))), body),
    el("div", { class: "pager" }, previous, next, info));
  const rows = new Map(); // job id -> row: rows are patched, not rebuilt, so a click never hits a replaced node
  while (mine === generation) {
    try {
      const query = `limit=${PAGE}&offset=${offset}` + (status ? `&status=${status}` : "");
      const { body: jobs, response } = await apiJson("/v1/job?" + query);
      const total = Number(response.headers.get("X-Total-Count"));
      if (mine !== generation) return;
      const fresh = jobs.map((job) => jobRow(rows, job));
      if (fresh.length !== body.children.length || fresh.some((row, i) => body.children[i] !== row)) body.replaceChildren(...fresh);
      info.textContent = total ? `${offset + 1}–${offset + jobs.length} of ${total}` : "No jobs yet: run one from Disciplines.";
      previous.disabled = offset === 0;
      next.disabled = offset + jobs.length >= total;
    } catch (error) { info.textContent = error.message; }
    await sleep(1000);
  }
}

function jobRow(rows, job) {
  let row = rows.get(job.id);
  if (!row) {
    row = el("tr", { class: "clickable", "data-job": job.id, onclick: () => { location.hash = "#/job/" + job.id; } },
      el("td", {}, el("a", { href: "#/job/" + job.id }, "#" + job.id)), el("td"), el("td"), el("td"), el("td"), el("td", { class: "error" }));
    rows.set(job.id, row);
  }
  const [, discipline, status, created, took, error] = row.children;
  setText(discipline, job.discipline_class_name + (job.name ? ` (${job.name})` : ""));
  if (status.dataset.status !== job.job_status) { status.dataset.status = job.job_status; status.replaceChildren(badge(job.job_status)); }
  setText(created, when(job.created_at));
  setText(took, duration(job));
  setText(error, job.error || "");
  return row;
}

function setText(node, text) { if (node.textContent !== text) node.textContent = text; }

// One job

// Lowest and highest finite values, in one pass: Math.min(...values) overflows the call stack
// past about 10^5 elements.
function range(values) {
  let low = Infinity, high = -Infinity;
  for (const v of values) if (typeof v === "number" && isFinite(v)) { if (v < low) low = v; if (v > high) high = v; }
  return [low, high];
}

// At most two points (the lowest and highest) per pixel column: the line looks the same as with
// every value, and a million values draw as 320 points.
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

function plot(values) {
  const width = 160, height = 40;
  const [low, high] = range(values), span = high - low || 1;
  const points = decimate(values, width).filter(([, v]) => isFinite(v))
    .map(([i, v]) => `${(i / (values.length - 1)) * width},${height - 2 - ((v - low) / span) * (height - 4)}`).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "plot"); svg.setAttribute("width", width); svg.setAttribute("height", height);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points); line.setAttribute("fill", "none"); line.setAttribute("stroke", "#2563eb"); line.setAttribute("stroke-width", "1.5");
  svg.append(line);
  return svg;
}

function valueCell(value) {
  if (Array.isArray(value) && value.length > 10 && value.every((v) => typeof v === "number")) {
    const [low, high] = range(value);
    return el("td", { class: "value" }, plot(value), `${value.length} values, from ${low.toPrecision(4)} to ${high.toPrecision(4)}`);
  }
  return el("td", { class: "value" }, JSON.stringify(value));
}

function dataTable(data, id) {
  const names = Object.keys(data || {});
  if (!names.length) return el("p", { class: "muted" }, "None.");
  return el("table", { id }, el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", {}, "Value"))),
    el("tbody", {}, ...names.map((name) => el("tr", {}, el("td", {}, name), valueCell(data[name])))));
}

function jacobianTable(jacobian) {
  const rows = [];
  for (const [output, block] of Object.entries(jacobian || {})) {
    for (const [input, matrix] of Object.entries(block)) {
      const flat = [].concat(...matrix);
      rows.push(el("tr", {}, el("td", {}, `d ${output} / d ${input}`), valueCell(flat.length === 1 ? flat[0] : flat)));
    }
  }
  if (!rows.length) return el("p", { class: "muted" }, "None.");
  return el("table", { id: "jacobian" }, el("tbody", {}, ...rows));
}

async function download(jobId, path) {
  const response = await api(`/v1/job/${jobId}/files/download?filename=${encodeURIComponent(path)}`);
  if (!response.ok) { alert((await response.json()).detail); return; }
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: path.split("/").pop() });
  document.body.append(link); link.click(); link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function tree(jobId, node, prefix = "") {
  return el("ul", { class: "tree" }, ...Object.entries(node).map(([name, child]) => child === null
    ? el("li", {}, el("a", { href: "#", "data-file": prefix + name, onclick: (event) => { event.preventDefault(); download(jobId, prefix + name); } }, name))
    : el("li", {}, name + "/", tree(jobId, child, prefix + name + "/"))));
}

async function jobView(id) {
  const mine = generation;
  let job;
  try { job = (await apiJson("/v1/job/" + id)).body; } catch (error) { show(el("p", { class: "error" }, error.message)); return; }
  // Built once: a re-render after a long poll must not replace the buttons under the user's pointer.
  const cancel = el("button", { class: "secondary", id: "cancel", onclick: async () => {
    try { await apiJson(`/v1/job/${id}/cancel`, { method: "POST" }); } catch (error) { alert(error.message); }
  } }, "Cancel");
  const actions = el("div", { class: "row" }, cancel,
    el("button", { class: "danger", id: "delete", onclick: async () => {
      if (!confirm(`Delete job #${id} and its files?`)) return;
      await apiJson("/v1/job/" + id, { method: "DELETE" }); location.hash = "#/jobs";
    } }, "Delete"));
  for (;;) {
    const ended = job.job_status === "finished" || job.job_status === "failed";
    cancel.disabled = ended;
    const summary = el("table", { id: "summary" }, el("tbody", {},
      ...[["Status", badge(job.job_status)], ["Discipline", job.discipline_class_name], ["Mode", job.execution_mode + ", " + job.job_type],
        ["Created", when(job.created_at)], ["Started", when(job.started_at)], ["Ended", when(job.ended_at)], ["Duration", duration(job)],
        ["Error", job.error || ""], ["Options", JSON.stringify(job.discipline_options)]].map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v)))));
    const files = ended ? await apiJson(`/v1/job/${id}/files`).then((r) => r.body).catch(() => ({})) : {};
    // The end of a log is what matters, and a solver's log can be gigabytes: ask for the tail.
    const log = await api(`/v1/job/${id}/log?tail=${LOG_TAIL}`).then((r) => r.text()).catch(() => "");
    if (mine !== generation) return;
    show(el("h1", {}, `Job #${job.id}` + (job.name ? ` — ${job.name}` : "")), actions, el("div", { class: "card" }, summary),
      job.traceback ? el("div", {}, el("h2", {}, "Traceback"), el("pre", { id: "traceback" }, job.traceback)) : null,
      el("h2", {}, "Inputs"), dataTable(job.input_data, "inputs"),
      el("h2", {}, "Outputs"), dataTable(job.output_data, "outputs"),
      job.job_type === "execute_and_linearize" ? [el("h2", {}, "Jacobian"), jacobianTable(job.jacobian_data)] : null,
      el("h2", {}, "Log"), log.length >= LOG_TAIL - 4096 ? el("p", { class: "muted" }, `The last ${LOG_TAIL / 1024} KiB of the log:`) : null,
      el("pre", { id: "log" }, log || "(empty)"),
      el("h2", {}, "Files"), el("div", { class: "card", id: "files" }, ended ? tree(id, files) : el("span", { class: "muted" }, "When the job ends.")));
    if (ended) return;
    try {
      job = (await apiJson(`/v1/job/${id}?long_polling=true&long_polling_timeout=10`)).body;
    } catch (error) { await sleep(1000); }
    if (mine !== generation) return;
  }
}

// Disciplines and the generated form

async function disciplinesView() {
  const names = (await apiJson("/v1/discipline")).body;
  const grid = el("div", { class: "grid", id: "disciplines" });
  const search = el("input", { placeholder: "Filter", oninput: () => fill(search.value.toLowerCase()) });
  function fill(text) {
    grid.replaceChildren(...names.filter((n) => n.toLowerCase().includes(text)).map((n) => el("a", { href: "#/discipline/" + n }, n)));
  }
  fill("");
  show(el("h1", {}, "Disciplines"), el("div", { class: "row" }, search), grid);
}

async function disciplineView(name, params) {
  const optionsText = params.get("options") || "{}";
  const message = el("p", { class: "error", id: "form-error" });
  let schema, defaults;
  try {
    const options = JSON.parse(optionsText);
    schema = (await postJson(`/v1/discipline/${name}/inputs_schema`, { discipline_options: options })).body;
    defaults = (await postJson(`/v1/discipline/${name}/default_input_data`, { discipline_options: options })).body;
  } catch (error) {
    show(el("h1", {}, name), el("p", { class: "error" }, error.message), el("a", { href: "#/discipline/" + name }, "Back to the default options"));
    return;
  }
  const options = el("textarea", { id: "options", rows: 2 }, optionsText);
  const fields = Object.entries(schema.properties || {}).map(([input, property]) => {
    const type = property.type === "array" ? `array of ${(property.items || {}).type || "values"}` : property.type || "value";
    return { input, box: el("input", { name: input, "data-input": input, size: 50, value: JSON.stringify(defaults[input] ?? null) }), type };
  });
  async function submit(mode) {
    message.textContent = "";
    const input_data = {};
    try {
      for (const { input, box } of fields) if (box.value.trim()) input_data[input] = JSON.parse(box.value);
    } catch (error) { message.textContent = "Each value must be JSON, for example [1.0, 2.0]."; return; }
    const body = { discipline_options: JSON.parse(options.value || "{}"), input_data, linearize: linearize.checked };
    try {
      const { body: job } = await postJson(`/v1/discipline/${name}/execute?execution_mode=${mode}`, body);
      location.hash = "#/job/" + job.id;
    } catch (error) { message.textContent = error.message; }
  }
  const linearize = el("input", { type: "checkbox", id: "linearize" });
  show(el("h1", {}, name),
    el("div", { class: "card" }, el("label", { for: "options" }, "Discipline options (JSON)"), options,
      el("p", {}, el("button", { class: "secondary", onclick: () => { location.hash = `#/discipline/${name}?options=${encodeURIComponent(options.value)}`; } }, "Apply options"))),
    el("form", { class: "card", id: "inputs", onsubmit: (event) => event.preventDefault() },
      ...fields.map(({ input, box, type }) => el("div", {}, el("label", {}, `${input} `, el("span", { class: "muted" }, type)), box)),
      el("p", {}, el("label", {}, linearize, " also compute the Jacobian")),
      el("div", { class: "row" }, el("button", { type: "button", id: "run-sync", onclick: () => submit("synchronous") }, "Run now"),
        el("button", { type: "button", id: "run-async", class: "secondary", onclick: () => submit("asynchronous") }, "Submit as a job")),
      message));
}

// Routing

async function route() {
  generation += 1;
  const [path, query] = (location.hash.slice(1) || "/jobs").split("?");
  const params = new URLSearchParams(query || "");
  if (!token() && path !== "/login") { location.hash = "#/login"; return; }
  if (path === "/login") { loginView(); return; }
  document.getElementById("nav").hidden = false;
  try {
    const me = (await apiJson("/v1/user/me/")).body;
    document.getElementById("who").textContent = me.username;
    const parts = path.split("/").filter(Boolean);
    if (parts[0] === "job" && parts[1]) await jobView(parts[1]);
    else if (parts[0] === "disciplines") await disciplinesView();
    else if (parts[0] === "discipline" && parts[1]) await disciplineView(decodeURIComponent(parts[1]), params);
    else await jobsView(params);
  } catch (error) { if (token()) show(el("p", { class: "error" }, error.message)); }
}

document.getElementById("logout").addEventListener("click", () => { sessionStorage.removeItem("gaas-token"); location.hash = "#/login"; });
window.addEventListener("hashchange", route);
route();
