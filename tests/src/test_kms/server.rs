//! The KMS side: a key store of named master keys and the request loop the `test-kms`
//! binary runs. Nothing here uses ATE: it has its own keys, cipher and wire format, as a
//! real KMS would.
//!
//! Wrapped blob (version 2 of this KMS's format, unrelated to ATE's envelope):
//!
//! ```text
//! "TK" ‖ 0x02 ‖ nonce (12 random bytes) ‖ ChaCha20-Poly1305(secret) ‖ tag (16)
//! AAD = "test-kms/v2" 0x00 ‖ u16be(len(key name)) ‖ key name ‖ context
//! ```

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use std::io::{BufRead, Write};

const MAGIC: &[u8; 2] = b"TK";
const VERSION: u8 = 2;
const TAG_LEN: usize = 16;
/// This KMS's own limits (ATE's contract asks for at least 4096 and 1024).
pub const MAX_SECRET: usize = 8 * 1024;
/// The longest context this KMS binds.
pub const MAX_CONTEXT: usize = 4 * 1024;

/// Named master keys: the first is current, the others retired (unwrap only).
pub struct KeyStore {
    keys: Vec<(String, LessSafeKey)>,
    rng: SystemRandom,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.keys.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("KeyStore").field("keys", &names).finish()
    }
}

impl KeyStore {
    /// Parses a key-store file: one `<name> <64 hex digits>` per line, current key first.
    pub fn parse(text: &str) -> Result<KeyStore, String> {
        let mut keys = Vec::new();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let (name, hex_key) = line
                .split_once(' ')
                .ok_or_else(|| format!("line {}: expected `<name> <hex key>`", n + 1))?;
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(format!("line {}: bad key name {name:?}", n + 1));
            }
            let raw = hex::decode(hex_key.trim())
                .map_err(|e| format!("line {}: key is not hex: {e}", n + 1))?;
            let key = UnboundKey::new(&CHACHA20_POLY1305, &raw)
                .map_err(|_| format!("line {}: a key is 32 bytes", n + 1))?;
            keys.push((name.to_owned(), LessSafeKey::new(key)));
        }
        if keys.is_empty() {
            return Err("the key store holds no key".into());
        }
        Ok(KeyStore {
            keys,
            rng: SystemRandom::new(),
        })
    }

    fn current(&self) -> &(String, LessSafeKey) {
        &self.keys[0]
    }

    fn key(&self, name: &str) -> Option<&LessSafeKey> {
        self.keys.iter().find(|(n, _)| n == name).map(|(_, k)| k)
    }

    /// Answers one request line (see [`super`] for the protocol).
    pub fn handle(&self, line: &str) -> String {
        let fields: Vec<&str> = line.split(' ').collect();
        let reply = match fields.as_slice() {
            ["current"] => Ok(format!("ok {}", self.current().0)),
            ["wrap", context, secret] => self.wrap(context, secret),
            ["unwrap", name, context, blob] => self.unwrap(name, context, blob),
            _ => Err(("invalid", "unknown request".to_owned())),
        };
        reply.unwrap_or_else(|(kind, message)| format!("err {kind} {message}"))
    }

    fn wrap(&self, context: &str, secret: &str) -> Result<String, (&'static str, String)> {
        let context = decode(context)?;
        let mut sealed = decode(secret)?;
        if sealed.is_empty() || sealed.len() > MAX_SECRET {
            return Err((
                "invalid",
                format!("secrets are 1 to {MAX_SECRET} bytes, got {}", sealed.len()),
            ));
        }
        if context.len() > MAX_CONTEXT {
            return Err((
                "invalid",
                format!("contexts are at most {MAX_CONTEXT} bytes"),
            ));
        }
        let (name, key) = self.current();
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| ("unavailable", "no randomness".to_owned()))?;
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(name, &context)),
            &mut sealed,
        )
        .map_err(|_| ("invalid", "cannot seal".to_owned()))?;
        let mut blob = Vec::with_capacity(3 + NONCE_LEN + sealed.len());
        blob.extend_from_slice(MAGIC);
        blob.push(VERSION);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(format!("ok {name} {}", hex::encode(blob)))
    }

    fn unwrap(
        &self,
        name: &str,
        context: &str,
        blob: &str,
    ) -> Result<String, (&'static str, String)> {
        let key = self
            .key(name)
            .ok_or_else(|| ("unknown-key", name.to_owned()))?;
        let context = decode(context)?;
        let blob = hex::decode(blob).map_err(|_| ("integrity", "blob is not hex".to_owned()))?;
        let damaged = || ("integrity", format!("blob under {name} does not open"));
        if blob.len() < 3 + NONCE_LEN + TAG_LEN || &blob[..2] != MAGIC || blob[2] != VERSION {
            return Err(damaged());
        }
        let nonce: [u8; NONCE_LEN] = blob[3..3 + NONCE_LEN].try_into().map_err(|_| damaged())?;
        let mut sealed = blob[3 + NONCE_LEN..].to_vec();
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(name, &context)),
                &mut sealed,
            )
            .map_err(|_| damaged())?;
        Ok(format!("ok {}", hex::encode(plain)))
    }
}

fn decode(field: &str) -> Result<Vec<u8>, (&'static str, String)> {
    hex::decode(field).map_err(|_| ("invalid", "field is not hex".to_owned()))
}

fn aad(name: &str, context: &[u8]) -> Vec<u8> {
    let mut aad = b"test-kms/v2\0".to_vec();
    aad.extend_from_slice(&u16::try_from(name.len()).unwrap_or(u16::MAX).to_be_bytes());
    aad.extend_from_slice(name.as_bytes());
    aad.extend_from_slice(context);
    aad
}

/// Answers requests from `input`, one line each, until it closes.
pub fn serve(keys: &KeyStore, input: impl BufRead, mut output: impl Write) -> std::io::Result<()> {
    for line in input.lines() {
        let reply = keys.handle(&line?);
        writeln!(output, "{reply}")?;
        output.flush()?;
    }
    Ok(())
}
