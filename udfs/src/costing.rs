//! Costing helpers for what-if analyses outside the ledger: FIFO and moving weighted average
//! over a sequence of stock movements, as window functions.
//!
//! ```text
//!  fifo_cost(qty, unit_cost) OVER (PARTITION BY sku ORDER BY ts)
//!
//!  ts  qty  unit_cost   layers after the row            fifo_cost (value change)
//!  1   +10  2.00        [10 @ 2.00]                     +20.00
//!  2   +10  3.00        [10 @ 2.00, 10 @ 3.00]          +30.00
//!  3   -15  NULL        [5 @ 3.00]                      -35.00   (10 × 2.00 + 5 × 3.00)
//!                                            Σ over the partition = closing inventory value
//! ```
//!
//! A movement is a receipt (`qty > 0`, at `unit_cost`; a restocked return is a receipt) or an
//! issue (`qty < 0`; its `unit_cost` is ignored). The value change of a row is `+qty × unit_cost`
//! for a receipt and minus the cost of the units issued for an issue, so the running `SUM` is the
//! inventory value and the issues' values are the COGS (negative, with the ledger's sign).
//! An issue beyond the stock on hand is costed at the last known unit cost (FIFO: the last
//! receipt's; moving average: the last average) and the stock stays at zero; with no cost known
//! yet the row is NULL. A NULL `qty` is NULL and changes nothing; a receipt without a unit cost is
//! an error. Results are exact: the value change has the scale of `qty` plus that of `unit_cost`.

use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array};
use datafusion::arrow::buffer::{NullBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef};
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{
    Documentation, PartitionEvaluator, Signature, Volatility, WindowUDF, WindowUDFImpl,
};

use crate::error::{Result, UdfError};
use crate::num::{MAX_DECIMAL128, div_round, mul_div_round};
use crate::types::{Kind, Numeric, Spec, decimal, scale_of};

/// The scale of a float quantity (kg) once made exact.
const FLOAT_QTY_SCALE: i8 = 6;
/// The scale of a float unit cost once made exact, and the least scale of an average cost.
const COST_SCALE: i8 = 4;

/// Which costing and which output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Method {
    /// FIFO layers; the inventory value change of each movement.
    Fifo,
    /// Moving weighted average; the inventory value change of each movement.
    MovingAverage,
    /// Moving weighted average; the average unit cost after each movement.
    AverageCost,
}

const ARGS: &[(&str, &str)] = &[
    (
        "qty",
        "the movement: > 0 a receipt (or restocked return), < 0 an issue",
    ),
    (
        "unit_cost",
        "the unit cost of a receipt (ignored for an issue)",
    ),
];

pub(crate) const SPECS: [(Spec, Method); 3] = [
    (
        Spec {
            name: "fifo_cost",
            kind: Kind::Window,
            args: ARGS,
            returns: "DECIMAL(38, scale(qty) + scale(unit_cost)): +qty × unit_cost for a receipt, −(FIFO cost of the units issued) for an issue",
            description: "FIFO costing of a sequence of movements (PARTITION BY sku ORDER BY time): the inventory value change of each movement; the running SUM is the inventory value, the issues are the COGS.",
            example: "SELECT ts, fifo_cost(qty, cost) OVER (ORDER BY ts) FROM (VALUES (1, 10, 2.00), (2, 10, 3.00), (3, -15, NULL)) AS t(ts, qty, cost)  -- 20, 30, -35",
        },
        Method::Fifo,
    ),
    (
        Spec {
            name: "mwa_cost",
            kind: Kind::Window,
            args: ARGS,
            returns: "DECIMAL(38, scale(qty) + scale(unit_cost)): +qty × unit_cost for a receipt, −(qty × moving average cost, rounded half away from zero) for an issue",
            description: "Moving-weighted-average costing of a sequence of movements: the inventory value change of each movement (an issue of the whole stock takes its whole value, so no residue is left).",
            example: "SELECT ts, mwa_cost(qty, cost) OVER (ORDER BY ts) FROM (VALUES (1, 10, 2.00), (2, 10, 3.00), (3, -15, NULL)) AS t(ts, qty, cost)  -- 20, 30, -37.5",
        },
        Method::MovingAverage,
    ),
    (
        Spec {
            name: "moving_avg_cost",
            kind: Kind::Window,
            args: ARGS,
            returns: "DECIMAL(38, max(scale(unit_cost), 4)): the moving weighted average unit cost after the movement (the last one while the stock is empty; NULL before any receipt)",
            description: "The moving weighted average unit cost after each movement of a sequence.",
            example: "SELECT ts, moving_avg_cost(qty, cost) OVER (ORDER BY ts) FROM (VALUES (1, 10, 2.00), (2, 10, 3.00), (3, -15, NULL)) AS t(ts, qty, cost)  -- 2, 2.5, 2.5",
        },
        Method::AverageCost,
    ),
];

/// The three costing window functions.
pub(crate) fn udwfs() -> Vec<WindowUDF> {
    SPECS
        .iter()
        .map(|(spec, method)| {
            WindowUDF::new_from_impl(CostingUdwf {
                spec: *spec,
                method: *method,
                signature: Signature::user_defined(Volatility::Immutable),
                doc: spec.documentation(),
            })
        })
        .collect()
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct CostingUdwf {
    spec: Spec,
    method: Method,
    signature: Signature,
    doc: Documentation,
}

impl CostingUdwf {
    fn output_scale(&self, qty: i8, cost: i8) -> Result<i8> {
        let s = match self.method {
            Method::Fifo | Method::MovingAverage => qty + cost,
            Method::AverageCost => cost.max(COST_SCALE),
        };
        if s > 38 {
            return Err(UdfError::InvalidInput {
                function: self.spec.name,
                message: format!("scale(qty) + scale(unit_cost) = {s} exceeds 38"),
            });
        }
        Ok(s)
    }
}

impl WindowUDFImpl for CostingUdwf {
    fn name(&self) -> &str {
        self.spec.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> datafusion::error::Result<Vec<DataType>> {
        let kinds = self.spec.classify_all(arg_types)?;
        let to = |k: Numeric, float_scale: i8| match k {
            Numeric::Decimal(s) => decimal(s.min(19)),
            Numeric::Float => decimal(float_scale),
            Numeric::Integer | Numeric::Null => decimal(0),
        };
        Ok(vec![
            to(kinds[0], FLOAT_QTY_SCALE),
            to(kinds[1], COST_SCALE),
        ])
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> datafusion::error::Result<FieldRef> {
        let f = field_args.input_fields();
        let qty = f.first().map_or(0, |f| scale_of(f.data_type()));
        let cost = f.get(1).map_or(0, |f| scale_of(f.data_type()));
        let scale = self.output_scale(qty, cost)?;
        Ok(Arc::new(Field::new(
            field_args.name(),
            decimal(scale),
            true,
        )))
    }

    fn partition_evaluator(
        &self,
        _args: PartitionEvaluatorArgs,
    ) -> datafusion::error::Result<Box<dyn PartitionEvaluator>> {
        Ok(Box::new(CostingEvaluator {
            function: self.spec.name,
            method: self.method,
        }))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
}

#[derive(Debug)]
struct CostingEvaluator {
    function: &'static str,
    method: Method,
}

impl PartitionEvaluator for CostingEvaluator {
    fn evaluate_all(
        &mut self,
        values: &[ArrayRef],
        num_rows: usize,
    ) -> datafusion::error::Result<ArrayRef> {
        Ok(self.run(values, num_rows)?)
    }
}

impl CostingEvaluator {
    fn run(&self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let function = self.function;
        let [qty, cost] = values else {
            return Err(UdfError::ArgCount {
                function,
                expected: 2,
                got: values.len(),
            });
        };
        let (sq, sc) = (scale_of(qty.data_type()), scale_of(cost.data_type()));
        let invalid = |m: &str| UdfError::InvalidInput {
            function,
            message: m.to_string(),
        };
        let qty = qty
            .as_primitive_opt::<Decimal128Type>()
            .ok_or_else(|| invalid("qty is not a decimal"))?;
        let cost = cost
            .as_primitive_opt::<Decimal128Type>()
            .ok_or_else(|| invalid("unit_cost is not a decimal"))?;
        let overflow = |what| UdfError::Overflow { function, what };
        let fits = |v: i128| (v.unsigned_abs() <= MAX_DECIMAL128.unsigned_abs()).then_some(v);
        let mul = |q: i128, c: i128| {
            q.checked_mul(c)
                .and_then(fits)
                .ok_or(overflow("qty × unit_cost"))
        };
        let add = |a: i128, b: i128| {
            a.checked_add(b)
                .and_then(fits)
                .ok_or(overflow("inventory value"))
        };

        let mut out = vec![0i128; num_rows];
        let mut valid = vec![false; num_rows];
        // FIFO layers (qty, unit cost); moving average: stock and value.
        let mut layers: VecDeque<(i128, i128)> = VecDeque::new();
        let mut last_cost: Option<i128> = None;
        let (mut stock, mut value) = (0i128, 0i128);
        // The last average as a fraction (value, stock), for issues from an empty stock.
        let mut last_avg: Option<(i128, i128)> = None;
        for i in 0..qty.len().min(num_rows) {
            if qty.is_null(i) {
                if let (Method::AverageCost, Some((v, s))) = (self.method, last_avg) {
                    out[i] = div_round(v, s, i32::from(COST_SCALE.max(sc) - sc))
                        .ok_or(overflow("average cost"))?;
                    valid[i] = true;
                }
                continue;
            }
            let q = qty.value(i);
            let change: Option<i128> = if q > 0 {
                if cost.is_null(i) {
                    return Err(invalid("a receipt (qty > 0) has no unit_cost"));
                }
                let c = cost.value(i);
                let v = mul(q, c)?;
                layers.push_back((q, c));
                last_cost = Some(c);
                stock = add(stock, q)?;
                value = add(value, v)?;
                last_avg = Some((value, stock));
                Some(v)
            } else if q < 0 {
                let need = q.checked_neg().ok_or(overflow("qty"))?;
                match self.method {
                    Method::Fifo => {
                        let mut left = need;
                        let mut total = 0i128;
                        while left > 0 {
                            let Some(front) = layers.front_mut() else {
                                break;
                            };
                            let take = left.min(front.0);
                            total = add(total, mul(take, front.1)?)?;
                            front.0 -= take;
                            left -= take;
                            if front.0 == 0 {
                                layers.pop_front();
                            }
                        }
                        match (left, last_cost) {
                            (0, _) => Some(-total),
                            (_, Some(c)) => Some(-add(total, mul(left, c)?)?),
                            (_, None) => None,
                        }
                    }
                    Method::MovingAverage | Method::AverageCost => match last_avg {
                        None => None,
                        Some((v, s)) => {
                            let issued = if stock > 0 && need >= stock {
                                // The whole stock: its whole value, plus any shortfall at the average.
                                let short = need - stock;
                                let c = mul_div_round(v, short, s).ok_or(overflow("issue cost"))?;
                                add(value, c)?
                            } else if stock > 0 {
                                mul_div_round(value, need, stock).ok_or(overflow("issue cost"))?
                            } else {
                                mul_div_round(v, need, s).ok_or(overflow("issue cost"))?
                            };
                            if stock > 0 && need < stock {
                                stock -= need;
                                value -= issued;
                                last_avg = Some((value, stock));
                            } else {
                                stock = 0;
                                value = 0;
                            }
                            Some(-issued)
                        }
                    },
                }
            } else {
                Some(0)
            };
            match self.method {
                Method::Fifo | Method::MovingAverage => {
                    if let Some(c) = change {
                        out[i] = c;
                        valid[i] = true;
                    }
                }
                Method::AverageCost => {
                    if let Some((v, s)) = last_avg {
                        out[i] = div_round(v, s, i32::from(COST_SCALE.max(sc) - sc))
                            .ok_or(overflow("average cost"))?;
                        valid[i] = true;
                    }
                }
            }
        }
        let scale = match self.method {
            Method::Fifo | Method::MovingAverage => sq + sc,
            Method::AverageCost => sc.max(COST_SCALE),
        };
        let arr = Decimal128Array::new(ScalarBuffer::from(out), Some(NullBuffer::from(valid)))
            .with_precision_and_scale(38, scale)?;
        Ok(Arc::new(arr))
    }
}
