// The sign-in form: a token from POST /token, kept in sessionStorage.
import { el, show } from "./dom.js";

export function loginView() {
  document.getElementById("nav").hidden = true;
  const message = el("p", { class: "error", id: "login-error", role: "alert" });
  const form = el("form", { class: "card login", id: "login" },
    el("h1", {}, "Sign in to gaas"),
    el("label", { for: "username" }, "User name"),
    el("input", { id: "username", name: "username", autocomplete: "username", required: "" }),
    el("label", { for: "password" }, "Password"),
    el("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: "" }),
    el("p", {}, el("button", { type: "submit" }, "Sign in")), message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const response = await fetch("/token", { method: "POST", body: new URLSearchParams(new FormData(form)) });
    const body = await response.json();
    if (!response.ok) { message.textContent = body.detail; return; }
    sessionStorage.setItem("gaas-token", body.access_token);
    const wanted = sessionStorage.getItem("gaas-wanted");
    sessionStorage.removeItem("gaas-wanted");
    location.hash = wanted && wanted !== "#/login" ? wanted : "#/jobs";
  });
  show(form);
  document.getElementById("username").focus();
}
