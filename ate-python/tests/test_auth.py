"""a.auth and ate.auth.JwtVerifier: registration, login, refresh, logout, verification, user
management, signing keys, and verification of another issuer's tokens.

Runs on a SQLite file, in-memory SQLite and PostgreSQL (the Rust conformance suite covers the
rest: lockout under parallel attempts, refresh replay after the grace, clocks). Passwords are
hashed with ``insecure_fast_password_hashing`` except in the GIL test, which needs the real
Argon2id cost.
"""

from __future__ import annotations

import base64
import datetime
import json
import sys
import threading
import time

import pytest

import ate
from ate.auth import JwtVerifier
from conftest import MASTER_KEY

ISS, AUD = "https://auth.test", "ate-tests"
PASSWORD = "correct horse battery staple"


def open_auth(url, **kw):
    kw.setdefault("insecure_fast_password_hashing", True)
    return ate.Ate(url, master_key=MASTER_KEY, auth_issuer=ISS, auth_audience=AUD, actor="system:pytest", **kw)


@pytest.fixture
def a(db_url):
    with open_auth(db_url) as client:
        yield client


@pytest.fixture
def mem():
    """One backend is enough for what does not touch the database twice."""
    with open_auth("sqlite::memory:") as client:
        yield client


def register(a, slug):
    return a.auth.register(slug, slug.title(), f"owner@{slug}.example", PASSWORD, name="Owner")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_register_login_verify_refresh_logout(a):
    org, owner = register(a, "acme")
    assert isinstance(org, ate.Tenant) and org.slug == "acme"
    assert isinstance(owner, ate.auth.User)
    assert owner.roles == frozenset({"admin"}) and owner.has_password and owner.status == "active"

    tokens = a.auth.login(org.id, "OWNER@acme.example", PASSWORD, client_addr="203.0.113.7", user_agent="pytest")
    assert isinstance(tokens, ate.auth.Tokens)
    assert tokens.user == a.auth.get_user(org.id, owner.id)
    assert tokens.refresh_token.startswith("atr_")
    assert tokens.access_expires_at > datetime.datetime.now(datetime.timezone.utc)
    assert tokens.access_token not in repr(tokens) and tokens.refresh_token not in repr(tokens)

    p = a.auth.verify(tokens.access_token)
    assert isinstance(p, ate.auth.Principal)
    assert p.subject == f"user:{owner.id}" and p.tenant_id == org.id
    assert p.roles == frozenset({"admin"}) and "users:manage" in p.permissions
    assert p.has_permission("users:manage") and not p.has_permission("tenant:update")
    assert not p.is_platform_admin
    assert p == a.auth.verify(tokens.access_token)

    nxt = a.auth.refresh(tokens.refresh_token)
    assert nxt.session_id == tokens.session_id and nxt.refresh_token != tokens.refresh_token
    assert a.auth.verify(nxt.access_token) == p
    [session] = a.auth.sessions(p)
    assert isinstance(session, ate.auth.Session)
    assert session.id == tokens.session_id and session.active
    assert session.client_addr == "203.0.113.7" and session.user_agent == "pytest"

    assert a.auth.logout(nxt.access_token) is None
    with pytest.raises(ate.UnauthenticatedError):
        a.auth.verify(nxt.access_token)
    with pytest.raises(ate.UnauthenticatedError):
        a.auth.refresh(nxt.refresh_token)
    [session] = a.auth.sessions(p)
    assert not session.active and session.revoked_reason == "logout"


def test_failures_look_alike(a):
    org, _ = register(a, "acme")
    other, _ = register(a, "globex")
    bob = a.auth.create_user(org.id, "bob@acme.example", password="a long enough secret")
    a.auth.disable_user(org.id, bob.id)
    messages = set()
    for tenant, email, password in [
        (org.id, "owner@acme.example", "wrong password here"),
        (org.id, "nobody@acme.example", PASSWORD),
        (org.id, "bob@acme.example", "a long enough secret"),
        (other.id, "owner@acme.example", PASSWORD),
    ]:
        with pytest.raises(ate.UnauthenticatedError) as e:
            a.auth.login(tenant, email, password)
        assert e.value.kind == "unauthenticated" and not e.value.retryable
        messages.add(str(e.value))
    assert messages == {"invalid credentials"}


def test_refresh_retry_within_grace_and_bad_tokens(a):
    org, _ = register(a, "acme")
    first = a.auth.login(org.id, "owner@acme.example", PASSWORD)
    successor = a.auth.refresh(first.refresh_token)
    # A retry of the spent token inside the grace (10 s) gets the same successor: the client
    # most likely lost the first response. (After the grace it would revoke the session:
    # the Rust suite moves its clock to test that.)
    retried = a.auth.refresh(first.refresh_token)
    assert retried.refresh_token == successor.refresh_token
    assert retried.session_id == successor.session_id
    a.auth.verify(retried.access_token)
    for garbage in ["atr_" + "A" * 43, "not a token", ""]:
        with pytest.raises(ate.UnauthenticatedError):
            a.auth.refresh(garbage)
    for garbage in ["a.b.c", "", first.access_token + "x"]:
        with pytest.raises(ate.UnauthenticatedError):
            a.auth.verify(garbage)


def test_sessions_logout_everywhere_and_passwords(a):
    org, owner = register(a, "acme")
    one = a.auth.login(org.id, "owner@acme.example", PASSWORD)
    two = a.auth.login(org.id, "owner@acme.example", PASSWORD)
    p = a.auth.verify(one.access_token)
    assert {s.id for s in a.auth.sessions(p)} == {one.session_id, two.session_id}
    assert a.auth.end_session(p, two.session_id) is None
    with pytest.raises(ate.UnauthenticatedError):
        a.auth.refresh(two.refresh_token)
    with pytest.raises(ate.NotFoundError):
        a.auth.end_session(p, two.session_id)  # already ended
    with pytest.raises(ate.InvalidInputError, match="not a session id"):
        a.auth.end_session(p, "nope")

    # Changing one's password needs the current one and ends the other sessions.
    three = a.auth.login(org.id, "owner@acme.example", PASSWORD)
    with pytest.raises(ate.UnauthenticatedError):
        a.auth.change_password(p, "not my password", "another fine passphrase")
    with pytest.raises(ate.InvalidInputError):
        a.auth.change_password(p, PASSWORD, "short")  # the policy applies
    assert a.auth.change_password(p, PASSWORD, "another fine passphrase", keep_session=one.session_id) is None
    a.auth.refresh(one.refresh_token)
    with pytest.raises(ate.UnauthenticatedError):
        a.auth.refresh(three.refresh_token)
    with pytest.raises(ate.UnauthenticatedError):
        a.auth.login(org.id, "owner@acme.example", PASSWORD)
    four = a.auth.login(org.id, "owner@acme.example", "another fine passphrase")

    # Log out everywhere: every session ends and every access token stops verifying.
    p = a.auth.verify(four.access_token)
    # ate-auth compares the token's iat (whole seconds) with not_before: a token issued in
    # the same second as the logout would survive it, so let a second pass.
    time.sleep(1.1)
    assert a.auth.logout_everywhere(p) >= 2
    with pytest.raises(ate.UnauthenticatedError):
        a.auth.verify(four.access_token)
    assert not any(s.active for s in a.auth.sessions(p))

    # An administrator's reset ends every session of the user.
    five = a.auth.login(org.id, "owner@acme.example", "another fine passphrase")
    assert a.auth.reset_password(org.id, owner.id, "reset by the platform") is None
    with pytest.raises(ate.UnauthenticatedError):
        a.auth.refresh(five.refresh_token)
    a.auth.login(org.id, "owner@acme.example", "reset by the platform")


def test_user_management(a):
    org, owner = register(a, "acme")
    created = [
        a.auth.create_user(org.id, f"user{i}@acme.example", password=f"password number {i}", name=f"User {i}")
        for i in range(5)
    ]
    assert all(u.roles == frozenset({"user"}) for u in created)
    sso = a.auth.create_user(org.id, "sso@acme.example", username="sso", roles=["user", "admin"])
    assert not sso.has_password and sso.username == "sso" and sso.roles == {"user", "admin"}
    with pytest.raises(ate.AlreadyExistsError):
        a.auth.create_user(org.id, "USER0@acme.example")

    seen, cursor = [], None
    while True:
        page = a.auth.list_users(org.id, limit=2, cursor=cursor)
        assert isinstance(page, ate.auth.UserPage) and len(page) <= 2
        seen += [u.id for u in page]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted([owner.id, sso.id] + [u.id for u in created])

    bob = created[0]
    promoted = a.auth.update_user(org.id, bob.id, roles=("admin",), name="Bob")
    assert promoted.roles == {"admin"} and promoted.name == "Bob" and promoted.revision == bob.revision + 1
    with pytest.raises(ate.ConflictError):
        a.auth.update_user(org.id, bob.id, name="Stale", expected_revision=bob.revision)
    with pytest.raises(ate.InvalidInputError, match="iterable of names"):
        a.auth.update_user(org.id, bob.id, roles="admin")  # type: ignore[arg-type]
    with pytest.raises(ate.InvalidInputError, match="not a role"):
        a.auth.create_user(org.id, "x@acme.example", roles=["owner"])
    with pytest.raises(ate.InvalidInputError):
        a.auth.create_user(org.id, "not an email")
    with pytest.raises(ate.NotFoundError):
        a.auth.get_user(org.id, sso.id[:-4] + ("0000" if not sso.id.endswith("0000") else "1111"))

    tokens = a.auth.login(org.id, "user0@acme.example", "password number 0")
    assert a.auth.disable_user(org.id, bob.id).status == "disabled"
    with pytest.raises(ate.UnauthenticatedError, match="^invalid credentials$"):
        a.auth.login(org.id, "user0@acme.example", "password number 0")
    with pytest.raises(ate.UnauthenticatedError):
        a.auth.verify(tokens.access_token)
    assert a.auth.enable_user(org.id, bob.id).status == "active"
    assert a.auth.unlock_user(org.id, bob.id).status == "active"
    a.auth.login(org.id, "user0@acme.example", "password number 0")


def test_an_admin_acts_only_in_its_own_tenant(a):
    acme, _ = register(a, "acme")
    globex, globex_owner = register(a, "globex")
    admin = a.auth.verify(a.auth.login(acme.id, "owner@acme.example", PASSWORD).access_token)
    # Its own tenant: fine.
    carol = a.auth.create_user(acme.id, "carol@acme.example", password="carol's passphrase", actor=admin)
    assert [u.email for u in a.auth.list_users(acme.id, actor=admin)].count("carol@acme.example") == 1
    # Another tenant: denied, whatever the operation.
    with pytest.raises(ate.PermissionDeniedError):
        a.auth.create_user(globex.id, "mole@globex.example", actor=admin)
    with pytest.raises(ate.PermissionDeniedError):
        a.auth.list_users(globex.id, actor=admin)
    with pytest.raises(ate.PermissionDeniedError):
        a.auth.get_user(globex.id, globex_owner.id, actor=admin)
    with pytest.raises(ate.PermissionDeniedError):
        a.auth.disable_user(globex.id, globex_owner.id, actor=admin)
    with pytest.raises(ate.PermissionDeniedError):
        a.auth.reset_password(globex.id, globex_owner.id, "taken over now", actor=admin)
    # Nobody grants what they do not hold, and only platform administrators rotate keys.
    with pytest.raises(ate.PermissionDeniedError):
        a.auth.create_user(acme.id, "root@acme.example", roles=["super_admin"], actor=admin)
    with pytest.raises(ate.PermissionDeniedError):
        a.auth.rotate_signing_key(actor=admin)
    # A plain user manages nobody, but reads itself.
    user = a.auth.verify(a.auth.login(acme.id, "carol@acme.example", "carol's passphrase").access_token)
    with pytest.raises(ate.PermissionDeniedError):
        a.auth.create_user(acme.id, "dave@acme.example", actor=user)
    assert a.auth.get_user(acme.id, carol.id, actor=user).email == "carol@acme.example"


def test_jwks_and_signing_key_rotation(a):
    org, _ = register(a, "acme")
    before = a.auth.login(org.id, "owner@acme.example", PASSWORD)
    jwks = a.auth.jwks()
    assert jwks["keys"] and all(k["kid"] and k["alg"] and k["kty"] for k in jwks["keys"])
    assert not any("d" in k for k in jwks["keys"])  # public halves only
    kid = a.auth.rotate_signing_key()
    assert kid in {k["kid"] for k in a.auth.jwks()["keys"]}
    states = {k.kid: k.state for k in a.auth.signing_keys()}
    assert states[kid] == "active" and "verify_only" in states.values()
    a.auth.verify(before.access_token)  # the previous key still verifies its tokens
    after = a.auth.login(org.id, "owner@acme.example", PASSWORD)
    header = json.loads(unb64(after.access_token.split(".")[0]))
    assert header["kid"] == kid


def test_jwt_verifier_verifies_ate_tokens(mem):
    org, owner = register(mem, "acme")
    token = mem.auth.login(org.id, "owner@acme.example", PASSWORD).access_token
    verifier = JwtVerifier.from_jwks(json.dumps(mem.auth.jwks()), issuer=ISS, audience=AUD)
    assert (verifier.issuer, verifier.audience) == (ISS, AUD)
    claims = verifier.verify(token)
    assert isinstance(claims, dict)
    assert claims["sub"] == f"user:{owner.id}" and claims["tenant"] == org.id
    assert claims["iss"] == ISS and claims["roles"] == ["admin"]

    header, payload, signature = token.split(".")
    forged = json.loads(unb64(payload))
    forged["tenant"] = "someone-else"
    tampered = f"{header}.{b64(json.dumps(forged).encode())}.{signature}"
    flipped = f"{header}.{payload}.{signature[:-2]}{'A' if signature[-2] != 'A' else 'B'}{signature[-1]}"
    alg_none = ".".join([b64(json.dumps({"alg": "none", "typ": "JWT", "kid": json.loads(unb64(header))["kid"]}).encode()), payload, ""])
    for bad in [tampered, flipped, alg_none, "garbage", "", "a.b.c", token + ".extra"]:
        with pytest.raises(ate.UnauthenticatedError):
            verifier.verify(bad)
    for issuer, audience in [("https://other.test", AUD), (ISS, "other-api")]:
        wrong = JwtVerifier.from_jwks(json.dumps(mem.auth.jwks()), issuer=issuer, audience=audience)
        with pytest.raises(ate.UnauthenticatedError):
            wrong.verify(token)


def test_jwt_verifier_external_issuer():
    """Tokens of another issuer, signed here with its (test) key: expiry, leeway, nbf."""
    ed25519 = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
    from cryptography.hazmat.primitives import serialization

    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwks = json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": b64(public), "kid": "idp-1", "use": "sig"}]})
    idp = "https://idp.example"

    def token(kid="idp-1", **claims):
        header = b64(json.dumps({"alg": "EdDSA", "typ": "JWT", "kid": kid}).encode())
        body = b64(json.dumps({"iss": idp, "aud": "my-app", **claims}).encode())
        return f"{header}.{body}.{b64(key.sign(f'{header}.{body}'.encode()))}"

    now = int(time.time())
    verifier = JwtVerifier.from_jwks(jwks, issuer=idp, audience="my-app")
    claims = verifier.verify(token(sub="alice", exp=now + 60, email="alice@example.com", groups=["a", "b"]))
    assert claims["sub"] == "alice" and claims["groups"] == ["a", "b"] and claims["exp"] == now + 60
    assert verifier.verify(token(exp=now - 10))  # inside the default 30 s leeway
    strict = JwtVerifier.from_jwks(jwks, issuer=idp, audience="my-app", leeway_seconds=0)
    for bad in [
        token(exp=now - 10),
        token(exp=now - 3600),
        token(),  # no exp
        token(exp=now + 60, nbf=now + 600),
        token(exp=now + 60, kid="idp-2"),
        token(exp=now + 60, aud="someone-else"),
    ]:
        with pytest.raises(ate.UnauthenticatedError):
            strict.verify(bad)


def test_bad_jwks_is_invalid_input():
    for jwks in [
        '{"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}]}',
        '{"keys": [{"kty": "RSA"}]}',
        '{"keys": []}',
        "{}",
        "not json",
    ]:
        with pytest.raises(ate.InvalidInputError):
            JwtVerifier.from_jwks(jwks, issuer=ISS, audience=AUD)
    good = '{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}'
    assert "keys=1" in repr(JwtVerifier.from_jwks(good, issuer=ISS, audience=AUD))  # RFC 8037's example key
    for leeway in (-1, 301, 2**62):
        with pytest.raises(ate.InvalidInputError):
            JwtVerifier.from_jwks(good, issuer=ISS, audience=AUD, leeway_seconds=leeway)
    with pytest.raises(ate.InvalidInputError):
        JwtVerifier.from_jwks(good, issuer="", audience=AUD)


def test_rate_limited_logins(mem):
    org, _ = register(mem, "acme")
    with pytest.raises(ate.RateLimitedError) as e:
        for _ in range(41):  # 20 a minute per client address; fixed windows, so 41 must hit
            mem.auth.login(org.id, "owner@acme.example", PASSWORD, client_addr="198.51.100.4")
    assert e.value.retryable and e.value.kind == "rate_limited"
    with pytest.raises(ate.InvalidInputError, match="not an IP address"):
        mem.auth.login(org.id, "owner@acme.example", PASSWORD, client_addr="localhost")


def test_configuration_errors():
    url = "sqlite::memory:"
    with pytest.raises(ate.InvalidInputError, match="auth_issuer needs auth_audience"):
        ate.Ate(url, master_key=MASTER_KEY, auth_issuer=ISS)
    with pytest.raises(ate.InvalidInputError, match="auth_audience needs auth_issuer"):
        ate.Ate(url, master_key=MASTER_KEY, auth_audience=AUD)
    with pytest.raises(ate.InvalidInputError, match="auth needs master_key"):
        ate.Ate(url, auth_issuer=ISS, auth_audience=AUD)
    with pytest.raises(ate.InvalidInputError, match="only used with auth_issuer"):
        ate.Ate(url, insecure_fast_password_hashing=True)
    with pytest.raises(ate.InvalidInputError, match="only used with storage_url or auth_issuer"):
        ate.Ate(url, master_key=MASTER_KEY)
    with pytest.raises(ate.InvalidInputError, match="issuer"):
        ate.Ate(url, master_key=MASTER_KEY, auth_issuer="", auth_audience=AUD)
    with ate.Ate(url) as plain:
        with pytest.raises(ate.InvalidInputError, match="auth is not configured"):
            plain.auth
    # Storage and auth share one master key.
    with open_auth(url, storage_url="memory://") as both:
        org, _ = register(both, "acme")
        both.storage.put(org.id, "f", b"x")
        assert both.storage.get(org.id, "f") == b"x"
        both.auth.login(org.id, "owner@acme.example", PASSWORD)
    with ate.Ate(url, storage_url="memory://", master_key=MASTER_KEY) as storage_only:
        with pytest.raises(ate.InvalidInputError, match="auth is not configured"):
            storage_only.auth


async def test_async_auth(db_url):
    async with await ate.AsyncAte.open(
        db_url, master_key=MASTER_KEY, auth_issuer=ISS, auth_audience=AUD, insecure_fast_password_hashing=True
    ) as a:
        assert isinstance(a.auth, ate.AsyncAuth)
        org, owner = await a.auth.register("acme", "Acme", "owner@acme.example", PASSWORD)
        tokens = await a.auth.login(org.id, "owner@acme.example", PASSWORD)
        p = await a.auth.verify(tokens.access_token)
        assert p.subject == f"user:{owner.id}" and p.tenant_id == org.id
        nxt = await a.auth.refresh(tokens.refresh_token)
        assert nxt.session_id == tokens.session_id
        bob = await a.auth.create_user(org.id, "bob@acme.example", password="bob's passphrase", actor=p)
        page = await a.auth.list_users(org.id, actor=p)
        assert {u.id for u in page} == {owner.id, bob.id}
        assert (await a.auth.jwks())["keys"]
        assert await a.auth.logout(nxt.access_token) is None
        with pytest.raises(ate.UnauthenticatedError):
            await a.auth.verify(nxt.access_token)
        with pytest.raises(ate.UnauthenticatedError, match="^invalid credentials$"):
            await a.auth.login(org.id, "owner@acme.example", "wrong password here")
    plain = await ate.AsyncAte.open("sqlite::memory:")
    with pytest.raises(ate.InvalidInputError, match="auth is not configured"):
        plain.auth
    await plain.close()


def test_login_releases_the_gil():
    """Another thread keeps running Python *during* one login at the real Argon2id cost:
    impossible if the call held the GIL."""
    with ate.Ate("sqlite::memory:", master_key=MASTER_KEY, auth_issuer=ISS, auth_audience=AUD) as a:
        org, _ = register(a, "acme")
        ticks, running, done = [0], threading.Event(), threading.Event()

        def tick():
            running.set()
            while not done.is_set():
                ticks[0] += 1

        # With a long switch interval the interpreter never hands the GIL over between
        # bytecodes, so the ticker can only run while the call has released it.
        old_interval = sys.getswitchinterval()
        sys.setswitchinterval(0.5)
        try:
            ticker = threading.Thread(target=tick)
            ticker.start()
            running.wait()
            before = ticks[0]
            tokens = a.auth.login(org.id, "owner@acme.example", PASSWORD)
            during = ticks[0] - before
            done.set()
            ticker.join()
        finally:
            sys.setswitchinterval(old_interval)
        assert a.auth.verify(tokens.access_token).tenant_id == org.id
        assert during > 1000, f"the ticker advanced only {during} times during the login"


def test_module_docstring_examples_run():
    import doctest

    import ate.auth

    failures, tried = doctest.testmod(ate.auth, verbose=False)
    assert tried > 0 and failures == 0


def test_verify_cache_off_sees_another_handles_disable_at_once(sqlite_path):
    url = f"sqlite://{sqlite_path}"
    with open_auth(url) as first, open_auth(url, auth_verify_cache_seconds=0) as second:
        org, owner = register(first, "cacheless")
        token = first.auth.login(org.id, "owner@cacheless.example", PASSWORD).access_token
        assert second.auth.verify(token).tenant_id == org.id  # would fill a cache, if any
        first.auth.disable_user(org.id, owner.id)
        with pytest.raises(ate.UnauthenticatedError):
            second.auth.verify(token)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_verify_cache_seconds_rejects_negative_and_nan(bad):
    with pytest.raises(ate.InvalidInputError, match="auth_verify_cache_seconds"):
        open_auth("sqlite::memory:", auth_verify_cache_seconds=bad)
