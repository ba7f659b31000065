use std::path::PathBuf;

/// Why generating, reading or writing a data set failed. Every variant that
/// concerns a file names it; none carries personal data.
#[derive(Debug, thiserror::Error)]
pub enum DatagenError {
    #[error("invalid generator settings: {0}")]
    Config(String),
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a valid {what}: {message}", path.display())]
    Format {
        path: PathBuf,
        what: &'static str,
        message: String,
    },
    #[error(transparent)]
    Catalog(#[from] billing::CatalogError),
    #[error("PII keyring: {0}")]
    Keyring(#[from] domain::pii::PiiError),
    /// A generated customer breaks a rule even after re-drawing (e.g. a quiet
    /// window that leaves no slot at all).
    #[error("generated {0}")]
    Customer(#[from] domain::CustomerError),
}

impl DatagenError {
    pub(crate) fn io(path: impl Into<PathBuf>, action: &'static str, source: std::io::Error) -> Self {
        DatagenError::Io {
            path: path.into(),
            action,
            source,
        }
    }
}
