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
        let inner = glib::KeyFile::new();
        let loaded = inner.load_from_file(path, glib::KeyFileFlags::NONE);
        KeyFile::checked(path, inner, loaded)
    }

    /// Parses `text`, named `origin` in messages (the generator checks its own output).
    pub fn parse(text: &str, origin: &Path) -> Result<KeyFile, ConfigError> {
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
        if self.inner.has_group(group) {
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
        self.inner
            .keys(group)
            .map(|keys| keys.iter().map(|k| k.to_string()).collect())
            .unwrap_or_default()
    }

    /// The raw string value of `key` in `group`, `None` if absent. Values are read as
    /// strings because GLib's integer getters accept base 10 only.
    pub fn get(&self, group: &str, key: &str) -> Option<String> {
        self.inner
            .value(group, key)
            .ok()
            .map(|v| v.trim().to_string())
    }
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
