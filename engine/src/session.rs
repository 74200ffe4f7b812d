//! Session setup: one DataFusion `SessionContext` with the warehouse's catalog, Amoeba's
//! functions and the PostgreSQL system catalog (`pg_catalog`, `information_schema`) that
//! psql and BI tools introspect.

use std::sync::Arc;

use amoeba_catalog::{Catalog, Warehouse};
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_postgres::auth::AuthManager;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;

use crate::error::Result;
use crate::ledger::Ledger;
use crate::pg_functions;

/// The catalog name DataFusion registers tables under (`current_database()`).
pub const CATALOG_NAME: &str = "amoeba";

/// A new session configured for Amoeba, with Amoeba's functions (no tables yet).
pub fn new_session() -> Result<SessionContext> {
    let config = SessionConfig::new()
        .with_information_schema(true)
        .with_default_catalog_and_schema(CATALOG_NAME, "public")
        .with_create_default_catalog_and_schema(true);
    let ctx = SessionContext::new_with_config(config);
    // Amoeba's functions (KPIs, allocation, costing) and the `amoeba_functions` table.
    amoeba_udfs::register_all(&ctx).map_err(DataFusionError::from)?;
    Ok(ctx)
}

/// Opens `warehouse` and returns a session serving its unified views (no ledger), with the
/// catalog snapshot.
pub async fn open_session(warehouse: Warehouse) -> Result<(SessionContext, Catalog)> {
    let catalog = Catalog::open(warehouse).await?;
    let ctx = new_session()?;
    catalog.register(&ctx).await?;
    setup_pg_catalog(&ctx, CATALOG_NAME, Arc::new(AuthManager::default()))?;
    pg_functions::register(&ctx).await?;
    Ok((ctx, catalog))
}

/// What to do with the ledger when opening a warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerMode {
    /// Build it and keep it in memory.
    InMemory,
    /// Build it, write it into the warehouse as a new version and serve it from there.
    Publish,
}

/// Opens `warehouse` and returns a session serving its views and, when the warehouse has a
/// model, its ledger (`pnl_ledger`, `pnl`, `amoeba_units`, `amoeba_checks`).
pub async fn open_with_ledger(
    warehouse: Warehouse,
    mode: LedgerMode,
) -> Result<(SessionContext, Catalog, Option<Ledger>)> {
    let catalog = Catalog::open(warehouse).await?;
    let ctx = new_session()?;
    catalog.register(&ctx).await?;
    let ledger = match catalog.model() {
        Some(_) => {
            let ledger = Ledger::build(&catalog).await?;
            match mode {
                LedgerMode::InMemory => ledger.register(&ctx).await?,
                LedgerMode::Publish => {
                    ledger.publish(catalog.warehouse(), &ctx).await?;
                }
            }
            Some(ledger)
        }
        None => None,
    };
    setup_pg_catalog(&ctx, CATALOG_NAME, Arc::new(AuthManager::default()))?;
    pg_functions::register(&ctx).await?;
    Ok((ctx, catalog, ledger))
}
