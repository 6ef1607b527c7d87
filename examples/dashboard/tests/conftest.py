"""Browser tests of the dashboard: the real `ate serve` binary on loopback (SQLite, then
PostgreSQL), driven in Debian's Chromium by Playwright (its own browser is never
downloaded). Screenshots go to ``target/browser-tests/<database>/``; axe-core comes from the
npm registry (pinned version and checksum) and is injected into each page.

    ATE_BIN=target/debug/ate .venv/bin/python -m pytest examples/dashboard/tests

``ATE_CHROMIUM`` names the browser (default ``/usr/bin/chromium``). Under ``CI=true`` a
missing browser or PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "target" / "browser-tests"
IN_CI = os.environ.get("CI", "").lower() in ("true", "1")
PG_URL = os.environ.get("ATE_TEST_POSTGRES_URL")
ADMIN = {"tenant": "operators", "email": "admin@ate.example", "password": "dashboard operator passphrase"}
PASSWORD = "dashboard tenant passphrase"

# axe-core from the npm registry, checked against the registry's published integrity.
AXE_VERSION = "4.14.1"
AXE_URL = f"https://registry.npmjs.org/axe-core/-/axe-core-{AXE_VERSION}.tgz"
AXE_SHA512 = "FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """The host's REST API with a bearer token (test set-up and checks)."""

    def __init__(self, base: str, token: str | None = None):
        self.base, self.token = base, token

    def call(self, method: str, path: str, body=None, expect=(200, 201, 202, 204), raw: bytes | None = None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("content-type", "application/octet-stream" if raw is not None else "application/json")
        if self.token:
            req.add_header("authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        if status not in expect:
            raise AssertionError(f"{method} {path}: {status} {raw[:500]!r}")
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode(errors="replace")

    def login(self, tenant: str, email: str, password: str) -> "Api":
        t = self.call("POST", "/api/auth/login", {"tenant": tenant, "email": email, "password": password})
        return Api(self.base, t["access_token"])


def tar_gz(files: dict[str, bytes]) -> bytes:
    """A codebase archive, as `POST /api/storage/upload` takes it."""
    import io
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Upstream:
    """A tiny HTTP service answering 200 on /healthz, which a test can stop and start."""

    def __init__(self, port: int):
        self.port, self.proc = port, None

    def start(self):
        code = (
            "import http.server,sys\n"
            "class H(http.server.BaseHTTPRequestHandler):\n"
            "    def do_GET(self):\n"
            "        self.send_response(200); self.send_header('content-length','2'); self.end_headers(); self.wfile.write(b'ok')\n"
            "    def log_message(self,*a): pass\n"
            f"http.server.ThreadingHTTPServer(('127.0.0.1',{self.port}),H).serve_forever()\n"
        )
        self.proc = subprocess.Popen([sys.executable, "-c", code])
        deadline = time.time() + 10
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError("upstream did not start")

    def kill(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


class Server:
    """`ate serve` on loopback with two tenants (acme, globex) and a service of acme's."""

    def __init__(self, name: str, database_url: str | None, extra_env: dict[str, str] | None = None):
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"ate-dash-{name}-"))
        binary = Path(os.environ.get("ATE_BIN", ROOT / "target" / "debug" / "ate")).resolve()
        if not binary.exists():
            subprocess.run(["cargo", "build", "--quiet", "--locked", "-p", "examples", "--bin", "ate"], cwd=ROOT, check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATE_")}
        env.update({
            "ATE_AUTH__INSECURE_FAST_HASHING_FOR_TESTS": "true",
            "ATE_ADMIN__PASSWORD": ADMIN["password"],
            "ATE_HTTP__CLIENT_RATE_PER_SEC": "0",
            "ATE_HTTP__TENANT_RATE_PER_SEC": "0",
            # The suite signs in from 127.0.0.1 more often than the default 20 a minute.
            "ATE_AUTH__LOGINS_PER_CLIENT_PER_MIN": "0",
            "ATE_LOG_FORMAT": "json",
            "RUST_LOG": "warn",
            # A history point every second, storage every sample: charts fill in seconds.
            "ATE_HISTORY__SAMPLE_SECS": "1",
            "ATE_HISTORY__STORAGE_EVERY": "1",
            "ATE_HISTORY__PROMETHEUS_URL": "http://prometheus.example:9090",
        })
        if database_url:
            env["ATE_DATABASE_URL"] = database_url
        env.update(extra_env or {})
        self.stderr = open(self.dir / "stderr.log", "wb")
        self.proc = subprocess.Popen([str(binary), "serve", "--listen", "127.0.0.1:0"], cwd=self.dir, env=env,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.base = None
        deadline = time.time() + 60
        while time.time() < deadline and self.base is None:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.match(r"listening on (\S+)", line)
            if m:
                self.base = m.group(1)
        if self.base is None:
            self.stderr.flush()
            log = (self.dir / "stderr.log").read_text()[-2000:]
            self.stop()
            raise AssertionError(f"ate serve did not start: {log}")
        self.api = Api(self.base)
        self.admin = self.api.login(**ADMIN)
        self.tenants = {}
        for slug in ("acme", "globex"):
            reg = self.api.call("POST", "/api/auth/register", {
                "organization": {"slug": slug, "name": slug.capitalize() + " Inc."},
                "email": f"owner@{slug}.example", "password": PASSWORD})
            self.tenants[slug] = {"id": reg["tenant"]["id"], "email": f"owner@{slug}.example",
                                  "api": self.api.login(slug, f"owner@{slug}.example", PASSWORD)}
        self.upstream = Upstream(free_port())
        self.upstream.start()
        self.tenants["acme"]["api"].call("POST", "/api/services", {
            "service": "billing", "id": "billing-1", "endpoint": f"http://127.0.0.1:{self.upstream.port}",
            "check": {"kind": "http", "url": f"http://127.0.0.1:{self.upstream.port}/healthz", "interval_secs": 1}})
        # globex has a service of the same name: acme must never see it.
        self.tenants["globex"]["api"].call("POST", "/api/services", {
            "service": "billing", "id": "globex-billing-1", "endpoint": "http://127.0.0.1:9",
            "check": {"kind": "ttl", "ttl_secs": 3600}})

    def stop(self):
        if getattr(self, "upstream", None):
            self.upstream.kill()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _postgres_url():
    if not PG_URL:
        if IN_CI:
            pytest.fail("CI=true but ATE_TEST_POSTGRES_URL is not set: the PostgreSQL case cannot be skipped")
        pytest.skip("ATE_TEST_POSTGRES_URL is not set")
    import psycopg
    from psycopg import conninfo, sql
    params = conninfo.conninfo_to_dict(PG_URL)
    try:
        psycopg.connect(PG_URL).close()
    except psycopg.OperationalError:
        admin = dict(params, dbname="postgres")
        with psycopg.connect(conninfo.make_conninfo(**admin), autocommit=True) as c:
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(params["dbname"])))
    schema = f"dash_{uuid.uuid4().hex}"
    with psycopg.connect(PG_URL, autocommit=True) as c:
        c.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options[search_path]={schema}", schema


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request):
    schema = None
    url = None
    if request.param == "postgres":
        url, schema = _postgres_url()
    s = Server(request.param, url)
    yield s
    s.stop()
    if schema:
        import psycopg
        from psycopg import sql
        with psycopg.connect(PG_URL, autocommit=True) as c:
            c.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright
    exe = os.environ.get("ATE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(exe).exists():
        if IN_CI:
            pytest.fail(f"CI=true but no Chromium at {exe} (install Debian's chromium)")
        pytest.skip(f"no Chromium at {exe}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="session")
def axe_source() -> str:
    cache = OUT / f"axe-core-{AXE_VERSION}.min.js"
    if not cache.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(AXE_URL, timeout=60) as r:
            blob = r.read()
        digest = base64.b64encode(hashlib.sha512(blob).digest()).decode()
        assert digest == AXE_SHA512, f"axe-core tarball checksum mismatch: {digest}"
        with tarfile.open(fileobj=__import__("io").BytesIO(blob)) as t:
            cache.write_bytes(t.extractfile("package/axe.min.js").read())
    return cache.read_text()


class Watched:
    """A page whose console errors, CSP violations and uncaught exceptions are collected."""

    def __init__(self, page, server: Server):
        self.page, self.server, self.problems = page, server, []
        def console(m):
            # A 4xx answer the page handles (401 before sign-in, 404 for another tenant's
            # page) is logged by Chromium; anything else (a CSP refusal, a script error) is
            # a problem.
            if m.type == "error" and not m.text.startswith("Failed to load resource: the server responded with a status of 4"):
                self.problems.append(f"console: {m.text}")
        page.on("console", console)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))

    def goto(self, path: str):
        self.page.goto(self.server.base + path)

    def sign_in(self, tenant: str, email: str, password: str):
        self.goto("/login")
        self.page.get_by_label("Organization").fill(tenant)
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(re.compile(r"^(?!.*/login).*$"))
        self.page.get_by_role("button", name="Sign out").wait_for()

    def shot(self, name: str):
        folder = OUT / self.server.name
        folder.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    def axe(self, source: str, label: str):
        # Through the DevTools protocol, not a <script> element: the page's CSP (rightly)
        # refuses inline scripts.
        self.page.evaluate(source + "\n;undefined")
        result = self.page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        serious = [v for v in result["violations"] if v.get("impact") in ("serious", "critical")]
        assert not serious, f"{label}: " + "; ".join(
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}" for v in serious)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and "watched" in item.funcargs:
        # What the page showed when the test failed, next to the other screenshots.
        try:
            item.funcargs["watched"].shot(f"FAILED-{item.name}")
        except Exception:  # noqa: BLE001 - a failed screenshot must not hide the failure
            pass


@pytest.fixture
def watched(browser, server):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900},
                              bypass_csp=False, service_workers="block")
    page = ctx.new_page()
    page.set_default_timeout(15000)
    w = Watched(page, server)
    yield w
    ctx.close()
    assert not w.problems, "\n".join(w.problems)
