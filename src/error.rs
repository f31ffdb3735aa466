//! The crate's one error type and its `Result` alias.
//!
//! Every fallible path in the library returns [`Error`]. Each variant carries the context an
//! operator needs to act on it (which key, which file, which limit). The HTTP layer
//! (`api::problem`) maps variants to status codes in one place; nothing else decides statuses.

use std::path::PathBuf;

/// The result type used across reportstore.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside reportstore.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request or document is malformed. The message says what is wrong; `path` is a JSON
    /// pointer into the offending document when one applies.
    #[error("{message}")]
    InvalidInput {
        /// Human-readable, lowercase, names the field or the limit.
        message: String,
        /// JSON pointer to the offending value, `""` for the whole document.
        path: String,
    },
    /// A document failed schema validation; one entry per violation.
    #[error("document failed validation ({} errors)", .0.len())]
    Validation(Vec<FieldError>),
    /// The request body is larger than the configured limit.
    #[error("request body exceeds the limit of {limit_bytes} bytes")]
    PayloadTooLarge {
        /// The limit in force (`--max-body-bytes`).
        limit_bytes: usize,
    },
    /// No such report, user or resource.
    #[error("{0}")]
    NotFound(String),
    /// The id exists with different content: reports are immutable.
    #[error("{0}")]
    Conflict(String),
    /// Missing or wrong credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// The node cannot take the request now (queue full, shutting down, read-only follower).
    /// `retry_after_secs` is sent as `Retry-After`.
    #[error("{message}")]
    Unavailable {
        /// Why the node refused.
        message: String,
        /// Seconds the client should wait before retrying.
        retry_after_secs: u64,
    },
    /// The sled store could not be opened. Never "fixed" by deleting anything: the operator
    /// decides (see README, "When the store does not open").
    #[error("cannot open the store at {path}: {reason}. {hint}")]
    StoreOpen {
        /// The data directory.
        path: PathBuf,
        /// What sled or our format check said.
        reason: String,
        /// What the operator can do next.
        hint: &'static str,
    },
    /// sled returned an error while reading or writing.
    #[error("storage error during {context}: {source}")]
    Storage {
        /// What we were doing (e.g. "group commit", "reading report").
        context: &'static str,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// Stored bytes do not decode: a damaged value or a dictionary this binary does not ship.
    #[error("data corruption in {what}: {detail}")]
    DataCorruption {
        /// Which value (key) was damaged.
        what: String,
        /// What failed.
        detail: String,
    },
    /// A file system operation outside sled failed (data dir, dictionary files).
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The search index (tantivy) failed. The index is derived from the store, so the remedy
    /// is always a rebuild (`reportstore reindex`, or delete the index directory and restart).
    #[error("search index error during {context}: {source}")]
    Index {
        /// What we were doing (e.g. "commit", "search").
        context: &'static str,
        /// tantivy's error.
        #[source]
        source: tantivy::TantivyError,
    },
    /// A bug or an unexpected state; details are logged, never sent to clients.
    #[error("internal error: {0}")]
    Internal(String),
}

/// One schema or field violation, in the CPAN Testers API error shape `{message, path}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// What is wrong, lowercase.
    pub message: String,
    /// JSON pointer to the value.
    pub path: String,
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(message: impl Into<String>, path: impl Into<String>) -> Self {
        Error::InvalidInput {
            message: message.into(),
            path: path.into(),
        }
    }

    /// Shorthand for [`Error::Storage`].
    pub fn storage(context: &'static str, source: sled::Error) -> Self {
        Error::Storage { context, source }
    }

    /// Shorthand for [`Error::DataCorruption`].
    pub fn corruption(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::DataCorruption {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

/// The message a panic was raised with (`panic!("...")` carries a `&str` or a `String`), or
/// `None` for any other payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    payload
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
}
