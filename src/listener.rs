//! The listener thread: accepts TCP connections and deals them round-robin to the workers. It owns the
//! listening socket and nothing else; a worker may move the connection again once it knows the client id.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use socket2::{Domain, Protocol, Socket, Type};

use crate::worker::{WorkerHandle, WorkerMsg};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const BACKLOG: i32 = 4096;

pub struct Listener {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: JoinHandle<()>,
}

/// Binds with SO_REUSEADDR (a restarted broker rebinds at once) and a deep backlog (connection bursts).
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

impl Listener {
    pub fn start(listener: std::net::TcpListener, workers: Arc<[WorkerHandle]>) -> io::Result<Listener> {
        let addr = listener.local_addr()?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("listener".into())
            .spawn(move || accept_loop(poll, listener, workers, flag))?;
        Ok(Listener { addr, stop, waker, thread })
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        if self.waker.wake().is_ok() {
            let _ = self.thread.join();
        }
    }
}

fn accept_loop(mut poll: Poll, listener: TcpListener, workers: Arc<[WorkerHandle]>, stop: Arc<AtomicBool>) {
    let mut events = Events::with_capacity(64);
    let mut next = 0usize;
    // After an accept error such as EMFILE the pending connection is still queued but no new readiness
    // edge will come, so retry on a timer until accepting works again.
    let mut retry = None;
    loop {
        if let Err(e) = poll.poll(&mut events, retry) {
            if e.kind() != io::ErrorKind::Interrupted {
                log::error!("listener: poll failed: {e}");
                return;
            }
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
        retry = None;
        loop {
            match listener.accept() {
                Ok((stream, peer)) => {
                    // Nagle's delay would add tens of milliseconds to small PUBLISHes.
                    if let Err(e) = stream.set_nodelay(true) {
                        log::warn!("{peer}: cannot set TCP_NODELAY: {e}");
                    }
                    if !workers[next].send(WorkerMsg::Accept { stream, peer }) {
                        log::error!("listener: worker {next} has stopped");
                        return;
                    }
                    next = (next + 1) % workers.len();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("listener: accept failed: {e}");
                    retry = Some(Duration::from_millis(50));
                    break;
                }
            }
        }
    }
}
