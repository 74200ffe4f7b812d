//! The errors a client sees: PostgreSQL's severity, SQLSTATE and message, made in one place
//! (`error(code, message)`, `fatal(code, message)`), as DataFusion's `plan_err!` family does for
//! its own errors.

use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError};

/// An `ERROR` with SQLSTATE `code`: the statement fails, the connection goes on.
pub(crate) fn error(code: &str, message: impl Into<String>) -> PgWireError {
    with_severity("ERROR", code, message.into())
}

/// A `FATAL` with SQLSTATE `code`: the connection ends (authentication, start-up).
pub(crate) fn fatal(code: &str, message: impl Into<String>) -> PgWireError {
    with_severity("FATAL", code, message.into())
}

fn with_severity(severity: &str, code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        severity.to_string(),
        code.to_string(),
        message,
    )))
}
