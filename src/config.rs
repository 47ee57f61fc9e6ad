//! Configuration in two stages: `config.ron` is parsed into [`RawConfig`] (serde, unknown fields refused,
//! defaults from named constants), then CLI overrides are merged once into a validated [`Settings`] that is
//! passed explicitly to every constructor. Nothing reads configuration globally.
//!
//! Every error names the field and, where the file holds it, the line, and the broker refuses to start
//! rather than guess.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::auth::passwd;
use crate::topic::TopicList;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:1883";
pub const DEFAULT_LOG_LEVEL: &str = "info";
pub const DEFAULT_AUTH_CACHE_SECS: u64 = 300;
/// The largest packet MQTT can express (remaining length 268,435,455 plus a 5-byte fixed header).
pub const MQTT_MAX_PACKET_SIZE: usize = 268_435_460;
pub const DEFAULT_MAX_PACKET_SIZE: usize = 1024 * 1024;
pub const DEFAULT_MAX_INFLIGHT: usize = 32;
pub const DEFAULT_MAX_QUEUED: usize = 1000;
pub const DEFAULT_MAX_WRITE_BUFFER: usize = 256 * 1024;
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
pub const DEFAULT_HISTORY_LEN: usize = 10;
pub const DEFAULT_RECENT_TOPICS: usize = 20;
pub const DEFAULT_MAX_HISTORY_TOPICS: usize = 10_000;
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8080";

/// `config.ron` as written. Field docs live in the bundled config.ron and the README.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// 0 means one worker per available core.
    #[serde(default)]
    pub threads: usize,
    #[serde(default = "default_log_level")]
    pub log_level: String,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub topics: RawTopics,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub admin: RawAdmin,
}

/// The browser admin console (`src/admin_http`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAdmin {
    pub enabled: bool,
    pub listen: String,
    /// Admin accounts (not MQTT accounts): (username, bcrypt hash).
    pub users: Vec<RawUser>,
}

impl Default for RawAdmin {
    fn default() -> Self {
        RawAdmin {
            enabled: true,
            listen: DEFAULT_ADMIN_LISTEN.to_string(),
            users: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    pub allow_anonymous: bool,
    pub users: Vec<RawUser>,
    pub password_file: Option<String>,
    /// 0 means half the cores (at least one).
    pub threads: usize,
    /// Seconds a verified login is remembered (0: every login is checked with bcrypt).
    pub cache_secs: u64,
}

impl Default for RawAuth {
    fn default() -> Self {
        RawAuth {
            allow_anonymous: true,
            users: Vec::new(),
            password_file: None,
            threads: 0,
            cache_secs: DEFAULT_AUTH_CACHE_SECS,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub username: String,
    pub password_hash: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTopics {
    pub enforce: bool,
    pub list: Vec<String>,
    pub state_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    pub max_packet_size: usize,
    pub max_inflight: usize,
    pub max_queued_messages: usize,
    pub max_write_buffer: usize,
    pub connect_timeout_secs: u64,
    pub history_len: usize,
    pub recent_topics: usize,
    pub max_history_topics: usize,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            max_inflight: DEFAULT_MAX_INFLIGHT,
            max_queued_messages: DEFAULT_MAX_QUEUED,
            max_write_buffer: DEFAULT_MAX_WRITE_BUFFER,
            connect_timeout_secs: DEFAULT_CONNECT_TIMEOUT_SECS,
            history_len: DEFAULT_HISTORY_LEN,
            recent_topics: DEFAULT_RECENT_TOPICS,
            max_history_topics: DEFAULT_MAX_HISTORY_TOPICS,
        }
    }
}

fn default_listen() -> String {
    DEFAULT_LISTEN.to_string()
}
fn default_log_level() -> String {
    DEFAULT_LOG_LEVEL.to_string()
}

/// Limits that shape per-connection and per-topic memory. See config.ron for what each bounds.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_packet_size: usize,
    pub max_inflight: usize,
    pub max_queued_messages: usize,
    pub max_write_buffer: usize,
    pub connect_timeout: Duration,
    pub history_len: usize,
    pub recent_topics: usize,
    pub max_history_topics: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_raw(&RawLimits::default())
    }
}

impl Limits {
    fn from_raw(r: &RawLimits) -> Limits {
        Limits {
            max_packet_size: r.max_packet_size,
            max_inflight: r.max_inflight,
            max_queued_messages: r.max_queued_messages,
            max_write_buffer: r.max_write_buffer,
            connect_timeout: Duration::from_secs(r.connect_timeout_secs),
            history_len: r.history_len,
            recent_topics: r.recent_topics,
            max_history_topics: r.max_history_topics,
        }
    }
}

/// The admin console's validated settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminSettings {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// username → bcrypt hash. Empty: a one-time password is generated for `admin` at start.
    pub users: Vec<(String, String)>,
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            enabled: true,
            listen: DEFAULT_ADMIN_LISTEN.parse().expect("constant address"),
            users: Vec::new(),
        }
    }
}

/// The validated configuration every component is built from.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub threads: usize,
    pub log_level: log::LevelFilter,
    pub allow_anonymous: bool,
    /// username → bcrypt hash, from config.ron and the password file (the file wins on a clash).
    pub users: Vec<(String, String)>,
    /// The password file: accounts added or changed at run time are saved here. A missing file is an
    /// empty one (it is created on the first change).
    pub password_file: Option<PathBuf>,
    /// Names defined only in config.ron (not overridden by the password file), which the run-time API
    /// cannot delete: config.ron is never rewritten, to keep its comments.
    pub config_users: Vec<String>,
    pub auth_threads: usize,
    /// How long a login verified with bcrypt is remembered; zero turns the cache off.
    pub auth_cache: Duration,
    pub enforce_topics: bool,
    pub topics: TopicList,
    /// Where topic-list changes made at run time are saved; loaded instead of `topics.list` when present.
    pub topics_state_file: Option<PathBuf>,
    pub limits: Limits,
    pub admin: AdminSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: DEFAULT_LISTEN.parse().expect("constant address"),
            threads: available_cores(),
            log_level: log::LevelFilter::Info,
            allow_anonymous: true,
            users: Vec::new(),
            password_file: None,
            config_users: Vec::new(),
            auth_threads: (available_cores() / 2).max(1),
            auth_cache: Duration::from_secs(DEFAULT_AUTH_CACHE_SECS),
            enforce_topics: false,
            topics: TopicList::default(),
            topics_state_file: None,
            limits: Limits::default(),
            admin: AdminSettings::default(),
        }
    }
}

pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// A configuration error: which field, where, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
            write!(f, ": ")?;
        } else if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Overrides from the command line; `None` keeps the file's value.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub threads: Option<usize>,
    pub listen: Option<String>,
    pub log_level: Option<String>,
    /// `--admin ADDR`: the admin console's address.
    pub admin: Option<String>,
}

impl Settings {
    /// Reads and validates `path`, then applies `overrides`.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.to_path_buf()),
            line: None,
            field: None,
            message: format!("cannot read the config file: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Settings::from_ron(&text, base, overrides).map_err(|mut e| {
            e.file = Some(path.to_path_buf());
            e
        })
    }

    /// Parses RON text; relative paths in it are resolved against `base`.
    pub fn from_ron(
        text: &str,
        base: &Path,
        overrides: &Overrides,
    ) -> Result<Settings, ConfigError> {
        let options = ron::Options::default()
            .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
        let raw: RawConfig = options.from_str(text).map_err(|e| ConfigError {
            file: None,
            line: Some(e.span.start.line),
            field: None,
            message: e.code.to_string(),
        })?;
        Settings::from_raw(raw, text, base, overrides)
    }

    fn from_raw(
        raw: RawConfig,
        text: &str,
        base: &Path,
        ov: &Overrides,
    ) -> Result<Settings, ConfigError> {
        // Overrides are checked the same way but reported as flags, not file lines.
        let field_err = |field: &str, message: String| ConfigError {
            file: None,
            line: line_of(text, field),
            field: Some(field.to_string()),
            message,
        };
        let flag_err = |flag: &str, message: String| ConfigError {
            file: None,
            line: None,
            field: Some(flag.to_string()),
            message,
        };

        let listen = match &ov.listen {
            Some(s) => s
                .parse()
                .map_err(|e| flag_err("--listen", format!("`{s}` is not an address: {e}")))?,
            None => raw.listen.parse().map_err(|e| {
                field_err(
                    "listen",
                    format!(
                        "`{}` is not an address like 127.0.0.1:1883: {e}",
                        raw.listen
                    ),
                )
            })?,
        };
        let threads = match ov.threads {
            Some(0) => return Err(flag_err("--threads", "must be at least 1".into())),
            Some(n) => n,
            None if raw.threads == 0 => available_cores(),
            None => raw.threads,
        };
        if threads > 1024 {
            return Err(field_err(
                "threads",
                format!("{threads} is more than the 1024 supported"),
            ));
        }
        let log_level = match &ov.log_level {
            Some(s) => parse_level(s).ok_or_else(|| flag_err("--log-level", level_message(s)))?,
            None => parse_level(&raw.log_level)
                .ok_or_else(|| field_err("log_level", level_message(&raw.log_level)))?,
        };

        let mut users = Vec::new();
        for u in &raw.auth.users {
            passwd::valid_username(&u.username).map_err(|e| field_err("username", e))?;
            if !passwd::looks_like_bcrypt(&u.password_hash) {
                return Err(field_err(
                    "password_hash",
                    format!("the hash of `{}` is not a bcrypt hash ($2b$...); make one with `shardmq passwd`", u.username),
                ));
            }
            users.push((u.username.clone(), u.password_hash.clone()));
        }
        let mut config_users: Vec<String> = users.iter().map(|(n, _)| n.clone()).collect();
        let password_file = raw.auth.password_file.as_ref().map(|f| base.join(f));
        if let Some(path) = &password_file {
            let entries = match passwd::read_file(path) {
                Ok(e) => e,
                Err(e) if !path.exists() => {
                    log::debug!("{}: {e}; starting with no file accounts", path.display());
                    Vec::new()
                }
                Err(e) => {
                    return Err(field_err(
                        "password_file",
                        format!("{}: {e}", path.display()),
                    ))
                }
            };
            for (name, hash) in entries {
                users.retain(|(n, _)| *n != name);
                config_users.retain(|n| *n != name);
                users.push((name, hash));
            }
        }
        let auth_threads = if raw.auth.threads == 0 {
            (available_cores() / 2).max(1)
        } else {
            raw.auth.threads
        };

        let l = &raw.limits;
        if l.max_packet_size < 64 || l.max_packet_size > MQTT_MAX_PACKET_SIZE {
            return Err(field_err(
                "max_packet_size",
                format!("must be between 64 and {MQTT_MAX_PACKET_SIZE}"),
            ));
        }
        if l.max_inflight == 0 || l.max_inflight > 65_535 {
            return Err(field_err(
                "max_inflight",
                "must be between 1 and 65535".into(),
            ));
        }
        if l.max_write_buffer < 1024 {
            return Err(field_err(
                "max_write_buffer",
                "must be at least 1024 bytes".into(),
            ));
        }
        if l.connect_timeout_secs == 0 {
            return Err(field_err(
                "connect_timeout_secs",
                "must be at least 1".into(),
            ));
        }
        if l.history_len == 0 {
            return Err(field_err("history_len", "must be at least 1".into()));
        }

        let topics = TopicList::new(raw.topics.list.iter().cloned()).map_err(|(entry, why)| {
            field_err("list", format!("topic `{entry}` is invalid: {why}"))
        })?;

        let admin_listen = match &ov.admin {
            Some(s) => s
                .parse()
                .map_err(|e| flag_err("--admin", format!("`{s}` is not an address: {e}")))?,
            None => raw.admin.listen.parse().map_err(|e| {
                // `listen` appears twice in the file; point at the one inside `admin: (`.
                let mut err = field_err(
                    "listen",
                    format!(
                        "admin: `{}` is not an address like 127.0.0.1:8080: {e}",
                        raw.admin.listen
                    ),
                );
                err.line = line_after(text, "admin", "listen").or(err.line);
                err
            })?,
        };
        let mut admin_users: Vec<(String, String)> = Vec::new();
        for u in &raw.admin.users {
            let line = line_after(text, "admin", "users");
            let err = |message: String| ConfigError {
                file: None,
                line,
                field: Some("admin.users".to_string()),
                message,
            };
            passwd::valid_username(&u.username).map_err(&err)?;
            if !passwd::looks_like_bcrypt(&u.password_hash) {
                return Err(err(format!(
                    "the hash of admin `{}` is not a bcrypt hash ($2b$...); make one with `shardmq passwd`",
                    u.username
                )));
            }
            if admin_users.iter().any(|(n, _)| *n == u.username) {
                return Err(err(format!("admin `{}` is listed twice", u.username)));
            }
            admin_users.push((u.username.clone(), u.password_hash.clone()));
        }

        Ok(Settings {
            listen,
            threads,
            log_level,
            allow_anonymous: raw.auth.allow_anonymous,
            users,
            auth_threads,
            auth_cache: Duration::from_secs(raw.auth.cache_secs),
            enforce_topics: raw.topics.enforce,
            topics,
            topics_state_file: raw.topics.state_file.as_ref().map(|f| base.join(f)),
            password_file,
            config_users,
            limits: Limits::from_raw(l),
            admin: AdminSettings {
                enabled: raw.admin.enabled || ov.admin.is_some(),
                listen: admin_listen,
                users: admin_users,
            },
        })
    }
}

fn parse_level(s: &str) -> Option<log::LevelFilter> {
    s.parse().ok()
}

fn level_message(s: &str) -> String {
    format!("`{s}` is not a log level (off, error, warn, info, debug, trace)")
}

/// The 1-based line where `field:` first appears, to point semantic errors at the file.
fn line_of(text: &str, field: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            !l.starts_with("//")
                && l.strip_prefix(field)
                    .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map(|i| i + 1)
}

/// The line of the first `field:` after the line where `section:` appears (for fields whose name is
/// used in several sections).
fn line_after(text: &str, section: &str, field: &str) -> Option<usize> {
    let start = line_of(text, section)?;
    let rest: String = text.lines().skip(start - 1).collect::<Vec<_>>().join("\n");
    line_of(&rest, field).map(|l| l + start - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        Settings::from_ron(text, Path::new("."), &Overrides::default())
    }

    #[test]
    fn bundled_config_is_valid_and_listens_on_loopback() {
        let text = include_str!("../config.ron");
        let s = parse(text).expect("bundled config.ron parses");
        assert!(s.listen.ip().is_loopback());
        assert!(s.allow_anonymous);
    }

    #[test]
    fn empty_config_takes_defaults() {
        let s = parse("()").unwrap();
        assert_eq!(s.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(s.limits.history_len, DEFAULT_HISTORY_LEN);
    }

    #[test]
    fn unknown_field_is_named_with_its_line() {
        let e = parse("(\n  listen: \"127.0.0.1:1\",\n  lisen: 3,\n)").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("lisen"), "{e}");
    }

    #[test]
    fn bad_address_names_field_and_line() {
        let e = parse("(\n\n  listen: \"nowhere\",\n)").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("listen"));
        assert_eq!(e.line, Some(3));
    }

    #[test]
    fn bad_topic_pattern_is_refused() {
        let e = parse("(topics: (list: [\"a/#/b\"]))").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("list"));
        assert!(e.message.contains("a/#/b"));
    }

    #[test]
    fn non_bcrypt_hash_is_refused() {
        let e =
            parse("(auth: (users: [(username: \"u\", password_hash: \"plain\")]))").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("password_hash"));
    }

    #[test]
    fn overrides_win_and_are_checked() {
        let ov = Overrides {
            threads: Some(3),
            listen: Some("127.0.0.1:0".into()),
            log_level: Some("debug".into()),
            admin: Some("127.0.0.1:0".into()),
        };
        let s = Settings::from_ron("(threads: 1)", Path::new("."), &ov).unwrap();
        assert_eq!(s.threads, 3);
        assert_eq!(s.listen.port(), 0);
        assert_eq!(s.log_level, log::LevelFilter::Debug);
        assert_eq!(s.admin.listen.port(), 0);
        let bad = Overrides {
            threads: Some(0),
            ..Overrides::default()
        };
        assert_eq!(
            Settings::from_ron("()", Path::new("."), &bad)
                .unwrap_err()
                .field
                .as_deref(),
            Some("--threads")
        );
    }

    #[test]
    fn admin_section_defaults_to_loopback_8080() {
        let s = parse("()").unwrap();
        assert_eq!(s.admin.listen, DEFAULT_ADMIN_LISTEN.parse().unwrap());
        assert!(s.admin.enabled);
        assert!(s.admin.users.is_empty());
    }

    #[test]
    fn bad_admin_address_names_field_and_line() {
        let e = parse("(\n  listen: \"127.0.0.1:1\",\n  admin: (\n    enabled: true,\n    listen: \"x\",\n  ),\n)")
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("listen"));
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("admin"), "{e}");
        let bad = Overrides {
            admin: Some("nowhere".into()),
            ..Overrides::default()
        };
        let e = Settings::from_ron("()", Path::new("."), &bad).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("--admin"));
    }

    #[test]
    fn admin_hash_must_be_bcrypt() {
        let e = parse("(\n admin: (\n  users: [(username: \"a\", password_hash: \"x\")],\n ),\n)")
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("admin.users"));
        assert_eq!(e.line, Some(3));
    }
}
