//! The stock book: every SKU's stock in every warehouse at each month end, at cost, as the
//! costing left it — served as `stock_balances`, kept with each ledger version.
//!
//! ```text
//!  b_moves ─► cost::cost_batch_from ─► b_costed (COGS, losses: the ledger)
//!                   │
//!                   └─► a MonthEnd per chain and month with movements
//!                            │  carried forward to the ledger's last month
//!                            ▼
//!             ledger/v<N>/_stock.book      month · sku · warehouse · units · value
//!                                          + the costing state (layers, last cost, the
//!                                            cumulative in/out values and cents)
//!                            │
//!                            ├─► stock_balances (served: month, sku, warehouse, units, value)
//!                            └─► Stock::resume (an incremental build costs only what changed)
//! ```
//!
//! `value` is the stock's value in cents as the ledger sees it: everything received, returned
//! or found, less everything issued or lost, each side cumulatively rounded. So from one month
//! end to the next it moves by exactly the receipts' cents plus the month's `cogs` and
//! `inventory_loss` ledger amounts (the `stock_rollforward` check), and `inventory_turnover`
//! (库存周转率 = COGS / average inventory value, spec/pnl.md) can be computed from the ledger
//! and this table alone. A month without movements of a chain repeats its last balance, so
//! every chain has a row for every month from its first movement on.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Int64Array, RecordBatch, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::cost::{MonthEnd, StockState};
use super::{decimal_named, utf8_named};
use crate::error::{EngineError, Result};

/// The served table of month-end stock.
pub const STOCK_TABLE: &str = "stock_balances";

/// The columns served (the rest of the stored book is the costing state).
const SERVED: [&str; 5] = ["month", "sku", "warehouse", "units", "value"];

/// The stored book's schema.
fn book_schema() -> SchemaRef {
    let dec = |name: &str, scale: i8, nullable: bool| {
        Field::new(name, DataType::Decimal128(38, scale), nullable)
    };
    Arc::new(Schema::new(vec![
        Field::new("month", DataType::Utf8, false),
        Field::new("sku", DataType::Utf8, false),
        Field::new("warehouse", DataType::Utf8, false),
        Field::new("units", DataType::Int64, false),
        dec("value", 2, false),
        // FIFO layers oldest first, `<units>:<value × 10^4>` joined by `;`.
        Field::new("layers", DataType::Utf8, false),
        dec("last_cost_e4", 4, true),
        dec("inflow_e4", 4, false),
        dec("inflow_cents", 2, false),
        dec("outflow_e4", 4, false),
        dec("outflow_cents", 2, false),
    ]))
}

/// The month after `YYYY-MM`.
fn next_month(month: &str) -> Option<String> {
    let y: i32 = month.get(..4)?.parse().ok()?;
    let m: u32 = month.get(5..7)?.parse().ok()?;
    if !(1..=12).contains(&m) {
        return None;
    }
    Some(if m == 12 {
        format!("{:04}-01", y + 1)
    } else {
        format!("{y:04}-{:02}", m + 1)
    })
}

/// The month before `YYYY-MM`.
pub(crate) fn previous_month(month: &str) -> Option<String> {
    let y: i32 = month.get(..4)?.parse().ok()?;
    let m: u32 = month.get(5..7)?.parse().ok()?;
    if !(1..=12).contains(&m) || month.len() != 7 {
        return None;
    }
    Some(if m == 1 {
        format!("{:04}-12", y - 1)
    } else {
        format!("{y:04}-{:02}", m - 1)
    })
}

/// The stock book as stored: `pages` (in chain and month order, as the costing wrote them)
/// with each chain carried forward through `last_month`.
pub(crate) fn book_batch(pages: &[MonthEnd], last_month: Option<&str>) -> Result<RecordBatch> {
    let mut rows: Vec<(&MonthEnd, String)> = Vec::with_capacity(pages.len());
    for (i, page) in pages.iter().enumerate() {
        // A page stands until the chain's next page, or through the last month after its last.
        let next = pages
            .get(i + 1)
            .filter(|n| n.sku == page.sku && n.warehouse == page.warehouse)
            .map(|n| n.month.as_str());
        let mut month = page.month.clone();
        loop {
            let Some(following) = next_month(&month) else {
                return Err(EngineError::ledger(format!(
                    "stock book: '{month}' is not a month (YYYY-MM)"
                )));
            };
            rows.push((page, month));
            let done = match next {
                Some(n) => following.as_str() >= n,
                None => last_month.is_none_or(|last| following.as_str() > last),
            };
            if done {
                break;
            }
            month = following;
        }
    }
    let text = |f: &dyn Fn(&(&MonthEnd, String)) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let dec = |values: Vec<Option<i128>>, scale: i8| -> Result<ArrayRef> {
        Ok(Arc::new(
            Decimal128Array::from(values).with_precision_and_scale(38, scale)?,
        ))
    };
    let state =
        |f: &dyn Fn(&StockState) -> Option<i128>| rows.iter().map(|r| f(&r.0.state)).collect();
    Ok(RecordBatch::try_new(
        book_schema(),
        vec![
            text(&|r| r.1.clone()),
            text(&|r| r.0.sku.clone()),
            text(&|r| r.0.warehouse.clone()),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.0.state.units()),
            )),
            dec(state(&|s| Some(s.value_cents())), 2)?,
            text(&|r| {
                r.0.state
                    .layers
                    .iter()
                    .map(|(q, v)| format!("{q}:{v}"))
                    .collect::<Vec<_>>()
                    .join(";")
            }),
            dec(state(&|s| s.last_cost_e4), 4)?,
            dec(state(&|s| Some(s.inflow.0)), 4)?,
            dec(state(&|s| Some(s.inflow.1)), 2)?,
            dec(state(&|s| Some(s.outflow.0)), 4)?,
            dec(state(&|s| Some(s.outflow.1)), 2)?,
        ],
    )?)
}

/// The pages of a stored book, one per chain and month (carried-forward months included):
/// where the incremental build (docs/incremental.md) resumes the costing of a chain.
pub(crate) fn pages_of(batch: &RecordBatch) -> Result<Vec<MonthEnd>> {
    const WHAT: &str = "stock book";
    let text = |name: &str| utf8_named(batch, name, WHAT);
    let dec = |name: &str| decimal_named(batch, name, WHAT);
    let (month, sku, warehouse, layers) = (
        text("month")?,
        text("sku")?,
        text("warehouse")?,
        text("layers")?,
    );
    let (last, in_e4, in_c, out_e4, out_c) = (
        dec("last_cost_e4")?,
        dec("inflow_e4")?,
        dec("inflow_cents")?,
        dec("outflow_e4")?,
        dec("outflow_cents")?,
    );
    let bad = |i: usize| {
        EngineError::ledger(format!(
            "stock book: row {i} ({} @ {}, {}): layers '{}' are not <units>:<value>;…",
            sku.value(i),
            warehouse.value(i),
            month.value(i),
            layers.value(i)
        ))
    };
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let mut parsed = Vec::new();
        for layer in layers.value(i).split(';').filter(|l| !l.is_empty()) {
            let (q, v) = layer.split_once(':').ok_or_else(|| bad(i))?;
            parsed.push((
                q.parse().map_err(|_| bad(i))?,
                v.parse().map_err(|_| bad(i))?,
            ));
        }
        out.push(MonthEnd {
            sku: sku.value(i).to_string(),
            warehouse: warehouse.value(i).to_string(),
            month: month.value(i).to_string(),
            state: StockState {
                layers: parsed,
                last_cost_e4: (!last.is_null(i)).then(|| last.value(i)),
                inflow: (in_e4.value(i), in_c.value(i)),
                outflow: (out_e4.value(i), out_c.value(i)),
            },
        });
    }
    Ok(out)
}

/// The served columns of a stored book (`stock_balances`).
pub(crate) fn served(book: &RecordBatch) -> Result<RecordBatch> {
    let schema = book.schema();
    let indices: Vec<usize> = SERVED
        .iter()
        .map(|c| schema.index_of(c))
        .collect::<std::result::Result<_, _>>()?;
    Ok(book.project(&indices)?)
}

/// The schema of `stock_balances` (for a ledger without a book).
pub(crate) fn served_schema() -> SchemaRef {
    let schema = book_schema();
    let fields: Vec<Field> = SERVED
        .iter()
        .filter_map(|c| schema.field_with_name(c).ok().cloned())
        .collect();
    Arc::new(Schema::new(fields))
}

/// `moves` with a `month` column (`YYYY-MM` of `ts`): the month a movement is costed in,
/// which the stock book pages by.
pub(crate) fn with_month(moves: &RecordBatch) -> Result<RecordBatch> {
    use datafusion::arrow::compute::kernels::temporal::{DatePart, date_part};
    let ts = moves
        .column_by_name("ts")
        .ok_or_else(|| EngineError::ledger("costing: no column 'ts'"))?;
    let (years, months) = (
        date_part(ts, DatePart::Year)?,
        date_part(ts, DatePart::Month)?,
    );
    let (years, months) = (
        years.as_primitive::<datafusion::arrow::datatypes::Int32Type>(),
        months.as_primitive::<datafusion::arrow::datatypes::Int32Type>(),
    );
    // Movements come sorted by chain and time: a month's text is formatted once per run of
    // equal months, not once per movement (a million at scale 1).
    let mut month = StringBuilder::with_capacity(moves.num_rows(), moves.num_rows() * 7);
    let mut current: Option<((i32, i32), String)> = None;
    for i in 0..moves.num_rows() {
        if years.is_null(i) || months.is_null(i) {
            month.append_null();
            continue;
        }
        let key = (years.value(i), months.value(i));
        if current.as_ref().is_none_or(|(k, _)| *k != key) {
            current = Some((key, format!("{:04}-{:02}", key.0, key.1)));
        }
        if let Some((_, text)) = &current {
            month.append_value(text);
        }
    }
    let month = month.finish();
    super::append_columns(
        moves,
        vec![(
            Field::new("month", DataType::Utf8, true),
            Arc::new(month) as ArrayRef,
        )],
    )
}

/// The book as a Parquet file's bytes (`_stock.book` of a ledger version). Compressed: a
/// chain's layers repeat from one month to the next (and in the months a balance is carried
/// forward); uncompressed, the book of scale 1 was 9.5 MB.
pub(crate) fn to_parquet(book: &RecordBatch) -> Result<Vec<u8>> {
    super::store::batch_to_parquet(book, "stock book")
}

/// A book read back from [`to_parquet`]'s bytes; `at` names the file in errors.
pub(crate) fn from_parquet(bytes: Vec<u8>, at: &str) -> Result<RecordBatch> {
    super::store::batch_from_parquet(bytes, &book_schema(), at)
}

/// Units on hand of a stored book's row `i` (for tests).
#[cfg(test)]
fn units(book: &RecordBatch, i: usize) -> i64 {
    book.column_by_name("units")
        .map(|c| {
            c.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .value(i)
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(
        sku: &str,
        month: &str,
        layers: Vec<(i64, i128)>,
        inflow: i128,
        outflow: i128,
    ) -> MonthEnd {
        MonthEnd {
            sku: sku.to_string(),
            warehouse: "W".to_string(),
            month: month.to_string(),
            state: StockState {
                layers,
                last_cost_e4: Some(20_000),
                inflow: (inflow * 100, inflow),
                outflow: (outflow * 100, outflow),
            },
        }
    }

    #[test]
    fn a_chain_is_carried_forward_to_its_next_page_and_through_the_last_month() {
        let pages = vec![
            page("A", "2025-11", vec![(5, 100_000)], 1000, 0),
            page("A", "2026-02", vec![(3, 60_000), (2, 50_000)], 1500, 400),
            page("B", "2025-12", vec![], 300, 300),
        ];
        let book = book_batch(&pages, Some("2026-03")).expect("book");
        let rows: Vec<(String, String, i64)> = (0..book.num_rows())
            .map(|i| {
                let text = |c: &str| {
                    book.column_by_name(c)
                        .expect(c)
                        .as_string::<i32>()
                        .value(i)
                        .to_string()
                };
                (text("sku"), text("month"), units(&book, i))
            })
            .collect();
        let want = [
            ("A", "2025-11", 5),
            ("A", "2025-12", 5),
            ("A", "2026-01", 5),
            ("A", "2026-02", 5),
            ("A", "2026-03", 5),
            ("B", "2025-12", 0),
            ("B", "2026-01", 0),
            ("B", "2026-02", 0),
            ("B", "2026-03", 0),
        ]
        .map(|(s, m, u)| (s.to_string(), m.to_string(), u));
        assert_eq!(rows, want);
        let value = book
            .column_by_name("value")
            .expect("value")
            .as_primitive::<datafusion::arrow::datatypes::Decimal128Type>();
        // 1500 in, 400 out: 11.00 of stock, in cents.
        assert_eq!(value.value(3), 1100);
        // The stored state reads back as written (carried-forward months repeat the page).
        let back = pages_of(&book).expect("read back");
        assert_eq!(back.len(), 9);
        assert_eq!(back[3], pages[1]);
        assert_eq!(back[5], pages[2]);
        assert_eq!(back[2].state, pages[0].state);
        assert_eq!(served(&book).expect("served").schema(), served_schema());
        let back = from_parquet(to_parquet(&book).expect("write"), "t").expect("read");
        assert_eq!(back, book);
        assert_eq!(next_month("2025-12").as_deref(), Some("2026-01"));
        assert_eq!(next_month("2025-13"), None);
    }
}
