//! P&L cubes: declared in the model, materialized as Parquet, refreshed month by month.
//!
//! ```text
//!  ledger/_current ─► LedgerManifest: month → fingerprint of its rows
//!        │
//!        │  refresh(cube):  recover (delete unpublished builds)
//!        │                  compare each month's inputs (ledger [+ hours]) and the definition
//!        │                  with the current cube manifest ─► the months to rebuild
//!        ▼
//!  plan::leaf_sql (a run of those months, ≤ LEAF_ROWS_PER_RUN ledger rows) ─► plan::sets_sql
//!        │  ─► one Parquet file per month
//!        │  check::CubeChecks on each month's rows, in memory, before they are written
//!        │  (totals = the ledger's, summed by account once for every cube; rollups = Σ children)
//!        ▼
//!  store::publish: manifest (rebuilt months → new files, others → their old files), `_current`
//!        │  store::apply_retention: replaced versions past the retention window are removed
//!        ▼
//!  register: `cubes.<name>` = the manifest's files + KPI columns     `amoeba_cubes` = status
//! ```
//!
//! A cube version never mixes states: it is published only when every month it names is
//! written and checked; the previous version stays served if anything fails (the error is in
//! `amoeba_cubes.last_error`). Unchanged months are not rewritten, so adding a day of exports
//! rewrites the months the ledger changed in, nothing else.

mod check;
mod plan;
mod route;
mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amoeba_catalog::Warehouse;
use amoeba_catalog::cube::{CubeDef, DimensionSource};
use amoeba_catalog::model::Model;
use datafusion::arrow::array::{
    ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::compute::kernels::cmp::eq;
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;

use crate::error::{EngineError, Result};
use crate::fingerprint::{self, Fingerprint};
use crate::ledger::{CheckRow, LedgerManifest, Status};
use crate::objects::{self, next_version, now_ms};
use crate::session::CATALOG_NAME;

pub use plan::SET_COLUMN;
pub(crate) use route::PnlView;
pub use route::{AmoebaOptions, CubeRouter, CubeRoutes};
pub use store::{CUBES_DIR, CubeManifest, Partition, current_manifest};

/// The SQL schema cubes are registered in: `cubes.<name>`.
pub const CUBES_SCHEMA: &str = "cubes";
/// The status table.
pub const CUBES_TABLE: &str = "amoeba_cubes";

/// What a refresh does.
#[derive(Debug, Clone, Default)]
pub struct RefreshOptions {
    /// Only this cube (all when `None`).
    pub only: Option<String>,
    /// Rebuild every month, changed or not.
    pub full: bool,
    /// When the newest input file landed (Unix ms), for the staleness column.
    pub inputs_newest_ms: Option<u64>,
    /// Leave the cubes refreshed on a schedule only (not on new exports) as they are, if
    /// they have a version (what the poller does when exports land).
    pub skip_scheduled: bool,
}

/// What a refresh did to a cube.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new version was published, rebuilding these months.
    Rebuilt(Vec<String>),
    /// Nothing changed: the current version stays.
    Fresh,
    /// The refresh failed; the previous version (if any) stays served.
    Failed(String),
}

/// A cube's state after a refresh: one row of `amoeba_cubes`.
#[derive(Debug, Clone)]
pub struct CubeStatus {
    /// The cube.
    pub cube: String,
    /// When it is refreshed: `on new exports`, `schedule <cron>`, or both.
    pub refresh: String,
    /// The served version's manifest, if one is published.
    pub manifest: Option<CubeManifest>,
    /// What the last refresh did.
    pub outcome: Outcome,
    /// How long the last refresh took (ms).
    pub refresh_ms: u64,
    /// Unpublished builds removed before it started.
    pub recovered: Vec<String>,
    /// Versions removed by retention after it.
    pub expired: Vec<String>,
    /// The checks of the rebuilt months.
    pub checks: Vec<CheckRow>,
    /// When the newest input landed (Unix ms).
    pub inputs_newest_ms: Option<u64>,
}

/// When `def` is refreshed, in words.
pub fn refresh_policy(def: &CubeDef) -> String {
    let mut parts = Vec::new();
    if def.on_new_exports {
        parts.push("on new exports".to_string());
    }
    if let Some(s) = &def.schedule {
        parts.push(format!("schedule {} (Asia/Shanghai)", s.as_str()));
    }
    if parts.is_empty() {
        parts.push("manual (amoeba refresh)".to_string());
    }
    parts.join(", ")
}

impl CubeStatus {
    /// The status of a cube this refresh did not rebuild: its published version, if any.
    pub(crate) async fn unrefreshed(
        warehouse: &Warehouse,
        def: &CubeDef,
        outcome: Outcome,
    ) -> Result<CubeStatus> {
        Ok(CubeStatus {
            cube: def.name.clone(),
            refresh: refresh_policy(def),
            manifest: current_manifest(warehouse, &def.name).await?,
            outcome,
            refresh_ms: 0,
            recovered: Vec::new(),
            expired: Vec::new(),
            checks: Vec::new(),
            inputs_newest_ms: None,
        })
    }

    /// `rebuilt`, `fresh`, `failed` or `empty` (never built).
    pub fn status(&self) -> &'static str {
        match (&self.outcome, &self.manifest) {
            (Outcome::Failed(_), _) => "failed",
            (_, None) => "empty",
            (Outcome::Rebuilt(_), _) => "rebuilt",
            (Outcome::Fresh, _) => "fresh",
        }
    }
}

/// Dimension tables, read once per refresh from the serving session.
struct Inputs {
    skus: Option<RecordBatch>,
    hours: Option<RecordBatch>,
    units: RecordBatch,
}

/// Refreshes the model's cubes (or `options.only`) from the published ledger `ledger`.
/// `ctx` serves the warehouse (the `skus` and `hours` views are read from it). One cube's
/// failure does not stop the others: it is reported in its status.
pub async fn refresh(
    ctx: &SessionContext,
    warehouse: &Warehouse,
    model: &Model,
    ledger: &LedgerManifest,
    options: &RefreshOptions,
) -> Result<Vec<CubeStatus>> {
    if let Some(only) = &options.only
        && model.cube(only).is_none()
    {
        let known: Vec<&str> = model.cubes.iter().map(|c| c.name.as_str()).collect();
        return Err(EngineError::Cube {
            cube: only.clone(),
            reason: format!("no such cube in the model (cubes: {})", known.join(", ")),
        });
    }
    let mut cubes: Vec<&CubeDef> = Vec::new();
    for c in &model.cubes {
        if options.only.as_ref().is_some_and(|o| *o != c.name) {
            continue;
        }
        if options.skip_scheduled
            && !c.on_new_exports
            && current_manifest(warehouse, &c.name).await?.is_some()
        {
            continue;
        }
        cubes.push(c);
    }
    let needs = |s: DimensionSource| cubes.iter().any(|c| c.uses(s));
    let inputs = Inputs {
        skus: if needs(DimensionSource::SkuMaster) {
            Some(
                collect_one(
                    ctx,
                    "SELECT sku, brand, category, spu FROM skus ORDER BY sku",
                )
                .await?,
            )
        } else {
            None
        },
        hours: if cubes.iter().any(|c| c.has_measure("hours")) {
            Some(
                collect_one(
                    ctx,
                    "SELECT month, unit_id, CAST(hours AS DECIMAL(38,2)) AS hours FROM hours ORDER BY month, unit_id",
                )
                .await?,
            )
        } else {
            None
        },
        units: crate::ledger::units_batch(model)?,
    };
    let mut ledger_totals = LedgerTotals::default();
    let mut out = Vec::new();
    for def in cubes {
        let started = Instant::now();
        let recovered = store::recover(warehouse, &def.name).await?;
        let result = refresh_one(
            warehouse,
            def,
            ledger,
            &inputs,
            &mut ledger_totals,
            options.full,
        )
        .await;
        let (outcome, checks) = match result {
            Ok(r) => r,
            Err(e) => (Outcome::Failed(e.to_string()), Vec::new()),
        };
        if let Outcome::Failed(reason) = &outcome {
            log::error!("cube {}: refresh failed: {reason}", def.name);
        }
        let expired = store::apply_retention(warehouse, &def.name, def.retention).await?;
        let manifest = current_manifest(warehouse, &def.name).await.unwrap_or(None);
        let status = CubeStatus {
            cube: def.name.clone(),
            refresh: refresh_policy(def),
            manifest,
            outcome,
            refresh_ms: elapsed_ms(started),
            recovered,
            expired,
            checks,
            inputs_newest_ms: options.inputs_newest_ms,
        };
        log::info!(
            "cube {}: {} in {} ms",
            def.name,
            status.status(),
            status.refresh_ms
        );
        out.push(status);
    }
    Ok(out)
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

async fn collect_one(ctx: &SessionContext, sql: &str) -> Result<RecordBatch> {
    let df = ctx.sql(sql).await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    Ok(datafusion::arrow::compute::concat_batches(
        &schema, &batches,
    )?)
}

/// The fingerprint of what, besides the ledger, decides every month of `def`: the definition
/// itself and the dimension tables it joins.
fn definition_fingerprint(def: &CubeDef, inputs: &Inputs) -> Result<String> {
    let mut text = format!(
        "{:?}",
        CubeDef {
            line: 0,
            ..def.clone()
        }
    );
    let mut add = |name: &str, batch: &RecordBatch| -> Result<()> {
        text.push_str(&format!(
            "|{name}:{}",
            fingerprint::of_batch(batch)?.encode()
        ));
        Ok(())
    };
    if def.uses(DimensionSource::SkuMaster)
        && let Some(skus) = &inputs.skus
    {
        add("skus", skus)?;
    }
    if def.uses(DimensionSource::UnitTree) {
        add("units", &inputs.units)?;
    }
    Ok(fingerprint::of_text(&text))
}

/// Month → the fingerprint of the inputs of that month of `def`.
fn month_inputs(
    def: &CubeDef,
    ledger: &LedgerManifest,
    inputs: &Inputs,
) -> Result<BTreeMap<String, String>> {
    let mut months: BTreeMap<String, String> = ledger.months.clone();
    if def.has_measure("hours")
        && let Some(hours) = &inputs.hours
    {
        for (month, f) in fingerprint::by_key(std::slice::from_ref(hours), "month")? {
            let entry = months.entry(month).or_default();
            entry.push_str(&format!("+hours:{}", f.encode()));
        }
    }
    Ok(months)
}

/// The most ledger rows one leaf query of a cube reads: the rebuilt months are built in runs
/// of consecutive months up to this many rows (a month over it is a run of its own). A
/// refresh by delta rebuilds a few months and builds them in one query, where a query per
/// month cost a plan and a pass over the files each; a full build of a large ledger keeps to
/// about a month in memory at a time, as a month at scale 10 is about this many rows.
const LEAF_ROWS_PER_RUN: u64 = 4_000_000;

/// `months` in order, cut into runs of at most [`LEAF_ROWS_PER_RUN`] ledger rows (from the
/// ledger manifest's fingerprints; a month without a count is a run of its own).
fn month_runs(months: &[String], ledger: &LedgerManifest) -> Vec<Vec<String>> {
    let mut runs: Vec<Vec<String>> = Vec::new();
    let mut rows_in_last = 0u64;
    for month in months {
        let rows = ledger
            .months
            .get(month)
            .and_then(|f| Fingerprint::rows_of(f))
            .unwrap_or(LEAF_ROWS_PER_RUN);
        match runs.last_mut() {
            Some(run) if rows_in_last.saturating_add(rows) <= LEAF_ROWS_PER_RUN => {
                run.push(month.clone());
                rows_in_last += rows;
            }
            _ => {
                runs.push(vec![month.clone()]);
                rows_in_last = rows;
            }
        }
    }
    runs
}

/// The ledger's totals by month and account ([`check::ledger_totals`]) of the months the
/// cubes of one refresh rebuild, each month summed once for all of them.
#[derive(Default)]
struct LedgerTotals {
    months: BTreeSet<String>,
    schema: Option<SchemaRef>,
    batches: Vec<RecordBatch>,
}

impl LedgerTotals {
    /// Registers the totals of `months` in `ctx` (which has the ledger) as
    /// [`check::LEDGER_TOTALS_TABLE`], summing the months not summed yet.
    async fn register(&mut self, ctx: &SessionContext, months: &[String]) -> Result<()> {
        if months.is_empty() {
            return Ok(());
        }
        let missing: Vec<String> = months
            .iter()
            .filter(|m| !self.months.contains(*m))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let (schema, batches) = check::ledger_totals(ctx, Some(&missing)).await?;
            self.schema = Some(schema);
            self.batches.extend(batches);
            self.months.extend(missing);
        }
        let schema = self.schema.clone().ok_or_else(|| {
            EngineError::ledger("cube checks: the ledger's totals have no schema".to_string())
        })?;
        ctx.register_table(
            check::LEDGER_TOTALS_TABLE,
            Arc::new(MemTable::try_new(schema, vec![self.batches.clone()])?),
        )?;
        Ok(())
    }
}

async fn refresh_one(
    warehouse: &Warehouse,
    def: &CubeDef,
    ledger: &LedgerManifest,
    inputs: &Inputs,
    ledger_totals: &mut LedgerTotals,
    full: bool,
) -> Result<(Outcome, Vec<CheckRow>)> {
    let started = Instant::now();
    let current = match current_manifest(warehouse, &def.name).await {
        Ok(m) => m,
        Err(e) => {
            log::warn!(
                "cube {}: current manifest unreadable ({e}): full rebuild",
                def.name
            );
            None
        }
    };
    let definition = definition_fingerprint(def, inputs)?;
    let wanted = month_inputs(def, ledger, inputs)?;
    let previous: BTreeMap<String, String> = match &current {
        Some(m) if m.definition == definition && !full => store::inputs(m),
        _ => BTreeMap::new(),
    };
    let rebuild: Vec<String> = wanted
        .iter()
        .filter(|(m, input)| previous.get(*m) != Some(*input))
        .map(|(m, _)| m.clone())
        .collect();
    let dropped = previous.keys().any(|m| !wanted.contains_key(m));
    if rebuild.is_empty() && !dropped && current.is_some() {
        return Ok((Outcome::Fresh, Vec::new()));
    }

    // Build the rebuilt months in a private session.
    let version = next_version(current.as_ref().map(|m| m.version.as_str()));
    let ctx = SessionContext::new();
    amoeba_udfs::register_all(&ctx).map_err(datafusion::error::DataFusionError::from)?;
    crate::ledger::register_published(&ctx, warehouse, &ledger.version).await?;
    register_batch(&ctx, plan::UNITS_TABLE, &inputs.units)?;
    if let Some(skus) = &inputs.skus {
        register_batch(&ctx, plan::SKUS_TABLE, skus)?;
    }
    if let Some(hours) = &inputs.hours {
        register_batch(&ctx, plan::HOURS_TABLE, hours)?;
    }
    ledger_totals.register(&ctx, &rebuild).await?;
    let mut checks = check::CubeChecks::new(def);
    let schema = plan::schema(def);
    // Month → (file, rows, rows per set) of the months this refresh writes.
    let mut files: BTreeMap<String, (String, u64, BTreeMap<String, u64>)> = BTreeMap::new();
    // A run of months at a time (every grouping set keeps the month): what is in memory at
    // once is a run's leaf and sets, however many months the ledger has.
    let (mut leaf_time, mut sets_time, mut check_time, mut write_time) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    checks.expect(&ctx, &rebuild).await?;
    for run in month_runs(&rebuild, ledger) {
        let phase = Instant::now();
        let leaf = ctx.sql(&plan::leaf_sql(def, &run)).await?;
        let leaf_schema: SchemaRef = Arc::new(leaf.schema().as_arrow().clone());
        let leaf = leaf.collect().await?;
        ctx.deregister_table(plan::LEAF_TABLE)?;
        ctx.register_table(
            plan::LEAF_TABLE,
            Arc::new(MemTable::try_new(leaf_schema, vec![leaf])?),
        )?;
        leaf_time += phase.elapsed();
        let phase = Instant::now();
        let rows: Vec<RecordBatch> = ctx
            .sql(&plan::sets_sql(def))
            .await?
            .collect()
            .await?
            .iter()
            .map(|b| conform(b, &schema))
            .collect::<Result<_>>()?;
        sets_time += phase.elapsed();
        for month in &run {
            let part = month_rows(&rows, month)?;
            // Checked before it is written: the month's totals against the ledger's, its
            // coarser sets against the finest one summed.
            let phase = Instant::now();
            checks.month(month, &part)?;
            check_time += phase.elapsed();
            let phase = Instant::now();
            let n = part.iter().map(|b| b.num_rows() as u64).sum();
            let sets = rows_per_set(&part)?;
            let bytes = to_parquet(&schema, &part, &format!("cube {} {month}", def.name))?;
            let file = store::write_partition(warehouse, &def.name, &version, month, bytes).await?;
            files.insert(month.clone(), (file, n, sets));
            write_time += phase.elapsed();
        }
    }
    ctx.deregister_table(plan::LEAF_TABLE)?;
    let old: BTreeMap<String, Partition> = current
        .iter()
        .flat_map(|m| m.partitions.iter().cloned())
        .map(|p| (p.month.clone(), p))
        .collect();
    let partitions: Vec<Partition> = wanted
        .iter()
        .map(|(month, input)| match files.get(month) {
            Some((file, rows, sets)) => Partition {
                month: month.clone(),
                file: file.clone(),
                rows: *rows,
                sets: sets.clone(),
                input: input.clone(),
            },
            None => old.get(month).cloned().unwrap_or(Partition {
                month: month.clone(),
                file: String::new(),
                rows: 0,
                sets: BTreeMap::new(),
                input: input.clone(),
            }),
        })
        .collect();
    let manifest = CubeManifest {
        cube: def.name.clone(),
        version: version.clone(),
        definition,
        ledger_version: ledger.version.clone(),
        built_at_ms: now_ms(),
        build_ms: 0,
        rebuilt: rebuild.clone(),
        partitions,
    };

    let checks = checks.rows();
    log::debug!(
        "cube {}: {} month(s): leaf {:.2}s, grouping sets {:.2}s, checked {:.2}s, written {:.2}s",
        def.name,
        rebuild.len(),
        leaf_time.as_secs_f64(),
        sets_time.as_secs_f64(),
        check_time.as_secs_f64(),
        write_time.as_secs_f64(),
    );
    if let Some(bad) = checks.iter().find(|c| c.status == Status::Fail) {
        return Err(EngineError::Cube {
            cube: def.name.clone(),
            reason: format!(
                "check {} failed for {}: {} — version {version} not published",
                bad.check, bad.scope, bad.detail
            ),
        });
    }
    let manifest = CubeManifest {
        build_ms: elapsed_ms(started),
        ..manifest
    };
    store::publish(warehouse, &manifest).await?;
    Ok((Outcome::Rebuilt(rebuild), checks))
}

fn register_batch(ctx: &SessionContext, name: &str, batch: &RecordBatch) -> Result<()> {
    ctx.register_table(
        name,
        Arc::new(MemTable::try_new(
            batch.schema(),
            vec![vec![batch.clone()]],
        )?),
    )?;
    Ok(())
}

/// `batch` cast to the stored schema (the plans may produce `Utf8View` strings).
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let cols = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| cast(c, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), cols)?)
}

/// The rows of `month`.
fn month_rows(rows: &[RecordBatch], month: &str) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for b in rows {
        let col = b.column(b.schema().index_of("month")?);
        let mask = eq(col, &StringArray::new_scalar(month))?;
        let part = filter_record_batch(b, &mask)?;
        if part.num_rows() > 0 {
            out.push(part);
        }
    }
    Ok(out)
}

/// Rows per grouping set (`_set` label) of a month's batches.
fn rows_per_set(batches: &[RecordBatch]) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for b in batches {
        let labels = cast(b.column(b.schema().index_of(SET_COLUMN)?), &DataType::Utf8)?;
        for label in labels.as_string::<i32>().iter().flatten() {
            *out.entry(label.to_string()).or_insert(0) += 1;
        }
    }
    Ok(out)
}

/// A month of a cube as a Parquet file's bytes (ZSTD, its columns encoded in parallel as the
/// ledger's own files are: `ledger::batch_to_parquet`).
fn to_parquet(schema: &SchemaRef, batches: &[RecordBatch], what: &str) -> Result<Vec<u8>> {
    let rows = datafusion::arrow::compute::concat_batches(schema, batches)?;
    crate::ledger::batch_to_parquet(&rows, what)
}

/// The table of a manifest's files (an empty table for a cube without months).
fn listing_table(
    ctx: &SessionContext,
    warehouse: &Warehouse,
    def: &CubeDef,
    manifest: &CubeManifest,
) -> Result<Arc<dyn datafusion::catalog::TableProvider>> {
    warehouse.register(ctx);
    let schema = plan::schema(def);
    let urls = manifest
        .partitions
        .iter()
        .filter(|p| !p.file.is_empty())
        .map(|p| {
            ListingTableUrl::parse(objects::file_url(
                warehouse,
                &store::cube_file(&def.name, &p.file),
            ))
        })
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    if urls.is_empty() {
        return Ok(Arc::new(MemTable::try_new(schema, vec![vec![]])?));
    }
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// Registers the published version of every cube of `model` as `cubes.<name>` (stored columns
/// plus KPI columns) in `ctx`; returns the manifests found. The cubes built from `ledger`
/// (the ledger `ctx` serves) become the session's routes: queries over `pnl` they can answer
/// are answered from them.
pub async fn register(
    ctx: &SessionContext,
    warehouse: &Warehouse,
    model: &Model,
    ledger: Option<&LedgerManifest>,
) -> Result<Vec<(String, Option<CubeManifest>)>> {
    let catalog = ctx
        .catalog(CATALOG_NAME)
        .ok_or_else(|| EngineError::setup(format!("no catalog {CATALOG_NAME}")))?;
    // A new schema, filled, then swapped in whole: a reader sees the old cubes or the new.
    let schema = Arc::new(MemorySchemaProvider::new());
    let mut out = Vec::new();
    let mut routes = Vec::new();
    for def in &model.cubes {
        let manifest = current_manifest(warehouse, &def.name).await?;
        if let Some(m) = &manifest {
            let table = listing_table(ctx, warehouse, def, m)?;
            if ledger.is_some_and(|l| built_from(m, l)) {
                routes.push(route::Route {
                    def: def.clone(),
                    table: Arc::clone(&table),
                    rows: m.rows(),
                    set_rows: m.set_rows(),
                });
            }
            let df = ctx.read_table(table)?;
            let mut exprs: Vec<String> = std::iter::once(SET_COLUMN.to_string())
                .chain(def.dimensions.iter().map(|d| d.column().to_string()))
                .chain(def.measures.iter().map(|m| m.name.clone()))
                .collect();
            exprs.extend(plan::kpi_exprs(def));
            let refs: Vec<&str> = exprs.iter().map(String::as_str).collect();
            let view = df.select_exprs(&refs)?.into_view();
            schema.register_table(def.name.clone(), view)?;
        }
        out.push((def.name.clone(), manifest));
    }
    let routes_of = ctx.state().config().get_extension::<CubeRoutes>();
    if let Some(r) = &routes_of {
        r.set(Vec::new());
    }
    catalog.register_schema(CUBES_SCHEMA, schema)?;
    if let Some(r) = routes_of {
        r.set(routes);
    }
    Ok(out)
}

/// The columns of `amoeba_cubes` (and of the answer to `REFRESH CUBE`).
pub(crate) fn status_schema() -> Schema {
    let ts = || DataType::Timestamp(TimeUnit::Millisecond, None);
    Schema::new(vec![
        Field::new("cube", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("refresh", DataType::Utf8, false),
        Field::new("version", DataType::Utf8, true),
        Field::new("rows", DataType::Int64, true),
        Field::new("months", DataType::Int64, true),
        Field::new("rebuilt_months", DataType::Utf8, true),
        Field::new("built_at", ts(), true),
        Field::new("build_ms", DataType::Int64, true),
        Field::new("ledger_version", DataType::Utf8, true),
        Field::new("inputs_newest", ts(), true),
        Field::new("staleness_s", DataType::Int64, true),
        Field::new("last_error", DataType::Utf8, true),
    ])
}

/// One row of `amoeba_cubes` per status.
pub(crate) fn status_batch(statuses: &[CubeStatus]) -> Result<RecordBatch> {
    let now = now_ms();
    let i64_of = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let text = |f: &dyn Fn(&CubeStatus) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(
            statuses.iter().map(f).collect::<Vec<_>>(),
        ))
    };
    let int = |f: &dyn Fn(&CubeStatus) -> Option<u64>| -> ArrayRef {
        Arc::new(Int64Array::from(
            statuses
                .iter()
                .map(|s| f(s).map(i64_of))
                .collect::<Vec<_>>(),
        ))
    };
    let time = |f: &dyn Fn(&CubeStatus) -> Option<u64>| -> ArrayRef {
        Arc::new(TimestampMillisecondArray::from(
            statuses
                .iter()
                .map(|s| f(s).map(i64_of))
                .collect::<Vec<_>>(),
        ))
    };
    let cols: Vec<ArrayRef> = vec![
        text(&|s| Some(s.cube.clone())),
        text(&|s| Some(s.status().to_string())),
        text(&|s| Some(s.refresh.clone())),
        text(&|s| s.manifest.as_ref().map(|m| m.version.clone())),
        int(&|s| s.manifest.as_ref().map(CubeManifest::rows)),
        int(&|s| s.manifest.as_ref().map(|m| m.partitions.len() as u64)),
        text(&|s| s.manifest.as_ref().map(|m| m.rebuilt.join(","))),
        time(&|s| s.manifest.as_ref().map(|m| m.built_at_ms)),
        int(&|s| s.manifest.as_ref().map(|m| m.build_ms)),
        text(&|s| s.manifest.as_ref().map(|m| m.ledger_version.clone())),
        time(&|s| s.inputs_newest_ms),
        // How long inputs newer than the served version have been waiting.
        int(&|s| {
            let newest = s.inputs_newest_ms?;
            let built = s.manifest.as_ref().map_or(0, |m| m.built_at_ms);
            Some(if built >= newest {
                0
            } else {
                now.saturating_sub(newest) / 1000
            })
        }),
        text(&|s| match &s.outcome {
            Outcome::Failed(e) => Some(e.clone()),
            _ => None,
        }),
    ];
    Ok(RecordBatch::try_new(Arc::new(status_schema()), cols)?)
}

/// Registers (or replaces) `amoeba_cubes` with `statuses`.
pub fn register_status(ctx: &SessionContext, statuses: &[CubeStatus]) -> Result<()> {
    let batch = status_batch(statuses)?;
    if ctx.table_exist(CUBES_TABLE)? {
        ctx.deregister_table(CUBES_TABLE)?;
    }
    ctx.register_table(
        CUBES_TABLE,
        Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]])?),
    )?;
    Ok(())
}

/// Whether `manifest` was built from ledger rows equal to `ledger`'s, month by month (a cube
/// left unchanged by a refresh keeps naming the ledger version it was built from).
pub fn built_from(manifest: &CubeManifest, ledger: &LedgerManifest) -> bool {
    let ledger_part = |input: &str| input.split("+hours:").next().unwrap_or("").to_string();
    let mine: BTreeMap<&str, String> = manifest
        .partitions
        .iter()
        .map(|p| (p.month.as_str(), ledger_part(&p.input)))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    mine.len() == ledger.months.len()
        && ledger
            .months
            .iter()
            .all(|(m, f)| mine.get(m.as_str()) == Some(f))
}

/// Checks every published cube of `model` against the published ledger it was built from
/// (`amoeba check`). `serving` is a session with the warehouse's views (for `hours`).
pub async fn check_published_warehouse(
    warehouse: &Warehouse,
    model: &Model,
    serving: &SessionContext,
) -> Result<Vec<CheckRow>> {
    let warn = |scope: &str, detail: String| CheckRow {
        check: "cube_published".into(),
        scope: scope.to_string(),
        status: Status::Warn,
        expected: None,
        actual: None,
        detail,
    };
    if model.cubes.is_empty() {
        return Ok(Vec::new());
    }
    let Some(ledger) = crate::ledger::current_manifest(warehouse).await? else {
        return Ok(vec![warn(
            "cubes",
            "no published ledger: run `amoeba refresh`".into(),
        )]);
    };
    let ctx = crate::session::new_session()?;
    crate::ledger::register_published(&ctx, warehouse, &ledger.version).await?;
    if model.cubes.iter().any(|c| c.has_measure("hours")) {
        let hours = collect_one(
            serving,
            "SELECT month, unit_id, CAST(hours AS DECIMAL(38,2)) AS hours FROM hours",
        )
        .await?;
        register_batch(&ctx, plan::HOURS_TABLE, &hours)?;
    }
    let (schema, totals) = check::ledger_totals(&ctx, None).await?;
    ctx.register_table(
        check::LEDGER_TOTALS_TABLE,
        Arc::new(MemTable::try_new(schema, vec![totals])?),
    )?;
    let mut out = Vec::new();
    for (name, manifest) in register(&ctx, warehouse, model, None).await? {
        let Some(def) = model.cube(&name) else {
            continue;
        };
        match manifest {
            None => out.push(warn(&name, "never refreshed: run `amoeba refresh`".into())),
            Some(m) if !built_from(&m, &ledger) => out.push(warn(
                &name,
                format!(
                    "built from ledger {}, whose months differ from the published ledger {}: run `amoeba refresh`",
                    m.ledger_version, ledger.version
                ),
            )),
            Some(_) => {
                let table = format!("{CUBES_SCHEMA}.{name}");
                out.extend(check::check(&ctx, def, &table, None).await?);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(months: &[(&str, &str)]) -> LedgerManifest {
        LedgerManifest {
            version: "v1".into(),
            published_at_ms: 0,
            rows: 0,
            months: months
                .iter()
                .map(|(m, f)| (m.to_string(), f.to_string()))
                .collect(),
            inputs: None,
            checks: Vec::new(),
        }
    }

    #[test]
    fn months_are_built_in_runs_that_stay_under_the_row_budget() {
        let half = LEAF_ROWS_PER_RUN / 2;
        let ledger = ledger(&[
            ("2025-01", &format!("{half}:00")),
            ("2025-02", &format!("{half}:00")),
            ("2025-03", "1:00"),
            ("2025-04", &format!("{}:00", LEAF_ROWS_PER_RUN * 2)),
            ("2025-05", "10:00"),
            ("2025-06", "not a fingerprint"),
            ("2025-07", "10:00"),
        ]);
        let months: Vec<String> = ledger.months.keys().cloned().collect();
        let runs = month_runs(&months, &ledger);
        let names: Vec<Vec<&str>> = runs
            .iter()
            .map(|r| r.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(
            names,
            vec![
                vec!["2025-01", "2025-02"],
                vec!["2025-03"],
                vec!["2025-04"],
                vec!["2025-05"],
                vec!["2025-06"],
                vec!["2025-07"],
            ]
        );
        // A month the ledger does not have (hours only) is a run of its own, too.
        let runs = month_runs(&["2025-05".into(), "2030-01".into()], &ledger);
        assert_eq!(runs.len(), 2);
        assert!(month_runs(&[], &ledger).is_empty());
    }
}
