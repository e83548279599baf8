//! The JSON Lines sink: every record is one complete line, written with a single
//! `write` to an unbuffered file, so a killed QEMU leaves every finished line readable.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::Serialize;

use crate::error::Error;

/// A JSON Lines file shared by all vCPU threads.
#[derive(Debug)]
pub struct JsonlSink {
    path: PathBuf,
    file: Mutex<File>,
    dropped: AtomicU64,
}

impl JsonlSink {
    /// Creates (truncates) the log at `path`.
    pub fn create(path: &Path) -> Result<JsonlSink, Error> {
        let file = File::create(path).map_err(|source| Error::Output {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(JsonlSink {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            dropped: AtomicU64::new(0),
        })
    }

    /// Appends one record as one line. A failed write is counted and logged once, never
    /// propagated: losing a log line must not stop the guest.
    pub fn write<T: Serialize>(&self, record: &T) {
        let mut line = match serde_json::to_vec(record) {
            Ok(line) => line,
            Err(err) => {
                self.drop_record(&err.to_string());
                return;
            }
        };
        line.push(b'\n');
        if let Err(err) = self.file.lock().write_all(&line) {
            self.drop_record(&err.to_string());
        }
    }

    /// Records that could not be written so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Where the log goes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn drop_record(&self, why: &str) {
        if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            log::error!("cannot write to {}: {why}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_record() {
        let dir = std::env::temp_dir().join(format!("vmi-jsonl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.jsonl");
        let sink = JsonlSink::create(&path).unwrap();
        sink.write(&serde_json::json!({"type": "a", "n": 1}));
        sink.write(&serde_json::json!({"type": "b", "s": "x\ny"}));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1], r#"{"type":"b","s":"x\ny"}"#);
        assert_eq!(sink.dropped(), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unwritable_path_is_an_error_naming_it() {
        let err = JsonlSink::create(Path::new("/nonexistent-dir/x.jsonl")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent-dir/x.jsonl"),
            "{err}"
        );
    }
}
