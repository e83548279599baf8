//! User hooks on system calls: typed per-call hooks (generated, one `on_<name>_enter` /
//! `on_<name>_return` pair per system call name), and generic ones for every call and for
//! numbers the tables do not know.
//!
//! ```
//! use vmi::syscalls::SyscallHooks;
//! let mut hooks = SyscallHooks::new();
//! hooks
//!     .on_openat_enter(|c, dfd, filename, flags, mode| {
//!         let path = c.read_str(filename);
//!         println!("openat({dfd}, {path:?}, {flags:#x}, {mode:#o})");
//!     })
//!     .on_read_return(|c, fd, _buf, _count| println!("read({fd}) = {:?}", c.ret))
//!     .on_all_enter(|c| println!("nr {}", c.call.nr));
//! ```
//!
//! Typed hooks get each argument as `i64` (signed integers and file descriptors,
//! sign-extended from their C width) or `u64` (everything else: unsigned integers cut to
//! their C width, pointers); [`HookCtx::decode`] gives the [`DecodedArg`]. A hook on a name
//! fires in every profile that has it (`openat` is 257 on x86_64, 295 on i386); names
//! whose parameters differ between profiles get per-profile hooks
//! (`on_clone_linux_x64_enter`, `on_clone_linux_x86_enter`).

use std::sync::Arc;

use super::decode::{DecodedArg, ThreadInfo, When, decode_arg, mask, sext};
use super::{Profile, RawCall, SyscallInfo};
use crate::mem::GuestMemory;

/// What a hook sees.
pub struct HookCtx<'a> {
    /// The call at entry.
    pub call: &'a RawCall,
    /// What the table says about it; `None` for an unknown number.
    pub info: Option<&'static SyscallInfo>,
    /// The result, in return hooks.
    pub ret: Option<i64>,
    /// The calling thread, if the caller knows it.
    pub thread: Option<&'a ThreadInfo>,
    /// The guest's memory as the calling thread sees it.
    pub mem: &'a dyn GuestMemory,
}

impl<'a> HookCtx<'a> {
    /// A context for `call`, looking its number up in the table.
    pub fn new(
        call: &'a RawCall,
        ret: Option<i64>,
        thread: Option<&'a ThreadInfo>,
        mem: &'a dyn GuestMemory,
    ) -> Self {
        HookCtx {
            call,
            info: call.info(),
            ret,
            thread,
            mem,
        }
    }

    /// The table of the call.
    pub fn profile(&self) -> Profile {
        self.call.profile()
    }

    /// Argument `i` as unsigned, cut to its C width.
    pub fn u(&self, i: usize) -> u64 {
        let raw = self.call.args[i.min(5)];
        match self.info.and_then(|s| s.args.get(i)) {
            Some(a) => mask(raw, a.bits),
            None => mask(raw, self.profile().word_bits()),
        }
    }

    /// Argument `i` as signed, sign-extended from its C width.
    pub fn i(&self, i: usize) -> i64 {
        let raw = self.call.args[i.min(5)];
        match self.info.and_then(|s| s.args.get(i)) {
            Some(a) => sext(raw, a.bits),
            None => sext(raw, self.profile().word_bits()),
        }
    }

    /// Argument `i` decoded (strings read, buffers read at return).
    pub fn decode(&self, i: usize) -> Option<DecodedArg> {
        let info = self.info?;
        info.args.get(i)?;
        let when = self.ret.map_or(When::Enter, When::Return);
        Some(decode_arg(
            info,
            i,
            &self.call.args,
            self.profile(),
            self.mem,
            when,
        ))
    }

    /// The string at `ptr` (at most 4096 bytes, lossily converted), `None` if unreadable.
    pub fn read_str(&self, ptr: u64) -> Option<String> {
        let (b, _) = self.mem.read_cstr(ptr, super::decode::MAX_STR).ok()?;
        Some(String::from_utf8_lossy(&b).into_owned())
    }
}

pub(crate) type HookFn = Arc<dyn Fn(&HookCtx<'_>) + Send + Sync>;

/// Entry or return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Enter,
    Return,
}

#[derive(Default)]
struct Slots {
    /// `[profile][nr]` → hooks.
    by_nr: [Vec<Vec<HookFn>>; Profile::ALL.len()],
    all: Vec<HookFn>,
    unknown: Vec<HookFn>,
}

impl Slots {
    fn run(&self, ctx: &HookCtx<'_>) {
        for f in &self.all {
            f(ctx);
        }
        if ctx.info.is_none() {
            for f in &self.unknown {
                f(ctx);
            }
            return;
        }
        let per = &self.by_nr[ctx.profile().index()];
        if let Some(v) = ctx.profile().slot(ctx.call.nr).and_then(|n| per.get(n)) {
            for f in v {
                f(ctx);
            }
        }
    }

    fn wants(&self, profile: Profile, nr: u64) -> bool {
        if !self.all.is_empty() {
            return true;
        }
        if profile.lookup(nr).is_none() {
            return !self.unknown.is_empty();
        }
        profile
            .slot(nr)
            .and_then(|n| self.by_nr[profile.index()].get(n))
            .is_some_and(|v| !v.is_empty())
    }
}

/// The registry of hooks. Build it before the run; [`SyscallHooks::enter`] and
/// [`SyscallHooks::ret`] run them.
#[derive(Default)]
pub struct SyscallHooks {
    enter: Slots,
    ret: Slots,
}

impl std::fmt::Debug for SyscallHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = |s: &Slots| {
            s.all.len() + s.unknown.len() + s.by_nr.iter().flatten().map(Vec::len).sum::<usize>()
        };
        f.debug_struct("SyscallHooks")
            .field("enter", &count(&self.enter))
            .field("return", &count(&self.ret))
            .finish()
    }
}

impl SyscallHooks {
    /// No hooks.
    pub fn new() -> Self {
        SyscallHooks::default()
    }

    pub(crate) fn add(&mut self, phase: Phase, at: &[(Profile, u32)], f: HookFn) -> &mut Self {
        let slots = match phase {
            Phase::Enter => &mut self.enter,
            Phase::Return => &mut self.ret,
        };
        for &(profile, nr) in at {
            let per = &mut slots.by_nr[profile.index()];
            // The generated hooks name numbers their table holds.
            let Some(nr) = profile.slot(u64::from(nr)) else {
                continue;
            };
            if per.len() <= nr {
                per.resize_with(nr + 1, Vec::new);
            }
            per[nr].push(f.clone());
        }
        self
    }

    /// Runs at the entry of every call, known or not, before the typed hooks.
    pub fn on_all_enter(&mut self, f: impl Fn(&HookCtx<'_>) + Send + Sync + 'static) -> &mut Self {
        self.enter.all.push(Arc::new(f));
        self
    }

    /// Runs at the return of every call, known or not, before the typed hooks.
    pub fn on_all_return(&mut self, f: impl Fn(&HookCtx<'_>) + Send + Sync + 'static) -> &mut Self {
        self.ret.all.push(Arc::new(f));
        self
    }

    /// Runs at the entry of calls whose number the table does not know.
    pub fn on_unknown_enter(
        &mut self,
        f: impl Fn(&HookCtx<'_>) + Send + Sync + 'static,
    ) -> &mut Self {
        self.enter.unknown.push(Arc::new(f));
        self
    }

    /// Runs at the return of calls whose number the table does not know.
    pub fn on_unknown_return(
        &mut self,
        f: impl Fn(&HookCtx<'_>) + Send + Sync + 'static,
    ) -> &mut Self {
        self.ret.unknown.push(Arc::new(f));
        self
    }

    /// Whether any hook would run at the entry of this call (to skip work when not).
    pub fn wants_enter(&self, profile: Profile, nr: u64) -> bool {
        self.enter.wants(profile, nr)
    }

    /// Whether any hook would run at the return of this call.
    pub fn wants_return(&self, profile: Profile, nr: u64) -> bool {
        self.ret.wants(profile, nr)
    }

    /// Runs the entry hooks for `ctx.call` (`ctx.ret` is ignored).
    pub fn enter(&self, ctx: &HookCtx<'_>) {
        self.enter.run(ctx);
    }

    /// Runs the return hooks for `ctx.call` (`ctx.ret` should be set).
    pub fn ret(&self, ctx: &HookCtx<'_>) {
        self.ret.run(ctx);
    }
}

impl Slots {
    /// The calls some hook of these slots runs for, as a filter.
    fn filter(&self) -> crate::args::SyscallFilter {
        use crate::args::SyscallFilter;
        if !self.all.is_empty() || !self.unknown.is_empty() {
            return SyscallFilter::All;
        }
        let mut names: Vec<String> = Vec::new();
        for profile in Profile::ALL {
            for (slot, hooks) in self.by_nr[profile.index()].iter().enumerate() {
                let info = profile.table().get(slot).and_then(Option::as_ref);
                if let (false, Some(info)) = (hooks.is_empty(), info)
                    && !names.iter().any(|n| n == info.name)
                {
                    names.push(info.name.to_string());
                }
            }
        }
        if names.is_empty() {
            SyscallFilter::None
        } else {
            SyscallFilter::Names(names)
        }
    }
}

impl SyscallHooks {
    /// The calls some entry hook runs for.
    pub fn entry_filter(&self) -> crate::args::SyscallFilter {
        self.enter.filter()
    }

    /// The calls some return hook runs for.
    pub fn return_filter(&self) -> crate::args::SyscallFilter {
        self.ret.filter()
    }
}
