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

    /// The warehouse has no model to build a ledger with.
    #[error(
        "warehouse {warehouse} has no model: write model/model.toml (`amoeba gen` writes the default one)"
    )]
    NoModel {
        /// The warehouse location.
        warehouse: String,
    },

    /// The session could not be set up.
    #[error("session setup: {reason}")]
    Setup {
        /// What went wrong.
        reason: String,
    },

    /// The ledger build failed.
    #[error("ledger: {reason}")]
    Ledger {
        /// What went wrong, naming the step.
        reason: String,
    },

    /// A cube could not be refreshed or read.
    #[error("cube {cube}: {reason}")]
    Cube {
        /// The cube's name.
        cube: String,
        /// What went wrong.
        reason: String,
    },

    /// Writing to or reading from the warehouse failed.
    #[error("object store error at {location}: {source}")]
    Store {
        /// Where.
        location: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },

    /// The listen address does not parse.
    #[error("invalid listen address '{listen}': expected host:port")]
    InvalidListen {
        /// As given.
        listen: String,
    },
}

impl EngineError {
    pub(crate) fn setup(reason: impl Into<String>) -> Self {
        EngineError::Setup {
            reason: reason.into(),
        }
    }

    pub(crate) fn ledger(reason: impl Into<String>) -> Self {
        EngineError::Ledger {
            reason: reason.into(),
        }
    }
}

impl From<datafusion::arrow::error::ArrowError> for EngineError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        EngineError::DataFusion(Box::new(DataFusionError::from(e)))
    }
}

impl From<DataFusionError> for EngineError {
    fn from(e: DataFusionError) -> Self {
        EngineError::DataFusion(Box::new(e))
    }
}
