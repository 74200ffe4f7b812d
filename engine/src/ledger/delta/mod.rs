//! The rows a change touches, built on one side of it: `rows(K, F)` of the delta build
//! (`docs/incremental.md`, step 4).
//!
//! With Fₒ the inputs of the published version, Fₙ the inputs after the change and K its
//! closure ([`ClosureKeys`]), the order-local part of the ledger (sales, refunds, fees, ads,
//! freight) obeys
//!
//! ```text
//!  ledger(Fₙ) = ledger(Fₒ) + order_rows(K, Fₙ) − order_rows(K, Fₒ)        at the ledger grain
//! ```
//!
//! [`order_rows`] runs the full build's SQL (`sources.rs`, `spread.rs`: the same statements,
//! through the same `cache_sources` and
//! `cache_spreads`) over unified views restricted to what K names,
//! a [`Side`] per side of the change:
//!
//! ```text
//!  order_lines, refunds   the rows of K's orders
//!  fees                   those of K's orders; with no order id: those of K's lines, and every
//!                         one whose line is not in the data (a row of its own either way)
//!  waybills               those of B's bare order ids, and every one without an order id
//!  ad_spend               those of D's shop-days
//! ```
//!
//! Every ledger row outside these is the same on both sides: its order, shop-day and bare
//! order id are untouched, and so are the rows it is spread over. Rows of their own (a fee or
//! waybill with no order in the data) are all taken on both sides, where the closure cannot
//! name them, so their old versions cancel exactly.
//!
//! Costing is not order-local: a chain (SKU × warehouse) carries every earlier movement into
//! each issue's cost. [`cost_rows`] takes K's issues and returns on both sides, finds the
//! chains whose movements differ and the first month they differ in, and costs those chains
//! again from there: the published movements with K's old ones swapped for its new ones,
//! resumed from the published stock book ([`CostDelta`]). The month rules are applied again
//! over the published month totals and drivers plus the change's ([`month_rows`]).

mod merge;
mod month;
mod recost;
mod refresh;

use std::sync::Arc;

use amoeba_catalog::Catalog;
use amoeba_catalog::model::Model;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::prelude::SessionContext;

use super::closure::ClosureKeys;
use super::sources::LEDGER_COLUMNS;
use super::staging::Staging;
use super::{
    base_sql, cache_sources, cache_spreads, order_local_parts, register, register_rows,
    summed_at_grain,
};
use crate::error::{EngineError, Result};
use crate::session::new_session;
pub use merge::{MergedMonths, merge_months};
pub use month::{MonthDelta, month_rows};
pub use recost::{CostDelta, PublishedCosting, cost_ledger_rows, cost_rows};
pub use refresh::FullBecause;
pub(crate) use refresh::refresh;

/// How each restricted unified view is computed, over `k_all_<view>` (the view's every row),
/// the closure's keys (`k_orders`, `k_bare`, `k_shop_days`) and `k_known_lines` (every order
/// line of the side, by its key: a fee whose line is not among them is a row of its own), in
/// this order: `fees` reads the restricted `order_lines`.
const RESTRICTED: [(&str, &str); 5] = [
    (
        "order_lines",
        "SELECT l.* FROM k_all_order_lines l LEFT SEMI JOIN k_orders k \
           ON k.platform = l.platform AND k.shop_id = l.shop_id AND k.order_id = l.order_id",
    ),
    (
        "refunds",
        "SELECT r.* FROM k_all_refunds r LEFT SEMI JOIN k_orders k \
           ON k.platform = r.platform AND k.shop_id = r.shop_id AND k.order_id = r.order_id",
    ),
    (
        "fees",
        "SELECT f.* FROM k_all_fees f LEFT SEMI JOIN k_orders k \
           ON k.platform = f.platform AND k.shop_id = f.shop_id AND k.order_id = f.order_id \
         UNION ALL \
         SELECT f.* FROM k_all_fees f LEFT SEMI JOIN order_lines l \
           ON l.platform = f.platform AND l.shop_id = f.shop_id AND l.line_id = f.line_id \
         WHERE f.order_id IS NULL \
         UNION ALL \
         SELECT f.* FROM k_all_fees f LEFT ANTI JOIN k_known_lines l \
           ON l.platform = f.platform AND l.shop_id = f.shop_id AND l.line_id = f.line_id \
         WHERE f.order_id IS NULL",
    ),
    (
        "waybills",
        "SELECT w.* FROM k_all_waybills w LEFT SEMI JOIN k_bare b ON b.order_id = w.order_id \
         UNION ALL \
         SELECT w.* FROM k_all_waybills w WHERE w.order_id IS NULL",
    ),
    (
        "ad_spend",
        "SELECT a.* FROM k_all_ad_spend a LEFT SEMI JOIN k_shop_days d \
           ON d.platform = a.platform AND d.shop_id = a.shop_id AND d.date = a.date",
    ),
];

/// One side of a change, the inputs before it (Fₒ) or after it (Fₙ), seen through the
/// closure's keys: a session whose order-keyed unified views are restricted to what the keys
/// name (`RESTRICTED`), with the working tables every step reads (`b_lines`, `b_fees`, the
/// spreads). Opened once per side; the order-local rows, the movements to cost and the order
/// drivers are all read from it.
pub struct Side {
    ctx: SessionContext,
}

impl Side {
    /// The side of `catalog`, read through its views.
    pub async fn open(catalog: &Catalog, model: &Model, keys: &ClosureKeys) -> Result<Side> {
        let ctx = new_session()?;
        catalog.register(&ctx).await?;
        Side::restricted(ctx, model, keys).await
    }

    /// The side of the catalog registered in `ctx` (a refresh registers it over mapped rows
    /// it holds: the published version's, or those after the change).
    pub(crate) async fn restricted(
        ctx: SessionContext,
        model: &Model,
        keys: &ClosureKeys,
    ) -> Result<Side> {
        register(&ctx, "k_orders", keys.orders.clone())?;
        register(&ctx, "k_bare", keys.bare.clone())?;
        register(&ctx, "k_shop_days", keys.shop_days.clone())?;
        for (view, _) in RESTRICTED {
            let all = ctx.table(view).await?;
            ctx.deregister_table(view)?;
            ctx.register_table(format!("k_all_{view}"), all.into_view())?;
        }
        ctx.sql(
            "CREATE VIEW k_known_lines AS SELECT platform, shop_id, line_id FROM k_all_order_lines",
        )
        .await?
        .collect()
        .await?;
        for (view, sql) in RESTRICTED {
            restrict(&ctx, view, sql).await?;
        }
        cache_sources(&ctx, &Staging::Memory, model).await?;
        cache_spreads(&ctx, &Staging::Memory).await?;
        Ok(Side { ctx })
    }
}

/// The order-local ledger rows (sales, refunds, fees, ads, freight) of one side, summed at
/// the ledger grain (`b_base`'s columns): `rows(K, F)`.
pub async fn order_rows(side: &Side, model: &Model) -> Result<Vec<RecordBatch>> {
    Ok(side
        .ctx
        .sql(&base_sql(&order_local_parts(model)))
        .await?
        .collect()
        .await?)
}

/// The net delta of signed sets of grain rows (`deltas`: each set with its sign, ±1): their
/// sum at the ledger grain, the rows that carry something. The closure's unchanged orders are
/// on both sides of a change and cancel here.
pub async fn net_delta(deltas: &[(&[RecordBatch], i128)]) -> Result<Vec<RecordBatch>> {
    let ctx = new_session()?;
    let mut signed = Vec::new();
    for (i, (batches, sign)) in deltas.iter().enumerate() {
        let name = format!("n_delta_{i}");
        if !register_rows(&ctx, &name, batches)? {
            continue;
        }
        signed.push(if *sign < 0 {
            format!(
                "SELECT date, platform, shop_id, sku, campaign, unit_id, account, \
                        -amount AS amount, -qty AS qty, source FROM {name}"
            )
        } else {
            format!("SELECT {LEDGER_COLUMNS} FROM {name}")
        });
    }
    if signed.is_empty() {
        return Ok(Vec::new());
    }
    Ok(ctx
        .sql(&summed_at_grain(&signed.join(" UNION ALL ")))
        .await?
        .collect()
        .await?)
}

/// Registers `view` as the rows of `sql`, computed once: each is read by several steps.
async fn restrict(ctx: &SessionContext, view: &str, sql: &str) -> Result<()> {
    let step = |e: EngineError| EngineError::ledger(format!("restricting {view}: {e}"));
    let rows = ctx
        .sql(sql)
        .await
        .map_err(|e| step(e.into()))?
        .cache()
        .await
        .map_err(|e| step(e.into()))?;
    ctx.register_table(view, rows.into_view())?;
    Ok(())
}
/// `values` as the list of an SQL `IN (…)`: string literals, comma-separated.
fn sql_list<'a>(values: impl IntoIterator<Item = &'a String>) -> String {
    values
        .into_iter()
        .map(|v| amoeba_catalog::mapping::sql_string(v))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows of `sql` as one batch (with the batches' own schema: a scan may hand strings
/// over as Utf8View where the plan says Utf8).
pub(super) async fn collect_one(ctx: &SessionContext, sql: &str) -> Result<RecordBatch> {
    let df = ctx.sql(sql).await?;
    let planned: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    let schema = batches.first().map_or(planned, RecordBatch::schema);
    Ok(concat_batches(&schema, &batches)?)
}
