// The list of batches, with a progress bar each, updated live.
import { apiJson } from "./api.js";
import { PAGE, el, pager, replaceRows, scroller, setText, show, showBadge, sleep, stillHere } from "./dom.js";
import { timeCell } from "./format.js";

export const BATCH_STATES = ["finished", "failed", "running", "pending"]; // the bar's parts, left to right

export function endedCount(batch) { return batch.counts.finished + batch.counts.failed; }
export function batchEnded(batch) { return batch.batch_status === "finished" || batch.batch_status === "failed"; }

// The points by status, in the colours of the job badges; the counts are in data-finished etc.
export function progressBar() {
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

function batchesHash(offset) { return "#/batches" + (offset ? "?offset=" + offset : ""); }

export async function batchesView(params) {
  const current = stillHere();
  const offset = Number(params.get("offset") || 0);
  const body = el("tbody");
  const pages = pager(batchesHash, offset, "batches-count");
  show(el("h1", {}, "Batches"),
    scroller(el("table", { id: "batches" }, el("thead", {}, el("tr", {},
      ["Id", "Name", "Discipline", "Status", "Progress", "Points", "Created"].map((h) => el("th", {}, h)))), body)),
    pages.node);
  const rows = new Map(); // batch id -> row, patched in place as in the jobs table
  while (current()) {
    try {
      const { body: batches, response } = await apiJson(`/v1/batch?limit=${PAGE}&offset=${offset}`);
      if (!current()) return;
      const total = Number(response.headers.get("X-Total-Count"));
      replaceRows(body, batches.map((batch) => batchRow(rows, batch)));
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
    const open = () => { location.hash = "#/batch/" + batch.id; };
    row = el("tr", { class: "clickable", "data-batch": batch.id, onclick: open },
      el("td", {}, el("a", { href: "#/batch/" + batch.id }, "#" + batch.id)), el("td"), el("td"), el("td"),
      el("td", {}, el("div", { class: "progress-cell" }, bar.node, el("span", { class: "muted done" }))),
      el("td", { class: "points" }), el("td", { class: "date" }));
    row.bar = bar;
    rows.set(batch.id, row);
  }
  const [, name, discipline, status, progress, points, created] = row.children;
  setText(name, batch.name || "");
  setText(discipline, batch.discipline_class_name);
  showBadge(status, batch.batch_status);
  row.bar.update(batch);
  setText(progress.querySelector(".done"), `${endedCount(batch)}/${batch.n_samples}`);
  setText(points, String(batch.n_samples));
  if (!created.firstChild) created.append(timeCell(batch.created_at));
  return row;
}

