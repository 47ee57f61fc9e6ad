//! Per-topic history (the last K values) and the most recently published topics, for one partition.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use crate::message::Message;

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
    /// Position in `by_recency`.
    seq: u64,
}

pub struct History {
    per_topic: usize,
    recent_len: usize,
    /// Topics beyond this are forgotten, least recently published first, so a client publishing to
    /// ever-new topic names cannot grow the history without bound.
    max_topics: usize,
    topics: HashMap<Arc<str>, Record>,
    by_recency: BTreeMap<u64, Arc<str>>,
    next_seq: u64,
}

impl History {
    pub fn new(per_topic: usize, recent_len: usize, max_topics: usize) -> History {
        History {
            per_topic,
            recent_len,
            max_topics: max_topics.max(1),
            topics: HashMap::new(),
            by_recency: BTreeMap::new(),
            next_seq: 0,
        }
    }

    pub fn record(&mut self, msg: &Arc<Message>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let rec = self.topics.entry(msg.topic.clone()).or_insert_with(|| Record {
            values: VecDeque::new(),
            count: 0,
            seq,
        });
        self.by_recency.remove(&rec.seq);
        rec.seq = seq;
        rec.count += 1;
        if rec.values.len() == self.per_topic {
            rec.values.pop_front();
        }
        rec.values.push_back(msg.clone());
        self.by_recency.insert(seq, msg.topic.clone());
        while self.topics.len() > self.max_topics {
            let Some((_, oldest)) = self.by_recency.pop_first() else { break };
            self.topics.remove(&oldest);
        }
    }

    /// Newest first.
    pub fn of(&self, topic: &str) -> Vec<HistoryEntry> {
        self.topics
            .get(topic)
            .map(|r| r.values.iter().rev().map(|m| HistoryEntry { msg: m.clone() }).collect())
            .unwrap_or_default()
    }

    /// This partition's most recent topics, newest first; the caller merges partitions by time.
    pub fn recent(&self) -> Vec<RecentTopic> {
        self.by_recency
            .values()
            .rev()
            .take(self.recent_len)
            .filter_map(|t| {
                let r = self.topics.get(t)?;
                Some(RecentTopic { topic: t.clone(), last: r.values.back()?.clone(), count: r.count })
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
        assert!(h.of("b").is_empty(), "b was the least recent and the limit is 3 topics");
        assert_eq!(h.of("a").len(), 2);
    }
}
