//! Access-token claims and the strict checks applied to every verified payload.

use super::kid::random_bytes;
use crate::AuthError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The claims of an ATE access token (RFC 7519 §4.1 plus `tenant`, `roles` and the
/// optional session id `sid`, as in OpenID Connect logout).
///
/// Times are NumericDates: whole seconds since the Unix epoch. `aud` serializes as a string
/// when it holds one audience, as an array otherwise (RFC 7519 §4.1.3 allows both).
///
/// ```
/// use ate_auth::jwt::Claims;
///
/// let now = 1_700_000_000;
/// let claims = Claims::new("https://auth.example", "api", "user-1", "tenant-1", now, now + 900,
///                          Claims::random_jti()?)
///     .with_roles(["admin"])
///     .session("session-7");
/// claims.check()?;
/// let json = serde_json::to_value(&claims)?;
/// assert_eq!(json["aud"], "api");
/// assert_eq!(json["nbf"], now);
/// assert_eq!(json["sid"], "session-7");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: who signed the token.
    pub iss: String,
    /// Audience: who the token is for.
    #[serde(with = "one_or_many")]
    pub aud: Vec<String>,
    /// Subject: the user (or service) the token speaks for.
    pub sub: String,
    /// The tenant the subject acts in.
    pub tenant: String,
    /// The subject's roles in that tenant.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Expiry (NumericDate).
    pub exp: i64,
    /// Issued at (NumericDate).
    pub iat: i64,
    /// Not before (NumericDate).
    pub nbf: i64,
    /// A unique token id.
    pub jti: String,
    /// The session the token was issued in, if any (`sid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl Claims {
    /// Claims issued at `issued_at` and expiring at `expires_at` (seconds since the epoch),
    /// usable at once (`nbf = iat`), with no roles and no session. Nothing is checked here;
    /// [`check`](Self::check) (which [`SigningKey::sign`](super::SigningKey::sign) runs) does.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        subject: impl Into<String>,
        tenant: impl Into<String>,
        issued_at: i64,
        expires_at: i64,
        jti: impl Into<String>,
    ) -> Claims {
        Claims {
            iss: issuer.into(),
            aud: vec![audience.into()],
            sub: subject.into(),
            tenant: tenant.into(),
            roles: Vec::new(),
            exp: expires_at,
            iat: issued_at,
            nbf: issued_at,
            jti: jti.into(),
            sid: None,
        }
    }

    /// A fresh `jti`: 128 random bits, base64url (22 characters).
    pub fn random_jti() -> Result<String, AuthError> {
        Ok(URL_SAFE_NO_PAD.encode(random_bytes::<16>()?))
    }

    /// The same claims with these roles.
    pub fn with_roles<R: Into<String>>(mut self, roles: impl IntoIterator<Item = R>) -> Claims {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// The same claims with this session id (`sid`).
    pub fn session(mut self, sid: impl Into<String>) -> Claims {
        self.sid = Some(sid.into());
        self
    }

    /// Checks the shape [`Verifier`](super::Verifier) requires (time windows aside): `iss`,
    /// `sub`, `tenant`, `jti`, `sid` (if set) and every audience and role non-empty, at least
    /// one audience, `iat <= nbf < exp`. [`SigningKey::sign`](super::SigningKey::sign) calls it, so a token
    /// that could never verify is never issued.
    pub fn check(&self) -> Result<(), AuthError> {
        let bad = |reason: &str| Err(AuthError::invalid("claims", reason));
        for (name, value) in [
            ("iss", &self.iss),
            ("sub", &self.sub),
            ("tenant", &self.tenant),
            ("jti", &self.jti),
        ] {
            if value.is_empty() {
                return bad(&format!("{name} is empty"));
            }
        }
        if self.aud.is_empty() || self.aud.iter().any(String::is_empty) {
            return bad("aud must hold at least one non-empty audience");
        }
        if self.sid.as_ref().is_some_and(String::is_empty) {
            return bad("sid is empty");
        }
        if self.roles.iter().any(String::is_empty) {
            return bad("roles must not contain an empty role");
        }
        if self.exp <= self.iat || self.exp <= self.nbf {
            return bad("exp must be after iat and nbf");
        }
        if self.nbf < self.iat {
            return bad("nbf must not be before iat");
        }
        Ok(())
    }
}

/// Serializes one audience as a string and several as an array; reads both.
mod one_or_many {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(aud: &[String], s: S) -> Result<S::Ok, S::Error> {
        match aud {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        })
    }
}

/// What a verifier expects of the registered claims.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expectations<'a> {
    pub(crate) issuer: &'a str,
    pub(crate) audience: &'a str,
    /// The verification time, seconds since the epoch.
    pub(crate) now: i64,
    /// Allowed clock skew, seconds.
    pub(crate) leeway: i64,
}

/// Which claims must be present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Profile {
    /// ATE's own access tokens: everything required.
    Ate,
    /// Another issuer's tokens: `iss`, `aud`, `exp` required; `nbf`, `iat`, `sub`, `jti`
    /// checked when present.
    External,
}

/// Checks the registered claims of a verified payload: JSON types, issuer, audience and
/// time window. See the module documentation for the rules.
pub(crate) fn check_registered(
    claims: &Map<String, Value>,
    expect: &Expectations<'_>,
    profile: Profile,
) -> Result<(), AuthError> {
    let required = profile == Profile::Ate;
    if required {
        string_claim(claims, "sid")?; // optional, but a string when present
    }
    let missing = |name: &str| AuthError::token(format!("claim {name} is missing"));

    let iss = string_claim(claims, "iss")?.ok_or_else(|| missing("iss"))?;
    if iss != expect.issuer {
        return Err(AuthError::token("token is from another issuer (iss)"));
    }
    let audiences = audience_claim(claims)?.ok_or_else(|| missing("aud"))?;
    if !audiences.contains(&expect.audience) {
        return Err(AuthError::token("token is not for this audience (aud)"));
    }
    for name in ["sub", "jti"] {
        if string_claim(claims, name)?.is_none() && required {
            return Err(missing(name));
        }
    }

    let exp = numeric_date(claims, "exp")?.ok_or_else(|| missing("exp"))?;
    let nbf = numeric_date(claims, "nbf")?;
    let iat = numeric_date(claims, "iat")?;
    if required {
        nbf.ok_or_else(|| missing("nbf"))?;
        iat.ok_or_else(|| missing("iat"))?;
    }
    if expect.now.saturating_sub(expect.leeway) >= exp {
        return Err(AuthError::token("token has expired (exp)"));
    }
    let latest = expect.now.saturating_add(expect.leeway);
    if nbf.is_some_and(|nbf| nbf > latest) {
        return Err(AuthError::token("token is not valid yet (nbf)"));
    }
    if iat.is_some_and(|iat| iat > latest) {
        return Err(AuthError::token("token was issued in the future (iat)"));
    }
    if iat.is_some_and(|iat| iat >= exp) || nbf.is_some_and(|nbf| nbf >= exp) {
        return Err(AuthError::token("exp is not after iat/nbf"));
    }
    Ok(())
}

/// The claims of an ATE token, after [`check_registered`] with [`Profile::Ate`].
pub(crate) fn ate_claims(
    claims: &Map<String, Value>,
    expect: &Expectations<'_>,
) -> Result<Claims, AuthError> {
    check_registered(claims, expect, Profile::Ate)?;
    let text = |name: &str| -> Result<String, AuthError> {
        string_claim(claims, name)?
            .map(str::to_owned)
            .ok_or_else(|| AuthError::token(format!("claim {name} is missing")))
    };
    let date = |name: &str| -> Result<i64, AuthError> {
        numeric_date(claims, name)?
            .ok_or_else(|| AuthError::token(format!("claim {name} is missing")))
    };
    let roles = match claims.get("roles") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(role) if !role.is_empty() => Ok(role.clone()),
                _ => Err(AuthError::token(
                    "claim roles must be an array of non-empty strings",
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(AuthError::token(
                "claim roles must be an array of non-empty strings",
            ));
        }
    };
    Ok(Claims {
        iss: text("iss")?,
        aud: audience_claim(claims)?
            .unwrap_or_default()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        sub: text("sub")?,
        tenant: text("tenant")?,
        roles,
        exp: date("exp")?,
        iat: date("iat")?,
        nbf: date("nbf")?,
        jti: text("jti")?,
        sid: string_claim(claims, "sid")?.map(str::to_owned),
    })
}

/// A NumericDate claim: a JSON integer that fits `i64`. Fractional seconds (`1.5`), floats
/// (`1e9`, `1.0`), strings (`"9999999999"`) and booleans are rejected; RFC 7519 permits
/// non-integer NumericDates, but no issuer ATE knows sends them and accepting several
/// spellings of a number is how validators come to disagree.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
        Some(_) => Err(AuthError::token(format!(
            "claim {name} must be an integer NumericDate"
        ))),
    }
}

/// A non-empty string claim, if present.
fn string_claim<'a>(
    claims: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
        Some(_) => Err(AuthError::token(format!(
            "claim {name} must be a non-empty string"
        ))),
    }
}

/// `aud`: a non-empty string or a non-empty array of non-empty strings.
fn audience_claim(claims: &Map<String, Value>) -> Result<Option<Vec<&str>>, AuthError> {
    let invalid = || AuthError::token("claim aud must be a string or a non-empty array of strings");
    match claims.get("aud") {
        None => Ok(None),
        Some(Value::String(one)) if !one.is_empty() => Ok(Some(vec![one])),
        Some(Value::Array(many)) if !many.is_empty() => many
            .iter()
            .map(|v| v.as_str().filter(|s| !s.is_empty()).ok_or_else(invalid))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;

    fn expect() -> Expectations<'static> {
        Expectations {
            issuer: "https://issuer.example",
            audience: "api",
            now: NOW,
            leeway: 30,
        }
    }

    fn base() -> Map<String, Value> {
        let Value::Object(map) = json!({
            "iss": "https://issuer.example", "aud": "api", "sub": "u1", "tenant": "t1",
            "roles": ["admin"], "exp": NOW + 600, "iat": NOW - 100, "nbf": NOW - 100, "jti": "j1",
        }) else {
            unreachable!()
        };
        map
    }

    fn with(name: &str, value: Value) -> Map<String, Value> {
        let mut map = base();
        map.insert(name.to_owned(), value);
        map
    }

    fn without(name: &str) -> Map<String, Value> {
        let mut map = base();
        map.remove(name);
        map
    }

    fn rejects(map: Map<String, Value>, profile: Profile, expected: &str) {
        let result = match profile {
            Profile::Ate => ate_claims(&map, &expect()).map(|_| ()),
            Profile::External => check_registered(&map, &expect(), profile),
        };
        match result {
            Ok(()) => panic!("accepted {map:?}"),
            Err(AuthError::InvalidToken { reason }) => {
                assert!(reason.contains(expected), "{reason} (wanted {expected})")
            }
            Err(other) => panic!("wrong error {other:?}"),
        }
    }

    #[test]
    fn jwt_claims_valid_payload_reads_back() {
        let claims = ate_claims(&base(), &expect()).unwrap();
        assert_eq!(claims.sub, "u1");
        assert_eq!(claims.tenant, "t1");
        assert_eq!(claims.roles, ["admin"]);
        assert_eq!(claims.aud, ["api"]);
        let array = with("aud", json!(["other", "api"]));
        assert_eq!(ate_claims(&array, &expect()).unwrap().aud, ["other", "api"]);
        assert!(
            ate_claims(&without("roles"), &expect())
                .unwrap()
                .roles
                .is_empty()
        );
    }

    #[test]
    fn jwt_claims_required_for_ate_tokens() {
        for name in ["iss", "aud", "sub", "tenant", "jti", "exp", "iat", "nbf"] {
            rejects(without(name), Profile::Ate, "missing");
        }
        for name in ["iss", "aud", "exp"] {
            rejects(without(name), Profile::External, "missing");
        }
        for name in ["sub", "tenant", "jti", "iat", "nbf", "roles"] {
            check_registered(&without(name), &expect(), Profile::External).unwrap();
        }
    }

    #[test]
    fn jwt_claims_types_are_strict() {
        for profile in [Profile::Ate, Profile::External] {
            for name in ["exp", "iat", "nbf"] {
                for bad in [
                    json!("9999999999"),
                    json!(1_700_000_100.5),
                    json!(1.7e9),
                    json!(1_700_000_100.0),
                    json!(u64::MAX),
                    json!(true),
                    json!(null),
                    json!([NOW]),
                ] {
                    rejects(with(name, bad), profile, "integer NumericDate");
                }
            }
            for name in ["iss", "sub", "jti"] {
                for bad in [json!(1), json!(""), json!(["x"]), json!(null)] {
                    rejects(with(name, bad), profile, "non-empty string");
                }
            }
            for bad in [
                json!(1),
                json!([]),
                json!(["api", 1]),
                json!(""),
                json!({"a": 1}),
            ] {
                rejects(with("aud", bad), profile, "claim aud");
            }
        }
        for bad in [json!(""), json!(5)] {
            rejects(with("tenant", bad), Profile::Ate, "non-empty string");
        }
        for bad in [json!("admin"), json!([1]), json!([""]), json!({"r": 1})] {
            rejects(with("roles", bad), Profile::Ate, "roles");
        }
    }

    #[test]
    fn jwt_claims_issuer_and_audience_must_match() {
        for profile in [Profile::Ate, Profile::External] {
            rejects(
                with("iss", json!("https://evil.example")),
                profile,
                "issuer",
            );
            rejects(
                with("iss", json!("https://ISSUER.example")),
                profile,
                "issuer",
            );
            rejects(with("aud", json!("API")), profile, "audience");
            rejects(with("aud", json!(["x", "y"])), profile, "audience");
        }
    }

    #[test]
    fn jwt_claims_time_window_with_leeway() {
        for profile in [Profile::Ate, Profile::External] {
            // exp: valid until now - leeway reaches it.
            check_registered(&with("exp", json!(NOW - 29)), &expect(), profile).unwrap();
            rejects(with("exp", json!(NOW - 30)), profile, "expired");
            rejects(with("exp", json!(NOW - 31)), profile, "expired");
            // nbf and iat: up to `leeway` in the future.
            check_registered(&with("nbf", json!(NOW + 30)), &expect(), profile).unwrap();
            rejects(with("nbf", json!(NOW + 31)), profile, "not valid yet");
            check_registered(&with("iat", json!(NOW + 30)), &expect(), profile).unwrap();
            rejects(with("iat", json!(NOW + 31)), profile, "future");
            // A window that ends where it starts is rejected even inside the leeway.
            for (iat, nbf) in [(NOW, NOW - 10), (NOW - 10, NOW)] {
                let mut inverted = with("exp", json!(NOW));
                inverted.insert("iat".into(), json!(iat));
                inverted.insert("nbf".into(), json!(nbf));
                let e = check_registered(&inverted, &expect(), profile).unwrap_err();
                assert!(e.to_string().contains("not after"), "{e}");
            }
        }
        // Extreme values neither overflow nor pass.
        let far = Expectations {
            now: i64::MAX,
            leeway: 300,
            ..expect()
        };
        assert!(check_registered(&base(), &far, Profile::Ate).is_err());
        let mut huge = with("exp", json!(i64::MAX));
        huge.insert("nbf".into(), json!(i64::MIN));
        huge.insert("iat".into(), json!(i64::MIN));
        check_registered(&huge, &expect(), Profile::Ate).unwrap();
    }

    #[test]
    fn jwt_claims_new_check_and_serde() {
        let jti = Claims::random_jti().unwrap();
        assert_eq!(jti.len(), 22);
        assert_ne!(jti, Claims::random_jti().unwrap());
        let claims = Claims::new("i", "a", "s", "t", NOW, NOW + 60, jti).with_roles(["r1", "r2"]);
        claims.check().unwrap();
        assert_eq!((claims.iat, claims.nbf, claims.exp), (NOW, NOW, NOW + 60));
        let json = serde_json::to_value(&claims).unwrap();
        assert_eq!(json["aud"], "a");
        assert_eq!(json["roles"], json!(["r1", "r2"]));
        assert!(json.get("sid").is_none());
        let back: Claims = serde_json::from_value(json).unwrap();
        assert_eq!(back, claims);
        let mut two = claims.clone().session("s1");
        two.aud.push("b".into());
        let json = serde_json::to_value(&two).unwrap();
        assert_eq!(json["aud"], json!(["a", "b"]));
        assert_eq!(json["sid"], "s1");
        let ok = || Claims::new("i", "a", "s", "t", NOW, NOW + 60, "j");
        let broken = [
            Claims::new("", "a", "s", "t", NOW, NOW + 60, "j"),
            Claims::new("i", "", "s", "t", NOW, NOW + 60, "j"),
            Claims::new("i", "a", "", "t", NOW, NOW + 60, "j"),
            Claims::new("i", "a", "s", "", NOW, NOW + 60, "j"),
            Claims::new("i", "a", "s", "t", NOW, NOW + 60, ""),
            Claims::new("i", "a", "s", "t", NOW, NOW, "j"),
            ok().with_roles([""]),
            ok().session(""),
            Claims {
                nbf: NOW - 1,
                ..ok()
            },
            Claims {
                aud: vec![],
                ..ok()
            },
        ];
        for claims in broken {
            let e = claims.check().unwrap_err();
            assert!(matches!(e, AuthError::InvalidInput { .. }), "{claims:?}");
        }
    }

    #[test]
    fn jwt_claims_session_id_reads_back_and_is_typed() {
        let claims = ate_claims(&with("sid", json!("s-1")), &expect()).unwrap();
        assert_eq!(claims.sid.as_deref(), Some("s-1"));
        assert_eq!(ate_claims(&base(), &expect()).unwrap().sid, None);
        for bad in [json!(""), json!(1), json!(null)] {
            rejects(with("sid", bad), Profile::Ate, "sid");
        }
    }
}
