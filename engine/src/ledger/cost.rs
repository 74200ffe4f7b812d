//! COGS: FIFO layers or a moving weighted average per SKU and warehouse, over one time-ordered
//! sequence of stock movements.
//!
//! ```text
//!  movement   qty   effect on the stock                     value change (cents, ledger sign)
//!  receipt    +q    a layer q @ landed unit cost            +q × cost             (not ledger)
//!  issue      −q    FIFO: oldest layers first; MWA: q × avg −cost of the units    cogs
//!  return     +q    the units come back at their issue cost +their issue cost     cogs reversal
//!  adjust     ±q    a loss is an issue, a gain a receipt    ±cost                 inventory_loss
//!             at the last cost
//! ```
//!
//! Values are kept exact at 4 decimals (`qty × DECIMAL(18,4)`). A layer is held as (qty,
//! value), so taking all of a layer takes all of its value. Cents are rounded cumulatively
//! (half-even): a movement's cents are `round(total after) − round(total before)` of its
//! direction (in or out), so the cents of many small issues add up to the rounded total of
//! their exact values — rounding never leaks, whatever the number of movements. An issue beyond the stock on
//! hand is costed at the last known unit cost and reported as a shortfall; with no cost known
//! at all (a SKU with no purchase) its value is 0 and it is reported as uncosted — both end up
//! in `amoeba_checks`, nothing is dropped. The kernel is sequential by nature (each issue
//! depends on every movement before it); DataFusion sorts the movements, this loop walks them
//! once.
//!
//! **Resuming.** A chain's costing can be taken up again part-way through its history, which is
//! what an incremental build needs when only its latest movements change. What carries over
//! between movements is small: the layers (or the average), the last cost, and the cumulative
//! values and cents the exact rounding keeps ([`StockState`]); plus, for a later return, what
//! each earlier issue took, which the costed issue rows hold exactly (`value_e4`). The build
//! records each chain's state after its last movement of every month ([`MonthEnd`], the
//! *stock book*: it is also the month-end stock served as `stock_balances`), and
//! [`Stock::resume`] starts from one: costing a chain's movements after a month, resumed from
//! the book, gives the values of costing it whole.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use amoeba_catalog::model::CostingMethod;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Int64Array, RecordBatch,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, Int64Type};

use super::allocation::div_half_even;
use super::{append_columns, decimal_named, named, utf8_named};
use crate::error::{EngineError, Result};

/// What a movement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MoveKind {
    /// Goods in at a landed unit cost.
    Receipt,
    /// A sale's units out.
    Issue,
    /// A sale's units back (restocked return), at the cost they went out at.
    Return,
    /// A stock-take difference: negative a loss, positive a gain.
    Adjust,
}

impl MoveKind {
    pub(crate) fn parse(s: &str) -> Option<MoveKind> {
        match s {
            "receipt" => Some(MoveKind::Receipt),
            "issue" => Some(MoveKind::Issue),
            "return" => Some(MoveKind::Return),
            "adjust" => Some(MoveKind::Adjust),
            _ => None,
        }
    }
}

/// One movement of one SKU in one warehouse.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Movement<'a> {
    pub(crate) kind: MoveKind,
    /// Units, always ≥ 0 except for adjustments (signed).
    pub(crate) qty: i64,
    /// Landed value of a receipt (qty × unit cost + freight) × 10^4.
    pub(crate) value_e4: Option<i128>,
    /// The sale line: an issue's own key, a return's issue.
    pub(crate) line: Option<&'a str>,
}

/// The outcome of a movement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Costed {
    /// The inventory value change in cents (receipts +, issues −, returns +, adjustments ±).
    pub(crate) value_cents: i128,
    /// The same change exactly, × 10^4 (what an issue took is what a later return of its line
    /// is costed at).
    pub(crate) value_e4: i128,
    /// Units issued beyond the stock on hand (costed at the last known cost).
    pub(crate) shortfall: i64,
    /// No cost was known for some of the units: their value is 0.
    pub(crate) uncosted: bool,
}

/// The stock of one SKU in one warehouse.
#[derive(Debug)]
pub(crate) struct Stock<'a> {
    method: CostingMethod,
    /// FIFO layers (qty, value × 10^4), oldest first; MWA keeps one.
    layers: VecDeque<(i64, i128)>,
    /// The last unit cost seen (× 10^4): last receipt (FIFO) or last average (MWA).
    last_cost_e4: Option<i128>,
    /// What each issue took: line → (value × 10^4, qty).
    issued: IssuedByLine<'a>,
    /// Cumulative (value × 10^4, cents) of the movements in and out, for exact rounding.
    inflow: (i128, i128),
    outflow: (i128, i128),
}

/// What a chain's costing carries from one movement to the next, but for the issues a later
/// return looks up: enough to resume it there ([`Stock::resume`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StockState {
    /// FIFO layers (qty, value × 10^4), oldest first; one for a moving average.
    pub(crate) layers: Vec<(i64, i128)>,
    /// The last unit cost seen (× 10^4).
    pub(crate) last_cost_e4: Option<i128>,
    /// Cumulative (value × 10^4, cents) of the movements in.
    pub(crate) inflow: (i128, i128),
    /// Cumulative (value × 10^4, cents) of the movements out.
    pub(crate) outflow: (i128, i128),
}

impl StockState {
    /// Units on hand.
    pub(crate) fn units(&self) -> i64 {
        self.layers.iter().map(|(q, _)| q).sum()
    }

    /// The stock's value in cents, as the ledger has it: everything in less everything out,
    /// each cumulatively rounded, so that it moves by exactly the cents of the COGS, losses
    /// and receipts posted.
    pub(crate) fn value_cents(&self) -> i128 {
        self.inflow.1 - self.outflow.1
    }
}

/// A chain's stock after its last movement of a month: a page of the stock book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MonthEnd {
    /// The SKU.
    pub(crate) sku: String,
    /// The warehouse.
    pub(crate) warehouse: String,
    /// `YYYY-MM`.
    pub(crate) month: String,
    /// The stock after the month's last movement.
    pub(crate) state: StockState,
}

impl<'a> Stock<'a> {
    pub(crate) fn new(method: CostingMethod) -> Self {
        Stock {
            method,
            layers: VecDeque::new(),
            last_cost_e4: None,
            issued: HashMap::new(),
            inflow: (0, 0),
            outflow: (0, 0),
        }
    }

    /// The stock resumed at `state`, with what each earlier issue of the chain took (by sale
    /// line: value × 10^4, units), for the returns still to come.
    pub(crate) fn resume(
        method: CostingMethod,
        state: &StockState,
        issued: IssuedByLine<'a>,
    ) -> Self {
        Stock {
            method,
            layers: state.layers.iter().copied().collect(),
            last_cost_e4: state.last_cost_e4,
            issued,
            inflow: state.inflow,
            outflow: state.outflow,
        }
    }

    /// Where the stock is now (see [`StockState`]).
    pub(crate) fn state(&self) -> StockState {
        StockState {
            layers: self.layers.iter().copied().collect(),
            last_cost_e4: self.last_cost_e4,
            inflow: self.inflow,
            outflow: self.outflow,
        }
    }

    /// The cents of a movement worth `value` × 10^-4 in the direction `acc`.
    fn cents(acc: &mut (i128, i128), value: i128) -> i128 {
        acc.0 += value;
        let total = round_cents(acc.0);
        let cents = total - acc.1;
        acc.1 = total;
        cents
    }

    /// Applies one movement.
    pub(crate) fn apply(&mut self, m: Movement<'a>) -> Costed {
        match m.kind {
            MoveKind::Receipt => {
                let value = m.value_e4.unwrap_or(0);
                self.put(m.qty, value);
                if self.method == CostingMethod::Fifo && m.qty > 0 {
                    self.last_cost_e4 = Some(mul_div_round(value, 1, i128::from(m.qty)));
                }
                Costed {
                    value_cents: Self::cents(&mut self.inflow, value),
                    value_e4: value,
                    shortfall: 0,
                    uncosted: m.value_e4.is_none(),
                }
            }
            MoveKind::Issue => {
                let (value, shortfall, uncosted) = self.take(m.qty);
                if let Some(line) = m.line {
                    let entry = self.issued.entry(line).or_insert((0, 0));
                    entry.0 += value;
                    entry.1 += m.qty;
                }
                Costed {
                    value_cents: -Self::cents(&mut self.outflow, value),
                    value_e4: -value,
                    shortfall,
                    uncosted,
                }
            }
            MoveKind::Return => {
                let known = m
                    .line
                    .and_then(|l| self.issued.get(l).copied())
                    .filter(|(_, q)| *q > 0);
                let (value, uncosted) = match known {
                    Some((v, q)) => (mul_div_round(v, i128::from(m.qty), i128::from(q)), false),
                    None => match self.last_cost_e4 {
                        Some(c) => (i128::from(m.qty) * c, false),
                        None => (0, true),
                    },
                };
                self.put(m.qty, value);
                Costed {
                    value_cents: Self::cents(&mut self.inflow, value),
                    value_e4: value,
                    shortfall: 0,
                    uncosted,
                }
            }
            MoveKind::Adjust if m.qty < 0 => {
                let (value, shortfall, uncosted) = self.take(-m.qty);
                Costed {
                    value_cents: -Self::cents(&mut self.outflow, value),
                    value_e4: -value,
                    shortfall,
                    uncosted,
                }
            }
            MoveKind::Adjust => {
                let (value, uncosted) = match self.last_cost_e4 {
                    Some(c) => (i128::from(m.qty) * c, false),
                    None => (0, true),
                };
                self.put(m.qty, value);
                Costed {
                    value_cents: Self::cents(&mut self.inflow, value),
                    value_e4: value,
                    shortfall: 0,
                    uncosted,
                }
            }
        }
    }

    fn put(&mut self, qty: i64, value: i128) {
        if qty <= 0 {
            return;
        }
        match self.method {
            CostingMethod::Fifo => self.layers.push_back((qty, value)),
            CostingMethod::MovingAverage => {
                let (q, v) = self.layers.pop_front().unwrap_or((0, 0));
                let (q, v) = (q + qty, v + value);
                self.last_cost_e4 = Some(mul_div_round(v, 1, i128::from(q)));
                self.layers.push_back((q, v));
            }
        }
    }

    /// Takes `qty` units: (value × 10^4, shortfall, uncosted).
    fn take(&mut self, qty: i64) -> (i128, i64, bool) {
        let mut left = qty.max(0);
        let mut value = 0i128;
        while left > 0 {
            let Some((q, v)) = self.layers.front_mut() else {
                break;
            };
            if *q <= left {
                left -= *q;
                value += *v;
                self.layers.pop_front();
            } else {
                let part = mul_div_round(*v, i128::from(left), i128::from(*q));
                *q -= left;
                *v -= part;
                value += part;
                left = 0;
            }
        }
        let mut uncosted = false;
        if left > 0 {
            match self.last_cost_e4 {
                Some(c) => value += i128::from(left) * c,
                None => uncosted = true,
            }
        }
        (value, left, uncosted)
    }
}

/// `v × 10^-4` yuan → cents, half-even.
fn round_cents(v: i128) -> i128 {
    div_half_even(v, 100)
}

/// `a × b / c`, half-even (c > 0).
fn mul_div_round(a: i128, b: i128, c: i128) -> i128 {
    div_half_even(a.saturating_mul(b), c)
}

/// `batch` with its `line` column as Utf8 (the SQL may hand it over as Utf8View): the stocks
/// borrow the sale lines from it.
pub(crate) fn with_utf8_line(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema();
    let Ok(i) = schema.index_of("line") else {
        return Ok(batch.clone());
    };
    if schema.field(i).data_type() == &DataType::Utf8 {
        return Ok(batch.clone());
    }
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns = batch.columns().to_vec();
    if let (Some(field), Some(column)) = (fields.get_mut(i), columns.get_mut(i)) {
        *column = cast(column, &DataType::Utf8)?;
        *field = Field::new("line", DataType::Utf8, true);
    }
    Ok(RecordBatch::try_new(
        Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
        columns,
    )?)
}

/// Costs a batch of movements sorted by (sku, warehouse, time): columns `sku`, `warehouse`,
/// `kind` (`receipt`, `issue`, `return`, `adjust`), `qty`, `receipt_value` (Decimal128(_, 4):
/// a receipt's landed value), `line` (Utf8: an issue's sale line, a return's). Returns the
/// batch with `value` (Decimal128(38,2): the inventory value change in cents), `value_e4`
/// (Decimal128(38,4): the same, exactly), `shortfall` and `uncosted` appended.
///
/// Each chain is started by `opening(sku, warehouse)`: a new stock, or one resumed from the
/// stock book. With `book`, each chain's state after its last movement of every month is
/// recorded there (the batch then needs a `month` column, `YYYY-MM`).
pub(crate) fn cost_batch_from<'a>(
    method: CostingMethod,
    batch: &'a RecordBatch,
    opening: &mut dyn FnMut(&str, &str) -> Stock<'a>,
    mut book: Option<&mut Vec<MonthEnd>>,
) -> Result<RecordBatch> {
    // The SQL may hand strings over as Utf8View and numbers in any width: normalise first.
    let col = |name: &str, to: &DataType| -> Result<ArrayRef> {
        let c = batch
            .column_by_name(name)
            .ok_or_else(|| EngineError::ledger(format!("costing: no column '{name}'")))?;
        Ok(cast(c, to)?)
    };
    let (sku, warehouse, kind, qty, cost) = (
        col("sku", &DataType::Utf8)?,
        col("warehouse", &DataType::Utf8)?,
        col("kind", &DataType::Utf8)?,
        col("qty", &DataType::Int64)?,
        col("receipt_value", &DataType::Decimal128(38, 4))?,
    );
    let month = match book {
        Some(_) => Some(col("month", &DataType::Utf8)?),
        None => None,
    };
    let month = month.as_ref().map(|m| m.as_string::<i32>());
    // The sale lines are borrowed by the stocks (what each issue took, by line): the column
    // must live as long as the batch, so it is taken as it is when it is Utf8 already.
    let line = batch
        .column_by_name("line")
        .ok_or_else(|| EngineError::ledger("costing: no column 'line'"))?;
    let line = line.as_string_opt::<i32>().ok_or_else(|| {
        EngineError::ledger(format!("costing: 'line' is {}, not Utf8", line.data_type()))
    })?;
    let (sku, warehouse, kind) = (
        sku.as_string::<i32>(),
        warehouse.as_string::<i32>(),
        kind.as_string::<i32>(),
    );
    let qty = qty.as_primitive::<Int64Type>();
    let cost = cost.as_primitive::<Decimal128Type>();
    let n = batch.num_rows();
    let mut values = Vec::with_capacity(n);
    let mut exact = Vec::with_capacity(n);
    let mut shortfalls = Vec::with_capacity(n);
    let mut uncosted = Vec::with_capacity(n);
    let mut stock = Stock::new(method);
    let mut current: Option<(&str, &str)> = None;
    let mut current_month: Option<&str> = None;
    // The month a chain's page is written for: when its next movement is of another month or
    // chain, and after the last one.
    let close = |book: &mut Option<&mut Vec<MonthEnd>>,
                 chain: Option<(&str, &str)>,
                 month: Option<&str>,
                 stock: &Stock<'_>| {
        if let (Some(book), Some((sku, warehouse)), Some(month)) =
            (book.as_deref_mut(), chain, month)
        {
            book.push(MonthEnd {
                sku: sku.to_string(),
                warehouse: warehouse.to_string(),
                month: month.to_string(),
                state: stock.state(),
            });
        }
    };
    for i in 0..n {
        let key = (sku.value(i), warehouse.value(i));
        let m = month.map(|m| m.value(i));
        if current != Some(key) || current_month != m {
            close(&mut book, current, current_month, &stock);
            current_month = m;
        }
        if current != Some(key) {
            stock = opening(key.0, key.1);
            current = Some(key);
        }
        let Some(k) = MoveKind::parse(kind.value(i)) else {
            return Err(EngineError::ledger(format!(
                "costing: unknown movement kind '{}'",
                kind.value(i)
            )));
        };
        let m = Movement {
            kind: k,
            qty: if qty.is_null(i) { 0 } else { qty.value(i) },
            value_e4: (!cost.is_null(i)).then(|| cost.value(i)),
            line: (!line.is_null(i)).then(|| line.value(i)),
        };
        let c = stock.apply(m);
        values.push(c.value_cents);
        exact.push(c.value_e4);
        shortfalls.push(c.shortfall);
        uncosted.push(c.uncosted);
    }
    close(&mut book, current, current_month, &stock);
    append_columns(
        batch,
        vec![
            (
                Field::new("value", DataType::Decimal128(38, 2), false),
                Arc::new(Decimal128Array::from(values).with_precision_and_scale(38, 2)?)
                    as ArrayRef,
            ),
            (
                Field::new("value_e4", DataType::Decimal128(38, 4), false),
                Arc::new(Decimal128Array::from(exact).with_precision_and_scale(38, 4)?),
            ),
            (
                Field::new("shortfall", DataType::Int64, false),
                Arc::new(Int64Array::from(shortfalls)),
            ),
            (
                Field::new("uncosted", DataType::Boolean, false),
                Arc::new(BooleanArray::from(uncosted)),
            ),
        ],
    )
}

/// What each issue of a chain took, by sale line: (value × 10^4, units).
pub(crate) type IssuedByLine<'a> = HashMap<&'a str, (i128, i64)>;

/// What each issue of `costed` (a batch [`cost_batch_from`] returned) took, by chain and sale
/// line: the `issued` a chain is resumed with.
pub(crate) fn issued_by_chain(
    costed: &RecordBatch,
) -> Result<HashMap<(String, String), IssuedByLine<'_>>> {
    const WHAT: &str = "stock book";
    let text = |name: &str| utf8_named(costed, name, WHAT);
    let (sku, warehouse, kind, line) = (
        text("sku")?,
        text("warehouse")?,
        text("kind")?,
        text("line")?,
    );
    let qty = cast(named(costed, "qty", WHAT)?, &DataType::Int64)?;
    let qty = qty.as_primitive::<Int64Type>();
    let value = decimal_named(costed, "value_e4", WHAT)?;
    let mut out: HashMap<(String, String), IssuedByLine<'_>> = HashMap::new();
    for i in 0..costed.num_rows() {
        if kind.value(i) != "issue" || line.is_null(i) {
            continue;
        }
        let chain = (sku.value(i).to_string(), warehouse.value(i).to_string());
        let entry = out
            .entry(chain)
            .or_default()
            .entry(line.value(i))
            .or_insert((0, 0));
        entry.0 -= value.value(i);
        entry.1 += if qty.is_null(i) { 0 } else { qty.value(i) };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(qty: i64, cost: &str) -> Movement<'static> {
        Movement {
            kind: MoveKind::Receipt,
            qty,
            value_e4: amoeba_catalog::model::parse_e4(cost).map(|c| c * i128::from(qty)),
            line: None,
        }
    }
    fn issue(qty: i64, line: &'static str) -> Movement<'static> {
        Movement {
            kind: MoveKind::Issue,
            qty,
            value_e4: None,
            line: Some(line),
        }
    }
    fn ret(qty: i64, line: &'static str) -> Movement<'static> {
        Movement {
            kind: MoveKind::Return,
            qty,
            value_e4: None,
            line: Some(line),
        }
    }
    fn adjust(qty: i64) -> Movement<'static> {
        Movement {
            kind: MoveKind::Adjust,
            qty,
            value_e4: None,
            line: None,
        }
    }

    fn run(method: CostingMethod, moves: &[Movement<'static>]) -> Vec<i128> {
        let mut s = Stock::new(method);
        moves.iter().map(|m| s.apply(*m).value_cents).collect()
    }

    /// Hand-computed FIFO with a return (a new layer at the issue's cost), a loss, a
    /// shortfall and a gain; the comments give the arithmetic.
    #[test]
    fn fifo_hand_computed() {
        let moves = [
            receipt(10, "2.00"),
            receipt(10, "3.00"),
            issue(15, "A"), // 10×2.00 + 5×3.00 = 35.00
            ret(3, "A"),    // 3/15 of 35.00 = 7.00, a new layer 3 units / 7.00
            adjust(-4),     // 4 of the 5 @ 3.00 = 12.00
            issue(4, "B"),  // 1 @ 3.00 + 3 of the returned layer (7.00) = 10.00
            issue(2, "C"),  // nothing left: shortfall 2 at the last receipt cost 3.00 = 6.00
            adjust(1),      // a gain at the last cost 3.00
        ];
        assert_eq!(
            run(CostingMethod::Fifo, &moves),
            vec![2000, 3000, -3500, 700, -1200, -1000, -600, 300]
        );
    }

    /// Hand-computed moving average: 10 @ 2.00, 10 @ 3.00 → avg 2.50; sale 15 → 37.50;
    /// return 3 at that cost (7.50) → 8 units, 20.00 (avg 2.50); receipt 2 @ 4.10 → 10 units,
    /// 28.20 (avg 2.82); loss of 1 → 2.82; sale 9 → the remaining 25.38.
    #[test]
    fn moving_average_hand_computed() {
        let moves = [
            receipt(10, "2.00"),
            receipt(10, "3.00"),
            issue(15, "A"),
            ret(3, "A"),
            receipt(2, "4.10"),
            adjust(-1),
            issue(9, "B"),
        ];
        assert_eq!(
            run(CostingMethod::MovingAverage, &moves),
            vec![2000, 3000, -3750, 750, 820, -282, -2538]
        );
    }

    #[test]
    fn a_sku_without_purchases_is_uncosted_not_dropped() {
        let mut s = Stock::new(CostingMethod::Fifo);
        let c = s.apply(issue(3, "X"));
        assert_eq!(
            c,
            Costed {
                value_cents: 0,
                value_e4: 0,
                shortfall: 3,
                uncosted: true
            }
        );
    }

    #[test]
    fn fractional_costs_never_leak_a_cent() {
        // 3 units for 10.00 (3.3333… each), issued one by one: 3.33 + 3.34 + 3.33 = 10.00.
        let mut s = Stock::new(CostingMethod::Fifo);
        let layer = Movement {
            kind: MoveKind::Receipt,
            qty: 3,
            value_e4: Some(99_999),
            line: None,
        };
        assert_eq!(s.apply(layer).value_cents, 1000); // 9.9999 → 10.00
        let out: Vec<i128> = (0..3).map(|_| s.apply(issue(1, "L")).value_cents).collect();
        assert_eq!(out, vec![-333, -334, -333]);
        // Moving average: 7 units for 1.00, issued one by one, add up to exactly 1.00.
        let mut s = Stock::new(CostingMethod::MovingAverage);
        s.put(7, 10_000);
        let out: i128 = (0..7).map(|_| s.apply(issue(1, "L")).value_cents).sum();
        assert_eq!(out, -100);
    }

    /// A test movement: (sku, month, kind, qty, receipt value × 10^4, line).
    type Row<'a> = (&'a str, String, &'a str, i64, Option<i128>, Option<String>);

    /// A batch of movements for `cost_batch_from`: (sku, month, kind, qty, receipt value ×
    /// 10^4, line), one warehouse, in the given order.
    fn moves_batch(rows: &[Row<'_>]) -> RecordBatch {
        use datafusion::arrow::array::StringArray;
        use datafusion::arrow::datatypes::Schema;
        let text = |f: &dyn Fn(&Row<'_>) -> Option<String>| -> ArrayRef {
            Arc::new(rows.iter().map(f).collect::<StringArray>())
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("sku", DataType::Utf8, false),
            Field::new("warehouse", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("qty", DataType::Int64, false),
            Field::new("receipt_value", DataType::Decimal128(38, 4), true),
            Field::new("line", DataType::Utf8, true),
            Field::new("month", DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                text(&|r| Some(r.0.to_string())),
                text(&|_| Some("W1".to_string())),
                text(&|r| Some(r.2.to_string())),
                Arc::new(rows.iter().map(|r| r.3).collect::<Int64Array>()),
                Arc::new(
                    rows.iter()
                        .map(|r| r.4)
                        .collect::<Decimal128Array>()
                        .with_precision_and_scale(38, 4)
                        .expect("decimal"),
                ),
                text(&|r| r.5.clone()),
                text(&|r| Some(r.1.clone())),
            ],
        )
        .expect("batch")
    }

    fn column_i128(batch: &RecordBatch, name: &str) -> Vec<i128> {
        let c = batch.column_by_name(name).expect("column");
        let c = c.as_primitive::<Decimal128Type>();
        (0..c.len()).map(|i| c.value(i)).collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]
        /// Resuming a chain after any month end of the book, with what its earlier issues took,
        /// gives the values of costing the chain whole: FIFO and moving average, with returns
        /// of issues from earlier months, losses, gains and shortfalls. The book's value of the
        /// stock moves by exactly the cents posted.
        #[test]
        fn costing_resumed_from_the_book_equals_costing_the_chain_whole(
            moves in proptest::collection::vec(
                (0usize..2, 1u32..5, 0u8..6, 1i64..20, 100i128..90_000, proptest::prelude::any::<proptest::sample::Index>()),
                1..60,
            ),
            moving_average in proptest::prelude::any::<bool>(),
        ) {
            let method = if moving_average { CostingMethod::MovingAverage } else { CostingMethod::Fifo };
            // Sorted by chain and month (the build's order within a month is by time).
            let mut moves = moves;
            moves.sort_by_key(|m| (m.0, m.1));
            let mut issued: Vec<Vec<String>> = vec![Vec::new(), Vec::new()];
            let mut rows = Vec::new();
            for (n, (chain, month, kind, qty, cost, pick)) in moves.iter().enumerate() {
                let sku = ["A", "B"][*chain];
                let month = format!("2025-{month:02}");
                let lines = &mut issued[*chain];
                let row = match kind {
                    0 | 1 => (sku, month, "receipt", *qty, Some(cost * i128::from(*qty)), None),
                    2 | 3 => {
                        let line = format!("{sku}-L{n}");
                        lines.push(line.clone());
                        (sku, month, "issue", *qty, None, Some(line))
                    }
                    4 => {
                        // A return of an earlier issue (any month), or of a line never issued.
                        let line = if lines.is_empty() { format!("{sku}-none") } else { lines[pick.index(lines.len())].clone() };
                        (sku, month, "return", *qty, None, Some(line))
                    }
                    _ => (sku, month, "adjust", if n % 2 == 0 { -*qty } else { *qty }, None, None),
                };
                rows.push(row);
            }
            let batch = moves_batch(&rows);
            let mut book = Vec::new();
            let whole = cost_batch_from(method, &batch, &mut |_, _| Stock::new(method), Some(&mut book))
                .expect("cost whole");
            let whole_cents = column_i128(&whole, "value");
            let whole_e4 = column_i128(&whole, "value_e4");
            proptest::prop_assert!(!book.is_empty());
            // One page per chain and month with movements, in order.
            let mut pages: Vec<(&str, String)> = rows.iter().map(|r| (r.0, r.1.clone())).collect();
            pages.dedup();
            proptest::prop_assert_eq!(
                book.iter().map(|p| (p.sku.as_str(), p.month.clone())).collect::<Vec<_>>(),
                pages
            );
            for page in &book {
                let before: Vec<u32> = (0..rows.len() as u32)
                    .filter(|&i| rows[i as usize].0 == page.sku && rows[i as usize].1 <= page.month)
                    .collect();
                let from: Vec<u32> = (0..rows.len() as u32)
                    .filter(|&i| rows[i as usize].0 == page.sku && rows[i as usize].1 > page.month)
                    .collect();
                let take = |batch: &RecordBatch, idx: &[u32]| {
                    let idx = datafusion::arrow::array::UInt32Array::from(idx.to_vec());
                    datafusion::arrow::compute::take_record_batch(batch, &idx).expect("take")
                };
                let earlier = take(&whole, &before);
                let prior = issued_by_chain(&earlier).expect("issued");
                let prior = prior
                    .get(&(page.sku.clone(), page.warehouse.clone()))
                    .cloned()
                    .unwrap_or_default();
                let rest = take(&batch, &from);
                let resumed = cost_batch_from(
                    method,
                    &rest,
                    &mut |_, _| Stock::resume(method, &page.state, prior.clone()),
                    None,
                )
                .expect("cost resumed");
                let want_cents: Vec<i128> = from.iter().map(|&i| whole_cents[i as usize]).collect();
                let want_e4: Vec<i128> = from.iter().map(|&i| whole_e4[i as usize]).collect();
                proptest::prop_assert_eq!(column_i128(&resumed, "value"), want_cents, "{} from {}", page.sku, page.month);
                proptest::prop_assert_eq!(column_i128(&resumed, "value_e4"), want_e4);
                let posted: i128 = before.iter().map(|&i| whole_cents[i as usize]).sum();
                proptest::prop_assert_eq!(page.state.value_cents(), posted);
                proptest::prop_assert!(page.state.units() >= 0);
            }
        }
    }
}
