//! Money arithmetic in integer cents (分).
//!
//! Every amount the generator decides is an `i64` number of cents; floats appear only where a
//! platform really exports floats (JD) and are computed *from* cents at the very end. Rates are
//! basis points with half-up rounding, and order-level amounts are split over lines by the
//! exact largest-remainder rule of docs/unified.md, so that truth and catalog agree to the cent.

use std::cmp::Ordering;

/// `amount × bp / 10 000`, rounded half away from zero: a rate in basis points applied to cents.
pub(crate) fn bp(amount: i64, bp: i64) -> i64 {
    let p = i128::from(amount) * i128::from(bp);
    let q = (p.abs() + 5_000) / 10_000;
    i64::try_from(if p < 0 { -q } else { q }).unwrap_or(0)
}

/// Splits `amount` cents over lines with the given weights, exactly (docs/unified.md):
/// each line gets `floor(amount × w / W)`, the leftover cents go one each to the largest
/// remainders `amount × w mod W`, ties by line id ascending. If `W = 0` the whole amount goes
/// to the smallest line id. The shares always sum to `amount`.
pub(crate) fn split_exact(amount: i64, weights: &[i64], ids: &[&str]) -> Vec<i64> {
    let n = weights.len().min(ids.len());
    let mut shares = vec![0i64; n];
    if n == 0 || amount == 0 {
        return shares;
    }
    if amount < 0 {
        // Not needed by the generator, but a split must be sign-symmetric to stay exact.
        return split_exact(-amount, weights, ids)
            .into_iter()
            .map(|s| -s)
            .collect();
    }
    let total: i128 = weights[..n].iter().map(|&w| i128::from(w.max(0))).sum();
    if total == 0 {
        let smallest = (0..n).min_by(|&a, &b| ids[a].cmp(ids[b])).unwrap_or(0);
        shares[smallest] = amount;
        return shares;
    }
    let a = i128::from(amount);
    let mut remainders = Vec::with_capacity(n);
    let mut given: i128 = 0;
    for i in 0..n {
        let p = a * i128::from(weights[i].max(0));
        let share = p / total;
        shares[i] = i64::try_from(share).unwrap_or(0);
        given += share;
        remainders.push((p % total, i));
    }
    remainders.sort_by(|x, y| match y.0.cmp(&x.0) {
        Ordering::Equal => ids[x.1].cmp(ids[y.1]),
        other => other,
    });
    let leftover = usize::try_from(a - given).unwrap_or(0);
    for &(_, i) in remainders.iter().take(leftover) {
        shares[i] += 1;
    }
    shares
}

/// Cents as a two-decimal string, the way PDD exports money: `1250` → `"12.50"`.
pub(crate) fn yuan(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

/// A retail price: whole yuan minus ten fen (59.90, 129.90), never below 0.90.
pub(crate) fn retail(cents: i64) -> i64 {
    let yuan = (cents + 50) / 100;
    (yuan.max(1)) * 100 - 10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_exact_and_ordered() {
        let ids = ["a01", "a02", "a03"];
        let s = split_exact(1000, &[1, 1, 1], &ids);
        assert_eq!(s, vec![334, 333, 333]);
        let s = split_exact(7, &[0, 0, 0], &ids);
        assert_eq!(s, vec![7, 0, 0]);
        for amount in [1, 99, 1001, 123_457] {
            let w = [3_990, 12_000, 1, 77];
            let s = split_exact(amount, &w, &["x1", "x2", "x3", "x4"]);
            assert_eq!(s.iter().sum::<i64>(), amount);
        }
        // Largest remainder first: 10 × (1, 2) / 3 = 3.33, 6.67 → 3, 7.
        assert_eq!(split_exact(10, &[1, 2], &["b", "a"]), vec![3, 7]);
    }

    #[test]
    fn formatting_and_rates() {
        assert_eq!(yuan(1250), "12.50");
        assert_eq!(yuan(5), "0.05");
        assert_eq!(yuan(-120), "-1.20");
        assert_eq!(bp(10_000, 60), 60);
        assert_eq!(bp(999, 50), 5);
        assert_eq!(retail(5_949), 5_890);
    }
}
