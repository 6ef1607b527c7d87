//! ATE's audit action vocabulary.

use super::AuditAction;

/// A tenant was created.
pub const TENANT_CREATED: AuditAction = AuditAction::from_static("tenant_created");
/// A tenant's name or settings changed.
pub const TENANT_UPDATED: AuditAction = AuditAction::from_static("tenant_updated");
/// A tenant was suspended.
pub const TENANT_SUSPENDED: AuditAction = AuditAction::from_static("tenant_suspended");
/// A suspended tenant was reactivated.
pub const TENANT_REACTIVATED: AuditAction = AuditAction::from_static("tenant_reactivated");
/// A deleted tenant was restored before its purge.
pub const TENANT_RESTORED: AuditAction = AuditAction::from_static("tenant_restored");
/// A tenant was soft-deleted.
pub const TENANT_DELETED: AuditAction = AuditAction::from_static("tenant_deleted");

/// OWASP `authn_login_success`: a successful login.
pub const AUTHN_LOGIN_SUCCESS: AuditAction = AuditAction::from_static("authn_login_success");
/// OWASP `authn_login_fail`: a failed login.
pub const AUTHN_LOGIN_FAIL: AuditAction = AuditAction::from_static("authn_login_fail");
/// OWASP `authn_login_lock`: an account was locked after failures.
pub const AUTHN_LOGIN_LOCK: AuditAction = AuditAction::from_static("authn_login_lock");
/// OWASP `authn_password_change`: a password was changed.
pub const AUTHN_PASSWORD_CHANGE: AuditAction = AuditAction::from_static("authn_password_change");
/// OWASP `authn_token_created`: a token was issued.
pub const AUTHN_TOKEN_CREATED: AuditAction = AuditAction::from_static("authn_token_created");
/// OWASP `authn_token_revoked`: a token was revoked.
pub const AUTHN_TOKEN_REVOKED: AuditAction = AuditAction::from_static("authn_token_revoked");
/// OWASP `authn_token_reuse`: a spent refresh token was presented again.
pub const AUTHN_TOKEN_REUSE: AuditAction = AuditAction::from_static("authn_token_reuse");
/// OWASP `authz_fail`: an operation was denied.
pub const AUTHZ_FAIL: AuditAction = AuditAction::from_static("authz_fail");
/// OWASP `user_created`.
pub const USER_CREATED: AuditAction = AuditAction::from_static("user_created");
/// OWASP `user_updated`.
pub const USER_UPDATED: AuditAction = AuditAction::from_static("user_updated");
/// OWASP `user_deleted`.
pub const USER_DELETED: AuditAction = AuditAction::from_static("user_deleted");
/// OWASP `privilege_permissions_changed`.
pub const PRIVILEGE_PERMISSIONS_CHANGED: AuditAction =
    AuditAction::from_static("privilege_permissions_changed");
/// A key was created or rotated.
pub const KEY_ROTATED: AuditAction = AuditAction::from_static("key_rotated");
/// A key was destroyed (crypto-shredding).
pub const KEY_DESTROYED: AuditAction = AuditAction::from_static("key_destroyed");
/// A workflow run was submitted.
pub const WORKFLOW_SUBMITTED: AuditAction = AuditAction::from_static("workflow_submitted");
/// A workflow run was cancelled.
pub const WORKFLOW_CANCELLED: AuditAction = AuditAction::from_static("workflow_cancelled");
/// A workflow run failed for good.
pub const WORKFLOW_FAILED: AuditAction = AuditAction::from_static("workflow_failed");
/// A signal was delivered to a workflow run.
pub const WORKFLOW_SIGNALLED: AuditAction = AuditAction::from_static("workflow_signalled");
/// A failed workflow run was started again from its failure.
pub const WORKFLOW_RETRIED: AuditAction = AuditAction::from_static("workflow_retried");
/// A workflow schedule was created.
pub const SCHEDULE_CREATED: AuditAction = AuditAction::from_static("schedule_created");
/// A workflow schedule was paused or resumed.
pub const SCHEDULE_UPDATED: AuditAction = AuditAction::from_static("schedule_updated");
/// A workflow schedule was deleted.
pub const SCHEDULE_DELETED: AuditAction = AuditAction::from_static("schedule_deleted");
/// An integration endpoint was registered.
pub const INTEGRATION_CREATED: AuditAction = AuditAction::from_static("integration_created");
/// An integration endpoint (or its credentials) was changed.
pub const INTEGRATION_UPDATED: AuditAction = AuditAction::from_static("integration_updated");
/// An integration endpoint was deleted.
pub const INTEGRATION_DELETED: AuditAction = AuditAction::from_static("integration_deleted");
/// A codebase project was created.
pub const PROJECT_CREATED: AuditAction = AuditAction::from_static("project_created");
/// A project's name, description, labels or settings changed.
pub const PROJECT_UPDATED: AuditAction = AuditAction::from_static("project_updated");
/// A project was deleted.
pub const PROJECT_DELETED: AuditAction = AuditAction::from_static("project_deleted");
/// A snapshot of a project's codebase was imported and committed.
pub const SNAPSHOT_CREATED: AuditAction = AuditAction::from_static("snapshot_created");
/// A snapshot was deleted.
pub const SNAPSHOT_DELETED: AuditAction = AuditAction::from_static("snapshot_deleted");
/// An analysis result was recorded.
pub const ANALYSIS_CREATED: AuditAction = AuditAction::from_static("analysis_created");
/// An analysis result changed (status, summary, a payload added).
pub const ANALYSIS_UPDATED: AuditAction = AuditAction::from_static("analysis_updated");
/// An analysis result was deleted.
pub const ANALYSIS_DELETED: AuditAction = AuditAction::from_static("analysis_deleted");
/// A retention policy was set or cleared (for a tenant or a project).
pub const RETENTION_POLICY_SET: AuditAction = AuditAction::from_static("retention_policy_set");
/// A legal hold was placed (on a tenant or a project).
pub const LEGAL_HOLD_PLACED: AuditAction = AuditAction::from_static("legal_hold_placed");
/// A legal hold was released.
pub const LEGAL_HOLD_RELEASED: AuditAction = AuditAction::from_static("legal_hold_released");
/// A backup was restored into the tenant (as a new project).
pub const BACKUP_RESTORED: AuditAction = AuditAction::from_static("backup_restored");

/// Every action ATE itself records.
pub const ALL: &[AuditAction] = &[
    TENANT_CREATED,
    TENANT_UPDATED,
    TENANT_SUSPENDED,
    TENANT_REACTIVATED,
    TENANT_RESTORED,
    TENANT_DELETED,
    AUTHN_LOGIN_SUCCESS,
    AUTHN_LOGIN_FAIL,
    AUTHN_LOGIN_LOCK,
    AUTHN_PASSWORD_CHANGE,
    AUTHN_TOKEN_CREATED,
    AUTHN_TOKEN_REVOKED,
    AUTHN_TOKEN_REUSE,
    AUTHZ_FAIL,
    USER_CREATED,
    USER_UPDATED,
    USER_DELETED,
    PRIVILEGE_PERMISSIONS_CHANGED,
    KEY_ROTATED,
    KEY_DESTROYED,
    WORKFLOW_SUBMITTED,
    WORKFLOW_CANCELLED,
    WORKFLOW_FAILED,
    WORKFLOW_SIGNALLED,
    WORKFLOW_RETRIED,
    SCHEDULE_CREATED,
    SCHEDULE_UPDATED,
    SCHEDULE_DELETED,
    INTEGRATION_CREATED,
    INTEGRATION_UPDATED,
    INTEGRATION_DELETED,
    PROJECT_CREATED,
    PROJECT_UPDATED,
    PROJECT_DELETED,
    SNAPSHOT_CREATED,
    SNAPSHOT_DELETED,
    ANALYSIS_CREATED,
    ANALYSIS_UPDATED,
    ANALYSIS_DELETED,
    RETENTION_POLICY_SET,
    LEGAL_HOLD_PLACED,
    LEGAL_HOLD_RELEASED,
    BACKUP_RESTORED,
];
