//! The crate's one error type.
//!
//! Every failure a function can meet at planning or execution time is a [`UdfError`]; it is
//! turned into a [`DataFusionError`] at the boundary with DataFusion, so the client sees a plain
//! SQL error (`ERROR: allocate_exact: …`) and never a panic.

use datafusion::arrow::datatypes::DataType;
use datafusion::error::DataFusionError;

/// The crate's `Result`.
pub type Result<T, E = UdfError> = std::result::Result<T, E>;

/// What can go wrong in one of Amoeba's functions.
#[derive(Debug, thiserror::Error)]
pub enum UdfError {
    /// The function was called with the wrong number of arguments.
    #[error("{function}: expected {expected} argument(s), got {got}")]
    ArgCount {
        /// The SQL name of the function.
        function: &'static str,
        /// How many it takes.
        expected: usize,
        /// How many it was given.
        got: usize,
    },

    /// An argument has a type the function does not accept.
    #[error("{function}: argument {position} ({name}) cannot be {data_type}: {expected}")]
    ArgType {
        /// The SQL name of the function.
        function: &'static str,
        /// 1-based position of the argument.
        position: usize,
        /// The argument's documented name.
        name: &'static str,
        /// The type it was given.
        data_type: DataType,
        /// What it accepts.
        expected: &'static str,
    },

    /// A decimal result does not fit in DECIMAL(38, s).
    #[error("{function}: numeric overflow ({what})")]
    Overflow {
        /// The SQL name of the function.
        function: &'static str,
        /// Which computation overflowed.
        what: &'static str,
    },

    /// The input violates the function's contract (e.g. two different pools in one partition).
    #[error("{function}: {message}")]
    InvalidInput {
        /// The SQL name of the function.
        function: &'static str,
        /// What is wrong, in the analyst's terms.
        message: String,
    },

    /// Arrow or DataFusion failed underneath (a cast, building an array, a table).
    #[error(transparent)]
    DataFusion(#[from] Box<DataFusionError>),
}

impl From<DataFusionError> for UdfError {
    fn from(e: DataFusionError) -> Self {
        UdfError::DataFusion(Box::new(e))
    }
}

impl From<datafusion::arrow::error::ArrowError> for UdfError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        UdfError::DataFusion(Box::new(DataFusionError::ArrowError(Box::new(e), None)))
    }
}

impl From<UdfError> for DataFusionError {
    fn from(e: UdfError) -> Self {
        match e {
            UdfError::DataFusion(inner) => *inner,
            UdfError::ArgCount { .. } | UdfError::ArgType { .. } => {
                DataFusionError::Plan(e.to_string())
            }
            other => DataFusionError::Execution(other.to_string()),
        }
    }
}
