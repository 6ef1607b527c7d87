"""The package layout: one module per domain holding its classes, the main ones re-exported
at the top, every module's examples runnable."""

import doctest
import importlib

import pytest

import ate

DOMAINS = {
    "ate.tenants": ["Tenants", "AsyncTenants", "Tenant", "TenantPage"],
    "ate.audit": ["Audit", "AsyncAudit", "AuditEvent", "AuditPage", "ChainHead", "ChainBreak", "ChainReport"],
    "ate.storage": [
        "Storage", "AsyncStorage", "ObjectReader", "AsyncObjectReader", "ObjectInfo", "ObjectPage",
        "KeyInfo", "ReencryptProgress", "GcReport", "VerifyReport", "VerifyProblem", "ObjectWriter",
        "AsyncObjectWriter", "DirPage",
    ],
    "ate.fsspec": ["AteFileSystem", "AteFile"],
    "ate.auth": ["Auth", "AsyncAuth", "JwtVerifier", "Principal", "Session", "SigningKeyInfo", "Tokens", "User", "UserPage"],
    "ate.registry": [
        "Registry", "AsyncRegistry", "Pick", "PendingPick", "CheckDefinition", "Instance", "Stats",
        "CheckResult", "AlertEvent", "http_check", "tcp_check", "ttl_check",
    ],
    "ate.projects": [
        "Projects", "AsyncProjects", "Analysis", "AsyncAnalysis", "Project", "ProjectPage", "Snapshot",
        "SnapshotPage", "LanguageStats", "DirectoryStats", "FileEntry", "FilePage", "SnapshotDiff",
        "ProjectStats", "TenantUsage", "ImportProgress", "AnalysisResult", "AnalysisPage", "Payload",
        "BackupSummary", "RestoreReport", "SnapshotFile", "AsyncSnapshotFile",
    ],
    "ate.workflows": [
        "Workflows", "AsyncWorkflows", "Worker", "AsyncWorker", "StepContext", "StepDecorator",
        "StepFailed", "Run", "RunNode", "RunPage", "RunEvent", "RunEvents", "AsyncRunEvents",
        "LogEntry", "LogPage",
    ],
}

# Every name the top level exported before the domain modules existed.
TOP_LEVEL = [
    "Ate", "AsyncAte", "AsyncAudit", "AsyncAuth", "Auth", "AsyncTenants", "Audit", "AuditEvent",
    "AuditPage", "ChainBreak", "ChainHead", "ChainReport", "AsyncObjectReader", "AsyncStorage",
    "GcReport", "KeyInfo", "ObjectInfo", "ObjectPage", "ObjectReader", "Principal",
    "ReencryptProgress", "Session", "SigningKeyInfo", "Storage", "Tenant", "TenantPage", "Tenants",
    "Tokens", "User", "UserPage", "__version__", "AteError", "NotFoundError", "AlreadyExistsError",
    "InvalidInputError", "UnauthenticatedError", "PermissionDeniedError", "QuotaExceededError",
    "ConflictError", "RateLimitedError", "IntegrityError", "UnavailableError", "UnsupportedError",
    "InternalError", "auth", "crypto", "registry",
]


@pytest.mark.parametrize("module_name", sorted(DOMAINS))
def test_each_domain_module_holds_its_classes(module_name):
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == sorted(DOMAINS[module_name])
    for name in DOMAINS[module_name]:
        cls = getattr(module, name)
        if isinstance(cls, type):
            assert cls.__module__ == module_name, f"{name} reports module {cls.__module__}"
        if hasattr(ate, name):  # re-exported at the top: the very same class
            assert getattr(ate, name) is cls


def test_top_level_names_keep_working():
    missing = [n for n in TOP_LEVEL if not hasattr(ate, n)]
    assert missing == []
    assert set(TOP_LEVEL) <= set(ate.__all__)
    assert ate.Ate.__module__ == ate.AsyncAte.__module__ == "ate"
    for module in ("tenants", "audit", "storage", "auth", "registry", "crypto", "workflows", "projects"):
        assert getattr(ate, module).__name__ == f"ate.{module}"


@pytest.mark.parametrize(
    "module_name", ["ate.tenants", "ate.audit", "ate.storage", "ate.workflows", "ate.projects", "ate.fsspec"]
)
def test_module_docstring_examples_run(module_name):
    failures, tried = doctest.testmod(importlib.import_module(module_name), verbose=False)
    assert tried > 0 and failures == 0
