// History, trends and reports: the host's coarse history (a point a minute, hourly when
// old) over hours to weeks: traffic and latency per service, the API's traffic, workflow
// outcomes, storage with a trend line and when it reaches the quota; and a report per
// tenant or for the platform, printable and as CSV.

import * as api from "../api.js";
import {bytes, h, pct, replace, table} from "../dom.js";
import {lineChart} from "../charts.js";

const RANGES = [["1h", 3600], ["24h", 86400], ["7d", 7 * 86400], ["30d", 30 * 86400]];

function rangeOf(url) {
  const r = url.searchParams.get("range") || "24h";
  const secs = (RANGES.find(([k]) => k === r) || RANGES[1])[1];
  const to = new Date();
  return {key: r, from: new Date(to - secs * 1000).toISOString(), to: to.toISOString()};
}

/** Columns for uPlot from points of several subjects: one line per subject. */
function bySubject(points, value) {
  const subjects = [...new Set(points.map((p) => p.subject))].sort();
  const times = [...new Set(points.map((p) => Date.parse(p.at) / 1000))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const rows = times.map((t) => [t, ...subjects.map(() => null)]);
  for (const p of points) rows[index.get(Date.parse(p.at) / 1000)][1 + subjects.indexOf(p.subject)] = value(p);
  return {subjects, rows};
}

export async function render(main, ctx) {
  const url = new URL(location.href);
  const range = rangeOf(url);
  const tenant = ctx.tenant;
  const tenant_id = ctx.session.platform_admin ? tenant : null;
  const q = (series, extra = {}) => api.get(`/api/history${api.qs({series, tenant_id, from: range.from, to: range.to, ...extra})}`);
  const picker = h("nav", {class: "pager", "aria-label": "Time range"}, RANGES.map(([k]) => {
    const u = new URL(location.href);
    u.searchParams.set("range", k);
    return h("a", {href: u.pathname + u.search, class: "button-link", "aria-current": k === range.key ? "true" : null}, `Last ${k}`);
  }));
  const charts = h("div", {class: "charts", id: "history-charts"});
  const notes = h("div", {id: "forecast"});
  const reportLink = h("p", {},
    h("a", {href: ctx.link(`/ui/report?range=${range.key}`), class: "button-link", id: "open-report"}, "Report for this period"), " ",
    h("a", {href: `/api/reports${api.qs({tenant_id, from: range.from, to: range.to, format: "csv"})}`, download: "", class: "button-link"}, "Download CSV"));
  replace(main, h("section", {},
    h("div", {class: "page-head"}, h("h1", {}, "History & reports"),
      h("span", {class: "hint"}, tenant ? "One tenant" : ctx.session.platform_admin ? "The platform" : "Your organization")),
    picker, notes, charts, reportLink));

  const add = (title, series, points) => {
    const c = lineChart(title, series, {points, keep: 100000, height: 190});
    charts.appendChild(c.el);
  };
  const services = await q("service");
  if (services.prometheus_url) {
    notes.appendChild(h("p", {class: "hint"}, "Full-resolution history: ", h("a", {href: services.prometheus_url, rel: "noopener"}, "Prometheus")));
  }
  const rate = bySubject(services.points, (p) => p.rate_per_sec);
  if (rate.subjects.length) {
    add("Requests per second, by service", rate.subjects.map((s) => ({label: s})), rate.rows);
    const err = bySubject(services.points, (p) => (p.error_rate === null ? null : p.error_rate * 100));
    add("Error rate (%), by service", err.subjects.map((s) => ({label: s})), err.rows);
    const p95 = bySubject(services.points, (p) => p.p95_ms);
    add("Latency p95 (ms), by service", p95.subjects.map((s) => ({label: s})), p95.rows);
    const avail = bySubject(services.points, (p) => (p.gauge === null ? null : p.gauge * 100));
    add("Availability (%), by service", avail.subjects.map((s) => ({label: s})), avail.rows);
  } else {
    notes.appendChild(h("p", {class: "empty"}, "No service traffic recorded in this period."));
  }
  if (!tenant && ctx.session.platform_admin) {
    const apiTraffic = await q("api");
    add("The API: requests per second and errors (%)", [{label: "requests/s"}, {label: "errors", unit: "%"}],
      apiTraffic.points.map((p) => [Date.parse(p.at) / 1000, p.rate_per_sec, p.error_rate === null ? null : p.error_rate * 100]));
    add("The API: latency (ms)", [{label: "p50"}, {label: "p95"}, {label: "p99"}],
      apiTraffic.points.map((p) => [Date.parse(p.at) / 1000, p.p50_ms, p.p95_ms, p.p99_ms]));
    return null;
  }
  const [runs, storage] = await Promise.all([q("workflows"), q("storage")]);
  add("Workflow runs: finished, failed, in progress", [{label: "finished"}, {label: "failed"}, {label: "in progress"}],
    runs.points.map((p) => [Date.parse(p.at) / 1000, p.count, p.errors, p.gauge]));
  // Storage, with the fitted line carried forward to the quota (or a week ahead).
  const pts = storage.points.filter((p) => p.gauge !== null).map((p) => [Date.parse(p.at) / 1000, p.gauge, null]);
  const t = storage.trend;
  if (t && pts.length) {
    const now = pts[pts.length - 1][0];
    // Carried forward as far as the chart looks back (the text says when the quota is hit).
    const span = (Date.parse(range.to) - Date.parse(range.from)) / 1000;
    const ahead = Math.min((t.days_to_quota ?? Infinity) * 86400, span);
    pts.push([now, null, t.latest], [now + ahead, null, t.latest + t.per_day * (ahead / 86400)]);
  }
  add("Storage (bytes), and the trend", [{label: "stored"}, {label: "trend", dash: [6, 4]}], pts);
  replace(notes, ...notes.childNodes, forecast(storage.trend));
  return null;
}

/** "At this growth, the quota is reached in ~N days", or why not. */
export function forecast(t) {
  if (!t) return h("p", {class: "hint", id: "storage-forecast"}, "Not enough storage history for a trend yet.");
  const growth = `${t.per_day >= 0 ? "+" : "−"}${bytes(Math.abs(t.per_day))} a day`;
  if (t.quota === null) return h("p", {id: "storage-forecast"}, `Storage grows ${growth}; there is no storage quota.`);
  if (t.days_to_quota === null) return h("p", {id: "storage-forecast"}, `Storage ${growth}: not growing towards its quota of ${bytes(t.quota)}.`);
  if (t.days_to_quota === 0) return h("p", {id: "storage-forecast", class: "form-error"}, `Storage has reached its quota of ${bytes(t.quota)}.`);
  const days = t.days_to_quota < 1 ? "less than a day" : `~${Math.round(t.days_to_quota)} days`;
  return h("p", {id: "storage-forecast", "data-days": String(t.days_to_quota)},
    `At this growth (${growth}), storage reaches its quota of ${bytes(t.quota)} in ${days}.`);
}

/** The printable report page (`/ui/report`). */
export async function report(main, ctx) {
  const url = new URL(location.href);
  const range = rangeOf(url);
  const tenant_id = ctx.session.platform_admin ? ctx.tenant : null;
  const r = await api.get(`/api/reports${api.qs({tenant_id, from: range.from, to: range.to})}`);
  const svcTable = (lines, caption) => table([
    ["Service", (s) => s.service],
    ["Availability", (s) => pct(s.availability)],
    ["Requests", (s) => s.requests.toLocaleString()],
    ["Error rate", (s) => pct(s.error_rate)],
    ["Worst p95", (s) => (s.worst_p95_ms === null ? "—" : `${Math.round(s.worst_p95_ms)} ms`)],
  ], lines, {caption, empty: "No service traffic recorded."});
  replace(main, h("section", {class: "report"},
    h("div", {class: "page-head"}, h("h1", {}, r.scope === "platform" ? "Platform report" : `Report: ${r.tenants[0]?.name ?? ""}`),
      h("button", {type: "button", class: "primary", onclick: () => window.print()}, "Print"),
      h("a", {href: `/api/reports${api.qs({tenant_id, from: range.from, to: range.to, format: "csv"})}`, download: "", class: "button-link"}, "Download CSV")),
    h("p", {class: "hint"}, `${new Date(r.from).toLocaleString()} to ${new Date(r.to).toLocaleString()}; generated ${new Date(r.generated_at).toLocaleString()}.`),
    r.scope === "platform" ? [h("h2", {}, "Platform services and the API"), svcTable(r.platform_services, "Platform services")] : null,
    r.tenants.map((t) => h("article", {class: "report-tenant", "data-tenant": t.slug},
      h("h2", {}, t.name),
      svcTable(t.services, "Services"),
      table([["What", (x) => x[0]], ["Value", (x) => x[1]]], [
        ["Workflow runs finished", t.runs_finished.toLocaleString()],
        ["Workflow success rate", pct(t.workflow_success_rate)],
        ["Storage", `${bytes(t.storage_bytes)}${t.storage_quota === null ? "" : ` of ${bytes(t.storage_quota)}`}`],
        ["Storage growth", t.storage_per_day === null ? "—" : `${bytes(t.storage_per_day)} a day`],
        ["Quota reached in", t.days_to_storage_quota === null ? "—" : `~${Math.round(t.days_to_storage_quota)} days`],
        ["Projects, snapshots, objects", `${t.projects}, ${t.snapshots}, ${t.objects}`],
      ], {caption: "Workflows and usage"})))));
  return null;
}
