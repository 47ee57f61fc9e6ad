//! Admin accounts and login sessions.
//!
//! Accounts are bcrypt hashes from the config's `admin.users`; with none configured, a random one-time
//! password is made for `admin` at start (never a fixed default). A login gives a random session token
//! (32 bytes from /dev/urandom) in an `HttpOnly; SameSite=Strict; Path=/` cookie; HTTP Basic works too.
//! Cross-site request forgery: every request that changes state (any method but GET/HEAD) must carry the
//! header `X-Requested-With: shardmq`, which a cross-site form cannot send and a cross-site `fetch`
//! cannot send without a CORS preflight that this server never approves; the cookie is also
//! SameSite=Strict, so a cross-site request does not carry it at all.

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::auth::passwd;

pub const COOKIE: &str = "shardmq_session";
pub const CSRF_HEADER: &str = "X-Requested-With";
pub const CSRF_VALUE: &str = "shardmq";
/// A session ends this long after login.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
const MAX_SESSIONS: usize = 1024;
/// Verified Basic credentials are remembered (by their header value) so bcrypt runs once per client.
const MAX_BASIC_CACHE: usize = 64;

pub struct Accounts {
    users: Vec<(String, String)>,
    /// Set when no account was configured: the password printed at start.
    generated: Option<String>,
    sessions: Mutex<HashMap<String, (String, Instant)>>,
    basic_ok: Mutex<HashMap<String, String>>,
}

impl Accounts {
    pub fn new(configured: &[(String, String)]) -> std::io::Result<Accounts> {
        let (users, generated) = if configured.is_empty() {
            let password = random_password()?;
            let hash =
                bcrypt::hash(&password, passwd::DEFAULT_COST).map_err(std::io::Error::other)?;
            (vec![("admin".to_string(), hash)], Some(password))
        } else {
            (configured.to_vec(), None)
        };
        Ok(Accounts {
            users,
            generated,
            sessions: Mutex::default(),
            basic_ok: Mutex::default(),
        })
    }

    pub fn generated_password(&self) -> Option<&str> {
        self.generated.as_deref()
    }

    /// Checks a password (bcrypt: slow by design, runs on the HTTP thread).
    pub fn check(&self, username: &str, password: &str) -> bool {
        self.users
            .iter()
            .find(|(n, _)| n == username)
            .is_some_and(|(_, h)| bcrypt::verify(password, h).unwrap_or(false))
    }

    /// Starts a session and returns its token.
    pub fn login(&self, username: &str) -> std::io::Result<String> {
        let token = hex(&random_bytes(32)?);
        let mut s = self.sessions.lock();
        let now = Instant::now();
        s.retain(|_, (_, exp)| *exp > now);
        if s.len() >= MAX_SESSIONS {
            // The oldest goes.
            if let Some(oldest) = s
                .iter()
                .min_by_key(|(_, (_, e))| *e)
                .map(|(k, _)| k.clone())
            {
                s.remove(&oldest);
            }
        }
        s.insert(token.clone(), (username.to_string(), now + SESSION_TTL));
        Ok(token)
    }

    pub fn logout(&self, token: &str) {
        self.sessions.lock().remove(token);
    }

    pub fn session_user(&self, token: &str) -> Option<String> {
        let s = self.sessions.lock();
        s.get(token)
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(u, _)| u.clone())
    }

    /// The user of an `Authorization: Basic ...` header, if its credentials are right.
    pub fn basic_user(&self, header: &str) -> Option<String> {
        if let Some(u) = self.basic_ok.lock().get(header) {
            return Some(u.clone());
        }
        let encoded = header.strip_prefix("Basic ")?.trim();
        let decoded = String::from_utf8(super::api::base64_decode(encoded)?).ok()?;
        let (user, password) = decoded.split_once(':')?;
        if !self.check(user, password) {
            return None;
        }
        let mut cache = self.basic_ok.lock();
        if cache.len() >= MAX_BASIC_CACHE {
            cache.clear();
        }
        cache.insert(header.to_string(), user.to_string());
        Some(user.to_string())
    }
}

/// The value of cookie `name` in a `Cookie:` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn set_cookie(token: &str) -> String {
    format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/")
}

pub fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

pub fn random_bytes(n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

/// 20 characters from an unambiguous alphabet (about 110 bits).
fn random_password() -> std::io::Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut out = String::new();
    // Rejection sampling keeps every character equally likely.
    while out.len() < 20 {
        for b in random_bytes(32)? {
            let limit = 256 - 256 % ALPHABET.len();
            if (b as usize) < limit && out.len() < 20 {
                out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_password_is_random_and_works() {
        let a = Accounts::new(&[]).unwrap();
        let b = Accounts::new(&[]).unwrap();
        let pa = a.generated_password().unwrap();
        assert_eq!(pa.len(), 20);
        assert_ne!(pa, b.generated_password().unwrap());
        assert!(a.check("admin", pa));
        assert!(!a.check("admin", "admin"));
        let token = a.login("admin").unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(a.session_user(&token).as_deref(), Some("admin"));
        a.logout(&token);
        assert_eq!(a.session_user(&token), None);
    }

    #[test]
    fn cookies_are_parsed() {
        assert_eq!(
            cookie_value("a=1; shardmq_session=xyz; b=2", COOKIE),
            Some("xyz")
        );
        assert_eq!(cookie_value("a=1", COOKIE), None);
    }
}
