//! A partition: the topics whose name hashes to this worker. It owns, for those topics, the subscriptions
//! by exact name, the retained messages and the history; and it holds a replica of every wildcard
//! subscription, matched only against its own topics.
//!
//! So a PUBLISH is handled by exactly one partition (its topic's), which sees every subscription that can
//! match it: the exact ones are there because they hash like the topic, the wildcard ones because they are
//! everywhere. Subscribing with a wildcard costs one message per partition; publishing never fans out to
//! partitions. Pure state: no threads, no channels; effects go into the [`Outbox`].

mod history;

pub use history::{HistoryEntry, RecentTopic};

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::Limits;
use crate::message::{ClientId, Delivery, Message};
use crate::protocol::QoS;
use crate::topic::{has_wildcard, SubscriptionTrie, TopicTree};
use crate::worker::{Envelope, Outbox};
use history::History;

/// A subscription as the partition holds it.
#[derive(Clone, Copy, Debug)]
struct Sub {
    qos: QoS,
    epoch: u64,
    /// The worker holding the subscriber's session (where deliveries go), as the subscribe said.
    home: usize,
}

pub struct Partition {
    subs: SubscriptionTrie<ClientId, Sub>,
    retained: TopicTree<Arc<Message>>,
    history: History,
    /// Reused per publish: the matching subscriptions, merged per session.
    matches: Vec<Sub>,
    /// Wildcard subscriptions held here (each is held by every partition), for counting.
    wildcard_subs: usize,
}

impl Partition {
    pub fn new(limits: &Limits) -> Partition {
        Partition {
            subs: SubscriptionTrie::new(),
            retained: TopicTree::new(),
            history: History::new(
                limits.history_len,
                limits.recent_topics,
                limits.max_history_topics,
            ),
            matches: Vec::new(),
            wildcard_subs: 0,
        }
    }

    pub fn publish(&mut self, msg: Arc<Message>, out: &mut Outbox) {
        if msg.retain {
            // A zero-byte retained message clears the topic's retained message [MQTT-3.3.1-10], [MQTT-3.3.1-11].
            if msg.payload.is_empty() {
                self.retained.remove(&msg.topic);
            } else {
                self.retained.insert(&msg.topic, msg.clone());
            }
        }
        self.history.record(&msg);

        let matches = &mut self.matches;
        let filters = self
            .subs
            .for_each_match(&msg.topic, |_, sub| matches.push(*sub));
        if filters > 1 {
            // Overlapping subscriptions of one client give one copy at the highest matching QoS
            // [MQTT-3.3.5-1]. With a single matching filter each client is there once already. A
            // session's epoch names it (one per client id at a time).
            matches.sort_unstable_by_key(|sub| sub.epoch);
            matches.dedup_by(|dup, kept| {
                let same = dup.epoch == kept.epoch;
                if same {
                    kept.qos = kept.qos.max(dup.qos);
                }
                same
            });
        }
        for sub in matches.drain(..) {
            // Copies to existing subscriptions go out with RETAIN 0 [MQTT-3.3.1-9].
            let d = Delivery {
                epoch: sub.epoch,
                msg: msg.clone(),
                qos: msg.qos.min(sub.qos),
                retain: false,
            };
            out.push(sub.home, Envelope::Deliver(d));
        }
    }

    /// Adds or replaces a subscription and sends the retained messages it matches in this partition
    /// [MQTT-3.3.1-6], [MQTT-3.8.4-3] with RETAIN 1 [MQTT-3.3.1-8]. `home`: the worker holding the
    /// session.
    pub fn subscribe(
        &mut self,
        client: ClientId,
        epoch: u64,
        filter: &str,
        qos: QoS,
        home: usize,
        out: &mut Outbox,
    ) {
        let replaced = self
            .subs
            .insert(filter, client.clone(), Sub { qos, epoch, home });
        if replaced.is_none() && has_wildcard(filter) {
            self.wildcard_subs += 1;
        }
        self.retained.for_each_match(filter, |_, msg| {
            let d = Delivery {
                epoch,
                msg: msg.clone(),
                qos: msg.qos.min(qos),
                retain: true,
            };
            out.push(home, Envelope::Deliver(d));
        });
    }

    pub fn unsubscribe(&mut self, client: &ClientId, filter: &str) {
        if self.subs.remove(filter, client).is_some() && has_wildcard(filter) {
            self.wildcard_subs -= 1;
        }
    }

    pub fn history(&self, topic: &str) -> Vec<HistoryEntry> {
        self.history.of(topic)
    }

    pub fn recent(&self) -> Vec<RecentTopic> {
        self.history.recent()
    }

    /// Statistics of the topics this partition has seen, plus those of `extra` (e.g. listed topic
    /// names nobody has published to yet) that belong to it (`owns`).
    pub fn topic_stats(&self, extra: &[String], owns: impl Fn(&str) -> bool) -> Vec<TopicStat> {
        let mut out: Vec<TopicStat> = self
            .history
            .topics()
            .map(|(topic, messages, last)| TopicStat {
                topic: topic.to_string(),
                subscribers: self.subscribers_of(topic),
                messages,
                last_publish: last.map(|m| m.time),
                retained: self.retained.get(topic).is_some(),
            })
            .collect();
        for name in extra {
            if owns(name) && !out.iter().any(|s| s.topic == *name) {
                out.push(TopicStat {
                    topic: name.clone(),
                    subscribers: self.subscribers_of(name),
                    messages: 0,
                    last_publish: None,
                    retained: self.retained.get(name).is_some(),
                });
            }
        }
        out
    }

    /// Distinct clients a publish to `topic` would reach.
    fn subscribers_of(&self, topic: &str) -> usize {
        let mut clients = HashSet::new();
        self.subs.for_each_match(topic, |c, _| {
            clients.insert(c.clone());
        });
        clients.len()
    }

    pub fn stats(&self) -> PartitionStats {
        PartitionStats {
            exact_subscriptions: self.subs.len() - self.wildcard_subs,
            wildcard_subscriptions: self.wildcard_subs,
            retained: self.retained.len(),
        }
    }
}

/// One topic as the admin API lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicStat {
    pub topic: String,
    /// Distinct clients subscribed with a matching filter.
    pub subscribers: usize,
    /// Messages published since the broker started (or since the topic's history was forgotten).
    pub messages: u64,
    pub last_publish: Option<SystemTime>,
    pub retained: bool,
}

/// Counts for one partition. Every partition holds every wildcard subscription, so the broker's total
/// is the sum of the exact ones plus the wildcard count of any one partition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionStats {
    pub exact_subscriptions: usize,
    pub wildcard_subscriptions: usize,
    pub retained: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The session epoch of the test clients "a", "b", "c", ...: one per client, as in a shard.
    fn epoch(client: &str) -> u64 {
        u64::from(client.as_bytes()[0])
    }

    fn publish(p: &mut Partition, topic: &str, qos: QoS) -> Vec<(String, QoS)> {
        let mut out = Outbox::new(0, 1);
        let msg = Arc::new(Message {
            topic: topic.into(),
            payload: Arc::from(&b"x"[..]),
            qos,
            retain: false,
            publisher: "pub".into(),
            time: SystemTime::now(),
        });
        p.publish(msg, &mut out);
        let mut got: Vec<_> = out
            .local
            .drain(..)
            .map(|e| match e {
                Envelope::Deliver(d) => (char::from(d.epoch as u8).to_string(), d.qos),
                other => panic!("unexpected envelope {other:?}"),
            })
            .collect();
        got.sort();
        got
    }

    #[test]
    fn overlapping_subscriptions_give_one_copy_at_the_highest_qos() {
        let mut p = Partition::new(&Limits::default());
        let mut out = Outbox::new(0, 1);
        for (client, filter, qos) in [
            ("a", "s/+", QoS::AtMostOnce),
            ("a", "s/#", QoS::ExactlyOnce),
            ("a", "s/t", QoS::AtLeastOnce),
            ("b", "s/t", QoS::AtLeastOnce),
            ("c", "#", QoS::AtMostOnce),
        ] {
            p.subscribe(client.into(), epoch(client), filter, qos, 0, &mut out);
        }
        assert_eq!(
            publish(&mut p, "s/t", QoS::ExactlyOnce),
            vec![
                ("a".to_string(), QoS::ExactlyOnce),
                ("b".to_string(), QoS::AtLeastOnce),
                ("c".to_string(), QoS::AtMostOnce),
            ]
        );
        // One matching filter: every subscriber once, at min(publish, granted).
        assert_eq!(
            publish(&mut p, "other", QoS::AtLeastOnce),
            vec![("c".to_string(), QoS::AtMostOnce)]
        );
    }
}
