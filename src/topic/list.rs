//! The configured list of topics a broker offers.
//!
//! Entries are exact topic names or patterns, so admission is decided with
//! [`matches()`] for PUBLISH and [`overlaps`] for SUBSCRIBE: a subscription is
//! useful exactly when some topic it could receive is on offer. The list is
//! expected to be short and edited rarely, so a linear scan is the right
//! trade-off against keeping it in sync with an index.

use super::filter::{matches, overlaps, validate_filter, TopicError};

/// Ordered, de-duplicated list of entries, each an exact topic name or a
/// pattern with wildcards (each a valid filter).
///
/// An empty list admits nothing; whether "no list configured" means "no
/// restriction" is the caller's decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicList {
    entries: Vec<String>,
}

impl TopicList {
    /// Builds a list keeping the first occurrence of each entry. Fails with
    /// the first invalid entry and why.
    pub fn new(entries: impl IntoIterator<Item = String>) -> Result<Self, (String, TopicError)> {
        let mut list = Self::default();
        for entry in entries {
            if let Err(e) = validate_filter(&entry) {
                return Err((entry, e));
            }
            if !list.contains(&entry) {
                list.entries.push(entry);
            }
        }
        Ok(list)
    }

    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    /// Appends `entry`; `Ok(false)` if it was already present.
    pub fn add(&mut self, entry: &str) -> Result<bool, TopicError> {
        validate_filter(entry)?;
        if self.contains(entry) {
            return Ok(false);
        }
        self.entries.push(entry.to_owned());
        Ok(true)
    }

    /// Removes `entry` (compared literally, not by matching); `false` if it
    /// was absent.
    pub fn remove(&mut self, entry: &str) -> bool {
        match self.entries.iter().position(|e| e == entry) {
            Some(i) => {
                self.entries.remove(i);
                true
            }
            None => false,
        }
    }

    /// Whether `entry` is literally in the list.
    pub fn contains(&self, entry: &str) -> bool {
        self.entries.iter().any(|e| e == entry)
    }

    /// A SUBSCRIBE filter is allowed when it overlaps at least one entry.
    pub fn allows_filter(&self, filter: &str) -> bool {
        self.entries.iter().any(|e| overlaps(filter, e))
    }

    /// A PUBLISH topic is allowed when at least one entry matches it.
    pub fn allows_topic(&self, topic: &str) -> bool {
        self.entries.iter().any(|e| matches(e, topic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> TopicList {
        TopicList::new(entries.iter().map(|s| s.to_string())).expect("valid entries")
    }

    #[test]
    fn new_validates_and_deduplicates_in_order() {
        let l = list(&["b", "a/+", "b", "#", "a/+"]);
        assert_eq!(l.entries(), ["b", "a/+", "#"]);
        let err = TopicList::new(["ok".to_string(), "a/#/b".to_string(), "".to_string()]);
        assert_eq!(
            err,
            Err(("a/#/b".to_string(), TopicError::MisplacedMultiLevel))
        );
        assert_eq!(
            TopicList::new([String::new()]),
            Err((String::new(), TopicError::Empty))
        );
        assert!(TopicList::new(Vec::new())
            .expect("empty is fine")
            .entries()
            .is_empty());
    }

    #[test]
    fn add_remove_contains() {
        let mut l = TopicList::default();
        assert_eq!(l.add("a/b"), Ok(true));
        assert_eq!(l.add("a/b"), Ok(false));
        assert_eq!(l.add("x/+"), Ok(true));
        assert_eq!(l.add("x+"), Err(TopicError::MisplacedSingleLevel));
        assert_eq!(l.entries(), ["a/b", "x/+"]);
        assert!(l.contains("x/+"));
        assert!(!l.contains("x/y"));
        assert!(!l.remove("x/y"));
        assert!(l.remove("a/b"));
        assert!(!l.remove("a/b"));
        assert_eq!(l.entries(), ["x/+"]);
    }

    #[test]
    fn admission() {
        let l = list(&["sensors/+/temp", "cmd/#", "status", "$SYS/load"]);
        assert!(l.allows_topic("sensors/k1/temp"));
        assert!(!l.allows_topic("sensors/k1/humidity"));
        assert!(l.allows_topic("cmd"));
        assert!(l.allows_topic("cmd/reboot/now"));
        assert!(l.allows_topic("status"));
        assert!(!l.allows_topic("status/x"));
        assert!(l.allows_topic("$SYS/load"));

        assert!(l.allows_filter("sensors/+/temp"));
        assert!(l.allows_filter("sensors/k1/+"));
        assert!(l.allows_filter("+/k1/temp"));
        assert!(!l.allows_filter("sensors/k1"));
        assert!(l.allows_filter("#"));
        assert!(l.allows_filter("cmd/x/y/z"));
        assert!(!l.allows_filter("other/#"));
        assert!(l.allows_filter("$SYS/#"));

        let dollar_only = list(&["$SYS/load"]);
        assert!(!dollar_only.allows_filter("#"));
        assert!(!dollar_only.allows_filter("+/load"));
        assert!(dollar_only.allows_filter("$SYS/+"));

        let empty = TopicList::default();
        assert!(!empty.allows_filter("#"));
        assert!(!empty.allows_topic("a"));
    }
}
