"""The dashboard in a real Chromium against a real `ate serve` (SQLite, then PostgreSQL)."""

from __future__ import annotations

import re
import time

from conftest import ADMIN, PASSWORD

from playwright.sync_api import expect


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
    watched.shot("services")
    print(f"critical shown {turned:.1f} s after the kill")


def test_pages_fit_a_phone_width(watched, server, axe_source):
    page = watched.page
    page.set_viewport_size({"width": 390, "height": 844})
    acme = server.tenants["acme"]
    watched.sign_in("acme", acme["email"], PASSWORD)
    for path, name, ready in [("/", "overview", "#services-up"),
                              ("/ui/services", "services", '[data-instance="billing/billing-1"]'),
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
