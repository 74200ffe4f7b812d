//! The engine's error type.

use datafusion::error::DataFusionError;

/// The crate's `Result`.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// What can go wrong setting up or running the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The warehouse could not be opened or mapped.
    #[error(transparent)]
    Catalog(#[from] amoeba_catalog::CatalogError),

    /// A query or session setup failed.
    #[error(transparent)]
    DataFusion(#[from] Box<DataFusionError>),

    /// The server could not listen or failed.
    #[error("server on {listen}: {source}")]
    Server {
        /// The address it was to listen on.
        listen: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The listen address does not parse.
    #[error("invalid listen address '{listen}': expected host:port")]
    InvalidListen {
        /// As given.
        listen: String,
    },
}

impl From<DataFusionError> for EngineError {
    fn from(e: DataFusionError) -> Self {
        EngineError::DataFusion(Box::new(e))
    }
}
