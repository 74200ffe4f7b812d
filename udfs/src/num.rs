//! Exact integer arithmetic on the unscaled values of `DECIMAL(38, s)`.
//!
//! Every helper is checked: `None` means the result does not fit (the caller turns it into
//! [`UdfError::Overflow`](crate::error::UdfError::Overflow)), never a wrapped value or a panic.

use datafusion::arrow::datatypes::i256;

/// The largest unscaled magnitude of a `DECIMAL(38, s)`: 10^38 − 1.
pub(crate) const MAX_DECIMAL128: i128 = 99_999_999_999_999_999_999_999_999_999_999_999_999;

/// 10^n, if it fits in a `u128`.
pub(crate) fn pow10(n: u32) -> Option<u128> {
    10u128.checked_pow(n)
}

/// `round(a × 10^e / b)`, rounded half away from zero; `None` on overflow or `b == 0`.
///
/// `e` may be negative (`a / (b × 10^-e)`). Uses one `u128` multiplication when it fits and
/// falls back to long division digit by digit, so `a` may use all 38 digits.
pub(crate) fn div_round(a: i128, b: i128, e: i32) -> Option<i128> {
    if b == 0 {
        return None;
    }
    let negative = (a < 0) != (b < 0);
    let ua = a.unsigned_abs();
    let mut ub = b.unsigned_abs();
    let (mut q, r) = if e >= 0 {
        match pow10(e.unsigned_abs()).and_then(|p| ua.checked_mul(p)) {
            Some(p) => (p / ub, p % ub),
            None => {
                let (mut q, mut r) = (ua / ub, ua % ub);
                for _ in 0..e {
                    let r10 = r.checked_mul(10)?;
                    q = q.checked_mul(10)?.checked_add(r10 / ub)?;
                    r = r10 % ub;
                }
                (q, r)
            }
        }
    } else {
        match pow10(e.unsigned_abs()).and_then(|p| ub.checked_mul(p)) {
            Some(d) => {
                ub = d;
                (ua / d, ua % d)
            }
            // |b| × 10^-e > u128::MAX ≥ 2|a|: the quotient rounds to zero.
            None => return Some(0),
        }
    };
    if r >= ub - r {
        q = q.checked_add(1)?;
    }
    let q = i128::try_from(q).ok()?;
    if q > MAX_DECIMAL128 {
        return None;
    }
    Some(if negative { -q } else { q })
}

/// `round(a × b / c)`, half away from zero, through 256-bit intermediates; `None` on overflow
/// of the result or `c == 0`.
pub(crate) fn mul_div_round(a: i128, b: i128, c: i128) -> Option<i128> {
    if c == 0 {
        return None;
    }
    let negative = (a < 0) != ((b < 0) != (c < 0));
    let p = i256::from_i128(a)
        .checked_mul(i256::from_i128(b))?
        .wrapping_abs();
    let c = i256::from_i128(c).wrapping_abs();
    let mut q = p.checked_div(c)?;
    let r = p.checked_rem(c)?;
    if r >= c.wrapping_sub(r) {
        q = q.checked_add(i256::ONE)?;
    }
    let q = q.to_i128()?;
    if q > MAX_DECIMAL128 {
        return None;
    }
    Some(if negative { -q } else { q })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn div_round_rounds_half_away_from_zero() {
        assert_eq!(div_round(100, 3, 0), Some(33));
        assert_eq!(div_round(200, 3, 0), Some(67));
        assert_eq!(div_round(-200, 3, 0), Some(-67));
        assert_eq!(div_round(5, 10, 0), Some(1));
        assert_eq!(div_round(-5, 10, 0), Some(-1));
        assert_eq!(div_round(1, 0, 0), None);
        // 10000.00 / 3 at scale 4: a has scale 2, b scale 0 → e = 2.
        assert_eq!(div_round(1_000_000, 3, 2), Some(33_333_333));
        assert_eq!(div_round(12345, 1, -2), Some(123));
        assert_eq!(div_round(1, i128::MAX, -10), Some(0));
    }

    #[test]
    fn div_round_long_division_at_38_digits() {
        // (10^38 − 1) / 10^36 at e = 2: fast path overflows, long division does it.
        let big = MAX_DECIMAL128;
        let d = 10i128.pow(36);
        assert_eq!(div_round(big, d, 2), Some(10_000));
        // A quotient that does not fit in 38 digits is an overflow, not a wrap.
        assert_eq!(div_round(big, 1, 4), None);
    }

    #[test]
    fn mul_div_round_uses_wide_intermediates() {
        let big = MAX_DECIMAL128;
        assert_eq!(mul_div_round(big, 3, 3), Some(big));
        assert_eq!(mul_div_round(-10, 1, 4), Some(-3));
        assert_eq!(mul_div_round(10, 1, 0), None);
        assert_eq!(mul_div_round(big, big, 1), None);
    }
}
