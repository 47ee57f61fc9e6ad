//! The persist thread: owns the files the broker writes while it runs (today: the topic list's state
//! file). Workers and API callers never touch the disk; they send the new content here. Writes go to a
//! temporary file that is then renamed, so a crash leaves the old file or the new one, never half of one.

use std::io;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

pub enum PersistMsg {
    /// The whole topic list, to save.
    Topics(Vec<String>),
}

pub struct Persist {
    tx: Sender<PersistMsg>,
    thread: JoinHandle<()>,
}

impl Persist {
    pub fn start(topics_file: PathBuf) -> io::Result<Persist> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new().name("persist".into()).spawn(move || run(rx, &topics_file))?;
        Ok(Persist { tx, thread })
    }

    pub fn sender(&self) -> Sender<PersistMsg> {
        self.tx.clone()
    }

    /// Writes whatever is still queued, then stops.
    pub fn stop(self) {
        drop(self.tx);
        let _ = self.thread.join();
    }
}

fn run(rx: Receiver<PersistMsg>, topics_file: &Path) {
    while let Ok(first) = rx.recv() {
        // Only the newest list matters: skip snapshots that a later one replaces.
        let mut latest = first;
        while let Ok(next) = rx.try_recv() {
            latest = next;
        }
        let PersistMsg::Topics(list) = latest;
        match save_topics(topics_file, &list) {
            Ok(()) => log::debug!("topic list saved to {}", topics_file.display()),
            Err(e) => log::error!("cannot save the topic list to {}: {e}", topics_file.display()),
        }
    }
}

pub fn save_topics(path: &Path, list: &[String]) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let text = ron::ser::to_string_pretty(&list, ron::ser::PrettyConfig::default()).map_err(io::Error::other)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("// Topic list saved by shardmq; edits made while it runs are overwritten.\n{text}\n"))?;
    std::fs::rename(&tmp, path)
}

/// The saved list, `Ok(None)` if there is no file yet.
pub fn load_topics(path: &Path) -> Result<Option<Vec<String>>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    ron::from_str(&text).map(Some).map_err(|e| format!("{}:{}: {}", path.display(), e.span.start.line, e.code))
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
