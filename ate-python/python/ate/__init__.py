"""ATE for Python: multi-tenancy, a tamper-evident audit log, encrypted object storage and
authentication, on SQLite or PostgreSQL with local files or S3.

>>> import ate, os
>>> a = ate.Ate("sqlite::memory:", storage_url="memory://", master_key=os.urandom(32))
>>> acme = a.tenants.create(slug="acme", name="Acme Corp")
>>> a.audit.verify_chain(acme.id).intact
True
>>> a.storage.put(acme.id, "reports/q3.csv", b"region,total").size
12
>>> a.storage.get_range(acme.id, "reports/q3.csv", 0, 6)
b'region'

With ``auth_issuer``, ``auth_audience`` and ``master_key``, ``a.auth`` registers users,
logs them in, refreshes and verifies tokens (see ``ate.auth``). ``a.registry`` registers
service instances, checks their health, picks one per request and renders metrics (see
``ate.registry``).

Every blocking call releases the GIL. ``ate.AsyncAte`` offers the same surface for asyncio.
"""

from ate._ate import (
    Ate,
    AsyncAte,
    AsyncAudit,
    AsyncAuth,
    Auth,
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
    Principal,
    ReencryptProgress,
    Session,
    SigningKeyInfo,
    Storage,
    Tenant,
    TenantPage,
    Tenants,
    Tokens,
    User,
    UserPage,
    __version__,
)
from ate import auth, crypto, registry
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
    "auth",
    "crypto",
    "registry",
    "Ate",
    "AsyncAte",
    "AsyncAudit",
    "AsyncAuth",
    "Auth",
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
    "Principal",
    "ReencryptProgress",
    "Session",
    "SigningKeyInfo",
    "Storage",
    "Tenant",
    "TenantPage",
    "Tenants",
    "Tokens",
    "User",
    "UserPage",
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
