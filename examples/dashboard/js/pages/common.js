// Pieces several pages share.

import * as api from "../api.js";
import {h, replace, table} from "../dom.js";

/**
 * For a platform administrator who has not picked a tenant on a page that shows one
 * tenant's data: the tenants to pick from, each a link to this page for it.
 */
export async function tenantChooser(main, ctx, title, path) {
  const page = await api.get("/api/tenants?limit=1000");
  replace(main, h("section", {},
    h("div", {class: "page-head"}, h("h1", {}, title)),
    h("p", {class: "hint"}, "Pick a tenant (or use the tenant switch above)."),
    table([
      ["Tenant", (t) => h("a", {href: `${path}?tenant=${t.id}`}, t.name)],
      ["Slug", (t) => h("span", {class: "mono"}, t.slug)],
    ], page.items, {caption: "Tenants"})));
  return null;
}
