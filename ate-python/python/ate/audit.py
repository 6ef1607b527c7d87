"""The tamper-evident audit log: ``a.audit`` appends events to a tenant's hash chain, queries
them, and verifies the chain.

>>> import ate
>>> a = ate.Ate("sqlite::memory:", actor="system:docs")
>>> acme = a.tenants.create(slug="acme", name="Acme Corp").id
>>> event = a.audit.append(acme, "user:alice", "authn_login_fail", outcome="failure",
...                        client_addr="203.0.113.9", metadata={"reason": "bad_password"})
>>> [e.action for e in a.audit.query(acme)]
['tenant_created', 'authn_login_fail']
>>> report = a.audit.verify_chain(acme)
>>> (report.intact, report.events_checked, a.audit.head(acme).seq)
(True, 2, 2)

``verify_chain`` reports the first modified, missing, re-linked or truncated event
(``ChainReport.first_break``). Reading needs ``audit:read`` in the tenant, appending
``audit:write``; the client's own platform administrator holds both everywhere, a client
from ``a.acting_as(principal)`` only what the principal holds in its own tenant.
``ate.AsyncAte`` offers the same methods as awaitables (``AsyncAudit``).
"""

from ate._ate import AsyncAudit, Audit, AuditEvent, AuditPage, ChainBreak, ChainHead, ChainReport

__all__ = ["Audit", "AsyncAudit", "AuditEvent", "AuditPage", "ChainHead", "ChainBreak", "ChainReport"]
