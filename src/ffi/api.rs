//! QEMU's plugin API as vmi uses it, for every API version vmi speaks (4 to 7), and the
//! choice among them.
//!
//! # Where the declarations come from
//! QEMU's header: `include/qemu/qemu-plugin.h` of QEMU 10.0 (API 4) and 10.1/10.2 (API
//! 5), `include/plugins/qemu-plugin.h` of QEMU 11.0 (API 6) and 11.1 (API 7). Only the
//! functions vmi calls are declared; the signatures that changed between versions were
//! checked against Debian's QEMU 10.0.2 and 11.1.3 executables (a probe plugin printing the
//! arguments each callback receives, and the disassembly of the registration functions):
//!
//! | API | QEMU | what changed, of what vmi uses |
//! |---|---|---|
//! | 4 | 9.2, 10.0 | `read_memory_vaddr` (vmi's minimum) |
//! | 5 | 10.1, 10.2 | `read_memory_hwaddr`, `translate_vaddr` added |
//! | 6 | 11.0 | `read_register` returns `bool` instead of the size read |
//! | 7 | 11.1 | vCPU-init, translation and exit callbacks lose the plugin id and take a user-data pointer (registered with one); register descriptors grow an `is_readonly` field; the minimum version QEMU accepts is 7 |
//!
//! # How one file serves every version
//! QEMU `dlopen`s the plugin, then reads its exported [`qemu_plugin_version`] and refuses
//! a value outside the range it supports; only then does it call `qemu_plugin_install`
//! with its own version. The ELF constructor [`choose_version`] runs inside that `dlopen`,
//! before QEMU reads the value, and sets it from what the QEMU executable offers (see
//! [`declared_version`]). Everything after install follows the version QEMU reports
//! ([`set_version`]): callbacks are registered with the signature of that version, and
//! the functions only newer QEMU has are looked up at run time, never
//! linked, so that the plugin loads where they are missing.

#![allow(non_camel_case_types, clippy::upper_case_acronyms)]

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::sync::atomic::{AtomicI32, Ordering};

use once_cell::sync::OnceCell;

use crate::qemu::{self, Host, OLDEST, declared_version, parse_banner};

/// The plugin API version this plugin declares; QEMU reads it after loading the file and
/// before installing, and refuses a version outside its range. [`choose_version`] sets it.
#[unsafe(no_mangle)]
pub static qemu_plugin_version: AtomicI32 = AtomicI32::new(OLDEST);

/// Runs [`choose_version`] when the file is loaded, before QEMU reads the version.
#[used]
#[unsafe(link_section = ".init_array")]
static CHOOSE_VERSION: extern "C" fn() = choose_version;

/// Sets [`qemu_plugin_version`] for the QEMU that is loading the plugin.
extern "C" fn choose_version() {
    // Nothing may unwind out of a constructor.
    let chosen = std::panic::catch_unwind(|| declared_version(&Executable)).unwrap_or(OLDEST);
    qemu_plugin_version.store(chosen, Ordering::Relaxed);
}

/// The QEMU executable this process runs.
struct Executable;

/// The address of the function `name` the QEMU executable exports, if it does.
fn symbol(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: `dlsym` with RTLD_DEFAULT searches the global scope (the executable);
    // `name` is NUL-terminated.
    let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!f.is_null()).then_some(f)
}

impl Host for Executable {
    fn exports(&self, name: &CStr) -> bool {
        symbol(name).is_some()
    }

    fn release(&self) -> Option<(u32, u32)> {
        let mut found = None;
        for_each_readonly_segment(|bytes| {
            if found.is_none() {
                found = parse_banner(bytes);
            }
        });
        found
    }
}

/// Calls `f` with each readable, non-executable loaded segment of the main executable
/// (where its string constants are).
fn for_each_readonly_segment(mut f: impl FnMut(&[u8])) {
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: the loader passes a valid `info` for the duration of the call; `data` is
        // the `&mut dyn FnMut` passed below. The first object is the main executable, whose
        // PT_LOAD segments are mapped at `dlpi_addr + p_vaddr`, their first `p_filesz`
        // bytes from the file.
        unsafe {
            let f = &mut *data.cast::<&mut dyn FnMut(&[u8])>();
            let info = &*info;
            let headers = std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum));
            for h in headers {
                let readonly =
                    h.p_flags & libc::PF_R != 0 && h.p_flags & (libc::PF_X | libc::PF_W) == 0;
                if h.p_type == libc::PT_LOAD && readonly {
                    let start = (info.dlpi_addr + h.p_vaddr) as *const u8;
                    f(std::slice::from_raw_parts(start, h.p_filesz as usize));
                }
            }
        }
        1 // the main executable only
    }
    let mut f: &mut dyn FnMut(&[u8]) = &mut f;
    // SAFETY: `visit` only uses `data` as the closure reference for this call's duration.
    unsafe {
        libc::dl_iterate_phdr(Some(visit), (&raw mut f).cast());
    }
}

/// The version QEMU reported at install, which decides every calling convention after it.
static VERSION: AtomicI32 = AtomicI32::new(OLDEST);

/// Records QEMU's version (its `info->version.cur`) at install; a version vmi cannot
/// use is refused with a line naming both ranges.
pub fn set_version(current: i32, minimum: i32) -> Result<(), String> {
    qemu::check_installed(current, minimum)?;
    VERSION.store(current, Ordering::Relaxed);
    Ok(())
}

/// The version QEMU reported at install.
pub fn version() -> i32 {
    VERSION.load(Ordering::Relaxed)
}

// ------------------------------------------------------------------------------ types

/// `qemu_plugin_id_t`.
pub type qemu_plugin_id_t = u64;

/// `qemu_info_t`: the same layout in every version (the anonymous `version` struct and
/// `system` union flattened).
#[repr(C)]
pub struct qemu_info_t {
    pub target_name: *const c_char,
    pub version_min: c_int,
    pub version_cur: c_int,
    pub system_emulation: bool,
    pub smp_vcpus: c_int,
    pub max_vcpus: c_int,
}

/// Opaque handles.
#[repr(C)]
pub struct qemu_plugin_tb {
    _opaque: [u8; 0],
}
#[repr(C)]
pub struct qemu_plugin_insn {
    _opaque: [u8; 0],
}
#[repr(C)]
pub struct qemu_plugin_scoreboard {
    _opaque: [u8; 0],
}
#[repr(C)]
pub struct qemu_plugin_register {
    _opaque: [u8; 0],
}

/// `qemu_plugin_u64`: one `u64` of a scoreboard entry.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct qemu_plugin_u64 {
    pub score: *mut qemu_plugin_scoreboard,
    pub offset: usize,
}

/// The fields of `qemu_plugin_reg_descriptor` every version has, in front; API 7 appends
/// `is_readonly`, so the array's element size, not this struct's, is the stride.
#[repr(C)]
pub struct qemu_plugin_reg_descriptor {
    pub handle: *mut qemu_plugin_register,
    pub name: *const c_char,
    pub feature: *const c_char,
}

/// `enum qemu_plugin_cb_flags`: `QEMU_PLUGIN_CB_R_REGS`.
pub const CB_R_REGS: c_int = 1;
/// `enum qemu_plugin_cond`: `QEMU_PLUGIN_COND_EQ`.
pub const COND_EQ: c_int = 2;
/// `enum qemu_plugin_op`: `QEMU_PLUGIN_INLINE_ADD_U64`.
pub const INLINE_ADD_U64: c_int = 0;

/// `qemu_plugin_vcpu_udata_cb_t`: instruction callbacks, the same in every version.
pub type VcpuUdataCb = unsafe extern "C" fn(vcpu: c_uint, userdata: *mut c_void);
/// API 4-6: `qemu_plugin_vcpu_simple_cb_t`.
pub type VcpuSimpleCbV4 = unsafe extern "C" fn(id: qemu_plugin_id_t, vcpu: c_uint);
/// API 4-6: `qemu_plugin_vcpu_tb_trans_cb_t`.
pub type TbTransCbV4 = unsafe extern "C" fn(id: qemu_plugin_id_t, tb: *mut qemu_plugin_tb);
/// API 7: `qemu_plugin_vcpu_tb_trans_cb_t`.
pub type TbTransCbV7 = unsafe extern "C" fn(tb: *mut qemu_plugin_tb, userdata: *mut c_void);
/// API 4-6: `qemu_plugin_udata_cb_t`.
pub type UdataCbV4 = unsafe extern "C" fn(id: qemu_plugin_id_t, userdata: *mut c_void);
/// API 7: `qemu_plugin_udata_cb_t`.
pub type UdataCbV7 = unsafe extern "C" fn(userdata: *mut c_void);

// -------------------------------------------------------------------------- functions

// Functions every version from 4 to 7 has. A name declared twice has a signature per
// version range; the caller picks by `version()`.
#[allow(clashing_extern_declarations)]
unsafe extern "C" {
    #[link_name = "qemu_plugin_register_vcpu_init_cb"]
    pub fn register_vcpu_init_cb_v4(id: qemu_plugin_id_t, cb: VcpuSimpleCbV4);
    #[link_name = "qemu_plugin_register_vcpu_init_cb"]
    pub fn register_vcpu_init_cb_v7(id: qemu_plugin_id_t, cb: VcpuUdataCb, userdata: *mut c_void);
    #[link_name = "qemu_plugin_register_vcpu_tb_trans_cb"]
    pub fn register_vcpu_tb_trans_cb_v4(id: qemu_plugin_id_t, cb: TbTransCbV4);
    #[link_name = "qemu_plugin_register_vcpu_tb_trans_cb"]
    pub fn register_vcpu_tb_trans_cb_v7(
        id: qemu_plugin_id_t,
        cb: TbTransCbV7,
        userdata: *mut c_void,
    );
    #[link_name = "qemu_plugin_register_atexit_cb"]
    pub fn register_atexit_cb_v4(id: qemu_plugin_id_t, cb: UdataCbV4, userdata: *mut c_void);
    #[link_name = "qemu_plugin_register_atexit_cb"]
    pub fn register_atexit_cb_v7(id: qemu_plugin_id_t, cb: UdataCbV7, userdata: *mut c_void);
    /// API 4 and 5: returns the size read, or -1.
    #[link_name = "qemu_plugin_read_register"]
    pub fn read_register_v4(
        handle: *mut qemu_plugin_register,
        buf: *mut glib_sys::GByteArray,
    ) -> c_int;
    /// API 6 and later: returns whether it read.
    #[link_name = "qemu_plugin_read_register"]
    pub fn read_register_v6(
        handle: *mut qemu_plugin_register,
        buf: *mut glib_sys::GByteArray,
    ) -> bool;

    pub fn qemu_plugin_register_vcpu_insn_exec_cb(
        insn: *mut qemu_plugin_insn,
        cb: VcpuUdataCb,
        flags: c_int,
        userdata: *mut c_void,
    );
    pub fn qemu_plugin_register_vcpu_insn_exec_cond_cb(
        insn: *mut qemu_plugin_insn,
        cb: VcpuUdataCb,
        flags: c_int,
        cond: c_int,
        entry: qemu_plugin_u64,
        imm: u64,
        userdata: *mut c_void,
    );
    pub fn qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(
        insn: *mut qemu_plugin_insn,
        op: c_int,
        entry: qemu_plugin_u64,
        imm: u64,
    );
    pub fn qemu_plugin_tb_n_insns(tb: *const qemu_plugin_tb) -> usize;
    pub fn qemu_plugin_tb_vaddr(tb: *const qemu_plugin_tb) -> u64;
    pub fn qemu_plugin_tb_get_insn(tb: *const qemu_plugin_tb, idx: usize) -> *mut qemu_plugin_insn;
    pub fn qemu_plugin_insn_data(
        insn: *const qemu_plugin_insn,
        dest: *mut c_void,
        len: usize,
    ) -> usize;
    pub fn qemu_plugin_insn_vaddr(insn: *const qemu_plugin_insn) -> u64;
    pub fn qemu_plugin_insn_haddr(insn: *const qemu_plugin_insn) -> *mut c_void;
    pub fn qemu_plugin_scoreboard_new(element_size: usize) -> *mut qemu_plugin_scoreboard;
    pub fn qemu_plugin_u64_get(entry: qemu_plugin_u64, vcpu: c_uint) -> u64;
    pub fn qemu_plugin_u64_set(entry: qemu_plugin_u64, vcpu: c_uint, value: u64);
    pub fn qemu_plugin_num_vcpus() -> c_int;
    pub fn qemu_plugin_get_registers() -> *mut glib_sys::GArray;
    pub fn qemu_plugin_read_memory_vaddr(
        addr: u64,
        data: *mut glib_sys::GByteArray,
        len: usize,
    ) -> bool;
}
/// Functions only newer QEMU has, looked up in the executable at install: linking them
/// would make the plugin fail to load where they are missing.
pub struct Optional {
    /// API 5: `qemu_plugin_read_memory_hwaddr(addr, data, len)`; 0 is success.
    pub read_memory_hwaddr:
        Option<unsafe extern "C" fn(u64, *mut glib_sys::GByteArray, usize) -> c_int>,
}

static OPTIONAL: OnceCell<Optional> = OnceCell::new();

/// The optional functions this QEMU has (looked up once).
pub fn optional() -> &'static Optional {
    OPTIONAL.get_or_init(|| {
        // SAFETY: each symbol, where present, is the API function of that name, whose C
        // signature the field's type spells (QEMU 10.1's and 11.1's headers).
        unsafe {
            Optional {
                read_memory_hwaddr: symbol(c"qemu_plugin_read_memory_hwaddr")
                    .map(|f| std::mem::transmute::<*mut c_void, _>(f)),
            }
        }
    })
}
