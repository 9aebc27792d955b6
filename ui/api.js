// Talking to the API. The token lives in sessionStorage and is sent as a bearer header, never as
// a cookie, so there is no CSRF surface.
import { saveBlob } from "./dom.js";

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
