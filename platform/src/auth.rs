//! Passwords (argon2id), session tokens, CSRF tokens and the login limiter.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

/// The argon2id PHC string of `password` (argon2's defaults: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt_bytes = fanzha::random::bytes(16).map_err(|e| format!("no random bytes: {e}"))?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Does `password` match the PHC string `hash`?
pub fn check_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash to check against when the account does not exist, so that a wrong name
/// takes as long as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password").unwrap_or_default())
}

/// A new random token (32 bytes, hex).
pub fn token() -> Result<String, String> {
    fanzha::random::bytes(32)
        .map(hex::encode)
        .map_err(|e| format!("no random bytes: {e}"))
}

/// What the database keeps of a session token: its SHA-256.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Equal in constant time (CSRF tokens).
pub fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Failed logins per account name and per client address, in a sliding window.
pub struct Limiter {
    max: u32,
    window: Duration,
    seen: Mutex<HashMap<String, Vec<Instant>>>,
}

impl Limiter {
    /// At most `max` failures per account (and 4 × `max` per address) per `window`.
    pub fn new(max: u32, window: Duration) -> Limiter {
        Limiter {
            max,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn keys(name: &str, client: &str) -> [(String, u32); 2] {
        [(format!("u:{name}"), 1), (format!("a:{client}"), 4)]
    }

    /// How long `name` from `client` must wait before trying again (None: go ahead).
    pub fn wait(&self, name: &str, client: &str, now: Instant) -> Option<Duration> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut longest = None;
        for (key, factor) in Self::keys(name, client) {
            let Some(v) = seen.get_mut(&key) else {
                continue;
            };
            v.retain(|t| now.duration_since(*t) < self.window);
            if v.len() as u32 >= self.max * factor {
                let wait = self.window - now.duration_since(v[0]);
                longest = Some(longest.map_or(wait, |w: Duration| w.max(wait)));
            }
        }
        longest
    }

    /// Count a failure.
    pub fn failed(&self, name: &str, client: &str, now: Instant) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 100_000 {
            let window = self.window;
            seen.retain(|_, v| v.last().is_some_and(|t| now.duration_since(*t) < window));
        }
        for (key, _) in Self::keys(name, client) {
            seen.entry(key).or_default().push(now);
        }
    }

    /// A good login clears the account's failures (not the address's).
    pub fn succeeded(&self, name: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.remove(&format!("u:{name}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_argon2id() {
        let h = hash_password("正确的马电池").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(check_password("正确的马电池", &h));
        assert!(!check_password("wrong", &h));
        assert!(!check_password("x", "not a hash"));
        assert_ne!(
            hash_password("same").unwrap(),
            hash_password("same").unwrap()
        );
    }

    #[test]
    fn the_limiter_locks_an_account_then_lets_go() {
        let l = Limiter::new(3, Duration::from_secs(60));
        let t = Instant::now();
        for i in 0..3 {
            assert_eq!(l.wait("amy", "10.0.0.1", t), None, "attempt {i}");
            l.failed("amy", "10.0.0.1", t);
        }
        let w = l
            .wait("amy", "10.0.0.9", t)
            .expect("locked whatever the address");
        assert_eq!(w, Duration::from_secs(60));
        assert_eq!(
            l.wait("bob", "10.0.0.1", t),
            None,
            "another account goes on"
        );
        assert_eq!(l.wait("amy", "10.0.0.1", t + Duration::from_secs(61)), None);
        // One address trying many accounts is stopped too.
        for n in 0..12 {
            l.failed(&format!("user{n}"), "10.9.9.9", t);
        }
        assert!(l.wait("carol", "10.9.9.9", t).is_some());
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
