use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use shardmq::admin_http::AdminServer;
use shardmq::cli::{Cli, Command};
use shardmq::config::{ConfigError, Overrides, Settings};
use shardmq::{auth::passwd, logging, Broker};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Passwd {
            ref file,
            ref user,
            cost,
        }) => run_passwd(file, user, cost),
        None => serve(cli),
    }
}

fn serve(cli: Cli) -> ExitCode {
    let overrides = Overrides {
        threads: cli.threads,
        listen: cli.listen,
        log_level: cli.log_level,
        admin: cli.admin,
    };
    let default = PathBuf::from("config.ron");
    let path = cli.config.or_else(|| default.exists().then_some(default));
    let settings = match &path {
        Some(p) => Settings::load(p, &overrides),
        None => Settings::from_ron("()", Path::new("."), &overrides),
    };
    let settings = match settings {
        Ok(s) => s,
        Err(e) => return fail_config(e),
    };
    logging::init(settings.log_level);
    match &path {
        Some(p) => log::info!("configuration from {}", p.display()),
        None => log::info!("no config.ron here: built-in defaults"),
    }
    let broker = match Broker::start(settings) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("shardmq: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "shardmq {} listening on {}",
        env!("CARGO_PKG_VERSION"),
        broker.local_addr()
    );
    let admin_settings = broker.handle().settings().admin.clone();
    let _admin = if admin_settings.enabled {
        match AdminServer::start(broker.handle(), &admin_settings) {
            Ok(a) => {
                println!("admin console on http://{}/", a.local_addr());
                if let Some(pw) = a.generated_password() {
                    println!("admin login: user `admin`, one-time password `{pw}` (valid until the broker stops; configure admin.users to set your own)");
                }
                Some(a)
            }
            Err(e) => {
                eprintln!("shardmq: {e}");
                broker.shutdown();
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    match broker.wait() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shardmq: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fail_config(e: ConfigError) -> ExitCode {
    eprintln!("shardmq: invalid configuration: {e}");
    ExitCode::from(2)
}

fn run_passwd(file: &Path, user: &str, cost: u32) -> ExitCode {
    if let Err(e) = passwd::valid_username(user) {
        eprintln!("shardmq passwd: {e}");
        return ExitCode::from(2);
    }
    let password = match read_password() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("shardmq passwd: {e}");
            return ExitCode::FAILURE;
        }
    };
    match passwd::set_user(file, user, &password, cost) {
        Ok(()) => {
            println!("user `{user}` saved in {}", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shardmq passwd: {}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}

/// From the terminal without echo (asked twice), or one line of standard input for scripts.
fn read_password() -> Result<String, String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Password again: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the passwords differ".into());
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    Ok(password)
}
