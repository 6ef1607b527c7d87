// Overview: services up and critical, firing alerts, workflow runs in progress and finished
// in the last hour, traffic (request and error rate, live), storage used against quota.

import * as api from "../api.js";
import {bytes, h, pct, replace, stat, table} from "../dom.js";
import {lineChart} from "../charts.js";

export async function render(main, ctx) {
  const s = ctx.session;
  const scope = s.platform_admin ? ctx.tenant : null;
  const servicesStat = h("div", {id: "stat-services"});
  const alertsStat = h("div", {id: "stat-alerts"});
  const runsStat = h("div", {id: "stat-runs"});
  const storage = h("div", {id: "storage"});
  const traffic = lineChart(s.platform_admin && !ctx.tenant ? "API traffic (last hour, then live)" : "Service traffic (last hour, then live)",
    [{label: "requests/s"}, {label: "errors", unit: "%"}], {height: 200});
  replace(servicesStat, stat("Service instances", "…", {detail: "connecting…"}));
  replace(alertsStat, stat("Alerts", "…"));
  replace(runsStat, stat("Workflow runs", "…"));
  replace(main, h("section", {},
    h("div", {class: "page-head"}, h("h1", {}, "Overview"),
      h("span", {class: "hint"}, s.platform_admin ? (ctx.tenant ? "One tenant and the platform" : "Every tenant") : "Your organization")),
    h("div", {class: "stats"}, servicesStat, alertsStat, runsStat),
    h("div", {class: "charts"}, traffic.el),
    h("h2", {}, "Storage"), storage));

  // The last hour from the host's history, then live points (services) or the history
  // read again (the API's traffic, which the live stream does not carry).
  const series = s.platform_admin && !ctx.tenant ? "api" : "service";
  const loadHistory = async () => {
    try {
      const from = new Date(Date.now() - 3600e3).toISOString();
      const hist = await api.get(`/api/history${api.qs({series, tenant_id: s.platform_admin ? ctx.tenant : null, from, step_secs: 60})}`);
      const sum = new Map();
      for (const p of hist.points) {
        const t = Date.parse(p.at) / 1000;
        const a = sum.get(t) || {rate: 0, count: 0, errors: 0};
        a.rate += p.rate_per_sec; a.count += p.count; a.errors += p.errors;
        sum.set(t, a);
      }
      traffic.set([...sum.entries()].sort((a, b) => a[0] - b[0]).map(([t, a]) => [t, a.rate, a.count ? (a.errors / a.count) * 100 : null]));
    } catch { /* the chart keeps what it has */ }
  };
  await loadHistory();
  const timer = series === "api" ? setInterval(loadHistory, 30000) : null;
  const stream = api.follow(`/api/registry/events${api.qs({scope})}`, ["services"], (_, o) => {
    let up = 0, critical = 0, warning = 0, rate = 0, requests = 0, errors = 0;
    for (const svc of o.services) {
      up += svc.passing; critical += svc.critical; warning += svc.warning;
      rate += svc.traffic.rate_per_sec; requests += svc.traffic.requests; errors += svc.traffic.errors;
    }
    replace(servicesStat, stat("Service instances", `${up} up`, {id: "services-up",
      status: critical ? "critical" : warning ? "warning" : "passing",
      detail: h("a", {href: ctx.link("/ui/services")}, `${critical} critical, ${warning} warning in ${o.services.length} services`)}));
    if (series === "service") traffic.push([Date.now() / 1000, rate, requests ? (errors / requests) * 100 : null]);
  });

  await Promise.all([alerts(alertsStat, s), runs(runsStat, ctx), usage(storage, ctx)]);
  return () => { stream.close(); if (timer) clearInterval(timer); };
}

async function alerts(el, s) {
  if (!s.platform_admin) {
    replace(el, stat("Alerts", "—", {detail: "Alert rules are managed by the platform's operators"}));
    return;
  }
  try {
    const list = await api.get("/api/monitoring/alerts?state=firing");
    replace(el, stat("Firing alerts", String(list.items.length), {
      status: list.items.length ? "critical" : "passing",
      detail: list.items.slice(0, 3).map((a) => a.name).join(", ") || "none"}));
  } catch (e) {
    replace(el, stat("Firing alerts", "?", {detail: e.message}));
  }
}

/** The tenants an overview covers: the one chosen, the caller's own, or every tenant. */
async function tenantsOf(ctx) {
  if (ctx.tenant) return [ctx.tenant];
  if (!ctx.session.platform_admin) return [ctx.session.tenant_id];
  const page = await api.get("/api/tenants?limit=1000");
  return page.items.map((t) => t.id);
}

async function runs(el, ctx) {
  try {
    const tenants = await tenantsOf(ctx);
    const since = new Date(Date.now() - 3600e3).toISOString();
    const count = async (params) => {
      const pages = await Promise.all(tenants.map((t) => api.get(`/api/orchestration/workflows${api.qs({...params, tenant_id: ctx.session.platform_admin ? t : null, limit: 1000})}`)));
      return {n: pages.reduce((a, p) => a + p.items.length, 0), more: pages.some((p) => p.next_cursor)};
    };
    const [running, pending, ok, failed] = await Promise.all([
      count({status: "running"}), count({status: "pending"}),
      count({status: "succeeded", since}), count({status: "failed", since})]);
    const plus = (c) => `${c.n}${c.more ? "+" : ""}`;
    replace(el, stat("Workflow runs", `${plus(running)} running`, {
      status: failed.n ? "warning" : "passing",
      detail: `${plus(pending)} pending · last hour: ${plus(ok)} succeeded, ${plus(failed)} failed`}));
  } catch (e) {
    replace(el, stat("Workflow runs", "?", {detail: e.message}));
  }
}

async function usage(el, ctx) {
  try {
    const tenants = await tenantsOf(ctx);
    const rows = await Promise.all(tenants.map(async (t) => {
      const [tenant, u] = await Promise.all([api.get(`/api/tenants/${t}`), api.get(`/api/tenants/${t}/usage`)]);
      return {tenant, u};
    }));
    replace(el, table([
      ["Tenant", (r) => h("a", {href: ctx.link(`/ui/tenants/${r.tenant.id}`)}, r.tenant.name)],
      ["Storage", (r) => meter(r.u.storage_bytes, r.u.quotas.max_storage_bytes, bytes)],
      ["Objects", (r) => meter(r.u.objects, r.u.quotas.max_objects, String)],
      ["Projects", (r) => meter(r.u.projects, r.u.quotas.max_projects, String)],
    ], rows, {caption: "Usage against quota", empty: "No tenants."}));
  } catch (e) {
    replace(el, h("p", {class: "error"}, e.message));
  }
}

/** `used of quota` with a bar (no bar without a quota). */
export function meter(used, quota, fmt) {
  if (quota === null || quota === undefined) return h("span", {}, `${fmt(used)} (no quota)`);
  const ratio = quota > 0 ? used / quota : 1;
  const level = ratio >= 0.9 ? "critical" : ratio >= 0.75 ? "warning" : "passing";
  return h("span", {class: "meter-wrap"},
    h("meter", {min: 0, max: quota, value: Math.min(used, quota), low: quota * 0.75, high: quota * 0.9, optimum: 0,
      "aria-label": `${fmt(used)} of ${fmt(quota)}`}),
    h("span", {"data-level": level}, `${fmt(used)} of ${fmt(quota)} (${pct(ratio)})`));
}
