//! The ledger at rest: Parquet in the warehouse, one folder per version, partitioned by month.
//!
//! ```text
//!  <warehouse>/ledger/v<millis>/month=2025-01/<part>.parquet
//!                              month=2025-02/…
//!                              _manifest.json   rows, each month's fingerprint, the checks
//!                              _inputs.json     the inputs it was built from, as listed
//!                              _stock.book      the stock book (Parquet): month-end stock, at cost
//!                              _costed.moves    the costed stock movements (Parquet)
//!                              _month_inputs.json  what the month rules were computed from
//!                              _mapped/<view>.rows  the mapped rows it was built from (mapped.rs)
//!  <warehouse>/ledger/_current            "v<millis>"   ◄── written last: the publish
//! ```
//!
//! A version is written completely before `_current` names it, so a reader that follows
//! `_current` sees a whole ledger, the old or the new one; a build that dies half-way leaves a
//! folder nobody points at. A replaced version stays for the model's `[ledger]
//! retention_minutes` (60 by default), counted from when the version after it was written, and
//! the one before the current always stays: a query still reading it — on this server, or on
//! another one serving the same warehouse that has not picked up the new version yet — finishes.
//! Then the next publish deletes it (and any folder a dead build left that long ago).

use std::collections::BTreeMap;
use std::sync::Arc;

use amoeba_catalog::Warehouse;
use amoeba_catalog::cube::layers;
use amoeba_catalog::model::Model;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::config::TableParquetOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::MemTable;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::errors::ParquetError;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use serde::{Deserialize, Serialize};

use super::{Ledger, MonthInputs};
use crate::error::{EngineError, Result};
use crate::inputs::InputListing;
use crate::objects::{self, dir_url, next_version, now_ms};

/// The ledger table.
pub const LEDGER_TABLE: &str = "pnl_ledger";
/// The wide P&L view over it.
pub const PNL_VIEW: &str = "pnl";
/// Where the ledger lives in the warehouse.
pub const LEDGER_DIR: &str = "ledger";
const CURRENT: &str = "_current";
const MANIFEST: &str = "_manifest.json";
/// The inputs a version was built from, as listed ([`InputListing`]).
const INPUTS: &str = "_inputs.json";
/// Its stock book (`stock.rs`): Parquet, named so that the ledger table (every `.parquet`
/// file under the version's folder) does not list it.
const STOCK: &str = "_stock.book";
/// Its costed stock movements (Parquet, named so that the ledger table does not list it
/// either), which the delta build re-costs a changed chain from (`delta::cost_rows`).
const COSTED: &str = "_costed.moves";
/// What its month rules were computed from (`MonthInputs`), which the delta build adds a
/// change to (`delta::month_rows`).
const MONTH_INPUTS: &str = "_month_inputs.json";

/// The ledger's totals its checks compared (`checks::CheckSums::ledger`: by month, platform,
/// shop, unit, account and source): a refresh by delta takes those of the months it does not
/// rewrite from here instead of reading their files.
const LEDGER_SUMS: &str = "_ledger.sums";

/// Rows per row group of a ledger file. A month (half a million rows at scale 1) is a few
/// row groups, not one: a query of one month is scanned by every core (DataFusion splits a
/// file between partitions at row-group boundaries), and with the rows sorted by account the
/// row groups' statistics skip most of a month for a query of a few accounts.
const LEDGER_ROW_GROUP_ROWS: usize = 128 * 1024;

/// How ledger files are written (in the warehouse, and staged by a build on disk).
pub(crate) fn ledger_parquet_options() -> TableParquetOptions {
    let mut parquet = TableParquetOptions::default();
    parquet.global.max_row_group_size = LEDGER_ROW_GROUP_ROWS;
    parquet
}

/// The precision of a ledger line's `amount` (see [`ledger_schema`]).
pub(crate) const LEDGER_AMOUNT_PRECISION: u8 = 18;

/// The ledger's schema (with the `month` partition column last).
///
/// Money at rest is `DECIMAL(18,2)` (DESIGN.md), sums are `DECIMAL(38,2)`: one ledger line is
/// under 10^16 yuan, and Parquet stores a decimal of precision ≤ 18 as an INT64, which a scan
/// decodes about twice as fast as the 16-byte FIXED_LEN_BYTE_ARRAY of `DECIMAL(38,2)` (every
/// ledger query reads `amount`). A line that does not fit fails the build, naming the value.
pub(crate) fn ledger_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("date", DataType::Date32, true),
        Field::new("platform", DataType::Utf8, true),
        Field::new("shop_id", DataType::Utf8, true),
        Field::new("sku", DataType::Utf8, true),
        Field::new("campaign", DataType::Utf8, true),
        Field::new("unit_id", DataType::Utf8, true),
        Field::new("account", DataType::Utf8, true),
        Field::new(
            "amount",
            DataType::Decimal128(LEDGER_AMOUNT_PRECISION, 2),
            true,
        ),
        Field::new("qty", DataType::Int64, true),
        Field::new("source", DataType::Utf8, true),
        Field::new("month", DataType::Utf8, true),
    ]))
}

/// What a published version holds: read by the cube refresh to know which months changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerManifest {
    /// The version (`v<millis>`).
    pub version: String,
    /// When it was published (Unix milliseconds).
    pub published_at_ms: u64,
    /// Its rows.
    pub rows: u64,
    /// A fingerprint of each month's rows (`<rows>:<hash>`): equal when the month is unchanged.
    pub months: BTreeMap<String, String>,
    /// A fingerprint of the inputs it was built from (every export and the model, as listed,
    /// and the program that built it): a start on the same inputs serves it without a build.
    #[serde(default)]
    pub inputs: Option<String>,
    /// Its reconciliation report (`amoeba_checks`), served again with it.
    #[serde(default)]
    pub checks: Vec<super::CheckRow>,
}

fn manifest_path(version: &str) -> String {
    format!("{LEDGER_DIR}/{version}/{MANIFEST}")
}

fn stock_path(version: &str) -> String {
    format!("{LEDGER_DIR}/{version}/{STOCK}")
}

/// The stock book of version `version` (`None` for a version published before books were
/// kept: `stock_balances` is then empty until the next build).
pub async fn published_stock(warehouse: &Warehouse, version: &str) -> Result<Option<RecordBatch>> {
    let at = stock_path(version);
    match objects::read(warehouse, &at).await? {
        Some(bytes) => super::stock::from_parquet(bytes, &at).map(Some),
        None => Ok(None),
    }
}

/// The costed stock movements of version `version`, in chain and time order (`None` for a
/// version that stored none: built on disk, or published before they were kept).
pub async fn published_costed(warehouse: &Warehouse, version: &str) -> Result<Option<RecordBatch>> {
    published_batch(warehouse, version, COSTED).await
}

/// The rows of the Parquet file `name` of version `version` (as [`batch_to_parquet`] wrote
/// it), `None` when it has none.
pub(crate) async fn published_batch(
    warehouse: &Warehouse,
    version: &str,
    name: &str,
) -> Result<Option<RecordBatch>> {
    let at = format!("{LEDGER_DIR}/{version}/{name}");
    match objects::read(warehouse, &at).await? {
        // Decoded off the async threads: a refresh by delta reads these while it reads the
        // mapped rows, and a decode is CPU work of its own.
        Some(bytes) => tokio::task::spawn_blocking(move || {
            let schema = parquet_schema(&bytes, &at)?;
            batch_from_parquet(bytes, &schema, &at).map(Some)
        })
        .await
        .map_err(|e| EngineError::ledger(format!("reading {name}: {e}")))?,
        None => Ok(None),
    }
}

/// What the month rules of version `version` were computed from (`None` for a version
/// published before they were kept).
pub async fn published_month_inputs(
    warehouse: &Warehouse,
    version: &str,
) -> Result<Option<MonthInputs>> {
    let at = format!("{LEDGER_DIR}/{version}/{MONTH_INPUTS}");
    match objects::read(warehouse, &at).await? {
        Some(bytes) => MonthInputs::from_json(&bytes, &at).map(Some),
        None => Ok(None),
    }
}

/// The ledger's totals the checks of version `version` compared (`None` for a version
/// published before they were kept).
pub async fn published_ledger_sums(
    warehouse: &Warehouse,
    version: &str,
) -> Result<Option<RecordBatch>> {
    published_batch(warehouse, version, LEDGER_SUMS).await
}

/// How a version's own files (costed movements, sums, mapped rows) are written: ZSTD.
pub(crate) fn writer_properties() -> datafusion::parquet::file::properties::WriterProperties {
    datafusion::parquet::file::properties::WriterProperties::builder()
        .set_compression(datafusion::parquet::basic::Compression::ZSTD(
            datafusion::parquet::basic::ZstdLevel::default(),
        ))
        .build()
}

/// `batch` as a Parquet file's bytes, ZSTD-compressed; `what` names it in errors.
///
/// The columns of each row group are encoded in parallel, a share of them on each core,
/// and the encoded chunks are appended in column order: the bytes are those of
/// `ArrowWriter`'s one-thread encoding. The costed movements (1.5 M rows at scale 1) took
/// 0.64 s on one core of a refresh by delta.
pub(crate) fn batch_to_parquet(batch: &RecordBatch, what: &str) -> Result<Vec<u8>> {
    encoded_in_parallel(batch, writer_properties(), what)
}

/// `batch` as a Parquet file's bytes written with `properties`, its columns encoded in
/// parallel ([`batch_to_parquet`]).
fn encoded_in_parallel(
    batch: &RecordBatch,
    properties: datafusion::parquet::file::properties::WriterProperties,
    what: &str,
) -> Result<Vec<u8>> {
    use datafusion::parquet::arrow::arrow_writer::{ArrowColumnChunk, compute_leaves};
    let err = |e: ParquetError| EngineError::ledger(format!("{what}: {e}"));
    let rows_per_group = properties
        .max_row_group_row_count()
        .unwrap_or(usize::MAX)
        .max(1);
    let schema = batch.schema();
    let writer =
        ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(properties)).map_err(err)?;
    let (mut file, row_groups) = writer.into_serialized_writer().map_err(err)?;
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let mut offset = 0;
    let mut group = 0;
    while offset < batch.num_rows() {
        let rows = batch.slice(offset, rows_per_group.min(batch.num_rows() - offset));
        let mut leaves = Vec::new();
        for (field, column) in schema.fields().iter().zip(rows.columns()) {
            leaves.extend(compute_leaves(field, column).map_err(err)?);
        }
        // Column i goes to thread i % threads; each returns (i, its chunk).
        let mut shares: Vec<Vec<_>> = (0..threads).map(|_| Vec::new()).collect();
        let writers = row_groups.create_column_writers(group).map_err(err)?;
        for (i, (writer, leaf)) in writers.into_iter().zip(leaves).enumerate() {
            shares[i % threads].push((i, writer, leaf));
        }
        let mut chunks: Vec<(usize, ArrowColumnChunk)> = std::thread::scope(|scope| {
            let encoders: Vec<_> = shares
                .into_iter()
                .map(|share| {
                    scope.spawn(move || {
                        share
                            .into_iter()
                            .map(|(i, mut writer, leaf)| {
                                writer.write(&leaf)?;
                                Ok((i, writer.close()?))
                            })
                            .collect::<std::result::Result<Vec<_>, ParquetError>>()
                    })
                })
                .collect();
            let mut chunks = Vec::new();
            for encoder in encoders {
                let encoded = encoder
                    .join()
                    .map_err(|_| EngineError::ledger(format!("{what}: an encoder panicked")))?;
                chunks.extend(encoded.map_err(err)?);
            }
            Ok::<_, EngineError>(chunks)
        })?;
        chunks.sort_by_key(|(i, _)| *i);
        let mut row_group = file.next_row_group().map_err(err)?;
        for (_, chunk) in chunks {
            chunk.append_to_row_group(&mut row_group).map_err(err)?;
        }
        row_group.close().map_err(err)?;
        offset += rows.num_rows();
        group += 1;
    }
    file.into_inner().map_err(err)
}

/// The schema of a Parquet file's bytes (as [`batch_to_parquet`] wrote it).
pub(crate) fn parquet_schema(bytes: &[u8], at: &str) -> Result<SchemaRef> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes))
        .map(|b| Arc::clone(b.schema()))
        .map_err(|e| EngineError::ledger(format!("{at}: {e}")))
}

/// The rows of a Parquet file's bytes as one batch of `schema`; `at` names the file in errors.
pub(crate) fn batch_from_parquet(
    bytes: Vec<u8>,
    schema: &SchemaRef,
    at: &str,
) -> Result<RecordBatch> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let err = |e: &dyn std::fmt::Display| EngineError::ledger(format!("{at}: {e}"));
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .map_err(|e| err(&e))?
        .build()
        .map_err(|e| err(&e))?;
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| err(&e))?;
    datafusion::arrow::compute::concat_batches(schema, &batches).map_err(|e| err(&e))
}

fn listing_path(version: &str) -> String {
    format!("{LEDGER_DIR}/{version}/{INPUTS}")
}

/// The inputs version `version` was built from, as listed then (`None` for a version
/// published before listings were stored).
pub async fn published_listing(
    warehouse: &Warehouse,
    version: &str,
) -> Result<Option<InputListing>> {
    let at = listing_path(version);
    match objects::read(warehouse, &at).await? {
        Some(bytes) => InputListing::from_json(&bytes, &at).map(Some),
        None => Ok(None),
    }
}

/// Writes a new version and points `_current` at it; returns its manifest.
pub(crate) async fn publish(ledger: &Ledger, warehouse: &Warehouse) -> Result<LedgerManifest> {
    let previous = current_version(warehouse).await?;
    let version = next_version(previous.as_deref());
    let started = std::time::Instant::now();
    match &ledger.staged {
        // Built on disk: its files, written in the build, are copied as they are.
        Some(staged) => {
            for (month, name, path) in super::staging::ledger_files(&staged.dir)? {
                let bytes = tokio::fs::read(&path).await.map_err(|e| {
                    EngineError::ledger(format!("staged ledger file {}: {e}", path.display()))
                })?;
                let rel = format!("{LEDGER_DIR}/{version}/month={month}/{name}");
                objects::write(warehouse, &rel, bytes).await?;
            }
        }
        None if ledger.batches().is_empty() => {}
        None => {
            let ctx = SessionContext::new();
            warehouse.register(&ctx);
            let schema = ledger
                .batches()
                .first()
                .map(|b| b.schema())
                .unwrap_or_else(ledger_schema);
            let table = MemTable::try_new(schema, vec![ledger.batches().to_vec()])?;
            ctx.read_table(Arc::new(table))?
                .write_parquet(
                    &dir_url(warehouse, &format!("{LEDGER_DIR}/{version}")),
                    DataFrameWriteOptions::new().with_partition_by(vec!["month".to_string()]),
                    Some(ledger_parquet_options()),
                )
                .await?;
        }
    }
    let written = started.elapsed();
    // Built by delta: the months it did not rewrite are the base version's files, copied.
    if let Some(by_delta) = &ledger.by_delta {
        for month in by_delta.months.keys() {
            if by_delta.rewritten.contains(month) {
                continue;
            }
            let from = objects::path(
                warehouse,
                &format!("{LEDGER_DIR}/{}/month={month}", by_delta.base),
            );
            for file in objects::list(warehouse, &from).await? {
                let Some(name) = file.filename() else {
                    continue;
                };
                let to = objects::path(
                    warehouse,
                    &format!("{LEDGER_DIR}/{version}/month={month}/{name}"),
                );
                objects::copy(warehouse, &file, &to).await?;
            }
        }
    }
    let copied = started.elapsed();
    let manifest = LedgerManifest {
        version: version.clone(),
        published_at_ms: now_ms(),
        rows: ledger.num_rows() as u64,
        months: ledger.month_fingerprints()?,
        inputs: ledger.inputs.clone(),
        checks: ledger.checks().to_vec(),
    };
    if let Some(listing) = &ledger.listing {
        objects::write(warehouse, &listing_path(&version), listing.to_json()?).await?;
    }
    if let Some(book) = &ledger.stock {
        objects::write(
            warehouse,
            &stock_path(&version),
            super::stock::to_parquet(book)?,
        )
        .await?;
    }
    let other = started.elapsed();
    if let Some(costed) = &ledger.costed {
        let at = format!("{LEDGER_DIR}/{version}/{COSTED}");
        objects::write(warehouse, &at, batch_to_parquet(costed, &at)?).await?;
    }
    let costed = started.elapsed();
    if let Some(mapped) = &ledger.mapped {
        mapped
            .write(warehouse, &format!("{LEDGER_DIR}/{version}"))
            .await?;
    }
    let mapped = started.elapsed();
    if let Some(inputs) = &ledger.month_inputs {
        let at = format!("{LEDGER_DIR}/{version}/{MONTH_INPUTS}");
        objects::write(warehouse, &at, inputs.to_json()?).await?;
    }
    if let Some(sums) = &ledger.check_sums {
        let at = format!("{LEDGER_DIR}/{version}/{LEDGER_SUMS}");
        objects::write(warehouse, &at, batch_to_parquet(&sums.ledger, &at)?).await?;
    }
    log::debug!(
        "ledger {version} published: months written {:.2}s, copied {:.2}s, costed movements \
         {:.2}s, mapped rows {:.2}s, the rest {:.2}s",
        written.as_secs_f64(),
        (copied - written).as_secs_f64(),
        (costed - other).as_secs_f64(),
        (mapped - costed).as_secs_f64(),
        (started.elapsed() - mapped + other - copied).as_secs_f64()
    );
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| EngineError::ledger(format!("manifest of {version}: {e}")))?;
    objects::write(warehouse, &manifest_path(&version), json).await?;
    // The publish: readers following `_current` see the whole new version from here on.
    objects::write(
        warehouse,
        &format!("{LEDGER_DIR}/{CURRENT}"),
        version.clone().into_bytes(),
    )
    .await?;
    remove_old_versions(warehouse, &version, ledger.model().ledger_retention).await?;
    Ok(manifest)
}

/// The published version, if any.
pub async fn current_version(warehouse: &Warehouse) -> Result<Option<String>> {
    Ok(objects::read(warehouse, &format!("{LEDGER_DIR}/{CURRENT}"))
        .await?
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string()))
}

/// The manifest of the published version, if any (`None` also for a version published before
/// manifests existed: the next publish writes one).
pub async fn current_manifest(warehouse: &Warehouse) -> Result<Option<LedgerManifest>> {
    let Some(version) = current_version(warehouse).await? else {
        return Ok(None);
    };
    let Some(bytes) = objects::read(warehouse, &manifest_path(&version)).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| EngineError::ledger(format!("{}: {e}", manifest_path(&version))))
}

/// Deletes the version folders older than `keep` that were replaced more than `retention` ago,
/// except the one just before `keep`. Folders newer than `keep` (a build under way elsewhere)
/// are left alone.
async fn remove_old_versions(
    warehouse: &Warehouse,
    keep: &str,
    retention: std::time::Duration,
) -> Result<()> {
    let keep_n = objects::version_number(keep).unwrap_or(u128::MAX);
    let versions = objects::versions(warehouse, LEDGER_DIR).await?;
    let now = u128::from(now_ms());
    for (i, (n, dir)) in versions.iter().enumerate() {
        // A version's number is when it was written: the next one's is when this was replaced.
        let Some((replaced_at, _)) = versions.get(i + 1) else {
            continue;
        };
        let expired = *n < keep_n
            && *replaced_at < keep_n
            && now.saturating_sub(*replaced_at) >= retention.as_millis();
        if expired {
            objects::remove_dir(warehouse, dir).await?;
        }
    }
    Ok(())
}

/// Registers the published `version` as `pnl_ledger` in `ctx`.
pub(crate) async fn register_published(
    ctx: &SessionContext,
    warehouse: &Warehouse,
    version: &str,
) -> Result<()> {
    warehouse.register(ctx);
    if ctx.table_exist(LEDGER_TABLE)? {
        ctx.deregister_table(LEDGER_TABLE)?;
    }
    ctx.register_parquet(
        LEDGER_TABLE,
        &dir_url(warehouse, &format!("{LEDGER_DIR}/{version}")),
        ParquetReadOptions::default()
            .table_partition_cols(vec![("month".to_string(), DataType::Utf8)]),
    )
    .await?;
    Ok(())
}

/// `CREATE OR REPLACE VIEW pnl`: one row per (date, month, platform, shop, SKU, campaign, unit),
/// one column per account of the model and the profit layers.
pub(crate) fn pnl_view_sql(model: &Model) -> String {
    let sum = |accounts: &[&str]| {
        let list: Vec<String> = accounts.iter().map(|a| format!("'{a}'")).collect();
        format!(
            "CAST(SUM(CASE WHEN account IN ({}) THEN amount ELSE 0 END) AS DECIMAL(38,2))",
            list.join(", ")
        )
    };
    let accounts = model.accounts();
    let mut cols: Vec<String> = accounts
        .iter()
        .map(|a| format!("{} AS {a}", sum(&[a])))
        .collect();
    let allocated: Vec<&str> = accounts
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("allocated_"))
        .collect();
    cols.push(format!("{} AS allocated_total", sum(&allocated)));
    for (layer, accounts) in layers() {
        cols.push(format!("{} AS {layer}", sum(&accounts)));
    }
    cols.push("CAST(SUM(amount) AS DECIMAL(38,2)) AS net_profit".to_string());
    format!(
        "CREATE OR REPLACE VIEW {PNL_VIEW} AS SELECT date, month, platform, shop_id, sku, campaign, unit_id, {} \
         FROM {LEDGER_TABLE} GROUP BY date, month, platform, shop_id, sku, campaign, unit_id",
        cols.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        ArrayRef, Decimal128Array, DictionaryArray, Int64Array, StringArray,
    };
    use datafusion::arrow::datatypes::Int32Type;
    use datafusion::parquet::file::properties::WriterProperties;

    #[test]
    fn columns_encoded_in_parallel_are_the_bytes_one_thread_writes() {
        let parts: DictionaryArray<Int32Type> =
            ["a", "b", "a", "c", "a", "b", "c"].into_iter().collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![
                Some("SKU-1"),
                None,
                Some("SKU-2"),
                Some("SKU-1"),
                Some("SKU-3"),
                None,
                Some("SKU-9"),
            ])),
            Arc::new(parts),
            Arc::new(
                Decimal128Array::from(vec![
                    Some(1),
                    Some(-250),
                    None,
                    Some(7),
                    Some(0),
                    Some(1),
                    Some(99),
                ])
                .with_precision_and_scale(38, 2)
                .expect("decimal"),
            ),
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5, 6, 7])),
        ];
        let schema = Arc::new(Schema::new(vec![
            Field::new("sku", DataType::Utf8, true),
            Field::new("_part", columns[1].data_type().clone(), true),
            Field::new("amount", DataType::Decimal128(38, 2), true),
            Field::new("qty", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).expect("batch");
        // Three row groups of at most three rows.
        let properties = || {
            WriterProperties::builder()
                .set_max_row_group_row_count(Some(3))
                .set_compression(datafusion::parquet::basic::Compression::ZSTD(
                    datafusion::parquet::basic::ZstdLevel::default(),
                ))
                .build()
        };
        let parallel = encoded_in_parallel(&batch, properties(), "test").expect("parallel");
        let mut writer =
            ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(properties())).expect("w");
        writer.write(&batch).expect("write");
        let one_thread = writer.into_inner().expect("bytes");
        assert_eq!(parallel, one_thread);
        let read = batch_from_parquet(parallel, &schema, "test").expect("read");
        assert_eq!(read, batch);
        // No rows: a file of the schema and no row group.
        let empty = encoded_in_parallel(
            &RecordBatch::new_empty(Arc::clone(&schema)),
            properties(),
            "test",
        )
        .expect("empty");
        assert_eq!(
            batch_from_parquet(empty, &schema, "test")
                .expect("read")
                .num_rows(),
            0
        );
    }
}
