//! Stored password hashes as read from a database row or imported from another system:
//! Argon2 PHC strings and bcrypt (`PasswordHash::parse`, `import_bcrypt`). Nothing may panic,
//! what import accepts must also be readable at verification time, and an accepted hash
//! must verify (or refuse) a password within the host's limits without panicking.
#![no_main]

use ate_auth::password::{Password, PasswordHash, PasswordHasher, import_bcrypt};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static HASHER: LazyLock<PasswordHasher> = LazyLock::new(PasswordHasher::insecure_for_tests);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = PasswordHash::parse(text);
    if let Ok(imported) = import_bcrypt(text) {
        assert_eq!(imported.as_str(), text);
        assert!(
            parsed.is_ok(),
            "an imported bcrypt hash is unreadable at login"
        );
    }
    if let Ok(hash) = parsed {
        assert_eq!(hash.as_str(), text);
        // Checking a password costs what the hash asks for; only cheap ones are run here
        // (bcrypt cost 4–5, Argon2 with little memory and one pass).
        if cheap(text) {
            let _ = HASHER.verify_blocking(&Password::new("correct horse"), text);
        }
    }
});

fn cheap(text: &str) -> bool {
    if let Some(rest) = text
        .strip_prefix("$2b$")
        .or_else(|| text.strip_prefix("$2a$"))
        .or_else(|| text.strip_prefix("$2y$"))
    {
        return rest.starts_with("04$") || rest.starts_with("05$");
    }
    // m= in KiB and t=; anything unclear counts as expensive.
    let field = |name: &str| -> Option<u64> {
        text.split(['$', ','])
            .find_map(|p| p.strip_prefix(name))
            .and_then(|v| v.parse().ok())
    };
    matches!((field("m="), field("t=")), (Some(m), Some(t)) if m <= 256 && t <= 2)
}
