//! Exact allocation (`spec/pnl.md` § Allocation of shared costs): a pool split over targets by a
//! driver, in the pool's smallest unit (cents for `DECIMAL(_,2)`), summing to the pool exactly.
//!
//! ```text
//!  allocate_exact(pool, driver) OVER (PARTITION BY pool_id ORDER BY target)
//!
//!  partition (sorted by ORDER BY)         |pool| = 100.00 = 10000 cents, D = Σ driver = 3
//!  target  driver   exact cents   floor   remainder   +leftover (1 cent, largest remainder,
//!  a       1        3333.33…      3333    1/3         +1  ◀─ ties: first in ORDER BY)
//!  b       1        3333.33…      3333    1/3
//!  c       1        3333.33…      3333    1/3
//!                                 ─────
//!                                  9999   leftover = 10000 − 9999 = 1   →  33.34 33.33 33.33
//! ```
//!
//! Rules (the contract):
//! - shares are `floor(|pool| × driver / Σ driver)` in cents, then the leftover cents go one each
//!   to the largest fractional remainders, ties broken by position in the window's ORDER BY
//!   (which should therefore be the target key); the result does not depend on input order;
//! - a zero driver gets 0 (it never receives a leftover cent); a NULL driver takes no part and
//!   gets NULL; a partition whose driver total is 0 gets NULL shares (the pool stays with its
//!   owner), never a division by zero;
//! - a negative pool (refunds) is allocated as the negation of its magnitude:
//!   `allocate_exact(-p) = -allocate_exact(p)` row by row, so shares round towards zero and a
//!   reversal cancels the original allocation to the cent;
//! - `pool` must be the same on every row of a partition (NULLs ignored; all NULL → NULL shares);
//! - negative drivers are allowed (the shares still sum to the pool); a driver total of the other
//!   sign is normalised first.
//!
//! `allocate_exact_pct(pool, percent)` takes fixed percentages (0–100, summing to at most 100):
//! it allocates `round(|pool| × Σ percent / 100)` the same way, so with percentages summing to
//! 100 the shares sum to the pool; a smaller sum leaves the rest unallocated.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array};
use datafusion::arrow::buffer::{NullBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, DecimalType, Field, FieldRef, i256};
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{
    Documentation, PartitionEvaluator, Signature, Volatility, WindowUDF, WindowUDFImpl,
};

use crate::error::{Result, UdfError};
use crate::num::mul_div_round;
use crate::types::{Kind, Numeric, Spec, decimal, scale_of};

/// The smallest scale of a pool: cents.
const MIN_POOL_SCALE: i8 = 2;
/// The scale a float driver is converted to before the exact computation.
const FLOAT_DRIVER_SCALE: i8 = 6;

/// Splits `pool` (unscaled, e.g. cents) over `drivers` by the largest-remainder rule.
///
/// `drivers[i] == None` takes no part (its share is `None`). Returns `Ok(None)` when the driver
/// total is zero (no shares), otherwise one share per driver that sum to `pool` exactly. Ties
/// between equal remainders go to the lower index, so pass the drivers in target-key order.
///
/// # Errors
/// [`UdfError::Overflow`] when the driver total does not fit in 128 bits.
pub fn allocate_exact(pool: i128, drivers: &[Option<i128>]) -> Result<Option<Vec<Option<i128>>>> {
    let values: Vec<i128> = drivers.iter().map(|d| d.unwrap_or(0)).collect();
    let valid: Vec<bool> = drivers.iter().map(Option::is_some).collect();
    Ok(
        shares(pool, &values, |i| valid[i], "allocate_exact")?.map(|s| {
            s.into_iter()
                .zip(&valid)
                .map(|(v, ok)| ok.then_some(v))
                .collect()
        }),
    )
}

/// The kernel: shares of `pool` over the drivers with `valid(i)`; invalid rows get 0 here (the
/// caller masks them). `Ok(None)` when the valid drivers sum to zero.
pub(crate) fn shares(
    pool: i128,
    drivers: &[i128],
    valid: impl Fn(usize) -> bool,
    function: &'static str,
) -> Result<Option<Vec<i128>>> {
    let overflow = |what| UdfError::Overflow { function, what };
    let mut total: i128 = 0;
    for (i, d) in drivers.iter().enumerate() {
        if valid(i) {
            total = total.checked_add(*d).ok_or(overflow("driver total"))?;
        }
    }
    if total == 0 {
        return Ok(None);
    }
    let flip = total < 0;
    let den = total.unsigned_abs();
    let den_i = i128::try_from(den).map_err(|_| overflow("driver total"))?;
    let magnitude = pool.unsigned_abs();
    let mag_i = i128::try_from(magnitude).map_err(|_| overflow("pool"))?;
    let mut out = vec![0i128; drivers.len()];
    let mut rem = vec![0i128; drivers.len()];
    let mut allocated: i128 = 0;
    for (i, d) in drivers.iter().enumerate() {
        if !valid(i) || *d == 0 {
            continue;
        }
        let d = if flip {
            d.checked_neg().ok_or(overflow("driver"))?
        } else {
            *d
        };
        let (q, r) = match mag_i.checked_mul(d) {
            Some(p) => (p.div_euclid(den_i), p.rem_euclid(den_i)),
            None => {
                let p = i256::from_i128(mag_i).wrapping_mul(i256::from_i128(d));
                let dd = i256::from_i128(den_i);
                let mut q = p.checked_div(dd).ok_or(overflow("share"))?;
                let mut r = p.checked_rem(dd).ok_or(overflow("share"))?;
                if r < i256::ZERO {
                    q = q.wrapping_sub(i256::ONE);
                    r = r.wrapping_add(dd);
                }
                (
                    q.to_i128().ok_or(overflow("share"))?,
                    r.to_i128().ok_or(overflow("share"))?,
                )
            }
        };
        out[i] = q;
        rem[i] = r;
        allocated = allocated.checked_add(q).ok_or(overflow("shares"))?;
    }
    // 0 ≤ leftover < number of rows with a positive remainder (Σ fractional parts).
    let leftover = mag_i.checked_sub(allocated).ok_or(overflow("leftover"))?;
    let leftover = usize::try_from(leftover).map_err(|_| overflow("leftover"))?;
    if leftover > 0 {
        let mut candidates: Vec<usize> = (0..drivers.len()).filter(|&i| rem[i] > 0).collect();
        if leftover > candidates.len() {
            return Err(overflow("leftover exceeds targets"));
        }
        // Largest remainder first, then first in ORDER BY: a total order, so the chosen set is
        // unique and a partial selection is enough.
        let key = |a: &usize, b: &usize| rem[*b].cmp(&rem[*a]).then(a.cmp(b));
        if leftover < candidates.len() {
            candidates.select_nth_unstable_by(leftover - 1, key);
        }
        for &i in &candidates[..leftover] {
            out[i] += 1;
        }
    }
    if pool < 0 {
        for v in &mut out {
            *v = -*v;
        }
    }
    Ok(Some(out))
}

/// Driver-based or fixed-percentage allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Mode {
    Driver,
    Percent,
}

pub(crate) const SPECS: [(Spec, Mode); 2] = [
    (
        Spec {
            name: "allocate_exact",
            kind: Kind::Window,
            args: &[
                (
                    "pool_amount",
                    "the amount to allocate, the same on every row of the partition (DECIMAL; a float is rounded to cents)",
                ),
                (
                    "driver",
                    "the target's driver (net sales, orders, units, kg, hours, headcount, area, 1 for equal …)",
                ),
            ],
            returns: "DECIMAL(38, s) with s = max(scale of pool_amount, 2): shares summing to the pool exactly; NULL for a NULL driver and for every row of a partition whose driver total is 0",
            description: "Exact allocation of a pool by a driver: cents rounded down, leftover cents to the largest remainders, ties by the ORDER BY; a negative pool is the mirror image of the positive one.",
            example: "SELECT target, allocate_exact(pool, driver) OVER (PARTITION BY pool_id ORDER BY target) FROM (VALUES (1, 100.00, 'a', 1), (1, 100.00, 'b', 1), (1, 100.00, 'c', 1)) AS t(pool_id, pool, target, driver)  -- 33.34, 33.33, 33.33",
        },
        Mode::Driver,
    ),
    (
        Spec {
            name: "allocate_exact_pct",
            kind: Kind::Window,
            args: &[
                (
                    "pool_amount",
                    "the amount to allocate, the same on every row of the partition",
                ),
                (
                    "percent",
                    "the target's fixed percentage, 0 to 100; the partition's percentages sum to at most 100",
                ),
            ],
            returns: "DECIMAL(38, s) with s = max(scale of pool_amount, 2): shares summing to round(pool × Σ percent / 100), i.e. to the pool when the percentages sum to 100; NULL for a NULL percent",
            description: "Exact allocation of a pool by fixed percentages (largest remainder, ties by the ORDER BY); percentages summing to less than 100 leave the rest unallocated, more than 100 or a negative percentage is an error.",
            example: "SELECT unit, allocate_exact_pct(1000.00, pct) OVER (ORDER BY unit) FROM (VALUES ('ops', 30), ('sales', 70)) AS t(unit, pct)  -- 300.00, 700.00",
        },
        Mode::Percent,
    ),
];

/// `allocate_exact` / `allocate_exact_pct` as DataFusion window functions.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct AllocateUdwf {
    spec: Spec,
    mode: Mode,
    signature: Signature,
    doc: Documentation,
}

/// Both allocation window functions.
pub(crate) fn udwfs() -> Vec<WindowUDF> {
    SPECS
        .iter()
        .map(|(spec, mode)| {
            WindowUDF::new_from_impl(AllocateUdwf {
                spec: *spec,
                mode: *mode,
                signature: Signature::user_defined(Volatility::Immutable),
                doc: spec.documentation(),
            })
        })
        .collect()
}

impl WindowUDFImpl for AllocateUdwf {
    fn name(&self) -> &str {
        self.spec.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> datafusion::error::Result<Vec<DataType>> {
        let kinds = self.spec.classify_all(arg_types)?;
        let pool = match kinds[0] {
            Numeric::Decimal(s) => decimal(s.max(MIN_POOL_SCALE)),
            _ => decimal(MIN_POOL_SCALE),
        };
        let driver = match kinds[1] {
            Numeric::Decimal(s) => decimal(s),
            Numeric::Float => decimal(FLOAT_DRIVER_SCALE),
            Numeric::Integer | Numeric::Null => decimal(0),
        };
        Ok(vec![pool, driver])
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> datafusion::error::Result<FieldRef> {
        let scale = field_args
            .input_fields()
            .first()
            .map_or(MIN_POOL_SCALE, |f| {
                scale_of(f.data_type()).max(MIN_POOL_SCALE)
            });
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
        Ok(Box::new(AllocateEvaluator {
            function: self.spec.name,
            mode: self.mode,
        }))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
}

#[derive(Debug)]
struct AllocateEvaluator {
    function: &'static str,
    mode: Mode,
}

impl PartitionEvaluator for AllocateEvaluator {
    fn evaluate_all(
        &mut self,
        values: &[ArrayRef],
        num_rows: usize,
    ) -> datafusion::error::Result<ArrayRef> {
        Ok(self.allocate(values, num_rows)?)
    }
}

impl AllocateEvaluator {
    fn invalid(&self, message: impl Into<String>) -> UdfError {
        UdfError::InvalidInput {
            function: self.function,
            message: message.into(),
        }
    }

    fn allocate(&self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let [pool, driver] = values else {
            return Err(UdfError::ArgCount {
                function: self.function,
                expected: 2,
                got: values.len(),
            });
        };
        let scale = scale_of(pool.data_type());
        let pool = pool
            .as_primitive_opt::<Decimal128Type>()
            .ok_or_else(|| self.invalid("pool_amount is not a decimal"))?;
        let driver = driver
            .as_primitive_opt::<Decimal128Type>()
            .ok_or_else(|| self.invalid("driver is not a decimal"))?;
        let null_result = || -> Result<ArrayRef> {
            Ok(Arc::new(
                Decimal128Array::new_null(num_rows).with_precision_and_scale(38, scale)?,
            ))
        };
        // The pool: one value per partition.
        let mut amount: Option<i128> = None;
        for v in pool.iter().flatten() {
            match amount {
                None => amount = Some(v),
                Some(a) if a != v => {
                    return Err(self.invalid(format!(
                        "pool_amount differs within a partition ({} and {}): PARTITION BY the pool",
                        show(a, scale),
                        show(v, scale)
                    )));
                }
                Some(_) => {}
            }
        }
        let Some(mut amount) = amount else {
            return null_result();
        };
        let d = driver.values().as_ref();
        let valid = |i: usize| driver.is_valid(i);
        if self.mode == Mode::Percent {
            let pct_scale = u32::try_from(scale_of(driver.data_type())).unwrap_or(0);
            let hundred = 10i128
                .checked_pow(pct_scale)
                .and_then(|p| p.checked_mul(100))
                .ok_or(UdfError::Overflow {
                    function: self.function,
                    what: "percent scale",
                })?;
            let mut sum: i128 = 0;
            for (i, p) in d.iter().enumerate() {
                if !valid(i) {
                    continue;
                }
                if *p < 0 {
                    return Err(self.invalid("a percentage is negative"));
                }
                sum = sum.checked_add(*p).ok_or(UdfError::Overflow {
                    function: self.function,
                    what: "percent total",
                })?;
            }
            if sum > hundred {
                return Err(self.invalid(format!(
                    "the percentages of a partition sum to {}, more than 100",
                    show(sum, i8::try_from(pct_scale).unwrap_or(0))
                )));
            }
            if sum == 0 {
                let zeros = Decimal128Array::new(
                    ScalarBuffer::from(vec![0i128; num_rows]),
                    driver.nulls().cloned(),
                );
                return Ok(Arc::new(zeros.with_precision_and_scale(38, scale)?));
            }
            amount = mul_div_round(amount, sum, hundred).ok_or(UdfError::Overflow {
                function: self.function,
                what: "pool × percent",
            })?;
        }
        match shares(amount, d, valid, self.function)? {
            None => null_result(),
            Some(out) => {
                let nulls: Option<NullBuffer> = driver.nulls().cloned();
                let arr = Decimal128Array::new(ScalarBuffer::from(out), nulls)
                    .with_precision_and_scale(38, scale)?;
                Ok(Arc::new(arr))
            }
        }
    }
}

/// An unscaled decimal as text, for messages.
fn show(v: i128, scale: i8) -> String {
    Decimal128Type::format_decimal(v, 38, scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn alloc(pool: i128, drivers: &[i128]) -> Option<Vec<i128>> {
        let d: Vec<Option<i128>> = drivers.iter().map(|d| Some(*d)).collect();
        allocate_exact(pool, &d)
            .ok()
            .flatten()
            .map(|v| v.into_iter().map(|x| x.unwrap_or(i128::MIN)).collect())
    }

    #[test]
    fn three_ways() {
        assert_eq!(alloc(10_000, &[1, 1, 1]), Some(vec![3334, 3333, 3333]));
        assert_eq!(alloc(-10_000, &[1, 1, 1]), Some(vec![-3334, -3333, -3333]));
        assert_eq!(alloc(100, &[0, 0]), None);
        assert_eq!(alloc(100, &[]), None);
        assert_eq!(alloc(100, &[0, 3, 1]), Some(vec![0, 75, 25]));
        // 1 cent over 3 equal drivers: the first in ORDER BY.
        assert_eq!(alloc(1, &[5, 5, 5]), Some(vec![1, 0, 0]));
        // the largest remainder wins over the position.
        assert_eq!(alloc(1, &[1, 2]), Some(vec![0, 1]));
    }

    #[test]
    fn nulls_take_no_part() {
        let out = allocate_exact(100, &[Some(1), None, Some(1)])
            .ok()
            .flatten();
        assert_eq!(out, Some(vec![Some(50), None, Some(50)]));
    }

    #[test]
    fn edge_of_precision_uses_wide_products() {
        let big = crate::num::MAX_DECIMAL128;
        let d = 10i128.pow(37) - 1;
        let out = alloc(big, &[d, d, 1]).unwrap_or_default();
        assert_eq!(out.len(), 3);
        assert_eq!(out.iter().sum::<i128>(), big);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn sums_to_the_pool(pool in -10_000_000_000i128..10_000_000_000, drivers in proptest::collection::vec(-1_000i128..100_000, 0..40)) {
            let total: i128 = drivers.iter().sum();
            match alloc(pool, &drivers) {
                None => prop_assert_eq!(total, 0),
                Some(s) => {
                    prop_assert_eq!(s.iter().sum::<i128>(), pool);
                    for (share, d) in s.iter().zip(&drivers) {
                        if *d == 0 { prop_assert_eq!(*share, 0); }
                        // Within one cent of the exact share.
                        let exact = pool * d;
                        prop_assert!((share * total - exact).abs() < total.abs());
                    }
                    // Mirror image for the negative pool.
                    let neg = alloc(-pool, &drivers).unwrap_or_default();
                    prop_assert_eq!(neg, s.iter().map(|x| -x).collect::<Vec<_>>());
                }
            }
        }

        #[test]
        fn independent_of_input_order(pool in -1_000_000i128..1_000_000, rows in proptest::collection::vec((0u32..1000, 0i128..50), 1..30), seed in any::<u64>()) {
            // Unique target keys, as a window ORDER BY target gives them.
            let mut rows = rows;
            rows.sort_by_key(|r| r.0);
            rows.dedup_by_key(|r| r.0);
            let by_key = |rows: &[(u32, i128)]| {
                let mut sorted = rows.to_vec();
                sorted.sort_by_key(|r| r.0);
                let drivers: Vec<i128> = sorted.iter().map(|r| r.1).collect();
                alloc(pool, &drivers).map(|s| sorted.iter().map(|r| r.0).zip(s).collect::<Vec<_>>())
            };
            let expected = by_key(&rows);
            // Shuffle deterministically from the seed and allocate again.
            let mut shuffled = rows.clone();
            let mut x = seed | 1;
            for i in (1..shuffled.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                let j = usize::try_from(x % (i as u64 + 1)).unwrap_or(0);
                shuffled.swap(i, j);
            }
            prop_assert_eq!(by_key(&shuffled), expected);
        }
    }
}
