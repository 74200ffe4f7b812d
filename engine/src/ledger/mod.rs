//! The ledger build: from the unified views to `pnl_ledger`, one fact table whose rows carry
//! every amount of every unit's P&L (spec/pnl.md), and to the reconciliation report that
//! proves nothing was lost or counted twice.
//!
//! ```text
//!  unified views ─► b_shops, b_lines (+ unit by the model's rules), b_orders, b_fees, b_fee_lines
//!       │
//!       ├─ SALES, REFUNDS                      one ledger row per line / refund
//!       ├─ FEES    on the line │ spread over the order's lines by net sales │ on the shop
//!       ├─ ADS     on the SKU  │ spread over the shop's SKUs sold that day  │ on the shop
//!       ├─ FREIGHT spread over the order's lines │ fallback unit
//!       └─ b_moves ─► cost::cost_batch_from (FIFO │ moving average, per SKU × warehouse)
//!                      ─► COGS, reversals of restocked returns, inventory losses
//!                      ─► the stock book: each chain's stock at each month end (stock.rs)
//!                                  │ UNION ALL, summed at the ledger grain
//!                                  ▼
//!                               b_base ─► drivers (month × unit) ─► allocation::apply
//!                                  │        pools · internal settlement · step-down
//!                                  ▼                     │
//!                               b_ledger ◄───────────────┘   (+ month; sorted by month,
//!                                  │                              account, unit, date, …)
//!                                  │
//!            checks::run ─► amoeba_checks     store::publish ─► ledger/v<N>/month=…/*.parquet
//!                                                              + _stock.book (stock_balances)
//! ```
//!
//! Every spread uses exact allocation (`allocate_exact`, the udfs kernel): shares in cents that
//! sum to the amount; a driver total of zero puts the whole amount on the first line (order
//! spreads) or leaves a pool on the root and reports it. The spreads over many small groups
//! (fees, ads, freight) run the kernel in one pass over rows DataFusion sorted (`spread.rs`),
//! not as window functions. Each row keeps its `source` (the
//! export or rule that produced it) for drill-through, e.g. `fees:天猫佣金`, `pool:hq`,
//! `settlement:warehouse_per_order`, `step_down:U11`.
//!
//! The build runs in its own session (the serving session never sees its working tables) and
//! is deterministic: the same warehouse and model give the same rows in the same order.
//!
//! A refresh after platform exports were only added builds by delta instead
//! ([`delta`], `delta::refresh`): the published version plus what the change does to the
//! orders, costing chains and months it touches, publishing the same rows as this build
//! would (docs/incremental.md).

mod allocation;
mod assign;
pub mod checks;
mod closure;
mod cost;
pub mod delta;
mod mapped;
mod sources;
mod spread;
mod staging;
mod stock;
mod store;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amoeba_catalog::model::Model;
use amoeba_catalog::{Catalog, RAW_SCHEMA, UNIFIED_VIEWS, Warehouse, register_over_mapped};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, Schema, SchemaRef};
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use crate::error::{EngineError, Result};
use crate::fingerprint::{self, Fingerprint};
use crate::inputs::{InputChanges, InputListing};
use crate::session::new_session_in;
pub use checks::{CHECKS_TABLE, CheckRow, CheckSums, Status};
pub use closure::{ChangeSince, Closure, ClosureKeys};
pub use delta::FullBecause;
pub use mapped::MappedPatch;
use staging::Staging;
pub use stock::STOCK_TABLE;
pub use store::{
    LEDGER_DIR, LEDGER_TABLE, LedgerManifest, PNL_VIEW, current_manifest, current_version,
    published_costed, published_ledger_sums, published_listing, published_month_inputs,
    published_stock,
};
pub(crate) use store::{batch_to_parquet, register_published};

pub use allocation::MonthInputs;
use allocation::{Drivers, Expense, MonthRow};

/// A built ledger: its rows, the reconciliation report, and how long it took — or a ledger
/// already published from the same inputs, reused as it is in the warehouse
/// (`Ledger::reused`: no rows in memory, its report read back from its manifest), or one
/// built by delta from a published version ([`Ledger::by_delta_of`]).
#[derive(Debug, Clone)]
pub struct Ledger {
    model: Model,
    batches: Vec<RecordBatch>,
    /// The number of rows built (kept when the rows are let go after publishing).
    rows: usize,
    /// The stock book (`stock.rs`): built with the ledger, or read back with a reused one.
    stock: Option<RecordBatch>,
    /// The costed movements (`b_costed`, in chain and time order), kept when built in memory.
    costed: Option<RecordBatch>,
    /// What the month rules were computed from (for a built ledger).
    month_inputs: Option<MonthInputs>,
    /// The totals its checks compared (for a built ledger).
    check_sums: Option<CheckSums>,
    checks: Vec<CheckRow>,
    elapsed: Duration,
    /// The fingerprint of the inputs it was built from, recorded when it is published.
    inputs: Option<String>,
    /// The inputs as listed when it was built, stored beside the version it is published as.
    listing: Option<InputListing>,
    /// What changed in the inputs since the version it replaces was built.
    changes: Option<InputChanges>,
    /// What those changes may touch in the ledger.
    closure: Option<Closure>,
    /// The published version it is, when reused.
    reused: Option<LedgerManifest>,
    /// Built with its working tables on disk: the rows are in the scratch folder, not in
    /// `batches`.
    staged: Option<Staged>,
    /// Built by delta from a published version: `batches` holds the months it rewrote only.
    by_delta: Option<ByDelta>,
    /// Why it was built in full rather than by delta, when a refresh built it.
    full_because: Option<FullBecause>,
    /// The mapped rows it was built from, kept with the version for the next refresh by
    /// delta (`mapped.rs`), when built in memory.
    mapped: Option<mapped::MappedRows>,
}

/// How a ledger built by delta (`delta::refresh`) relates to the version it was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByDelta {
    /// The published version it is that version plus the change.
    pub base: String,
    /// The months it rewrote (their rows are the ledger's `batches`); every other month is
    /// the base version's, carried over as its files are.
    pub rewritten: std::collections::BTreeSet<String>,
    /// Every month's fingerprint, as its manifest will hold them.
    pub months: BTreeMap<String, String>,
    /// How the mapped rows after the change were made from the published version's.
    pub mapped: MappedPatch,
}

/// A ledger built on disk ([`staging`]): its files and each month's fingerprint.
#[derive(Debug, Clone)]
struct Staged {
    /// Keeps the scratch folder (and so the files) until the ledger is dropped.
    scratch: Staging,
    dir: std::path::PathBuf,
    months: BTreeMap<String, Fingerprint>,
}

impl Ledger {
    /// Builds the ledger of a catalog with the warehouse's model (`model/model.toml`).
    pub async fn build(catalog: &Catalog) -> Result<Ledger> {
        Ledger::build_since(catalog, None).await
    }

    /// Builds the ledger of a catalog with the warehouse's model and, when `change` is given,
    /// finds the closure of that change ([`Ledger::closure`]) over the rows the build maps
    /// anyway.
    pub async fn build_since(catalog: &Catalog, change: Option<ChangeSince<'_>>) -> Result<Ledger> {
        let model = catalog
            .model()
            .cloned()
            .ok_or_else(|| EngineError::NoModel {
                warehouse: catalog.warehouse().location().to_string(),
            })?;
        Ledger::build_in(catalog, model, change).await
    }

    /// Builds the ledger of a catalog with a given model.
    pub async fn build_with(catalog: &Catalog, model: Model) -> Result<Ledger> {
        Ledger::build_in(catalog, model, None).await
    }

    async fn build_in(
        catalog: &Catalog,
        model: Model,
        change: Option<ChangeSince<'_>>,
    ) -> Result<Ledger> {
        let started = Instant::now();
        let staging = Staging::new(model.ledger_memory_limit)?;
        let ctx = new_session_in(staging.runtime()?)?;
        materialize_mapped(&ctx, catalog, &staging).await?;
        // Kept with the version for the next refresh by delta, when built in memory.
        let mapped = match staging {
            Staging::Memory => Some(mapped::MappedRows::of_session(&ctx, catalog).await?),
            Staging::Disk(_) => None,
        };
        // The closure of the change since the published version, over the mapped rows just
        // materialized (on its own, it would read and de-duplicate every export again).
        let closure = match change {
            Some(change) => {
                let closure = closure::closure_in(&ctx, catalog, change).await?;
                log::info!("{}", closure.summary());
                Some(closure)
            }
            None => None,
        };
        register(&ctx, "b_units", units_batch(&model)?)?;
        cache_sources(&ctx, &staging, &model).await?;

        // Costing: DataFusion sorts the movements, one sequential pass costs them.
        let mut step = Instant::now();
        let moves = ctx.sql(&sources::moves(&model)).await?;
        let schema: SchemaRef = Arc::new(moves.schema().as_arrow().clone());
        let moves = concat_batches(&schema, &moves.collect().await?)?;
        let moves = stock::with_month(&cost::with_utf8_line(&moves)?)?;
        // The stock book: each chain's stock at each month end (served as stock_balances).
        let mut pages = Vec::new();
        let method = model.costing;
        let costed = cost::cost_batch_from(
            method,
            &moves,
            &mut |_, _| cost::Stock::new(method),
            Some(&mut pages),
        )?;
        drop(moves);
        // Kept for the costing delta of the next version (`delta::cost_rows`), when the build
        // runs in memory: on disk, keeping it is what the memory limit is there to prevent.
        let kept_costed = matches!(staging, Staging::Memory).then(|| costed.clone());
        staging.batch(&ctx, "b_costed", costed).await?;
        lap(&mut step, "costing");

        cache_spreads(&ctx, &staging).await?;
        let mut parts = order_local_parts(&model);
        parts.push(sources::costed(model.costing));
        cache(&ctx, &staging, "b_base", &base_sql(&parts)).await?;
        // What only the parts read is let go before the ledger is sorted (the build's peak).
        for name in [
            "b_fee_lines",
            "b_waybills",
            "b_ad_plans",
            sources::FEE_SPREAD.name,
            sources::AD_SPREAD.name,
            sources::WAYBILL_SPREAD.name,
        ] {
            ctx.deregister_table(name)?;
        }

        // Month-level rules over the drivers.
        let mut step = Instant::now();
        let mut month_inputs = MonthInputs {
            drivers: drivers(&ctx).await?,
            totals: unit_totals(&ctx, "b_base").await?,
            expenses: expenses(&ctx).await?,
        };
        month_inputs.drop_zeros();
        let months = month_inputs.months();
        let rules = month_inputs.apply(&model)?;
        register(&ctx, "b_month", month_rows_batch(&rules.rows)?)?;
        let stock = stock::book_batch(&pages, months.iter().next_back().map(String::as_str))?;
        drop(pages);
        register(&ctx, "b_stock", stock.clone())?;
        lap(&mut step, "pools, settlement, step-down");

        let ledger = ctx
            .sql(&ledger_sql(&format!(
                "SELECT {cols} FROM b_base UNION ALL SELECT {cols} FROM b_month",
                cols = sources::LEDGER_COLUMNS
            )))
            .await?;
        let (batches, staged) = match staging.ledger_dir() {
            None => {
                let schema: SchemaRef = Arc::new(ledger.schema().as_arrow().clone());
                let batches = ledger.collect().await?;
                ctx.register_table(
                    "b_ledger",
                    Arc::new(MemTable::try_new(schema, vec![batches.clone()])?),
                )?;
                (batches, None)
            }
            Some(dir) => {
                staging
                    .ledger(&ctx, "b_ledger", ledger, store::ledger_parquet_options())
                    .await?;
                let months = month_fingerprints(&ctx, "b_ledger").await?;
                let staged = Staged {
                    scratch: staging.clone(),
                    dir,
                    months,
                };
                (Vec::new(), Some(staged))
            }
        };
        lap(&mut step, "b_ledger");
        let check_sums = CheckSums::of_build(&ctx).await?;
        let mut checks = checks::run(&ctx, &check_sums).await?;
        checks.extend(rules.checks);
        lap(&mut step, "checks");
        let rows = match &staged {
            None => batches.iter().map(RecordBatch::num_rows).sum(),
            Some(staged) => staged
                .months
                .values()
                .map(|f| usize::try_from(f.rows).unwrap_or(usize::MAX))
                .sum(),
        };
        Ok(Ledger {
            model,
            rows,
            batches,
            stock: Some(stock),
            costed: kept_costed,
            month_inputs: Some(month_inputs),
            check_sums: Some(check_sums),
            checks,
            elapsed: started.elapsed(),
            inputs: None,
            listing: None,
            changes: None,
            closure,
            reused: None,
            staged,
            by_delta: None,
            full_because: None,
            mapped,
        })
    }

    /// The published ledger of `manifest`, served again without a build: what a restart or a
    /// refresh does when the inputs are those it was built from (`manifest.inputs`).
    pub(crate) fn reused(model: Model, manifest: LedgerManifest) -> Ledger {
        Ledger {
            model,
            batches: Vec::new(),
            rows: 0,
            stock: None,
            costed: None,
            month_inputs: None,
            check_sums: None,
            checks: manifest.checks.clone(),
            elapsed: Duration::ZERO,
            inputs: manifest.inputs.clone(),
            listing: None,
            changes: None,
            closure: None,
            reused: Some(manifest),
            staged: None,
            by_delta: None,
            full_because: None,
            mapped: None,
        }
    }

    /// Records the inputs it was built from: their fingerprint (written into its manifest, so
    /// that the next start on the same inputs reuses it), their listing (stored with the
    /// version, for the next refresh to compare) and what changed since the version it
    /// replaces.
    pub(crate) fn with_inputs(
        mut self,
        inputs: String,
        listing: InputListing,
        changes: Option<InputChanges>,
    ) -> Ledger {
        self.inputs = Some(inputs);
        self.listing = Some(listing);
        self.changes = changes;
        self
    }

    /// What changed in the inputs since the version this build replaces was built (`None`
    /// for a reused ledger, a first build, or a version that stored no listing).
    pub fn input_changes(&self) -> Option<&InputChanges> {
        self.changes.as_ref()
    }

    /// What the input changes since the replaced version may touch: the orders, shop-days,
    /// SKUs and months (`None` when [`Ledger::input_changes`] is).
    pub fn closure(&self) -> Option<&Closure> {
        self.closure.as_ref()
    }

    /// Records why a refresh built it in full rather than by delta.
    pub(crate) fn built_full_because(mut self, why: FullBecause) -> Ledger {
        self.full_because = Some(why);
        self
    }

    /// Why a refresh built it in full rather than by delta (`None` for a ledger built by
    /// delta, reused, or not built by a refresh).
    pub fn full_because(&self) -> Option<&FullBecause> {
        self.full_because.as_ref()
    }

    /// How it was built from a published version by delta, if it was.
    pub fn by_delta_of(&self) -> Option<&ByDelta> {
        self.by_delta.as_ref()
    }

    /// The published version reused instead of a build, if it is one.
    pub fn reused_version(&self) -> Option<&str> {
        self.reused.as_ref().map(|m| m.version.as_str())
    }

    /// The ledger rows (columns: date, platform, shop_id, sku, campaign, unit_id, account,
    /// amount, qty, source, month); none for a reused ledger, whose rows are in the warehouse,
    /// for one built on disk (`[ledger] memory_limit_mb`), whose rows are in its scratch
    /// folder, nor after `Ledger::release_rows`; only the rewritten months' for one built by
    /// delta ([`Ledger::by_delta_of`]).
    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }

    /// Lets go of the rows, once published: the serving session reads them from the
    /// warehouse's files, and a server that kept them would hold the whole ledger in memory
    /// for as long as it runs. (What the allocator does with the freed memory is its own:
    /// at scale 1, a server that built its ledger at start still had 3.0 GiB resident after
    /// this, 3.6 GiB before, against 150 MiB for one that reused a published ledger.)
    pub(crate) fn release_rows(&mut self) {
        self.batches = Vec::new();
        self.costed = None;
        self.staged = None;
        self.mapped = None;
    }

    /// The stock book as stored (`_stock.book`: each chain's costing state at every month
    /// end), for a built ledger.
    pub fn stock_book(&self) -> Option<&RecordBatch> {
        self.stock.as_ref()
    }

    /// What its month rules (pools, settlements, step-down) were computed from, for a built
    /// ledger: what [`delta::month_rows`] adds a change to.
    pub fn month_inputs(&self) -> Option<&MonthInputs> {
        self.month_inputs.as_ref()
    }

    /// Whether it was built with its working tables on disk (`[ledger] memory_limit_mb`).
    pub fn built_on_disk(&self) -> bool {
        self.staged.is_some()
    }

    /// Each month's fingerprint (`<rows>:<hash>`, as in the published manifest): equal for
    /// equal rows, whatever their order or how the ledger was built.
    pub fn month_fingerprints(&self) -> Result<BTreeMap<String, String>> {
        if let Some(by_delta) = &self.by_delta {
            return Ok(by_delta.months.clone());
        }
        let months = match (&self.reused, &self.staged) {
            (Some(manifest), _) => return Ok(manifest.months.clone()),
            (None, Some(staged)) => staged.months.clone(),
            (None, None) => fingerprint::by_key(&self.batches, "month")?,
        };
        Ok(months.into_iter().map(|(m, f)| (m, f.encode())).collect())
    }

    /// The number of ledger rows.
    pub fn num_rows(&self) -> usize {
        match &self.reused {
            Some(manifest) => usize::try_from(manifest.rows).unwrap_or(usize::MAX),
            None => self.rows,
        }
    }

    /// The reconciliation report.
    pub fn checks(&self) -> &[CheckRow] {
        &self.checks
    }

    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }

    /// The model it was built with.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// How long the build took (zero for a reused ledger).
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Registers the ledger (in memory), the `pnl` view, the units and `amoeba_checks` in a
    /// serving session.
    pub async fn register(&self, ctx: &SessionContext) -> Result<()> {
        if let Some(manifest) = &self.reused {
            return Err(EngineError::ledger(format!(
                "ledger {} was reused from the warehouse: serve it with publish",
                manifest.version
            )));
        }
        if let Some(by_delta) = &self.by_delta {
            return Err(EngineError::ledger(format!(
                "ledger built by delta from {} holds its rewritten months only: serve it with \
                 publish",
                by_delta.base
            )));
        }
        match &self.staged {
            Some(staged) => {
                staging::register_ledger(ctx, LEDGER_TABLE, &staged.dir).await?;
                // The table lists the scratch folder at each query: the folder must live as
                // long as the session, not only as long as this ledger (`amoeba query` lets
                // the ledger go and goes on querying).
                ctx.state_ref().write().config_mut().set_extension(Arc::new(
                    staging::KeptScratch {
                        _staging: staged.scratch.clone(),
                    },
                ));
            }
            None => {
                let schema = self
                    .batches
                    .first()
                    .map(RecordBatch::schema)
                    .unwrap_or_else(store::ledger_schema);
                ctx.register_table(
                    LEDGER_TABLE,
                    Arc::new(MemTable::try_new(schema, vec![self.batches.clone()])?),
                )?;
            }
        }
        self.register_views(ctx, self.stock.as_ref()).await
    }

    /// Writes the ledger as Parquet into the warehouse (a new version, partitioned by month,
    /// published atomically) and registers it, the `pnl` view, the units and `amoeba_checks`
    /// in `ctx` from there.
    pub async fn publish(
        &self,
        warehouse: &Warehouse,
        ctx: &SessionContext,
    ) -> Result<LedgerManifest> {
        // A reused ledger is published already: it is only registered.
        let manifest = match &self.reused {
            Some(manifest) => manifest.clone(),
            None => store::publish(self, warehouse).await?,
        };
        store::register_published(ctx, warehouse, &manifest.version).await?;
        let stock = match &self.stock {
            Some(book) => Some(book.clone()),
            None => store::published_stock(warehouse, &manifest.version).await?,
        };
        self.register_views(ctx, stock.as_ref()).await?;
        Ok(manifest)
    }

    async fn register_views(
        &self,
        ctx: &SessionContext,
        stock: Option<&RecordBatch>,
    ) -> Result<()> {
        let stock = match stock {
            Some(book) => {
                MemTable::try_new(stock::served_schema(), vec![vec![stock::served(book)?]])?
            }
            None => MemTable::try_new(stock::served_schema(), vec![Vec::new()])?,
        };
        ctx.register_table(STOCK_TABLE, Arc::new(stock))?;
        ctx.register_table(
            "amoeba_units",
            Arc::new(MemTable::try_new(
                units_schema(),
                vec![vec![units_batch(&self.model)?]],
            )?),
        )?;
        ctx.register_table(
            CHECKS_TABLE,
            Arc::new(MemTable::try_new(
                checks::schema(),
                vec![vec![checks::to_batch(&self.checks)?]],
            )?),
        )?;
        // `pnl` as a view the cube router can see (DataFusion inlines ordinary views).
        ctx.sql(&store::pnl_view_sql(&self.model)).await?;
        let provider = ctx.table_provider(PNL_VIEW).await?;
        if let Some(view) = provider.downcast_ref::<datafusion::datasource::ViewTable>() {
            let view = datafusion::datasource::ViewTable::new(
                view.logical_plan().clone(),
                view.definition().cloned(),
            );
            ctx.deregister_table(PNL_VIEW)?;
            ctx.register_table(PNL_VIEW, Arc::new(crate::cube::PnlView::new(view)))?;
        }
        Ok(())
    }
}

/// Registers `catalog` in `ctx` with its mapped rows computed once: each `raw.<view>_mapped`
/// (and each raw table several mapping parts read) is replaced by its materialization
/// (`staging`), and the unified views are re-created over that. Every step and check of a
/// build reads the unified views and the report of rejected rows, all of which de-duplicate
/// and map the exports: over this, the exports are read and mapped once per build.
pub(crate) async fn materialize_mapped(
    ctx: &SessionContext,
    catalog: &Catalog,
    staging: &Staging,
) -> Result<()> {
    let started = Instant::now();
    catalog.register(ctx).await?;
    lap(&mut { started }, "the catalog registered");
    // A raw table that several mapping parts read (douyin's settlement: one part per fee
    // column) would be read and de-duplicated once per part: it is materialized first.
    let shared = catalog.shared_raw_tables();
    for raw in &shared {
        let started = Instant::now();
        let table = staging
            .materialize(ctx, &raw.to_string(), ctx.table(raw.clone()).await?)
            .await?;
        ctx.deregister_table(raw.clone())?;
        ctx.register_table(raw.clone(), table)?;
        lap(&mut { started }, &raw.to_string());
    }
    if !shared.is_empty() {
        catalog.register_mapped_views(ctx).await?;
    }
    for view in UNIFIED_VIEWS {
        let started = Instant::now();
        let mapped = TableReference::partial(RAW_SCHEMA, view.mapped_name());
        let table = staging
            .materialize(ctx, &mapped.to_string(), ctx.table(mapped.clone()).await?)
            .await?;
        ctx.deregister_table(mapped.clone())?;
        ctx.register_table(mapped, table)?;
        lap(&mut { started }, view.name);
    }
    // The mapped rows are all materialized: the raw tables they came from are let go.
    for raw in shared {
        ctx.deregister_table(raw)?;
    }
    register_over_mapped(ctx).await?;
    Ok(())
}

/// Registers `catalog` in `to` over the mapped rows `from` materialized
/// ([`materialize_mapped`]): a second session over the same rows, without reading them again.
pub(crate) async fn share_mapped(
    from: &SessionContext,
    to: &SessionContext,
    catalog: &Catalog,
) -> Result<()> {
    catalog.register_around_mapped(to).await?;
    for view in UNIFIED_VIEWS {
        let mapped = TableReference::partial(RAW_SCHEMA, view.mapped_name());
        let table = from.table_provider(mapped.clone()).await?;
        to.register_table(mapped, table)?;
    }
    register_over_mapped(to).await?;
    Ok(())
}

/// Each month's fingerprint of the ledger registered as `table`, read as a stream.
async fn month_fingerprints(
    ctx: &SessionContext,
    table: &str,
) -> Result<BTreeMap<String, Fingerprint>> {
    use futures::StreamExt;
    let mut out: BTreeMap<String, Fingerprint> = BTreeMap::new();
    let mut stream = ctx.table(table).await?.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        for (month, f) in fingerprint::by_key(&[batch?], "month")? {
            let total = out.entry(month).or_default();
            total.rows += f.rows;
            total.hash = total.hash.wrapping_add(f.hash);
        }
    }
    Ok(out)
}

/// Logs how long a step took (`RUST_LOG=info` shows where a build spends its time).
/// The working tables the order-local steps read: `b_shops`, `b_lines`, `b_orders`, `b_fees`,
/// `b_fee_lines` (over the unified views of `ctx`: all rows in a build, the closure's in a
/// delta, [`delta`]).
async fn cache_sources(ctx: &SessionContext, staging: &Staging, model: &Model) -> Result<()> {
    cache(ctx, staging, "b_shops", &sources::shops(model)).await?;
    cache(ctx, staging, "b_lines", &sources::lines(model)).await?;
    cache(ctx, staging, "b_orders", sources::ORDERS).await?;
    cache(ctx, staging, "b_fees", &sources::fees(model)).await?;
    cache(ctx, staging, "b_fee_lines", sources::FEE_LINES).await
}

/// The spreads over many small groups (an order's lines, a shop's SKUs of the day) and what
/// they read: the rows sorted by DataFusion, the shares computed in one pass (spread.rs).
async fn cache_spreads(ctx: &SessionContext, staging: &Staging) -> Result<()> {
    cache(ctx, staging, "b_waybills", sources::WAYBILLS_BY_ORDER).await?;
    cache(ctx, staging, "b_ad_plans", sources::AD_PLANS).await?;
    for spread in [
        sources::FEE_SPREAD,
        sources::AD_SPREAD,
        sources::WAYBILL_SPREAD,
    ] {
        let started = Instant::now();
        spread.register(ctx, staging).await?;
        lap(&mut { started }, spread.name);
    }
    Ok(())
}

/// The parts of `b_base` whose rows depend on orders, shop-days and bare order ids only
/// (sales, refunds, fees, ads, freight): what the closure of a change bounds. Costing and the
/// month rules are not among them.
fn order_local_parts(model: &Model) -> Vec<String> {
    vec![
        sources::SALES.to_string(),
        sources::REFUNDS.to_string(),
        sources::FEES.to_string(),
        sources::ads(model),
        sources::waybills(model),
    ]
}

/// The ledger's rows as stored, from `rows` (a statement giving the ledger's columns but
/// `month`), in the stored order: by month, then by account within each month. Most ledger
/// queries select accounts (`account = 'advertising'`, `LIKE 'allocated_%'`), and with the
/// rows of an account together the Parquet page index lets a scan skip the pages of every
/// other account.
fn ledger_sql(rows: &str) -> String {
    format!("{} ORDER BY {LEDGER_ORDER}", ledger_projection(rows))
}

/// The order of the ledger's rows, as every version writes them.
pub(crate) const LEDGER_ORDER: &str =
    "month, account, unit_id, date, platform, shop_id, sku, campaign, source";

/// `rows` with the ledger's columns and types (and its `month`), in no particular order.
pub(crate) fn ledger_projection(rows: &str) -> String {
    projection_with_month(rows, "to_char(date, '%Y-%m')")
}

/// `rows` of a published version (the ledger's columns with their `month`), projected as
/// [`ledger_projection`] projects rows: the month is read, not formatted again from the date
/// of every row.
pub(crate) fn published_projection(rows: &str) -> String {
    projection_with_month(rows, "month")
}

fn projection_with_month(rows: &str, month: &str) -> String {
    format!(
        "SELECT date, {text}, CAST(amount AS DECIMAL({precision},2)) AS amount, qty, \
                arrow_cast(source, 'Utf8') AS source, \
                arrow_cast({month}, 'Utf8') AS month FROM ({rows})",
        precision = store::LEDGER_AMOUNT_PRECISION,
        // One string type throughout (the parts mix Utf8 and Utf8View).
        text = [
            "platform", "shop_id", "sku", "campaign", "unit_id", "account"
        ]
        .map(|c| format!("arrow_cast({c}, 'Utf8') AS {c}"))
        .join(", ")
    )
}

/// `b_base`: the parts' rows summed at the ledger grain.
///
/// A grain row that carries nothing (an amount of 0 and no quantity: the zero discount and
/// zero postage of most order lines, a zero commission) is not kept, as the month rules keep
/// no zero row. It adds nothing to any sum, and with it gone a row's existence follows from
/// its sums alone: the delta build, which adds and subtracts sums, then gets exactly the rows
/// of a full build (docs/incremental.md). At scale 1 they were 903,239 rows of 5,950,284.
fn base_sql(parts: &[String]) -> String {
    let parts: Vec<String> = parts
        .iter()
        .map(|p| format!("SELECT {} FROM ({p})", sources::LEDGER_COLUMNS))
        .collect();
    summed_at_grain(&parts.join(" UNION ALL "))
}

/// The rows of `rows` (the ledger's columns but `month`) summed at the ledger grain, those
/// that carry something.
fn summed_at_grain(rows: &str) -> String {
    format!(
        "SELECT * FROM ( \
           SELECT date, platform, shop_id, sku, campaign, unit_id, account, \
                  CAST(SUM(amount) AS DECIMAL(38,2)) AS amount, SUM(qty) AS qty, source \
           FROM ({rows}) GROUP BY date, platform, shop_id, sku, campaign, unit_id, account, source) \
         WHERE {CARRIES_SOMETHING}"
    )
}

/// Whether a grain row (its sums) carries something: an amount or a quantity.
const CARRIES_SOMETHING: &str = "amount <> 0 OR COALESCE(qty, 0) <> 0";

fn lap(since: &mut Instant, step: &str) {
    log::info!("ledger step {step}: {:.2}s", since.elapsed().as_secs_f64());
    *since = Instant::now();
}

/// Computes a working table and registers it as `name` (in memory or on disk: `staging`).
async fn cache(ctx: &SessionContext, staging: &Staging, name: &str, sql: &str) -> Result<()> {
    let started = Instant::now();
    let step = |e: EngineError| EngineError::ledger(format!("ledger step {name}: {e}"));
    let df = ctx.sql(sql).await.map_err(|e| step(e.into()))?;
    staging.table(ctx, name, df).await.map_err(step)?;
    lap(&mut { started }, name);
    Ok(())
}

fn register(ctx: &SessionContext, name: &str, batch: RecordBatch) -> Result<()> {
    ctx.register_table(
        name,
        Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]])?),
    )?;
    Ok(())
}

/// Registers `batches` as the table `name`, with their own schema; registers nothing and
/// returns false when there are none (an empty set of rows has no schema to give).
fn register_rows(ctx: &SessionContext, name: &str, batches: &[RecordBatch]) -> Result<bool> {
    let Some(first) = batches.first() else {
        return Ok(false);
    };
    ctx.register_table(
        name,
        Arc::new(MemTable::try_new(first.schema(), vec![batches.to_vec()])?),
    )?;
    Ok(true)
}

fn units_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("unit_id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("parent_id", DataType::Utf8, true),
        Field::new("headcount", DataType::Int64, true),
        Field::new("area", DataType::Int64, true),
    ]))
}

pub(crate) fn units_batch(model: &Model) -> Result<RecordBatch> {
    let u = &model.units;
    Ok(RecordBatch::try_new(
        units_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                u.iter().map(|x| x.id.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                u.iter().map(|x| x.name.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                u.iter().map(|x| x.kind.as_str()),
            )),
            Arc::new(StringArray::from(
                u.iter().map(|x| x.parent.as_deref()).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                u.iter().map(|x| x.headcount).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                u.iter().map(|x| x.area).collect::<Vec<_>>(),
            )),
        ],
    )?)
}

/// The drivers summed from `b_base` (money): additive over its rows. (Every driver is
/// (month, unit, driver name, value); the value is kept × 10^4.)
const BASE_DRIVERS_SQL: &str = "\
    SELECT to_char(date, '%Y-%m'), unit_id, 'net_sales', SUM(amount) FROM b_base \
      WHERE account IN ('gross_sales', 'seller_discount', 'shipping_income', 'refund') GROUP BY 1, 2 \
    UNION ALL SELECT to_char(date, '%Y-%m'), unit_id, 'gross_sales', SUM(amount) FROM b_base \
      WHERE account = 'gross_sales' GROUP BY 1, 2 \
    UNION ALL SELECT to_char(date, '%Y-%m'), unit_id, 'cogs', SUM(amount) FROM b_base \
      WHERE account = 'cogs' GROUP BY 1, 2";

/// The drivers counted over the order lines (`b_lines`) and the waybills: additive over
/// orders (an order is counted in the month and unit of its lines, whatever other orders do).
const ORDER_DRIVERS_SQL: &str = "\
    SELECT to_char(date, '%Y-%m'), unit_id, 'orders', \
      COUNT(DISTINCT concat(platform, '|', shop_id, '|', order_id)) FROM b_lines GROUP BY 1, 2 \
    UNION ALL SELECT to_char(date, '%Y-%m'), unit_id, 'units', SUM(qty) FROM b_lines GROUP BY 1, 2 \
    UNION ALL SELECT to_char(date, '%Y-%m'), unit_id, 'orders_shipped', \
      COUNT(DISTINCT concat(platform, '|', shop_id, '|', order_id)) FROM b_lines WHERE issued GROUP BY 1, 2 \
    UNION ALL SELECT to_char(date, '%Y-%m'), unit_id, 'units_shipped', SUM(qty) FROM b_lines \
      WHERE issued GROUP BY 1, 2 \
    UNION ALL SELECT to_char(w.shipped_at, '%Y-%m'), o.unit_id, 'weight_kg', SUM(w.weight_kg) \
      FROM waybills w JOIN b_orders o ON o.order_id = w.order_id AND o.unique_id \
      WHERE w.direction = 'outbound' GROUP BY 1, 2";

/// The hours worked, from the company's data.
const HOURS_DRIVERS_SQL: &str =
    "SELECT month, unit_id, 'hours', SUM(hours) FROM hours GROUP BY 1, 2";

/// Every driver of the month rules, over the build's working tables.
async fn drivers(ctx: &SessionContext) -> Result<Drivers> {
    drivers_of(
        ctx,
        &[BASE_DRIVERS_SQL, ORDER_DRIVERS_SQL, HOURS_DRIVERS_SQL].join(" UNION ALL "),
    )
    .await
}

/// The drivers `sql` computes (month, unit, driver name, value).
async fn drivers_of(ctx: &SessionContext, sql: &str) -> Result<Drivers> {
    let sql = format!(
        "SELECT CAST(m AS VARCHAR), CAST(u AS VARCHAR), CAST(d AS VARCHAR), CAST(v AS DECIMAL(38,4)) \
         FROM ({sql}) AS t(m, u, d, v)"
    );
    let mut out = Drivers::new();
    for batch in ctx.sql(&sql).await?.collect().await? {
        let (m, u, d, v) = (
            string_col(&batch, 0)?,
            string_col(&batch, 1)?,
            string_col(&batch, 2)?,
            decimal_col(&batch, 3, 4)?,
        );
        for i in 0..batch.num_rows() {
            if v.is_null(i) || m.is_null(i) || u.is_null(i) {
                continue;
            }
            out.insert(
                (
                    m.value(i).to_string(),
                    u.value(i).to_string(),
                    d.value(i).to_string(),
                ),
                v.value(i),
            );
        }
    }
    Ok(out)
}

async fn expenses(ctx: &SessionContext) -> Result<Vec<Expense>> {
    let sql = "SELECT month, category, cost_center, CAST(amount AS DECIMAL(38,2)) FROM expenses \
               ORDER BY month, category, cost_center";
    let mut out = Vec::new();
    for batch in ctx.sql(sql).await?.collect().await? {
        let (m, c, cc, a) = (
            string_col(&batch, 0)?,
            string_col(&batch, 1)?,
            string_col(&batch, 2)?,
            decimal_col(&batch, 3, 2)?,
        );
        for i in 0..batch.num_rows() {
            out.push(Expense {
                month: m.value(i).to_string(),
                category: c.value(i).to_string(),
                cost_center: cc.value(i).to_string(),
                cents: a.value(i),
            });
        }
    }
    Ok(out)
}

/// The unit totals (cents) by (month, unit) of the ledger rows in `table`.
async fn unit_totals(
    ctx: &SessionContext,
    table: &str,
) -> Result<BTreeMap<(String, String), i128>> {
    let sql = format!(
        "SELECT to_char(date, '%Y-%m'), unit_id, CAST(SUM(amount) AS DECIMAL(38,2)) \
         FROM {table} GROUP BY 1, 2"
    );
    let mut out = BTreeMap::new();
    for batch in ctx.sql(&sql).await?.collect().await? {
        let (m, u, a) = (
            string_col(&batch, 0)?,
            string_col(&batch, 1)?,
            decimal_col(&batch, 2, 2)?,
        );
        for i in 0..batch.num_rows() {
            out.insert((m.value(i).to_string(), u.value(i).to_string()), a.value(i));
        }
    }
    Ok(out)
}

/// `batch` with `columns` appended after its own.
pub(crate) fn append_columns(
    batch: &RecordBatch,
    columns: Vec<(Field, ArrayRef)>,
) -> Result<RecordBatch> {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut arrays = batch.columns().to_vec();
    for (field, array) in columns {
        fields.push(field);
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

/// Column `i` as Utf8 (SQL strings may arrive as Utf8View).
pub(crate) fn string_col(batch: &RecordBatch, i: usize) -> Result<StringArray> {
    let c = batch
        .columns()
        .get(i)
        .ok_or_else(|| EngineError::ledger(format!("no column {i}")))?;
    Ok(cast(c, &DataType::Utf8)?.as_string::<i32>().clone())
}

/// The Utf8 column `name` of `batch`, borrowed (no cast): an error names `what` reads it.
pub(crate) fn utf8_named<'a>(
    batch: &'a RecordBatch,
    name: &str,
    what: &str,
) -> Result<&'a StringArray> {
    named(batch, name, what)?
        .as_string_opt::<i32>()
        .ok_or_else(|| EngineError::ledger(format!("{what}: '{name}' is not Utf8")))
}

/// The decimal column `name` of `batch`, borrowed (no cast).
pub(crate) fn decimal_named<'a>(
    batch: &'a RecordBatch,
    name: &str,
    what: &str,
) -> Result<&'a Decimal128Array> {
    named(batch, name, what)?
        .as_primitive_opt::<Decimal128Type>()
        .ok_or_else(|| EngineError::ledger(format!("{what}: '{name}' is not a decimal")))
}

/// `batch`'s columns named as `schema`'s, cast to their types.
pub(crate) fn conform_to(
    batch: &RecordBatch,
    schema: &SchemaRef,
    what: &str,
) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| Ok(cast(named(batch, f.name(), what)?, f.data_type())?))
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// The column `name` of `batch`.
pub(crate) fn named<'a>(batch: &'a RecordBatch, name: &str, what: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| EngineError::ledger(format!("{what}: no column '{name}'")))
}

/// Column `i` as DECIMAL(38, `scale`).
pub(crate) fn decimal_col(batch: &RecordBatch, i: usize, scale: i8) -> Result<Decimal128Array> {
    let c = batch
        .columns()
        .get(i)
        .ok_or_else(|| EngineError::ledger(format!("no column {i}")))?;
    Ok(cast(c, &DataType::Decimal128(38, scale))?
        .as_primitive::<Decimal128Type>()
        .clone())
}

fn month_rows_batch(rows: &[MonthRow]) -> Result<RecordBatch> {
    let mut dates = Vec::with_capacity(rows.len());
    for r in rows {
        dates.push(allocation::month_end_days(&r.month).ok_or_else(|| {
            EngineError::ledger(format!("'{}' is not a month (YYYY-MM)", r.month))
        })?);
    }
    let nulls = || -> ArrayRef { Arc::new(StringArray::from(vec![None::<&str>; rows.len()])) };
    // The ledger's columns without the `month` partition (added by the final SELECT), with
    // the amount at the working DECIMAL(38,2) that the final SELECT narrows, as b_base's.
    let schema = Arc::new(Schema::new(
        store::ledger_schema()
            .fields()
            .iter()
            .filter(|f| f.name() != "month")
            .map(|f| match f.name().as_str() {
                "amount" => Arc::new(Field::new("amount", DataType::Decimal128(38, 2), true)),
                _ => Arc::clone(f),
            })
            .collect::<Vec<_>>(),
    ));
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Date32Array::from(dates)),
            nulls(),
            nulls(),
            nulls(),
            nulls(),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.unit_id.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.account.as_str()),
            )),
            Arc::new(
                Decimal128Array::from_iter_values(rows.iter().map(|r| r.cents))
                    .with_precision_and_scale(38, 2)?,
            ),
            Arc::new(Int64Array::from(vec![None::<i64>; rows.len()])),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.source.as_str()),
            )),
        ],
    )?)
}
