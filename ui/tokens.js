// Personal access tokens: create one (its secret shown once), list them, revoke one.
import { apiJson, postJson } from "./api.js";
import { el, show } from "./dom.js";
import { timeCell } from "./format.js";

export async function tokensView() {
  const body = el("tbody");
  const shown = el("div", { id: "new-token-card", hidden: "" });
  const message = el("p", { class: "error", role: "alert" });
  const form = el("form", { class: "card", id: "token-form" },
    el("label", { for: "token-name" }, "Name"),
    el("input", { id: "token-name", name: "name", required: "", maxlength: "100", placeholder: "e.g. laptop scripts" }),
    el("label", { for: "token-days" }, "Expires in (days)"),
    el("input", { id: "token-days", name: "days", type: "number", min: "1", max: "3650", value: "90", required: "" }),
    el("p", {}, el("button", { type: "submit" }, "Create token")), message);

  async function refresh() {
    const { body: tokens } = await apiJson("/v1/user/me/tokens");
    body.replaceChildren(...tokens.map((token) => el("tr", { "data-token": token.id },
      el("td", {}, token.name), el("td", {}, timeCell(token.created_at)), el("td", {}, timeCell(token.expires_at)),
      el("td", {}, token.last_used_at ? timeCell(token.last_used_at) : el("span", { class: "muted" }, "never")),
      el("td", {}, el("button", { type: "button", class: "secondary revoke", onclick: () => revoke(token) }, "Revoke")))));
    if (!tokens.length) body.append(el("tr", {}, el("td", { colspan: "5", class: "muted" }, "No tokens yet.")));
  }

  async function revoke(token) {
    if (!confirm(`Revoke the token "${token.name}"? Scripts that use it stop working.`)) return;
    await apiJson(`/v1/user/me/tokens/${token.id}`, { method: "DELETE" });
    await refresh();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "";
    try {
      const { body: made } = await postJson("/v1/user/me/tokens",
        { name: form.elements.name.value, expires_in_days: Number(form.elements.days.value) });
      shown.replaceChildren(el("div", { class: "card" },
        el("p", {}, "Your new token. Copy it now: it is shown once, and never again."),
        el("p", {}, el("code", { id: "new-token" }, made.token)),
        el("p", { class: "muted" }, "Send it as Authorization: Bearer …, or give it as the password with your user name.")));
      shown.hidden = false;
      form.reset();
      await refresh();
    } catch (error) { message.textContent = error.message; }
  });
  show(el("h1", {}, "Access tokens"),
    el("p", { class: "muted" }, "Tokens let scripts and the HTTPDiscipline client sign in without your password."),
    form, shown,
    el("table", { id: "tokens" }, el("thead", {}, el("tr", {},
      ["Name", "Created", "Expires", "Last used", ""].map((h) => el("th", {}, h)))), body));
  await refresh();
}
