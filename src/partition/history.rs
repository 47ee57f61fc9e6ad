//! Per-topic history (the last K values) and the most recently published topics, for one partition.

use crate::message::Message;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// One remembered publish.
#[derive(Clone, Debug)]
pub struct HistoryEntry {
    pub msg: Arc<Message>,
}

/// A topic with its latest value, for "recently published".
#[derive(Clone, Debug)]
pub struct RecentTopic {
    pub topic: Arc<str>,
    pub last: Arc<Message>,
    pub count: u64,
}

struct Record {
    values: VecDeque<Arc<Message>>,
    count: u64,
    /// When the topic was last published to, in this partition's publish count: orders "recent" and
    /// picks the topics to forget.
    seq: u64,
}

/// The publish path does one hash lookup here and nothing else ordered: the orderings ("recent", which
/// topics to forget) are computed when asked for, which is rare (the admin API, or the topic limit).
pub struct History {
    per_topic: usize,
    recent_len: usize,
    /// Topics beyond this are forgotten, least recently published first, so a client publishing to
    /// ever-new topic names cannot grow the history without bound.
    max_topics: usize,
    topics: HashMap<Arc<str>, Record>,
    next_seq: u64,
}

impl History {
    pub fn new(per_topic: usize, recent_len: usize, max_topics: usize) -> History {
        History {
            per_topic,
            recent_len,
            max_topics: max_topics.max(1),
            topics: HashMap::new(),
            next_seq: 0,
        }
    }

    pub fn record(&mut self, msg: &Arc<Message>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(rec) = self.topics.get_mut(&*msg.topic) {
            rec.seq = seq;
            rec.count += 1;
            if rec.values.len() == self.per_topic {
                rec.values.pop_front();
            }
            rec.values.push_back(msg.clone());
            return;
        }
        if self.topics.len() >= self.max_topics {
            self.forget_oldest();
        }
        let mut values = VecDeque::with_capacity(self.per_topic.min(4));
        values.push_back(msg.clone());
        self.topics.insert(
            msg.topic.clone(),
            Record {
                values,
                count: 1,
                seq,
            },
        );
    }

    /// Makes room for a new topic by forgetting the least recently published sixteenth of the limit
    /// (at least one topic) in one pass, so a stream of new topic names costs O(1) per publish on
    /// average rather than a scan each.
    fn forget_oldest(&mut self) {
        let keep = self.max_topics - 1 - self.max_topics / 16;
        let mut by_age: Vec<(u64, Arc<str>)> = self
            .topics
            .iter()
            .map(|(t, r)| (r.seq, t.clone()))
            .collect();
        let forget = by_age.len().saturating_sub(keep);
        if forget == 0 {
            return;
        }
        by_age.select_nth_unstable_by_key(forget - 1, |(seq, _)| *seq);
        for (_, topic) in &by_age[..forget] {
            self.topics.remove(topic);
        }
    }

    /// Newest first.
    pub fn of(&self, topic: &str) -> Vec<HistoryEntry> {
        self.topics
            .get(topic)
            .map(|r| {
                r.values
                    .iter()
                    .rev()
                    .map(|m| HistoryEntry { msg: m.clone() })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// (topic, messages published, time of the last one) for every remembered topic.
    pub fn topics(&self) -> impl Iterator<Item = (&Arc<str>, u64, Option<&Arc<Message>>)> {
        self.topics
            .iter()
            .map(|(t, r)| (t, r.count, r.values.back()))
    }

    /// This partition's most recent topics, newest first; the caller merges partitions by time.
    pub fn recent(&self) -> Vec<RecentTopic> {
        let mut all: Vec<(&Arc<str>, &Record)> = self.topics.iter().collect();
        all.sort_unstable_by_key(|(_, r)| std::cmp::Reverse(r.seq));
        all.into_iter()
            .take(self.recent_len)
            .filter_map(|(t, r)| {
                Some(RecentTopic {
                    topic: t.clone(),
                    last: r.values.back()?.clone(),
                    count: r.count,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::QoS;
    use std::time::SystemTime;

    fn msg(topic: &str, payload: &str) -> Arc<Message> {
        Arc::new(Message {
            topic: topic.into(),
            payload: payload.as_bytes().into(),
            qos: QoS::AtMostOnce,
            retain: false,
            publisher: "p".into(),
            time: SystemTime::now(),
        })
    }

    #[test]
    fn keeps_last_k_newest_first() {
        let mut h = History::new(3, 10, 100);
        for i in 0..5 {
            h.record(&msg("a", &i.to_string()));
        }
        let vals: Vec<_> = h.of("a").iter().map(|e| e.msg.payload.to_vec()).collect();
        assert_eq!(vals, vec![b"4".to_vec(), b"3".to_vec(), b"2".to_vec()]);
    }

    #[test]
    fn recent_orders_by_last_publish_and_forgets_oldest_topics() {
        let mut h = History::new(2, 2, 3);
        for t in ["a", "b", "c", "a", "d"] {
            h.record(&msg(t, t));
        }
        let recent: Vec<_> = h.recent().iter().map(|r| r.topic.to_string()).collect();
        assert_eq!(recent, vec!["d", "a"]);
        assert!(
            h.of("b").is_empty(),
            "b was the least recent and the limit is 3 topics"
        );
        assert_eq!(h.of("a").len(), 2);
    }

    #[test]
    fn new_topics_never_grow_past_the_limit_and_the_most_recent_survive() {
        let mut h = History::new(1, 5, 100);
        for i in 0..1000 {
            h.record(&msg(&format!("t/{i}"), "v"));
            assert!(h.topics.len() <= 100);
        }
        let recent: Vec<_> = h.recent().iter().map(|r| r.topic.to_string()).collect();
        assert_eq!(recent, vec!["t/999", "t/998", "t/997", "t/996", "t/995"]);
        assert_eq!(h.of("t/999").len(), 1);
        assert!(h.of("t/0").is_empty());
    }
}
