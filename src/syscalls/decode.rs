//! Turning raw argument values into JSON-ready values, reading strings and buffers from
//! guest memory, and the `syscall` record.
//!
//! JSON shapes of a [`DecodedArg`]:
//!
//! | kind                | JSON                                                         |
//! |---------------------|--------------------------------------------------------------|
//! | `Int`               | `0`                                                          |
//! | `Signed`, `Fd`      | `-100`                                                       |
//! | `Pointer`, `StructPtr` | `"0x7ffd1000"`                                            |
//! | `CStr`              | `"/etc/passwd"`; cut at 4096 bytes: `{"str":"...","truncated":true}` |
//! | `CStrArray`         | `["ls","-l"]`; cut: `{"strs":[...],"truncated":true}`        |
//! | `Buffer`            | `{"ptr":"0x...","len":N,"data":"first 64 bytes, escaped"}`   |
//! | NULL string/buffer  | `null`                                                       |
//! | unreadable memory   | `{"ptr":"0x...","fault":true}`                               |
//!
//! Bytes are escaped as valid UTF-8 where they are, `\n`/`\t`/`\r`/`\\`, and `\xNN` for
//! control characters and invalid UTF-8, so that the original bytes can be recovered.

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};

use super::{ArgKind, ArgSpec, Completed, Outcome, Profile, RawCall, SyscallInfo};
use crate::mem::GuestMemory;
use crate::output::pack::{Packed, Put, Unpack};

/// Longest string read, in bytes.
pub const MAX_STR: usize = 4096;
/// Most buffer bytes shown.
pub const MAX_BUF: usize = 64;
/// Most entries of a string array (`argv`) read.
pub const MAX_STRS: usize = 64;

/// When arguments are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// At entry: output buffers (non-`const`, as `read`'s `buf`) are not read yet.
    Enter,
    /// At return with this result: output buffers are read, `min(result, length)` bytes.
    Return(i64),
}

/// One decoded argument. See the module documentation for its JSON form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodedArg {
    /// An unsigned integer.
    Unsigned(u64),
    /// A signed integer (also file descriptors).
    Signed(i64),
    /// A pointer not followed.
    Pointer(u64),
    /// A NULL pointer where a string, string array or buffer was expected.
    Null,
    /// A string.
    Str {
        /// Its bytes, escaped.
        text: String,
        /// Cut at [`MAX_STR`] bytes.
        truncated: bool,
    },
    /// A NULL-terminated array of strings.
    StrArray {
        /// The strings, escaped.
        items: Vec<String>,
        /// Cut at [`MAX_STRS`] entries.
        truncated: bool,
    },
    /// A buffer and its length argument.
    Buffer {
        /// Its address.
        ptr: u64,
        /// The length argument (or, at return of an output buffer, still the argument:
        /// the record's `ret` says how much was transferred).
        len: u64,
        /// The first bytes, escaped; `None` when not read (an output buffer at entry, or
        /// a failed call).
        data: Option<String>,
    },
    /// The memory at `ptr` could not be read.
    Fault {
        /// The pointer.
        ptr: u64,
    },
}

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

impl Serialize for DecodedArg {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            DecodedArg::Unsigned(v) => s.serialize_u64(*v),
            DecodedArg::Signed(v) => s.serialize_i64(*v),
            DecodedArg::Pointer(p) => s.serialize_str(&hex(*p)),
            DecodedArg::Null => s.serialize_none(),
            DecodedArg::Str {
                text,
                truncated: false,
            } => s.serialize_str(text),
            DecodedArg::Str { text, .. } => {
                let mut m = s.serialize_struct("Str", 2)?;
                m.serialize_field("str", text)?;
                m.serialize_field("truncated", &true)?;
                m.end()
            }
            DecodedArg::StrArray {
                items,
                truncated: false,
            } => items.serialize(s),
            DecodedArg::StrArray { items, .. } => {
                let mut m = s.serialize_struct("StrArray", 2)?;
                m.serialize_field("strs", items)?;
                m.serialize_field("truncated", &true)?;
                m.end()
            }
            DecodedArg::Buffer { ptr, len, data } => {
                let mut m = s.serialize_struct("Buffer", 3)?;
                m.serialize_field("ptr", &hex(*ptr))?;
                m.serialize_field("len", len)?;
                if let Some(d) = data {
                    m.serialize_field("data", d)?;
                }
                m.end()
            }
            DecodedArg::Fault { ptr } => {
                let mut m = s.serialize_struct("Fault", 2)?;
                m.serialize_field("ptr", &hex(*ptr))?;
                m.serialize_field("fault", &true)?;
                m.end()
            }
        }
    }
}

/// Escapes bytes for JSON text: UTF-8 kept, control bytes and invalid UTF-8 as `\xNN`.
pub fn escape(bytes: &[u8]) -> String {
    // Printable ASCII but the backslash (most paths, names and file contents) is kept as
    // it is, in one copy.
    if is_plain(bytes) {
        return String::from_utf8(bytes.to_vec()).unwrap_or_default();
    }
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if (c as u32) < 0x20 || c == '\x7f' => {
                    out.push_str(&format!("\\x{:02x}", c as u32))
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// `v` cut to its low `bits` bits.
pub fn mask(v: u64, bits: u8) -> u64 {
    if bits >= 64 {
        v
    } else {
        v & ((1u64 << bits) - 1)
    }
}

/// `v`'s low `bits` bits, sign-extended.
pub fn sext(v: u64, bits: u8) -> i64 {
    if bits >= 64 || bits == 0 {
        v as i64
    } else {
        let shift = 64 - u32::from(bits);
        ((v << shift) as i64) >> shift
    }
}

/// The integer value of argument `spec` from its raw register value.
pub fn int_value(spec: &ArgSpec, raw: u64) -> DecodedArg {
    if spec.kind.is_signed() {
        DecodedArg::Signed(sext(raw, spec.bits))
    } else {
        DecodedArg::Unsigned(mask(raw, spec.bits))
    }
}

/// Whether [`escape`] leaves `bytes` as they are: printable ASCII, no backslash.
fn is_plain(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'\\')
}

/// Decodes argument `i` of `info` from the raw values `args` of a call of `profile`;
/// `when` says whether output buffers can be read yet.
pub fn decode_arg(
    info: &'static SyscallInfo,
    i: usize,
    args: &[u64; 6],
    profile: Profile,
    mem: &dyn GuestMemory,
    when: When,
) -> DecodedArg {
    let mut one = Args::unread(Some(info), *args, profile);
    one.read_arg(i, mem, when);
    one.decoded(i).unwrap_or(DecodedArg::Null)
}

/// What guest memory gave for one argument: where in [`Args`]'s bytes it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Read {
    /// Nothing read: an integer or a pointer that is not followed, an output buffer
    /// before its return or of a failed call.
    #[default]
    Nothing,
    /// A NULL pointer.
    Null,
    /// The memory at the pointer could not be read.
    Fault,
    /// A string or a buffer's first bytes: `bytes[start..start + len]`.
    Bytes { start: u32, len: u32 },
    /// A string cut at [`MAX_STR`] bytes.
    Cut { start: u32, len: u32 },
    /// A string array: `count` strings from `start`, each its length (4 bytes) and bytes;
    /// `cut`: more entries than [`MAX_STRS`].
    Strs { start: u32, count: u16, cut: bool },
}

/// A call's arguments as read from the guest: the raw values and the bytes of the
/// strings and buffers they point to. Decoding into [`DecodedArg`]s (escaping, names,
/// JSON shapes) waits until the record is written, on the log's writer thread: the
/// vCPU only copies bytes, into one allocation per call at most. Serialises as a JSON object keyed by the
/// prototype's argument names, in prototype order (`arg0`..`arg5` for a number the
/// table does not know).
#[derive(Clone, PartialEq, Eq)]
pub struct Args {
    info: Option<&'static SyscallInfo>,
    raw: [u64; 6],
    profile: Profile,
    read: [Read; 6],
    /// On the heap: a record is packed for the writer and dropped on the vCPU that made
    /// it, so the allocation is freed where it was made (cheap), and a call without
    /// strings or buffers allocates nothing.
    bytes: Vec<u8>,
}

const UNKNOWN_NAMES: [&str; 6] = ["arg0", "arg1", "arg2", "arg3", "arg4", "arg5"];

impl Args {
    /// The arguments of a call `info` (`None`: unknown number) with raw values `raw`,
    /// nothing read from memory yet.
    fn unread(info: Option<&'static SyscallInfo>, raw: [u64; 6], profile: Profile) -> Args {
        Args {
            info,
            raw,
            profile,
            read: [Read::Nothing; 6],
            bytes: Vec::new(),
        }
    }

    fn word_bits(&self) -> u8 {
        self.profile.word_bits()
    }

    /// How many arguments there are.
    pub fn len(&self) -> usize {
        self.info.map_or(6, |i| i.args.len())
    }

    /// Whether the call takes no argument.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn name(&self, i: usize) -> &'static str {
        match self.info {
            Some(info) => info.args[i].name,
            None => UNKNOWN_NAMES[i],
        }
    }

    /// The argument called `name`, decoded.
    pub fn get(&self, name: &str) -> Option<DecodedArg> {
        (0..self.len())
            .find(|&i| self.name(i) == name)
            .and_then(|i| self.decoded(i))
    }

    /// Argument `i`, decoded.
    pub fn decoded(&self, i: usize) -> Option<DecodedArg> {
        let Some(info) = self.info else {
            let raw = *self.raw.get(i)?;
            return Some(DecodedArg::Unsigned(mask(raw, self.word_bits())));
        };
        let spec = info.args.get(i)?;
        let raw = self.raw[i];
        let ptr = mask(raw, self.word_bits());
        let text = |start: u32, len: u32| escape(self.slice(start, len));
        Some(match spec.kind {
            ArgKind::Int | ArgKind::Signed | ArgKind::Fd => int_value(spec, raw),
            ArgKind::Pointer | ArgKind::StructPtr => DecodedArg::Pointer(ptr),
            ArgKind::Buffer { .. } => match self.read[i] {
                Read::Null => DecodedArg::Null,
                Read::Fault => DecodedArg::Fault { ptr },
                read => DecodedArg::Buffer {
                    ptr,
                    len: self.buffer_len(info, i),
                    data: match read {
                        Read::Bytes { start, len } => Some(text(start, len)),
                        _ => None,
                    },
                },
            },
            ArgKind::CStr | ArgKind::CStrArray => match self.read[i] {
                Read::Nothing | Read::Null => DecodedArg::Null,
                Read::Fault => DecodedArg::Fault { ptr },
                Read::Bytes { start, len } => DecodedArg::Str {
                    text: text(start, len),
                    truncated: false,
                },
                Read::Cut { start, len } => DecodedArg::Str {
                    text: text(start, len),
                    truncated: true,
                },
                Read::Strs { start, count, cut } => DecodedArg::StrArray {
                    items: self.strs(start, count).map(escape).collect(),
                    truncated: cut,
                },
            },
        })
    }

    fn slice(&self, start: u32, len: u32) -> &[u8] {
        let start = start as usize;
        self.bytes
            .get(start..start + len as usize)
            .unwrap_or_default()
    }

    /// The strings of a [`Read::Strs`].
    fn strs(&self, start: u32, count: u16) -> impl Iterator<Item = &[u8]> + '_ {
        let mut at = start as usize;
        (0..count).map(move |_| {
            let len = self
                .bytes
                .get(at..at + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            let s = self.slice(at as u32 + 4, len);
            at += 4 + len as usize;
            s
        })
    }

    /// The value of buffer argument `i`'s length argument.
    fn buffer_len(&self, info: &SyscallInfo, i: usize) -> u64 {
        let ArgKind::Buffer { len_arg } = info.args[i].kind else {
            return 0;
        };
        let l = usize::from(len_arg).min(5);
        info.args
            .get(l)
            .map_or(self.raw[l], |s| mask(self.raw[l], s.bits))
    }

    /// The byte store, given one of this thread's spare buffers if it had none yet.
    fn store(&mut self) -> &mut Vec<u8> {
        if self.bytes.capacity() == 0 {
            self.bytes = spare::take();
        }
        &mut self.bytes
    }

    /// Keeps `bytes` and says where they are.
    fn keep(&mut self, bytes: &[u8]) -> (u32, u32) {
        let store = self.store();
        let start = store.len() as u32;
        store.extend_from_slice(bytes);
        (start, bytes.len() as u32)
    }

    /// Reads the string at `ptr` into the bytes; `Err`: unreadable. Returns where it is
    /// and whether it was cut.
    fn read_str(&mut self, mem: &dyn GuestMemory, ptr: u64) -> Result<(u32, u32, bool), ()> {
        let bytes = self.store();
        let start = bytes.len();
        match mem.read_cstr_with(ptr, MAX_STR, &mut |piece| bytes.extend_from_slice(piece)) {
            Ok(cut) => Ok((start as u32, (self.bytes.len() - start) as u32, cut)),
            Err(_) => {
                self.bytes.truncate(start);
                Err(())
            }
        }
    }

    /// Reads what argument `i` points to, if anything is to be read `when`.
    fn read_arg(&mut self, i: usize, mem: &dyn GuestMemory, when: When) {
        let Some(info) = self.info else { return };
        let Some(spec) = info.args.get(i) else { return };
        let ptr = mask(self.raw[i], self.word_bits());
        self.read[i] = match spec.kind {
            ArgKind::Int
            | ArgKind::Signed
            | ArgKind::Fd
            | ArgKind::Pointer
            | ArgKind::StructPtr => return,
            _ if ptr == 0 => Read::Null,
            ArgKind::CStr => match self.read_str(mem, ptr) {
                Ok((start, len, false)) => Read::Bytes { start, len },
                Ok((start, len, true)) => Read::Cut { start, len },
                Err(()) => Read::Fault,
            },
            ArgKind::CStrArray => self.read_strs(mem, ptr),
            ArgKind::Buffer { .. } => self.read_buffer(info, i, mem, ptr, when),
        };
    }

    fn read_strs(&mut self, mem: &dyn GuestMemory, ptr: u64) -> Read {
        let start = self.bytes.len() as u32;
        let step = u64::from(self.word_bits() / 8);
        let mut count = 0u16;
        for n in 0..=MAX_STRS as u64 {
            let at = ptr.wrapping_add(n * step);
            let p = if self.word_bits() == 64 {
                mem.read_u64(at)
            } else {
                mem.read_u32(at).map(u64::from)
            };
            let Ok(p) = p else {
                if n == 0 {
                    return Read::Fault;
                }
                break;
            };
            if p == 0 {
                return Read::Strs {
                    start,
                    count,
                    cut: false,
                };
            }
            if n as usize == MAX_STRS {
                break;
            }
            // Each string: its length, then its bytes (the length is patched in after).
            let len_at = self.bytes.len();
            self.store().extend_from_slice(&[0; 4]);
            let len = match self.read_str(mem, p) {
                Ok((_, len, _)) => len,
                Err(()) => self.keep(format!("<unreadable {p:#x}>").as_bytes()).1,
            };
            self.bytes[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            count += 1;
        }
        Read::Strs {
            start,
            count,
            cut: true,
        }
    }

    fn read_buffer(
        &mut self,
        info: &SyscallInfo,
        i: usize,
        mem: &dyn GuestMemory,
        ptr: u64,
        when: When,
    ) -> Read {
        let len = self.buffer_len(info, i);
        let avail = match (is_output(&info.args[i]), when) {
            (true, When::Enter) => return Read::Nothing,
            (true, When::Return(r)) if r < 0 => return Read::Nothing,
            (true, When::Return(r)) => len.min(r as u64),
            (false, _) => len,
        };
        let mut buf = [0u8; MAX_BUF];
        let buf = &mut buf[..(avail as usize).min(MAX_BUF)];
        if mem.read(ptr, buf).is_err() {
            return Read::Fault;
        }
        let (start, len) = self.keep(buf);
        Read::Bytes { start, len }
    }

    /// At return: reads the output buffers that could not be read at entry.
    pub fn finish(&mut self, mem: &dyn GuestMemory, ret: i64) {
        let Some(info) = self.info else { return };
        for (i, spec) in info.args.iter().enumerate() {
            if matches!(spec.kind, ArgKind::Buffer { .. }) && is_output(spec) {
                self.read_arg(i, mem, When::Return(ret));
            }
        }
    }
}

/// Whether the kernel fills the buffer `spec` (not `const`): it is read at return.
fn is_output(spec: &ArgSpec) -> bool {
    !spec.ctype.starts_with("const ")
}

impl Drop for Args {
    fn drop(&mut self) {
        spare::give(std::mem::take(&mut self.bytes));
    }
}

/// Byte buffers of dropped [`Args`], kept for the next calls made on the same thread: a
/// traced call with a string or a buffer would otherwise allocate and free once each
/// (about a twentieth of its cost). Records are dropped on the vCPU that made them once
/// packed, so the buffers come back where they are needed.
mod spare {
    use std::cell::RefCell;

    /// Buffers kept per thread at most.
    const KEPT: usize = 8;
    /// Larger buffers (a long argv) go back to the allocator.
    const LARGEST: usize = 8192;
    /// What a new buffer is made with: a path and a buffer's first bytes fit.
    const FIRST: usize = 256;

    thread_local! {
        static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    }

    /// An empty buffer.
    pub(super) fn take() -> Vec<u8> {
        SPARE
            .try_with(|s| s.borrow_mut().pop())
            .ok()
            .flatten()
            .unwrap_or_else(|| Vec::with_capacity(FIRST))
    }

    /// Keeps `buf` for [`take`], if it is worth keeping.
    pub(super) fn give(mut buf: Vec<u8>) {
        if buf.capacity() == 0 || buf.capacity() > LARGEST {
            return;
        }
        buf.clear();
        // During thread teardown the buffer is simply freed.
        let _ = SPARE.try_with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < KEPT {
                s.push(buf);
            }
        });
    }
    #[cfg(test)]
    mod tests {
        #[test]
        fn a_buffer_given_back_is_handed_out_again_empty() {
            let mut buf = super::take();
            buf.extend_from_slice(b"/etc/passwd");
            let at = buf.as_ptr();
            super::give(buf);
            let again = super::take();
            assert!(again.is_empty());
            assert_eq!(again.as_ptr(), at, "the same allocation");
            let fresh = super::take();
            assert_ne!(fresh.as_ptr(), at, "handed out once");
            let mut big = Vec::with_capacity(super::LARGEST + 1);
            big.push(0);
            super::give(big);
            assert!(
                super::take().capacity() <= super::LARGEST,
                "large ones are freed"
            );
        }
    }
}

impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries((0..self.len()).map(|i| (self.name(i), self.decoded(i))))
            .finish()
    }
}

impl Serialize for Args {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.len()))?;
        for i in 0..self.len() {
            m.serialize_entry(self.name(i), &self.decoded(i))?;
        }
        m.end()
    }
}

/// Reads every argument of `call` that points to something to read `when`. A number the
/// table does not know gives six raw unsigned values `arg0`..`arg5`.
pub fn decode_args(
    info: Option<&'static SyscallInfo>,
    call: &RawCall,
    mem: &dyn GuestMemory,
    when: When,
) -> Args {
    let mut args = Args::unread(info, call.args, call.profile());
    for i in 0..args.len() {
        args.read_arg(i, mem, when);
    }
    args
}

/// Who made a call, as the OS introspection layer reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ThreadInfo {
    /// Process id (the kernel's `tgid`).
    pub pid: u32,
    /// Thread id (the kernel's `pid`).
    pub tid: u32,
    /// `task->comm`.
    pub comm: Comm,
}

/// A task's name, held inline. `task->comm` has at most 15 bytes, so every record can
/// carry its own copy: nothing is allocated, and nothing is shared between the vCPU that
/// makes a record and the writer thread that drops it (a shared, reference-counted name
/// had its count bounce between the two CPUs' caches on every record).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Comm {
    len: u8,
    bytes: [u8; Comm::CAPACITY],
}

impl Comm {
    /// Longest name kept, in bytes: 15 bytes of `comm` even when invalid UTF-8 in them
    /// became replacement characters (three bytes each).
    pub const CAPACITY: usize = 47;

    /// The name `s`, cut at a character boundary if longer than [`Comm::CAPACITY`].
    pub fn new(s: &str) -> Comm {
        let mut end = s.len().min(Comm::CAPACITY);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let mut bytes = [0u8; Comm::CAPACITY];
        bytes[..end].copy_from_slice(&s.as_bytes()[..end]);
        Comm {
            len: end as u8,
            bytes,
        }
    }

    /// The name's bytes: valid UTF-8, made from a `&str`, so not checked again.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.bytes()).unwrap_or_default()
    }
}

impl Default for Comm {
    fn default() -> Comm {
        Comm::new("")
    }
}

impl std::ops::Deref for Comm {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl From<&str> for Comm {
    fn from(s: &str) -> Comm {
        Comm::new(s)
    }
}

impl From<String> for Comm {
    fn from(s: String) -> Comm {
        Comm::new(&s)
    }
}

impl Serialize for Comm {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The `{"type":"syscall",...}` record of one completed call.
///
/// `{"type":"syscall","pid":1,"tid":1,"comm":"cat","nr":257,"name":"openat",
///   "args":{"dfd":-100,"filename":"/etc/passwd","flags":0,"mode":0},"ret":3}`
///
/// `name` is `null` for a number the table does not know. `ret` is `null` when no return
/// was seen; `outcome` then says why (`no_return`, `exec`, `abandoned`, `unfinished`: the
/// run ended first) and is absent otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallRecord {
    /// Who.
    pub thread: ThreadInfo,
    /// The number.
    pub nr: u64,
    /// The name, if the table knows the number.
    pub name: Option<&'static str>,
    /// The decoded arguments.
    pub args: Args,
    /// The result, if a return was seen.
    pub ret: Option<i64>,
    /// Why there is no result.
    pub outcome: Option<&'static str>,
    /// Order of entry among all calls of the run (records are written at completion, so
    /// a call that blocked is logged after calls that entered later; sort by `seq` for
    /// entry order). `None` omits the field.
    pub seq: Option<u64>,
}

impl SyscallRecord {
    /// The record of a completed call whose arguments were decoded at entry (`args`);
    /// output buffers are read now if it returned.
    pub fn new<K, P>(
        thread: ThreadInfo,
        done: &Completed<K, P>,
        mut args: Args,
        mem: &dyn GuestMemory,
    ) -> SyscallRecord {
        let info = done.call.info();
        let (ret, outcome) = match done.outcome {
            Outcome::Returned(r) => {
                args.finish(mem, r);
                (Some(r), None)
            }
            Outcome::NoReturn => (None, Some("no_return")),
            Outcome::Exec => (None, Some("exec")),
            Outcome::Abandoned => (None, Some("abandoned")),
            Outcome::Unfinished => (None, Some("unfinished")),
        };
        SyscallRecord {
            thread,
            nr: done.call.nr,
            name: info.map(|i| i.name),
            args,
            ret,
            outcome,
            seq: None,
        }
    }
}

/// The fields a `syscall` record is written with, besides `type`: what `vmi report`
/// knows (a unit test holds the serializer below to it).
pub const SYSCALL_FIELDS: &[&str] = &[
    "pid", "tid", "comm", "nr", "name", "args", "ret", "outcome", "seq",
];

impl Serialize for SyscallRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = 9 + usize::from(self.outcome.is_some()) + usize::from(self.seq.is_some());
        let mut m = s.serialize_struct("SyscallRecord", n)?;
        m.serialize_field("type", "syscall")?;
        m.serialize_field("pid", &self.thread.pid)?;
        m.serialize_field("tid", &self.thread.tid)?;
        m.serialize_field("comm", &*self.thread.comm)?;
        m.serialize_field("nr", &self.nr)?;
        m.serialize_field("name", &self.name)?;
        m.serialize_field("args", &self.args)?;
        m.serialize_field("ret", &self.ret)?;
        if let Some(o) = self.outcome {
            m.serialize_field("outcome", o)?;
        }
        if let Some(seq) = self.seq {
            m.serialize_field("seq", &seq)?;
        }
        m.end()
    }
}

/// The values of [`SyscallRecord::outcome`], by their packed code (0: none).
const OUTCOMES: [&str; 4] = ["no_return", "exec", "abandoned", "unfinished"];

/// Bits of a packed record's first byte.
mod flag {
    pub const RET: u8 = 1;
    pub const SEQ: u8 = 2;
    pub const KNOWN: u8 = 4;
    /// The outcome's code sits above the flags.
    pub const OUTCOME_SHIFT: u32 = 4;
}

impl Read {
    fn pack(self, out: &mut Vec<u8>) {
        let (tag, a, b) = match self {
            Read::Nothing => (0, None, 0),
            Read::Null => (1, None, 0),
            Read::Fault => (2, None, 0),
            Read::Bytes { start, len } => (3, Some(start), len),
            Read::Cut { start, len } => (4, Some(start), len),
            Read::Strs { start, count, cut } => (5 + u8::from(cut), Some(start), count.into()),
        };
        out.put_u8(tag);
        if let Some(a) = a {
            out.put_u32(a);
            out.put_u32(b);
        }
    }

    fn unpack(input: &mut Unpack<'_>) -> Option<Read> {
        let tag = input.u8()?;
        Some(match tag {
            0 => Read::Nothing,
            1 => Read::Null,
            2 => Read::Fault,
            _ => {
                let (start, n) = (input.u32()?, input.u32()?);
                match tag {
                    3 => Read::Bytes { start, len: n },
                    4 => Read::Cut { start, len: n },
                    5 | 6 => Read::Strs {
                        start,
                        count: u16::try_from(n).ok()?,
                        cut: tag == 6,
                    },
                    _ => return None,
                }
            }
        })
    }
}

impl Packed for SyscallRecord {
    fn pack(&self, out: &mut Vec<u8>) {
        let args = &self.args;
        let outcome = self
            .outcome
            .and_then(|o| OUTCOMES.iter().position(|&known| known == o))
            .map_or(0, |i| i as u8 + 1);
        let set = |on: bool, bit: u8| if on { bit } else { 0 };
        let flags = set(self.ret.is_some(), flag::RET)
            | set(self.seq.is_some(), flag::SEQ)
            | set(args.info.is_some(), flag::KNOWN)
            | (outcome << flag::OUTCOME_SHIFT);
        out.put_u8(flags);
        out.put_u8(args.profile.index() as u8);
        out.put_u32(self.thread.pid);
        out.put_u32(self.thread.tid);
        out.put_bytes(self.thread.comm.bytes());
        out.put_u64(self.nr);
        if let Some(ret) = self.ret {
            out.put_u64(ret as u64);
        }
        if let Some(seq) = self.seq {
            out.put_u64(seq);
        }
        for i in 0..args.len() {
            out.put_u64(args.raw[i]);
            args.read[i].pack(out);
        }
        out.put_bytes(&args.bytes);
    }

    fn unpack(input: &mut Unpack<'_>) -> Option<SyscallRecord> {
        let flags = input.u8()?;
        let profile = *Profile::ALL.get(usize::from(input.u8()?))?;
        let pid = input.u32()?;
        let tid = input.u32()?;
        let comm = Comm::new(std::str::from_utf8(input.bytes()?).ok()?);
        let nr = input.u64()?;
        let ret = (flags & flag::RET != 0)
            .then(|| input.u64().map(|r| r as i64))
            .flatten();
        let seq = (flags & flag::SEQ != 0).then(|| input.u64()).flatten();
        let outcome = match flags >> flag::OUTCOME_SHIFT {
            0 => None,
            code => Some(*OUTCOMES.get(usize::from(code) - 1)?),
        };
        let info = if flags & flag::KNOWN != 0 {
            Some(profile.lookup(nr)?)
        } else {
            None
        };
        let mut args = Args::unread(info, [0; 6], profile);
        for i in 0..args.len() {
            args.raw[i] = input.u64()?;
            args.read[i] = Read::unpack(input)?;
        }
        let bytes = input.bytes()?;
        args.store().extend_from_slice(bytes);
        Some(SyscallRecord {
            thread: ThreadInfo { pid, tid, comm },
            nr,
            name: info.map(|i| i.name),
            args,
            ret,
            outcome,
            seq,
        })
    }
}
