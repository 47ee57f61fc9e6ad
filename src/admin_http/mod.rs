//! The browser admin console: a rouille server on its own threads (a small, bounded pool; never a
//! worker's) serving the static page in admin/ (compiled in) and the JSON API under /api (API.md).
//! It owns nothing of the broker: every request calls [`BrokerHandle`], which asks the workers by
//! message.

pub mod api;
pub mod auth;
pub mod routes;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::config::AdminSettings;
use crate::metrics::Totals;
use crate::BrokerHandle;

/// Request threads. Event polls may hold at most [`routes::MAX_EVENT_POLLS`] of them.
pub const POOL_SIZE: usize = 8;

/// What every request handler sees.
pub struct State {
    pub handle: BrokerHandle,
    pub accounts: auth::Accounts,
    /// Event long polls in progress.
    pub polls: AtomicUsize,
    /// Disconnected when the server stops, which ends every waiting poll.
    pub stop: Receiver<()>,
    /// The last sample of the counters and the rates computed from the one before.
    rates: Mutex<(Instant, Totals, api::Rates)>,
}

impl State {
    pub fn new(handle: BrokerHandle, settings: &AdminSettings) -> io::Result<(State, Sender<()>)> {
        let (stop_tx, stop) = crossbeam_channel::bounded(0);
        let totals = handle.totals();
        Ok((
            State {
                accounts: auth::Accounts::new(&settings.users)?,
                handle,
                polls: AtomicUsize::new(0),
                stop,
                rates: Mutex::new((Instant::now(), totals, api::Rates::default())),
            },
            stop_tx,
        ))
    }

    /// Stats with per-second rates over the last interval of at least one second.
    pub fn stats(&self) -> api::StatsJson {
        let stats = self.handle.stats();
        let mut r = self.rates.lock();
        let now = Instant::now();
        let dt = now.duration_since(r.0).as_secs_f64();
        if dt >= 1.0 {
            let (prev, cur) = (&r.1, &stats.totals);
            let rate = |a: u64, b: u64| ((b.saturating_sub(a)) as f64 / dt * 10.0).round() / 10.0;
            r.2 = api::Rates {
                messages_in_per_sec: rate(prev.messages_in, cur.messages_in),
                messages_out_per_sec: rate(prev.messages_out, cur.messages_out),
                bytes_in_per_sec: rate(prev.bytes_in, cur.bytes_in),
                bytes_out_per_sec: rate(prev.bytes_out, cur.bytes_out),
            };
            r.0 = now;
            r.1 = cur.clone();
        }
        let mut json = api::StatsJson::new(&stats, r.2);
        json.event_polls = self.polls.load(std::sync::atomic::Ordering::SeqCst);
        json
    }
}

pub struct AdminServer {
    local_addr: SocketAddr,
    state: Arc<State>,
    stop_server: std::sync::mpsc::Sender<()>,
    stop_polls: Sender<()>,
    thread: JoinHandle<()>,
}

impl AdminServer {
    pub fn start(handle: BrokerHandle, settings: &AdminSettings) -> io::Result<AdminServer> {
        let (state, stop_polls) = State::new(handle, settings)?;
        let state = Arc::new(state);
        let st = state.clone();
        let server = rouille::Server::new(settings.listen, move |req| routes::handle(req, &st))
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("admin console: cannot listen on {}: {e}", settings.listen),
                )
            })?
            .pool_size(POOL_SIZE);
        let local_addr = server.server_addr();
        let (thread, stop_server) = server.stoppable();
        log::info!("admin console on http://{local_addr}/");
        Ok(AdminServer {
            local_addr,
            state,
            stop_server,
            stop_polls,
            thread,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The one-time password of `admin`, when no admin account is configured.
    pub fn generated_password(&self) -> Option<&str> {
        self.state.accounts.generated_password()
    }

    /// Stops accepting (within a second), ends waiting event polls and joins the server thread.
    pub fn stop(self) {
        drop(self.stop_polls);
        let _ = self.stop_server.send(());
        let _ = self.thread.join();
    }
}
