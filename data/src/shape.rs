//! The shape of the synthetic year: calendar and clock, sales peaks, the intraday profile,
//! popularity (Zipf) and the small random helpers everything else uses.
//!
//! Time is kept as `i64` seconds since 1970-01-01 00:00:00 of a *naive* clock: the exports hold
//! Asia/Shanghai local time without a zone, so no time zone arithmetic ever happens here. The
//! year simulated is 2025; the exports were pulled at [`CUTOFF`] (early January 2026), which is
//! what leaves late-December orders shipped-but-not-received and lets their refunds and
//! settlements spill into 2026 files.
//!
//! Randomness: every independent stream (the world, one shop, one file's delivery quirks) gets
//! its own `ChaCha8Rng` derived from the seed and a tag by [`rng_for`], so that output does not
//! depend on the order in which threads happen to run.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Weekday};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Days in the simulated year (2025 is not a leap year).
pub(crate) const DAYS: usize = 365;
pub(crate) const MINUTE: i64 = 60;
pub(crate) const HOUR: i64 = 3_600;
pub(crate) const DAY: i64 = 86_400;
/// 2025-01-01 00:00:00.
pub(crate) const START: i64 = 1_735_689_600;
/// 2026-01-04 00:00:00: the moment the exports were pulled. Nothing happens after it, so the
/// last days' orders are still paid or in transit, and January 2026 files hold the refunds and
/// settlements of December orders.
pub(crate) const CUTOFF: i64 = START + (DAYS as i64 + 3) * DAY;

/// The calendar date of a timestamp.
pub(crate) fn date_of(secs: i64) -> NaiveDate {
    datetime(secs).date()
}

pub(crate) fn datetime(secs: i64) -> NaiveDateTime {
    DateTime::from_timestamp(secs, 0)
        .map(|d| d.naive_utc())
        .unwrap_or_default()
}

/// Days since 1970-01-01 (Arrow `Date32`).
pub(crate) fn date32(secs: i64) -> i32 {
    i32::try_from(secs.div_euclid(DAY)).unwrap_or(0)
}

/// `YYYYMM` of a timestamp: the month file a row is delivered in.
pub(crate) fn month_of(secs: i64) -> u32 {
    month_of_date(date_of(secs))
}

/// The `YYYYMM` month key of a date.
pub(crate) fn month_of_date(d: NaiveDate) -> u32 {
    u32::try_from(d.year()).unwrap_or(0) * 100 + d.month()
}

/// `YYYY-MM` of a `YYYYMM` month key.
pub(crate) fn month_label(month: u32) -> String {
    format!("{:04}-{:02}", month / 100, month % 100)
}

/// The last day of a `YYYYMM` month as `YYYY-MM-DD`: the `dt=` partition of its files.
pub(crate) fn last_day(month: u32) -> String {
    let (y, m) = (i32::try_from(month / 100).unwrap_or(1970), month % 100);
    let (ny, nm) = if m >= 12 { (y + 1, 1) } else { (y, m + 1) };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// `YYYYMMDD` of a timestamp, used inside ids.
pub(crate) fn ymd(secs: i64) -> String {
    date_of(secs).format("%Y%m%d").to_string()
}

/// Midnight of day `d` of 2025 (0-based).
pub(crate) fn day_start(d: usize) -> i64 {
    START + i64::try_from(d).unwrap_or(0) * DAY
}

/// Relative sales volume of each day of 2025.
///
/// A weekly rhythm, a mild seasonality, the Spring Festival logistics stop (2025-01-29), and
/// the campaign peaks that dominate Chinese e-commerce: 3.8, 618 (June 1–18, the peak on the
/// 18th), 双11 (a first wave on November 1, the peak on the 11th) and 双12.
pub(crate) fn day_weights() -> Vec<f64> {
    (0..DAYS)
        .map(|d| {
            let date = date_of(day_start(d));
            let (m, dd) = (date.month(), date.day());
            let mut w = match date.weekday() {
                Weekday::Sat | Weekday::Sun => 1.12,
                Weekday::Mon => 0.95,
                _ => 1.0,
            };
            // Slower summer, busier autumn and winter.
            let phase = (f64::from(m) - 4.0) / 12.0 * std::f64::consts::TAU;
            w *= 1.0 - 0.08 * phase.sin();
            if (m == 1 && dd >= 22) || (m == 2 && dd <= 6) {
                w *= 0.45;
            }
            if m == 3 && dd == 8 {
                w *= 1.8;
            }
            if m == 6 && dd <= 18 {
                w *= match dd {
                    18 => 5.0,
                    1 => 2.2,
                    _ => 1.3 + 0.06 * f64::from(dd),
                };
            }
            if m == 6 && (19..=21).contains(&dd) {
                w *= 0.8;
            }
            if m == 11 && dd <= 11 {
                w *= match dd {
                    11 => 8.0,
                    1 => 3.0,
                    _ => 1.5 + 0.05 * f64::from(dd),
                };
            }
            if m == 11 && (12..=14).contains(&dd) {
                w *= 0.75;
            }
            if m == 12 && dd == 12 {
                w *= 2.2;
            }
            w
        })
        .collect()
}

/// A promotion day: sellers discount more, platforms subsidise more, parcels ship slower.
pub(crate) fn is_peak(d: usize) -> bool {
    let date = date_of(day_start(d));
    let (m, dd) = (date.month(), date.day());
    (m == 3 && dd == 8) || (m == 6 && dd <= 18) || (m == 11 && dd <= 11) || (m == 12 && dd == 12)
}

/// The final day of 618 or 双11: presale balances are paid right after midnight.
pub(crate) fn is_midnight_rush(d: usize) -> bool {
    let date = date_of(day_start(d));
    (date.month() == 6 && date.day() == 18) || (date.month() == 11 && date.day() == 11)
}

/// Orders per hour of the day (evening heavy, quiet at night).
const HOUR_WEIGHTS: [f64; 24] = [
    3.0, 1.5, 0.8, 0.5, 0.4, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0,
    6.0, 7.0, 8.0, 7.0, 5.0,
];

/// A second of the day at which an order is placed.
pub(crate) fn time_of_day(rng: &mut ChaCha8Rng, midnight_rush: bool) -> i64 {
    let mut w = HOUR_WEIGHTS;
    if midnight_rush {
        w[0] = 40.0;
    }
    let hour = i64::try_from(weighted(rng, &w)).unwrap_or(0);
    hour * HOUR + between(rng, 0, HOUR - 1)
}

/// A cumulative distribution to sample indices from: SKU popularity (Zipf) and the like.
#[derive(Debug, Clone)]
pub(crate) struct Popularity {
    cum: Vec<f64>,
}

impl Popularity {
    /// Zipf: the item of rank `k` (0-based) has weight `1 / (k + 1)^s`.
    pub(crate) fn zipf(n: usize, s: f64) -> Self {
        let mut acc = 0.0;
        let cum = (0..n)
            .map(|k| {
                acc += 1.0 / ((k + 1) as f64).powf(s);
                acc
            })
            .collect();
        Popularity { cum }
    }

    /// An index in `0..n`, or `None` for an empty distribution.
    pub(crate) fn sample(&self, rng: &mut ChaCha8Rng) -> Option<usize> {
        let total = *self.cum.last()?;
        let x = rng.random::<f64>() * total;
        let i = self.cum.partition_point(|&c| c <= x);
        Some(i.min(self.cum.len() - 1))
    }
}

/// `true` with probability `p` (any `p`: below 0 never, above 1 always).
pub(crate) fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    rng.random::<f64>() < p
}

/// A uniform integer in `lo..=hi` (`lo` when the range is empty).
pub(crate) fn between(rng: &mut ChaCha8Rng, lo: i64, hi: i64) -> i64 {
    if hi <= lo {
        lo
    } else {
        rng.random_range(lo..=hi)
    }
}

/// A uniform float in `lo..hi`.
pub(crate) fn uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// A duration drawn uniformly between `lo` and `hi` hours, in seconds.
pub(crate) fn hours(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> i64 {
    (uniform(rng, lo, hi) * HOUR as f64) as i64
}

/// An index drawn with the given (non-negative) weights; 0 for an empty or all-zero list.
pub(crate) fn weighted(rng: &mut ChaCha8Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    if weights.is_empty() || total <= 0.0 {
        return 0;
    }
    let mut x = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

/// An element of a slice, uniformly.
pub(crate) fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> Option<&'a T> {
    if items.is_empty() {
        None
    } else {
        items.get(rng.random_range(0..items.len()))
    }
}

/// SplitMix64: the finaliser used to derive independent seeds.
pub(crate) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a of a tag, to name random streams.
pub(crate) fn tag(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// The random stream of `(seed, parts…)`: independent of every other stream and of threads.
pub(crate) fn rng_for(seed: u64, parts: &[u64]) -> ChaCha8Rng {
    let h = parts
        .iter()
        .fold(mix(seed ^ 0x616d_6f65_6261), |h, p| mix(h ^ *p));
    ChaCha8Rng::seed_from_u64(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        assert_eq!(date_of(START).to_string(), "2025-01-01");
        assert_eq!(date_of(CUTOFF).to_string(), "2026-01-04");
        assert_eq!(month_of(START + 59 * DAY), 202503);
        assert_eq!(last_day(202502), "2025-02-28");
        assert_eq!(last_day(202512), "2025-12-31");
        let w = day_weights();
        let june18 = 31 + 28 + 31 + 30 + 31 + 17;
        let nov11 = 365 - 31 - 30 + 10;
        assert!(w[nov11] > w[june18] && w[june18] > 3.0 * w[june18 - 20]);
    }
}
