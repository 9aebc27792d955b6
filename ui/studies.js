// The list of studies, newest first, with their evaluations and best objective, updated live.
import { apiJson } from "./api.js";
import { PAGE, el, pager, replaceRows, scroller, setText, show, showBadge, sleep, stillHere } from "./dom.js";
import { duration, pointStatus, round, timeCell } from "./format.js";

export function studyStatus(study) { return pointStatus(study.study_status, study.error); }
export function studyEnded(study) { return study.study_status === "finished" || study.study_status === "failed"; }

// A value of the wire (a number, or a list of one number) as one number.
export function scalar(value) { return Array.isArray(value) && value.length === 1 ? value[0] : value; }

// "3.18339 (feasible)": the best point's objective, or a dash before any evaluation.
export function bestText(study) {
  const best = study.best;
  if (!best) return "—";
  return `${round(scalar(best.objective))} (${best.feasible ? "feasible" : "infeasible"})`;
}

// What the job's duration shows, for a study.
export function studyTimes(study) {
  return { job_status: study.study_status, created_at: study.created_at, started_at: study.started_at,
    ended_at: study.ended_at };
}

function studiesHash(offset) { return "#/studies" + (offset ? "?offset=" + offset : ""); }

export async function studiesView(params) {
  const current = stillHere();
  const offset = Number(params.get("offset") || 0);
  const body = el("tbody");
  const pages = pager(studiesHash, offset, "studies-count");
  show(el("h1", {}, "Studies"),
    scroller(el("table", { id: "studies" }, el("thead", {}, el("tr", {},
      ["Id", "Name", "Status", "Evaluations", "Best objective", "Formulation", "Algorithm", "Created", "Duration"]
        .map((h) => el("th", {}, h)))), body)),
    pages.node);
  const rows = new Map(); // study id -> row, patched in place as in the jobs table
  while (current()) {
    try {
      const { body: studies, response } = await apiJson(`/v1/study?limit=${PAGE}&offset=${offset}`);
      if (!current()) return;
      const total = Number(response.headers.get("X-Total-Count"));
      replaceRows(body, studies.map((study) => studyRow(rows, study)));
      pages.info.textContent = total ? `${offset + 1}–${offset + studies.length} of ${total}`
        : "No studies yet: submit one with POST /v1/study, or with gaas_client.run_study.";
      pages.update(studies.length, total);
    } catch (error) { pages.info.textContent = error.message; }
    await sleep(1000);
  }
}

function studyRow(rows, study) {
  let row = rows.get(study.id);
  if (!row) {
    const open = () => { location.hash = "#/study/" + study.id; };
    row = el("tr", { class: "clickable", "data-study": study.id, onclick: open },
      el("td", {}, el("a", { href: "#/study/" + study.id }, "#" + study.id)), el("td"), el("td"),
      el("td", { class: "num evaluations" }), el("td", { class: "best" }), el("td"), el("td"),
      el("td", { class: "date" }), el("td", { class: "duration" }));
    rows.set(study.id, row);
  }
  const [, name, status, evaluations, best, formulation, algorithm, created, took] = row.children;
  setText(name, study.name || "");
  showBadge(status, studyStatus(study));
  setText(evaluations, String(study.n_evaluations || 0));
  setText(best, bestText(study));
  setText(formulation, study.formulation || "");
  setText(algorithm, (study.algorithm || {}).name || "");
  if (!created.firstChild && study.created_at) created.append(timeCell(study.created_at));
  setText(took, duration(studyTimes(study)));
  return row;
}
