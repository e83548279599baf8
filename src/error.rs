//! Errors of the library, typed so that callers can act on them; rendered once at the edge
//! (the plugin's install function or the command-line tool).

use std::path::PathBuf;

/// Anything that stops the plugin from being installed or a command from running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A plugin argument is unknown, repeated or malformed.
    #[error(transparent)]
    Args(#[from] crate::args::ArgsError),
    /// The kernelinfo file or group cannot be used.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The plugin was loaded somewhere it cannot work.
    #[error("{0}")]
    Unsupported(String),
    /// The event log cannot be created or written.
    #[error("cannot write event log {path}: {source}")]
    Output {
        /// The log file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}
