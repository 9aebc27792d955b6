// The fields of a discipline's form: a box per input, checked as the server would.
import { el, setText } from "./dom.js";
import { isNumbers, richText, tidy, unitOf } from "./format.js";

const LONG_FIELD = 20; // longer arrays get a textarea and a file loader in forms

// The type of an input, from its schema or else from its default value.
export function typeOf(property, fallback) {
  if (property.type === "array") return `array of ${(property.items || {}).type || "values"}`;
  if (property.type) return property.type;
  return fallback === undefined ? "" : Array.isArray(fallback) ? "array" : typeof fallback;
}

// What the server would refuse anyway, said next to the field before anything is sent.
export function checkValue(text, property, fallback) {
  let value;
  try { value = JSON.parse(text); } catch (error) {
    if (property.type === "string") return { value: text };
    return { error: "Not JSON: write an array as [1.0, 2.0]." };
  }
  const numbers = (property.type === "array" && (property.items || {}).type === "number") ||
    (Array.isArray(fallback) && isNumbers(fallback));
  if (numbers && typeof value === "number" && (!Array.isArray(fallback) || fallback.length === 1)) value = [value];
  if (numbers && !isNumbers(value)) return { error: "Expected an array of numbers, like [1.0, 2.0]." };
  if (Array.isArray(fallback) && Array.isArray(value) && value.length !== fallback.length) {
    return { error: `Expected ${fallback.length} value${fallback.length === 1 ? "" : "s"}, got ${value.length}.` };
  }
  if (property.type === "number" && typeof value !== "number") return { error: "Expected a number." };
  if (property.type === "string" && typeof value !== "string") return { value: text };
  return { value };
}

// A JSON array (or {name: array}), or numbers separated by commas, semicolons, tabs or line
// breaks; lines that do not start with a number (a CSV header) are skipped.
function parseNumbers(text, filename, name) {
  const trimmed = text.trim();
  if (filename.toLowerCase().endsWith(".json") || /^[[{]/.test(trimmed)) {
    const data = JSON.parse(trimmed);
    const values = Array.isArray(data) ? data.flat(Infinity) : data[name];
    const where = Array.isArray(data) ? "." : ` under "${name}".`;
    if (!isNumbers(values)) throw new Error(`${filename}: expected an array of numbers` + where);
    return values;
  }
  const values = [];
  trimmed.split(/\r?\n/).forEach((line, index) => {
    const tokens = line.split(/[\s,;]+/).filter(Boolean);
    if (!tokens.length || isNaN(Number(tokens[0]))) return;
    for (const token of tokens) {
      if (isNaN(Number(token))) throw new Error(`${filename}, line ${index + 1}: "${token}" is not a number.`);
      values.push(Number(token));
    }
  });
  return values;
}

export function inputField(input, property, fallback, prefill) {
  const long = Array.isArray(fallback) && fallback.length > LONG_FIELD;
  const value = prefill !== undefined ? prefill : fallback;
  const text = value === undefined || value === null ? "" : JSON.stringify(value);
  const id = "input-" + input;
  const box = long
    ? el("textarea", { id, name: input, "data-input": input, rows: 4 }, text)
    : el("input", { id, name: input, "data-input": input, value: text, spellcheck: "false" });
  const error = el("p", { class: "error field-error", id: id + "-error", "aria-live": "polite" });
  const field = { input, box, error, check, property, fallback };
  function check() {
    const result = box.value.trim() ? checkValue(box.value, property, fallback) : {};
    setText(error, result.error || "");
    box.setAttribute("aria-invalid", result.error ? "true" : "false");
    return result;
  }
  box.addEventListener("change", check);
  const load = async () => {
    const file = loader.files[0];
    if (!file) return;
    try {
      box.value = JSON.stringify(parseNumbers(await file.text(), file.name, input));
      check();
    } catch (reason) { setText(error, reason.message); }
  };
  const loader = long ? el("input", { type: "file", accept: ".csv,.json,.txt", class: "file", "data-load": input,
    onchange: load }) : null;
  const description = tidy(property.description), unit = unitOf(description);
  field.node = el("div", { class: "field" },
    el("label", { for: id }, el("code", {}, input), unit ? el("span", { class: "unit" }, ` [${unit}]`) : null),
    el("div", { class: "meta muted" }, [typeOf(property, fallback),
      Array.isArray(fallback) ? `size ${fallback.length}` : null].filter(Boolean).join(" · "),
      description ? [" · ", el("span", { class: "description" }, richText(description))] : null),
    box, loader ? el("label", { class: "inline loader" }, el("span", {}, "Load from file (CSV or JSON)"), loader)
      : null, error);
  return field;
}

