//! Session setup: one DataFusion `SessionContext` with the warehouse's catalog, Amoeba's
//! functions and the PostgreSQL system catalog (`pg_catalog`, `information_schema`) that
//! psql and BI tools introspect.

use std::sync::Arc;
use std::time::Instant;

use amoeba_catalog::{Catalog, Warehouse};
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::optimizer::Analyzer;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::balance_scan::BalanceFilteredScans;
use crate::cube::{self, AmoebaOptions, CubeRouter, CubeRoutes, CubeStatus, RefreshOptions};
use crate::eager_aggregate::EagerAggregate;
use crate::error::Result;
use crate::inputs::{InputChanges, InputListing};
use crate::ledger::{ChangeSince, FullBecause, Ledger, LedgerManifest, current_manifest, delta};
use crate::like_prefix::LikePrefix;
use crate::narrow_pnl::NarrowPnl;
use crate::pg_compat;
use crate::rollup_aggregate::RollupFromFiner;
use crate::run_aggregate::RunAggregates;
use crate::runtime::CooperativeJoins;
use crate::shared_subplan::{self, ShareRepeatedAggregates};

/// The catalog name DataFusion registers tables under (`current_database()`).
pub const CATALOG_NAME: &str = "amoeba";

/// A new session configured for Amoeba, with Amoeba's functions, settings (`amoeba.*`) and
/// cube router (no tables, no routes yet).
pub fn new_session() -> Result<SessionContext> {
    new_session_in(None)
}

/// [`new_session`] with its own runtime (memory pool, spill folder), DataFusion's default
/// when `None`.
pub(crate) fn new_session_in(runtime: Option<Arc<RuntimeEnv>>) -> Result<SessionContext> {
    let routes = Arc::new(CubeRoutes::default());
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .with_default_catalog_and_schema(CATALOG_NAME, "public")
        .with_create_default_catalog_and_schema(true)
        .with_option_extension(AmoebaOptions::default())
        .with_extension(Arc::clone(&routes));
    // Filters are evaluated while the Parquet is decoded: the other columns of a row that
    // fails are never decoded (`account = 'advertising'` over the ledger: 150 → 60 ms at
    // scale 1), cheapest filters first.
    config.options_mut().execution.parquet.pushdown_filters = true;
    config.options_mut().execution.parquet.reorder_filters = true;
    // A ledger month is a file of about 1.5 MB at scale 1 (a few row groups): split between
    // the partitions like a larger one, so that a query of one month uses every core.
    config.options_mut().optimizer.repartition_file_min_size = 256 * 1024;
    // The router runs first: it needs `TableScan: pnl` before type coercion rewrites it.
    let mut rules = Analyzer::new().rules;
    rules.insert(0, Arc::new(CubeRouter::new(routes)));
    // Before type coercion, which types the calls it writes.
    rules.insert(1, Arc::new(LikePrefix));
    // After the router (a routed aggregate reads a cube, not `pnl`).
    rules.insert(2, Arc::new(NarrowPnl));
    // A final aggregate a plan repeats (a CTE read twice) runs once, before the last filter
    // pushdown would make its copies differ.
    let mut physical_rules = PhysicalOptimizer::new().rules;
    let at = physical_rules
        .iter()
        .position(|r| r.name() == shared_subplan::RUNS_BEFORE)
        .unwrap_or(physical_rules.len());
    physical_rules.insert(at, Arc::new(ShareRepeatedAggregates));
    let mut state = SessionStateBuilder::new();
    if let Some(runtime) = runtime {
        state = state.with_runtime_env(runtime);
    }
    let state = state
        .with_config(config)
        .with_default_features()
        .with_analyzer_rules(rules)
        // After DataFusion's rules: the ledger side's filters and projections are pushed down.
        .with_optimizer_rule(Arc::new(EagerAggregate))
        // After the eager sums: a coarse aggregate may roll up from one of them.
        .with_optimizer_rule(Arc::new(RollupFromFiner))
        .with_physical_optimizer_rules(physical_rules)
        // Once DataFusion has split the files between the partitions and chosen each
        // aggregate's input order (it changes only aggregates that hash their input).
        .with_physical_optimizer_rule(Arc::new(BalanceFilteredScans))
        // Once DataFusion has chosen each aggregate's mode and input order.
        .with_physical_optimizer_rule(Arc::new(RunAggregates))
        .with_physical_optimizer_rule(Arc::new(CooperativeJoins))
        .build();
    let ctx = SessionContext::new_with_state(state);
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
    pg_compat::setup(&ctx, catalog.model()).await?;
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
    // A published ledger records what it was built from (listed before the catalog reads
    // anything, as in `open_published`): the next refresh compares with it.
    let listing = match mode {
        LedgerMode::Publish => Some(InputListing::of(&warehouse).await?),
        LedgerMode::InMemory => None,
    };
    let catalog = Catalog::open(warehouse).await?;
    let ctx = new_session()?;
    catalog.register(&ctx).await?;
    let ledger = match (catalog.model(), listing) {
        (None, _) => None,
        (Some(_), None) => {
            let ledger = Ledger::build(&catalog).await?;
            ledger.register(&ctx).await?;
            Some(ledger)
        }
        (Some(_), Some(listing)) => {
            let published = current_manifest(catalog.warehouse()).await?;
            let ledger =
                build_recording_inputs(&catalog, listing, published.as_ref(), false).await?;
            ledger.publish(catalog.warehouse(), &ctx).await?;
            Some(ledger)
        }
    };
    pg_compat::setup(&ctx, catalog.model()).await?;
    Ok((ctx, catalog, ledger))
}

/// A warehouse opened for serving: the ledger built and published, the cubes refreshed.
pub struct Served {
    /// The serving session: views, `pnl_ledger` (from the published files), `pnl`, the
    /// cubes (`cubes.<name>`), `amoeba_cubes`, the checks and, opened by [`open_published`]
    /// (not by [`refresh_published`]), the master data held in memory and the PostgreSQL
    /// catalog.
    pub ctx: SessionContext,
    /// The catalog snapshot.
    pub catalog: Catalog,
    /// The ledger, when the warehouse has a model.
    pub ledger: Option<Ledger>,
    /// The published ledger version.
    pub ledger_manifest: Option<LedgerManifest>,
    /// What the cube refresh did.
    pub cubes: Vec<CubeStatus>,
}

/// Opens `warehouse`, builds and publishes its ledger, refreshes its cubes (`options`) and
/// returns a session serving all of it. When the published ledger was built from the same
/// inputs by the same program (and `options.full` is off), it is served as it is instead of
/// rebuilt: a restart on unchanged exports takes seconds, not the build's minutes.
pub async fn open_published(warehouse: Warehouse, options: RefreshOptions) -> Result<Served> {
    let served = refresh_published(warehouse, options).await?;
    hold_master_data(&served.ctx).await?;
    pg_compat::setup(&served.ctx, served.catalog.model()).await?;
    Ok(served)
}

/// Logs how long a step of a refresh took (`RUST_LOG=info`), and starts the next.
fn refresh_lap(since: &mut Instant, step: &str) {
    log::info!("refresh step {step}: {:.2}s", since.elapsed().as_secs_f64());
    *since = Instant::now();
}

/// What [`open_published`] does but make the session ready for clients: the ledger built (or
/// reused) and published, the cubes refreshed. `amoeba refresh` exits when that is done, and
/// holding the master data and the ad reports in memory, or setting up the PostgreSQL
/// catalog, would be work for a server it does not start.
pub async fn refresh_published(warehouse: Warehouse, options: RefreshOptions) -> Result<Served> {
    // Listed before the catalog reads anything: an input that lands meanwhile makes the next
    // start rebuild, never serve a ledger without it.
    let mut step = Instant::now();
    let listing = InputListing::of(&warehouse).await?;
    let inputs = listing.fingerprint();
    let catalog = Catalog::open(warehouse).await?;
    let ctx = new_session()?;
    catalog.register(&ctx).await?;
    refresh_lap(
        &mut step,
        "the inputs listed, the catalog opened and registered",
    );
    let mut served = Served {
        ctx,
        ledger: None,
        ledger_manifest: None,
        cubes: Vec::new(),
        catalog,
    };
    if let Some(model) = served.catalog.model().cloned() {
        let published = current_manifest(served.catalog.warehouse()).await?;
        let mut ledger = match published {
            // The published ledger was built from these very inputs: served as it is.
            Some(manifest) if !options.full && manifest.inputs.as_ref() == Some(&inputs) => {
                log::info!(
                    "inputs unchanged since ledger {} was built: serving it",
                    manifest.version
                );
                Ledger::reused(model.clone(), manifest)
            }
            published => {
                build_recording_inputs(&served.catalog, listing, published.as_ref(), options.full)
                    .await?
            }
        };
        refresh_lap(&mut step, "the ledger built");
        let manifest = ledger
            .publish(served.catalog.warehouse(), &served.ctx)
            .await?;
        ledger.release_rows();
        refresh_lap(&mut step, "the ledger published");
        let options = RefreshOptions {
            inputs_newest_ms: options
                .inputs_newest_ms
                .or_else(|| newest_input_ms(&served.catalog)),
            ..options
        };
        let warehouse = served.catalog.warehouse();
        served.cubes = cube::refresh(&served.ctx, warehouse, &model, &manifest, &options).await?;
        refresh_lap(&mut step, "the cubes refreshed");
        cube::register(&served.ctx, warehouse, &model, Some(&manifest)).await?;
        // The status of every cube, refreshed this time or not.
        let mut statuses = served.cubes.clone();
        for def in &model.cubes {
            if !statuses.iter().any(|s| s.cube == def.name) {
                let mut status =
                    CubeStatus::unrefreshed(warehouse, def, cube::Outcome::Fresh).await?;
                status.inputs_newest_ms = options.inputs_newest_ms;
                statuses.push(status);
            }
        }
        cube::register_status(&served.ctx, &statuses)?;
        served.ledger = Some(ledger);
        served.ledger_manifest = Some(manifest);
    }
    Ok(served)
}

/// The unified views held in memory by a serving session: master data and the company's own
/// books, which grow with the business rather than with its orders and are joined by most P&L
/// queries (the SKU master for category and brand, the units' hours), and the ad reports (a
/// row per plan, SKU and day, not per order; read from hundreds of small files). Each is a
/// de-duplication over its delivered files. The order-level exports (order lines, refunds,
/// fees, waybills) stay on the files.
pub(crate) const HELD_VIEWS: [&str; 7] = [
    "skus",
    "shops",
    "hours",
    "expenses",
    "purchases",
    "stock_adjustments",
    "ad_spend",
];

/// Replaces each of [`HELD_VIEWS`] in a serving session by its rows, computed once here (a
/// refresh opens a new session): a query no longer re-reads and de-duplicates their files, and
/// the planner knows their sizes — with a view's unknown size it kept the ledger's millions of
/// rows as the build side of a join with the 5,000-row SKU master. They stay views to clients
/// (`information_schema` says VIEW).
async fn hold_master_data(ctx: &SessionContext) -> Result<()> {
    for name in HELD_VIEWS {
        if !ctx.table_exist(name)? {
            continue;
        }
        let rows = ctx.table(name).await?.cache().await?;
        ctx.deregister_table(name)?;
        ctx.register_table(name, rows.into_view())?;
    }
    Ok(())
}

/// Builds the ledger of `catalog` with what it was built from: the inputs' listing and
/// fingerprint, what changed since the published version `published`, and the closure of
/// that change. When the change is one the delta build takes (`ledger::delta::refresh`) and
/// `full` is off, it is the published version plus the change; otherwise a full build, and
/// the log says why.
async fn build_recording_inputs(
    catalog: &Catalog,
    listing: InputListing,
    published: Option<&LedgerManifest>,
    full: bool,
) -> Result<Ledger> {
    let inputs = listing.fingerprint();
    let changes = match published {
        Some(manifest) => input_changes(catalog.warehouse(), manifest, &listing).await?,
        None => None,
    };
    if let Some(changes) = &changes {
        log::info!("inputs {}", changes.summary());
    }
    let why_full = match (published, &changes, catalog.model()) {
        _ if full => FullBecause("a full build was asked for".to_string()),
        (None, _, _) => FullBecause("no published version".to_string()),
        (Some(manifest), None, _) => FullBecause(format!(
            "version {} stored no listing of its inputs",
            manifest.version
        )),
        (_, _, None) => FullBecause("no model".to_string()),
        (Some(manifest), Some(changes), Some(model)) => {
            match delta::refresh(catalog, model, manifest, changes).await? {
                Ok(ledger) => {
                    return Ok(ledger.with_inputs(inputs, listing, Some(changes.clone())));
                }
                Err(why) => why,
            }
        }
    };
    log::info!("ledger: full build: {}", why_full.0);
    let change = published
        .zip(changes.as_ref())
        .map(|(manifest, changes)| ChangeSince {
            changes,
            last_month: manifest.months.keys().next_back().map(String::as_str),
        });
    Ok(Ledger::build_since(catalog, change)
        .await?
        .with_inputs(inputs, listing, changes)
        .built_full_because(why_full))
}

/// What changed in the inputs since the published version `manifest` was built, when it
/// stored its listing (versions published before listings were stored did not).
async fn input_changes(
    warehouse: &Warehouse,
    manifest: &LedgerManifest,
    listing: &InputListing,
) -> Result<Option<InputChanges>> {
    let Some(before) = crate::ledger::published_listing(warehouse, &manifest.version).await? else {
        return Ok(None);
    };
    Ok(Some(InputChanges::between(
        &manifest.version,
        &before,
        listing,
    )))
}

/// When the newest served input file landed (Unix ms).
fn newest_input_ms(catalog: &Catalog) -> Option<u64> {
    catalog
        .files()
        .iter()
        .map(|f| f.meta.last_modified.timestamp_millis())
        .max()
        .and_then(|ms| u64::try_from(ms).ok())
}
