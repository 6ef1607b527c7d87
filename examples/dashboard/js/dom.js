// Building the page without HTML strings: every value becomes text, never markup, so data
// from the API cannot inject anything (and the CSP forbids inline code anyway).

/**
 * An element: `h("a", {href: "/x", class: "btn"}, "text", child, [more])`.
 * Attributes whose value is `null`, `undefined` or `false` are left out; `on*` keys with
 * function values become event listeners; `dataset` takes an object.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (k === "dataset") {
      Object.assign(el.dataset, v);
    } else if (v === true) {
      el.setAttribute(k, "");
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A status badge: `passing`, `warning`, `critical`, `running`, `failed`, … */
export function badge(status, text) {
  return h("span", {class: `badge s-${String(status).replace(/[^a-z_-]/gi, "")}`, "data-status": status}, text ?? status);
}

/** A table: `columns` are `[header, (row) => cell]`. */
export function table(columns, rows, {caption, empty = "Nothing yet.", rowAttrs} = {}) {
  if (!rows.length) return h("p", {class: "empty"}, empty);
  return h("div", {class: "table-wrap"},
    h("table", {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, columns.map(([head]) => h("th", {scope: "col"}, head)))),
      h("tbody", {}, rows.map((r) => h("tr", rowAttrs ? rowAttrs(r) : {}, columns.map(([, cell]) => h("td", {}, cell(r))))))));
}

/** A summary card: a label and a big figure. */
export function stat(label, value, {status, detail, id} = {}) {
  return h("div", {class: "stat", id, "data-status": status},
    h("div", {class: "stat-label"}, label),
    h("div", {class: "stat-value"}, value),
    detail ? h("div", {class: "stat-detail"}, detail) : null);
}

/** Bytes for people: 1.5 MiB. */
export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** Milliseconds for people. */
export function ms(v) {
  if (v === null || v === undefined) return "—";
  return v < 10 ? `${v.toFixed(2)} ms` : `${Math.round(v)} ms`;
}

/** A time as the viewer's local time, with the ISO form as a tooltip. */
export function time(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return h("time", {datetime: iso, title: iso}, d.toLocaleString());
}

/** A percentage of a ratio 0..1. */
export function pct(r) {
  if (r === null || r === undefined || Number.isNaN(r)) return "—";
  return `${(r * 100).toFixed(r < 0.1 ? 2 : 1)} %`;
}

let toastTimer;
/** A short message in the live region (read by screen readers too). */
export function toast(text, kind = "info") {
  const el = document.getElementById("toast");
  if (!el) return;
  el.className = `toast-${kind} shown`;
  el.textContent = text;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.className = ""; el.textContent = ""; }, 5000);
}
