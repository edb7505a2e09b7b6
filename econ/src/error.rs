//! Typed errors of the economics model.

use std::path::PathBuf;

/// Everything that can go wrong reading assumptions or writing the report.
#[derive(Debug, thiserror::Error)]
pub enum EconError {
    /// The config file is not valid TOML for the model's schema.
    #[error("config is not valid: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value is out of its meaningful range (negative price, share above 1, ...).
    #[error("config field `{field}`: {reason}")]
    Invalid { field: String, reason: String },
    /// A number was given without saying where it comes from.
    #[error("config field `{field}` has no source")]
    NoSource { field: String },
    /// Reading the config or writing the report failed.
    #[error("cannot read or write {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The plotting backend failed.
    #[error("plot {name}: {reason}")]
    Plot { name: String, reason: String },
}

impl EconError {
    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Self {
        EconError::Invalid {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}
