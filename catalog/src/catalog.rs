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

/// How to find the keys of one platform export kind that were delivered more than once
/// ([`Catalog::redelivered_keys`]).
#[derive(Debug, Clone)]
pub struct RedeliveredKeys {
    /// The raw table (`tmall_orders`).
    pub table: String,
    /// Every such key's first and last delivery (`oldest`, `newest`, BIGINT) and its number of
    /// rows (`deliveries`, BIGINT): a key with two rows was delivered exactly those two times.
    pub twice: String,
    /// Every delivery (`deliveries`, a list of BIGINT) of each key with more than two rows.
    pub more: String,
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

    /// The served files of the platform mappings (`Layout::Platform`): the exports.
    pub fn platform_exports(&self) -> impl Iterator<Item = &SourceFile> + '_ {
        self.discovery.files.iter().filter(|f| {
            self.mappings
                .iter()
                .any(|m| m.name == f.mapping && m.layout == Layout::Platform)
        })
    }

    /// The first platform mapping that feeds a view not in `views`, with that view: `None`
    /// when every platform mapping feeds only `views`.
    pub fn platform_view_outside(&self, views: &[&str]) -> Option<(&str, &str)> {
        view_outside(&self.mappings, views)
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

    /// The rejected files.
    pub fn rejections(&self) -> &[Rejection] {
        &self.discovery.rejections
    }

    /// Registers the store, the raw tables, the unified views and the catalog's own tables
    /// in `ctx`.
    pub async fn register(&self, ctx: &SessionContext) -> Result<()> {
        self.warehouse.register(ctx);
        ctx.sql(&format!("CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}"))
            .await?;
        for mapping in &self.mappings {
            for (kind, source) in &mapping.sources {
                self.register_source(ctx, mapping, kind, source).await?;
            }
        }
        ctx.register_table("amoeba_files", Arc::new(self.files_table()?))?;
        self.register_mapped_views(ctx).await?;
        register_over_mapped(ctx).await
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

    /// The versions tables (`raw.<mapping>_<source>_versions`: each key of a platform export
    /// kind with its newest and oldest delivery and its number of rows) of the kinds with
    /// served files. The de-duplicated raw tables read them: a build that materializes them
    /// first ([`Catalog::register_raw_views`]) de-duplicates with the same aggregate that tells
    /// it which keys were delivered more than once.
    pub fn versions_tables(&self) -> Vec<TableReference> {
        self.platform_sources()
            .map(|(mapping, kind, _)| {
                TableReference::partial(RAW_SCHEMA, format!("{}_versions", mapping.raw_table(kind)))
            })
            .collect()
    }

    /// The de-duplicated raw tables (`raw.<mapping>_<source>`) of the platform export kinds
    /// with served files.
    pub fn platform_raw_tables(&self) -> Vec<TableReference> {
        self.platform_sources()
            .map(|(mapping, kind, _)| TableReference::partial(RAW_SCHEMA, mapping.raw_table(kind)))
            .collect()
    }

    /// Re-creates the de-duplicated raw tables of the platform exports over the versions
    /// tables registered in `ctx` now (a view reads the tables it was created over, not those
    /// registered under the same names later).
    pub async fn register_raw_views(&self, ctx: &SessionContext) -> Result<()> {
        for (mapping, kind, source) in self.platform_sources() {
            create_raw_view(ctx, mapping, kind, source, "CREATE OR REPLACE VIEW").await?;
        }
        Ok(())
    }

    /// Every source kind of a platform mapping that has served files.
    fn platform_sources(
        &self,
    ) -> impl Iterator<Item = (&Mapping, &str, &crate::mapping::SourceDef)> + '_ {
        self.mappings
            .iter()
            .filter(|m| m.layout == Layout::Platform)
            .flat_map(|m| m.sources.iter().map(move |(k, s)| (m, k.as_str(), s)))
            .filter(|(m, kind, _)| {
                self.discovery
                    .files
                    .iter()
                    .any(|f| f.mapping == m.name && f.source == *kind)
            })
    }

    /// Statements that find the keys of platform exports delivered more than once, in a
    /// session where the catalog is registered: a pair per export kind with served files
    /// ([`RedeliveredKeys`]).
    ///
    /// The incremental build reads the old side of a change from some of the files only. A
    /// file it reads must come with every other delivery of the keys it holds: the newest
    /// delivery of a key wins, and it must be one that was read.
    pub fn redelivered_keys(&self) -> Vec<RedeliveredKeys> {
        self.platform_sources()
            .map(|(mapping, kind, source)| {
                let raw = mapping.raw_table(kind);
                let table = |suffix: &str| {
                    format!("{RAW_SCHEMA}.{}", sql_ident(&format!("{raw}_{suffix}")))
                };
                let keys = raw_keys(mapping, source);
                let on: Vec<String> = keys
                    .iter()
                    .map(|k| format!("(d.{k} IS NOT DISTINCT FROM m.{k})"))
                    .collect();
                let d_keys: Vec<String> = keys.iter().map(|k| format!("d.{k}")).collect();
                RedeliveredKeys {
                    twice: format!(
                        "SELECT _oldest AS oldest, _newest AS newest, _rows AS deliveries \
                         FROM {versions} WHERE _oldest <> _newest",
                        versions = table("versions")
                    ),
                    more: format!(
                        "SELECT array_agg(DISTINCT d._delivery) AS deliveries \
                         FROM {delivered} d JOIN ( \
                           SELECT {keys} FROM {versions} WHERE _rows > 2 AND _oldest <> _newest) m \
                         ON {on} GROUP BY {d_keys}",
                        delivered = table("delivered"),
                        versions = table("versions"),
                        keys = keys.join(", "),
                        on = on.join(" AND "),
                        d_keys = d_keys.join(", "),
                    ),
                    table: raw,
                }
            })
            .collect()
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
                let mut sql = format!("SELECT {} FROM {}", select.join(", "), expand(&part.from)?);
                if let Some(filter) = &part.filter {
                    sql.push_str(&format!(" WHERE ({})", expand(filter)?));
                }
                // Plan each part alone first, so that an error names its mapping file.
                ctx.sql(&sql).await.map_err(|e| CatalogError::ViewPlan {
                    file: mapping.file.clone(),
                    view: what,
                    source: Box::new(e),
                })?;
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
/// The first of `mappings` of the platform layout that feeds a view not in `views`, with
/// that view.
fn view_outside<'a>(mappings: &'a [Mapping], views: &[&str]) -> Option<(&'a str, &'a str)> {
    mappings
        .iter()
        .filter(|m| m.layout == Layout::Platform)
        .find_map(|m| {
            m.views
                .keys()
                .find(|v| !views.contains(&v.as_str()))
                .map(|v| (m.name.as_str(), v.as_str()))
        })
}

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

    /// The order-keyed views, which a delta restricts to its closure's keys.
    const ORDER_KEYED: [&str; 5] = ["order_lines", "refunds", "fees", "ad_spend", "waybills"];

    #[test]
    fn a_platform_mapping_feeding_another_view_is_named() {
        let mut mappings = Mapping::builtin().expect("built-in mappings parse");
        // The built-in platform mappings feed only the order-keyed views; the company
        // mapping feeds purchases, expenses and more, and is not a platform's.
        assert_eq!(view_outside(&mappings, &ORDER_KEYED), None);
        let text = "name = \"shopx\"\nlayout = \"platform\"\n\
                    [sources.stock]\nkey = [\"sku\"]\ncolumns = { sku = \"string\" }\n\
                    [[views.stock_adjustments]]\nfrom = \"{stock}\"\n\
                    columns = { adjustment_id = \"sku\", sku = \"sku\", warehouse = \"'w'\", qty = \"0\", \
                    date = \"NULL\", reason = \"'count'\" }\n";
        mappings.push(Mapping::parse("shopx.toml", text).expect("a platform mapping"));
        assert_eq!(
            view_outside(&mappings, &ORDER_KEYED),
            Some(("shopx", "stock_adjustments"))
        );
    }
}
