// Talking to the API. The token lives in sessionStorage and is sent as a bearer header, never as
// a cookie, so there is no CSRF surface.
import { PAGE, el, pager, replaceRows, saveBlob, scroller, setText, show, sleep, stillHere } from "./dom.js";

export const session = { me: null }; // the signed-in user, asked once per token

export function token() { return sessionStorage.getItem("gaas-token"); }

// Remember where the user wanted to go (a deep link, or the page whose token expired), so that
// signing in leads there rather than to the jobs table.
export function signIn() {
  if (!location.hash.startsWith("#/login")) sessionStorage.setItem("gaas-wanted", location.hash);
  sessionStorage.removeItem("gaas-token");
  session.me = null;
  location.hash = "#/login";
}

export function signOut() {
  sessionStorage.removeItem("gaas-token");
  sessionStorage.removeItem("gaas-wanted");
  session.me = null;
  location.hash = "#/login";
}

export async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token()) headers.Authorization = "Bearer " + token();
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    signIn();
    throw new Error("Please sign in.");
  }
  return response;
}

export async function apiJson(path, options) {
  const response = await api(path, options);
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error((body && body.detail) || response.statusText);
  return { body, response };
}

export function postJson(path, body) {
  const headers = { "Content-Type": "application/json" };
  return apiJson(path, { method: "POST", headers, body: JSON.stringify(body) });
}

// A file of the API, fetched with the bearer token (a plain link would need a cookie).
export async function downloadFrom(path, filename) {
  const response = await api(path);
  if (!response.ok) { alert((await response.json()).detail); return; }
  saveBlob(filename, await response.blob());
}

// The page of a list the server pages (batches, studies): a title, a table of those headers and a
// pager; the list is asked again every second while the user stays, and rowOf(item, rows) gives
// each row (kept in rows by id and patched in place, so that a click never hits a replaced node).
export async function listView({ title, id, headers, path, empty }, params, rowOf) {
  const current = stillHere();
  const offset = Number(params.get("offset") || 0);
  const scope = params.get("scope") === "group" ? "group" : "";
  const hashOf = (at, chosen = scope) => {
    const query = new URLSearchParams({ ...(at ? { offset: at } : {}), ...(chosen ? { scope: chosen } : {}) });
    return `#/${id}` + (query.toString() ? "?" + query : "");
  };
  const body = el("tbody");
  const pages = pager((at) => hashOf(at), offset, `${id}-count`);
  show(el("h1", {}, title), el("div", { class: "row filters" }, scopeSwitch(scope, (chosen) => hashOf(0, chosen))),
    scroller(el("table", { id }, el("thead", {}, el("tr", {},
      [...headers, "Owner", "Group"].map((h) => el("th", {}, h)))), body)),
    pages.node);
  const rows = new Map();
  while (current()) {
    try {
      const { body: items, response } = await apiJson(`${path}?limit=${PAGE}&offset=${offset}` + (scope ? "&scope=group" : ""));
      if (!current()) return;
      const total = Number(response.headers.get("X-Total-Count"));
      replaceRows(body, items.map((item) => ownerCells(rowOf(item, rows), item)));
      pages.info.textContent = total ? `${offset + 1}–${offset + items.length} of ${total}` : empty;
      pages.update(items.length, total);
    } catch (error) { pages.info.textContent = error.message; }
    await sleep(1000);
  }
}

// "mine / my groups": whose entries a list shows (scope=group: also those shared with the user's
// groups); hashOf(scope) is the address of the list with that scope.
export function scopeSwitch(scope, hashOf) {
  const select = el("select", { id: "scope", onchange: () => { location.hash = hashOf(select.value); } },
    [["", "mine"], ["group", "mine and my groups'"]].map(([value, text]) =>
      el("option", { value, selected: value === scope ? "" : null }, text)));
  return el("label", { class: "inline" }, "Show ", select);
}

// The Owner and Group cells that end a row of a list, added at its first drawing.
export function ownerCells(row, item) {
  if (!row.owned) {
    row.owned = [el("td", { class: "owner" }), el("td", { class: "group" })];
    row.append(...row.owned);
  }
  setText(row.owned[0], item.owner || "");
  setText(row.owned[1], item.group || "—");
  return row;
}

// The groups the user may submit into (GET /v1/group, viewers left out) as a picker, shown
// only when there is one; select.value is "" for private work.
export function groupPicker() {
  const select = el("select", { id: "group-picker" }, el("option", { value: "" }, "nobody (private)"));
  const node = el("label", { class: "inline", hidden: "" }, "Share with ", select);
  apiJson("/v1/group").then(({ body }) => {
    const usable = body.filter((group) => group.role !== "viewer");
    select.append(...usable.map((group) => el("option", { value: group.name }, group.name)));
    node.hidden = !usable.length;
  }).catch(() => {});
  return { node, select };
}

// The object of a page (a batch, a study), then its page built and shown, with the test of the
// view's loops; null when the user went elsewhere meanwhile.
export async function openPage(path, build) {
  const current = stillHere();
  const page = build((await apiJson(path)).body);
  if (!current()) return null;
  show(page.root);
  return { page, current };
}

// The Cancel and Delete buttons of a batch's or a study's page (path: its URL in the API): the
// answer to cancel goes to update; delete asks first, then leads to the list.
export function cancelAndDelete(path, update, question, listHash) {
  const cancel = el("button", { class: "secondary", id: "cancel", onclick: async () => {
    cancel.disabled = true;
    try {
      update((await apiJson(`${path}/cancel`, { method: "POST" })).body);
    } catch (error) { alert(error.message); cancel.disabled = false; }
  } }, "Cancel");
  const remove = el("button", { class: "danger", id: "delete", onclick: async () => {
    if (!confirm(question)) return;
    try {
      await apiJson(path, { method: "DELETE" });
      location.hash = listHash;
    } catch (error) { alert(error.message); }
  } }, "Delete");
  return { cancel, remove };
}
