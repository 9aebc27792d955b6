// The catalogue of disciplines, filtered as one types.
import { apiJson } from "./api.js";
import { el, show } from "./dom.js";

export async function disciplinesView() {
  const names = (await apiJson("/v1/discipline")).body;
  const grid = el("div", { class: "grid", id: "disciplines" });
  const search = el("input", { type: "search", placeholder: "Filter", "aria-label": "Filter disciplines",
    oninput: () => fill(search.value.toLowerCase()) });
  function fill(text) {
    const link = (n) => el("a", { href: "#/discipline/" + encodeURIComponent(n) }, n);
    grid.replaceChildren(...names.filter((n) => n.toLowerCase().includes(text)).map(link));
  }
  fill("");
  show(el("h1", {}, "Disciplines"), el("div", { class: "row" }, search), grid);
}
