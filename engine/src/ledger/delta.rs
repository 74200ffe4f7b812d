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
//! through the same [`cache_sources`](super::cache_sources) and
//! [`cache_spreads`](super::cache_spreads)) over unified views restricted to what K names:
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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use amoeba_catalog::Catalog;
use amoeba_catalog::model::Model;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use super::allocation::{MonthInputs, MonthRow};
use super::closure::ClosureKeys;
use super::cost::{self, Stock};
use super::staging::Staging;
use super::{
    BASE_DRIVERS_SQL, ORDER_DRIVERS_SQL, base_sql, cache_sources, cache_spreads, drivers_of,
    month_rows_batch, order_local_parts, register, sources, stock, unit_totals, utf8_named,
};
use crate::error::{EngineError, Result};
use crate::session::new_session;

/// How each restricted unified view is computed, over `k_all_<view>` (the view's every row)
/// and the closure's keys (`k_orders`, `k_bare`, `k_shop_days`), in this order: `fees`
/// reads the restricted `order_lines`.
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
         SELECT f.* FROM k_all_fees f LEFT ANTI JOIN k_all_order_lines l \
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

/// The order-local ledger rows (sales, refunds, fees, ads, freight) of the closure `keys`
/// over `catalog`, summed at the ledger grain (`b_base`'s columns): `rows(K, F)`.
pub async fn order_rows(
    catalog: &Catalog,
    model: &Model,
    keys: &ClosureKeys,
) -> Result<Vec<RecordBatch>> {
    let ctx = restricted_session(catalog, model, keys).await?;
    cache_spreads(&ctx, &Staging::Memory).await?;
    Ok(ctx
        .sql(&base_sql(&order_local_parts(model)))
        .await?
        .collect()
        .await?)
}

/// A session over `catalog` whose order-keyed unified views are restricted to what `keys`
/// name ([`RESTRICTED`]), with the working tables every step reads (`b_lines`, `b_fees`, …).
async fn restricted_session(
    catalog: &Catalog,
    model: &Model,
    keys: &ClosureKeys,
) -> Result<SessionContext> {
    let ctx = new_session()?;
    catalog.register(&ctx).await?;
    register(&ctx, "k_orders", keys.orders.clone())?;
    register(&ctx, "k_bare", keys.bare.clone())?;
    register(&ctx, "k_shop_days", keys.shop_days.clone())?;
    for (view, _) in RESTRICTED {
        let all = ctx.table(view).await?;
        ctx.deregister_table(view)?;
        ctx.register_table(format!("k_all_{view}"), all.into_view())?;
    }
    for (view, sql) in RESTRICTED {
        restrict(&ctx, view, sql).await?;
    }
    cache_sources(&ctx, &Staging::Memory, model).await?;
    Ok(ctx)
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

/// The costing side of a change: the chains (SKU × warehouse) whose movements it changes,
/// costed again from their first changed month over the new inputs, resumed from the
/// published stock book. With the order-local rows, the delta build's second part:
///
/// ```text
///  cogs(Fₙ) = cogs(Fₒ) + cost_ledger_rows(costed) − cost_ledger_rows(replaced)
/// ```
#[derive(Debug, Clone)]
pub struct CostDelta {
    /// Each changed chain: `sku`, `warehouse` and `from_month`, the first month in which its
    /// movements differ between the two sides.
    pub chains: RecordBatch,
    /// The chains' movements from `from_month` on, over the new inputs, costed.
    pub costed: RecordBatch,
    /// The published costed movements they replace (the chains' from `from_month` on).
    pub replaced: RecordBatch,
    /// The chains' stock book pages from `from_month` on (the stored book's columns), carried
    /// forward through the last month given.
    pub book: RecordBatch,
}

/// The columns of a movement (`sources::moves`, with its `month`), in the costing's order:
/// what the costed movements carry before their values.
const MOVE_COLUMNS: &str = "sku, warehouse, ts, ord, id, kind, qty, receipt_value, line, date, platform, shop_id, \
     unit_id, month";

/// The order in which movements are costed, as the full build sorts them (`sources::moves`).
const COSTING_ORDER: &str = "sku, warehouse, ts, ord, id, line";

/// The published costing a change is applied to: the costed movements and the stock book of
/// the version built over the old inputs ([`Ledger::costed_movements`](super::Ledger::costed_movements),
/// [`Ledger::stock_book`](super::Ledger::stock_book)).
#[derive(Debug, Clone, Copy)]
pub struct PublishedCosting<'a> {
    /// The costed movements, in chain and time order.
    pub costed: &'a RecordBatch,
    /// The stock book as stored.
    pub book: &'a RecordBatch,
}

/// Costs again what a change does to the stock: `old` and `new` are the catalogs before and
/// after it, `keys` its closure, `published` the costing built over `old`, and `last_month`
/// the new ledger's last month (through which the book is carried).
///
/// ```text
///  moves of K's orders (issues, returns), each side ─► the differing ones ─► chains C, and
///        │                                                   each one's first month m
///        ▼
///  published movements of C from m, less K's lines ─► + K's new movements of C from m
///        │                                              sorted as the full build sorts
///        ▼
///  Stock::resume(the book page at the end of the month before m,
///                what C's earlier issues took, for the returns still to come) ─► costed
/// ```
///
/// A movement of an order outside K is the same on both sides, and so is every movement of
/// a chain before its first differing one: resumed there, the chain's costing from then on
/// is the full build's. Receipts and stock adjustments are carried over as published (a
/// change to purchases or adjustments makes the build a full one).
pub async fn cost_rows(
    old: &Catalog,
    new: &Catalog,
    model: &Model,
    keys: &ClosureKeys,
    published: PublishedCosting<'_>,
    last_month: Option<&str>,
) -> Result<CostDelta> {
    let step = |what: &str, e: EngineError| EngineError::ledger(format!("re-costing: {what}: {e}"));
    let old_moves = keyed_moves(old, model, keys)
        .await
        .map_err(|e| step("the old side's movements", e))?;
    let new_moves = keyed_moves(new, model, keys)
        .await
        .map_err(|e| step("the new side's movements", e))?;
    let ctx = new_session()?;
    register(&ctx, "d_old", old_moves)?;
    register(&ctx, "d_new", new_moves)?;
    register(&ctx, "d_published", published.costed.clone())?;
    // A movement is changed when the two sides hold it a different number of times.
    let chains = collect_one(
        &ctx,
        &format!(
            "SELECT arrow_cast(sku, 'Utf8') AS sku, arrow_cast(warehouse, 'Utf8') AS warehouse, \
                    arrow_cast(min(month), 'Utf8') AS from_month \
             FROM (SELECT {MOVE_COLUMNS} FROM \
                     (SELECT {MOVE_COLUMNS}, 1 AS side FROM d_new \
                      UNION ALL SELECT {MOVE_COLUMNS}, -1 AS side FROM d_old) \
                   GROUP BY {MOVE_COLUMNS} HAVING sum(side) <> 0) \
             GROUP BY sku, warehouse ORDER BY sku, warehouse"
        ),
    )
    .await
    .map_err(|e| step("the changed chains", e))?;
    register(&ctx, "d_chains", chains.clone())?;
    let from = "JOIN d_chains c ON c.sku = p.sku AND c.warehouse = p.warehouse";
    let replaced = collect_one(
        &ctx,
        &format!(
            "SELECT p.* FROM d_published p {from} WHERE p.month >= c.from_month \
             ORDER BY {}",
            qualified("p", COSTING_ORDER)
        ),
    )
    .await
    .map_err(|e| step("the replaced movements", e))?;
    // Every published movement of K's lines in a changed chain from its month on is on the
    // old side: all of them give way to the new side's.
    let moves = collect_one(
        &ctx,
        &format!(
            "SELECT {MOVE_COLUMNS} FROM ( \
               SELECT {p} FROM d_published p {from} \
                 LEFT ANTI JOIN (SELECT line FROM d_old UNION SELECT line FROM d_new) k \
                   ON k.line = p.line \
               WHERE p.month >= c.from_month \
               UNION ALL \
               SELECT {n} FROM d_new p {from} WHERE p.month >= c.from_month) \
             ORDER BY {COSTING_ORDER}",
            p = qualified("p", MOVE_COLUMNS),
            n = qualified("p", MOVE_COLUMNS),
        ),
    )
    .await
    .map_err(|e| step("the movements to cost", e))?;
    let moves = cost::with_utf8_line(&moves)?;
    register(&ctx, "d_moves", moves.clone())?;
    // What the chains' earlier issues took, for the returns to come of the lines they issued.
    let earlier = collect_one(
        &ctx,
        &format!(
            "SELECT arrow_cast(p.sku, 'Utf8') AS sku, arrow_cast(p.warehouse, 'Utf8') AS warehouse, \
                    arrow_cast(p.kind, 'Utf8') AS kind, arrow_cast(p.line, 'Utf8') AS line, \
                    p.qty, p.value_e4 \
             FROM d_published p {from} \
               LEFT SEMI JOIN (SELECT line FROM d_moves WHERE kind = 'return') r ON r.line = p.line \
             WHERE p.month < c.from_month AND p.kind = 'issue'"
        ),
    )
    .await
    .map_err(|e| step("the earlier issues", e))?;
    let mut issued = cost::issued_by_chain(&earlier)?;
    // Each chain resumes at the end of the month before its first changed one; a chain with
    // no page there had no movement before it, and starts empty.
    let pages = stock::pages_of(published.book)?;
    let mut start = std::collections::HashMap::new();
    let (c_sku, c_warehouse, c_from) = (
        utf8_named(&chains, "sku", "re-costing")?,
        utf8_named(&chains, "warehouse", "re-costing")?,
        utf8_named(&chains, "from_month", "re-costing")?,
    );
    for i in 0..chains.num_rows() {
        let Some(before) = stock::previous_month(c_from.value(i)) else {
            return Err(EngineError::ledger(format!(
                "re-costing: '{}' is not a month (YYYY-MM)",
                c_from.value(i)
            )));
        };
        start.insert((c_sku.value(i), c_warehouse.value(i)), before);
    }
    let mut states = std::collections::HashMap::new();
    for page in &pages {
        if start.get(&(page.sku.as_str(), page.warehouse.as_str())) == Some(&page.month) {
            states.insert((page.sku.clone(), page.warehouse.clone()), &page.state);
        }
    }
    let method = model.costing;
    let mut book_pages = Vec::new();
    let costed = cost::cost_batch_from(
        method,
        &moves,
        &mut |sku, warehouse| {
            let chain = (sku.to_string(), warehouse.to_string());
            match states.get(&chain) {
                Some(state) => {
                    Stock::resume(method, state, issued.remove(&chain).unwrap_or_default())
                }
                None => Stock::new(method),
            }
        },
        Some(&mut book_pages),
    )?;
    let book = stock::book_batch(&book_pages, last_month)?;
    Ok(CostDelta {
        chains,
        costed,
        replaced,
        book,
    })
}

/// The ledger rows of costed movements (COGS, its reversals, inventory losses), summed at the
/// ledger grain: what [`CostDelta::costed`] adds and [`CostDelta::replaced`] takes away.
pub async fn cost_ledger_rows(costed: &RecordBatch, model: &Model) -> Result<RecordBatch> {
    let ctx = new_session()?;
    register(&ctx, "b_costed", costed.clone())?;
    collect_one(&ctx, &base_sql(&[sources::costed(model.costing)])).await
}

/// The issues and returns of `keys`' orders over `catalog`, as the full build's movements
/// (`sources::moves`) with their month, in costing order.
async fn keyed_moves(catalog: &Catalog, model: &Model, keys: &ClosureKeys) -> Result<RecordBatch> {
    let ctx = restricted_session(catalog, model, keys).await?;
    // All the movements first, then the issues and returns among them: with the filter on
    // `kind` around the statement, the plan DataFusion 55 made of it panicked in a
    // RepartitionExec ("partition not used yet"), and the receipts and adjustments are few.
    register(
        &ctx,
        "d_moves",
        collect_one(&ctx, &sources::moves(model)).await?,
    )?;
    let moves = collect_one(
        &ctx,
        &format!(
            "SELECT * FROM d_moves WHERE kind IN ('issue', 'return') ORDER BY {COSTING_ORDER}"
        ),
    )
    .await?;
    stock::with_month(&cost::with_utf8_line(&moves)?)
}

/// The rows of `sql` as one batch.
async fn collect_one(ctx: &SessionContext, sql: &str) -> Result<RecordBatch> {
    let df = ctx.sql(sql).await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    Ok(concat_batches(&schema, &df.collect().await?)?)
}

/// `columns` (comma-separated) qualified with `table`.
fn qualified(table: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{table}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The month rules after a change ([`month_rows`]).
#[derive(Debug, Clone)]
pub struct MonthDelta {
    /// The months whose month-rule rows (pools, settlements, step-down) change.
    pub months: BTreeSet<String>,
    /// Those months' month-rule rows after the change, all of them (the ledger's columns
    /// without `month`, as the build's `b_month`): they replace the months' old ones.
    pub rows: RecordBatch,
    /// What the rules were computed from after the change.
    pub inputs: MonthInputs,
}

/// The month rules again after a change: the published `inputs` plus what the change does to
/// the unit totals and the drivers, the rules applied to that, and the months whose rows come
/// out different.
///
/// ```text
///  totals, money drivers (net sales, gross sales, COGS)   from `base`: the delta's grain rows,
///                                                          each set with its sign (±1)
///  order drivers (orders, units, shipped, weight)         over K's orders on each side
///                                                          (counts of distinct orders add up
///                                                          over disjoint sets of orders)
///  expenses, hours                                        as published (a change to them
///                                                          makes the build a full one)
/// ```
///
/// The rules themselves are tiny (months × units): they run over every month, and only the
/// months whose rows differ from the published rules' are returned.
pub async fn month_rows(
    old: &Catalog,
    new: &Catalog,
    model: &Model,
    keys: &ClosureKeys,
    published: &MonthInputs,
    base: &[(&[RecordBatch], i128)],
) -> Result<MonthDelta> {
    let step =
        |what: &str, e: EngineError| EngineError::ledger(format!("month rules: {what}: {e}"));
    let mut inputs = published.clone();
    for (batches, sign) in base {
        let Some(first) = batches.first() else {
            continue;
        };
        let ctx = new_session()?;
        ctx.register_table(
            "b_base",
            Arc::new(MemTable::try_new(first.schema(), vec![batches.to_vec()])?),
        )?;
        let drivers = drivers_of(&ctx, BASE_DRIVERS_SQL)
            .await
            .map_err(|e| step("the money drivers", e))?;
        let totals = unit_totals(&ctx, "b_base")
            .await
            .map_err(|e| step("the unit totals", e))?;
        inputs.add(&drivers, &totals, *sign);
    }
    for (catalog, sign) in [(old, -1), (new, 1)] {
        let ctx = restricted_session(catalog, model, keys).await?;
        let drivers = drivers_of(&ctx, ORDER_DRIVERS_SQL)
            .await
            .map_err(|e| step("the order drivers", e))?;
        inputs.add(&drivers, &BTreeMap::new(), sign);
    }
    let before = published.apply(model)?;
    let after = inputs.apply(model)?;
    let by_month = |rows: &[MonthRow]| {
        let mut out: BTreeMap<String, Vec<MonthRow>> = BTreeMap::new();
        for r in rows {
            out.entry(r.month.clone()).or_default().push(r.clone());
        }
        out
    };
    let (was, is) = (by_month(&before.rows), by_month(&after.rows));
    let months: BTreeSet<String> = was
        .keys()
        .chain(is.keys())
        .filter(|m| was.get(*m) != is.get(*m))
        .cloned()
        .collect();
    let rows: Vec<MonthRow> = after
        .rows
        .into_iter()
        .filter(|r| months.contains(&r.month))
        .collect();
    Ok(MonthDelta {
        months,
        rows: month_rows_batch(&rows)?,
        inputs,
    })
}
