//! Strict JSON for JOSE: objects whose member names are unique at every depth.
//!
//! `serde_json` silently keeps the last of two members with the same name. RFC 7515 §5.2
//! allows that, but two parsers that disagree on *which* duplicate wins is a classic token
//! bypass (one component checks `"alg":"EdDSA"`, another acts on `"alg":"none"`), so ATE
//! rejects duplicates in headers, claims and JWKS documents alike.

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// Parses `bytes` as a JSON object with no duplicate member names (at any depth).
///
/// The error is a short description fit for an error message; it never echoes the input.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut de).map_err(|e| describe(&e))?;
    de.end().map_err(|e| describe(&e))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err("not a JSON object".to_owned()),
    }
}

fn describe(e: &serde_json::Error) -> String {
    // serde_json's messages name the problem and its position, never the content.
    format!("malformed JSON ({e})")
}

/// A `DeserializeSeed` producing a `serde_json::Value` that refuses duplicate member names.
#[derive(Clone, Copy)]
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            if map.contains_key(&name) {
                return Err(de::Error::custom("duplicate member name"));
            }
            let value = access.next_value_seed(StrictValue)?;
            map.insert(name, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_json_accepts_plain_objects() {
        let map = parse_object(br#"{"a":1,"b":[1,2,{"c":null}],"d":-5,"e":1.5,"f":"x"}"#).unwrap();
        assert_eq!(map["a"], 1);
        assert_eq!(map["d"], -5);
        assert_eq!(map["e"], 1.5);
        assert_eq!(map["b"][2]["c"], Value::Null);
    }

    #[test]
    fn jwt_json_rejects_duplicates_at_any_depth() {
        for doc in [
            br#"{"alg":"EdDSA","alg":"none"}"#.as_slice(),
            br#"{"x":{"k":1,"k":2}}"#,
            br#"{"x":[{"k":1,"k":1}]}"#,
        ] {
            let e = parse_object(doc).unwrap_err();
            assert!(e.contains("duplicate"), "{e}");
        }
    }

    #[test]
    fn jwt_json_rejects_non_objects_trailing_data_and_bad_utf8() {
        for doc in [
            b"[1]".as_slice(),
            b"\"s\"",
            b"1",
            b"null",
            b"{} {}",
            b"{}x",
            b"",
            b"{\"a\":\"\xff\"}",
            br#"{"a":"\ud800"}"#,
        ] {
            assert!(parse_object(doc).is_err(), "{doc:?}");
        }
    }
}
