//! The auth pool: bcrypt verification off the worker event loops.
//!
//! bcrypt is slow by design (tens of milliseconds per check), so a worker that receives a CONNECT with
//! credentials sends an [`AuthJob`] here and goes on serving its other connections; a pool thread verifies
//! and sends `WorkerMsg::AuthDone` back to the worker that asked. The job queue is bounded: when a storm of
//! logins fills it, the worker answers CONNACK 0x03 (server unavailable) at once instead of queueing without
//! limit, and delivery to connected clients is never delayed by logins.
//!
//! The credential table is the one piece of state shared under a lock: pool threads read it for every
//! check, and only the admin API writes it (rarely), so a `RwLock` is simpler than routing every check to
//! a single owner thread. The pool threads also share the [`VerifiedCache`] of recent good logins, so
//! that a device reconnecting with the password it used a minute ago does not pay bcrypt again.

pub mod passwd;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::{Mutex, RwLock};

use crate::shard::ConnRef;
use crate::worker::{WorkerHandle, WorkerMsg};

/// Jobs waiting beyond this are refused with CONNACK 0x03.
pub const QUEUE_CAPACITY: usize = 4096;

/// The outcome of a login, mapped to a CONNACK code by the shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Unknown user or wrong password: CONNACK 0x04.
    BadCredentials,
}

pub struct AuthJob {
    pub conn: ConnRef,
    pub reply_to: WorkerHandle,
    pub username: String,
    pub password: Vec<u8>,
}

/// username → bcrypt hash.
pub type UserTable = Arc<RwLock<HashMap<String, String>>>;

pub struct AuthPool {
    jobs: Sender<AuthJob>,
    users: UserTable,
    threads: Vec<JoinHandle<()>>,
}

impl AuthPool {
    /// `cache`: how long a verified login is remembered (zero: never).
    pub fn start(
        n: usize,
        users: Vec<(String, String)>,
        cache: Duration,
    ) -> std::io::Result<AuthPool> {
        let users: UserTable = Arc::new(RwLock::new(users.into_iter().collect()));
        let cache = Arc::new(VerifiedCache::new(cache));
        let (jobs, rx) = crossbeam_channel::bounded(QUEUE_CAPACITY);
        // Verifying unknown users against a real hash keeps their refusal as slow as a wrong password's,
        // so response time does not reveal which user names exist.
        let decoy: Arc<str> = bcrypt::hash("decoy", passwd::DEFAULT_COST)
            .map_err(std::io::Error::other)?
            .into();
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let rx: Receiver<AuthJob> = rx.clone();
            let users = users.clone();
            let decoy = decoy.clone();
            let cache = cache.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("auth-{i}"))
                    .spawn(move || {
                        for job in rx {
                            let verdict =
                                verify(&users, &cache, &decoy, &job.username, &job.password);
                            // A worker that has shut down no longer needs the answer.
                            job.reply_to.send(WorkerMsg::AuthDone {
                                conn: job.conn,
                                verdict,
                            });
                        }
                    })?,
            );
        }
        Ok(AuthPool {
            jobs,
            users,
            threads,
        })
    }

    pub fn handle(&self) -> AuthHandle {
        AuthHandle {
            jobs: self.jobs.clone(),
        }
    }

    pub fn users(&self) -> &UserTable {
        &self.users
    }

    /// Stops the pool once every outstanding [`AuthHandle`] is gone.
    pub fn join(self) {
        drop(self.jobs);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// What a worker holds to submit jobs.
#[derive(Clone)]
pub struct AuthHandle {
    jobs: Sender<AuthJob>,
}

impl AuthHandle {
    /// Queues a check; gives the job back when the pool is saturated (or gone) so the caller can refuse.
    pub fn submit(&self, job: AuthJob) -> Result<(), AuthJob> {
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(j) | TrySendError::Disconnected(j) => j,
        })
    }
}

fn verify(
    users: &UserTable,
    cache: &VerifiedCache,
    decoy: &str,
    username: &str,
    password: &[u8],
) -> Verdict {
    let hash = users.read().get(username).cloned();
    let Some(hash) = hash else {
        let _ = bcrypt::verify(password, decoy);
        return Verdict::BadCredentials;
    };
    if cache.knows(username, &hash, password) {
        return Verdict::Accepted;
    }
    if bcrypt::verify(password, &hash).unwrap_or(false) {
        // Counted before the cache is locked: the two locks are never held together.
        let accounts = users.read().len();
        cache.remember(username, hash, password, accounts);
        Verdict::Accepted
    } else {
        Verdict::BadCredentials
    }
}

/// Logins verified with bcrypt in the last `ttl`, by user name. An entry holds the bcrypt hash it was
/// verified against, so a password changed or an account deleted since no longer matches, and a 64-bit
/// SipHash of the password keyed with a random per-process key: the cache holds no password, and no
/// digest that could be checked without that key. Only good logins are remembered: a wrong password
/// always costs a full bcrypt check, so guessing stays as slow as bcrypt makes it.
struct VerifiedCache {
    ttl: Duration,
    key: RandomState,
    entries: Mutex<HashMap<String, Verified>>,
}

struct Verified {
    hash: String,
    digest: u64,
    at: Instant,
}

impl VerifiedCache {
    fn new(ttl: Duration) -> VerifiedCache {
        VerifiedCache {
            ttl,
            key: RandomState::new(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn digest(&self, username: &str, password: &[u8]) -> u64 {
        self.key.hash_one((username, password))
    }

    fn knows(&self, username: &str, hash: &str, password: &[u8]) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let digest = self.digest(username, password);
        self.entries
            .lock()
            .get(username)
            .is_some_and(|v| v.hash == hash && v.digest == digest && v.at.elapsed() < self.ttl)
    }

    /// `accounts`: the number of accounts now. More entries than that means some belong to deleted
    /// accounts (they match nothing any more); expired entries are then swept out, so the cache holds
    /// about one entry per account.
    fn remember(&self, username: &str, hash: String, password: &[u8], accounts: usize) {
        if self.ttl.is_zero() {
            return;
        }
        let digest = self.digest(username, password);
        let mut entries = self.entries.lock();
        entries.insert(
            username.to_string(),
            Verified {
                hash,
                digest,
                at: Instant::now(),
            },
        );
        if entries.len() > accounts {
            entries.retain(|_, v| v.at.elapsed() < self.ttl);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(users: &[(&str, &str)]) -> UserTable {
        let users = users
            .iter()
            .map(|(u, p)| (u.to_string(), bcrypt::hash(p, 4).unwrap()))
            .collect();
        Arc::new(RwLock::new(users))
    }

    #[test]
    fn cache_lets_the_same_password_in_and_nothing_else() {
        let users = table(&[("ann@example.com", "right")]);
        let cache = VerifiedCache::new(Duration::from_secs(60));
        let decoy = bcrypt::hash("decoy", 4).unwrap();
        let check = |u: &str, p: &str| verify(&users, &cache, &decoy, u, p.as_bytes());
        assert_eq!(check("ann@example.com", "wrong"), Verdict::BadCredentials);
        assert!(
            cache.entries.lock().is_empty(),
            "a failed login is not remembered"
        );
        assert_eq!(check("ann@example.com", "right"), Verdict::Accepted);
        assert!(cache.knows(
            "ann@example.com",
            &users.read()["ann@example.com"],
            b"right"
        ));
        assert_eq!(check("ann@example.com", "wrong"), Verdict::BadCredentials);
        assert_eq!(check("bob", "right"), Verdict::BadCredentials);

        // A changed password: the old one no longer gets in, although it was remembered.
        users
            .write()
            .insert("ann@example.com".into(), bcrypt::hash("new", 4).unwrap());
        assert_eq!(check("ann@example.com", "right"), Verdict::BadCredentials);
        assert_eq!(check("ann@example.com", "new"), Verdict::Accepted);

        // A deleted account: refused, although its last login is remembered.
        users.write().remove("ann@example.com");
        assert_eq!(check("ann@example.com", "new"), Verdict::BadCredentials);
    }

    #[test]
    fn zero_ttl_remembers_nothing() {
        let users = table(&[("ann", "right")]);
        let cache = VerifiedCache::new(Duration::ZERO);
        let decoy = bcrypt::hash("decoy", 4).unwrap();
        assert_eq!(
            verify(&users, &cache, &decoy, "ann", b"right"),
            Verdict::Accepted
        );
        assert!(cache.entries.lock().is_empty());
    }
}
