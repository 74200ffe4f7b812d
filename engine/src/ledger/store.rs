//! The ledger at rest: Parquet in the warehouse, one folder per version, partitioned by month.
//!
//! ```text
//!  <warehouse>/ledger/v<millis>/month=2025-01/<part>.parquet
//!                              month=2025-02/…
//!  <warehouse>/ledger/_current            "v<millis>"   ◄── written last: the publish
//! ```
//!
//! A version is written completely before `_current` names it, so a reader that follows
//! `_current` sees a whole ledger, the old or the new one; a build that dies half-way leaves a
//! folder nobody points at, removed by the next publish. The previous version is kept (a query
//! running on it may still be reading), older ones are deleted.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use amoeba_catalog::Warehouse;
use amoeba_catalog::model::Model;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::MemTable;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use super::Ledger;
use crate::error::{EngineError, Result};

/// The ledger table.
pub const LEDGER_TABLE: &str = "pnl_ledger";
/// The wide P&L view over it.
pub const PNL_VIEW: &str = "pnl";
/// Where the ledger lives in the warehouse.
pub const LEDGER_DIR: &str = "ledger";
const CURRENT: &str = "_current";

/// The ledger's schema (with the `month` partition column last).
pub(crate) fn ledger_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("date", DataType::Date32, true),
        Field::new("platform", DataType::Utf8, true),
        Field::new("shop_id", DataType::Utf8, true),
        Field::new("sku", DataType::Utf8, true),
        Field::new("campaign", DataType::Utf8, true),
        Field::new("unit_id", DataType::Utf8, true),
        Field::new("account", DataType::Utf8, true),
        Field::new("amount", DataType::Decimal128(38, 2), true),
        Field::new("qty", DataType::Int64, true),
        Field::new("source", DataType::Utf8, true),
        Field::new("month", DataType::Utf8, true),
    ]))
}

fn path(warehouse: &Warehouse, rel: &str) -> Path {
    rel.split('/')
        .filter(|p| !p.is_empty())
        .fold(warehouse.prefix().clone(), |p, part| p.join(part))
}

fn url(warehouse: &Warehouse, rel: &str) -> String {
    format!(
        "{}{}/",
        warehouse.store_url().as_str(),
        path(warehouse, rel)
    )
}

fn store_err(location: &Path) -> impl Fn(object_store::Error) -> EngineError + '_ {
    move |source| EngineError::Store {
        location: location.to_string(),
        source,
    }
}

/// Writes a new version and points `_current` at it; returns the version.
pub(crate) async fn publish(ledger: &Ledger, warehouse: &Warehouse) -> Result<String> {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let version = format!("v{millis}");
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
            &url(warehouse, &format!("{LEDGER_DIR}/{version}")),
            DataFrameWriteOptions::new().with_partition_by(vec!["month".to_string()]),
            None,
        )
        .await?;
    let current = path(warehouse, &format!("{LEDGER_DIR}/{CURRENT}"));
    warehouse
        .store()
        .put(&current, PutPayload::from(version.clone().into_bytes()))
        .await
        .map_err(store_err(&current))?;
    remove_old_versions(warehouse, &version).await?;
    Ok(version)
}

/// The published version, if any.
pub async fn current_version(warehouse: &Warehouse) -> Result<Option<String>> {
    let current = path(warehouse, &format!("{LEDGER_DIR}/{CURRENT}"));
    match warehouse.store().get(&current).await {
        Ok(got) => {
            let bytes = got.bytes().await.map_err(store_err(&current))?;
            Ok(Some(String::from_utf8_lossy(&bytes).trim().to_string()))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(store_err(&current)(e)),
    }
}

/// Deletes every version folder but `keep` and the one before it.
async fn remove_old_versions(warehouse: &Warehouse, keep: &str) -> Result<()> {
    let dir = path(warehouse, LEDGER_DIR);
    let listing = warehouse
        .store()
        .list_with_delimiter(Some(&dir))
        .await
        .map_err(store_err(&dir))?;
    let mut versions: Vec<(u128, Path)> = listing
        .common_prefixes
        .into_iter()
        .filter_map(|p| {
            let n = p.filename()?.strip_prefix('v')?.parse::<u128>().ok()?;
            Some((n, p))
        })
        .collect();
    versions.sort();
    let keep_n: u128 = keep
        .strip_prefix('v')
        .and_then(|n| n.parse().ok())
        .unwrap_or(u128::MAX);
    let older: Vec<&Path> = versions
        .iter()
        .filter(|(n, _)| *n < keep_n)
        .map(|(_, p)| p)
        .collect();
    let doomed = older.len().saturating_sub(1);
    for p in older.into_iter().take(doomed) {
        let files: Vec<_> = warehouse
            .store()
            .list(Some(p))
            .try_collect()
            .await
            .map_err(store_err(p))?;
        for f in files {
            warehouse
                .store()
                .delete(&f.location)
                .await
                .map_err(store_err(&f.location))?;
        }
        // A local file system keeps the emptied folders; object stores have none.
        if warehouse.store_url().as_str().starts_with("file://") {
            let _ = std::fs::remove_dir_all(format!("/{p}"));
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
        &url(warehouse, &format!("{LEDGER_DIR}/{version}")),
        ParquetReadOptions::default()
            .table_partition_cols(vec![("month".to_string(), DataType::Utf8)]),
    )
    .await?;
    Ok(())
}

/// The fixed accounts of spec/pnl.md, in P&L order, with the layer they close.
const ACCOUNTS: &[&str] = &[
    "gross_sales",
    "seller_discount",
    "shipping_income",
    "refund",
    "cogs",
    "inventory_loss",
    "platform_commission",
    "platform_service_fee",
    "payment_fee",
    "shipping_cost",
    "packaging",
    "advertising",
    "affiliate_commission",
    "other_platform_fee",
    "internal_revenue",
    "internal_cost",
];

/// `CREATE OR REPLACE VIEW pnl`: one row per (date, month, platform, shop, SKU, campaign, unit),
/// one column per account (the model's allocation accounts included) and the profit layers.
pub(crate) fn pnl_view_sql(model: &Model) -> String {
    let mut allocated: Vec<String> = model
        .pools
        .iter()
        .map(|p| p.account.clone())
        .filter(|a| a.starts_with("allocated_"))
        .chain(
            model
                .step_down
                .iter()
                .map(|s| format!("allocated_{}", s.unit.to_lowercase())),
        )
        .collect();
    allocated.push("allocated_other".to_string());
    allocated.sort();
    allocated.dedup();
    let sum = |accounts: &[&str]| {
        let list: Vec<String> = accounts.iter().map(|a| format!("'{a}'")).collect();
        format!(
            "CAST(SUM(CASE WHEN account IN ({}) THEN amount ELSE 0 END) AS DECIMAL(38,2))",
            list.join(", ")
        )
    };
    let mut cols: Vec<String> = ACCOUNTS
        .iter()
        .chain(
            allocated
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .iter(),
        )
        .map(|a| format!("{} AS {a}", sum(&[a])))
        .collect();
    let all_allocated: Vec<&str> = allocated.iter().map(String::as_str).collect();
    cols.push(format!("{} AS allocated_total", sum(&all_allocated)));
    let net_sales = [
        "gross_sales",
        "seller_discount",
        "shipping_income",
        "refund",
    ];
    let cm1: Vec<&str> = net_sales
        .iter()
        .copied()
        .chain(["cogs", "inventory_loss"])
        .collect();
    let cm2: Vec<&str> = cm1
        .iter()
        .copied()
        .chain([
            "platform_commission",
            "platform_service_fee",
            "payment_fee",
            "shipping_cost",
            "packaging",
        ])
        .collect();
    let cm3: Vec<&str> = cm2
        .iter()
        .copied()
        .chain(["advertising", "affiliate_commission"])
        .collect();
    cols.push(format!("{} AS net_sales", sum(&net_sales)));
    cols.push(format!("{} AS gross_profit", sum(&cm1)));
    cols.push(format!("{} AS cm2", sum(&cm2)));
    cols.push(format!("{} AS cm3", sum(&cm3)));
    cols.push("CAST(SUM(amount) AS DECIMAL(38,2)) AS net_profit".to_string());
    format!(
        "CREATE OR REPLACE VIEW {PNL_VIEW} AS SELECT date, month, platform, shop_id, sku, campaign, unit_id, {} \
         FROM {LEDGER_TABLE} GROUP BY date, month, platform, shop_id, sku, campaign, unit_id",
        cols.join(", ")
    )
}
