// Projects & storage: the tenant's codebase projects with storage against quota; a
// project's page with its snapshots, the newest snapshot's language breakdown, and its
// analysis results with their status.

import * as api from "../api.js";
import {badge, bytes, h, replace, table, time} from "../dom.js";
import {tenantChooser} from "./common.js";
import {meter} from "./overview.js";

export async function render(main, ctx) {
  if (ctx.session.platform_admin && !ctx.tenant) return tenantChooser(main, ctx, "Projects & storage", "/ui/projects");
  const [id] = ctx.params;
  if (id) return project(main, ctx, decodeURIComponent(id));
  const tenant = ctx.tenant;
  const tenant_id = ctx.session.platform_admin ? tenant : null;
  const url = new URL(location.href);
  const prefix = url.searchParams.get("name_prefix") || "";
  const cursor = url.searchParams.get("cursor") || "";
  const [page, usage] = await Promise.all([
    api.get(`/api/projects${api.qs({tenant_id, name_prefix: prefix, cursor, limit: 50})}`),
    api.get(`/api/tenants/${encodeURIComponent(tenant)}/usage`)]);
  const search = h("form", {class: "filters", role: "search", "aria-label": "Find projects"},
    h("label", {}, "Name starts with", h("input", {name: "name_prefix", value: prefix})),
    h("button", {type: "submit", class: "primary"}, "Find"));
  search.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const u = new URL(location.pathname, location.origin);
    if (url.searchParams.get("tenant")) u.searchParams.set("tenant", url.searchParams.get("tenant"));
    const v = new FormData(search).get("name_prefix");
    if (v) u.searchParams.set("name_prefix", v);
    ctx.navigate(u.pathname + u.search);
  });
  const next = page.next_cursor ? (() => {
    const u = new URL(location.href);
    u.searchParams.set("cursor", page.next_cursor);
    return h("a", {href: u.pathname + u.search, class: "button-link"}, "Next page");
  })() : null;
  replace(main, h("section", {},
    h("div", {class: "page-head"}, h("h1", {}, "Projects & storage")),
    h("div", {class: "stats"},
      h("div", {class: "stat", id: "storage-use"}, h("div", {class: "stat-label"}, "Storage used"),
        h("div", {class: "stat-value"}, bytes(usage.storage_bytes)), h("div", {class: "stat-detail"}, meter(usage.storage_bytes, usage.quotas.max_storage_bytes, bytes))),
      h("div", {class: "stat"}, h("div", {class: "stat-label"}, "Projects"), h("div", {class: "stat-value"}, String(usage.projects)),
        h("div", {class: "stat-detail"}, meter(usage.projects, usage.quotas.max_projects, String))),
      h("div", {class: "stat"}, h("div", {class: "stat-label"}, "Snapshots"), h("div", {class: "stat-value"}, String(usage.snapshots)),
        h("div", {class: "stat-detail"}, `${bytes(usage.snapshot_logical_bytes)} logical, ${bytes(usage.project_stored_bytes)} stored`)),
      h("div", {class: "stat"}, h("div", {class: "stat-label"}, "Analysis results"), h("div", {class: "stat-value"}, String(usage.analysis_results)),
        h("div", {class: "stat-detail"}, `${bytes(usage.analysis_payload_bytes)} of payloads`))),
    h("h2", {}, "Projects"), search,
    table([
      ["Name", (p) => h("a", {href: ctx.link(`/ui/projects/${p.id}`)}, p.name)],
      ["Description", (p) => p.description],
      ["Labels", (p) => Object.entries(p.labels).map(([k, v]) => h("span", {class: "label"}, `${k}=${v}`))],
      ["Updated", (p) => time(p.updated_at)],
    ], page.items, {caption: "Projects by name", empty: "No projects yet: upload a codebase (POST /api/storage/upload) or use `ate projects import`.",
      rowAttrs: (p) => ({"data-project": p.name})}),
    h("nav", {class: "pager", "aria-label": "Pages of projects"}, next)));
  return null;
}

async function project(main, ctx, id) {
  const tenant_id = ctx.session.platform_admin ? ctx.tenant : null;
  const base = `/api/projects/${encodeURIComponent(id)}`;
  const p = await api.get(`${base}${api.qs({tenant_id})}`);
  const [snaps, analyses] = await Promise.all([
    api.get(`${base}/snapshots${api.qs({tenant_id, limit: 50})}`),
    api.get(`${base}/analyses${api.qs({tenant_id, limit: 100})}`)]);
  document.title = `${p.name} · ATE`;
  const latest = p.latest_snapshot;
  replace(main, h("section", {"data-project": p.name},
    h("div", {class: "page-head"}, h("h1", {}, p.name), h("span", {class: "hint"}, p.description)),
    h("dl", {class: "facts"},
      h("dt", {}, "Id"), h("dd", {class: "mono"}, p.id),
      h("dt", {}, "Created"), h("dd", {}, time(p.created_at), ` by ${p.created_by}`),
      latest ? [h("dt", {}, "Newest snapshot"), h("dd", {}, `${latest.label || latest.id.slice(0, 8)}: ${latest.files} files, ${bytes(latest.logical_bytes)}`)] : null),
    h("h2", {}, "Languages"), latest ? languages(latest.languages) : h("p", {class: "empty"}, "No snapshot yet."),
    h("h2", {}, "Snapshots"),
    table([
      ["Label", (s) => s.label || "—"],
      ["Committed", (s) => time(s.committed_at)],
      ["Files", (s) => String(s.files)],
      ["Size", (s) => bytes(s.logical_bytes)],
      ["New bytes stored", (s) => bytes(s.new_bytes)],
      ["Source", (s) => s.source],
    ], snaps.items, {caption: "Newest first", rowAttrs: (s) => ({"data-snapshot": s.label || s.id})}),
    h("h2", {}, "Analysis results"),
    table([
      ["Kind", (a) => a.kind],
      ["Analyzer", (a) => `${a.analyzer} ${a.analyzer_version}`],
      ["Status", (a) => badge(a.status === "succeeded" ? "passing" : a.status === "failed" ? "critical" : "pending", a.status)],
      ["Summary", (a) => h("span", {class: "mono"}, JSON.stringify(a.summary))],
      ["Error", (a) => a.error || ""],
      ["Finished", (a) => time(a.finished_at)],
    ], analyses.items, {caption: "Analyses of this project", empty: "No analysis results yet.", rowAttrs: (a) => ({"data-analysis": a.kind, "data-status": a.status})})));
  return null;
}

/** Code lines per language as horizontal bars (SVG), with the numbers as a table too. */
function languages(langs) {
  const rows = [...langs].sort((a, b) => b.code - a.code);
  if (!rows.length) return h("p", {class: "empty"}, "No source files recognised.");
  const max = Math.max(1, ...rows.map((l) => l.code));
  const W = 520, BAR = 22, GAP = 6, LABEL = 110;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  const height = rows.length * (BAR + GAP);
  for (const [k, v] of Object.entries({class: "bars", viewBox: `0 0 ${W} ${height}`, width: "100%", height, role: "img",
    "aria-label": `Code lines by language: ${rows.map((l) => `${l.language} ${l.code}`).join(", ")}`})) svg.setAttribute(k, v);
  rows.forEach((l, i) => {
    const y = i * (BAR + GAP);
    const w = Math.max(2, ((W - LABEL - 70) * l.code) / max);
    const g = document.createElementNS("http://www.w3.org/2000/svg", "g");
    g.setAttribute("data-language", l.language);
    const text = (x, cls, s) => {
      const t = document.createElementNS("http://www.w3.org/2000/svg", "text");
      t.setAttribute("x", x); t.setAttribute("y", y + BAR * 0.7); t.setAttribute("class", cls); t.textContent = s;
      return t;
    };
    const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    for (const [k, v] of Object.entries({x: LABEL, y, width: w, height: BAR, rx: 3, class: `bar c${i % 6}`})) rect.setAttribute(k, v);
    g.append(text(0, "bar-label", l.language), rect, text(LABEL + w + 6, "bar-value", l.code.toLocaleString()));
    svg.appendChild(g);
  });
  return h("div", {class: "languages"},
    h("figure", {class: "chart"}, h("figcaption", {}, "Code lines by language (newest snapshot)"), svg),
    table([
      ["Language", (l) => l.language], ["Files", (l) => String(l.files)], ["Code", (l) => l.code.toLocaleString()],
      ["Comments", (l) => l.comments.toLocaleString()], ["Blank", (l) => l.blanks.toLocaleString()], ["Bytes", (l) => bytes(l.bytes)],
    ], rows, {caption: "Languages"}));
}
