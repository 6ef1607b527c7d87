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

Each domain has its module, holding its classes: ``ate.tenants``, ``ate.audit``,
``ate.storage`` (``a.storage`` needs ``storage_url`` and ``master_key``), ``ate.auth``
(``a.auth`` registers users, logs them in, refreshes and verifies tokens; it needs
``auth_issuer``, ``auth_audience`` and ``master_key``), ``ate.registry`` (``a.registry``
registers service instances, checks their health, picks one per request and renders
metrics), ``ate.projects`` (``a.projects`` imports codebases into deduplicated, encrypted
snapshots with their languages and statistics; ``a.analysis`` records analysis results;
both need storage), ``ate.workflows`` (``a.workflows`` runs DAGs of Python steps durably, with
workers on background threads) and ``ate.crypto``. ``ate.fsspec`` (imported on demand; needs
``fsspec``) is the ``ate://`` filesystem through which pandas, polars, pyarrow and DuckDB read
and write encrypted objects and snapshot files. The clients (``ate.Ate``, ``ate.AsyncAte``), the errors
(``ate.AteError`` and its subclasses) and the main classes are also here at the top.

**Acting for a user.** A client acts as its own platform administrator (``actor=``). A
service that verified a user's token acts for that user with ``a.acting_as(principal)``:
the same client over the same connections, whose ``tenants``, ``audit``, ``storage``,
``projects``, ``analysis``, ``auth`` and ``registry`` all act as that principal, with every permission check applied
(a user acts only in its own tenant, with the permissions it holds there).

>>> a = ate.Ate("sqlite::memory:", storage_url="memory://", master_key=os.urandom(32),
...             auth_issuer="https://auth.example", auth_audience="my-api",
...             insecure_fast_password_hashing=True)  # TESTS ONLY: see ate.auth
>>> org, _ = a.auth.register("initech", "Initech", "ana@initech.example", "a long passphrase")
>>> _ = a.auth.create_user(org.id, "bob@initech.example", password="bob's passphrase",
...                        permissions=["storage:read", "storage:write"])
>>> token = a.auth.login(org.id, "bob@initech.example", "bob's passphrase").access_token
>>> bob = a.acting_as(a.auth.verify(token))   # e.g. once per request
>>> bob.principal.subject.startswith("user:"), bob.storage.put(org.id, "notes.txt", b"mine").size
(True, 4)
>>> globex = a.tenants.create(slug="globex", name="Globex").id
>>> try:
...     bob.storage.get(globex, "notes.txt")
... except ate.PermissionDeniedError:
...     print("another tenant: denied")
another tenant: denied

A view does not own the connections: closing it (or leaving its ``with`` block) leaves them
open for the client it came from. ``actor=`` on ``a.auth`` and ``a.registry`` calls acts as
a principal for that one call.

Every blocking call releases the GIL. ``ate.AsyncAte`` offers the same surface for asyncio,
``acting_as`` included.
"""

from ate._ate import AsyncAte, Ate, __version__
from ate import audit, auth, crypto, projects, registry, storage, tenants, workflows
from ate.audit import AsyncAudit, Audit, AuditEvent, AuditPage, ChainBreak, ChainHead, ChainReport
from ate.auth import AsyncAuth, Auth, Principal, Session, SigningKeyInfo, Tokens, User, UserPage
from ate.storage import (
    AsyncObjectReader,
    AsyncObjectWriter,
    AsyncStorage,
    DirPage,
    GcReport,
    KeyInfo,
    ObjectInfo,
    ObjectPage,
    ObjectReader,
    ObjectWriter,
    ReencryptProgress,
    Storage,
    VerifyProblem,
    VerifyReport,
)
from ate.projects import Analysis, AsyncAnalysis, AsyncProjects, Project, Projects, Snapshot
from ate.tenants import AsyncTenants, Tenant, TenantPage, Tenants
from ate.workflows import AsyncWorkflows, Run, StepFailed, Workflows
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
    "audit",
    "auth",
    "crypto",
    "projects",
    "registry",
    "storage",
    "tenants",
    "workflows",
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
    "AsyncObjectWriter",
    "AsyncStorage",
    "DirPage",
    "GcReport",
    "KeyInfo",
    "ObjectInfo",
    "ObjectPage",
    "ObjectReader",
    "ObjectWriter",
    "Principal",
    "ReencryptProgress",
    "VerifyProblem",
    "VerifyReport",
    "Session",
    "SigningKeyInfo",
    "Storage",
    "Tenant",
    "TenantPage",
    "Tenants",
    "Tokens",
    "Workflows",
    "AsyncWorkflows",
    "Projects",
    "AsyncProjects",
    "Analysis",
    "AsyncAnalysis",
    "Project",
    "Snapshot",
    "Run",
    "StepFailed",
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
