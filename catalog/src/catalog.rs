//! The catalog: a warehouse's served files, mapped to the unified views, registered in a
//! DataFusion session.
//!
//! ```text
//!  raw.<p>_<kind>_delivered   every row of every served file (+ shop_id, dt, _delivery)
//!        │ newest delivery of each natural key wins: raw.<p>_<kind>_versions (per key:
//!        │ max, min _delivery and rows) joined back on the max
//!  raw.<p>_<kind>             one row per natural key: the platform's columns, as exported
//!        │ mapping parts (SQL), cast to the unified types, UNION ALL over platforms
//!  raw.<view>_mapped          every mapped row, with its _delivery (and _joined_delivery,
//!        │                    the other side's, for a part that joins two sources)
//!        │ rows whose required columns are all present
//!  <view>                     order_lines, refunds, fees, ad_spend, … (public)
//!
//!  amoeba_files               every data file: served (with its delivery) or rejected (why)
//!  amoeba_rejected_rows       mapped rows left out, with their file and the missing column
//! ```
//!
//! A catalog is an immutable snapshot of the warehouse: opening it again picks up new files.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Date32Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use crate::discovery::{Discovery, Rejection, SourceFile, discover};
use crate::error::{CatalogError, Result};
use crate::mapping::{ColumnType, Layout, Mapping, sql_ident, sql_string};
use crate::model::{MODEL_FILE, Model};
use crate::source_table::SourceTable;
use crate::unified::{UNIFIED_VIEWS, UnifiedView};
use crate::warehouse::Warehouse;

/// Where a warehouse keeps mapping files that add to or replace the built-in ones.
pub const MAPPINGS_DIR: &str = "model/mappings";

/// The schema of the raw tables.
pub const RAW_SCHEMA: &str = "raw";

/// A part of a platform mapping, as a refresh by delta maps it again
/// ([`Catalog::platform_parts`]): row by row, or group by group when it names a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformPart {
    /// What its mapped rows carry as `_part` (`tmall/order_lines/0`).
    pub id: String,
    /// The unified view it feeds.
    pub view: String,
    /// Whether its rows are made group by group: their `_key` is then their group's key;
    /// otherwise it is the key of the source row each was made from.
    pub grouped: bool,
    /// The sources it reads.
    pub sources: Vec<PartSource>,
}

/// A source a [`PlatformPart`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSource {
    /// Its raw table (`tmall_order_items`).
    pub raw_table: String,
    /// Every delivered row of it (every delivery of every key, not only the newest) as
    /// `_key` (the row's key, as the part's ungrouped rows carry it), `_group` (its group's
    /// key, as a grouped part's rows carry it; NULL for an ungrouped part) and `_delivery`.
    pub delivered_keys: String,
}

/// A snapshot of a warehouse: mappings, served files and rejections.
#[derive(Debug, Clone)]
pub struct Catalog {
    warehouse: Warehouse,
    mappings: Vec<Mapping>,
    model: Option<Model>,
    discovery: Discovery,
}

impl Catalog {
    /// Opens a warehouse: loads the mappings (built-in, then `model/mappings/*.toml` of the
    /// warehouse, which replace a built-in mapping of the same name), lists and validates
    /// every data file.
    pub async fn open(warehouse: Warehouse) -> Result<Catalog> {
        let mut mappings = Mapping::builtin()?;
        for extra in load_warehouse_mappings(&warehouse).await? {
            match mappings.iter_mut().find(|m| m.name == extra.name) {
                Some(existing) => *existing = extra,
                None => mappings.push(extra),
            }
        }
        let model = load_model(&warehouse).await?;
        let discovery = discover(&warehouse, &mappings).await?;
        Ok(Catalog {
            warehouse,
            mappings,
            model,
            discovery,
        })
    }

    /// The warehouse.
    pub fn warehouse(&self) -> &Warehouse {
        &self.warehouse
    }

    /// The warehouse's accounting model (`model/model.toml`), if it has one.
    pub fn model(&self) -> Option<&Model> {
        self.model.as_ref()
    }

    /// The mappings in force.
    pub fn mappings(&self) -> &[Mapping] {
        &self.mappings
    }

    /// The served files, in delivery order.
    pub fn files(&self) -> &[SourceFile] {
        &self.discovery.files
    }

    /// The deliveries of the served files at `paths` (below the warehouse root); a path that
    /// is not served (rejected, or not a data file) has none.
    pub fn deliveries_of(&self, paths: &std::collections::BTreeSet<String>) -> Vec<i64> {
        self.discovery
            .files
            .iter()
            .filter(|f| paths.contains(&f.path))
            .map(|f| f.delivery)
            .collect()
    }

    /// Every part of the platform mappings, in the order of the mapped views' rows.
    pub fn platform_parts(&self) -> Vec<PlatformPart> {
        let mut out = Vec::new();
        for view in UNIFIED_VIEWS {
            for mapping in self
                .mappings
                .iter()
                .filter(|m| m.layout == Layout::Platform)
            {
                for (i, part) in mapping
                    .views
                    .get(view.name)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let group = part.group.as_ref().map(key_text);
                    let sources = mapping
                        .sources_read_by(part)
                        .into_iter()
                        .filter_map(|kind| {
                            let source = mapping.sources.get(kind)?;
                            let raw_table = mapping.raw_table(kind);
                            let delivered_keys = format!(
                                "SELECT {key} AS _key, arrow_cast({group}, 'Utf8') AS _group, \
                                        _delivery FROM {RAW_SCHEMA}.{delivered}",
                                key = key_text(&source.key),
                                group = group.as_deref().unwrap_or("NULL"),
                                delivered = sql_ident(&format!("{raw_table}_delivered")),
                            );
                            Some(PartSource {
                                raw_table,
                                delivered_keys,
                            })
                        })
                        .collect();
                    out.push(PlatformPart {
                        id: part_id(mapping, view.name, i),
                        view: view.name.to_string(),
                        grouped: part.group.is_some(),
                        sources,
                    });
                }
            }
        }
        out
    }

    /// The same snapshot without the files at `paths` (below the warehouse root): the
    /// catalog as it was before they landed, which the incremental build reads the old side
    /// of a change from. Delivery numbers are kept; only their order matters (the newest
    /// delivery of a key wins), and taking files out does not change the order of the rest.
    /// A rejected file at one of `paths` is left out of the rejections too.
    pub fn without(&self, paths: &std::collections::BTreeSet<String>) -> Catalog {
        let mut before = self.clone();
        before.discovery.files.retain(|f| !paths.contains(&f.path));
        before
            .discovery
            .rejections
            .retain(|r| !paths.contains(&r.path));
        before
    }

    /// The same snapshot with only the files at `paths` (and the rejections among them): a
    /// refresh by delta maps the added files on their own, and a few others with them.
    pub fn only(&self, paths: &std::collections::BTreeSet<String>) -> Catalog {
        let mut only = self.clone();
        only.discovery.files.retain(|f| paths.contains(&f.path));
        only.discovery
            .rejections
            .retain(|r| paths.contains(&r.path));
        only
    }

    /// The rejected files.
    pub fn rejections(&self) -> &[Rejection] {
        &self.discovery.rejections
    }

    /// Registers the store, the raw tables, the unified views and the catalog's own tables
    /// in `ctx`.
    pub async fn register(&self, ctx: &SessionContext) -> Result<()> {
        let started = std::time::Instant::now();
        self.register_around_mapped(ctx).await?;
        for mapping in &self.mappings {
            for (kind, source) in &mapping.sources {
                self.register_source(ctx, mapping, kind, source).await?;
            }
        }
        let sources = started.elapsed();
        self.register_mapped_views(ctx).await?;
        let parts = started.elapsed();
        register_over_mapped(ctx).await?;
        log::debug!(
            "catalog registered: the raw tables {:.2}s, the mapping parts {:.2}s, the views over them {:.2}s",
            sources.as_secs_f64(),
            (parts - sources).as_secs_f64(),
            (started.elapsed() - parts).as_secs_f64()
        );
        Ok(())
    }

    /// Registers what a session over mapped rows of its own needs besides them: the store,
    /// the raw schema and `amoeba_files`. The caller registers each `raw.<view>_mapped` (rows
    /// a refresh by delta holds in memory), then [`register_over_mapped`]. No raw table or
    /// mapping part is planned: planning them is most of [`Catalog::register`]'s time, and
    /// rows already mapped need neither.
    pub async fn register_around_mapped(&self, ctx: &SessionContext) -> Result<()> {
        self.warehouse.register(ctx);
        ctx.sql(&format!("CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}"))
            .await?;
        ctx.register_table("amoeba_files", Arc::new(self.files_table()?))?;
        Ok(())
    }

    async fn register_source(
        &self,
        ctx: &SessionContext,
        mapping: &Mapping,
        kind: &str,
        source: &crate::mapping::SourceDef,
    ) -> Result<()> {
        let fields: Vec<Field> = source
            .columns
            .iter()
            .map(|(name, ty)| {
                let ty = ColumnType::parse(ty)
                    .map(ColumnType::served_type)
                    .unwrap_or(DataType::Utf8);
                Field::new(name, ty, true)
            })
            .collect();
        let files: Vec<SourceFile> = self
            .discovery
            .files
            .iter()
            .filter(|f| f.mapping == mapping.name && f.source == kind)
            .cloned()
            .collect();
        let raw = mapping.raw_table(kind);
        let provider = SourceTable::new(
            Arc::new(Schema::new(fields)),
            self.warehouse.store_url().clone(),
            files,
        );
        ctx.register_table(
            TableReference::partial(RAW_SCHEMA, format!("{raw}_delivered")),
            Arc::new(provider),
        )?;
        let keys = raw_keys(mapping, source);
        let sql = format!(
            "CREATE VIEW {RAW_SCHEMA}.{versions} AS \
             SELECT {keys}, max(_delivery) AS _newest, min(_delivery) AS _oldest, \
                    count(*) AS _rows \
             FROM {RAW_SCHEMA}.{delivered} GROUP BY {keys}",
            versions = sql_ident(&format!("{raw}_versions")),
            keys = keys.join(", "),
            delivered = sql_ident(&format!("{raw}_delivered")),
        );
        create_view(ctx, &mapping.file, &format!("{raw}_versions"), &sql).await?;
        create_raw_view(ctx, mapping, kind, source, "CREATE VIEW").await
    }

    /// The de-duplicated raw tables (`raw.<mapping>_<source>`) that more than one mapping
    /// part reads: douyin's settlement, for one, is read once per fee column.
    pub fn shared_raw_tables(&self) -> Vec<TableReference> {
        let mut shared = Vec::new();
        for mapping in &self.mappings {
            for (kind, reads) in mapping.source_reads() {
                if reads > 1 {
                    shared.push(TableReference::partial(RAW_SCHEMA, mapping.raw_table(kind)));
                }
            }
        }
        shared
    }

    /// Re-creates every `raw.<view>_mapped` view over the raw tables registered in `ctx` now:
    /// the ledger build calls it after replacing the [shared raw
    /// tables](Catalog::shared_raw_tables) by their materialization (a view reads the tables
    /// it was created over, not those registered under the same names later).
    pub async fn register_mapped_views(&self, ctx: &SessionContext) -> Result<()> {
        for view in UNIFIED_VIEWS {
            self.register_mapped(ctx, view).await?;
        }
        Ok(())
    }

    /// Registers `raw.<view>_mapped`: the mapping parts of one unified view, UNION ALL.
    async fn register_mapped(&self, ctx: &SessionContext, view: &UnifiedView) -> Result<()> {
        let mut parts = Vec::new();
        for mapping in &self.mappings {
            for (i, part) in mapping
                .views
                .get(view.name)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let what = format!("{}[{i}]", view.name);
                let expand = |text: &str| {
                    mapping
                        .expand(text)
                        .map_err(|reason| CatalogError::mapping(&mapping.file, reason))
                };
                let mut select = Vec::new();
                for column in view.columns {
                    let expr = match part.columns.get(column.name) {
                        Some(expr) => expr.clone(),
                        None if column.name == "platform" && mapping.layout == Layout::Platform => {
                            sql_string(&mapping.name)
                        }
                        None => "NULL".to_string(),
                    };
                    select.push(format!(
                        "arrow_cast(({expr}), '{}') AS {}",
                        column.data_type.arrow_cast_name(),
                        sql_ident(column.name)
                    ));
                }
                select.push(format!("CAST(({}) AS BIGINT) AS _delivery", part.delivery));
                select.push(format!(
                    "CAST(({}) AS BIGINT) AS _joined_delivery",
                    part.joined_delivery.as_deref().unwrap_or("NULL")
                ));
                select.push(format!(
                    "arrow_cast({}, 'Dictionary(Int32, Utf8)') AS _part",
                    sql_string(&part_id(mapping, view.name, i))
                ));
                let key = match mapping.layout {
                    Layout::Platform => part_key(mapping, part),
                    Layout::Company => None,
                };
                select.push(format!(
                    "arrow_cast({}, 'Utf8') AS _key",
                    key.as_deref().unwrap_or("NULL")
                ));
                let mut sql = format!("SELECT {} FROM {}", select.join(", "), expand(&part.from)?);
                if let Some(filter) = &part.filter {
                    sql.push_str(&format!(" WHERE ({})", expand(filter)?));
                }
                // Plan each part alone first, so that an error names its mapping file.
                let planned = ctx.sql(&sql).await.map_err(|e| CatalogError::ViewPlan {
                    file: mapping.file.clone(),
                    view: what.clone(),
                    source: Box::new(e),
                })?;
                // A refresh by delta maps a part row by row unless it names a group: one whose
                // plan computes across rows must (docs/incremental.md, "The mapped rows").
                if mapping.layout == Layout::Platform
                    && part.group.is_none()
                    && computes_across_rows(ctx, mapping, part, planned.logical_plan()).await?
                {
                    return Err(CatalogError::mapping(
                        &mapping.file,
                        format!(
                            "views.{what} computes across rows (a window, an aggregate or \
                             DISTINCT): set group to the columns of its source by which its \
                             rows are made together"
                        ),
                    ));
                }
                parts.push(sql);
            }
        }
        if parts.is_empty() {
            let select: Vec<String> = view
                .columns
                .iter()
                .map(|c| {
                    format!(
                        "arrow_cast(NULL, '{}') AS {}",
                        c.data_type.arrow_cast_name(),
                        sql_ident(c.name)
                    )
                })
                .chain(
                    ["_delivery", "_joined_delivery"]
                        .map(|c| format!("CAST(NULL AS BIGINT) AS {c}")),
                )
                .chain([
                    "arrow_cast(NULL, 'Dictionary(Int32, Utf8)') AS _part".to_string(),
                    "arrow_cast(NULL, 'Utf8') AS _key".to_string(),
                ])
                .collect();
            parts.push(format!("SELECT {} WHERE false", select.join(", ")));
        }
        let mapped = view.mapped_name();
        let sql = format!(
            "CREATE OR REPLACE VIEW {RAW_SCHEMA}.{} AS {}",
            sql_ident(&mapped),
            parts.join(" UNION ALL ")
        );
        create_view(ctx, "(catalog)", &mapped, &sql).await
    }

    /// `amoeba_files`: every data file, served or rejected.
    fn files_table(&self) -> Result<MemTable> {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("path", DataType::Utf8, false),
            Field::new("platform", DataType::Utf8, true),
            Field::new("kind", DataType::Utf8, true),
            Field::new("shop_id", DataType::Utf8, true),
            Field::new("dt", DataType::Date32, true),
            Field::new("bytes", DataType::Int64, true),
            Field::new("delivery", DataType::Int64, true),
            Field::new("status", DataType::Utf8, false),
            Field::new("error", DataType::Utf8, true),
        ]));
        let served = &self.discovery.files;
        let rejected = &self.discovery.rejections;
        let n = served.len() + rejected.len();
        let text = |served: &dyn Fn(&SourceFile) -> Option<String>,
                    rejected: &dyn Fn(&Rejection) -> Option<String>|
         -> ArrayRef {
            let mut values: Vec<Option<String>> = Vec::with_capacity(n);
            values.extend(self.discovery.files.iter().map(served));
            values.extend(self.discovery.rejections.iter().map(rejected));
            Arc::new(StringArray::from(values))
        };
        let columns: Vec<ArrayRef> = vec![
            text(&|f| Some(f.path.clone()), &|r| Some(r.path.clone())),
            text(&|f| Some(f.mapping.clone()), &|_| None),
            text(&|f| Some(f.source.clone()), &|_| None),
            text(&|f| f.shop_id.clone(), &|_| None),
            Arc::new(
                served
                    .iter()
                    .map(|f| f.dt)
                    .chain(rejected.iter().map(|_| None))
                    .collect::<Date32Array>(),
            ),
            Arc::new(
                served
                    .iter()
                    .map(|f| i64::try_from(f.meta.size).ok())
                    .chain(rejected.iter().map(|_| None))
                    .collect::<Int64Array>(),
            ),
            Arc::new(
                served
                    .iter()
                    .map(|f| Some(f.delivery))
                    .chain(rejected.iter().map(|_| None))
                    .collect::<Int64Array>(),
            ),
            text(&|_| Some("served".to_string()), &|_| {
                Some("rejected".to_string())
            }),
            text(&|_| None, &|r| Some(r.reason.clone())),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
        Ok(MemTable::try_new(schema, vec![vec![batch]])?)
    }
}

/// (Re)creates what derives from the `raw.<view>_mapped` tables: each unified view (its rows
/// whose required columns are all present) and `amoeba_rejected_rows` (the others, with their
/// file). The ledger build calls it again after replacing each `_mapped` view by its
/// materialization, so that the exports are read and mapped once for the views and the report
/// of rejected rows alike.
pub async fn register_over_mapped(ctx: &SessionContext) -> Result<()> {
    let mut rejected_parts = Vec::new();
    for view in UNIFIED_VIEWS {
        let mapped = sql_ident(&view.mapped_name());
        let required: Vec<&str> = view
            .columns
            .iter()
            .filter(|c| !c.nullable)
            .map(|c| c.name)
            .collect();
        let complete = |prefix: &str| {
            required
                .iter()
                .map(|c| format!("{prefix}{} IS NOT NULL", sql_ident(c)))
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        let columns: Vec<String> = view.columns.iter().map(|c| sql_ident(c.name)).collect();
        let sql = format!(
            "CREATE OR REPLACE VIEW {} AS SELECT {} FROM {RAW_SCHEMA}.{mapped} WHERE {}",
            sql_ident(view.name),
            columns.join(", "),
            complete(""),
        );
        create_view(ctx, "(catalog)", view.name, &sql).await?;

        let which_missing = required
            .iter()
            .map(|c| format!("WHEN m.{} IS NULL THEN {}", sql_ident(c), sql_string(c)))
            .collect::<Vec<_>>()
            .join(" ");
        let row_text = view
            .columns
            .iter()
            .map(|c| format!("arrow_cast(m.{}, 'Utf8')", sql_ident(c.name)))
            .collect::<Vec<_>>()
            .join(", ");
        rejected_parts.push(format!(
            "SELECT {view_name} AS view, f.path AS file, CASE {which_missing} END AS missing_column, \
             concat_ws(' | ', {row_text}) AS row \
             FROM {RAW_SCHEMA}.{mapped} m JOIN amoeba_files f ON f.delivery = m._delivery \
             WHERE NOT ({qualified})",
            qualified = complete("m."),
            view_name = sql_string(view.name),
        ));
    }
    let sql = format!(
        "CREATE OR REPLACE VIEW amoeba_rejected_rows AS {}",
        rejected_parts.join(" UNION ALL ")
    );
    create_view(ctx, "(catalog)", "amoeba_rejected_rows", &sql).await
}

/// Creates `raw.<mapping>_<kind>` (with `create`: `CREATE VIEW` or `CREATE OR REPLACE
/// VIEW`): the newest delivery of each key, every row of that delivery with the key.
async fn create_raw_view(
    ctx: &SessionContext,
    mapping: &Mapping,
    kind: &str,
    source: &crate::mapping::SourceDef,
    create: &str,
) -> Result<()> {
    let raw = mapping.raw_table(kind);
    let columns: Vec<String> = source
        .columns
        .keys()
        .map(|c| format!("d.{}", sql_ident(c)))
        .chain([
            "d.shop_id".to_string(),
            "d.dt".to_string(),
            "d._delivery".to_string(),
        ])
        .collect();
    // The newest delivery of each key, found by a hash aggregate (`raw.<raw>_versions`) and
    // joined back: every row of that delivery with the key is kept. (A `row_number() OVER
    // (PARTITION BY key ORDER BY _delivery DESC)` window gives the same rows when a file has
    // each key once, but DataFusion's window keeps state per partition, and nearly every key
    // is its own partition: 3.7 s against 0.7 s for jd's 801 K settlement rows.) Keys may be
    // NULL (an after-sale number on a sale), hence IS NOT DISTINCT FROM, which the planner
    // still turns into hash-join keys (each in parentheses: it binds more loosely than AND).
    // A plain read of the view plans only `max(_delivery)`: the versions' other columns are
    // pruned.
    let on: Vec<String> = raw_keys(mapping, source)
        .iter()
        .map(|k| format!("(d.{k} IS NOT DISTINCT FROM n.{k})"))
        .chain(["(d._delivery IS NOT DISTINCT FROM n._newest)".to_string()])
        .collect();
    let sql = format!(
        "{create} {RAW_SCHEMA}.{raw_ident} AS SELECT {cols} \
         FROM {RAW_SCHEMA}.{delivered} d JOIN {RAW_SCHEMA}.{versions} n ON {on}",
        raw_ident = sql_ident(&raw),
        cols = columns.join(", "),
        on = on.join(" AND "),
        delivered = sql_ident(&format!("{raw}_delivered")),
        versions = sql_ident(&format!("{raw}_versions")),
    );
    create_view(ctx, &mapping.file, &raw, &sql).await
}

/// The columns of a raw table's natural key, as SQL identifiers. Platform exports are per
/// shop: a key is unique within its shop (campaign names repeat across shops), so the shop is
/// part of every platform key.
fn raw_keys(mapping: &Mapping, source: &crate::mapping::SourceDef) -> Vec<String> {
    let shop_key = (mapping.layout == Layout::Platform).then(|| "shop_id".to_string());
    shop_key
        .into_iter()
        .chain(source.key.iter().map(|k| sql_ident(k)))
        .collect()
}

/// The id of the `i`-th part of `view` in `mapping` (`tmall/order_lines/0`): each mapped row
/// carries it as `_part`.
fn part_id(mapping: &Mapping, view: &str, i: usize) -> String {
    format!("{}/{view}/{i}", mapping.name)
}

/// The text of a row's key: the shop and `columns`, each as text (a null as U+001E), joined
/// by U+001F. The same expression over a raw table and over a mapping part's `from` (where
/// the columns are unqualified) gives the same text for the same row.
fn key_text<'a>(columns: impl IntoIterator<Item = &'a String>) -> String {
    let mut parts = vec!["CAST(shop_id AS VARCHAR)".to_string()];
    for column in columns {
        parts.push(format!(
            "coalesce(CAST({} AS VARCHAR), chr(30))",
            sql_ident(column)
        ));
    }
    format!("concat_ws(chr(31), {})", parts.join(", "))
}

/// What a mapped row of a platform part carries as `_key`: its group's key for a part that
/// names one, else the key of the one source row it was made from (`None` for a part that
/// reads no source).
fn part_key(mapping: &Mapping, part: &crate::mapping::ViewPart) -> Option<String> {
    if let Some(group) = &part.group {
        return Some(key_text(group));
    }
    match mapping.sources_read_by(part).as_slice() {
        [one] => mapping.sources.get(*one).map(|s| key_text(&s.key)),
        _ => None,
    }
}

/// Whether a part's plan computes a row from several source rows (a window, an aggregate,
/// DISTINCT): its rows are not each made from one raw row. The raw tables it reads
/// de-duplicate with an aggregate of their own, which their views may bring into the plan:
/// those are counted out.
async fn computes_across_rows(
    ctx: &SessionContext,
    mapping: &Mapping,
    part: &crate::mapping::ViewPart,
    plan: &datafusion::logical_expr::LogicalPlan,
) -> Result<bool> {
    let mut of_sources = 0;
    let texts: Vec<&str> = std::iter::once(part.from.as_str())
        .chain(part.filter.as_deref())
        .collect();
    for kind in mapping.sources_read_by(part) {
        let reads: usize = texts
            .iter()
            .map(|t| t.matches(&format!("{{{kind}}}")).count())
            .sum();
        let raw = format!("{RAW_SCHEMA}.{}", sql_ident(&mapping.raw_table(kind)));
        let source = ctx.sql(&format!("SELECT * FROM {raw}")).await?;
        of_sources += reads * across_rows_nodes(source.logical_plan());
    }
    Ok(across_rows_nodes(plan) > of_sources)
}

/// The windows, aggregates and DISTINCTs in a plan.
fn across_rows_nodes(plan: &datafusion::logical_expr::LogicalPlan) -> usize {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::LogicalPlan;
    let mut count = 0;
    let visited = plan.apply(|node| {
        if matches!(
            node,
            LogicalPlan::Window(_) | LogicalPlan::Aggregate(_) | LogicalPlan::Distinct(_)
        ) {
            count += 1;
        }
        Ok(TreeNodeRecursion::Continue)
    });
    // The visit cannot fail (the closure returns Ok); if it did, count it as across rows.
    visited.map_or(usize::MAX, |_| count)
}

async fn create_view(ctx: &SessionContext, file: &str, view: &str, sql: &str) -> Result<()> {
    ctx.sql(sql).await.map_err(|e| CatalogError::ViewPlan {
        file: file.to_string(),
        view: view.to_string(),
        source: Box::new(e),
    })?;
    Ok(())
}

/// Reads `model/mappings/*.toml` of the warehouse.
/// Reads `model/model.toml` of the warehouse, if there is one.
async fn load_model(warehouse: &Warehouse) -> Result<Option<Model>> {
    let location = MODEL_FILE
        .split('/')
        .fold(warehouse.prefix().clone(), |path, part| path.join(part));
    let store_error = |source| CatalogError::ObjectStore {
        location: location.to_string(),
        source,
    };
    let bytes = match warehouse.store().get(&location).await {
        Ok(got) => got.bytes().await.map_err(store_error)?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(store_error(e)),
    };
    let file = location.to_string();
    let text = std::str::from_utf8(&bytes).map_err(|e| CatalogError::InvalidModel {
        file: file.clone(),
        line: None,
        key: None,
        reason: format!("not UTF-8: {e}"),
    })?;
    Model::parse(&file, text).map(Some)
}

async fn load_warehouse_mappings(warehouse: &Warehouse) -> Result<Vec<Mapping>> {
    let store = warehouse.store();
    let dir = MAPPINGS_DIR
        .split('/')
        .fold(warehouse.prefix().clone(), |path, part| path.join(part));
    let store_error = |source| CatalogError::ObjectStore {
        location: dir.to_string(),
        source,
    };
    let mut objects: Vec<_> = store
        .list(Some(&dir))
        .try_collect()
        .await
        .map_err(store_error)?;
    objects.sort_by(|a, b| a.location.cmp(&b.location));
    let mut mappings = Vec::new();
    for meta in objects
        .into_iter()
        .filter(|m| m.location.as_ref().ends_with(".toml"))
    {
        let bytes = store
            .get(&meta.location)
            .await
            .map_err(store_error)?
            .bytes()
            .await
            .map_err(store_error)?;
        let file = meta.location.to_string();
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| CatalogError::mapping(&file, format!("not UTF-8: {e}")))?;
        mappings.push(Mapping::parse(&file, text)?);
    }
    Ok(mappings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_platform_part_names_the_key_of_its_rows() {
        let mappings = Mapping::builtin().expect("built-in mappings parse");
        for mapping in mappings.iter().filter(|m| m.layout == Layout::Platform) {
            for (view, parts) in &mapping.views {
                for (i, part) in parts.iter().enumerate() {
                    let key = part_key(mapping, part)
                        .unwrap_or_else(|| panic!("{}: {view}[{i}] has no key", mapping.name));
                    assert!(key.starts_with("concat_ws(chr(31), CAST(shop_id"), "{key}");
                }
            }
        }
        // tmall's order lines are made per order: their key is the order's.
        let tmall = mappings.iter().find(|m| m.name == "tmall").expect("tmall");
        let lines = &tmall.views["order_lines"][0];
        assert_eq!(
            part_key(tmall, lines),
            Some(key_text(&["订单编号".to_string()]))
        );
        assert_eq!(
            key_text(&["a".to_string(), "b".to_string()]),
            "concat_ws(chr(31), CAST(shop_id AS VARCHAR), coalesce(CAST(\"a\" AS VARCHAR), chr(30)), \
             coalesce(CAST(\"b\" AS VARCHAR), chr(30)))"
        );
    }
}
