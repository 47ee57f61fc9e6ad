//! Topic grammar and the data structures that match topics against filters.
//!
//! Everything here is pure and single-threaded: no I/O, no locks, no channels.
//! Keeping the MQTT topic rules (validation, wildcard matching, the `$` rule)
//! in one dependency-free place lets every shard own its own
//! [`SubscriptionTrie`] and [`TopicTree`] without coordination, and lets the
//! rules be tested exhaustively against the brute-force oracle in [`filter`].
//!
//! * [`filter`] — validation of topic names and filters, plus the reference
//!   matcher [`matches()`] and the filter/filter intersection test [`overlaps`].
//! * [`trie`] — subscriptions indexed by filter; answers "who receives this
//!   PUBLISH?".
//! * [`tree`] — retained messages indexed by topic name; answers "which
//!   retained messages does this new subscription receive?".
//! * [`list`] — the configured set of topics (names or patterns) a broker
//!   offers, used to admit SUBSCRIBE filters and PUBLISH topics.

pub mod filter;
pub mod list;
pub mod tree;
pub mod trie;

pub use filter::{
    has_wildcard, matches, overlaps, validate_filter, validate_topic_name, TopicError,
    MAX_TOPIC_LEN,
};
pub use list::TopicList;
pub use tree::TopicTree;
pub use trie::SubscriptionTrie;

/// Splits off the first `/`-separated level. The remainder is `None` when
/// `s` had no separator, so `"a/"` yields `("a", Some(""))`: empty levels are
/// real levels.
#[inline]
fn split_first(s: &str) -> (&str, Option<&str>) {
    match s.find('/') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

/// LIFO work stack for the tree walks. Walks are iterative rather than
/// recursive because a legal 65535-byte topic can have 65536 levels, which
/// would overflow a thread stack; the inline part keeps the common shallow
/// walk free of heap allocation.
struct SmallStack<T: Copy, const N: usize> {
    inline: [Option<T>; N],
    len: usize,
    spill: Vec<T>,
}

impl<T: Copy, const N: usize> SmallStack<T, N> {
    #[inline]
    fn new() -> Self {
        Self {
            inline: [None; N],
            len: 0,
            spill: Vec::new(),
        }
    }

    #[inline]
    fn push(&mut self, item: T) {
        if self.len < N {
            self.inline[self.len] = Some(item);
            self.len += 1;
        } else {
            self.spill.push(item);
        }
    }

    #[inline]
    fn pop(&mut self) -> Option<T> {
        // Items only reach `spill` while `inline` is full, so popping `spill`
        // first keeps strict LIFO order.
        if let Some(item) = self.spill.pop() {
            return Some(item);
        }
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        self.inline[self.len].take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_first_keeps_empty_levels() {
        assert_eq!(split_first("a"), ("a", None));
        assert_eq!(split_first("a/"), ("a", Some("")));
        assert_eq!(split_first("/b"), ("", Some("b")));
        assert_eq!(split_first("a/b/c"), ("a", Some("b/c")));
        assert_eq!(split_first(""), ("", None));
    }

    #[test]
    fn small_stack_is_lifo_across_spill() {
        let mut s: SmallStack<u32, 2> = SmallStack::new();
        for i in 0..5 {
            s.push(i);
        }
        let popped: Vec<u32> = std::iter::from_fn(|| s.pop()).collect();
        assert_eq!(popped, vec![4, 3, 2, 1, 0]);
        s.push(7);
        s.push(8);
        s.push(9);
        assert_eq!(s.pop(), Some(9));
        s.push(10);
        assert_eq!(s.pop(), Some(10));
        assert_eq!(s.pop(), Some(8));
        assert_eq!(s.pop(), Some(7));
        assert_eq!(s.pop(), None);
    }
}
