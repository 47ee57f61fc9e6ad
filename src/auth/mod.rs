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
//! a single owner thread.

pub mod passwd;

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::RwLock;

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
    pub fn start(n: usize, users: Vec<(String, String)>) -> std::io::Result<AuthPool> {
        let users: UserTable = Arc::new(RwLock::new(users.into_iter().collect()));
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
            threads.push(
                std::thread::Builder::new()
                    .name(format!("auth-{i}"))
                    .spawn(move || {
                        for job in rx {
                            let verdict = verify(&users, &decoy, &job.username, &job.password);
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

fn verify(users: &UserTable, decoy: &str, username: &str, password: &[u8]) -> Verdict {
    let hash = users.read().get(username).cloned();
    let ok = match &hash {
        Some(h) => bcrypt::verify(password, h).unwrap_or(false),
        None => {
            let _ = bcrypt::verify(password, decoy);
            false
        }
    };
    if ok {
        Verdict::Accepted
    } else {
        Verdict::BadCredentials
    }
}
