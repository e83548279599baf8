//! The GLib key-file format (`[group]`, `key = value`, `#` comments), read with GLib's own
//! parser so that files PANDA users made by hand are read exactly as PANDA reads them.

use std::path::{Path, PathBuf};

/// Why a kernelinfo file or one of its values cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read or is not a key file.
    #[error("cannot read kernelinfo file {file}: {why}")]
    Unreadable {
        /// The file.
        file: PathBuf,
        /// GLib's reason.
        why: String,
    },
    /// The requested group is not in the file.
    #[error("kernelinfo file {file} has no group '{group}': groups are {available}")]
    NoGroup {
        /// The file.
        file: PathBuf,
        /// The group asked for.
        group: String,
        /// The groups present, comma-separated.
        available: String,
    },
    /// A required key is absent from the group.
    #[error("kernelinfo file {file}, group [{group}]: missing key '{key}'")]
    MissingKey {
        /// The file.
        file: PathBuf,
        /// The group.
        group: String,
        /// The key.
        key: String,
    },
    /// A key's value does not mean what the key needs.
    #[error("kernelinfo file {file}, group [{group}]: key '{key}' = '{value}' is invalid: {why}")]
    BadValue {
        /// The file.
        file: PathBuf,
        /// The group.
        group: String,
        /// The key.
        key: String,
        /// The value found.
        value: String,
        /// What was expected.
        why: String,
    },
}

/// A loaded key file, remembering its path for error messages.
pub struct KeyFile {
    path: PathBuf,
    inner: glib::KeyFile,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile").field("path", &self.path).finish()
    }
}

impl KeyFile {
    /// Loads and parses `path`.
    pub fn load(path: &Path) -> Result<KeyFile, ConfigError> {
        // A path with a NUL names no file (glib-rs would panic converting it).
        if std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()).contains(&0) {
            return Err(ConfigError::Unreadable {
                file: path.to_path_buf(),
                why: "a path with a NUL byte names no file".into(),
            });
        }
        let inner = glib::KeyFile::new();
        let loaded = inner.load_from_file(path, glib::KeyFileFlags::NONE);
        KeyFile::checked(path, inner, loaded)
    }

    /// Parses `text`, named `origin` in messages (the generator checks its own output).
    pub fn parse(text: &str, origin: &Path) -> Result<KeyFile, ConfigError> {
        // GLib takes the text as a C string: one with a NUL cannot be handed over (glib-rs
        // panics on it), and is no key file anyway. Found by fuzzing.
        if let Some(at) = text.find('\0') {
            return Err(ConfigError::Unreadable {
                file: origin.to_path_buf(),
                why: format!("a NUL byte at offset {at}: a key file is text"),
            });
        }
        let inner = glib::KeyFile::new();
        let loaded = inner.load_from_data(text, glib::KeyFileFlags::NONE);
        KeyFile::checked(origin, inner, loaded)
    }

    /// The key file `inner` read from `path`, if reading it went well and it has groups.
    fn checked(
        path: &Path,
        inner: glib::KeyFile,
        loaded: Result<(), glib::Error>,
    ) -> Result<KeyFile, ConfigError> {
        loaded.map_err(|err| ConfigError::Unreadable {
            file: path.to_path_buf(),
            why: err.message().to_string(),
        })?;
        let file = KeyFile {
            path: path.to_path_buf(),
            inner,
        };
        if file.groups().is_empty() {
            return Err(ConfigError::Unreadable {
                file: file.path,
                why: "it has no groups: a kernelinfo file holds one [group] per kernel".into(),
            });
        }
        Ok(file)
    }

    /// The file this was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The groups in file order.
    pub fn groups(&self) -> Vec<String> {
        self.inner.groups().iter().map(|g| g.to_string()).collect()
    }

    /// Fails with [`ConfigError::NoGroup`], listing the groups present, unless `group`
    /// exists.
    pub fn require_group(&self, group: &str) -> Result<(), ConfigError> {
        if c_string(group) && self.inner.has_group(group) {
            return Ok(());
        }
        Err(ConfigError::NoGroup {
            file: self.path.clone(),
            group: group.to_string(),
            available: self.groups().join(", "),
        })
    }

    /// The keys of `group` in file order; empty if the group is absent.
    pub fn keys(&self, group: &str) -> Vec<String> {
        if !c_string(group) {
            return Vec::new();
        }
        self.inner
            .keys(group)
            .map(|keys| keys.iter().map(|k| k.to_string()).collect())
            .unwrap_or_default()
    }

    /// The raw string value of `key` in `group`, `None` if absent. Values are read as
    /// strings because GLib's integer getters accept base 10 only.
    pub fn get(&self, group: &str, key: &str) -> Option<String> {
        if !c_string(group) || !c_string(key) {
            return None;
        }
        self.inner
            .value(group, key)
            .ok()
            .map(|v| v.trim().to_string())
    }
}

/// Whether `s` can be handed to GLib, which takes C strings: a group or key name with a NUL
/// is in no key file (and glib-rs would panic converting it).
fn c_string(s: &str) -> bool {
    !s.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("vmi-keyfile-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn groups_values_and_comments() {
        let path = write("ok.conf", "# c\n[a]\nx = 0x10\n#y = 1\n[b:c]\nz=3\n");
        let kf = KeyFile::load(&path).unwrap();
        assert_eq!(kf.groups(), vec!["a", "b:c"]);
        assert_eq!(kf.get("a", "x").as_deref(), Some("0x10"));
        assert_eq!(kf.get("a", "y"), None);
        assert_eq!(kf.get("b:c", "z").as_deref(), Some("3"));
        let err = kf.require_group("nope").unwrap_err().to_string();
        assert!(
            err.contains("no group 'nope'") && err.contains("a, b:c"),
            "{err}"
        );
        std::fs::remove_file(path).unwrap();
    }

    /// Found by fuzzing (fuzz/fuzz_targets/kernelinfo.rs): text with a NUL byte panicked
    /// in glib-rs's conversion to a C string instead of being refused.
    #[test]
    fn text_with_a_nul_is_refused_not_a_panic() {
        let origin = Path::new("fuzz.conf");
        let err = KeyFile::parse("[a]\nx = 1\n\0y = 2\n", origin).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read kernelinfo file fuzz.conf: a NUL byte at offset 10: a key file is text"
        );
        assert!(KeyFile::parse("\0", origin).is_err());
        // Names with a NUL are in no file, whatever the caller passes.
        let kf = KeyFile::parse("[a]\nx = 1\n", origin).unwrap();
        assert!(kf.require_group("a\0").is_err());
        assert!(kf.require_group("a").is_ok());
        assert_eq!(kf.get("a\0", "x"), None);
        assert_eq!(kf.get("a", "x\0"), None);
        assert_eq!(kf.get("a", "x").as_deref(), Some("1"));
        assert!(kf.keys("a\0").is_empty());
        assert_eq!(kf.keys("a"), vec!["x"]);
        assert!(KeyFile::load(Path::new("/tmp/a\0.conf")).is_err());
    }

    #[test]
    fn missing_and_malformed_files() {
        let err = KeyFile::load(Path::new("/no/such/kernelinfo.conf")).unwrap_err();
        assert!(
            err.to_string().contains("/no/such/kernelinfo.conf"),
            "{err}"
        );
        let path = write("bad.conf", "this is not a key file\n");
        assert!(KeyFile::load(&path).is_err());
        std::fs::remove_file(path).unwrap();
    }
}
