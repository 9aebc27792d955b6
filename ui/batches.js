// The list of batches, with a progress bar each, updated live.
import { listView } from "./api.js";
import { el, setText, showBadge } from "./dom.js";
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

export function batchesView(params) {
  return listView({ title: "Batches", id: "batches", path: "/v1/batch",
    headers: ["Id", "Name", "Discipline", "Status", "Progress", "Points", "Created"],
    empty: "No batches yet: submit one from a discipline's page, or with POST /v1/discipline/{name}/batch." },
  params, batchRow);
}

function batchRow(batch, rows) {
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

