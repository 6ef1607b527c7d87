"""Authentication for Python: ``a.auth`` on a client, and ``JwtVerifier`` for tokens from
another OpenID Connect issuer.

>>> import ate, os
>>> a = ate.Ate("sqlite::memory:", master_key=os.urandom(32),
...             auth_issuer="https://auth.example", auth_audience="my-api",
...             insecure_fast_password_hashing=True)  # TESTS ONLY: see below
>>> org, owner = a.auth.register("acme", "Acme Corp", "owner@acme.example", "correct horse battery staple")
>>> tokens = a.auth.login(org.id, "owner@acme.example", "correct horse battery staple")
>>> principal = a.auth.verify(tokens.access_token)
>>> principal.tenant_id == org.id, principal.has_permission("users:manage")
(True, True)
>>> import json
>>> verifier = JwtVerifier.from_jwks(json.dumps(a.auth.jwks()), issuer="https://auth.example", audience="my-api")
>>> verifier.verify(tokens.access_token)["sub"] == f"user:{owner.id}"
True

Every failed login (wrong password, unknown or disabled user, locked account) raises the
same ``ate.UnauthenticatedError``; so does every token that does not verify. Too many
attempts raise ``ate.RateLimitedError`` (``.retryable`` is true).

Passwords are passed as ``str`` and copied at once into memory that is wiped after use; the
Python string itself cannot be wiped, so drop your references to it early.

``insecure_fast_password_hashing=True`` replaces Argon2id's OWASP cost (19 MiB, two passes
per login) with a trivial one so test suites run fast. **Never use it with real
passwords**: stored hashes would be cheap to crack.

Management methods (``create_user``, ``list_users``, ``update_user``, ``disable_user``, …)
act as the client's principal: its own platform administrator, or the ``Principal`` from
``verify`` of a client made with ``a.acting_as(principal)`` (as every domain does), or, for
one call, ``actor=principal``. ATE checks the principal's permissions in every case.
"""

from ate._ate import (
    AsyncAuth,
    Auth,
    JwtVerifier,
    Principal,
    Session,
    SigningKeyInfo,
    Tokens,
    User,
    UserPage,
)

__all__ = [
    "Auth",
    "AsyncAuth",
    "JwtVerifier",
    "Principal",
    "Session",
    "SigningKeyInfo",
    "Tokens",
    "User",
    "UserPage",
]
