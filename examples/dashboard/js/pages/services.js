// Services: every service the signed-in principal may see, live (Server-Sent Events from
// `/api/registry/events`): instances with health, recent check results, breaker state,
// draining, maintenance, outlier ejection, traffic; latency and error-rate charts per
// service; maintenance on and off, drain and deregister.

import * as api from "../api.js";
import {badge, h, ms, pct, replace, table, time, toast} from "../dom.js";
import {lineChart} from "../charts.js";

export function render(main, ctx) {
  const scope = ctx.tenant && ctx.session.platform_admin ? ctx.tenant : null;
  const state = h("span", {class: "live-state", id: "live-state"}, "connecting…");
  const list = h("div", {class: "services", id: "services"});
  replace(main, h("section", {},
    h("div", {class: "page-head"}, h("h1", {}, "Services"), state),
    h("p", {class: "hint"}, "Health, checks and traffic through this host over the last minute; updates live."),
    list));
  const cards = new Map();
  const stream = api.follow(`/api/registry/events${api.qs({scope})}`, ["services"], (_, overview) => {
    const seen = new Set();
    for (const svc of overview.services) {
      seen.add(svc.service);
      let card = cards.get(svc.service);
      if (!card) {
        card = serviceCard(svc.service, ctx);
        cards.set(svc.service, card);
      }
      card.update(svc);
    }
    for (const [name, card] of cards) {
      if (!seen.has(name)) { card.el.remove(); cards.delete(name); }
    }
    const ordered = [...cards.keys()].sort().map((k) => cards.get(k).el);
    if (!ordered.length) replace(list, h("p", {class: "empty"}, "No services are registered yet."));
    else {
      list.querySelector(".empty")?.remove();
      ordered.forEach((el) => list.appendChild(el));
    }
  }, (s) => {
    state.textContent = s === "live" ? "live" : "reconnecting…";
    state.dataset.state = s;
  });
  return () => stream.close();
}

function serviceCard(name, ctx) {
  const head = h("div", {class: "card-head"});
  const summary = h("div", {class: "stats-row"});
  const latency = lineChart(`${name}: latency`, [{label: "p50", unit: "ms"}, {label: "p95", unit: "ms"}, {label: "p99", unit: "ms"}], {height: 150});
  const errors = lineChart(`${name}: traffic`, [{label: "requests/s"}, {label: "errors", unit: "%"}], {height: 150});
  const instances = h("div", {class: "instances"});
  const el = h("article", {class: "card service", "data-service": name},
    head, summary, h("div", {class: "charts"}, latency.el, errors.el), instances);
  return {
    el,
    update(svc) {
      const status = svc.critical ? "critical" : svc.warning ? "warning" : "passing";
      replace(head, h("h2", {}, name), badge(status, `${svc.passing} passing`),
        svc.warning ? badge("warning", `${svc.warning} warning`) : null,
        svc.critical ? badge("critical", `${svc.critical} critical`) : null,
        svc.draining ? badge("draining", `${svc.draining} draining`) : null,
        svc.ejected ? badge("critical", `${svc.ejected} ejected`) : null);
      const t = svc.traffic;
      replace(summary,
        h("span", {}, `${t.rate_per_sec.toFixed(2)} req/s`),
        h("span", {}, `errors ${pct(t.error_rate)}`),
        h("span", {}, `p50 ${ms(t.p50_ms)}`), h("span", {}, `p95 ${ms(t.p95_ms)}`), h("span", {}, `p99 ${ms(t.p99_ms)}`));
      const now = Date.now() / 1000;
      latency.push([now, t.p50_ms, t.p95_ms, t.p99_ms]);
      errors.push([now, t.rate_per_sec, t.requests ? t.error_rate * 100 : null]);
      replace(instances, table([
        ["Instance", (i) => h("span", {class: "mono"}, i.id)],
        ["Scope", (i) => (i.scope === "platform" ? "platform" : "tenant")],
        ["Endpoint", (i) => h("span", {class: "mono"}, i.endpoint)],
        ["Status", (i) => h("span", {}, badge(i.status), i.draining_since ? badge("draining", "draining") : null,
          i.maintenance ? badge("warning", "maintenance") : null, i.ejected ? badge("critical", "ejected") : null,
          i.maintenance ? h("div", {class: "muted"}, `maintenance: ${i.maintenance}`) : null)],
        ["Last checks", (i) => checks(i.recent_checks, i.status_output)],
        ["Breaker", (i) => i.breaker || "—"],
        ["Traffic (1 min)", (i) => `${i.traffic.requests} req, ${pct(i.traffic.error_rate)} err, p95 ${ms(i.traffic.p95_ms)}`],
        ["", (i) => actions(i, ctx)],
      ], svc.instances, {rowAttrs: (i) => ({"data-instance": `${i.service}/${i.id}`, "data-status": i.status}), caption: `Instances of ${name}`}));
    },
  };
}

function checks(runs, output) {
  if (!runs.length) return h("span", {class: "muted"}, output || "no checks run by this host");
  const last = runs[0];
  return h("span", {class: "checks"},
    h("span", {class: "dots", "aria-hidden": "true"}, runs.slice().reverse().map((r) =>
      h("span", {class: `dot s-${r.status}`, title: `${r.at}: ${r.status} ${r.output}`}))),
    h("span", {class: "check-last"}, time(last.at), " ", last.output));
}

function actions(i, ctx) {
  const scope = i.scope === "platform" ? "platform" : i.tenant_id;
  const base = `/api/services/${encodeURIComponent(i.service)}/instances/${encodeURIComponent(i.id)}`;
  const canWrite = ctx.session.platform_admin || (i.scope === "tenant" && ctx.session.permissions.includes("registry:write"));
  if (!canWrite) return null;
  const act = (label, cls, fn) => h("button", {type: "button", class: cls, onclick: async (ev) => {
    const button = ev.currentTarget;
    button.disabled = true;
    try { await fn(); } catch (e) { toast(`${label} failed: ${e.message}`, "error"); button.disabled = false; }
  }}, label);
  return h("span", {class: "actions"},
    i.maintenance
      ? act("End maintenance", "secondary", async () => {
        await api.put(`${base}/maintenance${api.qs({scope})}`, {reason: null});
        toast(`${i.id} is back in rotation`);
      })
      : act("Maintenance", "secondary", async () => {
        const reason = prompt(`Why take ${i.service}/${i.id} out of rotation?`);
        if (!reason) return;
        await api.put(`${base}/maintenance${api.qs({scope})}`, {reason});
        toast(`${i.id} is in maintenance`);
      }),
    i.draining_since ? null : act("Drain", "secondary", async () => {
      await api.post(`${base}/drain${api.qs({scope})}`, {});
      toast(`${i.id} is draining`);
    }),
    act("Deregister", "danger", async () => {
      if (!confirm(`Deregister ${i.service}/${i.id}? It stops taking traffic at once.`)) return;
      await api.del(`${base}${api.qs({scope})}`);
      toast(`${i.id} deregistered`);
    }));
}
