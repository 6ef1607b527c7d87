// Workflows: runs with filters and pagination, a form to submit one, and schedules; a run's
// page draws its DAG with every node's state live (Server-Sent Events), with attempts,
// timings, errors, the run's logs as they are written, and cancel, retry and signal.

import * as api from "../api.js";
import {badge, h, replace, table, time, toast} from "../dom.js";
import {tenantChooser} from "./common.js";

const STATUSES = ["", "pending", "running", "succeeded", "failed", "cancelled"];
const EXAMPLE = {
  nodes: [
    {id: "fetch", step: "delay", params: {ms: 1500}},
    {id: "scan", step: "delay", depends_on: ["fetch"], params: {ms: 1500}},
    {id: "lint", step: "delay", depends_on: ["fetch"], params: {ms: 1000}},
    {id: "report", step: "echo", depends_on: ["scan", "lint"]},
  ],
};

export async function render(main, ctx) {
  const [id] = ctx.params;
  if (id) return runPage(main, ctx, decodeURIComponent(id));
  return listPage(main, ctx);
}

/** `tenant_id` for the API: the platform administrator's choice (others act in their own). */
function tenantParam(ctx) {
  return ctx.session.platform_admin ? ctx.tenant : null;
}

function duration(from, to) {
  if (!from) return "—";
  const ms = (to ? new Date(to) : new Date()) - new Date(from);
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120e3) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60e3)} min`;
}

async function listPage(main, ctx) {
  if (ctx.session.platform_admin && !ctx.tenant) return tenantChooser(main, ctx, "Workflows", "/ui/workflows");
  const url = new URL(location.href);
  const f = Object.fromEntries(["status", "label", "since", "until", "cursor"].map((k) => [k, url.searchParams.get(k) || ""]));
  const tenant_id = tenantParam(ctx);
  const toIso = (local) => (local ? new Date(local).toISOString() : null);
  const page = await api.get(`/api/orchestration/workflows${api.qs({
    tenant_id, status: f.status, label: f.label, since: toIso(f.since), until: toIso(f.until), cursor: f.cursor, limit: 20})}`);

  const field = (label, input) => h("label", {}, label, input);
  const filters = h("form", {class: "filters", role: "search", "aria-label": "Filter runs"},
    field("Status", h("select", {name: "status"}, STATUSES.map((s) => h("option", {value: s, selected: s === f.status}, s || "any")))),
    field("Label", h("input", {name: "label", value: f.label, placeholder: "key:value", pattern: "[^:]+:.*", title: "key:value"})),
    field("Submitted from", h("input", {name: "since", type: "datetime-local", value: f.since})),
    field("until", h("input", {name: "until", type: "datetime-local", value: f.until})),
    h("button", {type: "submit", class: "primary"}, "Filter"));
  filters.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const data = new FormData(filters);
    const next = new URL(location.pathname, location.origin);
    if (url.searchParams.get("tenant")) next.searchParams.set("tenant", url.searchParams.get("tenant"));
    for (const [k, v] of data) if (v) next.searchParams.set(k, v);
    ctx.navigate(next.pathname + next.search);
  });

  // Pagination: "next" carries the cursor; "first page" drops it.
  const pageLink = (cursor, label) => {
    const u = new URL(location.href);
    if (cursor) u.searchParams.set("cursor", cursor); else u.searchParams.delete("cursor");
    return h("a", {href: u.pathname + u.search, class: "button-link"}, label);
  };
  const runs = table([
    ["Run", (r) => h("a", {href: ctx.link(`/ui/workflows/${r.id}`), class: "mono"}, r.id.slice(0, 8) + "…")],
    ["Status", (r) => badge(r.status)],
    ["Labels", (r) => Object.entries(r.labels).map(([k, v]) => h("span", {class: "label"}, `${k}:${v}`))],
    ["Submitted", (r) => time(r.created_at)],
    ["Took", (r) => duration(r.created_at, r.finished_at)],
    ["Error", (r) => r.error || ""],
  ], page.items, {caption: "Runs, newest first", empty: "No runs match.", rowAttrs: (r) => ({"data-run": r.id, "data-status": r.status})});

  replace(main, h("section", {},
    h("div", {class: "page-head"}, h("h1", {}, "Workflows")),
    filters, runs,
    h("nav", {class: "pager", "aria-label": "Pages of runs"},
      f.cursor ? pageLink(null, "First page") : null,
      page.next_cursor ? pageLink(page.next_cursor, "Next page") : null),
    submitForm(ctx),
    h("h2", {}, "Schedules"), await schedules(ctx)));
  return null;
}

function submitForm(ctx) {
  const error = h("p", {class: "form-error", id: "submit-error", role: "alert", hidden: true});
  const dag = h("textarea", {name: "dag", rows: 12, spellcheck: "false", class: "mono", "aria-describedby": "submit-error"});
  dag.value = JSON.stringify(EXAMPLE, null, 2);
  const input = h("textarea", {name: "input", rows: 3, spellcheck: "false", class: "mono"});
  input.value = "{}";
  const labels = h("input", {name: "labels", placeholder: "team:search, env:dev"});
  const form = h("form", {class: "stack", id: "submit-run"},
    h("label", {}, "Definition (DAG, JSON)", dag),
    h("label", {}, "Input (JSON)", input),
    h("label", {}, "Labels", labels),
    error,
    h("button", {type: "submit", class: "primary"}, "Submit run"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    let body;
    try {
      body = {dag: JSON.parse(dag.value), input: JSON.parse(input.value || "null")};
    } catch (e) {
      error.hidden = false;
      error.textContent = `Not valid JSON: ${e.message}`;
      return;
    }
    body.labels = {};
    for (const part of labels.value.split(",").map((s) => s.trim()).filter(Boolean)) {
      const [k, ...v] = part.split(":");
      if (!v.length) { error.hidden = false; error.textContent = `Label "${part}" is not key:value`; return; }
      body.labels[k.trim()] = v.join(":").trim();
    }
    try {
      const run = await api.post(`/api/orchestration/workflows${api.qs({tenant_id: tenantParam(ctx)})}`, body);
      toast(`Run ${run.id.slice(0, 8)} submitted`);
      ctx.navigate(ctx.link(`/ui/workflows/${run.id}`));
    } catch (e) {
      error.hidden = false;
      error.textContent = e.message;
    }
  });
  return h("details", {class: "card"}, h("summary", {}, "Submit a run"), form);
}

async function schedules(ctx) {
  const tenant_id = tenantParam(ctx);
  const list = await api.get(`/api/orchestration/schedules${api.qs({tenant_id})}`);
  const base = (s) => `/api/orchestration/schedules/${encodeURIComponent(s.name)}`;
  const holder = h("div", {});
  const draw = (items) => replace(holder, table([
    ["Name", (s) => s.name],
    ["Cron", (s) => h("span", {class: "mono"}, `${s.cron} (${s.time_zone})`)],
    ["State", (s) => badge(s.paused ? "pending" : "passing", s.paused ? "paused" : "active")],
    ["Next", (s) => time(s.next_fire_at)],
    ["Last", (s) => (s.last_run ? h("a", {href: ctx.link(`/ui/workflows/${s.last_run}`)}, time(s.last_fired_at)) : "—")],
    ["", (s) => h("span", {class: "actions"},
      h("button", {type: "button", onclick: async () => {
        try {
          await api.put(`${base(s)}/paused${api.qs({tenant_id})}`, {paused: !s.paused});
          draw((await api.get(`/api/orchestration/schedules${api.qs({tenant_id})}`)).items);
        } catch (e) { toast(e.message, "error"); }
      }}, s.paused ? "Resume" : "Pause"),
      h("button", {type: "button", class: "danger", onclick: async () => {
        if (!confirm(`Delete schedule ${s.name}?`)) return;
        try {
          await api.del(`${base(s)}${api.qs({tenant_id})}`);
          draw((await api.get(`/api/orchestration/schedules${api.qs({tenant_id})}`)).items);
        } catch (e) { toast(e.message, "error"); }
      }}, "Delete"))],
  ], items, {caption: "Schedules", empty: "No schedules."}));
  draw(list.items);
  return holder;
}

async function runPage(main, ctx, id) {
  const tenant_id = tenantParam(ctx);
  const path = `/api/orchestration/workflows/${encodeURIComponent(id)}`;
  // Read once first: a missing (or another tenant's) run is "not found" before any stream.
  let run = await api.get(`${path}${api.qs({tenant_id})}`);
  document.title = `Run ${id.slice(0, 8)} · ATE`;
  const head = h("div", {class: "page-head"});
  const facts = h("dl", {class: "facts"});
  const graph = h("div", {class: "graph-wrap"});
  const nodes = h("div", {});
  const signals = h("div", {});
  const logRows = h("tbody", {});
  const logsEl = h("div", {class: "table-wrap logs"},
    h("table", {}, h("caption", {}, "Logs, oldest first"),
      h("thead", {}, h("tr", {}, ["Time", "Level", "Node", "Attempt", "Message"].map((t) => h("th", {scope: "col"}, t)))),
      logRows));
  const state = h("span", {class: "live-state", id: "live-state"}, "connecting…");
  replace(main, h("section", {"data-run": id},
    head, facts, h("h2", {}, "Graph"), graph, h("h2", {}, "Nodes"), nodes, signals,
    h("div", {class: "page-head"}, h("h2", {}, "Logs"), state), logsEl));

  // Logs are append-only, oldest first, and a page has a cursor only when more follow: keep
  // the cursor of the page being filled and how many of its entries are shown already.
  let cursor = null;
  let shown = 0;
  let fetching = false;
  const moreLogs = async () => {
    if (fetching) return;
    fetching = true;
    try {
      for (;;) {
        const page = await api.get(`${path}/logs${api.qs({tenant_id, cursor, limit: 500})}`);
        for (const e of page.items.slice(shown)) {
          logRows.appendChild(h("tr", {"data-level": e.level},
            h("td", {}, time(e.at)), h("td", {}, badge(e.level === "error" ? "failed" : e.level === "warn" ? "warning" : "info", e.level)),
            h("td", {class: "mono"}, e.node), h("td", {}, String(e.attempt)),
            h("td", {}, e.message, Object.keys(e.fields || {}).length ? h("span", {class: "mono muted"}, " ", JSON.stringify(e.fields)) : null)));
        }
        if (!page.next_cursor) {
          shown = page.items.length;
          break;
        }
        cursor = page.next_cursor;
        shown = 0;
      }
    } catch (e) {
      toast(`Cannot read logs: ${e.message}`, "error");
    } finally {
      fetching = false;
    }
  };

  let draw = (r) => {
    run = r;
    const ended = Boolean(r.finished_at);
    const act = (label, cls, fn) => h("button", {type: "button", class: cls, onclick: async (ev) => {
      const button = ev.currentTarget;
      button.disabled = true;
      try { draw(await fn()); } catch (e) { toast(`${label}: ${e.message}`, "error"); button.disabled = false; }
    }}, label);
    replace(head,
      h("h1", {}, "Run ", h("span", {class: "mono"}, r.id.slice(0, 8))),
      badge(r.status), r.stopping ? badge("pending", `stopping: ${r.stopping}`) : null,
      h("span", {class: "actions"},
        ended ? null : act("Cancel run", "danger", () => api.post(`${path}/cancel${api.qs({tenant_id})}`, {})),
        r.status === "failed" ? act("Retry from failure", "secondary", () => api.post(`${path}/retry${api.qs({tenant_id})}`, {})) : null));
    replace(facts,
      h("dt", {}, "Id"), h("dd", {class: "mono"}, r.id),
      h("dt", {}, "Submitted"), h("dd", {}, time(r.created_at), ` by ${r.created_by}`),
      h("dt", {}, "Took"), h("dd", {}, duration(r.created_at, r.finished_at), ended ? "" : " so far"),
      Object.keys(r.labels).length ? [h("dt", {}, "Labels"), h("dd", {}, Object.entries(r.labels).map(([k, v]) => h("span", {class: "label"}, `${k}:${v}`)))] : null,
      r.parent ? [h("dt", {}, "Parent run"), h("dd", {}, h("a", {href: ctx.link(`/ui/workflows/${r.parent}`), class: "mono"}, r.parent))] : null,
      r.error ? [h("dt", {}, "Error"), h("dd", {class: "form-error"}, r.error)] : null);
    replace(graph, dagSvg(r.nodes));
    replace(nodes, table([
      ["Node", (n) => h("span", {class: "mono"}, n.id)],
      ["Does", (n) => (n.step ? `step ${n.step}` : `waits for signal ${n.signal}`)],
      ["Status", (n) => badge(n.status)],
      ["Attempt", (n) => String(n.attempt)],
      ["Started", (n) => time(n.started_at)],
      ["Took", (n) => (n.started_at ? duration(n.started_at, n.finished_at) : "—")],
      ["Error", (n) => (n.error ? `${n.error.kind}: ${n.error.message}` : "")],
    ], r.nodes, {caption: "Nodes in definition order", rowAttrs: (n) => ({"data-node": n.id, "data-status": n.status})}));
    const waiting = r.nodes.filter((n) => n.signal && n.status === "waiting");
    replace(signals, waiting.length ? signalForm(waiting, async (name, payload) => {
      draw(await api.post(`${path}/signals/${encodeURIComponent(name)}${api.qs({tenant_id})}`, payload));
      toast(`Signal ${name} sent`);
    }) : null);
  };
  // Follow the run while it has not ended; a retry starts following it again.
  let stream = null;
  const follow = () => {
    stream = api.follow(`${path}/events${api.qs({tenant_id})}`, ["run"], (_, r) => {
      if (r.revision < run.revision) return;
      draw(r);
      moreLogs();
    }, (s) => {
      state.textContent = s === "live" ? "live" : "reconnecting…";
      state.dataset.state = s;
    });
  };
  const drawRun = draw;
  draw = (r) => {
    drawRun(r);
    if (r.finished_at && stream) {
      stream.close();
      stream = null;
      state.textContent = "ended";
      state.dataset.state = "ended";
    } else if (!r.finished_at && !stream) {
      follow();
    }
  };
  draw(run);
  await moreLogs();
  // Steps write logs between node changes too.
  const timer = setInterval(() => { if (!run.finished_at) moreLogs(); }, 2000);
  if (run.finished_at) {
    state.textContent = "ended";
    state.dataset.state = "ended";
  }
  return () => { stream?.close(); clearInterval(timer); };
}

function signalForm(waiting, send) {
  const names = [...new Set(waiting.map((n) => n.signal))];
  const select = h("select", {name: "signal"}, names.map((n) => h("option", {value: n}, n)));
  const payload = h("textarea", {name: "payload", rows: 3, class: "mono"});
  payload.value = "{}";
  const error = h("p", {class: "form-error", role: "alert", hidden: true});
  const form = h("form", {class: "stack card", id: "send-signal"},
    h("h2", {}, "Send a signal"),
    h("label", {}, "Signal", select), h("label", {}, "Payload (JSON)", payload), error,
    h("button", {type: "submit", class: "primary"}, "Send signal"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    try {
      await send(select.value, JSON.parse(payload.value || "null"));
    } catch (e) {
      error.hidden = false;
      error.textContent = e.message;
    }
  });
  return form;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const c of children) el.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
  return el;
}

/** The DAG, left to right: a node's column is its longest path from a root. */
export function dagSvg(nodes) {
  const W = 150, H = 46, GX = 56, GY = 16, PAD = 8;
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const depth = new Map();
  const depthOf = (n, seen = new Set()) => {
    if (depth.has(n.id)) return depth.get(n.id);
    if (seen.has(n.id)) return 0;
    seen.add(n.id);
    const d = Math.max(-1, ...n.depends_on.map((p) => (byId.has(p) ? depthOf(byId.get(p), seen) : -1))) + 1;
    depth.set(n.id, d);
    return d;
  };
  nodes.forEach((n) => depthOf(n));
  const columns = [];
  for (const n of nodes) (columns[depth.get(n.id)] ||= []).push(n);
  const pos = new Map();
  columns.forEach((col, x) => col.forEach((n, y) => pos.set(n.id, {x: PAD + x * (W + GX), y: PAD + y * (H + GY)})));
  const width = PAD * 2 + columns.length * W + Math.max(0, columns.length - 1) * GX;
  const height = PAD * 2 + Math.max(...columns.map((c) => c.length)) * (H + GY) - GY;
  const svg = s("svg", {class: "dag", viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": `Graph of ${nodes.length} nodes: ${nodes.map((n) => `${n.id} ${n.status}`).join(", ")}`});
  svg.appendChild(s("defs", {}, s("marker", {id: "arrow", viewBox: "0 0 8 8", refX: 8, refY: 4, markerWidth: 7, markerHeight: 7, orient: "auto"},
    s("path", {d: "M0,0 L8,4 L0,8 z", class: "arrow"}))));
  for (const n of nodes) {
    const to = pos.get(n.id);
    for (const p of n.depends_on) {
      const from = pos.get(p);
      if (!from) continue;
      const x1 = from.x + W, y1 = from.y + H / 2, x2 = to.x, y2 = to.y + H / 2, mx = (x1 + x2) / 2;
      svg.appendChild(s("path", {class: "edge", d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, "marker-end": "url(#arrow)"}));
    }
  }
  for (const n of nodes) {
    const {x, y} = pos.get(n.id);
    svg.appendChild(s("g", {class: `node s-${n.status}`, "data-node": n.id, "data-status": n.status, transform: `translate(${x},${y})`},
      s("title", {}, `${n.id}: ${n.status}${n.error ? ` (${n.error.message})` : ""}`),
      s("rect", {width: W, height: H, rx: 8}),
      s("text", {x: 10, y: 19, class: "node-id"}, n.id.length > 18 ? `${n.id.slice(0, 17)}…` : n.id),
      s("text", {x: 10, y: 36, class: "node-status"}, `${n.status}${n.attempt > 1 ? ` · try ${n.attempt}` : ""}`)));
  }
  return svg;
}
