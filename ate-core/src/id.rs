//! Typed identifiers.
//!
//! Every entity id is its own newtype over a UUIDv7, so a `UserId` can never be passed where
//! a `TenantId` is expected. UUIDv7 ids sort by creation time, which keeps B-tree indexes
//! append-mostly and makes id order a stable pagination key.
//!
//! Parsing is strict: the canonical hyphenated form (either case), version 7, RFC 9562
//! variant. Anything else is rejected with [`CoreError::InvalidInput`] naming the id type.
//!
//! ```
//! use ate_core::TenantId;
//!
//! let id = TenantId::new();
//! let parsed: TenantId = id.to_string().parse().unwrap();
//! assert_eq!(id, parsed);
//! assert!("not-an-id".parse::<TenantId>().is_err());
//! ```

use crate::error::CoreError;
use uuid::Uuid;

/// Parses a canonical, hyphenated UUIDv7; `what` names the id type in the error.
pub(crate) fn parse_v7(what: &'static str, s: &str) -> Result<Uuid, CoreError> {
    // Only the 36-character hyphenated form: `Uuid::parse_str` would also accept braces,
    // URNs and the simple form, which makes ids non-canonical in logs and URLs.
    if s.len() != 36 {
        return Err(CoreError::invalid(
            what,
            format!(
                "expected a 36-character hyphenated UUID, got {} characters",
                s.len()
            ),
        ));
    }
    let uuid = Uuid::try_parse(s)
        .map_err(|e| CoreError::invalid(what, format!("{s:?} is not a UUID: {e}")))?;
    from_uuid_v7(what, uuid)
}

/// Checks that `uuid` is a version-7, RFC 9562 variant UUID.
pub(crate) fn from_uuid_v7(what: &'static str, uuid: Uuid) -> Result<Uuid, CoreError> {
    if uuid.get_version_num() != 7 || uuid.get_variant() != uuid::Variant::RFC4122 {
        return Err(CoreError::invalid(
            what,
            format!(
                "{uuid} is not a UUIDv7 (version {})",
                uuid.get_version_num()
            ),
        ));
    }
    Ok(uuid)
}

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh id (UUIDv7, monotonic within this process).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID, which must be a UUIDv7.
            pub fn from_uuid(uuid: Uuid) -> Result<Self, CoreError> {
                from_uuid_v7($what, uuid).map(Self)
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// The id's 16 bytes (big-endian UUID layout), e.g. for binding into crypto contexts.
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0.hyphenated())
            }
        }

        impl std::str::FromStr for $name {
            type Err = CoreError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_v7($what, s).map(Self)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0.hyphenated())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

define_id!(
    /// Identifies a tenant (an organization, the unit of isolation).
    TenantId,
    "tenant id"
);
define_id!(
    /// Identifies a user within a tenant.
    UserId,
    "user id"
);
define_id!(
    /// Identifies a project (a codebase) within a tenant.
    ProjectId,
    "project id"
);
define_id!(
    /// Identifies a snapshot (one import of a project's codebase).
    SnapshotId,
    "snapshot id"
);
define_id!(
    /// Identifies an analysis result (one analyzer's findings on a project or snapshot).
    AnalysisId,
    "analysis id"
);
define_id!(
    /// Identifies a workflow run within a tenant.
    RunId,
    "run id"
);
define_id!(
    /// Identifies a stored object (blob) within a tenant.
    ObjectId,
    "object id"
);
define_id!(
    /// Identifies one audit event.
    AuditEventId,
    "audit event id"
);
define_id!(
    /// Identifies a key (a tenant data key, a signing key).
    KeyId,
    "key id"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Classify, ErrorKind};

    #[test]
    fn round_trips_through_display_and_serde() {
        let id = ProjectId::new();
        assert_eq!(id.to_string().parse::<ProjectId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<ProjectId>(&json).unwrap(), id);
    }

    #[test]
    fn uppercase_canonical_form_is_accepted() {
        let id = TenantId::new();
        let upper = id.to_string().to_uppercase();
        assert_eq!(upper.parse::<TenantId>().unwrap(), id);
    }

    #[test]
    fn rejects_malformed_ids_with_typed_errors() {
        let v4 = "2c5ea4c0-4067-41ab-9d6c-1e7a6f1d2a3b";
        let id = TenantId::new().to_string();
        let braced = format!("{{{id}}}");
        let simple = id.replace('-', "");
        let urn = format!("urn:uuid:{id}");
        let bad_char = format!("{}g", &id[..35]);
        let nil = "00000000-0000-0000-0000-000000000000";
        for input in [
            "",
            "not-an-id",
            v4,
            &braced,
            &simple,
            &urn,
            &bad_char,
            nil,
            " ",
        ] {
            let err = input.parse::<TenantId>().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{input:?}");
            assert!(err.to_string().contains("tenant id"), "{err}");
        }
        let err = serde_json::from_str::<UserId>("\"nope\"").unwrap_err();
        assert!(err.to_string().contains("user id"), "{err}");
    }

    #[test]
    fn new_ids_sort_by_creation() {
        let a = ObjectId::new();
        let b = ObjectId::new();
        assert!(a < b);
    }
}
