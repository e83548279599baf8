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
//! One record type, the sink's `F` (the system call record: nearly every line), travels
//! packed ([`Packed`]): a few dozen bytes in a byte batch instead of a struct of a few
//! hundred, since every byte handed over is a cache-line transfer between two CPUs. Any
//! other record is boxed. Batches go back and forth between the vCPUs and the writer with
//! their room kept, so nothing is allocated per frequent record: a block allocated on a
//! vCPU thread and freed on the writer's costs the vCPU a cache miss when it is reused.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use serde::Serialize;

use super::pack::{Packed, Unpack};
use crate::error::Error;

/// Longest a record waits in memory before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// How often the writer looks for records while they keep coming.
pub const BUSY_POLL: Duration = Duration::from_millis(1);

/// Room a batch's packed bytes start with.
const BATCH_ROOM: usize = 64 * 1024;

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

/// Tags in a batch's bytes: a packed record follows, or the next boxed one is due.
const PACKED: u8 = 0;
const BOXED: u8 = 1;

/// Records waiting for the writer, in order: packed ones in `bytes`, each after its tag,
/// and a tag for each boxed one where it came.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    boxed: Vec<Box<dyn Encode>>,
    records: usize,
}

impl Batch {
    fn clear(&mut self) {
        self.bytes.clear();
        self.boxed.clear();
        self.records = 0;
    }

    /// Encodes every record as one line each into `lines`; returns how many were, and
    /// the first error. A record that cannot be encoded is left out; bytes that do not
    /// unpack (a bug) end the batch, as the records after them cannot be found again.
    fn encode<F: Packed + Serialize>(&self, lines: &mut Vec<u8>) -> (usize, Option<String>) {
        let mut input = Unpack(&self.bytes);
        let mut boxed = self.boxed.iter();
        let (mut encoded, mut first_error) = (0, None);
        while let Some(tag) = input.u8() {
            let start = lines.len();
            let result = match tag {
                PACKED => match F::unpack(&mut input) {
                    Some(record) => serde_json::to_writer(&mut *lines, &record),
                    None => {
                        first_error.get_or_insert_with(|| "a packed record is malformed".into());
                        break;
                    }
                },
                _ => match boxed.next() {
                    Some(record) => record.encode(lines),
                    None => {
                        first_error.get_or_insert_with(|| "a boxed record is missing".into());
                        break;
                    }
                },
            };
            match result {
                Ok(()) => {
                    lines.push(b'\n');
                    encoded += 1;
                }
                Err(err) => {
                    lines.truncate(start);
                    first_error.get_or_insert_with(|| err.to_string());
                }
            }
        }
        (encoded, first_error)
    }
}

struct Shared<F> {
    path: PathBuf,
    waiting: Mutex<Batch>,
    /// The batch the writer emptied last, with its room, for the vCPUs' next one.
    spare: Mutex<Batch>,
    /// Wakes vCPUs held at [`MAX_WAITING`].
    room: Condvar,
    file: Mutex<LogFile<File>>,
    closed: AtomicBool,
    dropped: AtomicU64,
    frequent: PhantomData<fn() -> F>,
}

impl<F> std::fmt::Debug for Shared<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl<F: Packed + Serialize> Shared<F> {
    /// Encodes and writes whatever waits, in order; returns whether anything did. The
    /// file's lock is held throughout, so two flushes never interleave their records.
    fn flush(&self) -> bool {
        let mut file = self.file.lock();
        let mut batch = std::mem::take(&mut *self.spare.lock());
        batch.bytes.reserve(BATCH_ROOM);
        std::mem::swap(&mut batch, &mut *self.waiting.lock());
        self.room.notify_all();
        if batch.records == 0 {
            *self.spare.lock() = batch;
            return false;
        }
        let mut lines = Vec::with_capacity(batch.bytes.len() * 4);
        // Losing a line must not stop the guest: counted, and said once.
        let (encoded, error) = batch.encode::<F>(&mut lines);
        if let Some(err) = error
            && self
                .dropped
                .fetch_add((batch.records - encoded) as u64, Ordering::Relaxed)
                == 0
        {
            log::error!("cannot encode a record: {err}");
        }
        let lost = file.append(&lines, &self.path);
        self.dropped.fetch_add(lost, Ordering::Relaxed);
        batch.clear();
        *self.spare.lock() = batch;
        true
    }
}

/// Where the log's bytes go: a file, or a stand-in in tests.
pub(crate) trait Store {
    /// Writes some of `buf` at the end, as `write(2)` does.
    fn write_some(&mut self, buf: &[u8]) -> std::io::Result<usize>;
    /// Cuts the store to `len` bytes, writing on from there.
    fn cut(&mut self, len: u64) -> std::io::Result<()>;
}

impl Store for File {
    fn write_some(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write(buf)
    }

    fn cut(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)?;
        self.seek(SeekFrom::Start(len)).map(|_| ())
    }
}

/// The log file, kept to whole records: a write that fails part-way (a full disk) is cut
/// back to its last whole line, so the file never holds half a record and the next
/// records, once there is room again, start on a line of their own. Each distinct failure
/// is said once; writing again after a failure is said too.
pub(crate) struct LogFile<S> {
    store: S,
    /// Bytes of whole records in the store.
    len: u64,
    /// The store could not be cut back: nothing more is appended after the partial line.
    broken: bool,
    /// Records lost since the last successful write, while writes fail.
    failing: Option<u64>,
    /// Failures already said.
    said: Vec<String>,
}

impl<S: Store> LogFile<S> {
    pub(crate) fn new(store: S) -> LogFile<S> {
        LogFile {
            store,
            len: 0,
            broken: false,
            failing: None,
            said: Vec::new(),
        }
    }

    /// Appends `lines` (whole records, each ending in a newline); returns how many records
    /// did not reach the store.
    pub(crate) fn append(&mut self, lines: &[u8], path: &Path) -> u64 {
        let records = |b: &[u8]| b.iter().filter(|&&c| c == b'\n').count() as u64;
        if self.broken {
            return records(lines);
        }
        let mut done = 0;
        let failure = loop {
            if done == lines.len() {
                break None;
            }
            match self.store.write_some(&lines[done..]) {
                Ok(0) => break Some("the file takes no more bytes".to_string()),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Some(e.to_string()),
            }
        };
        let Some(why) = failure else {
            self.len += lines.len() as u64;
            if let Some(lost) = self.failing.take() {
                log::warn!(
                    "writing {} again: {lost} records were lost while it could not be written",
                    path.display()
                );
            }
            return 0;
        };
        // Keep the whole lines that got there; cut the rest.
        let kept = lines[..done]
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(0, |i| i + 1);
        let lost = records(&lines[kept..]);
        if !self.said.contains(&why) {
            log::error!(
                "cannot write to {}: {why}; records are counted as dropped (run_end.dropped_records) until it can",
                path.display()
            );
            self.said.push(why);
        }
        match self.store.cut(self.len + kept as u64) {
            Ok(()) => self.len += kept as u64,
            Err(e) => {
                log::error!(
                    "cannot cut {} back to its last whole record ({e}): nothing more is written to it",
                    path.display()
                );
                self.broken = true;
            }
        }
        *self.failing.get_or_insert(0) += lost;
        lost
    }
}

/// A JSON Lines file shared by all vCPU threads; `F` is the record type written most.
#[derive(Debug)]
pub struct JsonlSink<F> {
    shared: Arc<Shared<F>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl<F: Packed + Serialize + 'static> JsonlSink<F> {
    /// Creates (truncates) the log at `path` and starts its writer thread.
    pub fn create(path: &Path) -> Result<JsonlSink<F>, Error> {
        let file = File::create(path).map_err(|source| Error::Output {
            path: path.to_path_buf(),
            source,
        })?;
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            waiting: Mutex::new(Batch {
                bytes: Vec::with_capacity(BATCH_ROOM),
                ..Batch::default()
            }),
            spare: Mutex::new(Batch::default()),
            room: Condvar::new(),
            file: Mutex::new(LogFile::new(file)),
            closed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            frequent: PhantomData,
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
        let mut waiting = self.room_to_wait();
        waiting.bytes.push(BOXED);
        waiting.boxed.push(Box::new(record));
        waiting.records += 1;
    }

    /// [`JsonlSink::write`] for the frequent record: it waits packed.
    pub fn write_frequent(&self, record: &F) {
        let mut waiting = self.room_to_wait();
        waiting.bytes.push(PACKED);
        record.pack(&mut waiting.bytes);
        waiting.records += 1;
    }

    /// The batch to add a record to, once it has room.
    fn room_to_wait(&self) -> parking_lot::MutexGuard<'_, Batch> {
        let mut waiting = self.shared.waiting.lock();
        while waiting.records >= MAX_WAITING && !self.shared.closed.load(Ordering::Acquire) {
            self.wake_writer();
            self.shared.room.wait_for(&mut waiting, FLUSH_EVERY);
        }
        waiting
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
        let file = self.shared.file.lock();
        if file.broken || file.failing.is_some() {
            log::error!(
                "{} ends without the run's last records (run_end among them): {} records could not be written",
                self.shared.path.display(),
                self.dropped()
            );
        }
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
    use crate::output::pack::Put;

    /// A frequent record for the tests: `{"n":N}`.
    #[derive(Debug, Serialize)]
    struct Line {
        n: u32,
    }

    impl Packed for Line {
        fn pack(&self, out: &mut Vec<u8>) {
            out.put_u32(self.n);
        }
        fn unpack(input: &mut Unpack<'_>) -> Option<Line> {
            Some(Line { n: input.u32()? })
        }
    }

    fn temp_log(name: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("vmi-jsonl-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.jsonl");
        (dir, path)
    }

    #[test]
    fn one_line_per_record_in_the_order_written() {
        let (dir, path) = temp_log("order");
        let sink = JsonlSink::<Line>::create(&path).unwrap();
        sink.write(serde_json::json!({"type": "a", "n": 1}));
        sink.write_frequent(&Line { n: 2 });
        sink.write(serde_json::json!({"type": "b", "s": "x\ny"}));
        sink.write_frequent(&Line { n: 4 });
        sink.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                r#"{"type":"a","n":1}"#,
                r#"{"n":2}"#,
                r#"{"type":"b","s":"x\ny"}"#,
                r#"{"n":4}"#
            ]
        );
        assert_eq!(sink.dropped(), 0);
        sink.close();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_record_that_cannot_be_encoded_is_counted_and_the_others_written() {
        let (dir, path) = temp_log("bad");
        let sink = JsonlSink::<Line>::create(&path).unwrap();
        sink.write_frequent(&Line { n: 1 });
        // JSON object keys must be strings.
        sink.write(std::collections::BTreeMap::from([((1, 2), 3)]));
        sink.write_frequent(&Line { n: 3 });
        sink.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"n\":1}\n{\"n\":3}\n");
        assert_eq!(sink.dropped(), 1);
        sink.close();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_writer_thread_flushes_by_itself() {
        let (dir, path) = temp_log("t");
        let sink = JsonlSink::<Line>::create(&path).unwrap();
        for n in 0..1000 {
            if n % 2 == 0 {
                sink.write_frequent(&Line { n });
            } else {
                sink.write(serde_json::json!({"type": "n", "n": n}));
            }
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

    /// A disk that holds `room` bytes, and whose writes stop where it is full.
    struct SmallDisk {
        bytes: Vec<u8>,
        room: usize,
    }

    impl Store for SmallDisk {
        fn write_some(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.room.saturating_sub(self.bytes.len()));
            if n == 0 {
                return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
            }
            self.bytes.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn cut(&mut self, len: u64) -> std::io::Result<()> {
            self.bytes.truncate(len as usize);
            Ok(())
        }
    }

    #[test]
    fn a_full_disk_leaves_whole_lines_and_counts_what_it_lost() {
        let mut log = LogFile::new(SmallDisk {
            bytes: Vec::new(),
            room: 25,
        });
        let path = Path::new("test.jsonl");
        assert_eq!(log.append(b"{\"n\":1}\n{\"n\":2}\n", path), 0);
        // 16 bytes in; room for 9 more: one record fits whole, the next is cut off.
        assert_eq!(log.append(b"{\"n\":3}\n{\"n\":4}\n{\"n\":5}\n", path), 2);
        assert_eq!(log.store.bytes, b"{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
        assert_eq!(log.append(b"{\"n\":6}\n", path), 1);
        // Space comes back: the next records start on a line of their own.
        log.store.room = 1000;
        assert_eq!(log.append(b"{\"n\":7}\n", path), 0);
        let text = String::from_utf8(log.store.bytes.clone()).unwrap();
        assert_eq!(text, "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":7}\n");
        assert!(log.failing.is_none());
        assert_eq!(log.said.len(), 1, "one distinct failure, said once");
    }

    #[test]
    fn unwritable_path_is_an_error_naming_it() {
        let err = JsonlSink::<Line>::create(Path::new("/nonexistent-dir/x.jsonl")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent-dir/x.jsonl"),
            "{err}"
        );
    }
}
