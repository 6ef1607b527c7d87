//! The hash chain: canonical encoding of an event and the link hash.
//!
//! `hash(event) = SHA-256(prev_hash ‖ encode(event))` where `prev_hash` is the previous
//! event's hash in the same tenant (32 zero bytes for the first event) and `encode` is:
//!
//! ```text
//! "ate.audit.v1" 0x00
//! id            16 bytes (UUID)
//! tenant        16 bytes (UUID)
//! seq           u64 big-endian
//! occurred_at   i64 big-endian, microseconds since the Unix epoch
//! actor         field
//! action        field
//! target        optional field
//! outcome       field
//! client_addr   optional field (textual IP address)
//! user_agent    optional field
//! metadata      field (canonical JSON: object keys sorted, no insignificant whitespace)
//!
//! field          = u32 big-endian byte length ‖ UTF-8 bytes
//! optional field = 0x00 (absent) | 0x01 ‖ field
//! ```
//!
//! Length prefixes make the encoding injective: no two different events encode alike, so an
//! attacker cannot move bytes between fields and keep the hash. The format is versioned by
//! its domain tag; an external auditor can re-implement it from this description alone.

use sha2::{Digest, Sha256};

/// The `prev_hash` of a tenant's first event.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// The fields that are hashed, borrowed from an event being appended or verified.
#[derive(Debug)]
pub(crate) struct Encodable<'a> {
    pub id: &'a [u8; 16],
    pub tenant: &'a [u8; 16],
    pub seq: u64,
    pub occurred_at_micros: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub outcome: &'a str,
    pub client_addr: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub metadata: &'a str,
}

fn field(h: &mut Sha256, s: &str) {
    // Every field is capped far below 4 GiB on append, so the length always fits.
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    h.update(len.to_be_bytes());
    h.update(s.as_bytes());
}

fn optional(h: &mut Sha256, s: Option<&str>) {
    match s {
        None => h.update([0u8]),
        Some(s) => {
            h.update([1u8]);
            field(h, s);
        }
    }
}

/// The link hash of `event` following `prev`.
pub(crate) fn link_hash(prev: &[u8; 32], event: &Encodable<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(b"ate.audit.v1\0");
    h.update(event.id);
    h.update(event.tenant);
    h.update(event.seq.to_be_bytes());
    h.update(event.occurred_at_micros.to_be_bytes());
    field(&mut h, event.actor);
    field(&mut h, event.action);
    optional(&mut h, event.target);
    field(&mut h, event.outcome);
    optional(&mut h, event.client_addr);
    optional(&mut h, event.user_agent);
    field(&mut h, event.metadata);
    h.finalize().into()
}

/// Serializes JSON with object keys sorted at every level, independent of how the
/// `serde_json` map type orders them in this build.
pub(crate) fn canonical_json(value: &serde_json::Value) -> String {
    use serde_json::Value;
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(metadata: &'a str, target: Option<&'a str>) -> Encodable<'a> {
        Encodable {
            id: &[1; 16],
            tenant: &[2; 16],
            seq: 1,
            occurred_at_micros: 1_700_000_000_000_000,
            actor: "user:alice",
            action: "tenant_created",
            target,
            outcome: "success",
            client_addr: None,
            user_agent: None,
            metadata,
        }
    }

    #[test]
    fn hash_depends_on_every_input() {
        let base = link_hash(&GENESIS_HASH, &sample("{}", None));
        assert_ne!(base, link_hash(&[1; 32], &sample("{}", None)));
        assert_ne!(base, link_hash(&GENESIS_HASH, &sample("{\"a\":1}", None)));
        assert_ne!(base, link_hash(&GENESIS_HASH, &sample("{}", Some(""))));
        assert_eq!(base, link_hash(&GENESIS_HASH, &sample("{}", None)));
    }

    #[test]
    fn moving_bytes_between_fields_changes_the_hash() {
        let mut a = sample("{}", None);
        a.actor = "ab";
        a.action = "c";
        let mut b = sample("{}", None);
        b.actor = "a";
        b.action = "bc";
        assert_ne!(link_hash(&GENESIS_HASH, &a), link_hash(&GENESIS_HASH, &b));
    }

    #[test]
    fn canonical_json_sorts_keys_recursively() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"b": {"z": 1, "a": [ {"y": 2, "x": 1} ]}, "a": null}"#)
                .unwrap();
        assert_eq!(
            canonical_json(&v),
            r#"{"a":null,"b":{"a":[{"x":1,"y":2}],"z":1}}"#
        );
    }
}
