//! # amoeba-udfs
//!
//! Amoeba's domain functions for DataFusion — the KPIs of `spec/pnl.md`, exact allocation and
//! costing — as vectorized Arrow kernels with no I/O, usable directly in SQL (psql, BI tools,
//! prepared statements) and by the ledger and the cubes themselves.
//!
//! ```text
//!                     register_all(&ctx)
//!                            │
//!        ┌───────────────────┼──────────────────────┬──────────────────────────┐
//!        ▼                   ▼                      ▼                          ▼
//!  kpi (scalar)        allocate (window)      costing (window)       catalog (table)
//!  gross_margin …      allocate_exact         fifo_cost              amoeba_functions:
//!  roi, roas, aov …    allocate_exact_pct     mwa_cost               name, kind, signature,
//!  safe_div            (largest remainder)    moving_avg_cost        return_type, description,
//!        │                   │                      │                example
//!        └────────── coerce_types: DECIMAL(38,s) for money, DOUBLE for ratios ──────┘
//!                    one typed loop over the Arrow buffers per batch / partition
//! ```
//!
//! - [`kpi`]: ratios (`DOUBLE`) and money per unit (`DECIMAL(38,4)`); NULL for a zero or NULL
//!   denominator, never an error or infinity.
//! - [`allocate`]: shares in cents that sum to the pool exactly, independent of input order
//!   (ties by the window's ORDER BY); a negative pool is the mirror image of the positive one.
//! - [`costing`]: FIFO and moving weighted average over a sequence of stock movements.
//! - Every function carries its [`Documentation`](datafusion::logical_expr::Documentation)
//!   (`SHOW FUNCTIONS`, `information_schema.routines`) and is listed in `amoeba_functions`.
//!
//! Money is `Decimal128` and computed in `i128` with checked arithmetic: an overflow is a SQL
//! error ([`UdfError`]), never a panic or a wrapped value.

pub mod allocate;
mod catalog;
pub mod costing;
mod error;
pub mod kpi;
mod num;
mod types;

use std::sync::Arc;

use datafusion::logical_expr::{ScalarUDF, WindowUDF};
use datafusion::prelude::SessionContext;

pub use allocate::allocate_exact;
pub use catalog::TABLE_NAME;
pub use error::{Result, UdfError};

/// Every scalar function of the library (the KPIs).
pub fn scalar_udfs() -> Vec<ScalarUDF> {
    kpi::udfs()
}

/// Every window function of the library (allocation and costing).
pub fn window_udfs() -> Vec<WindowUDF> {
    let mut all = allocate::udwfs();
    all.extend(costing::udwfs());
    all
}

/// Registers every function and the `amoeba_functions` table (in the session's default catalog
/// and schema) in `ctx`.
///
/// # Errors
/// When the table cannot be registered (e.g. the default schema does not exist).
pub fn register_all(ctx: &SessionContext) -> Result<()> {
    for f in scalar_udfs() {
        ctx.register_udf(f);
    }
    for f in window_udfs() {
        ctx.register_udwf(f);
    }
    ctx.register_table(TABLE_NAME, Arc::new(catalog::table()?))?;
    Ok(())
}
