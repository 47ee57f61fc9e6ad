//! shardmq: an MQTT 3.1.1 broker built from OS threads and crossbeam channels.
//!
//! Thread model (details, ownership and every channel message in ARCHITECTURE.md):
//!
//! ```text
//!  listener ──Accept──▶ worker 0..N ◀──Batch(Publish/Subscribe/Deliver)──▶ worker 0..N
//!                        │  ▲                                                  
//!               AuthJob  ▼  │ AuthDone          persist ◀── topic list snapshots
//!                     auth pool                 BrokerHandle ──Control──▶ workers
//! ```
//!
//! Each worker owns a [`shard::Shard`] (connections, and the sessions whose client id hashes to it), a
//! [`partition::Partition`] (subscriptions, retained messages and history of the topics that hash to
//! it, plus a replica of every wildcard subscription) and one `mio::Poll`. Nothing is shared but
//! counters, the credential table and immutable settings.

pub mod admin_http;
pub mod auth;
pub mod broker;
pub mod cli;
pub mod config;
pub mod events;
pub mod listener;
pub mod logging;
pub mod message;
pub mod metrics;
pub mod partition;
pub mod persist;
pub mod protocol;
pub mod session;
pub mod shard;
pub mod topic;
pub mod worker;

pub use broker::{Broker, BrokerHandle};
pub use config::Settings;
