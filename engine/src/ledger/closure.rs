//! The closure of a change: from the files added since the published ledger version to the
//! orders, shop-days, costing chains and months whose ledger rows may differ.
//!
//! This is step 2 of the incremental build (`docs/incremental.md`). The delta build
//! (`delta::refresh`) rebuilds the rows of the closure's orders on both sides of the change and merges the
//! difference into the months named here; for that to be exact, the closure must hold
//! every order and month a full rebuild changes. The test that guards that compares the
//! months whose fingerprints a full rebuild changes with [`Closure::months`].
//!
//! ```text
//!  added files ─► their deliveries ─► changed rows of raw.<view>_mapped
//!                                      (_delivery or _joined_delivery is an added one),
//!                                      and the published rows they replaced (by delta)
//!        │
//!   O₀   orders named by changed lines, refunds, fees (a fee naming only a line: its order)
//!   D    shop-days of changed lines and ad rows         (ads spread over a shop-day's SKUs)
//!   O₁   O₀ + every order with a line on a day of D      (lines are dated by payment: closed)
//!   B    bare order ids of O₁ + changed waybills'         (waybills name the bare order id)
//!   K    O₁ + every order whose id is in B               (freight, `issued`, restocked returns)
//!        │
//!   months: K's lines, refunds, fees and waybills; D; changed fees, waybills, ads, expenses,
//!           hours; and for each SKU with a changed movement, every month from that
//!           movement's on (FIFO and moving average carry cost forward)
//! ```
//!
//! Two changes close over everything, and the closure says so ([`Closure::everything`]):
//! an input replaced or removed (its old rows are gone, so what they named is unknown here)
//! and a changed model, mapping or master-data file (SKUs, shops: units, brands, categories).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amoeba_catalog::{Catalog, RAW_SCHEMA};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::common::TableReference;
use datafusion::prelude::SessionContext;

use crate::error::{EngineError, Result};
use crate::inputs::{InputChanges, source_kind};

/// What a change may touch in the ledger.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Closure {
    /// Why the change touches everything, when it does (then the counts are 0 and `months`
    /// is empty: a full build follows).
    pub everything: Option<String>,
    /// Deliveries (added files that were served) the change consists of.
    pub deliveries: usize,
    /// Orders (platform, shop, order id) whose ledger rows may change: K.
    pub orders: u64,
    /// Shop-days whose ad spreads may change: D.
    pub shop_days: u64,
    /// SKUs whose costing reruns from a changed movement on.
    pub skus: u64,
    /// Months (`YYYY-MM`) whose ledger rows may change.
    pub months: BTreeSet<String>,
    /// How long finding it took.
    pub elapsed: Duration,
    /// The keys themselves, for the delta build (none when it is everything).
    pub keys: Option<ClosureKeys>,
}

/// The keys of a closure: what [`delta::order_rows`](super::delta::order_rows) restricts the
/// order-local steps to.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosureKeys {
    /// K: `platform`, `shop_id`, `order_id`.
    pub orders: RecordBatch,
    /// B: the bare order ids (`order_id`) of K and of changed waybills.
    pub bare: RecordBatch,
    /// D: `platform`, `shop_id`, `date` (Date32).
    pub shop_days: RecordBatch,
}

impl Closure {
    /// One line for the refresh log.
    pub fn summary(&self) -> String {
        if let Some(why) = &self.everything {
            return format!("closure: everything ({why})");
        }
        let months: Vec<&str> = self.months.iter().map(String::as_str).collect();
        format!(
            "closure: {} deliveries → {} orders, {} shop-days, {} SKUs re-costed; months {} \
             ({:.2}s)",
            self.deliveries,
            self.orders,
            self.shop_days,
            self.skus,
            if months.is_empty() {
                "none".to_string()
            } else {
                months.join(" ")
            },
            self.elapsed.as_secs_f64()
        )
    }

    fn everything(why: String, started: Instant) -> Closure {
        Closure {
            everything: Some(why),
            elapsed: started.elapsed(),
            ..Closure::default()
        }
    }
}

/// The kinds of input whose change closes over everything: the model and its mappings, and
/// the master data every row's unit, brand and category come from.
const GLOBAL_KINDS: [&str; 3] = ["model", "erp/skus", "erp/shops"];

/// A change whose closure a build finds ([`Ledger::build_since`](super::Ledger::build_since)):
/// what changed in the inputs since the published version, and that version's last month.
#[derive(Debug, Clone, Copy)]
pub struct ChangeSince<'a> {
    /// What changed since the published version.
    pub changes: &'a InputChanges,
    /// The published version's last month (costing reruns up to it at least).
    pub last_month: Option<&'a str>,
}

/// The working tables of a closure, let go when it is found.
const WORKING_TABLES: [&str; 7] = [
    "k_all_lines",
    "k_o0",
    "k_d",
    "k_o1",
    "k_bare",
    "k_orders",
    "k_lines",
];

/// The closure of `change` over `catalog` (the inputs after the change), found in `ctx`: a
/// build session in which `raw.<view>_mapped` holds the mapped rows (materialized) and the
/// unified views read them, so the exports are not read and de-duplicated a second time.
pub(crate) async fn closure_in(
    ctx: &SessionContext,
    catalog: &Catalog,
    change: ChangeSince<'_>,
) -> Result<Closure> {
    let started = Instant::now();
    let changes = change.changes;
    if !changes.only_added() {
        return Ok(Closure::everything(
            format!(
                "{} input(s) replaced, {} removed: their old rows are gone",
                changes.replaced.len(),
                changes.removed.len()
            ),
            started,
        ));
    }
    if let Some(global) = changes
        .added
        .iter()
        .find(|p| GLOBAL_KINDS.contains(&source_kind(p).as_str()))
    {
        return Ok(Closure::everything(
            format!("{global} changes every row's unit or mapping"),
            started,
        ));
    }
    let deliveries = catalog.deliveries_of(&changes.added.iter().cloned().collect());
    if deliveries.is_empty() {
        return Ok(Closure {
            elapsed: started.elapsed(),
            ..Closure::default()
        });
    }
    let mut replaced = true;
    for view in ["order_lines", "refunds", "fees", "ad_spend", "waybills"] {
        replaced &= ctx.table_exist(TableReference::partial(
            RAW_SCHEMA,
            format!("{view}_replaced"),
        ))?;
    }
    let closing = Closing {
        ctx,
        replaced,
        deliveries: deliveries
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    };
    let found = closing.run(change.last_month).await;
    for name in WORKING_TABLES {
        ctx.deregister_table(name)?;
    }
    let mut closure = found?;
    closure.deliveries = deliveries.len();
    closure.elapsed = started.elapsed();
    Ok(closure)
}

/// The working state of one closure: the build session, the added deliveries as an SQL list.
struct Closing<'a> {
    ctx: &'a SessionContext,
    /// Whether the session holds the rows the change replaced (`raw.<view>_replaced`: a
    /// refresh by delta knows them, `mapped.rs`), whose keys are changed too.
    replaced: bool,
    deliveries: String,
}

impl Closing<'_> {
    /// The rows of a unified view that the added deliveries brought (mapped, not yet filtered
    /// for completeness: a superset is safe here), and the published rows they replaced: a
    /// fee delivered again under another order changes both orders, a corrected header that
    /// moves its order's payment changes both days.
    fn changed(&self, view: &str) -> String {
        let replaced = if self.replaced {
            format!(" UNION ALL SELECT * FROM {RAW_SCHEMA}.\"{view}_replaced\"")
        } else {
            String::new()
        };
        format!(
            "(SELECT * FROM {RAW_SCHEMA}.\"{view}_mapped\" \
              WHERE _delivery IN ({d}) OR _joined_delivery IN ({d}){replaced})",
            d = self.deliveries
        )
    }

    /// Runs `sql` and keeps its rows (few: keys of the closure) as table `name` of the session.
    async fn keep(&self, name: &str, sql: &str) -> Result<u64> {
        let step = |e: EngineError| EngineError::ledger(format!("closure step {name}: {e}"));
        let df = self.ctx.sql(sql).await.map_err(|e| step(e.into()))?;
        let rows = df.cache().await.map_err(|e| step(e.into()))?;
        let count = rows.clone().count().await.map_err(|e| step(e.into()))?;
        self.ctx.register_table(name, rows.into_view())?;
        Ok(u64::try_from(count).unwrap_or(u64::MAX))
    }

    /// The rows of working table `name`, as one batch.
    async fn batch(&self, name: &str) -> Result<RecordBatch> {
        let df = self.ctx.table(name).await?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        Ok(concat_batches(&schema, &df.collect().await?)?)
    }

    /// The values of the first column of `sql`'s rows, as text.
    async fn texts(&self, sql: &str) -> Result<Vec<String>> {
        let batches = self.ctx.sql(sql).await?.collect().await?;
        let mut out = Vec::new();
        for batch in &batches {
            out.extend(first_column_texts(batch)?);
        }
        Ok(out)
    }

    async fn run(&self, last_month: Option<&str>) -> Result<Closure> {
        let lines = self.changed("order_lines");
        let refunds = self.changed("refunds");
        let fees = self.changed("fees");
        let ads = self.changed("ad_spend");
        let waybills = self.changed("waybills");
        // The order lines' keys and dates: every step below joins them. A view, not a copy:
        // the build session holds the mapped lines already.
        let all_lines = self
            .ctx
            .sql("SELECT platform, shop_id, order_id, line_id, sku, paid_at FROM order_lines")
            .await?;
        self.ctx
            .register_table("k_all_lines", all_lines.into_view())?;
        // O₀: the orders the changed rows name.
        self.keep(
            "k_o0",
            &format!(
                "SELECT platform, shop_id, order_id FROM {lines} c \
                 UNION SELECT platform, shop_id, order_id FROM {refunds} c \
                 UNION SELECT platform, shop_id, order_id FROM {fees} c WHERE order_id IS NOT NULL \
                 UNION SELECT l.platform, l.shop_id, l.order_id FROM {fees} c \
                       JOIN k_all_lines l ON l.platform = c.platform AND l.shop_id = c.shop_id \
                        AND l.line_id = c.line_id WHERE c.order_id IS NULL"
            ),
        )
        .await?;
        // D: the shop-days of the changed lines and ad rows. (Not those of every order in
        // O₀: a late refund or fee leaves its order's lines, and so the day's net sales by
        // SKU that ads are spread by, as they were. A changed line changes its siblings'
        // shares of the order's postage, but they were paid on the same day.)
        let shop_days = self
            .keep(
                "k_d",
                &format!(
                    "SELECT platform, shop_id, CAST(paid_at AS DATE) AS date FROM {lines} c \
                     WHERE paid_at IS NOT NULL \
                     UNION SELECT platform, shop_id, date FROM {ads} c"
                ),
            )
            .await?;
        // O₁, then K: every order paid on a day of D, and every order sharing a bare id.
        self.keep(
            "k_o1",
            "SELECT platform, shop_id, order_id FROM k_o0 \
             UNION SELECT l.platform, l.shop_id, l.order_id FROM k_all_lines l \
                   JOIN k_d d ON d.platform = l.platform AND d.shop_id = l.shop_id \
                    AND d.date = CAST(l.paid_at AS DATE)",
        )
        .await?;
        self.keep(
            "k_bare",
            &format!(
                "SELECT order_id FROM k_o1 \
                 UNION SELECT order_id FROM {waybills} c WHERE order_id IS NOT NULL"
            ),
        )
        .await?;
        let orders = self
            .keep(
                "k_orders",
                "SELECT platform, shop_id, order_id FROM k_o1 \
                 UNION SELECT l.platform, l.shop_id, l.order_id FROM k_all_lines l \
                       JOIN k_bare b ON b.order_id = l.order_id",
            )
            .await?;
        self.keep(
            "k_lines",
            "SELECT l.platform, l.shop_id, l.order_id, l.line_id, l.sku, l.paid_at \
             FROM k_all_lines l JOIN k_orders o ON o.platform = l.platform \
              AND o.shop_id = l.shop_id AND o.order_id = l.order_id",
        )
        .await?;

        // The months of every row K and the changed rows produce, before costing.
        let month = |ts: &str| format!("to_char({ts}, '%Y-%m')");
        let mut months: BTreeSet<String> = self
            .texts(&format!(
                "SELECT {lm} FROM k_lines \
                 UNION SELECT {dm} FROM k_d \
                 UNION SELECT {rm} FROM refunds r JOIN k_orders o ON o.platform = r.platform \
                        AND o.shop_id = r.shop_id AND o.order_id = r.order_id \
                 UNION SELECT {rm} FROM {refunds} r \
                 UNION SELECT {fm} FROM fees f JOIN k_orders o ON o.platform = f.platform \
                        AND o.shop_id = f.shop_id AND o.order_id = f.order_id \
                 UNION SELECT {fm} FROM fees f JOIN k_lines l ON l.platform = f.platform \
                        AND l.shop_id = f.shop_id AND l.line_id = f.line_id \
                 UNION SELECT {fm} FROM {fees} f \
                 UNION SELECT {wm} FROM waybills w JOIN k_bare b ON b.order_id = w.order_id \
                 UNION SELECT {wm} FROM {waybills} w \
                 UNION SELECT {am} FROM {ads} a \
                 UNION SELECT month FROM {expenses} e \
                 UNION SELECT month FROM {hours} h",
                lm = month("paid_at"),
                dm = month("date"),
                rm = month("refunded_at"),
                fm = month("posted_at"),
                wm = month("shipped_at"),
                am = month("date"),
                expenses = self.changed("expenses"),
                hours = self.changed("hours"),
            ))
            .await?
            .into_iter()
            .collect();

        // Costing: each SKU with a changed movement is costed again from that movement on.
        // A changed movement is an issue of a changed line or of a line whose order's
        // outbound waybill changed (`issued`), a return of a changed refund or of one whose
        // line or return waybill changed, a changed receipt or stock-take. A receipt earlier
        // than the SKU's first may move its home warehouse, and with it every issue: then the
        // SKU's first sale counts too.
        let earliest = self
            .texts(&format!(
                "WITH moved AS ( \
                     SELECT sku, paid_at AS at FROM {lines} c \
                     UNION ALL SELECT l.sku, l.paid_at FROM k_all_lines l \
                       JOIN {waybills} w ON w.order_id = l.order_id \
                     UNION ALL SELECT l.sku, c.refunded_at FROM {refunds} c JOIN k_all_lines l \
                       ON l.platform = c.platform AND l.shop_id = c.shop_id AND l.line_id = c.line_id \
                     UNION ALL SELECT c.sku, r.refunded_at FROM refunds r JOIN {lines} c \
                       ON c.platform = r.platform AND c.shop_id = r.shop_id AND c.line_id = r.line_id \
                     UNION ALL SELECT l.sku, r.refunded_at FROM refunds r \
                       JOIN {waybills} w ON w.order_id = r.order_id \
                       JOIN k_all_lines l ON l.platform = r.platform AND l.shop_id = r.shop_id \
                        AND l.line_id = r.line_id \
                     UNION ALL SELECT sku, received_at FROM {purchases} c \
                     UNION ALL SELECT sku, CAST(date AS TIMESTAMP) FROM {adjustments} c \
                     UNION ALL SELECT c.sku, first_sale.at FROM {purchases} c \
                       JOIN (SELECT sku, MIN(received_at) AS first FROM purchases GROUP BY sku) p \
                         ON p.sku = c.sku AND c.received_at <= p.first \
                       JOIN (SELECT sku, MIN(paid_at) AS at FROM k_all_lines GROUP BY sku) first_sale \
                         ON first_sale.sku = c.sku) \
                 SELECT {m} FROM moved WHERE sku IS NOT NULL AND at IS NOT NULL \
                 GROUP BY sku",
                purchases = self.changed("purchases"),
                adjustments = self.changed("stock_adjustments"),
                m = month("MIN(at)"),
            ))
            .await?;
        let skus = u64::try_from(earliest.len()).unwrap_or(u64::MAX);
        let last = months
            .iter()
            .next_back()
            .map(String::as_str)
            .into_iter()
            .chain(last_month)
            .max()
            .map(str::to_string);
        if let (Some(from), Some(last)) = (earliest.iter().min(), last) {
            months.extend(months_from_to(from, &last));
        }
        let keys = ClosureKeys {
            orders: self.batch("k_orders").await?,
            bare: self.batch("k_bare").await?,
            shop_days: self.batch("k_d").await?,
        };
        Ok(Closure {
            everything: None,
            deliveries: 0,
            orders,
            shop_days,
            skus,
            months,
            elapsed: Duration::ZERO,
            keys: Some(keys),
        })
    }
}

/// The values of a batch's first column, as text (NULLs left out).
fn first_column_texts(batch: &RecordBatch) -> Result<Vec<String>> {
    let column = datafusion::arrow::compute::cast(
        batch.column(0),
        &datafusion::arrow::datatypes::DataType::Utf8,
    )?;
    let strings = column.as_string::<i32>();
    Ok((0..strings.len())
        .filter(|&i| strings.is_valid(i))
        .map(|i| strings.value(i).to_string())
        .collect())
}

/// Every month from `from` to `to` (`YYYY-MM`, both included); none when either does not
/// parse or `from` is later.
fn months_from_to(from: &str, to: &str) -> Vec<String> {
    let parse = |m: &str| -> Option<(i32, u32)> {
        let (y, mo) = m.split_once('-')?;
        Some((y.parse().ok()?, mo.parse().ok()?))
    };
    let (Some((mut y, mut m)), Some(end)) = (parse(from), parse(to)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while (y, m) <= end && (1..=12).contains(&m) {
        out.push(format!("{y:04}-{m:02}"));
        (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_run_across_years() {
        assert_eq!(
            months_from_to("2024-11", "2025-02"),
            ["2024-11", "2024-12", "2025-01", "2025-02"]
        );
        assert_eq!(months_from_to("2025-03", "2025-03"), ["2025-03"]);
        assert!(months_from_to("2025-04", "2025-03").is_empty());
        assert!(months_from_to("soon", "2025-03").is_empty());
    }
}
