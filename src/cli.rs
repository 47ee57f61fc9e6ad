//! The command line (clap derive only; validation happens when the overrides meet the config file).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "shardmq",
    version,
    about = "A sharded, multi-threaded MQTT 3.1.1 broker"
)]
pub struct Cli {
    /// The configuration file. Without it, ./config.ron is used if present, else built-in defaults.
    #[arg(long, value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,
    /// Worker threads (default: the config's `threads`, else one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// The MQTT listener address, e.g. 0.0.0.0:1883 (overrides `listen`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// off, error, warn, info, debug or trace (overrides `log_level`).
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// The admin console's address, e.g. 127.0.0.1:8080 (overrides `admin.listen`; enables it).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add a user to a password file, or change its password (like mosquitto_passwd). The password is
    /// read from the terminal without echo (twice), or as one line from standard input when it is not a
    /// terminal.
    Passwd {
        /// The password file (created if missing).
        file: PathBuf,
        /// The user name; an e-mail address is fine.
        user: String,
        /// bcrypt cost (4 to 31); each step doubles the time a login takes to check.
        #[arg(long, default_value_t = crate::auth::passwd::DEFAULT_COST, value_parser = clap::value_parser!(u32).range(4..=31))]
        cost: u32,
    },
}
