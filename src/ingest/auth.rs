//! Metabase authentication: HTTP Basic `user-guid:secret` checked against the Argon2id hash
//! stored at registration.
//!
//! Policy for the `+`-for-space quirk (`metabase.md` §6.3): HTTP::Tiny sends a space in the
//! secret as `+` and never decodes it, so a secret "two words" arrives as `two+words`. A
//! password is accepted when it matches as sent, or when it matches after every `+` is read as
//! a space. `+`, `/` and `:` in real secrets round-trip unchanged, so no genuine secret is
//! refused; the only extra acceptance is a `+` typed where the secret has a space, which gives
//! an attacker nothing over guessing the secret itself.
//!
//! Argon2id is slow on purpose (tens of milliseconds). A successful verification is remembered
//! for [`CREDENTIAL_CACHE_TTL`] (the original Metabase cached secrets for 10 minutes), keyed by
//! user, stored hash and a SHA-256 of the presented password, so a busy tester costs one hash
//! per window, and a re-registration (a new stored hash) invalidates the entry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use base64::Engine;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{Error, Result};

/// How long a verified credential is trusted without re-hashing.
pub const CREDENTIAL_CACHE_TTL: Duration = Duration::from_secs(600);
/// Entries kept at most; the oldest half is dropped when full.
const CREDENTIAL_CACHE_CAPACITY: usize = 100_000;

/// Hashes a secret for storage (Argon2id, random salt, PHC string).
pub fn hash_secret(secret: &[u8]) -> Result<String> {
    Argon2::default()
        .hash_password(secret)
        .map(|hash| hash.to_string())
        .map_err(|error| Error::Internal(format!("hashing secret: {error}")))
}

/// Whether `password` (as sent in Basic auth) matches `stored_hash`, applying the `+` policy.
pub fn verify_secret(stored_hash: &str, password: &[u8]) -> bool {
    let Ok(parsed) = PasswordHash::new(stored_hash) else {
        tracing::error!("stored secret hash does not parse");
        return false;
    };
    let argon = Argon2::default();
    if argon.verify_password(password, &parsed).is_ok() {
        return true;
    }
    if !password.contains(&b'+') {
        return false;
    }
    let spaced: Vec<u8> = password
        .iter()
        .map(|&byte| if byte == b'+' { b' ' } else { byte })
        .collect();
    argon.verify_password(&spaced, &parsed).is_ok()
}

/// Credentials from an `Authorization: Basic` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    /// The user GUID.
    pub user: Uuid,
    /// The password bytes exactly as sent.
    pub password: Vec<u8>,
}

/// Parses `Authorization: Basic base64(guid:secret)`. The password is everything after the
/// first colon.
pub fn parse_basic_authorization(header: Option<&str>) -> Result<BasicCredentials> {
    let header = header.ok_or_else(|| {
        Error::Unauthorized(
            "authentication required: send HTTP Basic credentials (profile guid and secret)"
                .to_string(),
        )
    })?;
    let (scheme, encoded) = header
        .trim()
        .split_once(' ')
        .ok_or_else(|| Error::Unauthorized("malformed Authorization header".to_string()))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(Error::Unauthorized(
            "only HTTP Basic authentication is supported".to_string(),
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| Error::Unauthorized("Authorization header is not valid base64".to_string()))?;
    let colon = decoded
        .iter()
        .position(|&byte| byte == b':')
        .ok_or_else(|| Error::Unauthorized("Basic credentials lack a ':'".to_string()))?;
    let user_text = String::from_utf8_lossy(&decoded[..colon]).to_string();
    let user = Uuid::parse_str(&user_text)
        .map_err(|_| Error::Unauthorized(format!("User {user_text} unrecognized")))?;
    Ok(BasicCredentials {
        user,
        password: decoded[colon + 1..].to_vec(),
    })
}

/// Remembers recently verified credentials (see the module docs).
#[derive(Default)]
pub struct CredentialCache {
    entries: Mutex<HashMap<(Uuid, [u8; 32]), Instant>>,
}

impl CredentialCache {
    fn key(user: &Uuid, stored_hash: &str, password: &[u8]) -> (Uuid, [u8; 32]) {
        let mut digest = Sha256::new();
        digest.update(stored_hash.as_bytes());
        digest.update([0u8]);
        digest.update(password);
        (*user, digest.finalize().into())
    }

    /// Whether this exact credential was verified against this stored hash recently.
    pub fn is_fresh(&self, user: &Uuid, stored_hash: &str, password: &[u8]) -> bool {
        let key = Self::key(user, stored_hash, password);
        let entries = self.entries.lock().expect("credential cache lock");
        entries
            .get(&key)
            .is_some_and(|verified_at| verified_at.elapsed() < CREDENTIAL_CACHE_TTL)
    }

    /// Records a successful verification.
    pub fn remember(&self, user: &Uuid, stored_hash: &str, password: &[u8]) {
        let key = Self::key(user, stored_hash, password);
        let mut entries = self.entries.lock().expect("credential cache lock");
        if entries.len() >= CREDENTIAL_CACHE_CAPACITY {
            entries.retain(|_, verified_at| verified_at.elapsed() < CREDENTIAL_CACHE_TTL / 2);
        }
        entries.insert(key, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_verify_with_the_plus_policy() {
        let hash = hash_secret(b"two words").unwrap();
        assert!(verify_secret(&hash, b"two words"));
        assert!(verify_secret(&hash, b"two+words"));
        assert!(!verify_secret(&hash, b"two-words"));
        let plus = hash_secret(b"a+b:c/d").unwrap();
        assert!(verify_secret(&plus, b"a+b:c/d"));
        assert!(!verify_secret(&plus, b"a b:c/d"));
    }

    #[test]
    fn basic_header_parses_password_after_first_colon() {
        let encoded = base64::engine::general_purpose::STANDARD
            .encode("49a9794f-6587-4900-8387-d8cae73865ce:se:cr+et");
        let credentials = parse_basic_authorization(Some(&format!("Basic {encoded}"))).unwrap();
        assert_eq!(credentials.password, b"se:cr+et");
        assert!(parse_basic_authorization(None).is_err());
        assert!(parse_basic_authorization(Some("Bearer x")).is_err());
        assert!(parse_basic_authorization(Some("Basic !!!")).is_err());
    }

    #[test]
    fn cache_is_keyed_by_password_and_hash() {
        let cache = CredentialCache::default();
        let user = Uuid::from_u128(1);
        cache.remember(&user, "h1", b"pw");
        assert!(cache.is_fresh(&user, "h1", b"pw"));
        assert!(!cache.is_fresh(&user, "h1", b"other"));
        assert!(!cache.is_fresh(&user, "h2", b"pw"));
    }
}
