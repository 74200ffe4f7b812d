//! # amoeba-engine
//!
//! Session setup and the PostgreSQL-protocol server.
//!
//! ```text
//! warehouse ──► amoeba_catalog::Catalog ──► SessionContext (+ pg_catalog) ──► pgwire server
//! ```
//!
//! The ledger (`ledger`) and the cubes (`cube`) plug into the same session.

mod aggregate_rewrite;
mod balance_scan;
pub mod cube;
mod eager_aggregate;
mod error;
mod fingerprint;
pub mod inputs;
pub mod ledger;
mod like_prefix;
mod narrow_pnl;
mod objects;
mod pg_compat;
mod pg_expandarray;
mod pg_functions;
mod refresher;
mod rollup_aggregate;
mod run_aggregate;
mod runtime;
mod server;
mod session;
mod shared_subplan;

pub use error::{EngineError, Result};
pub use ledger::{Closure, Ledger};
pub use refresher::Refresher;
pub use runtime::query_runtime;
pub use server::{
    Auth, Credentials, ScramVerifier, ServerConfig, parse_listen, serve, serve_refreshing,
};
pub use session::{
    CATALOG_NAME, LedgerMode, Served, new_session, open_published, open_session, open_with_ledger,
    refresh_published,
};
