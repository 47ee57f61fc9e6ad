//! Retained messages indexed by topic name, queried by topic filter.
//!
//! The mirror image of the subscription trie: here the stored keys are
//! plain topic names and the query may contain wildcards. A node per level
//! lets a SUBSCRIBE visit only the subtrees its filter can reach instead of
//! testing every retained topic. Each valued node keeps the full topic so
//! the callback gets it without rebuilding it from the path.
//!
//! All walks are iterative, for the same reason as in the trie: a valid
//! topic may have 65535 levels.

use std::collections::HashMap;

use super::{split_first, SmallStack};

/// Map from topic name to `V`, answering "which stored topics does this
/// filter match?". Keys must be valid topic names
/// ([`validate_topic_name`](super::validate_topic_name)); queries must be
/// valid filters.
#[derive(Debug)]
pub struct TopicTree<V> {
    root: Node<V>,
    len: usize,
}

#[derive(Debug)]
struct Node<V> {
    children: HashMap<Box<str>, Node<V>>,
    /// The full topic name ending here and its value.
    value: Option<(Box<str>, V)>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Self {
            children: HashMap::new(),
            value: None,
        }
    }
}

impl<V> Node<V> {
    fn is_removable(&self, path_children: usize) -> bool {
        self.value.is_none() && self.children.len() == path_children
    }
}

impl<V> Drop for Node<V> {
    fn drop(&mut self) {
        // Flatten the subtree so dropping a deep chain does not recurse.
        if self.children.is_empty() {
            return;
        }
        let mut pending: Vec<Node<V>> = self.children.drain().map(|(_, c)| c).collect();
        while let Some(mut node) = pending.pop() {
            pending.extend(node.children.drain().map(|(_, c)| c));
        }
    }
}

/// A unit of pending work in [`TopicTree::for_each_match`].
enum Step<'a, V> {
    /// `node` has matched the filter so far; `rest` is what remains of it.
    Match(&'a Node<V>, Option<&'a str>),
    /// Everything in the subtree at `node` matches (a trailing `#`).
    All(&'a Node<V>),
}

impl<V> Clone for Step<'_, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Step<'_, V> {}

impl<V> Default for TopicTree<V> {
    fn default() -> Self {
        Self {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<V> TopicTree<V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `value` under `topic`; returns the value it replaces.
    pub fn insert(&mut self, topic: &str, value: V) -> Option<V> {
        let mut node = &mut self.root;
        for level in topic.split('/') {
            if !node.children.contains_key(level) {
                node.children.insert(level.into(), Node::default());
            }
            node = node.children.get_mut(level).expect("child just ensured");
        }
        match &mut node.value {
            Some((_, old)) => Some(std::mem::replace(old, value)),
            empty => {
                *empty = Some((topic.into(), value));
                self.len += 1;
                None
            }
        }
    }

    /// Removes `topic`, pruning nodes left empty; returns its value.
    pub fn remove(&mut self, topic: &str) -> Option<V> {
        let node = topic
            .split('/')
            .try_fold(&mut self.root, |node, level| node.children.get_mut(level))?;
        let (_, value) = node.value.take()?;
        let childless = node.children.is_empty();
        self.len -= 1;
        if childless {
            self.prune(topic);
        }
        Some(value)
    }

    pub fn get(&self, topic: &str) -> Option<&V> {
        let node = topic
            .split('/')
            .try_fold(&self.root, |node, level| node.children.get(level))?;
        node.value.as_ref().map(|(_, v)| v)
    }

    /// Calls `f(topic, value)` for every stored topic matched by `filter`,
    /// honouring the `$` rule [MQTT-4.7.2-1] and `a/#` matching `a`.
    pub fn for_each_match(&self, filter: &str, mut f: impl FnMut(&str, &V)) {
        let mut stack: SmallStack<Step<'_, V>, 16> = SmallStack::new();
        // The root level is expanded here so wildcards skip `$` topics.
        expand(&self.root, filter, true, &mut stack);
        while let Some(step) = stack.pop() {
            match step {
                Step::All(node) => {
                    emit(node, &mut f);
                    for child in node.children.values() {
                        stack.push(Step::All(child));
                    }
                }
                Step::Match(node, None) => emit(node, &mut f),
                Step::Match(node, Some(rest)) => expand(node, rest, false, &mut stack),
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes the longest tail of `topic`'s path whose nodes carry nothing
    /// but the path itself (two passes: find the cut, then cut).
    fn prune(&mut self, topic: &str) {
        let mut cut = None;
        let mut node = &self.root;
        let mut levels = topic.split('/').peekable();
        let mut depth = 0usize;
        while let Some(level) = levels.next() {
            node = match node.children.get(level) {
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
        let mut levels = topic.split('/');
        let mut parent = &mut self.root;
        for level in levels.by_ref().take(cut - 1) {
            parent = parent.children.get_mut(level).expect("path checked above");
        }
        let level = levels.next().expect("cut lies on the path");
        parent.children.remove(level);
    }

    #[cfg(test)]
    fn node_count(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            count += 1;
            stack.extend(node.children.values());
        }
        count
    }

    #[cfg(test)]
    fn assert_pruned(&self) {
        let mut stack: Vec<&Node<V>> = self.root.children.values().collect();
        while let Some(node) = stack.pop() {
            assert!(!node.is_removable(0), "empty leaf left behind");
            stack.extend(node.children.values());
        }
    }
}

/// Matches the first level of `filter` against the children of `node`,
/// queueing the next steps. `at_root` applies the `$` rule.
#[inline]
fn expand<'a, V, const N: usize>(
    node: &'a Node<V>,
    filter: &'a str,
    at_root: bool,
    stack: &mut SmallStack<Step<'a, V>, N>,
) {
    let (level, rest) = split_first(filter);
    let visible = |name: &str| !(at_root && name.starts_with('$'));
    match level {
        "#" if rest.is_none() => {
            if at_root {
                for (name, child) in &node.children {
                    if visible(name) {
                        stack.push(Step::All(child));
                    }
                }
            } else {
                // `a/#` also matches `a`, which `All` emits.
                stack.push(Step::All(node));
            }
        }
        "+" => {
            for (name, child) in &node.children {
                if visible(name) {
                    stack.push(Step::Match(child, rest));
                }
            }
        }
        _ => {
            if let Some(child) = node.children.get(level) {
                stack.push(Step::Match(child, rest));
            }
        }
    }
}

#[inline]
fn emit<V>(node: &Node<V>, f: &mut impl FnMut(&str, &V)) {
    if let Some((topic, value)) = &node.value {
        f(topic, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::filter::matches;
    use crate::topic::filter::tests::{filter_strategy, name_strategy};
    use proptest::prelude::*;

    fn matched(tree: &TopicTree<u32>, filter: &str) -> Vec<String> {
        let mut out = Vec::new();
        tree.for_each_match(filter, |t, _| out.push(t.to_string()));
        out.sort();
        out
    }

    #[test]
    fn insert_get_remove() {
        let mut t = TopicTree::new();
        assert!(t.is_empty());
        assert_eq!(t.insert("a/b", 1), None);
        assert_eq!(t.insert("a/b", 2), Some(1));
        assert_eq!(t.insert("a", 3), None);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get("a/b"), Some(&2));
        assert_eq!(t.get("a"), Some(&3));
        assert_eq!(t.get("a/"), None);
        assert_eq!(t.get("b"), None);
        assert_eq!(t.remove("a/c"), None);
        assert_eq!(t.remove("a"), Some(3));
        assert_eq!(t.remove("a"), None);
        assert_eq!(t.get("a/b"), Some(&2));
        assert_eq!(t.remove("a/b"), Some(2));
        assert!(t.is_empty());
        assert_eq!(t.node_count(), 1);
    }

    #[test]
    fn filters_select_topics() {
        let mut t = TopicTree::new();
        for (i, topic) in [
            "sport",
            "sport/",
            "sport/tennis",
            "sport/tennis/player1",
            "/finance",
            "$SYS/broker",
            "$SYS",
            "a//b",
        ]
        .into_iter()
        .enumerate()
        {
            t.insert(topic, i as u32);
        }
        assert_eq!(
            matched(&t, "#"),
            [
                "/finance",
                "a//b",
                "sport",
                "sport/",
                "sport/tennis",
                "sport/tennis/player1"
            ]
        );
        assert_eq!(matched(&t, "+"), ["sport"]);
        assert_eq!(
            matched(&t, "sport/#"),
            ["sport", "sport/", "sport/tennis", "sport/tennis/player1"]
        );
        assert_eq!(matched(&t, "sport/+"), ["sport/", "sport/tennis"]);
        assert_eq!(matched(&t, "+/+"), ["/finance", "sport/", "sport/tennis"]);
        assert_eq!(matched(&t, "/+"), ["/finance"]);
        assert_eq!(matched(&t, "$SYS/#"), ["$SYS", "$SYS/broker"]);
        assert_eq!(matched(&t, "+/broker"), Vec::<String>::new());
        assert_eq!(matched(&t, "a/+/b"), ["a//b"]);
        assert_eq!(matched(&t, "sport/tennis"), ["sport/tennis"]);
    }

    #[test]
    fn deep_topics_do_not_overflow_the_stack() {
        let deep = "/".repeat(crate::topic::MAX_TOPIC_LEN - 1);
        let mut t = TopicTree::new();
        t.insert(&deep, 1);
        t.insert("x", 2);
        assert_eq!(matched(&t, "#").len(), 2);
        let plus = format!("{}#", "+/".repeat(crate::topic::MAX_TOPIC_LEN / 2));
        assert_eq!(matched(&t, &plus), std::slice::from_ref(&deep));
        assert_eq!(t.get(&deep), Some(&1));
        let mut t2 = TopicTree::new();
        t2.insert(&deep, 1);
        assert_eq!(t2.remove(&deep), Some(1));
        assert_eq!(t2.node_count(), 1);
        drop(t);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn tree_agrees_with_brute_force(
            ops in prop::collection::vec((name_strategy(), 0..4u8, any::<usize>()), 0..60),
            filters in prop::collection::vec(filter_strategy(), 1..12),
        ) {
            let mut tree: TopicTree<(String, u32)> = TopicTree::new();
            let mut model: std::collections::BTreeMap<String, u32> = Default::default();
            for (n, (topic, kind, idx)) in ops.into_iter().enumerate() {
                let n = n as u32;
                match kind {
                    0 | 1 => {
                        let old = tree.insert(&topic, (topic.clone(), n)).map(|(_, v)| v);
                        prop_assert_eq!(old, model.insert(topic, n));
                    }
                    2 => {
                        prop_assert_eq!(tree.remove(&topic).map(|(_, v)| v), model.remove(&topic));
                    }
                    _ => {
                        if model.is_empty() { continue; }
                        let topic = model.keys().nth(idx % model.len()).cloned().expect("in range");
                        prop_assert_eq!(tree.remove(&topic).map(|(_, v)| v), model.remove(&topic));
                    }
                }
                tree.assert_pruned();
            }
            prop_assert_eq!(tree.len(), model.len());
            for (topic, v) in &model {
                prop_assert_eq!(tree.get(topic).map(|(_, v)| *v), Some(*v));
            }
            for filter in &filters {
                let mut got = Vec::new();
                tree.for_each_match(filter, |t, (stored, _)| {
                    assert_eq!(t, stored);
                    got.push(t.to_string());
                });
                got.sort();
                let expected: Vec<String> =
                    model.keys().filter(|t| matches(filter, t)).cloned().collect();
                prop_assert_eq!(got, expected, "filter {:?}", filter);
            }
            let topics: Vec<String> = model.keys().cloned().collect();
            for topic in topics {
                prop_assert!(tree.remove(&topic).is_some());
            }
            prop_assert!(tree.is_empty());
            prop_assert_eq!(tree.node_count(), 1);
        }
    }
}
