//! The JSON Lines sink. vCPU threads hand over whole records; a writer thread encodes
//! them and moves them to the file, so a vCPU pays neither the JSON encoding nor a
//! `write(2)` per record. Every line reaches the file whole: a killed QEMU leaves complete
//! lines only, and loses at most the last [`FLUSH_EVERY`].
//!
//! The writer looks for records every [`BUSY_POLL`] while they come, backing off to
//! [`FLUSH_EVERY`] when none do. It is not woken per batch: a wake-up is a system call on
//! the vCPU, and waiting for a batch of thousands makes the batch outgrow the vCPU's
//! cache (each record is then written to memory another CPU holds).
//!
//! One record type, the sink's `F` (the system call record: nearly every line), waits
//! inline in the batch; any other is boxed. Batches go back and forth between the vCPUs
//! and the writer with their room kept, so the frequent record is not allocated itself: a
//! block allocated on a vCPU thread and freed on the writer's costs the vCPU a cache miss
//! when it is reused (with a box per record and its parts, allocation was the largest
//! single cost of a traced call).

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

/// How often the writer looks for records while they keep coming.
pub const BUSY_POLL: Duration = Duration::from_millis(1);

/// Room a batch starts with.
const BATCH_ROOM: usize = 1024;

/// Records waiting past which a vCPU waits for the writer: the guest slows down rather
/// than the log losing records or memory growing without bound.
const MAX_WAITING: usize = 1 << 18;

/// A record as it waits for the writer thread.
trait Encode: Send {
    fn encode(&self, out: &mut Vec<u8>) -> serde_json::Result<()>;
}

impl<T: Serialize + Send> Encode for T {
    fn encode(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, self)
    }
}

/// A record waiting in a batch.
enum Queued<F> {
    /// The frequent record, inline.
    Frequent(F),
    /// Any other.
    Boxed(Box<dyn Encode>),
}

impl<F: Serialize> Queued<F> {
    fn encode(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match self {
            Queued::Frequent(record) => serde_json::to_writer(out, record),
            Queued::Boxed(record) => record.encode(out),
        }
    }
}

type Batch<F> = Vec<Queued<F>>;

struct Shared<F> {
    path: PathBuf,
    waiting: Mutex<Batch<F>>,
    /// The batch the writer emptied last, with its room, for the vCPUs' next one.
    spare: Mutex<Batch<F>>,
    /// Wakes vCPUs held at [`MAX_WAITING`].
    room: Condvar,
    file: Mutex<File>,
    closed: AtomicBool,
    dropped: AtomicU64,
}

impl<F> std::fmt::Debug for Shared<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl<F: Serialize> Shared<F> {
    /// Encodes and writes whatever waits, in order; returns whether anything did. The
    /// file's lock is held throughout, so two flushes never interleave their records.
    fn flush(&self) -> bool {
        let mut file = self.file.lock();
        let mut records = std::mem::take(&mut *self.spare.lock());
        records.reserve(BATCH_ROOM);
        std::mem::swap(&mut records, &mut *self.waiting.lock());
        self.room.notify_all();
        if records.is_empty() {
            *self.spare.lock() = records;
            return false;
        }
        let mut lines = Vec::with_capacity(records.len() * 160);
        let mut failed = 0u64;
        for record in &records {
            let start = lines.len();
            match record.encode(&mut lines) {
                Ok(()) => lines.push(b'\n'),
                Err(err) => {
                    lines.truncate(start);
                    if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                        log::error!("cannot encode a record: {err}");
                    }
                    failed += 1;
                }
            }
        }
        if let Err(err) = file.write_all(&lines) {
            let n = records.len() as u64 - failed;
            if self.dropped.fetch_add(n, Ordering::Relaxed) == 0 {
                log::error!("cannot write to {}: {err}", self.path.display());
            }
        }
        records.clear();
        *self.spare.lock() = records;
        true
    }
}

/// A JSON Lines file shared by all vCPU threads; `F` is the record type written most.
#[derive(Debug)]
pub struct JsonlSink<F> {
    shared: Arc<Shared<F>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl<F: Serialize + Send + 'static> JsonlSink<F> {
    /// Creates (truncates) the log at `path` and starts its writer thread.
    pub fn create(path: &Path) -> Result<JsonlSink<F>, Error> {
        let file = File::create(path).map_err(|source| Error::Output {
            path: path.to_path_buf(),
            source,
        })?;
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            waiting: Mutex::new(Vec::with_capacity(BATCH_ROOM)),
            spare: Mutex::new(Vec::new()),
            room: Condvar::new(),
            file: Mutex::new(file),
            closed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        });
        let s = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("vmi-log".into())
            .spawn(move || {
                let mut pause = BUSY_POLL;
                while !s.closed.load(Ordering::Acquire) {
                    std::thread::park_timeout(pause);
                    pause = if s.flush() {
                        BUSY_POLL
                    } else {
                        (pause * 2).min(FLUSH_EVERY)
                    };
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

    /// Appends one record as one line; the writer thread encodes it. A record that cannot
    /// be encoded or written is counted and logged once, never propagated: losing a log
    /// line must not stop the guest.
    pub fn write<T: Serialize + Send + 'static>(&self, record: T) {
        self.push(Queued::Boxed(Box::new(record)));
    }

    /// [`JsonlSink::write`] for the frequent record: it waits inline, unboxed.
    pub fn write_frequent(&self, record: F) {
        self.push(Queued::Frequent(record));
    }

    fn push(&self, record: Queued<F>) {
        let mut waiting = self.shared.waiting.lock();
        while waiting.len() >= MAX_WAITING && !self.shared.closed.load(Ordering::Acquire) {
            self.wake_writer();
            self.shared.room.wait_for(&mut waiting, FLUSH_EVERY);
        }
        waiting.push(record);
    }

    fn wake_writer(&self) {
        if let Some(writer) = &*self.writer.lock() {
            writer.thread().unpark();
        }
    }

    /// Writes everything waiting now.
    pub fn flush(&self) {
        self.shared.flush();
    }

    /// Stops the writer thread and writes what is left (QEMU is exiting).
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.wake_writer();
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
        let sink = JsonlSink::<serde_json::Value>::create(&path).unwrap();
        sink.write(serde_json::json!({"type": "a", "n": 1}));
        sink.write(serde_json::json!({"type": "b", "s": "x\ny"}));
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
        let sink = JsonlSink::<serde_json::Value>::create(&path).unwrap();
        for n in 0..1000 {
            sink.write(serde_json::json!({"type": "n", "n": n}));
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
        let err = JsonlSink::<()>::create(Path::new("/nonexistent-dir/x.jsonl")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent-dir/x.jsonl"),
            "{err}"
        );
    }
}
