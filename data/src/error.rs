//! The crate's error type.
//!
//! Every variant that touches the file system names the file, so that a failed `amoeba gen`
//! says which file it could not write and why.

use std::path::PathBuf;

use datafusion::arrow::error::ArrowError;
use datafusion::parquet::errors::ParquetError;

/// An error of the synthetic generator.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Creating a directory, writing, copying or removing a file failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The Parquet writer failed on a file.
    #[error("Parquet error writing {}: {source}", path.display())]
    Parquet {
        /// The file being written.
        path: PathBuf,
        /// The underlying error.
        source: ParquetError,
    },
    /// Assembling an Arrow record batch failed.
    #[error("Arrow error: {0}")]
    Arrow(#[from] ArrowError),
    /// The options cannot be honoured (scale out of range, output directory not ours, …).
    #[error("invalid generator options: {message}")]
    InvalidOptions {
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A bug in the generator (a row pushed with the wrong column type, a worker that died):
    /// reported instead of panicking.
    #[error("internal generator error in {table}: {message}")]
    Internal {
        /// The table or step that failed.
        table: String,
        /// What went wrong.
        message: String,
    },
}

/// The crate's result type.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DataError {
        let path = path.into();
        move |source| DataError::Io { path, source }
    }

    pub(crate) fn parquet(path: impl Into<PathBuf>) -> impl FnOnce(ParquetError) -> DataError {
        let path = path.into();
        move |source| DataError::Parquet { path, source }
    }

    pub(crate) fn internal(table: impl Into<String>, message: impl Into<String>) -> DataError {
        DataError::Internal {
            table: table.into(),
            message: message.into(),
        }
    }
}
