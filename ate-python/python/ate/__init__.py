"""ATE for Python: multi-tenancy, a tamper-evident audit log and encrypted object storage,
on SQLite or PostgreSQL with local files or S3.

>>> import ate, os
>>> a = ate.Ate("sqlite::memory:", storage_url="memory://", master_key=os.urandom(32))
>>> acme = a.tenants.create(slug="acme", name="Acme Corp")
>>> a.audit.verify_chain(acme.id).intact
True
>>> a.storage.put(acme.id, "reports/q3.csv", b"region,total").size
12
>>> a.storage.get_range(acme.id, "reports/q3.csv", 0, 6)
b'region'

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
    AsyncObjectReader,
    AsyncStorage,
    GcReport,
    KeyInfo,
    ObjectInfo,
    ObjectPage,
    ObjectReader,
    ReencryptProgress,
    Storage,
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
    "AsyncObjectReader",
    "AsyncStorage",
    "GcReport",
    "KeyInfo",
    "ObjectInfo",
    "ObjectPage",
    "ObjectReader",
    "ReencryptProgress",
    "Storage",
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
