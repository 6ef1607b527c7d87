"""Tenants: ``a.tenants`` creates, reads, lists, updates, suspends, reactivates and deletes
the tenants (organizations) everything else in ATE belongs to.

>>> import ate
>>> a = ate.Ate("sqlite::memory:")
>>> acme = a.tenants.create(slug="acme", name="Acme Corp", quotas={"max_objects": 10_000})
>>> (acme.slug, acme.status, acme.revision, acme.quotas["max_objects"])
('acme', 'active', 1, 10000)
>>> a.tenants.suspend(acme.id, "unpaid invoice").status
'suspended'
>>> [t.slug for t in a.tenants.list(status="suspended")]
['acme']

Creating and listing every tenant are for platform administrators (the client itself); a
client acting as a tenant's user (``a.acting_as(principal)``) reads its own tenant only.
Updates take ``expected_revision`` for optimistic concurrency (``ate.ConflictError``).
Deleted tenants are purged by ``purge_due`` after their grace period. ``ate.AsyncAte``
offers the same methods as awaitables (``AsyncTenants``).
"""

from ate._ate import AsyncTenants, Tenant, TenantPage, Tenants

__all__ = ["Tenants", "AsyncTenants", "Tenant", "TenantPage"]
