//! From a completed system call to what it means for the process lifecycle, reading from
//! the guest the facts the event needs (the child, the new image, the wait status).

use crate::cpu::Vcpu;
use crate::events::Lifecycle;
use crate::linux::{Linux, task};
use crate::osi::Introspect;
use crate::syscalls::{Effects, Outcome, decode::mask};

use super::tracer::Finished;

/// Whether a call with `effects` can mean something to the process lifecycle ([`of`] may
/// return an event for it): the others need no matching when they are not logged.
pub fn is_lifecycle_call(effects: Effects) -> bool {
    reads_kernel(effects) || effects.any(Effects::EXITS.with(Effects::REAP))
}

/// Whether a call with `effects` may reap a child (end a process that was killed): its
/// lifecycle is worth working out even when process events are off, since the tracer
/// drops what the reaped process left pending.
pub fn may_reap(effects: Effects) -> bool {
    effects.any(Effects::REAP)
}

/// Whether [`of`] reads the kernel for a call with `effects` (a new child's process, a
/// new image's): only then does the caller need to set up a Linux provider.
pub fn reads_kernel(effects: Effects) -> bool {
    effects.any(Effects::SPAWN.with(Effects::EXEC))
}

/// The lifecycle meaning of `done`, if it has one. `linux` reads the kernel; it is absent
/// at a user-mode return under KPTI, where a new child's details are then the caller's
/// until the child runs (the process list cannot be read there).
pub fn of(done: &Finished, cpu: &dyn Vcpu, linux: Option<&Linux<'_>>) -> Option<Lifecycle> {
    let call = &done.done.call;
    if !is_lifecycle_call(call.effects()) {
        return None;
    }
    let name = call.name()?;
    let bits = call.profile().word_bits();
    let arg = |i: usize| mask(call.args[i], bits);
    let signed = |v: u64| mask(v, 32) as u32 as i32;
    match (name, done.done.outcome) {
        ("clone" | "clone3" | "fork" | "vfork", Outcome::Returned(child)) if child > 0 => {
            let flags = match name {
                "clone" => arg(0),
                // clone3(struct clone_args *args, size_t size): flags come first.
                "clone3" => cpu.read_u64(arg(0)).unwrap_or(0),
                _ => 0,
            };
            let child = child as u32;
            Some(Lifecycle::Cloned {
                child,
                flags,
                process: linux.and_then(|l| task::find_process(l, child).ok().flatten()),
            })
        }
        ("execve" | "execveat", Outcome::Exec) => {
            let filename = match name {
                "execve" => arg(0),
                _ => arg(1),
            };
            Some(Lifecycle::Execed {
                process: linux.and_then(|l| l.current_process().ok()),
                filename: cpu
                    .read_cstr(filename, 4096)
                    .ok()
                    .map(|(b, _)| String::from_utf8_lossy(&b).into_owned()),
            })
        }
        ("exit_group", Outcome::NoReturn) => Some(Lifecycle::ExitGroup(signed(arg(0)))),
        ("exit", Outcome::NoReturn) => Some(Lifecycle::Exit(signed(arg(0)))),
        ("wait4" | "waitpid", Outcome::Returned(child)) if child > 0 => {
            let status_at = arg(1);
            let status = (status_at != 0)
                .then(|| cpu.read_u32(status_at).ok())
                .flatten()
                .map(|s| s as i32);
            // A stopped (0x7f in the low byte) or continued (0xffff) child is still alive:
            // WUNTRACED / WCONTINUED / ptrace report those too.
            if status.is_some_and(|s| s & 0xff == 0x7f || s == 0xffff) {
                return None;
            }
            Some(Lifecycle::Reaped {
                child: child as u32,
                status,
            })
        }
        ("waitid", Outcome::Returned(0)) => waitid_reaped(call, cpu),
        _ => None,
    }
}

/// `waitid(which, id, infop, options, ru)` that reaped a child: its pid and a wait status
/// rebuilt from `infop`'s `si_code`/`si_status` (none with `WNOHANG` and nothing ready, or
/// with `WNOWAIT`, which leaves the child waitable).
fn waitid_reaped(call: &crate::syscalls::RawCall, mem: &dyn Vcpu) -> Option<Lifecycle> {
    const WNOWAIT: u64 = 0x0100_0000;
    const CLD_EXITED: u32 = 1;
    const CLD_DUMPED: u32 = 3;
    let bits = call.profile().word_bits();
    let (infop, options) = (mask(call.args[2], bits), mask(call.args[3], bits));
    if infop == 0 || options & WNOWAIT != 0 {
        return None;
    }
    // siginfo_t: si_signo, si_errno, si_code, then the union (8-aligned on 64-bit) whose
    // _sigchld starts with si_pid, si_uid, si_status.
    let union = infop + if bits == 64 { 16 } else { 12 };
    let code = mem.read_u32(infop + 8).ok()?;
    // CLD_TRAPPED, CLD_STOPPED, CLD_CONTINUED: the child lives on.
    if !(CLD_EXITED..=CLD_DUMPED).contains(&code) {
        return None;
    }
    let child = mem.read_u32(union).ok()?;
    let status = mem.read_u32(union + 8).ok()? as i32;
    (child != 0).then_some(Lifecycle::Reaped {
        child,
        status: Some(if code == CLD_EXITED {
            (status & 0xff) << 8
        } else {
            status & 0x7f
        }),
    })
}
