//! Where translated code runs.
//!
//! QEMU translates x86 code position-independently and shares one translation between
//! every virtual address that maps the same physical page (the vDSO, a shared library
//! under ASLR: each process has them elsewhere). The address the plugin saw at
//! translation is the first translator's; the same code may now run one or more pages
//! away from it. Without correcting for that, a call entered through a block one process
//! translated and returning through a block another did could never be paired.
//!
//! Finding out costs a register read (`rip`). [`Shifts`] spares most of them: while a
//! vCPU stays in one address space, a call instruction runs where it ran last time.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::arch::regs::Reg;
use crate::cpu::Vcpu;
use crate::syscalls::Effects;

use super::threads::instance_id;

/// Where the instruction translated at `translated` runs now, in the current address
/// space. `rip` is synced when a block starts, so it lies at most a block (under a page)
/// before the instruction: rounding their distance up to whole pages gives the shift.
pub(super) fn running_address(cpu: &dyn Vcpu, translated: u64) -> u64 {
    translated.wrapping_add(running_shift(cpu, translated))
}

/// How far (whole pages) the instruction translated at `translated` runs from there: see
/// [`running_address`]. Without `rip`, nowhere else.
pub(super) fn running_shift(cpu: &dyn Vcpu, translated: u64) -> u64 {
    cpu.reg(Reg::Rip)
        .map_or(0, |rip| page_shift(rip, translated))
}

/// The whole number of pages between the block start `rip` runs at and the instruction
/// `translated`, where `rip` is at most a page before where the instruction now runs.
fn page_shift(rip: u64, translated: u64) -> u64 {
    rip.wrapping_sub(translated).wrapping_add(0xfff) & !0xfff
}

/// Slots of [`KNOWN`].
const SLOTS: usize = 8;

/// One remembered shift: for [`Shifts`] instance `owner`, the instruction translated at
/// `translated` ran `shift` from there on vCPU `cpu` during its `epoch`.
#[derive(Debug, Clone, Copy)]
struct Known {
    owner: u64,
    cpu: u32,
    epoch: u64,
    translated: u64,
    shift: u64,
}

const NOTHING: Known = Known {
    owner: u64::MAX,
    cpu: 0,
    epoch: 0,
    translated: 0,
    shift: 0,
};

thread_local! {
    /// Recent call instructions' shifts, by a hash of their translated address: a loop's
    /// calls come from a few places (one per libc wrapper). Per QEMU thread, which runs
    /// one vCPU (or, without MTTCG, all of them in turn: the vCPU is in the key).
    static KNOWN: [Cell<Known>; SLOTS] = const { [const { Cell::new(NOTHING) }; SLOTS] };
}

/// Shifts of call instructions, remembered per vCPU while its address space stays the
/// same.
///
/// The shift of a translated instruction depends only on which address space runs it:
/// the same translation in the same address space runs at the same place. A vCPU's
/// address space changes at a context switch, and a process's at exec or when it maps or
/// unmaps memory; each of those starts a new epoch ([`Shifts::moved`], [`Shifts::remapped`]),
/// and a shift is trusted only within the epoch it was found in. Only a caller that sees
/// every context switch may use it ([`Shifts::of`]'s `followed`). Not covered: a process
/// that maps the same code page at two addresses and makes calls from both copies within
/// one epoch; those calls would all be placed at the copy seen first.
#[derive(Debug)]
pub struct Shifts {
    epochs: Box<[AtomicU64]>,
    id: u64,
}

impl Shifts {
    /// Epochs for `vcpus` vCPUs.
    pub fn new(vcpus: usize) -> Shifts {
        Shifts {
            epochs: (0..vcpus).map(|_| AtomicU64::new(0)).collect(),
            id: instance_id(),
        }
    }

    /// `cpu` switched to another thread, possibly of another process.
    pub fn moved(&self, cpu: u32) {
        if let Some(epoch) = self.epochs.get(cpu as usize) {
            epoch.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A process replaced its image or changed its mappings: code may now run elsewhere,
    /// on any vCPU that runs one of its threads.
    pub fn remapped(&self) {
        for epoch in &self.epochs {
            epoch.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The shift of the instruction translated at `translated` on `cpu`: remembered
    /// within the epoch when `followed` (every context switch on `cpu` reaches
    /// [`Shifts::moved`]), else asked (`ask`, which reads `rip`).
    pub fn of(
        &self,
        cpu: &dyn Vcpu,
        followed: bool,
        translated: u64,
        ask: impl FnOnce() -> u64,
    ) -> u64 {
        let index = cpu.index();
        let Some(epoch) = self
            .epochs
            .get(index as usize)
            .filter(|_| followed)
            .map(|e| e.load(Ordering::Relaxed))
        else {
            return ask();
        };
        let way = (translated ^ (translated >> 5) ^ (translated >> 12) ^ u64::from(index)) as usize
            % SLOTS;
        KNOWN.with(|known| {
            let k = known[way].get();
            if k.owner == self.id
                && k.cpu == index
                && k.epoch == epoch
                && k.translated == translated
            {
                return k.shift;
            }
            let shift = ask();
            known[way].set(Known {
                owner: self.id,
                cpu: index,
                epoch,
                translated,
                shift,
            });
            shift
        })
    }
}

/// Whether a call with `effects` may change where code runs in its process: a new image,
/// or mappings added, moved or removed.
pub fn remaps(effects: Effects) -> bool {
    effects.any(Effects::EXEC.with(Effects::MAPS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::fake::FakeCpu;

    #[test]
    fn shared_translations_run_where_rip_says() {
        let at = |rip, translated: u64| translated.wrapping_add(page_shift(rip, translated));
        // i386 vDSO, translated where one process maps it, run in another (as seen):
        // `sysenter` 5 bytes into its block, and the return point starting one.
        assert_eq!(at(0xb7f2_d550, 0xb7f9_5555), 0xb7f2_d555);
        assert_eq!(at(0xb7f2_d559, 0xb7f9_5559), 0xb7f2_d559);
        assert_eq!(at(0xb7fb_a550, 0xb7f9_5555), 0xb7fb_a555);
        // Unshared code: the block starts 16 bytes before `int 0x80`.
        assert_eq!(at(0x80b_a065, 0x80b_a075), 0x80b_a075);
        // A block that starts on the page before the instruction.
        assert_eq!(at(0x7f00_0000_1ff0, 0x7e00_0000_2004), 0x7f00_0000_2004);
        // An x86-64 library a long way off, both ways.
        assert_eq!(at(0x7f12_3456_7000, 0x5555_0000_7010), 0x7f12_3456_7010);
        assert_eq!(at(0x5555_0000_7000, 0x7f12_3456_7010), 0x5555_0000_7010);
        let cpu = FakeCpu::new(0);
        assert_eq!(
            running_address(&cpu, 0x1234),
            0x1234,
            "no rip: as translated"
        );
        cpu.set(Reg::Rip, 0x5000);
        assert_eq!(running_address(&cpu, 0x1002), 0x5002);
    }

    #[test]
    fn a_shift_is_remembered_within_its_epoch_only() {
        let shifts = Shifts::new(2);
        let (cpu0, cpu1) = (FakeCpu::new(0), FakeCpu::new(1));
        let asked = Cell::new(0);
        let ask = |s: u64| {
            asked.set(asked.get() + 1);
            s
        };
        assert_eq!(shifts.of(&cpu0, true, 0x1000, || ask(0x5000)), 0x5000);
        assert_eq!(shifts.of(&cpu0, true, 0x1000, || ask(0x6000)), 0x5000);
        assert_eq!(asked.get(), 1, "the same epoch: remembered");
        assert_eq!(shifts.of(&cpu1, true, 0x1000, || ask(0x7000)), 0x7000);
        assert_eq!(shifts.of(&cpu0, false, 0x1000, || ask(0x8000)), 0x8000);
        assert_eq!(
            asked.get(),
            3,
            "another vCPU, or switches not followed: asked"
        );
        shifts.moved(0);
        assert_eq!(shifts.of(&cpu0, true, 0x1000, || ask(0x9000)), 0x9000);
        assert_eq!(shifts.of(&cpu1, true, 0x1000, || ask(0xa000)), 0x7000);
        shifts.remapped();
        assert_eq!(shifts.of(&cpu1, true, 0x1000, || ask(0xb000)), 0xb000);
        assert_eq!(asked.get(), 5, "a switch or a remapping starts a new epoch");
        let other = Shifts::new(2);
        assert_eq!(other.of(&cpu1, true, 0x1000, || ask(0xc000)), 0xc000);
        let remaps = |name| remaps(Effects::of_name(name));
        assert!(remaps("mmap") && remaps("execve") && !remaps("read"));
    }
}
