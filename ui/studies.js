// The list of studies, newest first, with their evaluations and best objective, updated live.
import { listView } from "./api.js";
import { el, setText, showBadge } from "./dom.js";
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

export function studiesView(params) {
  return listView({ title: "Studies", id: "studies", path: "/v1/study",
    headers: ["Id", "Name", "Status", "Evaluations", "Best objective", "Formulation", "Algorithm", "Created", "Duration"],
    empty: "No studies yet: submit one with POST /v1/study, or with gaas_client.run_study." },
  params, studyRow);
}

function studyRow(study, rows) {
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
