//! The only unsafe code of the crate: QEMU's entry points, the callback trampolines and
//! the guest-memory read. No logic lives here; every callback turns QEMU's pointers into
//! plain values and calls [`Plugin`].
//!
//! Every trampoline catches panics: unwinding into QEMU's C frames would abort QEMU.
//! Callbacks whose C signature changed between plugin API versions have one trampoline
//! per signature ([`api`] says which); nothing above this module knows the version.

mod api;
mod capi;
mod gate;
mod icount;
mod memory;
mod registers;
mod scoreboard;
mod vcpus;

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

use once_cell::sync::OnceCell;

use crate::api::{Built, PluginArgs};
use crate::plugin::{Hook, MachineInfo, Plugin};

use memory::{QemuCpu, TranslatedPage};

/// Records are built on vCPU threads and freed on the log's writer thread; glibc's
/// allocator serialises such frees on its arena lock (measured: a fifth of a traced
/// system call's host time went to malloc and free), mimalloc hands them back per page.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The one plugin instance, set once by `qemu_plugin_install`.
static PLUGIN: OnceCell<Plugin> = OnceCell::new();

/// Longest x86 instruction: enough bytes to classify any instruction.
const MAX_INSN: usize = 15;

/// Runs `f`, turning a panic into a logged error so that it never unwinds into QEMU.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Some(value),
        Err(_) => {
            log::error!("internal error in {what}; the plugin continues without it");
            None
        }
    }
}

/// QEMU's install hook, for the plugin [`crate::export_plugin!`] makes: parse the
/// arguments (vmi's and the plugin's `keys`), validate them, make the analyses with
/// `build` and register callbacks. A non-zero return makes QEMU refuse the plugin and
/// exit with a message; the reason is printed on one line before that.
///
/// # Safety
/// Called by QEMU with a valid `info` (a `qemu_info_t`) for the duration of the call and
/// `argc` valid C strings in `argv`.
pub unsafe fn install(
    id: api::qemu_plugin_id_t,
    info: *const c_void,
    argc: c_int,
    argv: *const *const c_char,
    keys: &[(&str, &str)],
    build: fn(&PluginArgs) -> Built,
) -> c_int {
    let info = info.cast::<api::qemu_info_t>();
    let installed = guarded("qemu_plugin_install", || {
        // SAFETY: QEMU passes `argc` valid, NUL-terminated strings in `argv`.
        let args = (0..argc.max(0) as usize)
            .map(|i| unsafe { CStr::from_ptr(*argv.add(i)) })
            .map(|s| {
                s.to_str().map(str::to_string).map_err(|_| {
                    format!(
                        "plugin argument '{}' is not valid UTF-8: give paths and names in UTF-8",
                        s.to_string_lossy()
                    )
                })
            })
            .collect::<Result<Vec<String>, String>>()?;
        // SAFETY: `info` is valid for the duration of this call; `system` is the active
        // union member exactly when `system_emulation` is true.
        let machine = unsafe {
            let info = &*info;
            let (vcpus, system) = if info.system_emulation {
                (info.smp_vcpus, true)
            } else {
                (0, false)
            };
            api::set_version(info.version_cur, info.version_min)?;
            MachineInfo {
                target: CStr::from_ptr(info.target_name)
                    .to_string_lossy()
                    .into_owned(),
                plugin_api: info.version_cur,
                vcpus,
                system,
            }
        };
        init_logging(&args);
        let parsed = PluginArgs::parse(&args, keys).map_err(|e| e.to_string())?;
        let plugin = Plugin::install(parsed.options.clone(), args, machine)
            .map_err(|err| err.to_string())?;
        plugin.add(build(&parsed)?).map_err(|e| e.to_string())?;
        if plugin.options().icount {
            icount::enable();
        }
        gate::enable();
        PLUGIN
            .set(plugin)
            .map_err(|_| "the plugin is already installed".to_string())?;
        // SAFETY: registering callbacks with the id QEMU gave us, during install, each
        // with the signature of the version QEMU reported.
        unsafe {
            let none = std::ptr::null_mut();
            if api::version() >= 7 {
                api::register_vcpu_init_cb_v7(id, on_vcpu_init_v7, none);
                api::register_vcpu_tb_trans_cb_v7(id, on_tb_trans_v7, none);
                api::register_atexit_cb_v7(id, on_exit_v7, none);
            } else {
                api::register_vcpu_init_cb_v4(id, on_vcpu_init_v4);
                api::register_vcpu_tb_trans_cb_v4(id, on_tb_trans_v4);
                api::register_atexit_cb_v4(id, on_exit_v4, none);
            }
        }
        Ok::<(), String>(())
    });
    match installed {
        Some(Ok(())) => 0,
        Some(Err(message)) => {
            eprintln!("vmi: {message}");
            -1
        }
        None => {
            eprintln!("vmi: internal error while installing; see the log above");
            -1
        }
    }
}

/// Sets up `log` once: `RUST_LOG` wins, otherwise the `log=` argument (default warn).
fn init_logging(args: &[String]) {
    let level = args
        .iter()
        .find_map(|a| a.strip_prefix("log="))
        .unwrap_or("warn");
    let mut builder = env_logger::Builder::new();
    builder.format_timestamp(None).format_target(false);
    match std::env::var("RUST_LOG") {
        Ok(spec) => builder.parse_filters(&spec),
        Err(_) => builder.parse_filters(&format!("vmi={level}")),
    };
    // A second plugin instance in the same process keeps the first logger.
    let _ = builder.try_init();
}

/// A vCPU starts: find the register handles (needs the vCPU's context).
fn on_vcpu_init(vcpu: c_uint) {
    let Some(plugin) = PLUGIN.get() else { return };
    guarded("vCPU init callback", || {
        vcpus::started(vcpu);
        registers::discover(plugin.arch())
    });
}

/// API 4-6 vCPU-init callback.
unsafe extern "C" fn on_vcpu_init_v4(_id: api::qemu_plugin_id_t, vcpu: c_uint) {
    on_vcpu_init(vcpu);
}

/// API 7 vCPU-init callback.
unsafe extern "C" fn on_vcpu_init_v7(vcpu: c_uint, _userdata: *mut c_void) {
    on_vcpu_init(vcpu);
}

/// API 4-6 translation callback.
unsafe extern "C" fn on_tb_trans_v4(_id: api::qemu_plugin_id_t, tb: *mut api::qemu_plugin_tb) {
    // SAFETY: QEMU's `tb`, valid for this callback.
    unsafe { on_tb_trans(tb) }
}

/// API 7 translation callback.
unsafe extern "C" fn on_tb_trans_v7(tb: *mut api::qemu_plugin_tb, _userdata: *mut c_void) {
    // SAFETY: QEMU's `tb`, valid for this callback.
    unsafe { on_tb_trans(tb) }
}

/// Translation of a block: instrument only the instructions [`Plugin::hook_for`] wants.
///
/// # Safety
/// `tb` must be the block QEMU is translating, inside its translation callback.
unsafe fn on_tb_trans(tb: *mut api::qemu_plugin_tb) {
    let Some(plugin) = PLUGIN.get() else { return };
    guarded("translation callback", || {
        // SAFETY: `tb` is valid for the duration of this callback, and so is every
        // instruction handle obtained from it.
        unsafe {
            let n = api::qemu_plugin_tb_n_insns(tb);
            let insn_bytes = |i: usize| {
                let insn = api::qemu_plugin_tb_get_insn(tb, i);
                let mut bytes = [0u8; MAX_INSN];
                let len = api::qemu_plugin_insn_data(insn, bytes.as_mut_ptr().cast(), MAX_INSN);
                (insn, bytes, len.min(MAX_INSN))
            };
            // The first two instructions identify the kernel's entry blocks.
            let head: Vec<_> = (0..n.min(2)).map(insn_bytes).collect();
            let head: Vec<&[u8]> = head.iter().map(|(_, b, l)| &b[..*l]).collect();
            // Translation runs on the vCPU thread, so its registers and memory can be
            // read here; the block's own page straight from host memory.
            let first = if n == 0 {
                std::ptr::null_mut()
            } else {
                api::qemu_plugin_tb_get_insn(tb, 0)
            };
            let code = TranslatedPage::new(
                QemuCpu::current(0, plugin.arch()),
                api::qemu_plugin_tb_vaddr(tb),
                if first.is_null() {
                    std::ptr::null()
                } else {
                    api::qemu_plugin_insn_haddr(first).cast_const().cast()
                },
            );
            plugin.on_block_translated(api::qemu_plugin_tb_vaddr(tb), &head, &code);
            for i in 0..n {
                let (insn, bytes, len) = insn_bytes(i);
                icount::count(insn);
                let va = api::qemu_plugin_insn_vaddr(insn);
                let Some(hook) = plugin.hook_for(va, &bytes[..len], i == 0, &code) else {
                    continue;
                };
                let Some(word) = hook.pack(va) else {
                    log::debug!("{hook:?} at {va:#x} cannot be instrumented");
                    continue;
                };
                // The hook and address travel as the user-data word itself: nothing is
                // allocated, so nothing leaks when QEMU retranslates.
                gate::register(insn, on_hook, word, hook == Hook::ReturnPoint);
            }
        }
    });
}

/// An instrumented instruction is executing.
unsafe extern "C" fn on_hook(vcpu: c_uint, userdata: *mut c_void) {
    let Some(plugin) = PLUGIN.get() else { return };
    guarded("instruction callback", || {
        let vcpu = vcpus::executing(vcpu, plugin.vcpus(), &QemuCpu::current(vcpu, plugin.arch()));
        let cpu = QemuCpu::current(vcpu, plugin.arch());
        match Hook::unpack(userdata as usize as u64) {
            Some((Hook::SyscallInsn(kind, abi), pc)) => plugin.on_syscall_insn(kind, abi, &cpu, pc),
            Some((Hook::ReturnPoint, pc)) => plugin.on_return_point(&cpu, pc),
            Some((Hook::KernelDispatch, _)) => plugin.on_kernel_dispatch(&cpu),
            Some((Hook::TaskSwitch(view, slide), _)) => plugin.on_task_switch(&cpu, view, slide),
            None => {}
        }
    });
}

/// QEMU is exiting (the guest powered off, or QEMU was asked to quit).
fn on_exit() {
    if let Some(plugin) = PLUGIN.get() {
        guarded("exit callback", || plugin.on_exit());
    }
}

/// API 4-6 exit callback.
unsafe extern "C" fn on_exit_v4(_id: api::qemu_plugin_id_t, _userdata: *mut c_void) {
    on_exit();
}

/// API 7 exit callback.
unsafe extern "C" fn on_exit_v7(_userdata: *mut c_void) {
    on_exit();
}
