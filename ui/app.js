// The gaas dashboard: plain JavaScript modules on the JSON API, no build step. This one routes
// the address (#/jobs, #/job/ID, ...) to the view of that page, one module each.
import { api, apiJson, session, signIn, signOut, token } from "./api.js";
import { copyFullValues, el, navigated, show } from "./dom.js";
import { batchView } from "./batch.js";
import { batchesView } from "./batches.js";
import { studiesView } from "./studies.js";
import { studyView } from "./study.js";
import { disciplineView } from "./discipline.js";
import { disciplinesView } from "./disciplines.js";
import { jobView } from "./job.js";
import { jobsView } from "./jobs.js";
import { loginView } from "./login.js";
import { adminView } from "./admin.js";
import { tokensView } from "./tokens.js";

function showNav(path) {
  const nav = document.getElementById("nav");
  nav.hidden = false;
  const section = path.startsWith("/discipline") ? "#/disciplines" : path.startsWith("/batch") ? "#/batches"
    : path.startsWith("/stud") ? "#/studies" : ["/tokens", "/admin"].includes(path) ? "#" + path : "#/jobs";
  for (const link of nav.querySelectorAll("a[href^='#']")) {
    if (link.getAttribute("href") === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function route() {
  navigated();
  const [path, query] = (location.hash.slice(1) || "/jobs").split("?");
  const params = new URLSearchParams(query || "");
  if (path === "/login") { loginView(); return; }
  if (!token() && !session.me) {
    // Behind a single sign-on proxy the request itself says who this is: no token needed.
    const response = await fetch("/v1/user/me/");
    if (!response.ok) { signIn(); return; }
    session.me = await response.json();
  }
  showNav(path);
  show(el("p", { class: "muted" }, "Loading…"));
  try {
    if (!session.me) session.me = (await apiJson("/v1/user/me/")).body;
    // The user carries no role (API.md: id and username): the admin routes tell, once a session.
    if (session.me.is_admin === undefined) session.me.is_admin = (await api("/v1/admin/audit?limit=1")).ok;
    document.getElementById("who").textContent = session.me.username;
    document.getElementById("admin-link").hidden = !session.me.is_admin;
    const parts = path.split("/").filter(Boolean);
    if (parts[0] === "job" && parts[1]) await jobView(parts[1]);
    else if (parts[0] === "batch" && parts[1]) await batchView(parts[1]);
    else if (parts[0] === "batches") await batchesView(params);
    else if (parts[0] === "study" && parts[1]) await studyView(parts[1]);
    else if (parts[0] === "studies") await studiesView(params);
    else if (parts[0] === "disciplines") await disciplinesView();
    else if (parts[0] === "tokens") await tokensView();
    else if (parts[0] === "admin") await adminView(params);
    else if (parts[0] === "discipline" && parts[1]) await disciplineView(decodeURIComponent(parts[1]), params);
    else await jobsView(params);
  } catch (error) { if (token() || session.me) show(el("p", { class: "error" }, error.message)); }
}

document.addEventListener("copy", copyFullValues);
document.getElementById("logout").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
route();
