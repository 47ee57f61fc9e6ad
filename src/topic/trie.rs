//! Subscriptions indexed by topic filter, for routing PUBLISH packets.
//!
//! One node per filter level. Literal children live in a hash map; the `+`
//! child has its own slot, and subscriptions ending in `#` are stored on the
//! parent node, so a lookup for a topic of depth `d` touches at most
//! `d + 1` nodes per live `+` branch and never scans siblings. Nodes that no
//! longer hold a subscription are pruned on removal so that memory follows
//! the live subscription set.
//!
//! All walks are iterative: a valid filter may have 65535 levels, which
//! recursion (including the default recursive drop) would not survive.

use std::collections::HashMap;
use std::hash::Hash;

use super::{split_first, SmallStack};

/// Set of `(filter, key) -> value` subscriptions answering "which
/// subscriptions match this topic name?". Filters must be valid
/// ([`validate_filter`](super::validate_filter)); topics passed to
/// [`for_each_match`](Self::for_each_match) must be valid names.
#[derive(Debug)]
pub struct SubscriptionTrie<K, V> {
    root: Node<K, V>,
    len: usize,
}

#[derive(Debug)]
struct Node<K, V> {
    /// Children for literal levels (including the empty level).
    children: HashMap<Box<str>, Node<K, V>>,
    /// Child for a `+` level.
    plus: Option<Box<Node<K, V>>>,
    /// Subscriptions whose filter ends at this node.
    subs: HashMap<K, V>,
    /// Subscriptions whose filter is this node's path followed by `/#`
    /// (or just `#` at the root). `#` is always last, so it needs no node.
    multi: HashMap<K, V>,
}

impl<K, V> Default for Node<K, V> {
    fn default() -> Self {
        Self {
            children: HashMap::new(),
            plus: None,
            subs: HashMap::new(),
            multi: HashMap::new(),
        }
    }
}

impl<K, V> Node<K, V> {
    #[inline]
    fn child(&self, level: &str) -> Option<&Self> {
        if level == "+" {
            self.plus.as_deref()
        } else {
            self.children.get(level)
        }
    }

    #[inline]
    fn child_mut(&mut self, level: &str) -> Option<&mut Self> {
        if level == "+" {
            self.plus.as_deref_mut()
        } else {
            self.children.get_mut(level)
        }
    }

    /// Whether this node carries nothing but the `path_children` children
    /// that lie on a path being pruned.
    fn is_removable(&self, path_children: usize) -> bool {
        self.subs.is_empty()
            && self.multi.is_empty()
            && self.children.len() + usize::from(self.plus.is_some()) == path_children
    }
}

impl<K, V> Drop for Node<K, V> {
    fn drop(&mut self) {
        // Flatten the subtree so dropping a deep chain does not recurse.
        if self.children.is_empty() && self.plus.is_none() {
            return;
        }
        let mut pending: Vec<Node<K, V>> = Vec::new();
        pending.extend(self.children.drain().map(|(_, c)| c));
        pending.extend(self.plus.take().map(|c| *c));
        while let Some(mut node) = pending.pop() {
            pending.extend(node.children.drain().map(|(_, c)| c));
            pending.extend(node.plus.take().map(|c| *c));
        }
    }
}

/// Splits a filter into the levels that need nodes and whether it ends in
/// `#`. `None` means the subscription sits on the root (the filter `#`).
#[inline]
fn split_filter(filter: &str) -> (Option<&str>, bool) {
    if filter == "#" {
        (None, true)
    } else if let Some(path) = filter.strip_suffix("/#") {
        (Some(path), true)
    } else {
        (Some(filter), false)
    }
}

impl<K, V> Default for SubscriptionTrie<K, V> {
    fn default() -> Self {
        Self {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<K: Eq + Hash + Clone, V> SubscriptionTrie<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Insert or replace the subscription of `key` to `filter`; returns the
    /// previous value.
    pub fn insert(&mut self, filter: &str, key: K, value: V) -> Option<V> {
        let (path, multi) = split_filter(filter);
        let mut node = &mut self.root;
        if let Some(path) = path {
            for level in path.split('/') {
                node = if level == "+" {
                    node.plus.get_or_insert_with(Box::default)
                } else {
                    if !node.children.contains_key(level) {
                        node.children.insert(level.into(), Node::default());
                    }
                    node.children.get_mut(level).expect("child just ensured")
                };
            }
        }
        let slot = if multi {
            &mut node.multi
        } else {
            &mut node.subs
        };
        let old = slot.insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Remove; prunes nodes left empty so memory returns after unsubscribe.
    /// Returns the removed value.
    pub fn remove(&mut self, filter: &str, key: &K) -> Option<V> {
        let (path, multi) = split_filter(filter);
        let (removed, now_empty) = {
            let node = self.node_mut(path)?;
            let slot = if multi {
                &mut node.multi
            } else {
                &mut node.subs
            };
            let removed = slot.remove(key)?;
            (removed, slot.is_empty())
        };
        self.len -= 1;
        if now_empty {
            if let Some(path) = path {
                self.prune(path);
            }
        }
        Some(removed)
    }

    pub fn get(&self, filter: &str, key: &K) -> Option<&V> {
        let (path, multi) = split_filter(filter);
        let node = self.node(path)?;
        if multi {
            node.multi.get(key)
        } else {
            node.subs.get(key)
        }
    }

    /// Calls `f(key, value)` once per (subscription filter, key) whose filter
    /// matches `topic`. A key holding several matching filters is visited
    /// once for each; the caller merges (e.g. takes the highest QoS).
    /// Returns the number of matching filters that had subscriptions: a key
    /// appears at most once per filter, so when it is 0 or 1 there is
    /// nothing to merge. Honours the `$` rule [MQTT-4.7.2-1]. Does not
    /// allocate unless the walk is more than 16 branches deep.
    pub fn for_each_match(&self, topic: &str, mut f: impl FnMut(&K, &V)) -> usize {
        let mut stack: SmallStack<(&Node<K, V>, Option<&str>), 16> = SmallStack::new();
        let mut sets = 0;
        let root = &self.root;
        let (level, rest) = split_first(topic);
        // Filters starting with a wildcard never match `$` topics.
        if !topic.starts_with('$') {
            sets += visit(&root.multi, &mut f);
            if let Some(plus) = root.plus.as_deref() {
                stack.push((plus, rest));
            }
        }
        if let Some(child) = root.children.get(level) {
            stack.push((child, rest));
        }
        while let Some((node, rest)) = stack.pop() {
            // `x/#` matches `x` itself as well as everything below it.
            sets += visit(&node.multi, &mut f);
            match rest {
                None => sets += visit(&node.subs, &mut f),
                Some(rest) => {
                    let (level, rest) = split_first(rest);
                    if let Some(plus) = node.plus.as_deref() {
                        stack.push((plus, rest));
                    }
                    if !node.children.is_empty() {
                        if let Some(child) = node.children.get(level) {
                            stack.push((child, rest));
                        }
                    }
                }
            }
        }
        sets
    }

    /// Number of `(filter, key)` subscriptions.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn node(&self, path: Option<&str>) -> Option<&Node<K, V>> {
        let mut node = &self.root;
        if let Some(path) = path {
            for level in path.split('/') {
                node = node.child(level)?;
            }
        }
        Some(node)
    }

    fn node_mut(&mut self, path: Option<&str>) -> Option<&mut Node<K, V>> {
        let mut node = &mut self.root;
        if let Some(path) = path {
            for level in path.split('/') {
                node = node.child_mut(level)?;
            }
        }
        Some(node)
    }

    /// Removes the longest tail of `path` whose nodes carry nothing but the
    /// path itself. Done in two iterative passes (find the cut, then cut) to
    /// stay within safe borrowing without recursion.
    fn prune(&mut self, path: &str) {
        let mut cut = None;
        let mut node = &self.root;
        let mut levels = path.split('/').peekable();
        let mut depth = 0usize;
        while let Some(level) = levels.next() {
            node = match node.child(level) {
                Some(child) => child,
                None => return,
            };
            depth += 1;
            let path_children = usize::from(levels.peek().is_some());
            if node.is_removable(path_children) {
                cut.get_or_insert(depth);
            } else {
                cut = None;
            }
        }
        let Some(cut) = cut else { return };
        let mut levels = path.split('/');
        let mut parent = &mut self.root;
        for level in levels.by_ref().take(cut - 1) {
            parent = parent.child_mut(level).expect("path checked above");
        }
        let level = levels.next().expect("cut lies on the path");
        if level == "+" {
            parent.plus = None;
        } else {
            parent.children.remove(level);
        }
    }

    /// Number of nodes including the root; used to check pruning.
    #[cfg(test)]
    fn node_count(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            count += 1;
            stack.extend(node.children.values());
            stack.extend(node.plus.as_deref());
        }
        count
    }

    /// Asserts that every non-root node leads to a subscription.
    #[cfg(test)]
    fn assert_pruned(&self) {
        let mut stack: Vec<&Node<K, V>> = self.root.children.values().collect();
        stack.extend(self.root.plus.as_deref());
        while let Some(node) = stack.pop() {
            assert!(
                !node.is_removable(0),
                "empty leaf or childless node left behind"
            );
            stack.extend(node.children.values());
            stack.extend(node.plus.as_deref());
        }
    }
}

#[inline]
/// Calls `f` for each subscription of one set; returns 1 if the set had any, else 0.
fn visit<K, V>(subs: &HashMap<K, V>, f: &mut impl FnMut(&K, &V)) -> usize {
    for (k, v) in subs {
        f(k, v);
    }
    usize::from(!subs.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::filter::matches;
    use crate::topic::filter::tests::{filter_strategy, name_strategy};
    use proptest::prelude::*;

    fn matched(trie: &SubscriptionTrie<u32, &'static str>, topic: &str) -> Vec<(u32, String)> {
        let mut out = Vec::new();
        trie.for_each_match(topic, |k, v| out.push((*k, v.to_string())));
        out.sort();
        out
    }

    #[test]
    fn insert_get_replace_remove() {
        let mut t = SubscriptionTrie::new();
        assert!(t.is_empty());
        assert_eq!(t.insert("a/b", 1, "x"), None);
        assert_eq!(t.insert("a/b", 1, "y"), Some("x"));
        assert_eq!(t.insert("a/b", 2, "z"), None);
        assert_eq!(t.insert("a/#", 1, "h"), None);
        assert_eq!(t.insert("#", 1, "root"), None);
        assert_eq!(t.len(), 4);
        assert_eq!(t.get("a/b", &1), Some(&"y"));
        assert_eq!(t.get("a/#", &1), Some(&"h"));
        assert_eq!(t.get("#", &1), Some(&"root"));
        assert_eq!(t.get("a", &1), None);
        assert_eq!(t.get("a/+", &1), None);
        assert_eq!(t.remove("a/b", &3), None);
        assert_eq!(t.remove("a/c", &1), None);
        assert_eq!(t.remove("a/b", &1), Some("y"));
        assert_eq!(t.get("a/b", &1), None);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn matching_covers_wildcards_and_dollar_rule() {
        let mut t = SubscriptionTrie::new();
        for (i, f) in [
            "sport/tennis/player1/#",
            "sport/#",
            "sport/+",
            "+/+",
            "/+",
            "+",
            "#",
            "$SYS/#",
            "+/monitor/Clients",
            "$SYS/monitor/+",
            "a//b",
            "a/+/b",
        ]
        .into_iter()
        .enumerate()
        {
            t.insert(f, i as u32, f);
        }
        let names = |topic: &str| -> Vec<String> {
            let mut v: Vec<String> = matched(&t, topic).into_iter().map(|(_, f)| f).collect();
            v.sort();
            v
        };
        assert_eq!(names("sport"), ["#", "+", "sport/#"]);
        assert_eq!(
            names("sport/tennis/player1"),
            ["#", "sport/#", "sport/tennis/player1/#"]
        );
        assert_eq!(names("sport/"), ["#", "+/+", "sport/#", "sport/+"]);
        assert_eq!(names("/finance"), ["#", "+/+", "/+"]);
        assert_eq!(names("$SYS/monitor/Clients"), ["$SYS/#", "$SYS/monitor/+"]);
        assert_eq!(names("$SYS"), ["$SYS/#"]);
        assert_eq!(names("a//b"), ["#", "a/+/b", "a//b"]);
    }

    #[test]
    fn same_key_is_visited_once_per_matching_filter() {
        let mut t = SubscriptionTrie::new();
        t.insert("a/b", 7, "exact");
        t.insert("a/+", 7, "plus");
        t.insert("#", 7, "all");
        t.insert("a/c", 7, "other");
        assert_eq!(
            matched(&t, "a/b"),
            [
                (7, "all".to_string()),
                (7, "exact".to_string()),
                (7, "plus".to_string())
            ]
        );
    }

    #[test]
    fn removing_everything_prunes_every_node() {
        let mut t = SubscriptionTrie::new();
        let filters = [
            "a/b/c", "a/b", "a/+/c", "+/#", "#", "a/b/#", "/", "//x", "+/+/+",
        ];
        for (i, f) in filters.iter().enumerate() {
            t.insert(f, i as u32, "v");
            t.insert(f, 100, "w");
        }
        assert!(t.node_count() > 1);
        for (i, f) in filters.iter().enumerate().rev() {
            assert_eq!(t.remove(f, &(i as u32)), Some("v"));
            t.assert_pruned();
        }
        for f in filters {
            assert_eq!(t.remove(f, &100), Some("w"));
            t.assert_pruned();
        }
        assert!(t.is_empty());
        assert_eq!(t.len(), 0);
        assert_eq!(t.node_count(), 1);
    }

    #[test]
    fn pruning_keeps_shared_prefixes() {
        let mut t = SubscriptionTrie::new();
        t.insert("a/b/c/d", 1, ());
        t.insert("a/b", 2, ());
        t.remove("a/b/c/d", &1);
        assert_eq!(t.node_count(), 3); // root, a, b
        t.insert("a/b/c/d", 1, ());
        t.remove("a/b", &2);
        assert_eq!(t.node_count(), 5);
        t.remove("a/b/c/d", &1);
        assert_eq!(t.node_count(), 1);
    }

    #[test]
    fn deep_filters_do_not_overflow_the_stack() {
        // 65535 levels, all empty: the deepest valid filter.
        let deep = "/".repeat(crate::topic::MAX_TOPIC_LEN - 1);
        let deep_plus = format!("{}+", "/".repeat(crate::topic::MAX_TOPIC_LEN - 1));
        let mut t = SubscriptionTrie::new();
        t.insert(&deep, 1u8, ());
        t.insert(&deep_plus, 2u8, ());
        t.insert(
            &format!("{}#", "+/".repeat(crate::topic::MAX_TOPIC_LEN / 2)),
            3u8,
            (),
        );
        let mut hits = Vec::new();
        t.for_each_match(&deep, |k, _| hits.push(*k));
        hits.sort();
        assert_eq!(hits, [1, 2, 3]);
        assert_eq!(t.remove(&deep, &1), Some(()));
        assert_eq!(t.len(), 2);
        // Dropping with deep chains still in place must not recurse.
        drop(t);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(String, u8),
        RemoveExisting(usize),
        Remove(String, u8),
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (filter_strategy(), 0..4u8).prop_map(|(f, k)| Op::Insert(f, k)),
            2 => any::<usize>().prop_map(Op::RemoveExisting),
            1 => (filter_strategy(), 0..4u8).prop_map(|(f, k)| Op::Remove(f, k)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn trie_agrees_with_brute_force(
            ops in prop::collection::vec(op_strategy(), 0..60),
            topics in prop::collection::vec(name_strategy(), 1..12),
        ) {
            let mut trie: SubscriptionTrie<u8, (String, u32)> = SubscriptionTrie::new();
            let mut model: std::collections::BTreeMap<(String, u8), u32> = Default::default();
            for (n, op) in ops.into_iter().enumerate() {
                let n = n as u32;
                match op {
                    Op::Insert(f, k) => {
                        let old = trie.insert(&f, k, (f.clone(), n)).map(|(_, v)| v);
                        prop_assert_eq!(old, model.insert((f, k), n));
                    }
                    Op::RemoveExisting(i) => {
                        if model.is_empty() { continue; }
                        let (f, k) = model.keys().nth(i % model.len()).cloned().expect("in range");
                        let removed = trie.remove(&f, &k).map(|(_, v)| v);
                        prop_assert_eq!(removed, model.remove(&(f, k)));
                    }
                    Op::Remove(f, k) => {
                        let removed = trie.remove(&f, &k).map(|(_, v)| v);
                        prop_assert_eq!(removed, model.remove(&(f, k)));
                    }
                }
                trie.assert_pruned();
            }
            prop_assert_eq!(trie.len(), model.len());
            for ((f, k), v) in &model {
                prop_assert_eq!(trie.get(f, k).map(|(_, v)| *v), Some(*v));
            }
            for topic in &topics {
                let mut got = Vec::new();
                trie.for_each_match(topic, |k, (f, _)| got.push((f.clone(), *k)));
                got.sort();
                let expected: Vec<(String, u8)> = model
                    .keys()
                    .filter(|(f, _)| matches(f, topic))
                    .cloned()
                    .collect();
                prop_assert_eq!(got, expected, "topic {:?}", topic);
            }
            let keys: Vec<(String, u8)> = model.keys().cloned().collect();
            for (f, k) in keys {
                prop_assert!(trie.remove(&f, &k).is_some());
            }
            prop_assert!(trie.is_empty());
            prop_assert_eq!(trie.node_count(), 1);
        }
    }
}
