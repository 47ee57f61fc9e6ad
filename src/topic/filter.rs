//! Topic names, topic filters, and the reference matcher (MQTT 3.1.1 §4.7).
//!
//! A topic is a UTF-8 string of levels separated by `/`. Every level is
//! real, including empty ones: `"a//b"` has three levels and `"/a"` has two,
//! the first empty. Matching is byte-exact and case-sensitive.
//!
//! Both names and filters must be at least one character long
//! [MQTT-4.7.3-1], at most 65535 bytes (the length prefix of a UTF-8 string,
//! §1.5.3), and must not contain U+0000 [MQTT-1.5.3-2].
//!
//! Topic names (PUBLISH) must not contain wildcards [MQTT-4.7.1-1],
//! [MQTT-3.3.2-2].
//!
//! Topic filters (SUBSCRIBE) may contain wildcards:
//! * `+` matches exactly one level, which may be empty; it must occupy a
//!   whole level [MQTT-4.7.1-3].
//! * `#` matches the parent level and any number of child levels; it must be
//!   a whole level and the last one [MQTT-4.7.1-2].
//! * A filter whose first level is a wildcard does not match a name whose
//!   first character is `$` [MQTT-4.7.2-1]; `$SYS/#` does.
//!
//! ```text
//! Valid filters:               Invalid filters:
//!   #                            sport/tennis#        '#' not a whole level
//!   +                            sport/tennis/#/ranking  '#' not last
//!   sport/#                      #/a                  '#' not last
//!   sport/tennis/+/ranking       sport+               '+' not a whole level
//!   +/tennis/#                   +a                   '+' not a whole level
//!   /+   //   a//b               (empty string)       too short
//!   $SYS/#
//!
//! Valid but non-matching (filter -> name):
//!   sport/+        -> sport                 '+' needs a level ("sport/" matches)
//!   sport/tennis/+ -> sport/tennis/p1/rank  '+' is exactly one level
//!   +              -> /finance              two levels ("+/+" and "/+" match)
//!   a/b            -> a/b/                  trailing empty level is a level
//!   #              -> $SYS/broker           '$' rule ("$SYS/#" matches)
//!   +/monitor/x    -> $SYS/monitor/x        '$' rule
//!   ACCOUNTS       -> Accounts              case-sensitive
//! ```
//!
//! [`matches()`] is a deliberately simple brute-force matcher: it is the
//! oracle the trie, the retained-message tree and the topic list are tested
//! against.

use std::fmt;

/// Longest topic name or filter, in bytes: the 16-bit length prefix of an
/// MQTT UTF-8 string (§1.5.3).
pub const MAX_TOPIC_LEN: usize = 65535;

/// Why a topic name or topic filter is rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicError {
    /// Zero length [MQTT-4.7.3-1].
    Empty,
    /// Longer than [`MAX_TOPIC_LEN`] bytes (§1.5.3).
    TooLong,
    /// Contains U+0000 [MQTT-1.5.3-2].
    NullChar,
    /// A topic name containing `+` or `#` [MQTT-4.7.1-1], [MQTT-3.3.2-2].
    Wildcard,
    /// `#` that is not a whole level or not the last level [MQTT-4.7.1-2].
    MisplacedMultiLevel,
    /// `+` that is not a whole level [MQTT-4.7.1-3].
    MisplacedSingleLevel,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TopicError::Empty => "topic must be at least one character long [MQTT-4.7.3-1]",
            TopicError::TooLong => "topic is longer than 65535 bytes [MQTT-1.5.3]",
            TopicError::NullChar => "topic must not contain U+0000 [MQTT-1.5.3-2]",
            TopicError::Wildcard => {
                "topic name must not contain wildcard characters [MQTT-4.7.1-1] [MQTT-3.3.2-2]"
            }
            TopicError::MisplacedMultiLevel => {
                "'#' must be a whole level and the last level of the filter [MQTT-4.7.1-2]"
            }
            TopicError::MisplacedSingleLevel => {
                "'+' must occupy an entire level of the filter [MQTT-4.7.1-3]"
            }
        })
    }
}

impl std::error::Error for TopicError {}

#[inline]
fn check_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        Err(TopicError::Empty)
    } else if s.len() > MAX_TOPIC_LEN {
        Err(TopicError::TooLong)
    } else {
        Ok(())
    }
}

/// Checks a topic name as carried by PUBLISH (or a will topic).
pub fn validate_topic_name(topic: &str) -> Result<(), TopicError> {
    check_common(topic)?;
    for &b in topic.as_bytes() {
        match b {
            0 => return Err(TopicError::NullChar),
            b'+' | b'#' => return Err(TopicError::Wildcard),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a topic filter as carried by SUBSCRIBE / UNSUBSCRIBE. When a
/// filter has several faults, the first one in byte order is reported.
pub fn validate_filter(filter: &str) -> Result<(), TopicError> {
    check_common(filter)?;
    let bytes = filter.as_bytes();
    let starts_level = |i: usize| i == 0 || bytes[i - 1] == b'/';
    let ends_level = |i: usize| i + 1 == bytes.len() || bytes[i + 1] == b'/';
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            0 => return Err(TopicError::NullChar),
            b'#' if !starts_level(i) || i + 1 != bytes.len() => {
                return Err(TopicError::MisplacedMultiLevel)
            }
            b'+' if !starts_level(i) || !ends_level(i) => {
                return Err(TopicError::MisplacedSingleLevel)
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether `s` contains a wildcard character, i.e. denotes a pattern rather
/// than a single topic name.
#[inline]
pub fn has_wildcard(s: &str) -> bool {
    s.bytes().any(|b| b == b'+' || b == b'#')
}

#[inline]
fn starts_with_wildcard(s: &str) -> bool {
    matches!(s.as_bytes().first(), Some(b'+' | b'#'))
}

/// Brute-force matcher: does `filter` (valid) match `topic` (valid name)?
/// Level by level split on '/'; '+' one level (may be empty), '#' the parent
/// level and any number of child levels ("sport/#" matches "sport"); empty
/// levels are real levels ("a//b"); filters starting with '+' or '#' do not
/// match topics beginning with '$' [MQTT-4.7.2-1].
pub fn matches(filter: &str, topic: &str) -> bool {
    if starts_with_wildcard(filter) && topic.starts_with('$') {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Does some topic name exist that both `a` and `b` match? Either may
/// contain wildcards (both are valid filters). Used to check a SUBSCRIBE
/// filter against the configured topic list, whose entries may be patterns.
///
/// Levels are independent except for the `$` rule, so a level-by-level walk
/// decides it: two literals must be equal, `+` takes the other side's level
/// (or any plain level if both are `+`), `#` absorbs whatever remains. A
/// filter starting with a wildcard never overlaps one whose first level is a
/// literal beginning with `$`, because every name the latter matches starts
/// with `$`. The empty string is not a topic name, so `"/#"` (whose only
/// one-level match would be `""`) does not overlap `"+"`.
pub fn overlaps(a: &str, b: &str) -> bool {
    let dollar_literal = |s: &str| s.starts_with('$');
    if (starts_with_wildcard(a) && dollar_literal(b))
        || (starts_with_wildcard(b) && dollar_literal(a))
    {
        return false;
    }
    let mut ai = a.split('/');
    let mut bi = b.split('/');
    // The one witness that is not a topic name is the empty string: a single
    // level forced to be empty, as for "/#" against "+".
    let mut single_empty_level = false;
    for depth in 0usize.. {
        match (ai.next(), bi.next()) {
            (Some("#"), Some(_)) | (Some(_), Some("#")) => return true,
            (Some("#"), None) | (None, Some("#")) | (None, None) => {
                return !(depth == 1 && single_empty_level)
            }
            (Some(x), Some(y)) if x == "+" || y == "+" || x == y => {
                if depth == 0 {
                    single_empty_level = x.is_empty() || y.is_empty();
                }
            }
            _ => return false,
        }
    }
    unreachable!("the level iterators end")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_topic_names() {
        for t in [
            "a",
            "/",
            "//",
            "a/b",
            "a//b",
            "/finance",
            "sport/tennis/player1",
            "$SYS/broker/load",
            "$",
            " ",
            "€/ü/日本",
            "a/b/",
        ] {
            assert_eq!(validate_topic_name(t), Ok(()), "{t:?}");
        }
        assert_eq!(validate_topic_name(&"a".repeat(MAX_TOPIC_LEN)), Ok(()));
    }

    #[test]
    fn invalid_topic_names() {
        let long = "a".repeat(MAX_TOPIC_LEN + 1);
        for (t, e) in [
            ("", TopicError::Empty),
            (long.as_str(), TopicError::TooLong),
            ("a\0b", TopicError::NullChar),
            ("\0", TopicError::NullChar),
            ("#", TopicError::Wildcard),
            ("+", TopicError::Wildcard),
            ("a/+", TopicError::Wildcard),
            ("a/#", TopicError::Wildcard),
            ("a+b", TopicError::Wildcard),
            ("sport/tennis#", TopicError::Wildcard),
        ] {
            assert_eq!(validate_topic_name(t), Err(e), "{t:?}");
        }
    }

    #[test]
    fn valid_filters() {
        for f in [
            "#",
            "+",
            "+/+",
            "/+",
            "+/",
            "/",
            "//",
            "a//b",
            "sport/#",
            "sport/tennis/#",
            "sport/tennis/+/ranking",
            "+/tennis/#",
            "$SYS/#",
            "/#",
            "a//+/#",
            "+/+/+",
            "a/b",
        ] {
            assert_eq!(validate_filter(f), Ok(()), "{f:?}");
        }
        let mut long = "a/".repeat(MAX_TOPIC_LEN / 2);
        long.push('#');
        assert_eq!(long.len(), MAX_TOPIC_LEN);
        assert_eq!(validate_filter(&long), Ok(()));
    }

    #[test]
    fn invalid_filters() {
        let long = "+/".repeat(MAX_TOPIC_LEN / 2 + 1);
        for (f, e) in [
            ("", TopicError::Empty),
            (long.as_str(), TopicError::TooLong),
            ("a\0", TopicError::NullChar),
            ("\0/#", TopicError::NullChar),
            ("sport/tennis#", TopicError::MisplacedMultiLevel),
            ("sport/tennis/#/ranking", TopicError::MisplacedMultiLevel),
            ("#/a", TopicError::MisplacedMultiLevel),
            ("a/#b", TopicError::MisplacedMultiLevel),
            ("##", TopicError::MisplacedMultiLevel),
            ("#/", TopicError::MisplacedMultiLevel),
            ("#+", TopicError::MisplacedMultiLevel),
            ("sport+", TopicError::MisplacedSingleLevel),
            ("+a", TopicError::MisplacedSingleLevel),
            ("a/+b/c", TopicError::MisplacedSingleLevel),
            ("++", TopicError::MisplacedSingleLevel),
            ("+#", TopicError::MisplacedSingleLevel),
        ] {
            assert_eq!(validate_filter(f), Err(e), "{f:?}");
        }
    }

    #[test]
    fn wildcard_detection() {
        assert!(has_wildcard("a/+"));
        assert!(has_wildcard("#"));
        assert!(has_wildcard("a+b"));
        assert!(!has_wildcard("a/b"));
        assert!(!has_wildcard("$SYS/x"));
    }

    #[test]
    fn error_messages_cite_the_spec() {
        assert!(TopicError::Empty.to_string().contains("[MQTT-4.7.3-1]"));
        assert!(TopicError::NullChar.to_string().contains("[MQTT-1.5.3-2]"));
        assert!(TopicError::Wildcard.to_string().contains("[MQTT-3.3.2-2]"));
        assert!(TopicError::Wildcard.to_string().contains("[MQTT-4.7.1-1]"));
        assert!(TopicError::MisplacedMultiLevel
            .to_string()
            .contains("[MQTT-4.7.1-2]"));
        assert!(TopicError::MisplacedSingleLevel
            .to_string()
            .contains("[MQTT-4.7.1-3]"));
    }

    #[test]
    fn matching_per_section_4_7() {
        let cases: &[(&str, &str, bool)] = &[
            // §4.7.1.2 multi-level wildcard
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/ranking",
                true,
            ),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/score/wimbledon",
                true,
            ),
            ("sport/tennis/player1/#", "sport/tennis/player2", false),
            ("sport/tennis/player1/#", "sport/tennis", false),
            ("sport/#", "sport", true),
            ("sport/#", "sport/", true),
            ("sport/#", "sports", false),
            ("#", "sport", true),
            ("#", "/", true),
            ("#", "a/b/c", true),
            ("/#", "/", true),
            ("/#", "/a", true),
            ("/#", "a", false),
            // §4.7.1.3 single-level wildcard
            ("sport/tennis/+", "sport/tennis/player1", true),
            ("sport/tennis/+", "sport/tennis/player2", true),
            ("sport/tennis/+", "sport/tennis/player1/ranking", false),
            ("sport/+", "sport", false),
            ("sport/+", "sport/", true),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+", "/finance", false),
            ("+/tennis/#", "sport/tennis/player1", true),
            ("+/tennis/#", "sport/tennis", true),
            ("+/tennis/#", "sport/golf", false),
            // empty levels are real levels
            ("a//b", "a//b", true),
            ("a/+/b", "a//b", true),
            ("a/b", "a//b", false),
            ("+/b", "/b", true),
            ("a/+", "a/", true),
            ("a/b", "a/b/", false),
            ("a/b/", "a/b/", true),
            ("+", "a", true),
            ("//", "//", true),
            ("+/+/+", "//", true),
            // §4.7.2 topics beginning with '$'
            ("#", "$SYS/broker", false),
            ("#", "$SYS", false),
            ("+", "$SYS", false),
            ("+/monitor/Clients", "$SYS/monitor/Clients", false),
            ("$SYS/#", "$SYS/monitor/Clients", true),
            ("$SYS/#", "$SYS", true),
            ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
            ("+/#", "$x/y", false),
            ("a/+", "a/$x", true),
            ("a/#", "a/$x", true),
            ("#", "a$", true),
            // §4.7.3 exact, case-sensitive
            ("ACCOUNTS", "Accounts", false),
            ("Accounts", "Accounts", true),
            ("Accounts payable", "Accounts payable", true),
            ("a/b", "a/b/c", false),
            ("a/b/c", "a/b", false),
        ];
        for &(f, t, expected) in cases {
            assert_eq!(validate_filter(f), Ok(()), "{f:?}");
            assert_eq!(validate_topic_name(t), Ok(()), "{t:?}");
            assert_eq!(matches(f, t), expected, "matches({f:?}, {t:?})");
        }
    }

    #[test]
    fn overlap_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("a/+", "a/b/#", true),
            ("a/+/c", "a/b", false),
            ("#", "$SYS/x", false),
            ("+/x", "+/y", false),
            ("#", "a", true),
            ("#", "#", true),
            ("+", "+", true),
            ("#", "+", true),
            ("+", "$SYS", false),
            ("+/#", "$SYS/#", false),
            ("$SYS/#", "$SYS", true),
            ("$SYS/+", "$SYS/#", true),
            ("$SYS/#", "$SYS/x/y", true),
            ("+/+", "a", false),
            ("a/#", "a", true),
            ("a/#", "b", false),
            ("a/#", "+/b", true),
            ("a/+/c", "+/b/+", true),
            ("a/+/c", "+/b/d", false),
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
            ("a", "a/b", false),
            ("/+", "+", false),
            ("/+", "+/#", true),
            ("a/b/c/d/#", "a/+/c", false),
            ("a/b/c/d/#", "a/+/c/#", true),
            ("+/+", "/", true),
            ("a//b", "a/+/b", true),
            ("a/$x", "a/+", true),
            ("$x", "$x", true),
            ("$x/#", "$y/#", false),
            // the only common "name" would be the empty string
            ("/#", "+", false),
            ("/#", "#", true),
            ("/#", "/#", true),
            ("/#", "+/#", true),
            ("/#", "+/+", true),
        ];
        for &(a, b, expected) in cases {
            assert_eq!(validate_filter(a), Ok(()), "{a:?}");
            assert_eq!(validate_filter(b), Ok(()), "{b:?}");
            assert_eq!(overlaps(a, b), expected, "overlaps({a:?}, {b:?})");
            assert_eq!(overlaps(b, a), expected, "overlaps({b:?}, {a:?})");
        }
    }

    /// Levels a topic name may be built from in the exhaustive oracle.
    ///
    /// The alphabet is complete for filters built from the same literals:
    /// a witness topic only ever needs, at each level, the literal one side
    /// demands, or — where both sides have `+` or `#` — some level that is
    /// not `$`-prefixed (the `$` rule only constrains the first level), and
    /// `"a"` serves for that. Levels past the deepest non-`#` level are never
    /// needed because `#` also matches its parent, so depth ≤ 4 suffices for
    /// filters of depth ≤ 4. The empty name `""` is not a valid topic name
    /// and is excluded.
    pub(crate) const NAME_LEVELS: [&str; 4] = ["a", "b", "$s", ""];

    /// Every valid topic name of depth 1..=4 over [`NAME_LEVELS`].
    pub(crate) fn all_names() -> Vec<String> {
        let mut out = Vec::new();
        let mut layer: Vec<String> = vec![String::new()];
        for depth in 1..=4 {
            let mut next = Vec::new();
            for prefix in &layer {
                for level in NAME_LEVELS {
                    next.push(if depth == 1 {
                        level.to_string()
                    } else {
                        format!("{prefix}/{level}")
                    });
                }
            }
            out.extend(next.iter().filter(|t| !t.is_empty()).cloned());
            layer = next;
        }
        out
    }

    /// Valid filters of depth 1..=4 over the name alphabet plus `+`, with an
    /// optional trailing `#`.
    pub(crate) fn filter_strategy() -> impl Strategy<Value = String> {
        const LEVELS: [&str; 5] = ["a", "b", "$s", "", "+"];
        (prop::collection::vec(0..LEVELS.len(), 1..=4), any::<bool>())
            .prop_map(|(idx, hash)| {
                let mut levels: Vec<&str> = idx.iter().map(|&i| LEVELS[i]).collect();
                if hash {
                    *levels.last_mut().expect("non-empty") = "#";
                }
                levels.join("/")
            })
            .prop_filter("valid filter", |f| validate_filter(f).is_ok())
    }

    /// Valid topic names of depth 1..=4 over [`NAME_LEVELS`].
    pub(crate) fn name_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(0..NAME_LEVELS.len(), 1..=4)
            .prop_map(|idx| {
                idx.iter()
                    .map(|&i| NAME_LEVELS[i])
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .prop_filter("valid name", |t| validate_topic_name(t).is_ok())
    }

    #[test]
    fn name_alphabet_is_exhaustive() {
        let names = all_names();
        assert_eq!(names.len(), 4 + 16 + 64 + 256 - 1);
        assert!(names.iter().all(|t| validate_topic_name(t).is_ok()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn overlaps_agrees_with_exhaustive_search(a in filter_strategy(), b in filter_strategy()) {
            thread_local! {
                static NAMES: Vec<String> = all_names();
            }
            let expected = NAMES.with(|names| {
                names.iter().any(|t| matches(&a, t) && matches(&b, t))
            });
            prop_assert_eq!(overlaps(&a, &b), expected, "a={:?} b={:?}", a, b);
            prop_assert_eq!(overlaps(&b, &a), expected);
        }

        #[test]
        fn overlaps_with_a_name_is_matching(f in filter_strategy(), t in name_strategy()) {
            prop_assert_eq!(overlaps(&f, &t), matches(&f, &t));
            prop_assert_eq!(overlaps(&t, &f), matches(&f, &t));
        }

        #[test]
        fn a_filter_overlaps_itself(f in filter_strategy()) {
            prop_assert!(overlaps(&f, &f));
        }
    }
}
