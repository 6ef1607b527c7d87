"""ATE for Python: multi-tenancy and a tamper-evident audit log, on SQLite or PostgreSQL.

>>> import ate
>>> a = ate.Ate("sqlite::memory:")
>>> acme = a.tenants.create(slug="acme", name="Acme Corp")
>>> a.audit.verify_chain(acme.id).intact
True

Every blocking call releases the GIL. ``ate.AsyncAte`` offers the same surface for asyncio.
"""

from ate._ate import (
    Ate,
    AsyncAte,
    AsyncAudit,
    AsyncTenants,
    Audit,
    AuditEvent,
    AuditPage,
    ChainBreak,
    ChainHead,
    ChainReport,
    Tenant,
    TenantPage,
    Tenants,
    __version__,
)
from ate import crypto
from ate._errors import (
    AlreadyExistsError,
    AteError,
    ConflictError,
    IntegrityError,
    InternalError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitedError,
    UnauthenticatedError,
    UnavailableError,
    UnsupportedError,
)

__all__ = [
    "crypto",
    "Ate",
    "AsyncAte",
    "AsyncAudit",
    "AsyncTenants",
    "Audit",
    "AuditEvent",
    "AuditPage",
    "ChainBreak",
    "ChainHead",
    "ChainReport",
    "Tenant",
    "TenantPage",
    "Tenants",
    "__version__",
    "AteError",
    "NotFoundError",
    "AlreadyExistsError",
    "InvalidInputError",
    "UnauthenticatedError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "ConflictError",
    "RateLimitedError",
    "IntegrityError",
    "UnavailableError",
    "UnsupportedError",
    "InternalError",
]
