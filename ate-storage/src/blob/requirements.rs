//! What ATE needs of an OpenDAL operator, checked once when a [`BlobStore`](super::BlobStore)
//! is built, so a backend that cannot serve ATE is refused up front rather than failing on
//! the first upload or the first garbage collection.

use crate::error::StorageError;
use opendal::Capability;

/// One capability ATE relies on, and why.
struct Requirement {
    /// The [`Capability`] field's name, as OpenDAL spells it.
    name: &'static str,
    /// What ATE uses it for (shown in the error).
    used_for: &'static str,
    has: fn(&Capability) -> bool,
}

/// Every capability a blob backend must declare. Streaming uploads need no capability of
/// their own: OpenDAL's writer accepts many writes on every service (buffering when the
/// service cannot take parts), and `write_can_multi` only says whether it must buffer.
const REQUIRED: &[Requirement] = &[
    Requirement {
        name: "read",
        used_for: "ranged reads of objects",
        has: |c| c.read,
    },
    Requirement {
        name: "write",
        used_for: "uploads",
        has: |c| c.write,
    },
    Requirement {
        name: "stat",
        used_for: "blob sizes",
        has: |c| c.stat,
    },
    Requirement {
        name: "delete",
        used_for: "overwrites, deletes, aborted uploads and garbage collection",
        has: |c| c.delete,
    },
    Requirement {
        name: "list",
        used_for: "garbage collection of orphan blobs and staged uploads",
        has: |c| c.list,
    },
];

/// The capabilities of `capability` that ATE needs and that are missing, by OpenDAL name.
pub(super) fn missing(capability: &Capability) -> Vec<&'static str> {
    REQUIRED
        .iter()
        .filter(|r| !(r.has)(capability))
        .map(|r| r.name)
        .collect()
}

/// Refuses an operator of `scheme` that lacks a capability ATE needs, naming each one.
pub(super) fn check(scheme: &str, capability: &Capability) -> Result<(), StorageError> {
    let missing = missing(capability);
    if missing.is_empty() {
        return Ok(());
    }
    let uses = REQUIRED
        .iter()
        .filter(|r| missing.contains(&r.name))
        .map(|r| format!("{} ({})", r.name, r.used_for))
        .collect::<Vec<_>>()
        .join(", ");
    Err(StorageError::UnsupportedBackend {
        scheme: scheme.to_owned(),
        missing,
        reason: format!("ATE needs {uses}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ate_core::{Classify, ErrorKind};

    fn everything() -> Capability {
        Capability {
            read: true,
            write: true,
            stat: true,
            delete: true,
            list: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_complete_capability_passes() {
        assert!(check("x", &everything()).is_ok());
        assert!(missing(&everything()).is_empty());
    }

    #[test]
    fn each_missing_capability_is_named() {
        for r in REQUIRED {
            let mut cap = everything();
            match r.name {
                "read" => cap.read = false,
                "write" => cap.write = false,
                "stat" => cap.stat = false,
                "delete" => cap.delete = false,
                "list" => cap.list = false,
                other => panic!("no test for requirement {other}"),
            }
            let err = check("gdrive", &cap).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
            let StorageError::UnsupportedBackend {
                scheme, missing, ..
            } = &err
            else {
                panic!("expected UnsupportedBackend, got {err:?}");
            };
            assert_eq!(
                (scheme.as_str(), missing.as_slice()),
                ("gdrive", &[r.name][..])
            );
            assert!(err.to_string().contains(r.name), "{err}");
            assert!(err.to_string().contains("gdrive"), "{err}");
        }
        let none = check("nothing", &Capability::default()).unwrap_err();
        let StorageError::UnsupportedBackend { missing, .. } = none else {
            panic!("expected UnsupportedBackend");
        };
        assert_eq!(missing, ["read", "write", "stat", "delete", "list"]);
    }
}
