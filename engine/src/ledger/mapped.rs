//! The mapped rows a ledger version was built from, kept with it, and those of the next
//! version made from them and the files a change adds: a refresh by delta no longer reads,
//! de-duplicates and maps every export (docs/incremental.md, "The mapped rows").
//!
//! Every row of a `raw.<view>_mapped` view carries where it came from: `_delivery` (and
//! `_joined_delivery` for a part that joins two sources), `_part` (which mapping part made
//! it) and `_key`. A part is mapped in one of two ways, and `_key` says which:
//!
//! - **row by row** (every built-in part but one): each mapped row is made from one row of
//!   one source, and `_key` is that source row's natural key (shop and key columns, as text).
//!   The newest delivery of a key wins, so an added file that delivers a key again replaces
//!   exactly the rows whose `_key` it is; a new key adds rows and replaces none.
//! - **group by group** (a part that names `group`: tmall's order lines join an order's header
//!   to its items and spread its postage over them): `_key` is the group's key. A group an
//!   added file touches is mapped again whole, from the files that hold any delivery of any
//!   of its rows' keys, which each version's group index lists (`_key`, `_group`,
//!   `_delivery` of every delivered row of the part's sources, every delivery of it).
//!
//! ```text
//!  version N: _mapped/<view>/<month>.rows (every mapped row, a file per month of its
//!                                         delivery's dt=; deliveries as file paths)
//!             _mapped/group.<part>/<month>.rows (the grouped parts' index)
//!        │
//!        │   added files, mapped on their own ── row-by-row parts: their rows, and their
//!        │        │                                 keys, whose old rows give way
//!        │        └── their groups' keys, and the groups their keys were in ─► the files
//!        │             of every delivery of those groups' keys ─► the groups mapped again
//!        ▼
//!  version N+1: N's rows − the replaced + the added + the groups mapped again
//! ```
//!
//! An added file that sorts before a served file of its kind and shop (a late delivery)
//! loses the keys that file holds too: those rows stay as published. Deliveries are
//! renumbered each time the warehouse is opened, so a version keeps them as file paths. A
//! version writes only the months whose rows changed (for a day of exports, the day's
//! month), and copies the other months' files from the version it was patched from.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use amoeba_catalog::mapping::sql_string;
use amoeba_catalog::{Catalog, PlatformPart, RAW_SCHEMA, UNIFIED_VIEWS, Warehouse};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, DictionaryArray, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use datafusion::arrow::compute::kernels::boolean::not;
use datafusion::arrow::compute::{cast, filter_record_batch, take};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef};
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use super::staging::Staging;
use super::store::{batch_from_parquet, parquet_schema};
use super::{conform_to, lap, materialize_mapped, named};
use crate::error::{EngineError, Result};
use crate::objects;
use crate::session::new_session;

/// The folder of a version that keeps its mapped rows.
const MAPPED_DIR: &str = "_mapped";

/// The columns that name deliveries: numbers in memory, file paths at rest.
const DELIVERY_COLUMNS: [&str; 2] = ["_delivery", "_joined_delivery"];

/// Rows per batch of a registered table: a table of one large batch would be scanned by one
/// core.
const BATCH_ROWS: usize = 64 * 1024;

/// The mapped rows of every unified view, and the group index of each grouped part.
#[derive(Debug, Clone)]
pub(crate) struct MappedRows {
    /// Each unified view's mapped rows, by view name.
    views: BTreeMap<String, Vec<RecordBatch>>,
    /// Each grouped part's index (by part id): `_key`, `_group`, `_delivery`.
    groups: BTreeMap<String, Vec<RecordBatch>>,
    /// The file of each delivery the rows name.
    paths: Arc<HashMap<i64, String>>,
    /// The month (`YYYY-MM` of its `dt=`; `none` without one) each delivery's rows are kept
    /// under: a version keeps each set of rows in a file per month.
    months: Arc<HashMap<i64, String>>,
    /// The version these were read from (and patched since), and the months each set's
    /// rows changed in: its other months' files are copied from that version.
    patched_from: Option<PatchedFrom>,
}

/// Where a patched set of mapped rows came from ([`MappedRows::write`] copies the files of
/// the months that did not change).
#[derive(Debug, Clone)]
struct PatchedFrom {
    version: String,
    changed: BTreeMap<String, BTreeSet<String>>,
}

/// What [`patched`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappedPatch {
    /// The published version's mapped rows.
    pub published: usize,
    /// Of them, those that gave way: made from a key an added file delivers again, or of a
    /// group it touches.
    pub replaced: usize,
    /// Rows mapped row by row from the added files.
    pub added: usize,
    /// The rows of the groups the added files touch, mapped again.
    pub regrouped: usize,
    /// How many groups.
    pub groups: usize,
    /// The files read for them besides the added ones.
    pub group_files: usize,
    /// Keys of the added files that a later delivery holds too (a late file): their
    /// published rows stay.
    pub later: usize,
}

impl std::fmt::Display for MappedPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "mapped rows: the published {}, {} replaced; {} from the added files, {} of {} \
             group(s) mapped again, {} more file(s) read for them",
            self.published,
            self.replaced,
            self.added,
            self.regrouped,
            self.groups,
            self.group_files
        )?;
        if self.later > 0 {
            write!(f, "; {} key(s) a later delivery holds kept", self.later)?;
        }
        Ok(())
    }
}

impl MappedRows {
    /// The mapped rows materialized in `ctx` (`raw.<view>_mapped`, over `catalog`), and the
    /// group index of each grouped part read from its sources' delivered rows.
    pub(crate) async fn of_session(ctx: &SessionContext, catalog: &Catalog) -> Result<MappedRows> {
        let mut views = BTreeMap::new();
        for view in UNIFIED_VIEWS {
            let mapped = TableReference::partial(RAW_SCHEMA, view.mapped_name());
            let df = ctx.table(mapped).await?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            views.insert(
                view.name.to_string(),
                non_empty(df.collect().await?, schema),
            );
        }
        let mut groups = BTreeMap::new();
        for part in catalog.platform_parts().iter().filter(|p| p.grouped) {
            groups.insert(
                part.id.clone(),
                non_empty(group_rows(ctx, part).await?, group_schema()),
            );
        }
        Ok(MappedRows {
            views,
            groups,
            paths: Arc::new(paths_of(catalog)),
            months: Arc::new(months_of(catalog)),
            patched_from: None,
        })
    }

    /// Every set of rows, by the name of its folder: the views' mapped rows, and each grouped
    /// part's index (`group.tmall.order_lines.0`).
    fn sets(&self) -> impl Iterator<Item = (String, &Vec<RecordBatch>)> + '_ {
        self.views
            .iter()
            .map(|(view, rows)| (view.clone(), rows))
            .chain(
                self.groups
                    .iter()
                    .map(|(part, rows)| (group_set(part), rows)),
            )
    }

    /// Writes them under `dir` (a version's folder): each set in a file per month of its
    /// rows' deliveries, deliveries as file paths. Patched rows write only the months that
    /// changed, and copy the others' files from the version they were read from.
    pub(crate) async fn write(&self, warehouse: &Warehouse, dir: &str) -> Result<()> {
        let mut files: Vec<(String, Vec<RecordBatch>)> = Vec::new();
        for (set, batches) in self.sets() {
            let to = |month: &str| format!("{dir}/{MAPPED_DIR}/{set}/{month}.rows");
            let mut kept = false;
            let changed = match &self.patched_from {
                Some(from) => {
                    let changed = from.changed.get(&set).cloned().unwrap_or_default();
                    let base = objects::path(
                        warehouse,
                        &format!("{}/{}/{MAPPED_DIR}/{set}", super::LEDGER_DIR, from.version),
                    );
                    for file in objects::list(warehouse, &base).await? {
                        let Some(month) = file.filename().and_then(|n| n.strip_suffix(".rows"))
                        else {
                            continue;
                        };
                        if !changed.contains(month) {
                            objects::copy(warehouse, &file, &objects::path(warehouse, &to(month)))
                                .await?;
                            kept = true;
                        }
                    }
                    Some(changed)
                }
                None => None,
            };
            for (month, rows) in self.by_month(batches, &set, changed.as_ref())? {
                files.push((to(&month), rows));
                kept = true;
            }
            // A set with no rows at all keeps its schema in an empty file.
            if !kept {
                let empty = batches.iter().take(1).map(|b| b.slice(0, 0)).collect();
                files.push((to(NO_MONTH), empty));
            }
        }
        // Encoding is CPU work: every file at once, on the blocking pool.
        let encoded = futures::future::try_join_all(files.into_iter().map(|(at, rows)| {
            let paths = Arc::clone(&self.paths);
            tokio::task::spawn_blocking(move || {
                let bytes = to_parquet(&paths, &rows, &at)?;
                Ok::<_, EngineError>((at, bytes))
            })
        }))
        .await
        .map_err(|e| EngineError::ledger(format!("writing the mapped rows: {e}")))?;
        for file in encoded {
            let (at, bytes) = file?;
            objects::write(warehouse, &at, bytes).await?;
        }
        Ok(())
    }

    /// `batches` split by the month of each row's delivery (`_delivery`); with `only`, the
    /// rows of those months only.
    fn by_month(
        &self,
        batches: &[RecordBatch],
        set: &str,
        only: Option<&BTreeSet<String>>,
    ) -> Result<BTreeMap<String, Vec<RecordBatch>>> {
        if only.is_some_and(BTreeSet::is_empty) {
            return Ok(BTreeMap::new());
        }
        let mut out: BTreeMap<String, Vec<RecordBatch>> = BTreeMap::new();
        for batch in batches {
            let deliveries = batch
                .column_by_name("_delivery")
                .and_then(|c| c.as_primitive_opt::<Int64Type>())
                .ok_or_else(|| EngineError::ledger(format!("{set}: no BIGINT _delivery")))?;
            let mut rows: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
            for (i, delivery) in deliveries.iter().enumerate() {
                let month = delivery
                    .and_then(|d| self.months.get(&d))
                    .map_or(NO_MONTH, String::as_str);
                if only.is_some_and(|only| !only.contains(month)) {
                    continue;
                }
                let i = u32::try_from(i)
                    .map_err(|_| EngineError::ledger(format!("{set}: a batch too large")))?;
                rows.entry(month).or_default().push(i);
            }
            for (month, indices) in rows {
                let indices = datafusion::arrow::array::UInt32Array::from(indices);
                let columns = batch
                    .columns()
                    .iter()
                    .map(|c| take(c.as_ref(), &indices, None))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                out.entry(month.to_string())
                    .or_default()
                    .push(RecordBatch::try_new(batch.schema(), columns)?);
            }
        }
        Ok(out)
    }

    /// The months of the deliveries of `batches`' rows (`_delivery`).
    fn months_in(&self, batches: &[RecordBatch]) -> BTreeSet<String> {
        let mut deliveries = BTreeSet::new();
        for batch in batches {
            if let Some(column) = batch
                .column_by_name("_delivery")
                .and_then(|c| c.as_primitive_opt::<Int64Type>())
            {
                deliveries.extend(column.iter().flatten());
            }
        }
        deliveries
            .iter()
            .map(|d| {
                self.months
                    .get(d)
                    .map_or(NO_MONTH, String::as_str)
                    .to_string()
            })
            .collect()
    }

    /// Registers `catalog` in `ctx` with these as its mapped rows (`raw.<view>_mapped`, of
    /// the mapping parts' `schemas`), and the unified views over them. The raw tables and
    /// the mapping parts are not registered: the rows are mapped already.
    pub(crate) async fn register(
        &self,
        ctx: &SessionContext,
        catalog: &Catalog,
        schemas: &MappedSchemas,
    ) -> Result<()> {
        let started = Instant::now();
        catalog.register_around_mapped(ctx).await?;
        let registered = started.elapsed();
        let partitions = ctx.state().config().target_partitions().max(1);
        for view in UNIFIED_VIEWS {
            let mapped = TableReference::partial(RAW_SCHEMA, view.mapped_name());
            let schema = schemas.of(view.name)?;
            let mut split = vec![Vec::new(); partitions];
            let mut next = 0;
            for batch in self.views.get(view.name).into_iter().flatten() {
                let batch = conform_to(batch, &schema, view.name)?;
                let mut offset = 0;
                while offset < batch.num_rows() {
                    let length = BATCH_ROWS.min(batch.num_rows() - offset);
                    split[next % partitions].push(batch.slice(offset, length));
                    next += 1;
                    offset += length;
                }
            }
            ctx.register_table(mapped, Arc::new(MemTable::try_new(schema, split)?))?;
        }
        let rows = started.elapsed();
        amoeba_catalog::register_over_mapped(ctx).await?;
        log::debug!(
            "mapped rows registered: the catalog {:.2}s, the rows {:.2}s, the views over them {:.2}s",
            registered.as_secs_f64(),
            (rows - registered).as_secs_f64(),
            (started.elapsed() - rows).as_secs_f64()
        );
        Ok(())
    }
}

/// `batches` as Parquet, each delivery column as the files' paths.
fn to_parquet(paths: &HashMap<i64, String>, batches: &[RecordBatch], at: &str) -> Result<Vec<u8>> {
    let err = |e: &dyn std::fmt::Display| EngineError::ledger(format!("{at}: {e}"));
    let mut writer: Option<datafusion::parquet::arrow::ArrowWriter<Vec<u8>>> = None;
    let schema = batches.first().map(RecordBatch::schema);
    for batch in batches {
        // One schema for the file: sets patched together may differ in nullability.
        let batch = match &schema {
            Some(schema) => conform_to(batch, schema, at)?,
            None => batch.clone(),
        };
        let batch = with_paths(paths, &batch, at)?;
        let writer = match &mut writer {
            Some(writer) => writer,
            None => writer.insert(
                datafusion::parquet::arrow::ArrowWriter::try_new(
                    Vec::new(),
                    batch.schema(),
                    Some(mapped_writer_properties()),
                )
                .map_err(|e| err(&e))?,
            ),
        };
        writer.write(&batch).map_err(|e| err(&e))?;
    }
    // Every set of rows holds a batch, if an empty one (`non_empty`): its schema.
    writer
        .ok_or_else(|| EngineError::ledger(format!("{at}: no schema")))?
        .into_inner()
        .map_err(|e| err(&e))
}

/// `batch` with its delivery columns as the paths of their files (a dictionary: a few
/// thousand files for millions of rows).
fn with_paths(paths: &HashMap<i64, String>, batch: &RecordBatch, at: &str) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if DELIVERY_COLUMNS.contains(&field.name().as_str()) {
            columns.push(paths_column(column, paths, at)?);
            fields.push(Field::new(
                field.name(),
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ));
        } else {
            columns.push(Arc::clone(column));
            fields.push(field.as_ref().clone());
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// How the mapped rows are written: ZSTD, and no dictionary for `_key` (a key is on one row,
/// or a few: a dictionary of millions of distinct texts only costs time).
fn mapped_writer_properties() -> datafusion::parquet::file::properties::WriterProperties {
    datafusion::parquet::file::properties::WriterProperties::builder()
        .set_compression(datafusion::parquet::basic::Compression::ZSTD(
            datafusion::parquet::basic::ZstdLevel::default(),
        ))
        .set_column_dictionary_enabled(
            datafusion::parquet::schema::types::ColumnPath::from("_key"),
            false,
        )
        .build()
}

/// The mapped rows version `version` kept, with their deliveries as `catalog` numbers them
/// (it holds every file they name), or why there are none to take.
pub(crate) async fn published(
    warehouse: &Warehouse,
    version: &str,
    catalog: &Catalog,
) -> Result<std::result::Result<MappedRows, String>> {
    let deliveries = Arc::new(
        catalog
            .files()
            .iter()
            .map(|f| (f.path.clone(), f.delivery))
            .collect::<HashMap<String, i64>>(),
    );
    let dir = format!("{}/{version}/{MAPPED_DIR}", super::LEDGER_DIR);
    let sets: Vec<String> = UNIFIED_VIEWS
        .iter()
        .map(|v| v.name.to_string())
        .chain(
            catalog
                .platform_parts()
                .iter()
                .filter(|p| p.grouped)
                .map(|p| group_set(&p.id)),
        )
        .collect();
    // Every file of every set, read and decoded at once (a decode is CPU work of its own).
    let mut reads = Vec::new();
    for set in &sets {
        let files = objects::list(
            warehouse,
            &objects::path(warehouse, &format!("{dir}/{set}")),
        )
        .await?;
        if files.is_empty() {
            return Ok(Err(format!("version {version} kept no {dir}/{set}")));
        }
        for file in files {
            let set = set.clone();
            let deliveries = Arc::clone(&deliveries);
            let at = file.to_string();
            reads.push(async move {
                let bytes = object_store::ObjectStoreExt::get(warehouse.store().as_ref(), &file)
                    .await
                    .map_err(objects::store_err(&file))?
                    .bytes()
                    .await
                    .map_err(objects::store_err(&file))?
                    .to_vec();
                let decoded = tokio::task::spawn_blocking(move || {
                    let schema = parquet_schema(&bytes, &at)?;
                    let batch = batch_from_parquet(bytes, &schema, &at)?;
                    with_deliveries(&batch, &deliveries, &at)
                })
                .await
                .map_err(|e| EngineError::ledger(format!("reading {set}: {e}")))??;
                Ok::<_, EngineError>((set, decoded))
            });
        }
    }
    let mut views = BTreeMap::new();
    let mut groups: BTreeMap<String, Vec<RecordBatch>> = BTreeMap::new();
    let parts = catalog.platform_parts();
    for (set, decoded) in futures::future::try_join_all(reads).await? {
        let batch = match decoded {
            Ok(batch) => batch,
            Err(why) => return Ok(Err(why)),
        };
        match parts.iter().find(|p| p.grouped && group_set(&p.id) == set) {
            Some(part) => groups.entry(part.id.clone()).or_default().push(batch),
            None => views.entry(set).or_insert_with(Vec::new).push(batch),
        }
    }
    Ok(Ok(MappedRows {
        views,
        groups,
        paths: Arc::new(paths_of(catalog)),
        months: Arc::new(months_of(catalog)),
        patched_from: Some(PatchedFrom {
            version: version.to_string(),
            changed: BTreeMap::new(),
        }),
    }))
}

/// The schema of each `raw.<view>_mapped` (the UNION ALL of its mapping parts), by view
/// name: taken once from a session that planned the parts, and given to the sessions over
/// rows already mapped, which plan none.
#[derive(Debug, Clone, Default)]
pub(crate) struct MappedSchemas(BTreeMap<String, SchemaRef>);

impl MappedSchemas {
    /// The schemas of the mapped views registered in `ctx` (by [`Catalog::register`]).
    pub(crate) async fn of_session(ctx: &SessionContext) -> Result<MappedSchemas> {
        let mut schemas = BTreeMap::new();
        for view in UNIFIED_VIEWS {
            let mapped = TableReference::partial(RAW_SCHEMA, view.mapped_name());
            let schema = ctx.table(mapped).await?.schema().as_arrow().clone();
            schemas.insert(view.name.to_string(), Arc::new(schema));
        }
        Ok(MappedSchemas(schemas))
    }

    /// The schema of `view`'s mapped rows.
    pub(crate) fn of(&self, view: &str) -> Result<SchemaRef> {
        self.0
            .get(view)
            .cloned()
            .ok_or_else(|| EngineError::ledger(format!("no schema of the mapped view {view}")))
    }
}

/// A patch of the published mapped rows: the rows after the change, the published rows
/// that gave way (by view: the closure holds what they named too), and what it did.
pub(crate) struct Patched {
    pub(crate) rows: MappedRows,
    /// The mapped views' schemas, which the sessions over these rows (and over the
    /// published ones) register them with.
    pub(crate) schemas: MappedSchemas,
    pub(crate) replaced: BTreeMap<String, Vec<RecordBatch>>,
    pub(crate) patch: MappedPatch,
}

impl Patched {
    /// Registers the rows that gave way as `raw.<view>_replaced` in `ctx` (of the mapped
    /// views' schema there, empty for a view with none), which the closure reads with the
    /// changed rows.
    pub(crate) async fn register_replaced(&self, ctx: &SessionContext) -> Result<()> {
        for view in UNIFIED_VIEWS {
            let mapped = TableReference::partial(RAW_SCHEMA, view.mapped_name());
            let schema: SchemaRef = Arc::new(ctx.table(mapped).await?.schema().as_arrow().clone());
            let rows = self
                .replaced
                .get(view.name)
                .into_iter()
                .flatten()
                .map(|b| conform_to(b, &schema, view.name))
                .collect::<Result<Vec<_>>>()?;
            ctx.register_table(
                TableReference::partial(RAW_SCHEMA, format!("{}_replaced", view.name)),
                Arc::new(MemTable::try_new(schema, vec![rows])?),
            )?;
        }
        Ok(())
    }
}

/// The mapped rows of `catalog` (the inputs after the change that added the files at
/// `added`), made from `stored` (the mapped rows of the inputs before it, numbered as
/// `catalog` numbers them), or why they cannot be (the published version kept no group index
/// of a grouped part).
pub(crate) async fn patched(
    catalog: &Catalog,
    stored: &MappedRows,
    added: &BTreeSet<String>,
) -> Result<std::result::Result<Patched, String>> {
    let mut step = Instant::now();
    let parts = catalog.platform_parts();
    // A key an added file holds that a later delivery holds too stays as published; and the
    // added files on their own: their mapped rows, and the keys of their rows. The two read
    // different files, each a few rows from many small ones (most of it planning and opening
    // files, on one core), so they run together.
    let a_ctx = new_session()?;
    let only_added = catalog.only(added);
    let (later, mapped) = tokio::join!(
        keys_delivered_later(catalog, &parts, added),
        materialize_mapped(&a_ctx, &only_added, &Staging::Memory)
    );
    let later = later?;
    mapped?;
    lap(
        &mut step,
        "mapped rows: the added files, and the keys a later delivery holds",
    );
    let schemas = MappedSchemas::of_session(&a_ctx).await?;
    let mut drops = Vec::new();
    for part in parts.iter().filter(|p| !p.grouped) {
        for source in &part.sources {
            drops.push(format!(
                "SELECT {} AS _part, _key FROM ({})",
                sql_string(&part.id),
                source.delivered_keys
            ));
        }
    }
    let mut dropped = if drops.is_empty() {
        Vec::new()
    } else {
        rows_of(&a_ctx, &format!(
                "SELECT DISTINCT arrow_cast(_part, 'Utf8') AS _part, arrow_cast(_key, 'Utf8') AS _key \
                 FROM ({})",
                drops.join(" UNION ALL ")
            )).await?
    };
    // The grouped parts: every group the added rows touch, mapped again.
    let mut patch = MappedPatch::default();
    let mut regrouped: BTreeMap<String, Vec<RecordBatch>> = BTreeMap::new();
    let mut groups = stored.groups.clone();
    // The months of each set whose rows change: the next version writes those only.
    let mut changed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for part in parts.iter().filter(|p| p.grouped) {
        let Some(index) = stored.groups.get(&part.id) else {
            return Ok(Err(format!(
                "the published version kept no group index of {}",
                part.id
            )));
        };
        let added_rows = group_rows(&a_ctx, part).await?;
        changed
            .entry(group_set(&part.id))
            .or_default()
            .extend(stored.months_in(&added_rows));
        let mut next_index = index.clone();
        next_index.extend(added_rows.iter().cloned());
        groups.insert(part.id.clone(), next_index);
        let g_ctx = new_session()?;
        register_batches(&g_ctx, "g_index", index, group_schema())?;
        register_batches(&g_ctx, "g_added", &added_rows, group_schema())?;
        let touched = rows_of(
            &g_ctx,
            "SELECT _group AS _key FROM g_added WHERE _group IS NOT NULL \
                 UNION SELECT i._group FROM g_index i JOIN g_added a ON a._key = i._key \
                 WHERE i._group IS NOT NULL",
        )
        .await?;
        let touched_count: usize = touched.iter().map(RecordBatch::num_rows).sum();
        if touched_count == 0 {
            continue;
        }
        register_batches(
            &g_ctx,
            "g_touched",
            &touched,
            touched
                .first()
                .map_or_else(group_schema, RecordBatch::schema),
        )?;
        // Every delivery of every key of those groups (a key may have moved between groups).
        let files = rows_of(
            &g_ctx,
            "SELECT DISTINCT _delivery FROM g_index WHERE _key IN ( \
                   SELECT _key FROM g_index WHERE _group IN (SELECT _key FROM g_touched))",
        )
        .await?;
        let mut read: BTreeSet<String> = added.clone();
        let mut more = 0;
        for batch in &files {
            let column = batch
                .column(0)
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| EngineError::ledger("the group index: _delivery is not BIGINT"))?;
            for delivery in column.iter().flatten() {
                let path = stored.paths.get(&delivery).ok_or_else(|| {
                    EngineError::ledger(format!(
                        "the group index names delivery {delivery}, no file"
                    ))
                })?;
                if read.insert(path.clone()) {
                    more += 1;
                }
            }
        }
        let s_ctx = new_session()?;
        catalog.only(&read).register(&s_ctx).await?;
        register_batches(
            &s_ctx,
            "g_touched",
            &touched,
            touched
                .first()
                .map_or_else(group_schema, RecordBatch::schema),
        )?;
        let rows = rows_of(
            &s_ctx,
            &format!(
                "SELECT * FROM {RAW_SCHEMA}.\"{view}_mapped\" \
                 WHERE arrow_cast(_part, 'Utf8') = {id} AND _key IN (SELECT _key FROM g_touched)",
                view = part.view,
                id = sql_string(&part.id),
            ),
        )
        .await?;
        patch.regrouped += rows.iter().map(RecordBatch::num_rows).sum::<usize>();
        patch.groups += touched_count;
        patch.group_files += more;
        regrouped.entry(part.view.clone()).or_default().extend(rows);
        for batch in &touched {
            let keys = cast(batch.column(0), &DataType::Utf8)?;
            let ids: ArrayRef =
                Arc::new(StringArray::from(vec![part.id.as_str(); batch.num_rows()]));
            dropped.push(RecordBatch::try_new(drop_schema(), vec![ids, keys])?);
        }
    }
    lap(&mut step, "mapped rows: groups mapped again");

    // Each view: the published rows but those that gave way, the added rows, the groups.
    let later = ReplacedKeys::of(&later, "the keys a later delivery holds")?;
    patch.later = later.len();
    let dropped = ReplacedKeys::of(&dropped, "the replaced keys")?.without(&later);
    let row_by_row: Vec<String> = parts
        .iter()
        .filter(|p| !p.grouped)
        .map(|p| sql_string(&p.id))
        .collect();
    let mut views = BTreeMap::new();
    let mut replaced = BTreeMap::new();
    for view in UNIFIED_VIEWS {
        let name = view.name;
        let stored_rows = stored.views.get(name).cloned().unwrap_or_default();
        let published_rows: usize = stored_rows.iter().map(RecordBatch::num_rows).sum();
        patch.published += published_rows;
        let schema = schemas.of(name)?;
        let mut added_rows: Vec<RecordBatch> = Vec::new();
        if !row_by_row.is_empty() {
            let rows = rows_of(
                &a_ctx,
                &format!(
                    "SELECT * FROM {RAW_SCHEMA}.\"{}\" WHERE arrow_cast(_part, 'Utf8') IN ({})",
                    view.mapped_name(),
                    row_by_row.join(", ")
                ),
            )
            .await?;
            for batch in &rows {
                added_rows.extend(later.split(batch, name)?.kept);
            }
        }
        let added_count: usize = added_rows.iter().map(RecordBatch::num_rows).sum();
        patch.added += added_count;
        let regroups = regrouped.remove(name).unwrap_or_default();
        let touched = parts
            .iter()
            .any(|p| p.view == name && dropped.names_part(&p.id));
        if !touched && added_count == 0 && regroups.is_empty() {
            views.insert(name.to_string(), stored_rows);
            continue;
        }
        // One pass over the published rows: each is kept or gives way by its part's keys.
        let (mut kept, mut gone) = (Vec::new(), Vec::new());
        for batch in &stored_rows {
            let split = dropped.split(&conform_to(batch, &schema, name)?, name)?;
            kept.extend(split.kept);
            gone.extend(split.gone);
        }
        drop(stored_rows);
        patch.replaced += gone.iter().map(RecordBatch::num_rows).sum::<usize>();
        let months = changed.entry(name.to_string()).or_default();
        for rows in [&gone, &added_rows, &regroups] {
            months.extend(stored.months_in(rows));
        }
        replaced.insert(name.to_string(), gone);
        let mut rows = Vec::with_capacity(kept.len() + added_rows.len() + regroups.len());
        rows.extend(kept);
        for batch in added_rows.iter().chain(&regroups) {
            rows.push(conform_to(batch, &schema, name)?);
        }
        views.insert(name.to_string(), non_empty(rows, schema));
    }
    lap(&mut step, "mapped rows: patched");
    Ok(Ok(Patched {
        rows: MappedRows {
            views,
            groups,
            paths: Arc::new(paths_of(catalog)),
            months: Arc::new(months_of(catalog)),
            patched_from: stored.patched_from.as_ref().map(|from| PatchedFrom {
                version: from.version.clone(),
                changed,
            }),
        },
        replaced,
        patch,
        schemas,
    }))
}

/// The keys of the added files that a later delivery holds too, as `_part`, `_key` of each
/// part mapped row by row that reads them: an added file that sorts before a served file of
/// its mapping, kind and shop (a late delivery) loses those keys to it, and their published
/// rows stay. (pdd's ad reports, for one, end each file with a 合计 row of the same key.)
/// A grouped part needs none: its groups are mapped again from every delivery of their keys.
async fn keys_delivered_later(
    catalog: &Catalog,
    parts: &[PlatformPart],
    added: &BTreeSet<String>,
) -> Result<Vec<RecordBatch>> {
    let files = catalog.files();
    let added_files: Vec<_> = files.iter().filter(|f| added.contains(&f.path)).collect();
    let later: BTreeSet<String> = files
        .iter()
        .filter(|f| !added.contains(&f.path))
        .filter(|f| {
            added_files.iter().any(|a| {
                a.mapping == f.mapping
                    && a.source == f.source
                    && a.shop_id == f.shop_id
                    && f.delivery > a.delivery
            })
        })
        .map(|f| f.path.clone())
        .collect();
    if later.is_empty() {
        return Ok(Vec::new());
    }
    let ctx = new_session()?;
    catalog
        .only(&later.union(added).cloned().collect())
        .register(&ctx)
        .await?;
    let added_list = catalog
        .deliveries_of(added)
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for source in parts.iter().flat_map(|p| &p.sources) {
        if !seen.insert(source.raw_table.clone()) {
            continue;
        }
        let readers: Vec<&PlatformPart> = parts
            .iter()
            .filter(|p| !p.grouped && p.sources.iter().any(|s| s.raw_table == source.raw_table))
            .collect();
        if readers.is_empty() {
            continue;
        }
        let keys = rows_of(
            &ctx,
            &format!(
                "WITH k AS ({keys}) \
                 SELECT arrow_cast(a._key, 'Utf8') AS _key \
                 FROM (SELECT _key, max(_delivery) AS d FROM k \
                       WHERE _delivery IN ({added_list}) GROUP BY _key) a \
                 JOIN (SELECT _key, max(_delivery) AS d FROM k \
                       WHERE _delivery NOT IN ({added_list}) GROUP BY _key) n \
                   ON n._key = a._key AND n.d > a.d",
                keys = source.delivered_keys,
            ),
        )
        .await?;
        for batch in keys.iter().filter(|b| b.num_rows() > 0) {
            let key = cast(batch.column(0), &DataType::Utf8)?;
            for part in &readers {
                let ids: ArrayRef =
                    Arc::new(StringArray::from(vec![part.id.as_str(); batch.num_rows()]));
                out.push(RecordBatch::try_new(
                    drop_schema(),
                    vec![ids, Arc::clone(&key)],
                )?);
            }
        }
    }
    Ok(out)
}

/// Keys of published rows, by the part that made them: those an added file delivers again
/// (or a group it touches), which give way, or those a later delivery holds, which stay.
#[derive(Debug, Default)]
struct ReplacedKeys(HashMap<String, HashSet<String>>);

/// A batch of mapped rows split by [`ReplacedKeys::split`].
struct Split {
    kept: Option<RecordBatch>,
    gone: Option<RecordBatch>,
}

impl ReplacedKeys {
    /// The keys of `batches` (`_part`, `_key`, of [`drop_schema`]).
    fn of(batches: &[RecordBatch], what: &str) -> Result<ReplacedKeys> {
        let mut keys = ReplacedKeys::default();
        for batch in batches {
            let parts = cast(named(batch, "_part", what)?, &DataType::Utf8)?;
            let rows = cast(named(batch, "_key", what)?, &DataType::Utf8)?;
            for (part, key) in parts.as_string::<i32>().iter().zip(rows.as_string::<i32>()) {
                if let (Some(part), Some(key)) = (part, key) {
                    keys.0
                        .entry(part.to_string())
                        .or_default()
                        .insert(key.to_string());
                }
            }
        }
        Ok(keys)
    }

    /// These keys but those of `other`.
    fn without(mut self, other: &ReplacedKeys) -> ReplacedKeys {
        for (part, keys) in &other.0 {
            if let Some(mine) = self.0.get_mut(part) {
                mine.retain(|k| !keys.contains(k));
            }
        }
        self.0.retain(|_, keys| !keys.is_empty());
        self
    }

    /// How many keys.
    fn len(&self) -> usize {
        self.0.values().map(HashSet::len).sum()
    }

    /// Whether any key is of `part`.
    fn names_part(&self, part: &str) -> bool {
        self.0.contains_key(part)
    }

    /// The rows of `batch` (mapped rows of `view`) whose `_part` and `_key` are not here, and
    /// those whose are, in their order. `_part` is dictionary-encoded, so a row of a part
    /// with no key here costs one look-up of its dictionary key; only the others' `_key` is
    /// looked up (an SQL anti and semi join cast `_part` to text on every row instead).
    fn split(&self, batch: &RecordBatch, view: &str) -> Result<Split> {
        let nothing_gone = |batch: &RecordBatch| Split {
            kept: Some(batch.clone()),
            gone: None,
        };
        if self.0.is_empty() || batch.num_rows() == 0 {
            return Ok(nothing_gone(batch));
        }
        let what = format!("the mapped rows of {view}");
        let parts = cast(
            named(batch, "_part", &what)?,
            &DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        )?;
        let parts = parts.as_dictionary::<Int32Type>();
        let names = cast(parts.values(), &DataType::Utf8)?;
        let keys_of: Vec<Option<&HashSet<String>>> = names
            .as_string::<i32>()
            .iter()
            .map(|name| name.and_then(|name| self.0.get(name)))
            .collect();
        if keys_of.iter().all(Option::is_none) {
            return Ok(nothing_gone(batch));
        }
        let rows = cast(named(batch, "_key", &what)?, &DataType::Utf8)?;
        let rows = rows.as_string::<i32>();
        let indices = parts.keys();
        let gone: BooleanArray = (0..batch.num_rows())
            .map(|i| {
                let keys = indices
                    .is_valid(i)
                    .then(|| usize::try_from(indices.value(i)).ok())
                    .flatten()
                    .and_then(|k| keys_of.get(k).copied().flatten());
                Some(keys.is_some_and(|keys| rows.is_valid(i) && keys.contains(rows.value(i))))
            })
            .collect();
        match gone.true_count() {
            0 => Ok(nothing_gone(batch)),
            n if n == batch.num_rows() => Ok(Split {
                kept: None,
                gone: Some(batch.clone()),
            }),
            _ => Ok(Split {
                kept: Some(filter_record_batch(batch, &not(&gone)?)?),
                gone: Some(filter_record_batch(batch, &gone)?),
            }),
        }
    }
}

/// The group index rows of `part` over the delivered rows registered in `ctx`: `_key`,
/// `_group`, `_delivery` of each (distinct) delivered row of its sources.
async fn group_rows(ctx: &SessionContext, part: &PlatformPart) -> Result<Vec<RecordBatch>> {
    let sources: Vec<&str> = part
        .sources
        .iter()
        .map(|s| s.delivered_keys.as_str())
        .collect();
    if sources.is_empty() {
        return Ok(Vec::new());
    }
    let batches = rows_of(ctx, &format!(
            "SELECT DISTINCT arrow_cast(_key, 'Utf8') AS _key, arrow_cast(_group, 'Utf8') AS _group, \
                    _delivery FROM ({})",
            sources.join(" UNION ALL ")
        )).await?;
    batches
        .iter()
        .map(|b| conform_to(b, &group_schema(), "the group index"))
        .collect()
}

/// `batches`, or one empty batch of `schema` when there are none: a set of rows that keeps
/// its schema, to be written and read back.
fn non_empty(mut batches: Vec<RecordBatch>, schema: SchemaRef) -> Vec<RecordBatch> {
    if batches.is_empty() {
        batches.push(RecordBatch::new_empty(schema));
    }
    batches
}

/// The rows of `sql` in `ctx`.
async fn rows_of(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

/// The group index's columns.
fn group_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("_key", DataType::Utf8, true),
        Field::new("_group", DataType::Utf8, true),
        Field::new("_delivery", DataType::Int64, true),
    ]))
}

/// The replaced keys' columns: the part and the key (a row's or a group's).
fn drop_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("_part", DataType::Utf8, true),
        Field::new("_key", DataType::Utf8, true),
    ]))
}

/// The folder a grouped part's index is kept in (`group.tmall.order_lines.0`).
fn group_set(part: &str) -> String {
    format!("group.{}", part.replace('/', "."))
}

/// The month under which rows of a delivery without a `dt=` are kept.
const NO_MONTH: &str = "none";

/// The month (`YYYY-MM`) of each served file's `dt=` partition, by delivery.
fn months_of(catalog: &Catalog) -> HashMap<i64, String> {
    catalog
        .files()
        .iter()
        .filter_map(|f| {
            let day = datafusion::arrow::temporal_conversions::date32_to_datetime(f.dt?)?;
            Some((f.delivery, day.format("%Y-%m").to_string()))
        })
        .collect()
}

/// The path of each served file's delivery.
fn paths_of(catalog: &Catalog) -> HashMap<i64, String> {
    catalog
        .files()
        .iter()
        .map(|f| (f.delivery, f.path.clone()))
        .collect()
}

/// Registers `batches` as table `name` (of `schema` when there are none).
fn register_batches(
    ctx: &SessionContext,
    name: &str,
    batches: &[RecordBatch],
    schema: SchemaRef,
) -> Result<()> {
    let schema = batches.first().map_or(schema, RecordBatch::schema);
    ctx.register_table(
        name,
        Arc::new(MemTable::try_new(schema, vec![batches.to_vec()])?),
    )?;
    Ok(())
}

/// A delivery column (BIGINT) as the paths of its files, dictionary-encoded.
fn paths_column(column: &ArrayRef, paths: &HashMap<i64, String>, at: &str) -> Result<ArrayRef> {
    let deliveries = column
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| EngineError::ledger(format!("{at}: a delivery column is not BIGINT")))?;
    let mut index: HashMap<i64, i32> = HashMap::new();
    let mut values: Vec<&str> = Vec::new();
    let mut keys = Vec::with_capacity(deliveries.len());
    for delivery in deliveries.iter() {
        let Some(delivery) = delivery else {
            keys.push(None);
            continue;
        };
        let key = match index.get(&delivery) {
            Some(key) => *key,
            None => {
                let path = paths.get(&delivery).ok_or_else(|| {
                    EngineError::ledger(format!("{at}: delivery {delivery} is no served file"))
                })?;
                let key = i32::try_from(values.len())
                    .map_err(|_| EngineError::ledger(format!("{at}: too many files")))?;
                values.push(path);
                index.insert(delivery, key);
                key
            }
        };
        keys.push(Some(key));
    }
    let array = DictionaryArray::<Int32Type>::try_new(
        Int32Array::from(keys),
        Arc::new(StringArray::from(values)),
    )?;
    Ok(Arc::new(array))
}

/// `batch` (as [`MappedRows::write`] wrote it) with its delivery columns numbered as
/// `deliveries` numbers the files, or why it cannot be: a file it names is not served.
fn with_deliveries(
    batch: &RecordBatch,
    deliveries: &HashMap<String, i64>,
    at: &str,
) -> Result<std::result::Result<RecordBatch, String>> {
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if !DELIVERY_COLUMNS.contains(&field.name().as_str()) {
            columns.push(Arc::clone(column));
            fields.push(field.as_ref().clone());
            continue;
        }
        let dictionary = cast(
            column,
            &DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        )?;
        let dictionary = dictionary.as_dictionary::<Int32Type>();
        let paths = cast(dictionary.values(), &DataType::Utf8)?;
        let paths = paths.as_string::<i32>();
        let mut numbers = Vec::with_capacity(paths.len());
        for path in paths.iter() {
            match path {
                Some(path) => match deliveries.get(path) {
                    Some(delivery) => numbers.push(Some(*delivery)),
                    None => {
                        return Ok(Err(format!("{at} names {path}, which is not served now")));
                    }
                },
                None => numbers.push(None),
            }
        }
        let numbers = Int64Array::from(numbers);
        columns.push(take(&numbers, dictionary.keys(), None)?);
        fields.push(Field::new(field.name(), DataType::Int64, true));
    }
    Ok(Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_are_kept_as_the_paths_of_their_files_and_read_back_as_numbered_now() {
        let paths: HashMap<i64, String> = [
            (7, "exports/a.parquet".to_string()),
            (9, "exports/b.parquet".to_string()),
        ]
        .into();
        let column: ArrayRef = Arc::new(Int64Array::from(vec![Some(9), None, Some(7), Some(9)]));
        let as_paths = paths_column(&column, &paths, "test").expect("paths");
        let dictionary = as_paths.as_dictionary::<Int32Type>();
        assert_eq!(dictionary.values().len(), 2, "one value per file");
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "_delivery",
                as_paths.data_type().clone(),
                true,
            )])),
            vec![as_paths],
        )
        .expect("batch");
        // The warehouse opened again numbers the same files otherwise.
        let now: HashMap<String, i64> = [
            ("exports/a.parquet".to_string(), 1),
            ("exports/b.parquet".to_string(), 2),
        ]
        .into();
        let numbered = with_deliveries(&batch, &now, "test")
            .expect("read")
            .expect("every file served");
        let numbered = numbered.column(0).as_primitive::<Int64Type>();
        assert_eq!(
            numbered.iter().collect::<Vec<_>>(),
            vec![Some(2), None, Some(1), Some(2)]
        );
        // A file gone: the rows cannot be taken, and why says which.
        let gone: HashMap<String, i64> = [("exports/a.parquet".to_string(), 1)].into();
        let why = with_deliveries(&batch, &gone, "test")
            .expect("read")
            .expect_err("a file gone");
        assert!(why.contains("exports/b.parquet"), "{why}");
        assert!(paths_column(&column, &HashMap::new(), "test").is_err());
    }

    /// Mapped rows of two parts: `_part` dictionary-encoded as the views make it.
    fn mapped_rows(parts: &[&str], keys: &[Option<&str>]) -> RecordBatch {
        let parts: DictionaryArray<Int32Type> = parts.iter().copied().collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("_part", parts.data_type().clone(), true),
                Field::new("_key", DataType::Utf8, true),
            ])),
            vec![Arc::new(parts), Arc::new(StringArray::from(keys.to_vec()))],
        )
        .expect("batch")
    }

    fn keys_of(batch: Option<RecordBatch>) -> Vec<Option<String>> {
        batch.map_or_else(Vec::new, |b| {
            b.column(1)
                .as_string::<i32>()
                .iter()
                .map(|k| k.map(str::to_string))
                .collect()
        })
    }

    #[test]
    fn a_published_row_gives_way_only_to_a_key_of_its_own_part() {
        let drops = |rows: &[(&str, &str)]| {
            let batch = RecordBatch::try_new(
                drop_schema(),
                vec![
                    Arc::new(StringArray::from(
                        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                    )),
                    Arc::new(StringArray::from(
                        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                    )),
                ],
            )
            .expect("drops");
            ReplacedKeys::of(&[batch], "test").expect("keys")
        };
        let rows = mapped_rows(
            &[
                "jd/fees/0",
                "jd/fees/1",
                "jd/fees/0",
                "jd/fees/0",
                "pdd/fees/0",
            ],
            &[
                Some("S1\u{1f}A"),
                Some("S1\u{1f}A"),
                Some("S1\u{1f}B"),
                None,
                Some("S1\u{1f}A"),
            ],
        );
        // Part 0's key A gives way; part 1's row of the same key stays, as do a null key and
        // another platform's part.
        let dropped = drops(&[("jd/fees/0", "S1\u{1f}A"), ("jd/fees/0", "S9\u{1f}Z")]);
        assert!(dropped.names_part("jd/fees/0") && !dropped.names_part("jd/fees/1"));
        let split = dropped.split(&rows, "fees").expect("split");
        assert_eq!(
            keys_of(split.kept),
            vec![
                Some("S1\u{1f}A".into()),
                Some("S1\u{1f}B".into()),
                None,
                Some("S1\u{1f}A".into())
            ]
        );
        assert_eq!(keys_of(split.gone), vec![Some("S1\u{1f}A".into())]);
        // A key a later delivery holds stays as published.
        let later = drops(&[("jd/fees/0", "S1\u{1f}A")]);
        let dropped = dropped.without(&later);
        assert_eq!(dropped.len(), 1);
        let split = dropped.split(&rows, "fees").expect("split");
        assert_eq!(split.gone.map(|b| b.num_rows()), None);
        assert_eq!(split.kept.map(|b| b.num_rows()), Some(5));
        // Nothing of a part left: the part is no longer named.
        assert!(
            !dropped
                .without(&drops(&[("jd/fees/0", "S9\u{1f}Z")]))
                .names_part("jd/fees/0")
        );
    }

    #[tokio::test]
    async fn a_part_that_computes_across_rows_must_name_its_group() {
        let scratch = tempfile::tempdir().expect("tempdir");
        let dir = scratch.path().to_path_buf();
        let mappings = dir.join(amoeba_catalog::MAPPINGS_DIR);
        std::fs::create_dir_all(&mappings).expect("mkdir");
        let part = |group: &str| {
            format!(
                "name = \"shopx\"\nlayout = \"platform\"\n\
                 [sources.orders]\nkey = [\"id\"]\ncolumns = {{ id = \"string\", total = \"decimal(18,2)\" }}\n\
                 [[views.refunds]]\n{group}from = \"(SELECT o.*, sum(total) OVER (PARTITION BY id) AS t FROM {{orders}} o) s\"\n\
                 columns = {{ shop_id = \"shop_id\", refund_id = \"id\", order_id = \"id\", line_id = \"id\", \
                 amount = \"t\", refunded_at = \"NULL\", kind = \"'x'\" }}\n"
            )
        };
        let opened = |text: String| {
            let dir = dir.clone();
            let mappings = mappings.clone();
            async move {
                std::fs::write(mappings.join("shopx.toml"), text).expect("write");
                let warehouse = Warehouse::open(&dir.to_string_lossy()).expect("warehouse");
                let catalog = Catalog::open(warehouse).await.expect("open");
                let ctx = new_session().expect("session");
                catalog.register(&ctx).await.map_err(|e| e.to_string())
            }
        };
        let e = opened(part(""))
            .await
            .expect_err("a window without a group");
        assert!(
            e.contains("shopx.toml") && e.contains("refunds[0] computes across rows"),
            "{e}"
        );
        opened(part("group = [\"id\"]\n"))
            .await
            .expect("a window over its group");
    }
}
