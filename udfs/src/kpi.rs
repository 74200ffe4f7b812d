//! KPI scalar functions (`spec/pnl.md` § KPIs).
//!
//! Every KPI is a quotient `numerator / denominator` of additive measures, so one kernel serves
//! them all; a [`Formula`] says how the arguments make the two parts:
//!
//! ```text
//!   args ──coerce_types──▶ DOUBLE ……………………………… ratio KPIs (margins, ROI, ROAS, turnover …)
//!        │                  └─▶ one typed loop over the f64 buffers: q = num / den,
//!        │                      NULL where q is not finite (den = 0) or an input is NULL
//!        └──────────────▶ DECIMAL(38, s) ……………… money-per-unit KPIs (AOV, CAC, cost per order,
//!                           └─▶ one loop over the i128 buffers:   hourly value added) when no
//!                               q = round(num / den, 4 places)    argument is a float
//! ```
//!
//! Conventions (the contract, also in each function's documentation):
//! - A zero or NULL denominator gives NULL, never an error or infinity.
//! - Cost arguments (ad spend, COGS, fees, operating cost, acquisition spend) are taken as
//!   magnitudes (`abs`), so they may be passed with the ledger's sign (costs negative) or as
//!   positive amounts. Profit and sales arguments keep their sign: a refund-heavy month with
//!   negative net sales gives a negative AOV, a loss gives a negative ROI.
//! - Ratios are `DOUBLE`. Money per unit is `DECIMAL(38,4)` rounded half away from zero when
//!   every argument is exact (integer or decimal), `DOUBLE` when one is a float.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, Float64Array};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Float64Type, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::error::{Result, UdfError};
use crate::num::{MAX_DECIMAL128, div_round};
use crate::types::{Kind, Numeric, Spec, decimal, scale_of};

/// The scale of money-per-unit results: `DECIMAL(38,4)`, like unit costs.
pub const PER_UNIT_SCALE: i8 = 4;

/// How a KPI's arguments make its numerator and denominator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Formula {
    /// `f(a) / g(b)`; `abs_num` / `abs_den` take the magnitude of a cost argument.
    Div { abs_num: bool, abs_den: bool },
    /// break-even ROAS = 1 / (cm2 / net_sales) = net_sales / cm2; NULL if either is 0.
    BreakEven,
    /// inventory days = days × avg_inventory / |cogs|.
    InventoryDays,
    /// hourly value added = (net_sales − |costs_except_labour|) / hours.
    ValueAdded,
}

/// Whether the result is a ratio (always `DOUBLE`) or money per unit (exact when it can be).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Output {
    Ratio,
    PerUnit,
}

const RATIO: &str = "DOUBLE; NULL when the denominator is 0 or NULL";
const PER_UNIT: &str = "DECIMAL(38,4) (rounded half away from zero) when every argument is an integer or decimal, DOUBLE when one is a float; NULL when the denominator is 0 or NULL";

macro_rules! kpi {
    ($name:literal, $formula:expr, $output:expr, [$($arg:literal : $adesc:literal),+], $desc:literal, $example:literal) => {
        (
            Spec {
                name: $name,
                kind: Kind::Scalar,
                args: &[$(($arg, $adesc)),+],
                returns: match $output { Output::Ratio => RATIO, Output::PerUnit => PER_UNIT },
                description: $desc,
                example: $example,
            },
            $formula,
            $output,
        )
    };
}

const DIV: Formula = Formula::Div {
    abs_num: false,
    abs_den: false,
};
const COST_DEN: Formula = Formula::Div {
    abs_num: false,
    abs_den: true,
};
const COST_NUM: Formula = Formula::Div {
    abs_num: true,
    abs_den: false,
};

/// Every KPI function: its documentation, formula and output kind.
pub(crate) const KPIS: &[(Spec, Formula, Output)] = &[
    kpi!("safe_div", DIV, Output::Ratio,
        ["numerator": "any number", "denominator": "any number"],
        "numerator / denominator as a DOUBLE, NULL instead of a division by zero.",
        "SELECT safe_div(1, 4)  -- 0.25"),
    kpi!("gross_margin", DIV, Output::Ratio,
        ["gross_profit": "毛利 (CM1): net sales + cogs + inventory_loss", "net_sales": "净销售额"],
        "毛利率 gross margin = gross profit / net sales.",
        "SELECT gross_margin(300.00, 1000.00)  -- 0.3"),
    kpi!("net_margin", DIV, Output::Ratio,
        ["net_profit": "净利润", "net_sales": "净销售额"],
        "净利率 net margin = net profit / net sales.",
        "SELECT net_margin(45.00, 1000.00)  -- 0.045"),
    kpi!("roi", COST_DEN, Output::Ratio,
        ["net_profit": "net profit attributable to the spend", "ad_spend": "advertising spend (sign ignored)"],
        "流量ROI = net profit attributable / |advertising spend|; below 1 the spend lost money.",
        "SELECT roi(3000.00, -2000.00)  -- 1.5"),
    kpi!("roas", COST_DEN, Output::Ratio,
        ["net_sales": "净销售额", "ad_spend": "advertising spend (sign ignored)"],
        "ROAS = net sales / |advertising spend|.",
        "SELECT roas(10000.00, 2000.00)  -- 5"),
    kpi!("break_even_roas", Formula::BreakEven, Output::Ratio,
        ["cm2": "contribution margin 2 (before advertising)", "net_sales": "净销售额"],
        "Break-even ROAS = 1 / CM2 margin = net sales / CM2; NULL when CM2 or net sales is 0 or NULL; negative when CM2 is a loss (no ROAS breaks even).",
        "SELECT break_even_roas(250.00, 1000.00)  -- 4"),
    kpi!("return_rate", DIV, Output::Ratio,
        ["refunded": "refunded orders (or refunded amount)", "total": "orders (or sales amount)"],
        "退货率 return rate = refunded orders / orders (or by amount: refunded amount / sales).",
        "SELECT return_rate(120, 1000)  -- 0.12"),
    kpi!("aov", DIV, Output::PerUnit,
        ["net_sales": "净销售额", "orders": "number of orders"],
        "客单价 AOV = net sales / orders.",
        "SELECT aov(CAST(1000.00 AS DECIMAL(18,2)), 3)  -- 333.3333"),
    kpi!("cost_per_order", COST_NUM, Output::PerUnit,
        ["operating_cost": "total operating cost (sign ignored)", "valid_orders": "valid orders"],
        "单客成本 cost per order = |total operating cost| / valid orders.",
        "SELECT cost_per_order(CAST(-800.00 AS DECIMAL(18,2)), 1000)  -- 0.8000"),
    kpi!("inventory_turnover", COST_NUM, Output::Ratio,
        ["cogs": "cost of goods sold over the period (sign ignored)", "avg_inventory": "average inventory value"],
        "库存周转率 inventory turnover = |COGS| / average inventory value.",
        "SELECT inventory_turnover(-12000.00, 3000.00)  -- 4"),
    kpi!("inventory_days", Formula::InventoryDays, Output::Ratio,
        ["days": "days in the period", "avg_inventory": "average inventory value", "cogs": "COGS over the period (sign ignored)"],
        "周转天数 inventory days = days × average inventory / |COGS|.",
        "SELECT inventory_days(360, 3000.00, -12000.00)  -- 90"),
    kpi!("cac", COST_NUM, Output::PerUnit,
        ["acquisition_spend": "acquisition spend (sign ignored)", "new_buyers": "new buyers"],
        "CAC customer acquisition cost = |acquisition spend| / new buyers.",
        "SELECT cac(CAST(2000.00 AS DECIMAL(18,2)), 80)  -- 25.0000"),
    kpi!("hourly_value_added", Formula::ValueAdded, Output::PerUnit,
        ["net_sales": "净销售额", "costs_except_labour": "all costs except labour (sign ignored)", "hours": "hours worked"],
        "单位时间附加值 hourly value added = (net sales − |all costs except labour|) / hours.",
        "SELECT hourly_value_added(CAST(10000.00 AS DECIMAL(18,2)), CAST(-6000.00 AS DECIMAL(18,2)), 160)  -- 25.0000"),
    kpi!("take_rate", COST_NUM, Output::Ratio,
        ["platform_fees": "platform fees (sign ignored)", "net_sales": "净销售额"],
        "平台佣金率 take rate = |platform fees| / net sales.",
        "SELECT take_rate(-55.00, 1000.00)  -- 0.055"),
];

/// One KPI as a DataFusion scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct KpiUdf {
    spec: Spec,
    formula: Formula,
    output: Output,
    signature: Signature,
    doc: Documentation,
}

impl KpiUdf {
    pub(crate) fn new(spec: Spec, formula: Formula, output: Output) -> Self {
        Self {
            spec,
            formula,
            output,
            signature: Signature::user_defined(Volatility::Immutable),
            doc: spec.documentation(),
        }
    }

    /// Whether the computation runs on exact decimals for these (coerced) argument types.
    fn exact(&self, arg_types: &[DataType]) -> bool {
        self.output == Output::PerUnit
            && arg_types
                .iter()
                .all(|t| matches!(t, DataType::Decimal128(_, _)))
    }
}

/// Every KPI function, ready to register.
pub(crate) fn udfs() -> Vec<ScalarUDF> {
    KPIS.iter()
        .map(|(spec, formula, output)| {
            ScalarUDF::new_from_impl(KpiUdf::new(*spec, *formula, *output))
        })
        .collect()
}

impl ScalarUDFImpl for KpiUdf {
    fn name(&self) -> &str {
        self.spec.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> datafusion::error::Result<Vec<DataType>> {
        let kinds = self.spec.classify_all(arg_types)?;
        if self.output == Output::Ratio || kinds.contains(&Numeric::Float) {
            // The DOUBLE kernel reads integers, decimals and floats natively, so no argument is
            // cast to DOUBLE first (a cast is a full pass and an array per argument).
            return Ok(arg_types.iter().zip(&kinds).map(native_type).collect());
        }
        let scale = |k: &Numeric| match k {
            Numeric::Decimal(s) => *s,
            _ => 0,
        };
        let mut types: Vec<DataType> = kinds.iter().map(|k| decimal(scale(k))).collect();
        if self.formula == Formula::ValueAdded {
            // net_sales − costs: one common scale.
            let s = scale(&kinds[0]).max(scale(&kinds[1]));
            types[0] = decimal(s);
            types[1] = decimal(s);
        }
        Ok(types)
    }

    fn return_type(&self, arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(if self.exact(arg_types) {
            decimal(PER_UNIT_SCALE)
        } else {
            DataType::Float64
        })
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        self.spec.arity(args.args.len())?;
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let types: Vec<DataType> = arrays.iter().map(|a| a.data_type().clone()).collect();
        let out = if self.exact(&types) {
            self.eval_decimal(&arrays)?
        } else {
            self.eval_f64(&arrays)?
        };
        Ok(if all_scalar && out.len() == 1 {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
}

impl KpiUdf {
    fn eval_f64(&self, arrays: &[ArrayRef]) -> Result<ArrayRef> {
        let values: Vec<f64> = match (self.formula, arrays) {
            (Formula::Div { abs_num, abs_den }, [a, b]) => {
                let (a, b) = (Floats::readable(a)?, Floats::readable(b)?);
                let name = self.spec.name;
                quotients(
                    &Floats::of(name, &a)?,
                    &Floats::of(name, &b)?,
                    abs_num,
                    abs_den,
                )
            }
            (formula, _) => self.eval_f64_cast(formula, arrays)?,
        };
        // A zero denominator (and only that, for finite inputs) makes the quotient ±inf or NaN.
        let finite = BooleanBuffer::collect_bool(values.len(), |i| values[i].is_finite());
        let nulls = arrays
            .iter()
            .fold(NullBuffer::new(finite), |acc, a| match a.logical_nulls() {
                Some(n) => NullBuffer::new(acc.inner() & n.inner()),
                None => acc,
            });
        Ok(Arc::new(Float64Array::new(
            ScalarBuffer::from(values),
            Some(nulls),
        )))
    }

    /// The formulas of three arguments (and break-even ROAS): rarer, read through a cast.
    fn eval_f64_cast(&self, formula: Formula, arrays: &[ArrayRef]) -> Result<Vec<f64>> {
        let cols = arrays
            .iter()
            .map(|a| cast(a, &DataType::Float64))
            .collect::<Result<Vec<_>, _>>()?;
        let v: Vec<&[f64]> = cols
            .iter()
            .map(|c| c.as_primitive::<Float64Type>().values().as_ref())
            .collect();
        Ok(match (formula, v.as_slice()) {
            (Formula::BreakEven, [cm2, sales]) => cm2
                .iter()
                .zip(*sales)
                .map(|(c, s)| if *s == 0.0 { f64::NAN } else { s / c })
                .collect(),
            (Formula::InventoryDays, [days, inv, cogs]) => days
                .iter()
                .zip(*inv)
                .zip(*cogs)
                .map(|((d, i), c)| d * i / c.abs())
                .collect(),
            (Formula::ValueAdded, [sales, costs, hours]) => sales
                .iter()
                .zip(*costs)
                .zip(*hours)
                .map(|((s, c), h)| (s - c.abs()) / h)
                .collect(),
            _ => return Err(self.arity_error(arrays.len())),
        })
    }

    fn eval_decimal(&self, arrays: &[ArrayRef]) -> Result<ArrayRef> {
        let name = self.spec.name;
        let d: Vec<&Decimal128Array> = arrays
            .iter()
            .map(|a| a.as_primitive::<Decimal128Type>())
            .collect();
        let scales: Vec<i8> = arrays.iter().map(|a| scale_of(a.data_type())).collect();
        let v: Vec<&[i128]> = d.iter().map(|a| a.values().as_ref()).collect();
        let inputs_valid = d.iter().fold(None, |acc: Option<NullBuffer>, a| {
            NullBuffer::union(acc.as_ref(), a.nulls())
        });
        let len = arrays.first().map_or(0, |a| a.len());
        let is_valid = |i: usize| inputs_valid.as_ref().is_none_or(|n| n.is_valid(i));
        let overflow = |what| UdfError::Overflow {
            function: name,
            what,
        };
        // (numerator, its scale, denominator, its scale) of row i.
        let parts = |i: usize| -> Result<(i128, i8, i128, i8)> {
            Ok(match (self.formula, v.as_slice(), scales.as_slice()) {
                (Formula::Div { abs_num, abs_den }, [a, b], [sa, sb]) => {
                    let m = |x: i128, abs: bool| if abs { x.saturating_abs() } else { x };
                    (m(a[i], abs_num), *sa, m(b[i], abs_den), *sb)
                }
                (Formula::ValueAdded, [s, c, h], [ss, _, sh]) => {
                    let num = s[i]
                        .checked_sub(c[i].saturating_abs())
                        .filter(|x| x.unsigned_abs() <= MAX_DECIMAL128.unsigned_abs());
                    (num.ok_or(overflow("net_sales − costs"))?, *ss, h[i], *sh)
                }
                _ => return Err(self.arity_error(arrays.len())),
            })
        };
        let mut values = vec![0i128; len];
        let mut valid = vec![false; len];
        for i in 0..len {
            if !is_valid(i) {
                continue;
            }
            let (n, sn, den, sd) = parts(i)?;
            if den == 0 {
                continue;
            }
            let e = i32::from(PER_UNIT_SCALE) + i32::from(sd) - i32::from(sn);
            values[i] = div_round(n, den, e).ok_or(overflow("result exceeds DECIMAL(38,4)"))?;
            valid[i] = true;
        }
        let nulls = NullBuffer::from(valid);
        let out = Decimal128Array::new(ScalarBuffer::from(values), Some(nulls))
            .with_precision_and_scale(38, PER_UNIT_SCALE)?;
        Ok(Arc::new(out))
    }

    fn arity_error(&self, got: usize) -> UdfError {
        UdfError::ArgCount {
            function: self.spec.name,
            expected: self.spec.args.len(),
            got,
        }
    }
}

/// The type an argument of a DOUBLE-valued KPI is read as: its own when the kernel reads it
/// natively (`BIGINT`, `DECIMAL(p,s)`, `DOUBLE`), otherwise the nearest such type.
fn native_type((data_type, kind): (&DataType, &Numeric)) -> DataType {
    match (data_type, kind) {
        (DataType::Decimal128(_, s), _) if *s >= 0 => data_type.clone(),
        // Not every UInt64 fits an Int64.
        (DataType::UInt64, _) => DataType::Float64,
        (_, Numeric::Decimal(s)) => decimal(*s),
        (_, Numeric::Integer) => DataType::Int64,
        (_, Numeric::Float | Numeric::Null) => DataType::Float64,
    }
}

/// An argument of the DOUBLE kernel, read in place: raw values and the power of ten that
/// scales them (a decimal's unscaled integers), so that no cast array is made.
enum Floats<'a> {
    F64(&'a [f64]),
    I64(&'a [i64]),
    Dec(&'a [i128], i8),
}

impl<'a> Floats<'a> {
    /// `array` itself when the kernel reads its type in place, else cast to DOUBLE (a type
    /// `coerce_types` did not produce, say when the function is called outside SQL).
    fn readable(array: &ArrayRef) -> Result<ArrayRef> {
        Ok(match array.data_type() {
            DataType::Float64 | DataType::Int64 => Arc::clone(array),
            DataType::Decimal128(_, s) if *s >= 0 => Arc::clone(array),
            _ => cast(array, &DataType::Float64)?,
        })
    }

    fn of(function: &'static str, array: &'a ArrayRef) -> Result<Self> {
        Ok(match array.data_type() {
            DataType::Float64 => Floats::F64(array.as_primitive::<Float64Type>().values()),
            DataType::Int64 => Floats::I64(array.as_primitive::<Int64Type>().values()),
            DataType::Decimal128(_, s) => {
                Floats::Dec(array.as_primitive::<Decimal128Type>().values(), *s)
            }
            other => {
                return Err(UdfError::InvalidInput {
                    function,
                    message: format!("cannot read {other} as a number"),
                });
            }
        })
    }

    fn scale(&self) -> i32 {
        match self {
            Floats::Dec(_, s) => i32::from(*s),
            _ => 0,
        }
    }
}

/// A raw value as a DOUBLE (before its scale is applied).
trait AsF64: Copy {
    fn as_f64(self) -> f64;
}

impl AsF64 for f64 {
    fn as_f64(self) -> f64 {
        self
    }
}

impl AsF64 for i64 {
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl AsF64 for i128 {
    fn as_f64(self) -> f64 {
        self as f64
    }
}

/// `num / den` row by row, `abs` of either part on request.
///
/// For decimals the quotient of the unscaled integers is scaled once by 10^(den scale − num
/// scale): at equal scales (the common case, amounts at DECIMAL(38,2)) that is one correctly
/// rounded division, closer to the exact ratio than dividing two rounded DOUBLEs.
fn quotients(num: &Floats<'_>, den: &Floats<'_>, abs_num: bool, abs_den: bool) -> Vec<f64> {
    let factor = 10f64.powi(den.scale() - num.scale());
    fn typed<N: AsF64, D: AsF64>(n: &[N], d: &[D], an: bool, ad: bool, factor: f64) -> Vec<f64> {
        // One monomorphic loop per sign treatment, so that each vectorizes.
        fn run<N: AsF64, D: AsF64>(n: &[N], d: &[D], f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
            n.iter()
                .zip(d)
                .map(|(x, y)| f(x.as_f64(), y.as_f64()))
                .collect()
        }
        match (an, ad, factor == 1.0) {
            (false, false, true) => run(n, d, |x, y| x / y),
            (false, true, true) => run(n, d, |x, y| x / y.abs()),
            (true, false, true) => run(n, d, |x, y| x.abs() / y),
            (true, true, true) => run(n, d, |x, y| x.abs() / y.abs()),
            (false, false, false) => run(n, d, |x, y| x / y * factor),
            (false, true, false) => run(n, d, |x, y| x / y.abs() * factor),
            (true, false, false) => run(n, d, |x, y| x.abs() / y * factor),
            (true, true, false) => run(n, d, |x, y| x.abs() / y.abs() * factor),
        }
    }
    use Floats::*;
    match (num, den) {
        (F64(n), F64(d)) => typed(n, d, abs_num, abs_den, factor),
        (F64(n), I64(d)) => typed(n, d, abs_num, abs_den, factor),
        (F64(n), Dec(d, _)) => typed(n, d, abs_num, abs_den, factor),
        (I64(n), F64(d)) => typed(n, d, abs_num, abs_den, factor),
        (I64(n), I64(d)) => typed(n, d, abs_num, abs_den, factor),
        (I64(n), Dec(d, _)) => typed(n, d, abs_num, abs_den, factor),
        (Dec(n, _), F64(d)) => typed(n, d, abs_num, abs_den, factor),
        (Dec(n, _), I64(d)) => typed(n, d, abs_num, abs_den, factor),
        (Dec(n, _), Dec(d, _)) => typed(n, d, abs_num, abs_den, factor),
    }
}
