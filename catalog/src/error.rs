//! The catalog's error type.
//!
//! Errors carry the thing a person has to look at: the mapping file and key, the warehouse
//! URL, the data file and column. Problems with *one data file* are not errors of the catalog:
//! they become [`crate::Rejection`]s, the file is left out and everything else stays served.

use datafusion::error::DataFusionError;

/// The crate's `Result`.
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// What can go wrong opening a warehouse.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The warehouse location cannot be understood.
    #[error("invalid warehouse location '{location}': {reason}")]
    InvalidWarehouse {
        /// As given.
        location: String,
        /// Why.
        reason: String,
    },

    /// A mapping file does not parse or does not describe a valid mapping.
    #[error("mapping {file}: {reason}")]
    InvalidMapping {
        /// The mapping file (built-in name or warehouse path).
        file: String,
        /// What is wrong, naming the key.
        reason: String,
    },

    /// The model file does not parse or is not a valid model.
    #[error("model {file}{}: {}{reason}", line.map(|l| format!(":{l}")).unwrap_or_default(), key.as_deref().map(|k| format!("{k}: ")).unwrap_or_default())]
    InvalidModel {
        /// The model file.
        file: String,
        /// The line (1-based), when known.
        line: Option<usize>,
        /// The key (`assign[1].unit`), when known.
        key: Option<String>,
        /// What is wrong.
        reason: String,
    },

    /// The object store failed (listing, reading a mapping).
    #[error("object store error at {location}: {source}")]
    ObjectStore {
        /// Where.
        location: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },

    /// DataFusion rejected a generated view: a mapping expression that does not plan.
    #[error("mapping {file}, view {view}: {source}")]
    ViewPlan {
        /// The mapping file.
        file: String,
        /// The unified view (or raw table) being defined.
        view: String,
        /// DataFusion's error.
        #[source]
        source: Box<DataFusionError>,
    },

    /// Any other DataFusion error.
    #[error(transparent)]
    DataFusion(#[from] Box<DataFusionError>),
}

impl From<DataFusionError> for CatalogError {
    fn from(e: DataFusionError) -> Self {
        CatalogError::DataFusion(Box::new(e))
    }
}

impl From<datafusion::arrow::error::ArrowError> for CatalogError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        CatalogError::DataFusion(Box::new(DataFusionError::from(e)))
    }
}

impl CatalogError {
    pub(crate) fn model(
        file: &str,
        key: Option<&str>,
        reason: String,
        span: Option<std::ops::Range<usize>>,
        text: &str,
    ) -> Self {
        CatalogError::InvalidModel {
            file: file.to_string(),
            line: span.map(|s| crate::model::line_of(text, s.start)),
            key: key.map(str::to_string),
            reason,
        }
    }

    pub(crate) fn mapping(file: impl Into<String>, reason: impl Into<String>) -> Self {
        CatalogError::InvalidMapping {
            file: file.into(),
            reason: reason.into(),
        }
    }
}
