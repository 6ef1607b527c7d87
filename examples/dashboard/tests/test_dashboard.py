"""The dashboard in a real Chromium against a real `ate serve` (SQLite, then PostgreSQL)."""

from __future__ import annotations

import re
import time

from conftest import ADMIN, PASSWORD

from playwright.sync_api import expect


def raw_status(server, token: str, path: str):
    """A request's status and body, whatever the status."""
    import urllib.error
    import urllib.request
    req = urllib.request.Request(server.base + path, headers={"authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_a_tenant_admin_sees_only_its_tenant(watched, server, axe_source):
    page = watched.page
    acme, globex = server.tenants["acme"], server.tenants["globex"]
    # Not signed in: any page leads to the sign-in page, which remembers where to go.
    watched.goto(f"/ui/tenants/{acme['id']}")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    # A wrong password says so, without saying which part was wrong.
    page.get_by_label("Organization").fill("acme")
    page.get_by_label("Email").fill(acme["email"])
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-error")).to_contain_text("wrong")
    watched.shot("login-failed")
    watched.axe(axe_source, "sign-in page")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    # Back where the address pointed: the tenant's own page.
    expect(page.get_by_role("heading", name="Acme Inc.")).to_be_visible()
    expect(page).to_have_url(re.compile(f"/ui/tenants/{acme['id']}$"))
    # The session is in HttpOnly cookies: scripts on the page cannot read any token.
    assert page.evaluate("document.cookie") == ""
    # No tenants list for a tenant admin, and another tenant's page is "not found".
    expect(page.get_by_role("link", name="Tenants")).to_have_count(0)
    watched.goto(f"/ui/tenants/{globex['id']}")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_text("Globex")).to_have_count(0)
    watched.goto("/ui/tenants")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()

    # The overview covers acme only; the services page shows acme's billing, not globex's.
    watched.goto("/")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator("#storage")).to_contain_text("Acme Inc.")
    expect(page.locator("#storage")).not_to_contain_text("Globex")
    watched.goto("/ui/services")
    expect(page.locator('[data-instance="billing/billing-1"]')).to_be_visible()
    expect(page.locator('[data-instance="billing/globex-billing-1"]')).to_have_count(0)

    # Signing out ends the session on the server too.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    watched.goto("/ui/services")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_a_platform_admin_sees_every_tenant_and_can_switch(watched, server, axe_source):
    page = watched.page
    acme, globex = server.tenants["acme"], server.tenants["globex"]
    watched.sign_in(**ADMIN)
    page.get_by_role("link", name="Tenants").click()
    expect(page.locator('[data-tenant="acme"]')).to_be_visible()
    expect(page.locator('[data-tenant="globex"]')).to_be_visible()
    watched.shot("tenants")
    watched.axe(axe_source, "tenants page")
    watched.goto(f"/ui/tenants/{globex['id']}")
    expect(page.get_by_role("heading", name="Globex Inc.")).to_be_visible()
    watched.shot("tenant")
    # Every tenant's instances by default; switching to acme narrows the view.
    watched.goto("/ui/services")
    expect(page.locator('[data-instance="billing/globex-billing-1"]')).to_be_visible()
    page.get_by_label("Tenant").select_option(acme["id"])
    expect(page).to_have_url(re.compile(f"tenant={acme['id']}"))
    expect(page.locator('[data-instance="billing/billing-1"]')).to_be_visible()
    expect(page.locator('[data-instance="billing/globex-billing-1"]')).to_have_count(0)
    # Drain and deregister from the page (platform instances, made for this).
    for i in ("spare-1", "spare-2"):
        server.admin.call("POST", "/api/services", {"service": "spare", "id": i, "endpoint": "http://127.0.0.1:9",
                                                    "check": {"kind": "ttl", "ttl_secs": 3600}})
    page.on("dialog", lambda d: d.accept())
    spare1, spare2 = (page.locator(f'[data-instance="spare/{i}"]') for i in ("spare-1", "spare-2"))
    expect(spare1).to_be_visible()
    spare1.get_by_role("button", name="Drain").click()
    # Draining, then (nothing in flight) deregistered: it leaves the page by itself.
    expect(spare1).to_have_count(0, timeout=15000)
    spare2.get_by_role("button", name="Deregister").click()
    expect(spare2).to_have_count(0)
    expect(page.locator('[data-service="spare"]')).to_have_count(0)
    # The choice follows the navigation.
    page.get_by_role("link", name="Overview").click()
    expect(page).to_have_url(re.compile(f"/\\?tenant={acme['id']}$"))
    expect(page.locator("#storage")).not_to_contain_text("Globex")
    expect(page.locator("#services-up")).to_contain_text("1 up")
    watched.shot("overview")
    watched.axe(axe_source, "overview")


def test_a_killed_upstream_turns_critical_live_and_recovers(watched, server, axe_source):
    page = watched.page
    acme = server.tenants["acme"]
    watched.sign_in("acme", acme["email"], PASSWORD)
    watched.goto("/ui/services")
    row = page.locator('[data-instance="billing/billing-1"]')
    expect(row).to_have_attribute("data-status", "passing")
    expect(page.locator("#live-state")).to_have_text("live")
    # A marker that a reload would lose.
    page.evaluate("window.__still_here = true")
    server.upstream.kill()
    started = time.monotonic()
    # The check runs every second: critical well within a few intervals, without a reload.
    expect(row).to_have_attribute("data-status", "critical", timeout=10000)
    turned = time.monotonic() - started
    assert page.evaluate("window.__still_here === true"), "the page was reloaded"
    expect(row).to_contain_text("refused")
    watched.shot("services-critical")
    watched.axe(axe_source, "services page")
    server.upstream.start()
    expect(row).to_have_attribute("data-status", "passing", timeout=10000)
    assert page.evaluate("window.__still_here === true"), "the page was reloaded"
    # Maintenance from the page: out of rotation with a reason (the gateway stops routing to
    # it), then back.
    page.once("dialog", lambda d: d.accept("kernel upgrade"))
    row.get_by_role("button", name="Maintenance").click()
    expect(row).to_contain_text("maintenance: kernel upgrade")
    status, _ = raw_status(server, acme["api"].token, "/svc/billing/ping")
    assert status == 503, f"the gateway still routed to an instance in maintenance: {status}"
    watched.shot("services-maintenance")
    row.get_by_role("button", name="End maintenance").click()
    expect(row).not_to_contain_text("maintenance:")
    expect(row.get_by_role("button", name="Maintenance")).to_be_visible()
    assert acme["api"].call("GET", "/svc/billing/ping") == "ok"
    watched.shot("services")
    print(f"critical shown {turned:.1f} s after the kill")


def test_pages_fit_a_phone_width(watched, server, axe_source):
    page = watched.page
    page.set_viewport_size({"width": 390, "height": 844})
    acme = server.tenants["acme"]
    watched.sign_in("acme", acme["email"], PASSWORD)
    run = acme["api"].call("POST", "/api/orchestration/workflows", {"dag": {"nodes": [
        {"id": "a", "step": "echo"}, {"id": "b", "step": "echo", "depends_on": ["a"]},
        {"id": "c", "step": "echo", "depends_on": ["a"]}, {"id": "d", "step": "echo", "depends_on": ["b", "c"]}]}})
    project = acme["api"].call("POST", "/api/projects", {"name": "phone-sized"})
    for path, name, ready in [("/", "overview", "#services-up"),
                              ("/ui/services", "services", '[data-instance="billing/billing-1"]'),
                              ("/ui/workflows", "workflows", "main form.filters"),
                              (f"/ui/workflows/{run['id']}", "workflow", "svg.dag"),
                              ("/ui/projects", "projects", "#storage-use"),
                              (f"/ui/projects/{project['id']}", "project", "main dl"),
                              ("/ui/organization", "organization", "#users"),
                              ("/ui/audit", "audit", "#verify-chain"),
                              ("/ui/history?range=1h", "history", "#history-charts"),
                              ("/ui/report?range=1h", "report", ".report-tenant"),
                              (f"/ui/tenants/{acme['id']}", "tenant", "main dl")]:
        watched.goto(path)
        page.locator(ready).wait_for()
        # Nothing wider than the screen (tables scroll inside their own box).
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} is {overflow}px wider than a phone screen"
        watched.shot(f"phone-{name}")
    # The menu opens and closes with its button.
    page.get_by_role("button", name="Menu").click()
    expect(page.get_by_role("link", name="Services")).to_be_visible()
    watched.axe(axe_source, "phone width")


def test_workflows_run_live_and_are_cancelled_signalled_and_retried_from_the_page(watched, server, axe_source):
    page = watched.page
    acme, globex = server.tenants["acme"], server.tenants["globex"]
    watched.sign_in("acme", acme["email"], PASSWORD)
    page.get_by_role("link", name="Workflows").click()
    expect(page.get_by_role("heading", name="Workflows")).to_be_visible()
    page.get_by_text("Submit a run").click()
    form = page.locator("#submit-run")
    # Bad input: not JSON, then a definition the API refuses; the form says what is wrong.
    dag = form.get_by_label("Definition (DAG, JSON)")
    dag.fill("{not json")
    form.get_by_role("button", name="Submit run").click()
    expect(page.locator("#submit-error")).to_contain_text("Not valid JSON")
    dag.fill('{"nodes": [{"id": "a", "step": "no.such.step"}]}')
    form.get_by_role("button", name="Submit run").click()
    expect(page.locator("#submit-error")).to_contain_text("no.such.step")
    form.get_by_label("Labels").fill("oops")
    expect(page.locator("#submit-error")).to_be_visible()
    # The example definition: fetch, then scan and lint in parallel, then report.
    dag.fill('{"nodes": [{"id": "fetch", "step": "delay", "params": {"ms": 1500}},'
             ' {"id": "scan", "step": "delay", "depends_on": ["fetch"], "params": {"ms": 1500}},'
             ' {"id": "lint", "step": "delay", "depends_on": ["fetch"], "params": {"ms": 1000}},'
             ' {"id": "report", "step": "echo", "depends_on": ["scan", "lint"]}]}')
    form.get_by_label("Labels").fill("team:search")
    form.get_by_role("button", name="Submit run").click()
    expect(page).to_have_url(re.compile(r"/ui/workflows/[0-9a-f-]{36}$"))
    run_id = page.url.rsplit("/", 1)[1]
    page.evaluate("window.__still_here = true")
    node = lambda n: page.locator(f'svg.dag g[data-node="{n}"]')
    # Nodes change live: fetch runs while report waits; then everything turns green.
    expect(node("fetch")).to_have_attribute("data-status", "running", timeout=10000)
    expect(node("report")).to_have_attribute("data-status", "blocked")
    watched.shot("workflow-running")
    expect(node("scan")).to_have_attribute("data-status", "running", timeout=10000)
    for n in ("fetch", "scan", "lint", "report"):
        expect(node(n)).to_have_attribute("data-status", "succeeded", timeout=15000)
    expect(page.locator("#live-state")).to_have_text("ended")
    assert page.evaluate("window.__still_here === true"), "the page was reloaded"
    # The steps' logs arrived as they were written.
    expect(page.locator(".logs tbody tr")).to_have_count(3)
    expect(page.locator(".logs")).to_contain_text("sleeping")
    expect(page.locator(".page-head .badge").first).to_have_text("succeeded")
    watched.shot("workflow-succeeded")
    watched.axe(axe_source, "workflow run")

    # A second, long run: cancelled from its page.
    api = acme["api"]
    slow = api.call("POST", "/api/orchestration/workflows", {
        "dag": {"nodes": [{"id": "wait", "step": "delay", "params": {"ms": 60000}}]}, "labels": {"team": "search"}})
    watched.goto(f"/ui/workflows/{slow['id']}")
    expect(node("wait")).to_have_attribute("data-status", "running", timeout=10000)
    page.on("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Cancel run").click()
    expect(page.locator(".page-head .badge").first).to_have_text("cancelled", timeout=45000)
    expect(page.get_by_role("button", name="Retry from failure")).to_have_count(0)

    # A failed run is retried from its failure: the failed node starts over.
    failing = api.call("POST", "/api/orchestration/workflows", {
        "dag": {"nodes": [{"id": "bad", "step": "delay", "params": {"ms": -1}}]}})
    watched.goto(f"/ui/workflows/{failing['id']}")
    expect(page.locator(".page-head .badge").first).to_have_text("failed", timeout=15000)
    expect(page.locator('tr[data-node="bad"]')).to_contain_text("bad_params")
    started = page.locator('tr[data-node="bad"] time').get_attribute("datetime")
    page.get_by_role("button", name="Retry from failure").click()
    expect(page.locator('tr[data-node="bad"] time')).not_to_have_attribute("datetime", started, timeout=15000)
    expect(page.locator(".page-head .badge").first).to_have_text("failed", timeout=15000)

    # A run waiting for a signal gets it from the page.
    gated = api.call("POST", "/api/orchestration/workflows", {
        "dag": {"nodes": [{"id": "approve", "signal": "approval"},
                          {"id": "deploy", "step": "echo", "depends_on": ["approve"]}]}})
    watched.goto(f"/ui/workflows/{gated['id']}")
    expect(node("approve")).to_have_attribute("data-status", "waiting", timeout=10000)
    signal = page.locator("#send-signal")
    signal.get_by_label("Payload (JSON)").fill('{"by": "ops"}')
    signal.get_by_role("button", name="Send signal").click()
    expect(node("deploy")).to_have_attribute("data-status", "succeeded", timeout=15000)

    # The list filters by status and label, and pages.
    watched.goto("/ui/workflows?status=cancelled")
    expect(page.locator(f'tr[data-run="{slow["id"]}"]')).to_be_visible()
    expect(page.locator(f'tr[data-run="{run_id}"]')).to_have_count(0)
    watched.goto("/ui/workflows?label=team:search")
    expect(page.locator("tr[data-run]")).to_have_count(2)
    for _ in range(21):
        api.call("POST", "/api/orchestration/workflows", {"dag": {"nodes": [{"id": "e", "step": "echo"}]}})
    watched.goto("/ui/workflows")
    expect(page.locator("tr[data-run]")).to_have_count(20)
    page.get_by_role("link", name="Next page").click()
    # The second page holds the rest (other tests' runs of acme included).
    total = len(api.call("GET", "/api/orchestration/workflows?limit=1000")["items"])
    assert 25 <= total <= 40, total
    expect(page.locator("tr[data-run]")).to_have_count(total - 20)
    watched.shot("workflows")
    watched.axe(axe_source, "workflows list")

    # Another tenant's run is "not found".
    theirs = globex["api"].call("POST", "/api/orchestration/workflows", {"dag": {"nodes": [{"id": "e", "step": "echo"}]}})
    watched.goto(f"/ui/workflows/{theirs['id']}")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()


def test_alert_rules_are_validated_created_edited_fire_and_are_deleted(watched, server, axe_source):
    page = watched.page
    watched.sign_in(**ADMIN)
    page.get_by_role("link", name="Alerts").click()
    expect(page.get_by_role("heading", name="Alerts")).to_be_visible()
    page.get_by_role("button", name="New rule").click()
    form = page.locator("#rule-form")
    # Required fields first, then an invalid threshold: the form says what is wrong, and where.
    form.get_by_role("button", name="Create rule").click()
    expect(page.locator("#rule-error")).to_contain_text("Id is required")
    form.get_by_label("Id").fill("billing-errors")
    form.get_by_label("Name").fill("Billing errors")
    form.get_by_label("Condition").select_option("error_rate_above")
    form.get_by_label("Service").fill("billing")
    form.get_by_label("Error rate, 0 to 1").fill("1.5")
    form.get_by_role("button", name="Create rule").click()
    expect(page.locator("#rule-error")).to_contain_text("1.5 is outside 0..=1")
    expect(form.get_by_label("Error rate, 0 to 1")).to_have_attribute("aria-invalid", "true")
    form.get_by_label("Window (s, up to 300)").fill("900")
    form.get_by_label("Error rate, 0 to 1").fill("0.05")
    form.get_by_role("button", name="Create rule").click()
    expect(page.locator("#rule-error")).to_contain_text("window")
    watched.shot("alerts-invalid")
    watched.axe(axe_source, "alert form")
    form.get_by_label("Window (s, up to 300)").fill("60")
    form.get_by_role("button", name="Create rule").click()
    expect(page.locator('tr[data-rule="billing-errors"]')).to_contain_text("error rate > 0.05 over 60 s")
    expect(page.locator("#rule-form")).to_have_count(0)
    # Edit: the id stays, the rest changes.
    page.locator('tr[data-rule="billing-errors"]').get_by_role("button", name="Edit").click()
    expect(form.get_by_label("Id")).to_have_attribute("readonly", "")
    form.get_by_label("Name").fill("Billing error rate")
    form.get_by_role("button", name="Save rule").click()
    expect(page.locator('tr[data-rule="billing-errors"]')).to_contain_text("Billing error rate")

    # A rule that breaches at once (no traffic at all) fires, live, and enters the history.
    page.get_by_role("button", name="New rule").click()
    form.get_by_label("Id").fill("billing-quiet")
    form.get_by_label("Name").fill("Billing went quiet")
    form.get_by_label("Severity").select_option("critical")
    form.get_by_label("Condition").select_option("request_rate_below")
    form.get_by_label("Service").fill("billing")
    form.get_by_label("Requests per second").fill("1")
    form.get_by_label("Window (s, up to 300)").fill("10")
    form.get_by_role("button", name="Create rule").click()
    expect(page.locator('tr[data-alert="billing-quiet"]')).to_have_attribute("data-state", "firing", timeout=15000)
    page.reload()
    expect(page.locator("#history")).to_contain_text("Billing went quiet")
    watched.shot("alerts")
    watched.axe(axe_source, "alerts page")
    page.on("dialog", lambda d: d.accept())
    page.locator('tr[data-rule="billing-quiet"]').get_by_role("button", name="Delete").click()
    expect(page.locator('tr[data-rule="billing-quiet"]')).to_have_count(0)
    # The overview counts what fires.
    page.get_by_role("link", name="Overview").click()
    expect(page.locator("#stat-alerts")).to_contain_text("Firing alerts")


def test_tenants_users_quotas_and_the_audit_log(watched, server, axe_source):
    page = watched.page
    page.on("dialog", lambda d: d.accept("billing dispute") if d.type == "prompt" else d.accept())
    watched.sign_in(**ADMIN)
    page.get_by_role("link", name="Tenants").click()
    new = page.locator("#new-tenant")
    page.get_by_text("New tenant").click()
    # A bad slug is refused with the API's reason.
    new.get_by_label("Slug").fill("Not A Slug!")
    new.get_by_label("Name").fill("Initech")
    new.get_by_role("button", name="Create tenant").click()
    expect(page.locator("#tenant-error")).to_contain_text("slug")
    new.get_by_label("Slug").fill("initech")
    new.get_by_label("Storage quota (bytes)").fill("1048576")
    new.get_by_role("button", name="Create tenant").click()
    expect(page.locator('tr[data-tenant="initech"]')).to_be_visible()
    page.locator('tr[data-tenant="initech"]').get_by_role("link").click()
    expect(page.get_by_role("heading", name="Initech")).to_be_visible()
    expect(page.locator("main")).to_contain_text("of 1.0 MiB")
    # Quotas, then a user with a role, then suspend and reactivate.
    page.get_by_text("Quotas", exact=True).click()
    page.locator("#quotas").get_by_label("Projects quota").fill("3")
    page.locator("#quotas").get_by_role("button", name="Save quotas").click()
    expect(page.locator("main")).to_contain_text("0 of 3")
    page.get_by_text("New user").click()
    nu = page.locator("#new-user")
    nu.get_by_label("Email").fill("not-an-email")
    nu.get_by_role("button", name="Create user").click()
    expect(page.locator("#user-error")).to_be_visible()
    nu.get_by_label("Email").fill("peter@initech.example")
    nu.get_by_label("Role").select_option("admin")
    nu.get_by_label("Initial password").fill("a long enough passphrase")
    nu.get_by_role("button", name="Create user").click()
    row = page.locator('tr[data-user="peter@initech.example"]')
    expect(row).to_have_attribute("data-status", "active")
    expect(row.get_by_label("Role of peter@initech.example")).to_have_value("admin")
    row.get_by_role("button", name="Disable").click()
    expect(row).to_have_attribute("data-status", "disabled")
    row.get_by_role("button", name="Enable").click()
    expect(row).to_have_attribute("data-status", "active")
    # Five wrong passwords lock the account; the page says until when, and unlocks it.
    for _ in range(5):
        server.api.call("POST", "/api/auth/login", {"tenant": "initech", "email": "peter@initech.example",
                                                   "password": "wrong"}, expect=(401,))
    page.reload()
    expect(row).to_contain_text("locked")
    expect(row).to_contain_text("until")
    row.get_by_role("button", name="Unlock").click()
    expect(row.get_by_role("button", name="Unlock")).to_have_count(0)
    expect(row).not_to_contain_text("locked")
    server.api.login("initech", "peter@initech.example", "a long enough passphrase")
    page.get_by_role("button", name="Suspend").click()
    expect(page.locator(".page-head .badge")).to_have_text("suspended")
    expect(page.locator("main")).to_contain_text("billing dispute")
    watched.shot("tenant-admin")
    watched.axe(axe_source, "tenant page")
    page.get_by_role("button", name="Reactivate").click()
    expect(page.locator(".page-head .badge")).to_have_text("active")
    # Its audit log recorded all of it, and the chain verifies.
    page.get_by_role("link", name="Audit log of this tenant").click()
    expect(page.locator('tr[data-action="tenant_suspended"]')).to_be_visible()
    expect(page.locator('tr[data-action="user_created"]')).to_be_visible()
    page.get_by_role("button", name="Verify chain").click()
    expect(page.locator("#chain-result")).to_contain_text("intact")
    page.get_by_label("Action").fill("tenant_suspended")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tr[data-action]")).to_have_count(1)
    watched.shot("audit")
    watched.axe(axe_source, "audit page")


def test_a_tenant_admin_manages_its_own_users_and_reads_its_audit_log(watched, server):
    page = watched.page
    acme = server.tenants["acme"]
    watched.sign_in("acme", acme["email"], PASSWORD)
    page.get_by_role("link", name="Organization").click()
    expect(page.get_by_role("heading", name="Acme Inc.")).to_be_visible()
    # No suspend, no quotas for a tenant's own administrator.
    expect(page.get_by_role("button", name="Suspend")).to_have_count(0)
    expect(page.get_by_text("Quotas", exact=True)).to_have_count(0)
    expect(page.locator(f'tr[data-user="{acme["email"]}"]')).to_be_visible()
    page.get_by_role("link", name="Audit log", exact=True).click()
    expect(page.locator('tr[data-action="authn_login_success"]').first).to_be_visible()
    page.get_by_role("button", name="Verify chain").click()
    expect(page.locator("#chain-result")).to_contain_text("intact")


def test_projects_snapshots_languages_and_analyses(watched, server, axe_source):
    from conftest import tar_gz
    page = watched.page
    acme = server.tenants["acme"]
    api = acme["api"]
    rust = b"fn main() {\n    // greet\n    println!(\"hi\");\n}\n"
    up = api.call("POST", "/api/storage/upload?project_name=engine&label=v1", raw=tar_gz({
        "src/main.rs": rust, "src/lib.rs": rust * 3, "tools/run.py": b"print('x')\n", "README.md": b"# engine\n"}))
    api.call("POST", "/api/storage/upload?project_name=engine&label=v2", raw=tar_gz({
        "src/main.rs": rust, "src/lib.rs": rust * 4, "tools/run.py": b"print('x')\n"}))
    project = up["project_id"]
    api.call("POST", "/api/analysis/results", {"project_id": project, "kind": "security", "analyzer": "scanner",
                                               "analyzer_version": "1.2", "status": "succeeded", "summary": {"findings": 0}})
    api.call("POST", "/api/analysis/results", {"project_id": project, "kind": "complexity", "analyzer": "cc",
                                               "analyzer_version": "0.9", "status": "failed", "error": "timed out"})
    watched.sign_in("acme", acme["email"], PASSWORD)
    page.get_by_role("link", name="Projects & storage").click()
    expect(page.locator("#storage-use")).to_contain_text("no quota")
    page.locator('tr[data-project="engine"]').get_by_role("link").click()
    expect(page.get_by_role("heading", name="engine")).to_be_visible()
    expect(page.locator('svg.bars g[data-language="Rust"]')).to_be_visible()
    expect(page.locator('svg.bars g[data-language="Python"]')).to_be_visible()
    expect(page.locator("tr[data-snapshot]")).to_have_count(2)
    expect(page.locator('tr[data-snapshot="v2"]')).to_be_visible()
    expect(page.locator('tr[data-analysis="security"]')).to_have_attribute("data-status", "succeeded")
    expect(page.locator('tr[data-analysis="complexity"]')).to_contain_text("timed out")
    watched.shot("project")
    watched.axe(axe_source, "project page")
    # Another tenant's project is "not found"; a platform administrator picks the tenant.
    theirs = server.tenants["globex"]["api"].call("POST", "/api/projects", {"name": "secret"})
    watched.goto(f"/ui/projects/{theirs['id']}")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    watched.sign_in(**ADMIN)
    page.get_by_role("link", name="Projects & storage").click()
    page.get_by_role("link", name="Acme Inc.").click()
    expect(page.locator('tr[data-project="engine"]')).to_be_visible()
    expect(page.locator('tr[data-project="secret"]')).to_have_count(0)
    watched.shot("projects")


def test_history_trends_and_reports(watched, server, axe_source):
    from conftest import tar_gz
    page = watched.page
    acme = server.tenants["acme"]
    api = acme["api"]
    # Traffic through the gateway to acme's billing, and storage that grows against a quota.
    for _ in range(20):
        api.call("GET", "/svc/billing/ping")
    server.admin.call("PUT", f"/api/tenants/{acme['id']}", {"quotas": {"max_storage_bytes": 50_000_000}})
    for i in range(3):
        api.call("POST", f"/api/storage/upload?project_name=growing&label=g{i}", raw=tar_gz({f"data/{i}.txt": bytes([65 + i]) * 20000 + str(time.time()).encode()}))
        time.sleep(1.2)
    time.sleep(1.5)
    watched.sign_in("acme", acme["email"], PASSWORD)
    page.get_by_role("link", name="History & reports").click()
    page.get_by_role("link", name="Last 1h").click()
    charts = page.locator("#history-charts figure")
    expect(charts.filter(has_text="Requests per second, by service")).to_be_visible()
    expect(charts.filter(has_text="Storage (bytes), and the trend")).to_be_visible()
    expect(charts.filter(has_text="Workflow runs")).to_be_visible()
    expect(page.locator("#storage-forecast")).to_contain_text("reaches its quota of")
    expect(page.get_by_role("link", name="Prometheus")).to_have_attribute("href", "http://prometheus.example:9090")
    watched.shot("history")
    watched.axe(axe_source, "history page")
    # The report: printable, and as CSV.
    page.get_by_role("link", name="Report for this period").click()
    expect(page.get_by_role("heading", name="Report: Acme Inc.")).to_be_visible()
    billing = page.locator('[data-tenant="acme"] tr', has_text="billing")
    expect(billing).to_be_visible()
    requests = int(billing.locator("td").nth(2).inner_text().replace(",", ""))
    assert requests >= 20, f"{requests} requests in the report: " + str(api.call("GET", "/api/history?series=service&step_secs=1&from=" + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 120))))
    watched.shot("report")
    watched.axe(axe_source, "report page")
    page.emulate_media(media="print")
    expect(page.get_by_role("button", name="Print")).to_be_hidden()
    expect(page.locator("header.top")).to_be_hidden()
    page.emulate_media(media="screen")
    with page.expect_download() as dl:
        page.get_by_role("link", name="Download CSV").click()
    text = open(dl.value.path()).read()
    assert text.startswith("section,tenant,subject,metric,value\n"), text[:200]
    assert "service,acme,billing,requests," in text, text
    assert "storage,acme,,days_to_quota," in text, text
    assert "globex" not in text
    # The platform administrator sees the API's own traffic and the platform's report.
    page.get_by_role("button", name="Sign out").click()
    watched.sign_in(**ADMIN)
    watched.goto("/ui/history?range=1h")
    expect(charts.filter(has_text="The API: requests per second")).to_be_visible()
    watched.goto("/ui/report?range=1h")
    expect(page.get_by_role("heading", name="Platform report")).to_be_visible()
    expect(page.locator('[data-tenant="globex"]')).to_be_visible()


def test_an_expired_access_token_is_refreshed_and_an_ended_session_signs_out(browser):
    from conftest import Server, Watched
    # The shortest access token ate-auth allows: 30 s.
    s = Server("refresh", None, {"ATE_AUTH__ACCESS_TOKEN_SECS": "30", "ATE_AUTH__TOKEN_LEEWAY_SECS": "0"})
    try:
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
        page.set_default_timeout(15000)
        w = Watched(page, s)
        acme = s.tenants["acme"]
        w.sign_in("acme", acme["email"], PASSWORD)
        session = lambda: {c["name"]: c["value"] for c in ctx.cookies()}.get("ate_session")
        first = session()
        assert first and all(c["httpOnly"] and c["sameSite"] == "Strict" for c in ctx.cookies())
        page.get_by_role("link", name="Workflows").click()
        expect(page.get_by_role("heading", name="Workflows")).to_be_visible()
        time.sleep(31)  # the access token has expired
        # The overview makes several calls at once: they share one refresh (a second refresh
        # with the same token would count as reuse) and are repeated with the new token.
        page.get_by_role("link", name="Overview").click()
        expect(page.locator("#stat-runs")).to_contain_text("running")
        expect(page.locator("#storage")).to_contain_text("Acme Inc.")
        assert session() != first, "the access token was not refreshed"
        expect(page).to_have_url(re.compile(r"/$"))
        # The session ended elsewhere ("log out everywhere"): the page goes to sign-in.
        s.api.login("acme", acme["email"], PASSWORD).call("POST", "/api/auth/logout-all", {})
        page.get_by_role("link", name="Services", exact=True).click()
        expect(page).to_have_url(re.compile(r"/login\?next="))
        expect(page.locator("#toast")).to_contain_text("session has ended")
        assert not w.problems, w.problems
        ctx.close()
    finally:
        s.stop()


def test_readme_screenshots(watched, server):
    """Last in the module, once the other tests have left data behind: the README's two
    pictures (`for f in overview workflow; do cp target/browser-tests/sqlite/readme-$f.png docs/images/dashboard-$f.png; done` refreshes them)."""
    page = watched.page
    acme = server.tenants["acme"]
    watched.sign_in("acme", acme["email"], PASSWORD)
    for _ in range(30):
        acme["api"].call("GET", "/svc/billing/ping")
    page.get_by_role("link", name="Overview").click()
    expect(page.locator("#services-up")).to_be_visible()
    expect(page.locator("#stat-runs")).to_contain_text("succeeded")
    watched.shot("readme-overview")
    run = acme["api"].call("POST", "/api/orchestration/workflows", {"dag": {"nodes": [
        {"id": "checkout", "step": "delay", "params": {"ms": 300}},
        {"id": "build", "step": "delay", "depends_on": ["checkout"], "params": {"ms": 300}},
        {"id": "unit-tests", "step": "delay", "depends_on": ["build"], "params": {"ms": 20000}},
        {"id": "lint", "step": "delay", "depends_on": ["checkout"], "params": {"ms": 300}},
        {"id": "scan", "step": "delay", "depends_on": ["build"], "params": {"ms": 20000}},
        {"id": "report", "step": "echo", "depends_on": ["unit-tests", "lint", "scan"]}]},
        "labels": {"pipeline": "ci"}})
    watched.goto(f"/ui/workflows/{run['id']}")
    expect(page.locator('svg.dag g[data-node="build"]')).to_have_attribute("data-status", "succeeded", timeout=15000)
    expect(page.locator('svg.dag g[data-node="lint"]')).to_have_attribute("data-status", "succeeded", timeout=15000)
    # Claims arrive live too (a node turning `running` does not change the run's revision).
    expect(page.locator('svg.dag g[data-node="unit-tests"]')).to_have_attribute("data-status", "running", timeout=15000)
    watched.shot("readme-workflow")
    page.get_by_role("button", name="Cancel run").click()
    expect(page.locator(".page-head .badge").first).to_have_text("cancelled", timeout=45000)
