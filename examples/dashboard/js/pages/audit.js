// The audit log of a tenant: filtered by action, actor and time, paginated, with a
// "verify chain" action that checks every event's hash link and says where it breaks.

import * as api from "../api.js";
import {badge, h, replace, table, time} from "../dom.js";
import {tenantChooser} from "./common.js";

export async function render(main, ctx) {
  const tenant = ctx.tenant;
  if (!tenant) return tenantChooser(main, ctx, "Audit log", "/ui/audit");
  const url = new URL(location.href);
  const f = Object.fromEntries(["action", "actor", "since", "until", "cursor"].map((k) => [k, url.searchParams.get(k) || ""]));
  const toIso = (local) => (local ? new Date(local).toISOString() : null);
  const base = `/api/tenants/${encodeURIComponent(tenant)}/audit-logs`;
  const page = await api.get(`${base}${api.qs({action: f.action, actor: f.actor, since: toIso(f.since), until: toIso(f.until), cursor: f.cursor, limit: 50})}`);
  const filters = h("form", {class: "filters", role: "search", "aria-label": "Filter events"},
    h("label", {}, "Action", h("input", {name: "action", value: f.action, placeholder: "authn_login_success"})),
    h("label", {}, "Actor", h("input", {name: "actor", value: f.actor, placeholder: "user:…"})),
    h("label", {}, "From", h("input", {name: "since", type: "datetime-local", value: f.since})),
    h("label", {}, "until", h("input", {name: "until", type: "datetime-local", value: f.until})),
    h("button", {type: "submit", class: "primary"}, "Filter"));
  filters.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const next = new URL(location.pathname, location.origin);
    if (url.searchParams.get("tenant")) next.searchParams.set("tenant", url.searchParams.get("tenant"));
    for (const [k, v] of new FormData(filters)) if (v) next.searchParams.set(k, v);
    ctx.navigate(next.pathname + next.search);
  });
  const result = h("div", {id: "chain-result", role: "status"});
  const verify = h("button", {type: "button", id: "verify-chain", onclick: async () => {
    verify.disabled = true;
    replace(result, "Verifying…");
    try {
      const r = await api.get(`${base}/verify`);
      replace(result, r.intact
        ? h("p", {class: "ok"}, badge("passing", "intact"), ` ${r.events_checked} events checked, head at #${r.head_seq}.`)
        : h("p", {class: "form-error"}, badge("critical", "broken"), ` at event #${r.first_break_seq}: ${r.first_break}`));
    } catch (e) {
      replace(result, h("p", {class: "form-error"}, e.message));
    } finally {
      verify.disabled = false;
    }
  }}, "Verify chain");
  const pageLink = (cursor, label) => {
    const u = new URL(location.href);
    if (cursor) u.searchParams.set("cursor", cursor); else u.searchParams.delete("cursor");
    return h("a", {href: u.pathname + u.search, class: "button-link"}, label);
  };
  replace(main, h("section", {},
    h("div", {class: "page-head"}, h("h1", {}, "Audit log"), verify), result, filters,
    table([
      ["#", (e) => String(e.seq)],
      ["At", (e) => time(e.occurred_at)],
      ["Action", (e) => h("span", {class: "mono"}, e.action)],
      ["Outcome", (e) => badge(e.outcome === "success" ? "passing" : "critical", e.outcome)],
      ["Actor", (e) => h("span", {class: "mono"}, e.actor)],
      ["Target", (e) => (e.target ? h("span", {class: "mono"}, e.target) : "—")],
      ["Client", (e) => e.client_addr || "—"],
    ], page.items, {caption: "Events, as ordered by the log", empty: "No events match.", rowAttrs: (e) => ({"data-action": e.action})}),
    h("nav", {class: "pager", "aria-label": "Pages of events"},
      f.cursor ? pageLink(null, "First page") : null,
      page.next_cursor ? pageLink(page.next_cursor, "Next page") : null)));
  return null;
}
