// The dashboard's shell: signs in, draws the navigation and the tenant switch, and routes
// addresses (`/`, `/ui/services`, `/ui/tenants/<id>`, …) to pages without reloading. A page
// is a module exporting `render(main, ctx)`, which may return a function that stops what it
// started (live streams, timers) when the page is left.

import * as api from "./api.js";
import {h, replace, toast} from "./dom.js";
import * as alerts from "./pages/alerts.js";
import * as audit from "./pages/audit.js";
import * as historyPage from "./pages/history.js";
import * as login from "./pages/login.js";
import * as overview from "./pages/overview.js";
import * as projects from "./pages/projects.js";
import * as services from "./pages/services.js";
import * as tenants from "./pages/tenants.js";
import * as workflows from "./pages/workflows.js";

/** Pages: address pattern, title, module, shown in the navigation, who may see it. */
const PAGES = [
  {path: /^\/$/, nav: "/", title: "Overview", page: overview},
  {path: /^\/ui\/services\/?$/, nav: "/ui/services", title: "Services", page: services},
  {path: /^\/ui\/workflows\/?$/, nav: "/ui/workflows", title: "Workflows", page: workflows},
  {path: /^\/ui\/workflows\/([^/]+)$/, nav: "/ui/workflows", title: "Workflow run", page: workflows},
  {path: /^\/ui\/projects\/?$/, nav: "/ui/projects", title: "Projects & storage", page: projects},
  {path: /^\/ui\/projects\/([^/]+)$/, nav: "/ui/projects", title: "Project", page: projects},
  {path: /^\/ui\/history\/?$/, nav: "/ui/history", title: "History & reports", page: historyPage},
  {path: /^\/ui\/report\/?$/, nav: "/ui/history", title: "Report", page: {render: historyPage.report}},
  {path: /^\/ui\/alerts\/?$/, nav: "/ui/alerts", title: "Alerts", page: alerts, admin: true},
  {path: /^\/ui\/audit\/?$/, nav: "/ui/audit", title: "Audit log", page: audit},
  {path: /^\/ui\/tenants\/?$/, nav: "/ui/tenants", title: "Tenants", page: tenants, admin: true},
  {path: /^\/ui\/tenants\/([^/]+)$/, title: "Tenant", page: tenants},
  // A tenant's administrators reach their own tenant's page (users, quotas) from here.
  {path: /^\/ui\/organization\/?$/, nav: "/ui/organization", title: "Organization", page: {render: (m, c) => tenants.render(m, {...c, params: [c.session.tenant_id]})}, tenantOnly: true},
];

const main = document.getElementById("main");
let stop = null;

/** What every page gets: the session, the tenant being looked at, navigation. */
function context(params) {
  const s = api.currentSession();
  const url = new URL(location.href);
  // A platform administrator picks a tenant (or every tenant); others see their own.
  const tenant = s?.platform_admin ? url.searchParams.get("tenant") || null : s?.tenant_id;
  return {session: s, tenant, params, navigate, link: (path) => linkWithTenant(path)};
}

function linkWithTenant(path) {
  const t = new URL(location.href).searchParams.get("tenant");
  if (!t || !api.currentSession()?.platform_admin) return path;
  const u = new URL(path, location.origin);
  u.searchParams.set("tenant", t);
  return u.pathname + u.search;
}

export function navigate(path, {replace: rep = false} = {}) {
  if (rep) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  route();
}

async function route() {
  if (stop) { try { stop(); } catch { /* a page's cleanup must not block the next */ } stop = null; }
  const path = location.pathname;
  if (path === "/login") {
    document.getElementById("top").hidden = true;
    document.title = "Sign in · ATE";
    stop = login.render(main, {onSignedIn: afterSignIn}) || null;
    return;
  }
  if (!api.currentSession() && !(await api.loadSession())) {
    const next = path === "/" ? "" : `?next=${encodeURIComponent(path + location.search)}`;
    history.replaceState(null, "", `/login${next}`);
    return route();
  }
  drawChrome();
  const s = api.currentSession();
  const match = PAGES.map((p) => ({p, m: path.match(p.path)})).find((x) => x.m);
  if (!match || (match.p.admin && !s.platform_admin)) {
    document.title = "Not found · ATE";
    replace(main, notFound());
    return;
  }
  document.title = `${match.p.title} · ATE`;
  markCurrent(match.p.nav);
  replace(main, h("p", {class: "loading"}, "Loading…"));
  try {
    stop = (await match.p.page.render(main, context(match.m.slice(1)))) || null;
  } catch (e) {
    replace(main, errorView(e));
  }
  main.focus({preventScroll: true});
}

/** The "not found" page (also for another tenant's address: it reveals nothing). */
export function notFound(what = "page") {
  return h("section", {class: "not-found"},
    h("h1", {}, "Not found"),
    h("p", {}, `This ${what} does not exist, or you may not see it.`),
    h("p", {}, h("a", {href: "/"}, "Back to the overview")));
}

/** An error as a page: `404` is "not found"; others say what the API said. */
export function errorView(e) {
  if (e instanceof api.ApiError && e.status === 404) return notFound(e.problem?.detail?.replace(/ not found$/, "") || "page");
  return h("section", {class: "error", role: "alert"},
    h("h1", {}, "Something went wrong"),
    h("p", {}, e.message || String(e)));
}

function drawChrome() {
  const s = api.currentSession();
  const top = document.getElementById("top");
  top.hidden = false;
  const nav = document.getElementById("nav");
  if (!nav.childElementCount || nav.dataset.admin !== String(s.platform_admin)) {
    nav.dataset.admin = String(s.platform_admin);
    const listed = PAGES.filter((p, i) => p.nav && (!p.admin || s.platform_admin) && !(p.tenantOnly && s.platform_admin) && PAGES.findIndex((q) => q.nav === p.nav) === i);
    replace(nav, h("ul", {}, listed
      .map((p) => h("li", {}, h("a", {href: p.nav, "data-nav": p.nav}, p.title)))));
  }
  replace(document.getElementById("who"),
    s.platform_admin ? "Platform administrator" : `Tenant ${s.roles.join(", ") || "member"}`);
  const sw = document.getElementById("tenant-switch");
  sw.hidden = !s.platform_admin;
  if (s.platform_admin && !sw.dataset.loaded) {
    sw.dataset.loaded = "1";
    loadTenants();
  }
}

async function loadTenants() {
  const select = document.getElementById("tenant-select");
  try {
    const page = await api.get("/api/tenants?limit=1000");
    const current = new URL(location.href).searchParams.get("tenant") || "";
    replace(select, h("option", {value: ""}, "All tenants"),
      page.items.map((t) => h("option", {value: t.id, selected: t.id === current}, `${t.name} (${t.slug})`)));
  } catch (e) {
    toast(`Cannot list tenants: ${e.message}`, "error");
  }
}

function markCurrent(nav) {
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.nav === nav) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  // Links keep the platform administrator's tenant choice.
  for (const a of document.querySelectorAll("#nav a, a.brand")) {
    const base = a.dataset.nav || "/";
    a.setAttribute("href", linkWithTenant(base));
  }
}

function afterSignIn() {
  const next = new URL(location.href).searchParams.get("next");
  // Only a path of this origin: never an address elsewhere.
  const safe = next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
  navigate(safe, {replace: true});
}

document.addEventListener("click", (ev) => {
  const a = ev.target.closest?.("a[href]");
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || a.target) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/") || url.pathname.startsWith("/assets/") || a.hasAttribute("download")) return;
  ev.preventDefault();
  document.getElementById("nav").classList.remove("open");
  document.getElementById("menu-toggle").setAttribute("aria-expanded", "false");
  navigate(url.pathname + url.search);
});

window.addEventListener("popstate", route);

document.getElementById("sign-out").addEventListener("click", async () => {
  try { await api.signOut(); } catch (e) { toast(`Sign-out failed: ${e.message}`, "error"); }
  navigate("/login", {replace: true});
});

document.getElementById("tenant-select").addEventListener("change", (ev) => {
  const u = new URL(location.href);
  if (ev.target.value) u.searchParams.set("tenant", ev.target.value);
  else u.searchParams.delete("tenant");
  navigate(u.pathname + u.search);
});

document.getElementById("menu-toggle").addEventListener("click", (ev) => {
  const nav = document.getElementById("nav");
  const open = nav.classList.toggle("open");
  ev.currentTarget.setAttribute("aria-expanded", String(open));
});

api.sessionEnded.addEventListener("ended", () => {
  toast("Your session has ended; sign in again.", "error");
  const next = encodeURIComponent(location.pathname + location.search);
  navigate(`/login?next=${next}`, {replace: true});
});

route();
