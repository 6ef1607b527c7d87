// Tenants: the list (platform administrators) and one tenant's page (its administrators
// see their own; any other tenant's address is "not found", as the API answers).

import * as api from "../api.js";
import {badge, bytes, h, replace, table, time} from "../dom.js";
import {meter} from "./overview.js";

export async function render(main, ctx) {
  const [id] = ctx.params;
  if (id) return detail(main, ctx, decodeURIComponent(id));
  const page = await api.get("/api/tenants?limit=1000");
  replace(main, h("section", {},
    h("div", {class: "page-head"}, h("h1", {}, "Tenants")),
    table([
      ["Name", (t) => h("a", {href: `/ui/tenants/${t.id}`}, t.name)],
      ["Slug", (t) => h("span", {class: "mono"}, t.slug)],
      ["Status", (t) => badge(t.status === "active" ? "passing" : "critical", t.status)],
      ["Created", (t) => time(t.created_at)],
    ], page.items, {caption: "Every tenant", rowAttrs: (t) => ({"data-tenant": t.slug})})));
  return null;
}

async function detail(main, ctx, id) {
  const [t, u] = await Promise.all([api.get(`/api/tenants/${encodeURIComponent(id)}`), api.get(`/api/tenants/${encodeURIComponent(id)}/usage`)]);
  document.title = `${t.name} · ATE`;
  replace(main, h("section", {"data-tenant": t.slug},
    h("div", {class: "page-head"}, h("h1", {}, t.name),
      badge(t.status === "active" ? "passing" : "critical", t.status)),
    h("dl", {class: "facts"},
      h("dt", {}, "Slug"), h("dd", {class: "mono"}, t.slug),
      h("dt", {}, "Id"), h("dd", {class: "mono"}, t.id),
      h("dt", {}, "Created"), h("dd", {}, time(t.created_at)),
      t.status_reason ? [h("dt", {}, "Reason"), h("dd", {}, t.status_reason)] : null),
    h("h2", {}, "Usage against quota"),
    table([
      ["What", (r) => r[0]],
      ["Used", (r) => r[1]],
    ], [
      ["Storage", meter(u.storage_bytes, u.quotas.max_storage_bytes, bytes)],
      ["Objects", meter(u.objects, u.quotas.max_objects, String)],
      ["Projects", meter(u.projects, u.quotas.max_projects, String)],
      ["Users", u.users === null ? "—" : meter(u.users, u.quotas.max_users, String)],
      ["Snapshots", `${u.snapshots} (${bytes(u.snapshot_logical_bytes)} logical)`],
    ], {caption: "Usage"})));
  return null;
}
