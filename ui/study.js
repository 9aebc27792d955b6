// The page of one study: its convergence drawn as the history arrives (long polls with since=K,
// never the whole table again), the best point, the settings it ran with, cancel, delete, the
// downloads, and the post-processing images of its job once they exist.
import { api, apiJson, cancelAndDelete, downloadFrom, openPage } from "./api.js";
import { el, scroller, setText, sleep } from "./dom.js";
import { duration, number, showTime } from "./format.js";
import { jobFiles, showStatus } from "./job.js";
import { plot } from "./plot.js";
import { bestText, scalar, studyEnded, studyTimes } from "./studies.js";

const IMAGE = /\.(png|svg|jpe?g|gif)$/i;
const H5_NAME = "problem.h5";

export async function studyView(id) {
  const opened = await openPage("/v1/study/" + id, studyPage);
  if (!opened) return;
  const { page, current } = opened;
  let study = page.study;
  (async () => { // the elapsed time, every second while it runs
    while (current() && !studyEnded(study)) { page.tick(); await sleep(1000); }
  })();
  // A long poll answers as soon as there is a new evaluation, or when the study ends; after each
  // answer the Study (count, best, status). Once it has ended, one plain read takes the rest.
  while (current()) {
    const ended = studyEnded(study);
    const wait = ended ? "" : `&long_polling=true&long_polling_timeout=${study.study_status === "running" ? 10 : 1}`;
    let answer;
    try {
      answer = (await apiJson(`/v1/study/${id}/history?since=${page.last()}${wait}`)).body;
      if (!current()) return;
      page.addHistory(answer);
      if (ended && !answer.evaluation.length) break;
      study = (await apiJson("/v1/study/" + id)).body;
    } catch (error) { await sleep(1000); continue; }
    if (current()) page.update(study);
  }
  const tree = await apiJson(`/v1/job/${study.job_id}/files`).then((r) => r.body).catch(() => ({}));
  if (current()) page.finish(tree);
}

// The history so far, column by column; each answer of the long poll is appended.
function historyTable() {
  let table = { evaluation: [], x: {}, functions: {}, feasible: [] };
  const append = (column, values) => { for (const value of values) column.push(value); };
  return {
    get table() { return table; },
    // A study run again from its start (its worker was lost, requeue on) numbers from 1 again.
    reset() { table = { evaluation: [], x: {}, functions: {}, feasible: [] }; },
    last() { return table.evaluation.length ? table.evaluation[table.evaluation.length - 1] : 0; },
    extend(page) {
      const before = table.evaluation.length;
      append(table.evaluation, page.evaluation);
      append(table.feasible, page.feasible);
      for (const key of ["x", "functions"]) {
        for (const [name, values] of Object.entries(page[key] || {})) {
          if (!table[key][name]) table[key][name] = new Array(before).fill(null);
          append(table[key][name], values);
        }
        // A column that this answer lacks gets nulls: every column keeps one value per evaluation.
        for (const values of Object.values(table[key])) while (values.length < table.evaluation.length) values.push(null);
      }
    },
  };
}

// The constraints and their kind: those of the request, and the formulation's own (IDF's
// consistency constraints), equalities named only in the best point. A Study that does not
// carry the request's constraints: every constraint taken as an inequality, the usual kind.
function constraintKinds(study) {
  const kinds = new Map((study.constraints || []).map((c) => [c.name, c.type || "ineq"]));
  const others = study.constraints ? "eq" : "ineq";
  for (const name of Object.keys((study.best || {}).constraints || {})) if (!kinds.has(name)) kinds.set(name, others);
  return kinds;
}

// The largest violation at evaluation i: c where c > 0 for an inequality (c <= 0 holds), |c| for
// an equality; 0 when every constraint holds, NaN when one was not computed.
function violationAt(functions, kinds, i) {
  let worst = 0;
  for (const [name, kind] of kinds) {
    const value = (functions[name] || [])[i];
    if (value === null || value === undefined) return NaN;
    for (const v of Array.isArray(value) ? value : [value]) worst = Math.max(worst, kind === "eq" ? Math.abs(v) : v);
  }
  return worst;
}

// The plot helpers take numbers: a value not computed (null) is NaN, so that it is left out.
function numbers(values) { return values.map((v) => (typeof scalar(v) === "number" ? scalar(v) : NaN)); }

// The objective and the largest constraint violation against the evaluation number.
function convergence() {
  const objective = el("div", { class: "plot-holder", id: "objective-plot" });
  const violation = el("div", { class: "plot-holder", id: "violation-plot" });
  const objectiveTitle = el("h3", {}, "Objective");
  const satisfied = el("p", { class: "muted", id: "violation-note", hidden: "" }, "Every evaluation so far satisfies the constraints.");
  const violationBox = el("div", {}, el("h3", {}, "Largest constraint violation"), violation, satisfied);
  const note = el("p", { class: "muted", id: "convergence-note" }, "Waiting for the first evaluation…");
  return {
    node: el("div", { class: "card", id: "convergence" },
      el("div", { class: "plots" }, el("div", {}, objectiveTitle, objective), violationBox), note),
    draw(study, table) {
      const n = table.evaluation.length;
      const name = (study.objective || {}).name || Object.keys(table.functions)[0];
      setText(objectiveTitle, `Objective ${name}` + ((study.objective || {}).maximize ? " (maximised)" : ""));
      if (!n) return;
      objective.replaceChildren(plot(numbers(table.functions[name] || []), table.evaluation, "evaluation"));
      const kinds = constraintKinds(study);
      violationBox.hidden = !kinds.size;
      if (kinds.size) {
        const values = table.evaluation.map((_, i) => violationAt(table.functions, kinds, i));
        violation.replaceChildren(plot(values, table.evaluation, "evaluation"));
        satisfied.hidden = values.some((v) => v !== 0);
      }
      const feasible = table.feasible.filter(Boolean).length;
      setText(note, `${n} evaluation${n === 1 ? "" : "s"} drawn, ${feasible} feasible.`);
      note.dataset.evaluations = n;
    },
  };
}

// Name and value rows, the numbers rounded (full values in their titles).
function valuesTable(id, entries) {
  return scroller(el("table", { id, class: "pairs" },
    el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", {}, "Value"))),
    el("tbody", {}, entries.map(([name, value]) => el("tr", { "data-name": name },
      el("td", { class: "name" }, el("code", {}, name)),
      el("td", { class: "value" }, el("table", { class: "vector" }, el("tbody", {}, el("tr", {},
        (Array.isArray(value) ? value : [value]).map((v) => number(v, "td")))))))))));
}

function bestPoint(holder, study) {
  const best = study.best;
  if (!best) { holder.replaceChildren(el("p", { class: "muted" }, "After the first evaluation.")); return; }
  const key = JSON.stringify(best);
  if (holder.dataset.shown === key) return;
  holder.dataset.shown = key;
  const objective = (study.objective || {}).name || "objective";
  const constraints = Object.entries(best.constraints || {});
  holder.replaceChildren(
    el("p", { class: "row tight" }, `Evaluation ${best.evaluation}: ${objective} =`, number(scalar(best.objective)),
      best.feasible ? "(feasible)" : "(infeasible: the least violation so far)"),
    el("h3", {}, "Design variables"), valuesTable("best-x", Object.entries(best.x || {})),
    ...(constraints.length ? [el("h3", {}, "Constraints"), valuesTable("best-constraints", constraints)] : []));
}

// The settings it ran with, as the Study gives them (the fields it lacks are left out).
function settingsList(study) {
  const json = (value) => el("code", {}, JSON.stringify(value));
  const algorithm = study.algorithm || {};
  const items = [
    ["Formulation", [study.formulation, " ", json(study.formulation_settings || {})]],
    ["Algorithm", [algorithm.name, " ", json(algorithm.settings || {})]],
    ["Objective", study.objective ? `${study.objective.name}, ${study.objective.maximize ? "maximised" : "minimised"}` : null],
    ["Constraints", study.constraints ? study.constraints.map((c) => `${c.name} (${c.type || "ineq"})`).join(", ") || "none" : null],
    ["Observables", study.observables ? study.observables.join(", ") || "none" : null],
    ["Disciplines", study.disciplines ? json(study.disciplines) : null],
    ["Design space", study.design_space ? json(study.design_space) : null],
    ["Input data", study.input_data && Object.keys(study.input_data).length ? json(study.input_data) : null],
    ["Post-processing", study.post_processing && study.post_processing.length ? json(study.post_processing) : null],
    ["Time limit", study.timeout ? `${study.timeout} s` : null],
  ].filter(([, value]) => value !== null && value !== undefined);
  return el("dl", { id: "settings", class: "summary" },
    items.map(([key, value]) => el("div", { class: "wide" }, el("dt", {}, key), el("dd", {}, value))));
}

// The paths of the images in a job's file tree.
function imagesIn(tree, prefix = "") {
  return Object.entries(tree || {}).flatMap(([name, child]) => (child === null
    ? (IMAGE.test(name) ? [prefix + name] : []) : imagesIn(child, prefix + name + "/")));
}

// Each image fetched with the token (an <img src> would send none) and shown from a blob.
function showImages(holder, jobId, tree) {
  const paths = imagesIn(tree);
  if (!paths.length) { holder.replaceChildren(el("p", { class: "muted" }, "No images.")); return; }
  holder.replaceChildren(...paths.map((path) => {
    const image = el("img", { alt: path, "data-image": path });
    api(`/v1/job/${jobId}/files/download?filename=${encodeURIComponent(path)}`)
      .then((r) => (r.ok ? r.blob() : null)).then((blob) => { if (blob) image.src = URL.createObjectURL(blob); })
      .catch(() => {});
    return el("figure", { class: "image" }, image, el("figcaption", { class: "muted" }, path));
  }));
}

function studySummary(study) {
  const cells = { status: el("dd"), evaluations: el("dd", { id: "evaluations" }), best: el("dd", { id: "best-objective" }),
    duration: el("dd", { id: "elapsed" }), created: el("dd"), started: el("dd"), ended: el("dd") };
  const job = el("a", { href: "#/job/" + study.job_id, id: "study-job" }, `job #${study.job_id}`);
  const items = [["Status", cells.status, "wide"], ["Evaluations", cells.evaluations], ["Best objective", cells.best],
    ["Formulation", el("dd", {}, study.formulation || "")], ["Algorithm", el("dd", {}, (study.algorithm || {}).name || "")],
    ["Job", el("dd", {}, job, el("span", { class: "muted" }, " (log, files)"))], ["Duration", cells.duration],
    ["Created", cells.created], ["Started", cells.started], ["Ended", cells.ended]];
  const node = el("dl", { id: "summary", class: "summary" },
    items.map(([key, value, wide]) => el("div", { class: wide || null }, el("dt", {}, key), value)));
  return { node, cells };
}

// The page of one study, built once and patched as the history and the Study arrive.
function studyPage(study) {
  const id = study.id;
  const { node: summary, cells } = studySummary(study);
  const history = historyTable();
  const plots = convergence();
  const best = el("div", { class: "card", id: "best" });
  const images = el("div", { class: "card", id: "images" }, el("span", { class: "muted" }, "When the study ends."));
  const files = el("div", { class: "card", id: "files" }, el("span", { class: "muted" }, "When the study ends."));
  const { cancel, remove } = cancelAndDelete("/v1/study/" + id, (fresh) => page.update(fresh),
    `Delete study #${id}, its job and files?`, "#/studies");
  const h5 = el("button", { class: "secondary", id: "download-h5", disabled: "",
    title: "GEMSEO's OptimizationProblem.from_hdf reads it; written when the study ends",
    onclick: () => downloadFrom(`/v1/job/${study.job_id}/files/download?filename=${H5_NAME}`, `study-${id}-${H5_NAME}`) },
  "Download problem.h5");
  const csv = el("button", { class: "secondary", id: "download-csv",
    onclick: () => downloadFrom(`/v1/study/${id}/history?format=csv`, `study-${id}-history.csv`) }, "Download history CSV");
  const root = el("section", { class: "study-page", "data-study-page": id },
    el("h1", {}, `Study #${id}` + (study.name ? ` — ${study.name}` : "")),
    el("div", { class: "row" }, cancel, remove, h5, csv),
    el("div", { class: "card" }, summary),
    el("h2", {}, "Convergence"), plots.node,
    el("h2", {}, "Best point"), best,
    el("h2", {}, "Settings"), el("div", { class: "card" }, settingsList(study)),
    el("h2", {}, "Images"), images, el("h2", {}, "Files"), files);
  const page = {
    root,
    study,
    last: history.last,
    update(fresh) {
      study = fresh;
      if ((study.n_evaluations || 0) < history.last()) { history.reset(); plots.draw(study, history.table); }
      showStatus(cells.status, { job_status: study.study_status, error: study.error, message: study.message });
      setText(cells.evaluations, String(study.n_evaluations || 0));
      setText(cells.best, bestText(study));
      for (const key of ["created", "started", "ended"]) showTime(cells[key], study[key + "_at"]);
      page.tick();
      cancel.disabled = studyEnded(study);
      bestPoint(best, study);
    },
    tick() { setText(cells.duration, duration(studyTimes(study))); },
    addHistory(answer) { history.extend(answer); plots.draw(study, history.table); },
    finish(tree) {
      h5.disabled = !(tree && H5_NAME in tree);
      showImages(images, study.job_id, tree);
      files.replaceChildren(jobFiles(study.job_id, tree || {}));
    },
  };
  page.update(study);
  return page;
}
