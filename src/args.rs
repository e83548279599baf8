//! Plugin arguments: QEMU hands the plugin `key=value` strings from
//! `-plugin libvmi.so,key=value,...`; this module turns them into typed, validated
//! [`Options`]. Pure: no file is opened here.

use std::path::PathBuf;

/// A key the plugin accepts. The parser matches on this enum, so a key added here without
/// a way to parse it is a compile error, and [`Key::ALL`] is also what the unknown-key
/// message lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// `conf=`
    Conf,
    /// `group=`
    Group,
    /// `out=`
    Out,
    /// `log=`
    Log,
    /// `syscalls=`
    Syscalls,
    /// `events=`
    Events,
    /// `snapshot=`
    Snapshot,
    /// `icount=`
    Icount,
    /// `probe=`
    Probe,
}

impl Key {
    /// Every key, with its name and what it is for, in the order the README lists them.
    pub const ALL: [(Key, &'static str, &'static str); 9] = [
        (Key::Conf, "conf", "kernelinfo file (PANDA key-file format)"),
        (
            Key::Group,
            "group",
            "group of the kernelinfo file describing the guest kernel",
        ),
        (Key::Out, "out", "JSON Lines event log (default vmi.jsonl)"),
        (
            Key::Log,
            "log",
            "log level: off|error|warn|info|debug|trace (default warn)",
        ),
        (
            Key::Syscalls,
            "syscalls",
            "which calls are logged: all, none or names joined by ':'",
        ),
        (
            Key::Events,
            "events",
            "process and thread events: on|off (default on)",
        ),
        (
            Key::Snapshot,
            "snapshot",
            "program whose exec writes a snapshot (default vmi-snapshot)",
        ),
        (
            Key::Icount,
            "icount",
            "per-vCPU instruction positions in records: on|off",
        ),
        (
            Key::Probe,
            "probe",
            "diagnostics: kernel address of a string to read on every system call",
        ),
    ];

    /// The key called `name`.
    pub fn named(name: &str) -> Option<Key> {
        Key::ALL
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(k, _, _)| *k)
    }

    /// Every key's name, comma-separated.
    pub fn names() -> String {
        Key::ALL.map(|(_, n, _)| n).join(", ")
    }
}

/// Validated plugin options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `conf=`: the kernelinfo file.
    pub conf: Option<PathBuf>,
    /// `group=`: the group inside `conf` that describes the guest kernel.
    pub group: Option<String>,
    /// `out=`: where the JSON Lines event log goes.
    pub out: PathBuf,
    /// `log=`: how much the plugin says on stderr.
    pub log: log::LevelFilter,
    /// `syscalls=`: which system calls become `syscall` records.
    pub syscalls: SyscallFilter,
    /// `events=`: whether process and thread events are tracked and logged.
    pub events: bool,
    /// `icount=`: count every executed instruction per vCPU (an inline add), so that each
    /// record carries a position that is identical across replays of one recording.
    pub icount: bool,
    /// `snapshot=`: when a process executes a program of this name, the plugin writes a
    /// `snapshot` record (processes, threads, modules).
    pub snapshot: String,
    /// `probe=`: a guest virtual address whose NUL-terminated string is read at every
    /// system call instruction; proves guest-memory reads work and stay stable.
    pub probe: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            conf: None,
            group: None,
            out: PathBuf::from("vmi.jsonl"),
            log: log::LevelFilter::Warn,
            snapshot: "vmi-snapshot".to_string(),
            syscalls: SyscallFilter::All,
            events: true,
            icount: false,
            probe: None,
        }
    }
}

/// What is wrong with the arguments; each message names the argument and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// An argument without `=`.
    #[error("plugin argument '{0}' has no value: write it as key=value")]
    NoValue(String),
    /// A key the plugin does not know.
    #[error("unknown plugin argument '{key}': known arguments are {known}")]
    UnknownKey {
        /// The key given.
        key: String,
        /// The keys accepted, comma-separated.
        known: String,
    },
    /// `out=` names the kernelinfo file, which writing the log would destroy.
    #[error(
        "plugin argument out={0} names the kernelinfo file given as conf=: choose another file for the log"
    )]
    OutIsConf(String),
    /// A key given twice.
    #[error("plugin argument '{0}' is given twice: give it once")]
    Repeated(String),
    /// A value that does not parse.
    #[error("plugin argument {key}={value} is invalid: expected {expected}")]
    BadValue {
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// What would have been accepted.
        expected: &'static str,
    },
}

impl Options {
    /// Parses `key=value` arguments as QEMU passes them.
    pub fn parse<I, S>(args: I) -> Result<Options, ArgsError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Options::parse_with(args, &[])
    }

    /// [`Options::parse`] for a plugin built on vmi that has its own keys (`plugin_keys`,
    /// name and what it is for): they are not parsed here, but an unknown key's message
    /// lists them with vmi's.
    pub fn parse_with<I, S>(args: I, plugin_keys: &[(&str, &str)]) -> Result<Options, ArgsError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut options = Options::default();
        let mut seen: Vec<String> = Vec::new();
        for arg in args {
            let arg = arg.as_ref();
            let (key, value) = arg
                .split_once('=')
                .ok_or_else(|| ArgsError::NoValue(arg.to_string()))?;
            if seen.iter().any(|k| k == key) {
                return Err(ArgsError::Repeated(key.to_string()));
            }
            seen.push(key.to_string());
            let bad = |expected| ArgsError::BadValue {
                key: key.to_string(),
                value: value.to_string(),
                expected,
            };
            let Some(k) = Key::named(key) else {
                let mut known = Key::names();
                for (name, _) in plugin_keys {
                    known.push_str(", ");
                    known.push_str(name);
                }
                return Err(ArgsError::UnknownKey {
                    key: key.to_string(),
                    known,
                });
            };
            let non_empty = || {
                (!value.is_empty())
                    .then_some(value)
                    .ok_or_else(|| bad("a non-empty value"))
            };
            match k {
                Key::Conf => options.conf = Some(PathBuf::from(non_empty()?)),
                Key::Group => options.group = Some(non_empty()?.to_string()),
                Key::Out => options.out = PathBuf::from(non_empty()?),
                Key::Syscalls => options.syscalls = SyscallFilter::parse(value).map_err(&bad)?,
                Key::Events => options.events = on_off(value).ok_or_else(|| bad("on or off"))?,
                Key::Icount => options.icount = on_off(value).ok_or_else(|| bad("on or off"))?,
                Key::Snapshot if !value.is_empty() && !value.contains('/') => {
                    options.snapshot = value.to_string()
                }
                Key::Snapshot => return Err(bad("a program name without '/'")),
                Key::Log => {
                    options.log = value
                        .parse()
                        .map_err(|_| bad("one of error, warn, info, debug, trace, off"))?
                }
                Key::Probe => {
                    options.probe = Some(parse_u64(value).ok_or_else(|| bad("an address"))?)
                }
            }
        }
        if let Some(conf) = &options.conf
            && *conf == options.out
        {
            return Err(ArgsError::OutIsConf(conf.display().to_string()));
        }
        Ok(options)
    }
}

/// Which system calls the plugin logs (it follows all of them regardless, for process
/// events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyscallFilter {
    /// Every call.
    All,
    /// None.
    None,
    /// Only these names (as the prototype tables name them, e.g. `openat`).
    Names(Vec<String>),
}

impl SyscallFilter {
    fn parse(value: &str) -> Result<SyscallFilter, &'static str> {
        const EXPECTED: &str = "all, none, or ':'-separated system call names known to the tables";
        match value {
            "all" => Ok(SyscallFilter::All),
            "none" => Ok(SyscallFilter::None),
            _ => {
                let names: Vec<String> = value.split(':').map(str::to_string).collect();
                if names.iter().all(|n| SyscallFilter::named(n).is_some()) {
                    Ok(SyscallFilter::Names(names))
                } else {
                    Err(EXPECTED)
                }
            }
        }
    }

    /// The calls named `name`, if it is a name some table knows (`openat`).
    pub fn named(name: &str) -> Option<SyscallFilter> {
        crate::syscalls::Profile::ALL
            .iter()
            .any(|p| p.by_name(name).is_some())
            .then(|| SyscallFilter::Names(vec![name.to_string()]))
    }

    /// Whether calls named `name` are logged.
    pub fn logs(&self, name: Option<&str>) -> bool {
        match self {
            SyscallFilter::All => true,
            SyscallFilter::None => false,
            SyscallFilter::Names(names) => name.is_some_and(|n| names.iter().any(|x| x == n)),
        }
    }
}

/// `on`/`off` (and the usual synonyms).
fn on_off(value: &str) -> Option<bool> {
    match value {
        "on" | "all" | "true" | "yes" => Some(true),
        "off" | "none" | "false" | "no" => Some(false),
        _ => None,
    }
}

/// Parses a decimal or `0x`-prefixed hexadecimal number.
pub fn parse_u64(text: &str) -> Option<u64> {
    let text = text.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_arguments() {
        let options = Options::parse(Vec::<String>::new()).unwrap();
        assert_eq!(options, Options::default());
        assert_eq!(options.out, PathBuf::from("vmi.jsonl"));
    }

    #[test]
    fn every_key_parses() {
        let options = Options::parse([
            "conf=k.conf",
            "group=debian:6.1:64",
            "out=/tmp/x.jsonl",
            "log=debug",
            "probe=0xffffffff81e00100",
            "snapshot=snap",
        ])
        .unwrap();
        assert_eq!(options.conf, Some(PathBuf::from("k.conf")));
        assert_eq!(options.group.as_deref(), Some("debian:6.1:64"));
        assert_eq!(options.out, PathBuf::from("/tmp/x.jsonl"));
        assert_eq!(options.log, log::LevelFilter::Debug);
        assert_eq!(options.probe, Some(0xffff_ffff_81e0_0100));
        assert_eq!(options.snapshot, "snap");
    }

    #[test]
    fn errors_name_the_argument() {
        let err = Options::parse(["colour=blue"]).unwrap_err();
        assert!(err.to_string().contains("'colour'"), "{err}");
        assert!(err.to_string().contains("conf, group, out"), "{err}");
        assert!(Options::parse(["snapshot=/bin/x"]).is_err());
        assert!(Options::parse(["syscalls=openat:nosuchcall"]).is_err());
        let f = Options::parse(["syscalls=openat:execve"]).unwrap().syscalls;
        assert!(f.logs(Some("openat")) && !f.logs(Some("read")) && !f.logs(None));
        assert!(
            !Options::parse(["syscalls=none"])
                .unwrap()
                .syscalls
                .logs(Some("read"))
        );
        let err = Options::parse(["log=loud"]).unwrap_err();
        assert!(err.to_string().contains("log=loud"), "{err}");
        assert_eq!(
            Options::parse(["out"]).unwrap_err(),
            ArgsError::NoValue("out".into())
        );
        assert_eq!(
            Options::parse(["out=a", "out=b"]).unwrap_err(),
            ArgsError::Repeated("out".into())
        );
        assert!(matches!(
            Options::parse(["conf="]).unwrap_err(),
            ArgsError::BadValue { .. }
        ));
        assert!(matches!(
            Options::parse(["probe=zz"]).unwrap_err(),
            ArgsError::BadValue { .. }
        ));
        assert_eq!(
            Options::parse(["conf=k.conf", "out=k.conf"]).unwrap_err(),
            ArgsError::OutIsConf("k.conf".into())
        );
    }

    #[test]
    fn the_unknown_key_message_lists_every_key() {
        let err = Options::parse(["colour=blue"]).unwrap_err().to_string();
        for (key, name, _) in Key::ALL {
            assert!(err.contains(name), "{err} lacks {name}");
            assert_eq!(Key::named(name), Some(key));
        }
    }

    #[test]
    fn numbers_in_both_bases() {
        assert_eq!(parse_u64("0x10"), Some(16));
        assert_eq!(parse_u64("16"), Some(16));
        assert_eq!(parse_u64("0xg"), None);
        assert_eq!(parse_u64(""), None);
    }
}
