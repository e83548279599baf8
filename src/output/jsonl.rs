//! The JSON Lines sink. vCPU threads append whole lines to a shared buffer; a writer
//! thread moves the buffer to the file every [`FLUSH_EVERY`] (sooner when it fills), so
//! a vCPU never waits for a `write(2)` per record. Every line reaches the file whole: a
//! killed QEMU leaves complete lines only, and loses at most the last interval.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use serde::Serialize;

use crate::error::Error;

/// Longest a record waits in memory before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Buffered bytes past which the writer is woken at once.
const WAKE_AT: usize = 256 * 1024;

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    buffer: Mutex<Vec<u8>>,
    wake: Condvar,
    file: Mutex<File>,
    closed: AtomicBool,
    dropped: AtomicU64,
}

impl Shared {
    /// Writes whatever is buffered; returns whether anything was.
    fn flush(&self) -> bool {
        let mut file = self.file.lock();
        let lines = std::mem::take(&mut *self.buffer.lock());
        if lines.is_empty() {
            return false;
        }
        if let Err(err) = file.write_all(&lines) {
            let n = lines.iter().filter(|&&b| b == b'\n').count() as u64;
            if self.dropped.fetch_add(n, Ordering::Relaxed) == 0 {
                log::error!("cannot write to {}: {err}", self.path.display());
            }
        }
        true
    }
}

/// A JSON Lines file shared by all vCPU threads.
#[derive(Debug)]
pub struct JsonlSink {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl JsonlSink {
    /// Creates (truncates) the log at `path` and starts its writer thread.
    pub fn create(path: &Path) -> Result<JsonlSink, Error> {
        let file = File::create(path).map_err(|source| Error::Output {
            path: path.to_path_buf(),
            source,
        })?;
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            buffer: Mutex::new(Vec::with_capacity(WAKE_AT)),
            wake: Condvar::new(),
            file: Mutex::new(file),
            closed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        });
        let s = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("vmi-log".into())
            .spawn(move || {
                while !s.closed.load(Ordering::Acquire) {
                    {
                        let mut buffer = s.buffer.lock();
                        if buffer.len() < WAKE_AT {
                            s.wake.wait_for(&mut buffer, FLUSH_EVERY);
                        }
                    }
                    s.flush();
                }
            })
            .map_err(|source| Error::Output {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(JsonlSink {
            shared,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Appends one record as one line. A record that cannot be serialised or written is
    /// counted and logged once, never propagated: losing a log line must not stop the
    /// guest.
    pub fn write<T: Serialize>(&self, record: &T) {
        let mut buffer = self.shared.buffer.lock();
        let start = buffer.len();
        match serde_json::to_writer(&mut *buffer, record) {
            Ok(()) => {
                buffer.push(b'\n');
                if buffer.len() >= WAKE_AT {
                    self.shared.wake.notify_one();
                }
            }
            Err(err) => {
                buffer.truncate(start);
                if self.shared.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    log::error!("cannot encode a record: {err}");
                }
            }
        }
    }

    /// Writes everything buffered now.
    pub fn flush(&self) {
        self.shared.flush();
    }

    /// Stops the writer thread and writes what is left (QEMU is exiting).
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        if let Some(writer) = self.writer.lock().take() {
            let _ = writer.join();
        }
        self.shared.flush();
    }

    /// Records that could not be written so far.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Where the log goes.
    pub fn path(&self) -> &Path {
        &self.shared.path
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
        sink.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1], r#"{"type":"b","s":"x\ny"}"#);
        assert_eq!(sink.dropped(), 0);
        sink.close();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_writer_thread_flushes_by_itself() {
        let dir = std::env::temp_dir().join(format!("vmi-jsonl-t-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.jsonl");
        let sink = JsonlSink::create(&path).unwrap();
        for n in 0..1000 {
            sink.write(&serde_json::json!({"type": "n", "n": n}));
        }
        std::thread::sleep(FLUSH_EVERY * 4);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().count(),
            1000,
            "written without an explicit flush"
        );
        sink.close();
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
