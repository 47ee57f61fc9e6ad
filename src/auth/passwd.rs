//! The password file: one `username:bcrypt-hash` per line, `#` comments, as mosquitto_passwd writes.
//! Shared by the broker (reading at start) and the `shardmq passwd` subcommand (adding or changing a user).
//!
//! A user name may be an e-mail address; it must not contain `:` or a line break, which the format reserves.

use std::io;
use std::path::Path;

/// bcrypt cost for new hashes: about 60 ms per verification on a current core, which is why verification
/// runs on the auth pool and never on a worker.
pub const DEFAULT_COST: u32 = 10;

pub fn looks_like_bcrypt(hash: &str) -> bool {
    hash.len() == 60 && (hash.starts_with("$2b$") || hash.starts_with("$2a$") || hash.starts_with("$2y$"))
}

pub fn valid_username(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a user name must not be empty".into());
    }
    if name.contains([':', '\n', '\r']) {
        return Err("a user name must not contain ':' or a line break".into());
    }
    Ok(())
}

/// Parses the file text; errors name the line.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut users = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, hash)) = line.rsplit_once(':') else {
            return Err(format!("line {}: expected `username:hash`", i + 1));
        };
        valid_username(name).map_err(|e| format!("line {}: {e}", i + 1))?;
        if !looks_like_bcrypt(hash) {
            return Err(format!("line {}: the hash of `{name}` is not a bcrypt hash", i + 1));
        }
        users.push((name.to_string(), hash.to_string()));
    }
    Ok(users)
}

pub fn read_file(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    parse(&text)
}

/// Adds `user` or replaces its hash, keeping the other lines (comments included) as they are.
/// Written to a temporary file and renamed, so a crash never leaves half a file.
pub fn set_user(path: &Path, user: &str, password: &str, cost: u32) -> io::Result<()> {
    valid_username(user).map_err(io::Error::other)?;
    let hash = bcrypt::hash(password, cost).map_err(io::Error::other)?;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    parse(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))?;
    let mut out = String::new();
    let mut replaced = false;
    for line in text.lines() {
        if line.trim().rsplit_once(':').is_some_and(|(n, _)| n == user) {
            out.push_str(&format!("{user}:{hash}\n"));
            replaced = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !replaced {
        out.push_str(&format!("{user}:{hash}\n"));
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, out)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_user_adds_then_replaces_and_keeps_comments() {
        let dir = std::env::temp_dir().join(format!("shardmq-passwd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("passwd");
        std::fs::write(&file, "# accounts\n").unwrap();
        set_user(&file, "ann@example.com", "one", 4).unwrap();
        set_user(&file, "bob", "two", 4).unwrap();
        set_user(&file, "ann@example.com", "three", 4).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("# accounts\n"));
        let users = parse(&text).unwrap();
        assert_eq!(users.len(), 2);
        let ann = &users.iter().find(|(n, _)| n == "ann@example.com").unwrap().1;
        assert!(bcrypt::verify("three", ann).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_lines_are_named() {
        assert_eq!(parse("a:b\n").unwrap_err(), "line 1: the hash of `a` is not a bcrypt hash");
        assert!(parse("\n\nnocolon").unwrap_err().starts_with("line 3"));
        assert!(set_user(Path::new("/nonexistent-dir/x"), "a:b", "p", 4).is_err());
    }
}
