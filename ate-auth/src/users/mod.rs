//! Users of a tenant: identity, roles and permissions, state, and the lockout counters.
//!
//! Emails (and optional usernames) are unique per tenant after normalization: trimmed and
//! lowercased (the local part too, as Keycloak and Auth0 do: two accounts that differ only by
//! case are a phishing aid, never a feature). Domains must be ASCII (IDNs in punycode).
//!
//! Roles are `user`, `admin` (manages the users of its own tenant) and `super_admin` (a
//! platform administrator; its principal comes from [`Principal::platform_admin`](ate_core::Principal::platform_admin)). Roles map
//! to permissions in [`Role::permissions`]; extra permissions can be granted per user.
//! Nobody can grant a role or permission they do not hold themselves, and only platform
//! administrators grant `super_admin` or act across tenants ([`authorize_grant`]).
//!
//! Where things are:
//! * [`model`]: [`Role`], [`UserStatus`], [`User`], the permissions and the validation rules;
//! * `row`: how a user is stored (columns, row mapping, the reading statements);
//! * [`store`]: [`UserStore`], reading users and what verifying a token needs;
//! * [`create`]: [`NewUser`], creating a user or registering one with an organization, under
//!   the `max_users` quota;
//! * [`update`]: [`UserUpdate`], changing a user's name, roles, permissions and status;
//! * [`credentials`]: password hashes and invalidating issued access tokens;
//! * [`lockout`]: [`LockoutPolicy`], reserving login attempts and locking accounts.

pub mod create;
pub mod credentials;
pub mod lockout;
pub mod model;
pub(crate) mod row;
pub mod store;
pub mod update;

pub use create::NewUser;
pub use lockout::LockoutPolicy;
pub(crate) use lockout::{Attempt, RESET_ATTEMPTS, Refusal};
pub use model::{
    MAX_EMAIL_BYTES, MAX_NAME_CHARS, Role, RolePermissions, USERS_MANAGE, USERS_READ, User,
    UserCounts, UserStatus, authorize_grant, normalize_email, normalize_username, validate_name,
};
pub use store::UserStore;
pub use update::UserUpdate;
