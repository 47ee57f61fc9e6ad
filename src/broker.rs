//! Wiring: builds every poll and waker first, then the channels, then starts the threads in order
//! (persist, auth, workers, listener) and keeps their handles; stops them in reverse.
//!
//! [`BrokerHandle`] is the internal API that the admin console and the tests use: it owns nothing and
//! asks the workers by message, waiting on a reply channel (it runs on the caller's thread, never on a
//! worker).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};
use mio::{Poll, Waker};
use parking_lot::Mutex;

use crate::auth::passwd;
use crate::auth::{AuthPool, UserTable};
use crate::config::Settings;
use crate::events::{Event, EventBus, EventKind, EventThread, Watch};
use crate::listener::{self, Listener};
use crate::message::{home_of, partition_of, Message};
use crate::metrics::{self, Totals, WorkerMetrics};
use crate::partition::{HistoryEntry, Partition, RecentTopic, TopicStat};
use crate::persist::{self, Persist, PersistMsg};
use crate::protocol::QoS;
use crate::shard::{ClientInfo, Shard, ShardContext};
use crate::topic::{has_wildcard, validate_topic_name, TopicList};
use crate::worker::{Control, Envelope, Outbox, Worker, WorkerHandle, WorkerMsg, WAKER_TOKEN};

/// How long an API call waits for the workers before giving up.
const API_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Broker {
    handle: BrokerHandle,
    listener: Listener,
    workers: Vec<JoinHandle<io::Result<()>>>,
    auth: AuthPool,
    persist: Persist,
    events: EventThread,
}

struct Shared {
    settings: Arc<Settings>,
    peers: Arc<[WorkerHandle]>,
    metrics: Vec<Arc<WorkerMetrics>>,
    /// The authoritative topic list. Only API callers take this lock; workers get copies by message.
    topics: Mutex<Arc<TopicList>>,
    persist: Sender<PersistMsg>,
    users: UserTable,
    /// Names of the accounts that live in the password file (as opposed to config.ron); only API callers
    /// take this lock.
    file_users: Mutex<std::collections::BTreeSet<String>>,
    events: EventBus,
    local_addr: SocketAddr,
    started: Instant,
}

/// A cheap, cloneable handle to a running broker.
#[derive(Clone)]
pub struct BrokerHandle {
    shared: Arc<Shared>,
}

impl Broker {
    pub fn start(settings: Settings) -> io::Result<Broker> {
        let n = settings.threads.max(1);
        let std_listener = listener::bind(settings.listen).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen on {}: {e}", settings.listen),
            )
        })?;
        let local_addr = std_listener.local_addr()?;

        let mut topics = settings.topics.clone();
        if let Some(path) = &settings.topics_state_file {
            if let Some(saved) = persist::load_topics(path).map_err(io::Error::other)? {
                topics = TopicList::new(saved).map_err(|(entry, why)| {
                    io::Error::other(format!(
                        "{}: topic `{entry}` is invalid: {why}",
                        path.display()
                    ))
                })?;
                log::info!(
                    "topic list loaded from {} ({} entries)",
                    path.display(),
                    topics.entries().len()
                );
            }
        }
        let persist = Persist::start(
            settings.topics_state_file.clone(),
            settings.password_file.clone(),
        )?;
        let (events_bus, events) = EventThread::start()?;
        let topics = Arc::new(topics);
        let settings = Arc::new(settings);

        let mut polls = Vec::with_capacity(n);
        let mut peers = Vec::with_capacity(n);
        let mut inboxes = Vec::with_capacity(n);
        for _ in 0..n {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER_TOKEN)?);
            let (tx, rx) = crossbeam_channel::unbounded();
            peers.push(WorkerHandle::new(tx, waker));
            inboxes.push(rx);
            polls.push(poll);
        }
        let peers: Arc<[WorkerHandle]> = peers.into();
        let metrics: Vec<Arc<WorkerMetrics>> = (0..n).map(|_| Arc::default()).collect();
        let loads: Arc<[Arc<WorkerMetrics>]> = metrics.clone().into();
        let auth = AuthPool::start(
            settings.auth_threads,
            settings.users.clone(),
            settings.auth_cache,
        )?;

        let mut workers = Vec::with_capacity(n);
        for (i, (poll, inbox)) in polls.into_iter().zip(inboxes).enumerate() {
            let shard = Shard::new(ShardContext {
                me: i,
                workers: n,
                settings: settings.clone(),
                registry: poll.registry().try_clone()?,
                auth: auth.handle(),
                users: auth.users().clone(),
                handle: peers[i].clone(),
                metrics: metrics[i].clone(),
                topic_list: topics.clone(),
                events: events_bus.clone(),
                inbox: inbox.clone(),
                loads: loads.clone(),
            });
            let worker = Worker {
                me: i,
                poll,
                inbox: inbox as Receiver<WorkerMsg>,
                peers: peers.clone(),
                shard,
                partition: Partition::new(&settings.limits),
                out: Outbox::new(i, n),
            };
            workers.push(
                std::thread::Builder::new()
                    .name(format!("worker-{i}"))
                    .spawn(move || worker.run())?,
            );
        }
        let listener = Listener::start(std_listener, peers.clone())?;
        log::info!("shardmq listening on {local_addr} with {n} worker threads");

        let file_users = settings
            .users
            .iter()
            .filter(|(n, _)| !settings.config_users.contains(n))
            .map(|(n, _)| n.clone())
            .collect();
        let handle = BrokerHandle {
            shared: Arc::new(Shared {
                settings,
                peers,
                metrics,
                topics: Mutex::new(topics),
                persist: persist.sender(),
                users: auth.users().clone(),
                file_users: Mutex::new(file_users),
                events: events_bus,
                local_addr,
                started: Instant::now(),
            }),
        };
        Ok(Broker {
            handle,
            listener,
            workers,
            auth,
            persist,
            events,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.handle.shared.local_addr
    }

    pub fn handle(&self) -> BrokerHandle {
        self.handle.clone()
    }

    /// Blocks until a worker stops (which only happens on an unrecoverable poll error) and reports it.
    pub fn wait(self) -> io::Result<()> {
        let mut result = Ok(());
        for w in self.workers {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err(io::Error::other("a worker thread panicked")),
            }
        }
        result
    }

    /// Stops accepting, closes every connection (wills are not published), stops every thread and
    /// writes pending state.
    pub fn shutdown(self) {
        self.listener.stop();
        for p in self.handle.shared.peers.iter() {
            p.send(WorkerMsg::Shutdown);
        }
        for w in self.workers {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => log::error!("a worker stopped with an error: {e}"),
                Err(_) => log::error!("a worker thread panicked"),
            }
        }
        drop(self.handle);
        self.auth.join();
        self.persist.stop();
        self.events.join();
        log::info!("shardmq stopped");
    }
}

/// Asks every worker and gathers the answers.
fn ask_all<T: Send + 'static>(
    peers: &[WorkerHandle],
    make: impl Fn(Sender<T>) -> Control,
) -> Vec<T> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut asked = 0;
    for p in peers {
        if p.send(WorkerMsg::Control(make(tx.clone()))) {
            asked += 1;
        }
    }
    drop(tx);
    let deadline = Instant::now() + API_TIMEOUT;
    (0..asked)
        .map_while(|_| rx.recv_deadline(deadline).ok())
        .collect()
}

fn ask_one<T: Send + 'static>(
    peer: &WorkerHandle,
    make: impl FnOnce(Sender<T>) -> Control,
) -> Option<T> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    if !peer.send(WorkerMsg::Control(make(tx))) {
        return None;
    }
    rx.recv_timeout(API_TIMEOUT).ok()
}

impl BrokerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    pub fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    pub fn uptime(&self) -> Duration {
        self.shared.started.elapsed()
    }

    pub fn workers(&self) -> usize {
        self.shared.peers.len()
    }

    /// Connected clients and offline persistent sessions, sorted by client id.
    pub fn clients(&self) -> Vec<ClientInfo> {
        let mut all: Vec<ClientInfo> = ask_all(&self.shared.peers, Control::ListClients)
            .into_iter()
            .flatten()
            .collect();
        all.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        all
    }

    /// Force-disconnects a client (its will is published); with `discard_session` its stored session goes
    /// too. False if no session has that client id.
    pub fn disconnect(&self, client_id: &str, discard_session: bool) -> bool {
        let home = &self.shared.peers[home_of(client_id, self.workers())];
        ask_one(home, |reply| Control::Disconnect {
            client_id: client_id.to_string(),
            discard_session,
            reply,
        })
        .unwrap_or(false)
    }

    pub fn topic_list(&self) -> Arc<TopicList> {
        self.shared.topics.lock().clone()
    }

    /// Adds an entry (a topic name or a pattern with wildcards). Ok(false) if it was already listed.
    pub fn create_topic(&self, entry: &str) -> Result<bool, String> {
        let event = EventKind::TopicCreated {
            topic: entry.to_string(),
        };
        self.change_topics(event, |list| {
            list.add(entry)
                .map_err(|e| format!("`{entry}` is not a valid topic: {e}"))
        })
    }

    /// Removes an entry. Ok(false) if it was not listed. Existing subscriptions stay; new ones that match
    /// no remaining entry are refused when the list is enforced.
    pub fn delete_topic(&self, entry: &str) -> Result<bool, String> {
        let event = EventKind::TopicDeleted {
            topic: entry.to_string(),
        };
        self.change_topics(event, |list| Ok(list.remove(entry)))
    }

    fn change_topics(
        &self,
        event: EventKind,
        change: impl FnOnce(&mut TopicList) -> Result<bool, String>,
    ) -> Result<bool, String> {
        let mut guard = self.shared.topics.lock();
        let mut list = (**guard).clone();
        if !change(&mut list)? {
            return Ok(false);
        }
        let list = Arc::new(list);
        *guard = list.clone();
        // Waits until every worker has it: a SUBSCRIBE or PUBLISH sent after this returns meets the new list.
        ask_all(&self.shared.peers, |reply| Control::TopicList {
            list: list.clone(),
            reply,
        });
        // Sent under the lock, so the persist thread sees the snapshots in order.
        let _ = self
            .shared
            .persist
            .send(PersistMsg::Topics(list.entries().to_vec()));
        log::info!("topic list changed: {} entries", list.entries().len());
        self.shared.events.emit(event);
        Ok(true)
    }

    /// The last values published to `topic`, newest first.
    pub fn history(&self, topic: &str) -> Vec<HistoryEntry> {
        let owner = &self.shared.peers[partition_of(topic, self.workers())];
        ask_one(owner, |reply| Control::History {
            topic: topic.to_string(),
            reply,
        })
        .unwrap_or_default()
    }

    /// The most recently published topics with their last value, newest first.
    pub fn recent(&self) -> Vec<RecentTopic> {
        let mut all: Vec<RecentTopic> =
            ask_all(&self.shared.peers, |reply| Control::Recent { reply })
                .into_iter()
                .flatten()
                .collect();
        all.sort_by_key(|r| std::cmp::Reverse(r.last.time));
        all.truncate(self.shared.settings.limits.recent_topics);
        all
    }

    /// Publishes as the broker itself (publisher id `$admin`), subject to the topic list like any client.
    pub fn publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
        qos: QoS,
        retain: bool,
    ) -> Result<(), String> {
        validate_topic_name(topic)
            .map_err(|e| format!("`{topic}` is not a valid topic name: {e}"))?;
        if payload.len() > self.shared.settings.limits.max_packet_size {
            return Err(format!(
                "the payload is larger than max_packet_size ({})",
                self.shared.settings.limits.max_packet_size
            ));
        }
        if self.shared.settings.enforce_topics && !self.topic_list().allows_topic(topic) {
            return Err(format!("`{topic}` is not in the topic list"));
        }
        let msg = Message {
            topic: topic.into(),
            payload: payload.into(),
            qos,
            retain,
            publisher: "$admin".into(),
            time: SystemTime::now(),
        };
        let owner = &self.shared.peers[partition_of(topic, self.workers())];
        if owner.send_batch(vec![Envelope::Publish(Arc::new(msg))]) {
            Ok(())
        } else {
            Err("the broker is stopping".into())
        }
    }

    pub fn totals(&self) -> Totals {
        metrics::totals(&self.shared.metrics)
    }

    /// Per worker: (connections, inbox depth).
    pub fn per_worker(&self) -> Vec<(i64, usize)> {
        self.shared
            .metrics
            .iter()
            .zip(self.shared.peers.iter())
            .map(|(m, p)| {
                (
                    m.connections.load(std::sync::atomic::Ordering::Relaxed),
                    p.depth(),
                )
            })
            .collect()
    }

    pub fn users(&self) -> &UserTable {
        &self.shared.users
    }
}

/// Figures for a dashboard: [`BrokerHandle::stats`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub uptime: Duration,
    pub totals: Totals,
    pub subscriptions: usize,
    pub retained: usize,
    /// Per worker: connections on its shard and messages waiting in its inbox.
    pub workers: Vec<WorkerStat>,
    /// Events dropped because the event bus was full.
    pub events_lost: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerStat {
    pub connections: i64,
    pub inbox_depth: usize,
}

impl BrokerHandle {
    pub fn stats(&self) -> Stats {
        let parts = ask_all(&self.shared.peers, |reply| Control::PartitionStats {
            reply,
        });
        Stats {
            uptime: self.uptime(),
            totals: self.totals(),
            subscriptions: parts.iter().map(|p| p.exact_subscriptions).sum::<usize>()
                + parts.first().map_or(0, |p| p.wildcard_subscriptions),
            retained: parts.iter().map(|p| p.retained).sum(),
            workers: self
                .per_worker()
                .into_iter()
                .map(|(connections, inbox_depth)| WorkerStat {
                    connections,
                    inbox_depth,
                })
                .collect(),
            events_lost: self.shared.events.lost(),
        }
    }

    /// Listed topic entries and the topics seen, with subscriber counts and publish figures, sorted by
    /// topic. Listed patterns (with wildcards) appear with `listed` set and no figures.
    pub fn topics(&self) -> Vec<TopicInfo> {
        let list = self.topic_list();
        let exact: Arc<Vec<String>> = Arc::new(
            list.entries()
                .iter()
                .filter(|e| !has_wildcard(e))
                .cloned()
                .collect(),
        );
        let mut seen: Vec<TopicStat> = ask_all(&self.shared.peers, |reply| Control::TopicStats {
            extra: exact.clone(),
            reply,
        })
        .into_iter()
        .flatten()
        .collect();
        let mut out: Vec<TopicInfo> = seen
            .drain(..)
            .map(|stat| TopicInfo {
                listed: list.contains(&stat.topic),
                stat,
            })
            .collect();
        for entry in list.entries().iter().filter(|e| has_wildcard(e)) {
            out.push(TopicInfo {
                listed: true,
                stat: TopicStat {
                    topic: entry.clone(),
                    subscribers: 0,
                    messages: 0,
                    last_publish: None,
                    retained: false,
                },
            });
        }
        out.sort_by(|a, b| a.stat.topic.cmp(&b.stat.topic));
        out
    }

    /// The kept events after `since` (0 = all kept), oldest first.
    pub fn events_since(&self, since: u64) -> Vec<Arc<Event>> {
        self.shared.events.since(since)
    }

    /// The kept events after `since`, then every new event as it happens.
    pub fn watch_events(&self, since: u64) -> Option<Watch> {
        self.shared.events.watch(since)
    }

    /// Account names, sorted.
    pub fn user_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.shared.users.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// Adds an account or changes its password (bcrypt-hashed here, on the caller's thread), and saves
    /// the password file. Ok(true) if the account is new.
    pub fn set_user(&self, username: &str, password: &str) -> Result<bool, String> {
        passwd::valid_username(username)?;
        if password.is_empty() {
            return Err("the password must not be empty".into());
        }
        if self.shared.settings.password_file.is_none() {
            return Err("no auth.password_file is configured, so accounts cannot be saved".into());
        }
        let hash = bcrypt::hash(password, passwd::DEFAULT_COST).map_err(|e| e.to_string())?;
        let mut file_users = self.shared.file_users.lock();
        let created = self
            .shared
            .users
            .write()
            .insert(username.to_string(), hash)
            .is_none();
        file_users.insert(username.to_string());
        self.save_users(&file_users);
        let action = if created {
            "created"
        } else {
            "password changed"
        };
        log::info!("account `{username}` {action}");
        self.shared.events.emit(EventKind::UserChanged {
            username: username.to_string(),
            action,
        });
        Ok(created)
    }

    /// Deletes an account from the password file. Ok(false) if there is no such account; an error for
    /// an account defined in config.ron, which is never rewritten.
    pub fn delete_user(&self, username: &str) -> Result<bool, String> {
        let mut file_users = self.shared.file_users.lock();
        if !file_users.contains(username) {
            if self.shared.users.read().contains_key(username) {
                return Err(format!(
                    "`{username}` is defined in config.ron; remove it there"
                ));
            }
            return Ok(false);
        }
        self.shared.users.write().remove(username);
        file_users.remove(username);
        self.save_users(&file_users);
        log::info!("account `{username}` deleted");
        let event = EventKind::UserChanged {
            username: username.to_string(),
            action: "deleted",
        };
        self.shared.events.emit(event);
        Ok(true)
    }

    /// Sends the file's accounts to the persist thread; called with `file_users` locked, so snapshots
    /// arrive in order.
    fn save_users(&self, file_users: &std::collections::BTreeSet<String>) {
        let users = self.shared.users.read();
        let entries = file_users
            .iter()
            .filter_map(|n| users.get(n).map(|h| (n.clone(), h.clone())))
            .collect();
        let _ = self.shared.persist.send(PersistMsg::Users(entries));
    }
}

/// A topic for the admin console: its figures, and whether it is an entry of the topic list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    pub listed: bool,
    pub stat: TopicStat,
}
