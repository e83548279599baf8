//! What vmi knows of QEMU's plugin API versions, QEMU-free: which versions it speaks, which
//! one to declare to the QEMU that loads it, and whether the one QEMU then reports is
//! usable. The calls themselves, per version, are in the ffi module.
//!
//! QEMU reads a plugin's declared version right after loading the file and refuses one
//! outside its range: every QEMU from 9.2 to 11.0 accepts 4 and then behaves by its own
//! version, while QEMU 11.1 accepts only 7 (its callbacks take other arguments).

use std::ffi::CStr;

/// The oldest plugin API vmi can use: it needs `qemu_plugin_read_memory_vaddr`.
pub const OLDEST: i32 = 4;
/// The newest plugin API vmi knows the calling conventions of.
pub const NEWEST: i32 = 7;

/// What the constructor can learn about the QEMU executable loading the plugin.
pub trait Host {
    /// Whether the executable exports the plugin-API function `name`.
    fn exports(&self, name: &CStr) -> bool;
    /// QEMU's `major.minor` release, from the version banner it prints for `--version`.
    fn release(&self) -> Option<(u32, u32)>;
}

/// The version to declare. Every QEMU from 9.2 to 11.0 accepts 4 (their minimum is
/// lower), and behaves by its own version once installed; QEMU 11.1 accepts only 7,
/// whose callbacks differ. No exported function is known to tell the two apart, so the
/// release in QEMU's own version banner does, and only where `qemu_plugin_set_pc` (11.0
/// and later) says it may be needed. A QEMU older than API 4 gets one line here, and then
/// QEMU's own refusal.
pub fn declared_version(host: &dyn Host) -> i32 {
    // Linked into a program that is not QEMU (the `vmi` tool): nothing to say.
    if !host.exports(c"qemu_plugin_register_vcpu_tb_trans_cb") {
        return OLDEST;
    }
    if !host.exports(c"qemu_plugin_read_memory_vaddr") {
        eprintln!(
            "vmi: this QEMU's plugin API is older than version {OLDEST} (QEMU 9.2); vmi \
             needs API {OLDEST} to {NEWEST} (QEMU 10.0 to 11.1)"
        );
        return OLDEST;
    }
    if !host.exports(c"qemu_plugin_set_pc") {
        return OLDEST;
    }
    match host.release() {
        Some(release) if release < (11, 1) => OLDEST,
        // 11.1 and later, or a banner that could not be read on a QEMU this new.
        _ => NEWEST,
    }
}

/// The text QEMU prints for `--version`, compiled into every QEMU executable.
const BANNER: &[u8] = b"QEMU emulator version ";

/// `major.minor` from the first version banner in `bytes`.
pub fn parse_banner(bytes: &[u8]) -> Option<(u32, u32)> {
    let at = memchr::memmem::find(bytes, BANNER)? + BANNER.len();
    let rest = &bytes[at..bytes.len().min(at + 16)];
    let mut parts = rest.split(|b| *b == b'.');
    let mut number = || -> Option<u32> {
        let digits: Vec<u8> = parts
            .next()?
            .iter()
            .copied()
            .take_while(u8::is_ascii_digit)
            .collect();
        std::str::from_utf8(&digits).ok()?.parse().ok()
    };
    Some((number()?, number()?))
}

/// Whether vmi can run on a QEMU that reported plugin API `current` (supporting
/// `minimum` to `current`) at install; the error names both ranges.
pub fn check_installed(current: i32, minimum: i32) -> Result<(), String> {
    if (OLDEST..=NEWEST).contains(&current) {
        Ok(())
    } else {
        Err(format!(
            "this QEMU speaks plugin API {minimum} to {current}; vmi speaks {OLDEST} to \
             {NEWEST} (QEMU 10.0 to 11.1)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        exports: &'static [&'static str],
        release: Option<(u32, u32)>,
    }

    impl Host for Fake {
        fn exports(&self, name: &CStr) -> bool {
            self.exports.iter().any(|e| e.as_bytes() == name.to_bytes())
        }
        fn release(&self) -> Option<(u32, u32)> {
            self.release
        }
    }

    const TRANS: &str = "qemu_plugin_register_vcpu_tb_trans_cb";
    const V3: &[&str] = &[TRANS];
    const V4: &[&str] = &[TRANS, "qemu_plugin_read_memory_vaddr"];
    const V5: &[&str] = &[
        TRANS,
        "qemu_plugin_read_memory_vaddr",
        "qemu_plugin_read_memory_hwaddr",
    ];
    const V6: &[&str] = &[
        TRANS,
        "qemu_plugin_read_memory_vaddr",
        "qemu_plugin_read_memory_hwaddr",
        "qemu_plugin_set_pc",
    ];

    #[test]
    fn each_qemu_gets_a_version_it_accepts() {
        let qemu = |exports, release| declared_version(&Fake { exports, release });
        assert_eq!(qemu(&[], None), 4, "not QEMU at all");
        assert_eq!(qemu(V3, Some((9, 1))), 4, "too old: QEMU refuses 4 itself");
        assert_eq!(qemu(V4, Some((10, 0))), 4);
        assert_eq!(qemu(V5, Some((10, 2))), 4);
        assert_eq!(qemu(V6, Some((11, 0))), 4);
        assert_eq!(qemu(V6, Some((11, 1))), 7);
        assert_eq!(qemu(V6, Some((12, 0))), 7);
        assert_eq!(qemu(V6, None), 7);
    }

    #[test]
    fn banner_release() {
        let text = b"\0\0QEMU emulator version 11.1.3 (Debian 1:11.1.3+ds-2~bpo13+1)\n";
        assert_eq!(parse_banner(text), Some((11, 1)));
        assert_eq!(
            parse_banner(b"QEMU emulator version 10.0.2\n"),
            Some((10, 0))
        );
        assert_eq!(parse_banner(b"QEMU emulator version x"), None);
        assert_eq!(parse_banner(b"nothing"), None);
    }

    #[test]
    fn versions_outside_the_range_are_refused_with_both_ranges() {
        let err = check_installed(8, 8).unwrap_err();
        assert!(err.contains("8 to 8") && err.contains("4 to 7"), "{err}");
        assert!(check_installed(3, 2).is_err());
        assert!(check_installed(6, 2).is_ok());
    }
}
