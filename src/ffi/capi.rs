//! The C API (`include/vmi.h`): a plugin loaded next to vmi in the same stock QEMU asks
//! [`vmi_get_api`] for a table of functions, registers callbacks with it during its own
//! install, and asks questions inside them. Each registration becomes one
//! [`Analysis`](crate::api::Analysis) with its own interest, so the engine follows what
//! C plugins want as it follows what the event log wants.
//!
//! The types here mirror the header's field by field (`repr(C)`); the header is the
//! contract, and a test in `tests/api.rs` compiles a C plugin against it.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::OnceLock;

use super::{PLUGIN, guarded};
use crate::api::{API_VERSION, Analysis, Ctx, Interest, QueryError};
use crate::args::SyscallFilter;
use crate::events::Event;
use crate::osi::{OsiError, Process, ProcessHandle};
use crate::syscalls::{Profile, RawCall, SyscallRecord, ThreadInfo};

/// `VMI_E*` of the header.
const ENOVCPU: c_int = -1;
const EKERNEL: c_int = -2;
const EUNMAPPED: c_int = -3;
const EFAULT: c_int = -4;
const EOSI: c_int = -5;
const ELATE: c_int = -6;
const EINVAL: c_int = -7;
const ERANGE: c_int = -8;

/// The opaque `vmi_ctx`: a [`Ctx`] behind a pointer.
#[repr(C)]
pub struct VmiCtx {
    _opaque: [u8; 0],
}

/// `vmi_thread`.
#[repr(C)]
pub struct VmiThread {
    pid: u32,
    tid: u32,
    comm: [c_char; 16],
}

/// `vmi_syscall`.
#[repr(C)]
pub struct VmiSyscall {
    nr: u64,
    name: *const c_char,
    args: [u64; 6],
    pc: u64,
    returned: i32,
    vcpu: i32,
    ret: i64,
    thread: VmiThread,
}

/// `vmi_event`.
#[repr(C)]
pub struct VmiEvent {
    kind: c_int,
    pid: u32,
    tid: u32,
    ppid: u32,
    comm: [c_char; 16],
    path: *const c_char,
    has_exit_code: i32,
    exit_code: i32,
}

/// `vmi_process`.
#[repr(C)]
pub struct VmiProcess {
    pid: u32,
    ppid: u32,
    task: u64,
    asid: u64,
    kernel_thread: i32,
    comm: [c_char; 16],
}

/// `vmi_mapping`.
#[repr(C)]
pub struct VmiMapping {
    start: u64,
    end: u64,
    flags: u64,
    offset: u64,
    path: [c_char; 256],
}

type SyscallCb = unsafe extern "C" fn(*const VmiCtx, *const VmiSyscall, *mut c_void);
type EventCb = unsafe extern "C" fn(*const VmiCtx, *const VmiEvent, *mut c_void);

/// `vmi_api`: the table [`vmi_get_api`] hands out.
#[repr(C)]
pub struct VmiApi {
    version: u32,
    size: u32,
    on_syscall_enter: unsafe extern "C" fn(*const c_char, Option<SyscallCb>, *mut c_void) -> c_int,
    on_syscall_return: unsafe extern "C" fn(*const c_char, Option<SyscallCb>, *mut c_void) -> c_int,
    on_process_event: unsafe extern "C" fn(Option<EventCb>, *mut c_void) -> c_int,
    current_process: unsafe extern "C" fn(*const VmiCtx, *mut VmiProcess) -> c_int,
    processes: unsafe extern "C" fn(*const VmiCtx, *mut VmiProcess, usize) -> c_int,
    mapping_at: unsafe extern "C" fn(*const VmiCtx, u64, u64, *mut VmiMapping) -> c_int,
    read_memory: unsafe extern "C" fn(*const VmiCtx, u64, *mut c_void, usize) -> c_int,
    read_string: unsafe extern "C" fn(*const VmiCtx, u64, *mut c_char, usize) -> c_int,
    strerror: unsafe extern "C" fn(c_int) -> *const c_char,
}

static API: VmiApi = VmiApi {
    version: API_VERSION,
    size: std::mem::size_of::<VmiApi>() as u32,
    on_syscall_enter,
    on_syscall_return,
    on_process_event,
    current_process,
    processes,
    mapping_at,
    read_memory,
    read_string,
    strerror,
};

/// The table for `version`, or NULL (and one line) when this vmi does not offer it.
#[unsafe(no_mangle)]
pub extern "C" fn vmi_get_api(version: u32) -> *const VmiApi {
    if version == API_VERSION {
        &API
    } else {
        eprintln!(
            "vmi: a plugin asked for vmi API version {version}, this vmi offers version {API_VERSION}: rebuild it against this vmi's include/vmi.h"
        );
        std::ptr::null()
    }
}

/// What C passed as `udata`: handed back unchanged, from any vCPU thread (the C plugin
/// synchronises what it points at, as the header says).
#[derive(Clone, Copy)]
struct Udata(*mut c_void);
// SAFETY: vmi never dereferences it; the header makes thread safety the plugin's.
unsafe impl Send for Udata {}
// SAFETY: as above.
unsafe impl Sync for Udata {}

/// One registration of a C plugin.
enum Hook {
    Enter(SyscallCb),
    Return(SyscallCb),
    Event(EventCb),
}

/// A C plugin's registration as an analysis.
struct CHook {
    hook: Hook,
    calls: SyscallFilter,
    udata: Udata,
}

/// Call names as C strings, by table and number, made once.
fn c_name(call: &RawCall) -> *const c_char {
    static NAMES: OnceLock<[Vec<Option<CString>>; Profile::ALL.len()]> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        Profile::ALL.map(|p| {
            p.table()
                .iter()
                .map(|s| s.as_ref().and_then(|s| CString::new(s.name).ok()))
                .collect()
        })
    });
    call.profile()
        .slot(call.nr)
        .and_then(|slot| names[call.profile().index()].get(slot)?.as_ref())
        .map_or(std::ptr::null(), |s| s.as_ptr())
}

/// `text` into a fixed, NUL-terminated C array (cut to fit).
fn fixed<const N: usize>(text: &str) -> [c_char; N] {
    let mut out = [0 as c_char; N];
    for (o, b) in out.iter_mut().zip(text.bytes().take(N - 1)) {
        *o = b as c_char;
    }
    out
}

fn c_thread(t: &ThreadInfo) -> VmiThread {
    VmiThread {
        pid: t.pid,
        tid: t.tid,
        comm: fixed(&t.comm),
    }
}

fn c_syscall(ctx: &Ctx<'_>, call: &RawCall, thread: &ThreadInfo, ret: Option<i64>) -> VmiSyscall {
    VmiSyscall {
        nr: call.nr,
        name: c_name(call),
        args: call.args,
        pc: call.pc,
        returned: i32::from(ret.is_some()),
        vcpu: ctx.vcpu().map_or(-1, |v| v as i32),
        ret: ret.unwrap_or(0),
        thread: c_thread(thread),
    }
}

fn as_c(ctx: &Ctx<'_>) -> *const VmiCtx {
    (ctx as *const Ctx<'_>).cast()
}

impl Analysis for CHook {
    fn name(&self) -> &str {
        "C plugin"
    }

    fn interest(&self) -> Interest {
        match self.hook {
            Hook::Enter(_) => Interest {
                entries: self.calls.clone(),
                ..Interest::default()
            },
            Hook::Return(_) => Interest {
                returns: self.calls.clone(),
                ..Interest::default()
            },
            Hook::Event(_) => Interest {
                process_events: true,
                ..Interest::default()
            },
        }
    }

    fn syscall_enter(&self, ctx: &Ctx<'_>, call: &RawCall, thread: &ThreadInfo) {
        if let Hook::Enter(cb) = self.hook {
            let c = c_syscall(ctx, call, thread, None);
            // SAFETY: the callback the C plugin registered, with pointers valid for the call.
            unsafe { cb(as_c(ctx), &c, self.udata.0) };
        }
    }

    fn syscall_return(&self, ctx: &Ctx<'_>, call: &RawCall, record: &SyscallRecord) {
        if let Hook::Return(cb) = self.hook {
            let c = c_syscall(ctx, call, &record.thread, record.ret);
            // SAFETY: as in syscall_enter.
            unsafe { cb(as_c(ctx), &c, self.udata.0) };
        }
    }

    fn process_event(&self, ctx: &Ctx<'_>, event: &Event) {
        let Hook::Event(cb) = self.hook else { return };
        let (kind, pid, tid, ppid, comm, path, exit) = match event {
            Event::ProcessStart {
                pid,
                tid,
                ppid,
                comm,
                ..
            } => (1, *pid, *tid, *ppid, comm.as_str(), None, None),
            Event::ProcessExec {
                pid,
                tid,
                ppid,
                comm,
                path,
                ..
            } => (2, *pid, *tid, *ppid, comm.as_str(), path.as_deref(), None),
            Event::ProcessEnd {
                pid,
                tid,
                ppid,
                comm,
                exit_code,
                ..
            } => (3, *pid, *tid, *ppid, comm.as_str(), None, *exit_code),
            Event::ThreadStart { pid, tid, comm, .. } => {
                (4, *pid, *tid, 0, comm.as_str(), None, None)
            }
            Event::ThreadEnd { pid, tid, comm, .. } => {
                (5, *pid, *tid, 0, comm.as_str(), None, None)
            }
        };
        let path = path.and_then(|p| CString::new(p).ok());
        let c = VmiEvent {
            kind,
            pid,
            tid,
            ppid,
            comm: fixed(comm),
            path: path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
            has_exit_code: i32::from(exit.is_some()),
            exit_code: exit.unwrap_or(0),
        };
        // SAFETY: as in syscall_enter; `path` outlives the call.
        unsafe { cb(as_c(ctx), &c, self.udata.0) };
    }
}

/// Adds a C registration to the plugin; 0 or a `VMI_E*`.
fn register(hook: Hook, calls: SyscallFilter, udata: *mut c_void) -> c_int {
    let Some(plugin) = PLUGIN.get() else {
        return EINVAL;
    };
    let analysis = CHook {
        hook,
        calls,
        udata: Udata(udata),
    };
    match plugin.add(vec![Box::new(analysis)]) {
        Ok(()) => 0,
        Err(e) => {
            log::warn!("{e}");
            ELATE
        }
    }
}

/// The calls `name` selects: NULL for all, else a name the tables know.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
unsafe fn calls_named(name: *const c_char) -> Option<SyscallFilter> {
    if name.is_null() {
        return Some(SyscallFilter::All);
    }
    // SAFETY: the caller's contract.
    let name = unsafe { CStr::from_ptr(name) }.to_str().ok()?;
    SyscallFilter::named(name)
}

/// Registers a system call callback (`hook` makes its kind) for the calls `name` selects.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
unsafe fn register_call(
    what: &str,
    hook: fn(SyscallCb) -> Hook,
    name: *const c_char,
    cb: Option<SyscallCb>,
    udata: *mut c_void,
) -> c_int {
    guarded(what, || {
        // SAFETY: the caller's contract for `name`.
        match (unsafe { calls_named(name) }, cb) {
            (Some(calls), Some(cb)) => register(hook(cb), calls, udata),
            _ => EINVAL,
        }
    })
    .unwrap_or(EINVAL)
}

unsafe extern "C" fn on_syscall_enter(
    name: *const c_char,
    cb: Option<SyscallCb>,
    udata: *mut c_void,
) -> c_int {
    // SAFETY: the header's contract for `name`.
    unsafe { register_call("vmi_api.on_syscall_enter", Hook::Enter, name, cb, udata) }
}

unsafe extern "C" fn on_syscall_return(
    name: *const c_char,
    cb: Option<SyscallCb>,
    udata: *mut c_void,
) -> c_int {
    // SAFETY: the header's contract for `name`.
    unsafe { register_call("vmi_api.on_syscall_return", Hook::Return, name, cb, udata) }
}

unsafe extern "C" fn on_process_event(cb: Option<EventCb>, udata: *mut c_void) -> c_int {
    guarded("vmi_api.on_process_event", || match cb {
        Some(cb) => register(Hook::Event(cb), SyscallFilter::None, udata),
        None => EINVAL,
    })
    .unwrap_or(EINVAL)
}

/// The `VMI_E*` of a query's failure.
fn code(e: &QueryError) -> c_int {
    match e {
        QueryError::NoVcpu => ENOVCPU,
        QueryError::KernelUnknown => EKERNEL,
        QueryError::KernelUnmapped => EUNMAPPED,
        QueryError::Fault(_) | QueryError::Osi(OsiError::Fault(_)) => EFAULT,
        QueryError::Osi(_) => EOSI,
    }
}

/// Runs a query on the [`Ctx`] behind `ctx`; a NULL pointer is `VMI_EINVAL`, a panic is
/// `VMI_EOSI`.
///
/// # Safety
/// `ctx` is NULL or the pointer a callback was given, during that callback.
unsafe fn query(
    ctx: *const VmiCtx,
    f: impl FnOnce(&Ctx<'_>) -> Result<c_int, QueryError>,
) -> c_int {
    if ctx.is_null() {
        return EINVAL;
    }
    // SAFETY: the caller's contract: `ctx` points at the callback's live Ctx.
    let ctx = unsafe { &*ctx.cast::<Ctx<'_>>() };
    guarded("a vmi_api query", || f(ctx).unwrap_or_else(|e| code(&e))).unwrap_or(EOSI)
}

fn c_process(p: &Process) -> VmiProcess {
    VmiProcess {
        pid: p.pid,
        ppid: p.ppid,
        task: p.task,
        asid: p.asid.unwrap_or(0),
        kernel_thread: i32::from(p.kernel_thread),
        comm: fixed(&p.comm),
    }
}

unsafe extern "C" fn current_process(ctx: *const VmiCtx, out: *mut VmiProcess) -> c_int {
    if out.is_null() {
        return EINVAL;
    }
    // SAFETY: `ctx` per the header; `out` checked non-NULL, the caller's to write.
    unsafe {
        query(ctx, |c| {
            let p = c.current_process()?;
            out.write(c_process(&p));
            Ok(0)
        })
    }
}

unsafe extern "C" fn processes(ctx: *const VmiCtx, out: *mut VmiProcess, max: usize) -> c_int {
    if out.is_null() && max > 0 {
        return EINVAL;
    }
    // SAFETY: `ctx` per the header; `out` holds `max` elements per the header.
    unsafe {
        query(ctx, |c| {
            let list = c.processes()?;
            for (i, p) in list.items.iter().take(max).enumerate() {
                out.add(i).write(c_process(p));
            }
            Ok(c_int::try_from(list.items.len()).unwrap_or(c_int::MAX))
        })
    }
}

unsafe extern "C" fn mapping_at(
    ctx: *const VmiCtx,
    task: u64,
    addr: u64,
    out: *mut VmiMapping,
) -> c_int {
    if out.is_null() {
        return EINVAL;
    }
    // SAFETY: `ctx` per the header; `out` checked non-NULL.
    unsafe {
        query(ctx, |c| {
            Ok(match c.mapping_at(ProcessHandle(task), addr)? {
                Some(m) => {
                    out.write(VmiMapping {
                        start: m.start,
                        end: m.end,
                        flags: m.flags,
                        offset: m.offset,
                        path: fixed(m.path.as_deref().unwrap_or("")),
                    });
                    1
                }
                None => 0,
            })
        })
    }
}

unsafe extern "C" fn read_memory(
    ctx: *const VmiCtx,
    va: u64,
    buf: *mut c_void,
    len: usize,
) -> c_int {
    if buf.is_null() && len > 0 {
        return EINVAL;
    }
    // SAFETY: `ctx` per the header; `buf` holds `len` bytes per the header.
    unsafe {
        query(ctx, |c| {
            let buf = std::slice::from_raw_parts_mut(buf.cast::<u8>(), len);
            c.read(va, buf)?;
            Ok(0)
        })
    }
}

unsafe extern "C" fn read_string(
    ctx: *const VmiCtx,
    va: u64,
    buf: *mut c_char,
    len: usize,
) -> c_int {
    if buf.is_null() || len == 0 {
        return EINVAL;
    }
    // SAFETY: `ctx` per the header; `buf` holds `len` bytes per the header.
    unsafe {
        query(ctx, |c| {
            let text = c.read_str(va)?;
            let bytes = text.as_bytes();
            let n = bytes.len().min(len - 1);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), n);
            buf.add(n).write(0);
            if n < bytes.len() {
                return Ok(ERANGE);
            }
            Ok(c_int::try_from(n).unwrap_or(c_int::MAX))
        })
    }
}

unsafe extern "C" fn strerror(err: c_int) -> *const c_char {
    let text: &'static CStr = match err {
        0 => c"no error",
        ENOVCPU => c"no vCPU runs here: ask inside a callback",
        EKERNEL => {
            c"the kernel is not known (yet): give vmi conf=, and wait for the kernel to be ready"
        }
        EUNMAPPED => c"the kernel is not mapped at this user-mode point (KPTI)",
        EFAULT => c"guest memory could not be read",
        EOSI => c"the kernel's answer could not be read",
        ELATE => c"register during your plugin's install, before the guest runs",
        EINVAL => c"invalid argument (NULL pointer, or a call name the tables do not know)",
        ERANGE => c"the answer was cut to fit the buffer",
        _ => c"unknown error",
    };
    text.as_ptr()
}
