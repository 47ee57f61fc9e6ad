//! The persist thread: owns the files the broker writes while it runs: the topic list's state file and
//! the password file. Workers and API callers never touch the disk; they send the new content here. Writes go to a
//! temporary file that is then renamed, so a crash leaves the old file or the new one, never half of one.

use std::io;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

pub enum PersistMsg {
    /// The whole topic list, to save.
    Topics(Vec<String>),
    /// Every account of the password file (name, bcrypt hash), to save.
    Users(Vec<(String, String)>),
    /// Write what is pending, then stop. Explicit, because API handles that outlive the broker hold
    /// senders too, so the channel may never disconnect.
    Stop,
}

pub struct Persist {
    tx: Sender<PersistMsg>,
    thread: JoinHandle<()>,
}

impl Persist {
    pub fn start(
        topics_file: Option<PathBuf>,
        password_file: Option<PathBuf>,
    ) -> io::Result<Persist> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("persist".into())
            .spawn(move || run(rx, topics_file.as_deref(), password_file.as_deref()))?;
        Ok(Persist { tx, thread })
    }

    pub fn sender(&self) -> Sender<PersistMsg> {
        self.tx.clone()
    }

    /// Writes whatever is still queued, then stops.
    pub fn stop(self) {
        let _ = self.tx.send(PersistMsg::Stop);
        let _ = self.thread.join();
    }
}

fn run(rx: Receiver<PersistMsg>, topics_file: Option<&Path>, password_file: Option<&Path>) {
    while let Ok(first) = rx.recv() {
        // Only the newest snapshot of each file matters: skip those a later one replaces.
        let (mut topics, mut users, mut stop) = (None, None, false);
        for msg in std::iter::once(first).chain(rx.try_iter()) {
            match msg {
                PersistMsg::Topics(t) => topics = Some(t),
                PersistMsg::Users(u) => users = Some(u),
                PersistMsg::Stop => {
                    stop = true;
                    break;
                }
            }
        }
        if let (Some(list), Some(path)) = (topics, topics_file) {
            match save_topics(path, &list) {
                Ok(()) => log::debug!("topic list saved to {}", path.display()),
                Err(e) => log::error!("cannot save the topic list to {}: {e}", path.display()),
            }
        }
        if let (Some(users), Some(path)) = (users, password_file) {
            match crate::auth::passwd::write_file(path, &users) {
                Ok(()) => log::debug!("accounts saved to {}", path.display()),
                Err(e) => log::error!("cannot save the accounts to {}: {e}", path.display()),
            }
        }
        if stop {
            return;
        }
    }
}

pub fn save_topics(path: &Path, list: &[String]) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let text = ron::ser::to_string_pretty(&list, ron::ser::PrettyConfig::default())
        .map_err(io::Error::other)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        format!(
            "// Topic list saved by shardmq; edits made while it runs are overwritten.\n{text}\n"
        ),
    )?;
    std::fs::rename(&tmp, path)
}

/// The saved list, `Ok(None)` if there is no file yet.
pub fn load_topics(path: &Path) -> Result<Option<Vec<String>>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    ron::from_str(&text)
        .map(Some)
        .map_err(|e| format!("{}:{}: {}", path.display(), e.span.start.line, e.code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_through_the_file() {
        let dir = std::env::temp_dir().join(format!("shardmq-persist-{}", std::process::id()));
        let file = dir.join("sub").join("topics.ron");
        assert_eq!(load_topics(&file), Ok(None));
        let list = vec!["a/b".to_string(), "sensors/+/temp".to_string()];
        save_topics(&file, &list).unwrap();
        assert_eq!(load_topics(&file), Ok(Some(list)));
        std::fs::write(&file, "[\"a\",").unwrap();
        assert!(load_topics(&file).unwrap_err().contains("topics.ron:1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
