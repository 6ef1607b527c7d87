//! Tenant slugs and display names.

use crate::error::CoreError;
use std::fmt;

/// A tenant's unique, URL- and DNS-safe short name, e.g. `acme-corp`.
///
/// Rules: 3 to 63 bytes of lowercase ASCII letters, digits and hyphens; starts with a
/// letter; does not end with a hyphen or contain `--` (which DNS reserves for punycode);
/// not one of the [reserved names](Slug::RESERVED).
///
/// Because only ASCII is allowed, a look-alike such as `аcme` (Cyrillic `а`) can never
/// register next to `acme`; the error names the offending character and what it imitates.
///
/// ```
/// use ate_core::Slug;
///
/// assert!(Slug::new("acme-corp").is_ok());
/// let err = Slug::new("\u{430}cme").unwrap_err(); // Cyrillic small a
/// assert!(err.to_string().contains("looks like \"acme\""));
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    /// Shortest accepted slug, in bytes.
    pub const MIN_LEN: usize = 3;
    /// Longest accepted slug, in bytes (a DNS label).
    pub const MAX_LEN: usize = 63;
    /// Names that would collide with routes, hosts or roles a platform typically uses.
    pub const RESERVED: &'static [&'static str] = &[
        "admin", "api", "app", "auth", "default", "internal", "login", "platform", "root",
        "static", "status", "support", "system", "www",
    ];

    /// Validates `s` as a slug.
    pub fn new(s: impl AsRef<str>) -> Result<Slug, CoreError> {
        let s = s.as_ref();
        validate(s)?;
        Ok(Slug(s.to_owned()))
    }

    /// A slug read back from storage: it passed validation when it was created, and must
    /// stay loadable even if the rules (say, the reserved list) grow later.
    pub(crate) fn from_stored(s: String) -> Slug {
        Slug(s)
    }

    /// The slug text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn invalid(reason: String) -> CoreError {
    CoreError::invalid("tenant slug", reason)
}

fn validate(s: &str) -> Result<(), CoreError> {
    if s.is_empty() {
        return Err(invalid("must not be empty".into()));
    }
    if let Some(c) = s.chars().find(|c| !c.is_ascii()) {
        // Map only the non-ASCII characters to their confusable prototypes: the full skeleton
        // is a comparison form (it turns "m" into "rn"), not something to show a person.
        let skeleton: String = s
            .chars()
            .flat_map(|c| {
                let mapped: String = if c.is_ascii() {
                    c.to_string()
                } else {
                    unicode_security::confusable_detection::skeleton(c.encode_utf8(&mut [0; 4]))
                        .collect()
                };
                mapped.chars().collect::<Vec<_>>()
            })
            .collect();
        let hint = if skeleton.is_ascii() && skeleton != s {
            format!(", which looks like {skeleton:?}")
        } else {
            String::new()
        };
        return Err(invalid(format!(
            "{s:?} contains the non-ASCII character {c:?} (U+{:04X}){hint}; \
             slugs use only a-z, 0-9 and '-'",
            c as u32
        )));
    }
    if s.len() < Slug::MIN_LEN || s.len() > Slug::MAX_LEN {
        return Err(invalid(format!(
            "must be {} to {} characters, got {}",
            Slug::MIN_LEN,
            Slug::MAX_LEN,
            s.len()
        )));
    }
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(invalid(format!(
            "{s:?} contains uppercase letters; slugs are lowercase (did you mean {:?}?)",
            s.to_ascii_lowercase()
        )));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(invalid(format!(
            "{s:?} contains {c:?}; slugs use only a-z, 0-9 and '-'"
        )));
    }
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(invalid(format!("{s:?} must start with a letter")));
    }
    if s.ends_with('-') {
        return Err(invalid(format!("{s:?} must not end with '-'")));
    }
    if s.contains("--") {
        return Err(invalid(format!("{s:?} must not contain \"--\"")));
    }
    if Slug::RESERVED.contains(&s) {
        return Err(invalid(format!("{s:?} is reserved")));
    }
    Ok(())
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Slug({})", self.0)
    }
}

impl std::str::FromStr for Slug {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        Slug::new(s)
    }
}

impl<'de> serde::Deserialize<'de> for Slug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Slug::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Validates a tenant display name: 1 to 200 characters after trimming, with no control
/// characters and no bidirectional overrides (which can make a name render as another).
pub(crate) fn validate_display_name(name: &str) -> Result<String, CoreError> {
    const WHAT: &str = "tenant name";
    let name = name.trim();
    if name.is_empty() {
        return Err(CoreError::invalid(WHAT, "must not be empty"));
    }
    let chars = name.chars().count();
    if chars > 200 {
        return Err(CoreError::invalid(
            WHAT,
            format!("must be at most 200 characters, got {chars}"),
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control() || is_bidi_control(*c)) {
        return Err(CoreError::invalid(
            WHAT,
            format!("contains the control character U+{:04X}", c as u32),
        ));
    }
    Ok(name.to_owned())
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_good_slugs() {
        for s in ["acme", "acme-corp", "a1b", "team-42", &"a".repeat(63)] {
            assert_eq!(Slug::new(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn rejects_bad_slugs_with_reasons() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("ab", "3 to 63"),
            (&"a".repeat(64), "3 to 63"),
            ("Acme", "did you mean \"acme\""),
            ("ACME", "uppercase"),
            ("acme corp", "contains ' '"),
            ("acme_corp", "contains '_'"),
            ("acme.corp", "contains '.'"),
            ("1acme", "start with a letter"),
            ("-acme", "start with a letter"),
            ("acme-", "end with"),
            ("xn--acme", "\"--\""),
            ("admin", "reserved"),
            ("\u{430}cme", "looks like \"acme\""), // Cyrillic а
            ("acm\u{435}", "looks like \"acme\""), // Cyrillic е
            ("\u{ff41}cme", "U+FF41"),             // fullwidth a
            ("acme\u{200b}", "U+200B"),            // zero-width space
            ("caf\u{e9}", "non-ASCII"),
        ];
        for (input, needle) in cases {
            let err = Slug::new(input).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with("invalid tenant slug"), "{msg}");
            assert!(msg.contains(needle), "{input:?}: {msg} lacks {needle:?}");
        }
    }

    #[test]
    fn display_names_are_trimmed_and_checked() {
        assert_eq!(validate_display_name("  Acme Corp ").unwrap(), "Acme Corp");
        assert_eq!(validate_display_name("Ünïcødé Ltd").unwrap(), "Ünïcødé Ltd");
        assert!(validate_display_name("   ").is_err());
        assert!(validate_display_name("a\u{0}b").is_err());
        assert!(validate_display_name("evil\u{202E}gpj.exe").is_err());
        assert!(validate_display_name(&"x".repeat(201)).is_err());
        assert!(validate_display_name(&"é".repeat(200)).is_ok());
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<Slug>("\"acme\"").is_ok());
        assert!(serde_json::from_str::<Slug>("\"ACME\"").is_err());
    }
}
