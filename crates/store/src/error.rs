//! The store's one error type. Its text is for the log: clients get a stable code and a message
//! written for them, never this.

use std::sync::Arc;

use crate::record::FORMAT_VERSION;

/// What a failure below the store was (the database's own error), kept as the source of a
/// [`StoreError`] for the log; no backend's types cross the storage boundary.
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// A storage failure.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened, created or reached.
    #[error("cannot open the database {location}: {source}")]
    Open {
        /// The file, or the server (without its password).
        location: String,
        /// Why.
        #[source]
        source: Cause,
    },
    /// The store's configuration (a `--store` URL) is not usable.
    #[error("the store {0}")]
    Config(String),
    /// A read failed.
    #[error("cannot read the database: {0}")]
    Read(#[source] Cause),
    /// A write failed; nothing of it was written.
    #[error("cannot write the database: {0}")]
    Write(#[source] Cause),
    /// A stored record does not decode.
    #[error("corrupt record in {table}: {source}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The decoding error.
        #[source]
        source: Cause,
    },
    /// An index names an execution whose record is missing.
    #[error("execution {id} is indexed but has no record")]
    Dangling {
        /// The execution.
        id: String,
    },
    /// A record could not be encoded; nothing was written.
    #[error("cannot encode a record for {table}: {source}")]
    Encode {
        /// The table.
        table: &'static str,
        /// The encoding error.
        #[source]
        source: Cause,
    },
    /// The database was written by a newer hookflow, in a format this one cannot read.
    #[error(
        "the database {location} is in format {found}, newer than this hookflow reads ({FORMAT_VERSION}): run the newer version"
    )]
    NewerFormat {
        /// The file or server.
        location: String,
        /// The format it records.
        found: u64,
    },
    /// The writer is gone (the store is shutting down).
    #[error("the store is closed")]
    Closed,
    /// Writes fail (disk full, I/O error, the database server unreachable) and the store is
    /// recovering; nothing was written. It is retried at least every [`crate::RECOVERY_INTERVAL`].
    #[error("the store cannot write since a write failed ({0}); retrying")]
    Unavailable(#[source] Arc<StoreError>),
}

impl StoreError {
    /// Whether the store refuses writes for now and will take them again once it recovers
    /// (a failed write, or shutting down), as opposed to a failure of this one operation.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Closed)
    }
}
