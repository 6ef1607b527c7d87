// Tenants and users. Platform administrators: every tenant, create, suspend and reactivate,
// quotas. A tenant's page (its own administrators see theirs; any other tenant's address is
// "not found", as the API answers): usage against quota, users with roles, disable,
// enable and unlock, and new users.

import * as api from "../api.js";
import {badge, bytes, h, replace, table, time, toast} from "../dom.js";
import {meter} from "./overview.js";

const ROLES = ["user", "admin"];

export async function render(main, ctx) {
  const [id] = ctx.params;
  if (id) return detail(main, ctx, decodeURIComponent(id));
  const list = h("div", {});
  const load = async () => {
    const page = await api.get("/api/tenants?limit=1000");
    replace(list, table([
      ["Name", (t) => h("a", {href: `/ui/tenants/${t.id}`}, t.name)],
      ["Slug", (t) => h("span", {class: "mono"}, t.slug)],
      ["Status", (t) => badge(t.status === "active" ? "passing" : "critical", t.status)],
      ["Created", (t) => time(t.created_at)],
    ], page.items, {caption: "Every tenant", rowAttrs: (t) => ({"data-tenant": t.slug})}));
  };
  const error = h("p", {class: "form-error", id: "tenant-error", role: "alert", hidden: true});
  const form = h("form", {class: "stack", id: "new-tenant", novalidate: true},
    h("div", {class: "form-grid"},
      h("label", {}, "Slug", h("input", {name: "slug", required: true, placeholder: "acme"})),
      h("label", {}, "Name", h("input", {name: "name", required: true, placeholder: "Acme Inc."})),
      quotaInputs({})),
    error, h("button", {type: "submit", class: "primary"}, "Create tenant"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    const data = new FormData(form);
    try {
      const t = await api.post("/api/tenants", {slug: String(data.get("slug")).trim(), name: String(data.get("name")).trim(), quotas: quotas(data)});
      toast(`Tenant ${t.slug} created`);
      form.reset();
      await load();
    } catch (e) {
      error.hidden = false;
      error.textContent = e.message;
    }
  });
  replace(main, h("section", {},
    h("div", {class: "page-head"}, h("h1", {}, "Tenants")),
    list, h("details", {class: "card"}, h("summary", {}, "New tenant"), form)));
  await load();
  return null;
}

function quotaInputs(q) {
  const field = (name, label) => h("label", {}, label, h("input", {name, type: "number", min: 0, value: q[name] ?? "", placeholder: "no limit"}));
  return [field("max_storage_bytes", "Storage quota (bytes)"), field("max_objects", "Objects quota"),
    field("max_users", "Users quota"), field("max_projects", "Projects quota")];
}

function quotas(data) {
  const out = {};
  for (const k of ["max_storage_bytes", "max_objects", "max_users", "max_projects"]) {
    const v = String(data.get(k) ?? "").trim();
    out[k] = v === "" ? null : Number(v);
  }
  return out;
}

async function detail(main, ctx, id) {
  const admin = ctx.session.platform_admin;
  const base = `/api/tenants/${encodeURIComponent(id)}`;
  const head = h("div", {class: "page-head"});
  const facts = h("dl", {class: "facts"});
  const usage = h("div", {});
  const quotaHolder = h("div", {});
  const users = h("div", {id: "users"});
  const canManage = admin || ctx.session.permissions.includes("users:manage");
  replace(main, h("section", {"data-tenant-id": id},
    head, facts, h("h2", {}, "Usage against quota"), usage, quotaHolder,
    h("h2", {}, "Users"), users, canManage ? newUserForm(id, () => loadUsers()) : null,
    h("p", {}, h("a", {href: ctx.link(`/ui/audit${admin ? `?tenant=${id}` : ""}`)}, "Audit log of this tenant"))));

  const load = async () => {
    const [t, u] = await Promise.all([api.get(base), api.get(`${base}/usage`)]);
    document.title = `${t.name} · ATE`;
    main.querySelector("section").dataset.tenant = t.slug;
    const act = (label, cls, fn) => h("button", {type: "button", class: cls, onclick: async (ev) => {
      const button = ev.currentTarget;
      button.disabled = true;
      try { await fn(); await load(); } catch (e) { toast(`${label}: ${e.message}`, "error"); button.disabled = false; }
    }}, label);
    replace(head, h("h1", {}, t.name), badge(t.status === "active" ? "passing" : "critical", t.status),
      admin && t.status === "active" && t.slug !== "operators" ? act("Suspend", "danger", async () => {
        const reason = prompt(`Why suspend ${t.name}? Its users can no longer act.`);
        if (!reason) throw new Error("a reason is needed");
        await api.post(`${base}/suspend`, {reason});
      }) : null,
      admin && t.status === "suspended" ? act("Reactivate", "secondary", () => api.post(`${base}/reactivate`, {})) : null);
    replace(facts,
      h("dt", {}, "Slug"), h("dd", {class: "mono"}, t.slug),
      h("dt", {}, "Id"), h("dd", {class: "mono"}, t.id),
      h("dt", {}, "Created"), h("dd", {}, time(t.created_at)),
      t.status_reason ? [h("dt", {}, "Reason"), h("dd", {}, t.status_reason)] : null);
    replace(usage, table([["What", (r) => r[0]], ["Used", (r) => r[1]]], [
      ["Storage", meter(u.storage_bytes, u.quotas.max_storage_bytes, bytes)],
      ["Objects", meter(u.objects, u.quotas.max_objects, String)],
      ["Projects", meter(u.projects, u.quotas.max_projects, String)],
      ["Users", u.users === null ? "—" : meter(u.users, u.quotas.max_users, String)],
      ["Snapshots", `${u.snapshots} (${bytes(u.snapshot_logical_bytes)} logical)`],
    ], {caption: "Usage"}));
    if (admin) replace(quotaHolder, quotaForm(t, base, load));
  };

  const loadUsers = async () => {
    const page = await api.get(`${base}/users?limit=1000`);
    const now = Date.now();
    replace(users, table([
      ["Email", (u) => u.email],
      ["Name", (u) => u.name],
      ["Roles", (u) => (canManage ? roleSelect(u) : u.roles.join(", "))],
      ["Status", (u) => {
        const locked = u.locked_until && new Date(u.locked_until) > now;
        return h("span", {}, badge(u.status === "active" && !locked ? "passing" : "critical", locked ? "locked" : u.status),
          locked ? h("span", {class: "muted"}, " until ", time(u.locked_until)) : null);
      }],
      ["Created", (u) => time(u.created_at)],
      ["", (u) => (canManage ? userActions(u, now, loadUsers) : null)],
    ], page.items, {caption: "Users of this tenant", rowAttrs: (u) => ({"data-user": u.email, "data-status": u.status})}));
  };
  await Promise.all([load(), loadUsers()]);
  return null;
}

function roleSelect(u) {
  const select = h("select", {"aria-label": `Role of ${u.email}`}, ROLES.map((r) => h("option", {value: r, selected: u.roles.includes(r) && (r === "admin" || !u.roles.includes("admin"))}, r)));
  select.addEventListener("change", async () => {
    try {
      await api.put(`/api/users/${u.id}`, {roles: [select.value], expected_revision: u.revision});
      toast(`${u.email} is now ${select.value}`);
    } catch (e) {
      toast(e.message, "error");
    }
  });
  return select;
}

function userActions(u, now, reload) {
  const locked = u.locked_until && new Date(u.locked_until) > now;
  const act = (label, cls, body) => h("button", {type: "button", class: cls, onclick: async (ev) => {
    const button = ev.currentTarget;
    button.disabled = true;
    try { await api.put(`/api/users/${u.id}`, body); toast(`${u.email}: ${label.toLowerCase()}d`); await reload(); } catch (e) { toast(e.message, "error"); button.disabled = false; }
  }}, label);
  return h("span", {class: "actions"},
    u.status === "active" ? act("Disable", "danger", {status: "disabled"}) : act("Enable", "secondary", {status: "active"}),
    locked && u.status === "active" ? act("Unlock", "secondary", {status: "active"}) : null);
}

function newUserForm(tenant, reload) {
  const error = h("p", {class: "form-error", id: "user-error", role: "alert", hidden: true});
  const form = h("form", {class: "stack", id: "new-user", novalidate: true},
    h("div", {class: "form-grid"},
      h("label", {}, "Email", h("input", {name: "email", type: "email", required: true})),
      h("label", {}, "Name", h("input", {name: "name"})),
      h("label", {}, "Role", h("select", {name: "role"}, ROLES.map((r) => h("option", {value: r}, r)))),
      h("label", {}, "Initial password", h("input", {name: "password", type: "password", autocomplete: "new-password"}))),
    error, h("button", {type: "submit", class: "primary"}, "Create user"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    const d = new FormData(form);
    const password = String(d.get("password") || "");
    try {
      await api.post("/api/users", {tenant_id: tenant, email: String(d.get("email")).trim(), name: String(d.get("name") || ""),
        roles: [d.get("role")], password: password || null});
      toast("User created");
      form.reset();
      await reload();
    } catch (e) {
      error.hidden = false;
      error.textContent = e.message;
    }
  });
  return h("details", {class: "card"}, h("summary", {}, "New user"), form);
}

function quotaForm(t, base, reload) {
  const error = h("p", {class: "form-error", id: "quota-error", role: "alert", hidden: true});
  const form = h("form", {class: "stack", id: "quotas", novalidate: true},
    h("div", {class: "form-grid"}, quotaInputs(t.quotas)), error,
    h("button", {type: "submit", class: "primary"}, "Save quotas"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    try {
      await api.put(base, {quotas: quotas(new FormData(form)), expected_revision: t.revision});
      toast("Quotas saved");
      await reload();
    } catch (e) {
      error.hidden = false;
      error.textContent = e.message;
    }
  });
  return h("details", {class: "card"}, h("summary", {}, "Quotas"), form);
}
