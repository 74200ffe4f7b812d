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

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use amoeba_catalog::model::CostingMethod;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Int64Array, RecordBatch,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, Int64Type};

use super::allocation::div_half_even;
use super::append_columns;
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
    issued: HashMap<&'a str, (i128, i64)>,
    /// Cumulative (value × 10^4, cents) of the movements in and out, for exact rounding.
    inflow: (i128, i128),
    outflow: (i128, i128),
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
                    shortfall: 0,
                    uncosted,
                }
            }
            MoveKind::Adjust if m.qty < 0 => {
                let (value, shortfall, uncosted) = self.take(-m.qty);
                Costed {
                    value_cents: -Self::cents(&mut self.outflow, value),
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

/// Costs a batch of movements sorted by (sku, warehouse, time): columns `sku`, `warehouse`,
/// `kind` (`receipt`, `issue`, `return`, `adjust`), `qty`, `receipt_value` (Decimal128(_, 4):
/// a receipt's landed value), `line` (an issue's sale line, a return's). Returns the batch with
/// `value` (Decimal128(38,2): the inventory value change in cents), `shortfall` and `uncosted`
/// appended.
pub(crate) fn cost_batch(method: CostingMethod, batch: &RecordBatch) -> Result<RecordBatch> {
    // The SQL may hand strings over as Utf8View and numbers in any width: normalise first.
    let col = |name: &str, to: &DataType| -> Result<ArrayRef> {
        let c = batch
            .column_by_name(name)
            .ok_or_else(|| EngineError::ledger(format!("costing: no column '{name}'")))?;
        Ok(cast(c, to)?)
    };
    let (sku, warehouse, kind, qty, cost, line) = (
        col("sku", &DataType::Utf8)?,
        col("warehouse", &DataType::Utf8)?,
        col("kind", &DataType::Utf8)?,
        col("qty", &DataType::Int64)?,
        col("receipt_value", &DataType::Decimal128(38, 4))?,
        col("line", &DataType::Utf8)?,
    );
    let (sku, warehouse, kind, line) = (
        sku.as_string::<i32>(),
        warehouse.as_string::<i32>(),
        kind.as_string::<i32>(),
        line.as_string::<i32>(),
    );
    let qty = qty.as_primitive::<Int64Type>();
    let cost = cost.as_primitive::<Decimal128Type>();
    let n = batch.num_rows();
    let mut values = Vec::with_capacity(n);
    let mut shortfalls = Vec::with_capacity(n);
    let mut uncosted = Vec::with_capacity(n);
    let mut stock = Stock::new(method);
    let mut current: Option<(&str, &str)> = None;
    for i in 0..n {
        let key = (sku.value(i), warehouse.value(i));
        if current != Some(key) {
            stock = Stock::new(method);
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
        shortfalls.push(c.shortfall);
        uncosted.push(c.uncosted);
    }
    append_columns(
        batch,
        vec![
            (
                Field::new("value", DataType::Decimal128(38, 2), false),
                Arc::new(Decimal128Array::from(values).with_precision_and_scale(38, 2)?)
                    as ArrayRef,
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
}
