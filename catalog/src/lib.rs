//! # amoeba-catalog
//!
//! Turns a warehouse of platform exports into queryable, unified tables.
//!
//! ```text
//! warehouse (local dir or s3://)        mappings (catalog/mappings/*.toml, model/mappings/*.toml)
//!   exports/<platform>/<kind>/shop=…/dt=…/*.parquet        │
//!   erp/…  logistics/…  finance/…                          │
//!        │ discovery: classify, read footers, check columns │
//!        ▼                                                  ▼
//!   served files ──► raw tables (de-duplicated by natural key) ──► unified views
//!   rejected files (path + reason)          amoeba_files, amoeba_rejected_rows
//! ```
//!
//! - [`Warehouse`]: where the files are (object_store; local or S3).
//! - [`Mapping`]: one platform's columns → the unified columns, as data.
//! - [`unified`]: the unified views' names and types — the contract with the ledger.
//! - [`Catalog`]: a snapshot of a warehouse, registered into a DataFusion session.
//!
//! Bad files never take the catalog down: a file that cannot be read or does not match its
//! mapping is rejected with a reason naming the file and the column, and everything else is
//! served. A bad *mapping* is an error, naming the mapping file, line and key.

mod catalog;
pub mod cube;
pub mod discovery;
mod error;
pub mod mapping;
pub mod model;
pub mod schedule;
mod source_table;
pub mod unified;
pub mod users;
mod warehouse;

pub use catalog::{
    Catalog, MAPPINGS_DIR, PartSource, PlatformPart, RAW_SCHEMA, register_over_mapped,
};
pub use cube::{CubeDef, Dimension};
pub use discovery::{Rejection, SourceFile};
pub use error::{CatalogError, Result};
pub use mapping::Mapping;
pub use model::{MODEL_FILE, Model};
pub use source_table::{PARTITION_COLUMNS, SourceTable};
pub use unified::{UNIFIED_VIEWS, UnifiedColumn, UnifiedType, UnifiedView, unified_view};
pub use users::{Role, User};
pub use warehouse::Warehouse;
