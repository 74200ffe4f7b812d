//! # amoeba-engine
//!
//! Session setup and the PostgreSQL-protocol server.
//!
//! ```text
//! warehouse ──► amoeba_catalog::Catalog ──► SessionContext (+ pg_catalog) ──► pgwire server
//! ```
//!
//! The ledger, cubes and routing (later issues) plug into the same session.

mod error;
pub mod ledger;
mod pg_functions;
mod server;
mod session;

pub use error::{EngineError, Result};
pub use ledger::Ledger;
pub use server::{parse_listen, serve};
pub use session::{CATALOG_NAME, LedgerMode, new_session, open_session, open_with_ledger};
