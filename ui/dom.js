// Building the page: elements, the view, downloads made in the browser, pagers.

export const PAGE = 20; // rows of a list the server pages

const view = document.getElementById("view");
let generation = 0; // bumped on every navigation: loops of an old view stop

// A new page is being shown: the loops of the pages before stop. The body names the address
// being shown, so a reader (a test) can tell the old page's elements from the new one's.
export function navigated() {
  generation += 1;
  document.body.dataset.route = location.hash;
}

// A test for a view's loops: true until the user goes to another page.
export function stillHere() {
  const mine = generation;
  return () => mine === generation;
}

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

export function show(...nodes) {
  view.replaceChildren(...nodes.flat().filter((node) => node !== null && node !== undefined));
}

export function setText(node, text) { if (node.textContent !== text) node.textContent = text; }
export function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }
export function scroller(...children) { return el("div", { class: "scroll" }, ...children); }

export function badge(status) {
  return el("span", { class: "status " + status, "data-status": status }, status);
}

// Copying rounded numbers would lose digits: a selection inside a table copies the full values of
// its number cells, a tab between cells and a line per row, ready for a spreadsheet.
export function copyFullValues(event) {
  const selection = getSelection();
  if (!selection.rangeCount || selection.isCollapsed) return;
  const common = selection.getRangeAt(0).commonAncestorContainer;
  const table = (common.nodeType === Node.ELEMENT_NODE ? common : common.parentElement).closest("table");
  if (!table) return;
  const cells = [...table.querySelectorAll("[data-value]")].filter((cell) => selection.containsNode(cell, true));
  if (!cells.length) return;
  const lines = [];
  let row = null;
  for (const cell of cells) {
    if (cell.closest("tr") !== row) { lines.push([]); row = cell.closest("tr"); }
    lines[lines.length - 1].push(cell.dataset.value);
  }
  event.clipboardData.setData("text/plain", lines.map((line) => line.join("\t")).join("\n"));
  event.preventDefault();
}

// Downloads made in the browser

export function saveBlob(filename, blob) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: filename });
  document.body.append(link); link.click(); link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function saveFile(filename, text, type) { saveBlob(filename, new Blob([text], { type })); }

// One value per line, or one matrix row per line: what numpy.loadtxt(path, delimiter=",") reads.
function toCsv(value) {
  const rows = Array.isArray(value) ? value : [value];
  return rows.map((row) => (Array.isArray(row) ? row.map(String).join(",") : String(row))).join("\n") + "\n";
}

export function downloads(basename, value) {
  const file = basename.replace(/[^\w.-]+/g, "_");
  return el("span", { class: "downloads" },
    el("button", { type: "button", class: "link", "data-download": "csv", title: `Download ${file}.csv`,
      onclick: () => saveFile(file + ".csv", toCsv(value), "text/csv") }, "CSV"),
    el("button", { type: "button", class: "link", "data-download": "json", title: `Download ${file}.json`,
      onclick: () => saveFile(file + ".json", JSON.stringify(value), "application/json") }, "JSON"));
}

// Newer and Older buttons and a count, for a list the server pages.
export function pager(hashAt, offset, infoId) {
  const info = el("span", { class: "muted", id: infoId });
  const go = (at) => () => { location.hash = hashAt(at); };
  const previous = el("button", { class: "secondary", onclick: go(Math.max(0, offset - PAGE)) }, "Newer");
  const next = el("button", { class: "secondary", onclick: go(offset + PAGE) }, "Older");
  return { info, node: el("div", { class: "pager" }, previous, next, info),
    update(shown, total) { previous.disabled = offset === 0; next.disabled = offset + shown >= total; } };
}

// A table body shows these rows, in this order; rows already there stay the same nodes.
export function replaceRows(body, rows) {
  const same = rows.length === body.children.length && rows.every((row, i) => body.children[i] === row);
  if (!same) body.replaceChildren(...rows);
}

// A cell's badge, replaced only when the status changes.
export function showBadge(cell, status) {
  if (cell.dataset.shown === status) return;
  cell.dataset.shown = status;
  cell.replaceChildren(badge(status));
}
