//! Cron schedules for cube refreshes (`schedule = "0 6 * * *"` in a `[[cubes]]` entry).
//!
//! Five fields — minute, hour, day of month, month, day of week (0 or 7 = Sunday) — each `*`,
//! a number, a range `a-b`, a step `*/n` or `a-b/n`, or a list of those. As in cron, when both
//! day of month and day of week are restricted, a day matching either is due. Times are
//! Asia/Shanghai (UTC+8, no daylight saving), the time zone the platforms' exports are in.

use chrono::{DateTime, Datelike, FixedOffset, Timelike};

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Schedule {
    text: String,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    any_day: bool,
    any_weekday: bool,
}

/// China Standard Time.
fn shanghai() -> Option<FixedOffset> {
    FixedOffset::east_opt(8 * 3600)
}

fn field(text: &str, name: &str, lo: u32, hi: u32) -> Result<u64, String> {
    let mut mask = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 =
                    s.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        format!("{name}: '{s}' is not a step (a positive number)")
                    })?;
                (r, step)
            }
            None => (part, 1),
        };
        let number = |s: &str| -> Result<u32, String> {
            s.parse::<u32>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| format!("{name}: '{s}' is not a number from {lo} to {hi}"))
        };
        let (a, b) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None if step > 1 => (number(r)?, hi),
                None => {
                    let n = number(r)?;
                    (n, n)
                }
            },
        };
        if a > b {
            return Err(format!("{name}: the range {a}-{b} is empty"));
        }
        let mut v = a;
        while v <= b {
            mask |= 1 << v;
            v += step;
        }
    }
    Ok(mask)
}

impl Schedule {
    /// Parses a five-field cron expression.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields.as_slice() else {
            return Err(format!(
                "'{text}' is not a cron schedule: five fields (minute hour day-of-month month day-of-week)"
            ));
        };
        let mut weekdays = field(weekday, "day of week", 0, 7)?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Schedule {
            text: text.to_string(),
            minutes: field(minute, "minute", 0, 59)?,
            hours: field(hour, "hour", 0, 23)?,
            days: field(day, "day of month", 1, 31)?,
            months: field(month, "month", 1, 12)?,
            weekdays,
            any_day: *day == "*",
            any_weekday: *weekday == "*",
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the minute starting at Unix second `secs` is due.
    pub fn matches(&self, secs: i64) -> bool {
        let Some(t) = shanghai()
            .and_then(|tz| DateTime::from_timestamp(secs, 0).map(|t| t.with_timezone(&tz)))
        else {
            return false;
        };
        let bit = |mask: u64, v: u32| mask & (1 << v) != 0;
        let day = bit(self.days, t.day());
        let weekday = bit(self.weekdays, t.weekday().num_days_from_sunday());
        let day_ok = match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (false, true) => day,
            (true, false) => weekday,
            (false, false) => day || weekday,
        };
        bit(self.minutes, t.minute())
            && bit(self.hours, t.hour())
            && bit(self.months, t.month())
            && day_ok
    }

    /// Whether a due minute starts in `(after_ms, until_ms]` (Unix milliseconds).
    pub fn due_between(&self, after_ms: u64, until_ms: u64) -> bool {
        let first = after_ms / 60_000 + 1;
        let last = until_ms / 60_000;
        // A long gap (the server was down) checks at most a week of minutes.
        let first = first.max(last.saturating_sub(7 * 24 * 60));
        (first..=last).any(|m| i64::try_from(m * 60).is_ok_and(|s| self.matches(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix seconds of a Shanghai wall-clock time.
    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        chrono::NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|d| d.and_hms_opt(h, mi, 0))
            .map(|t| t.and_utc().timestamp() - 8 * 3600)
            .expect("a time")
    }

    #[test]
    fn daily_weekly_and_stepped_schedules() {
        let daily = Schedule::parse("0 6 * * *").expect("parses");
        assert!(daily.matches(at(2025, 11, 11, 6, 0)));
        assert!(!daily.matches(at(2025, 11, 11, 6, 1)));
        assert!(!daily.matches(at(2025, 11, 11, 22, 0)));
        // 2025-11-10 is a Monday.
        let weekly = Schedule::parse("30 8 * * 1").expect("parses");
        assert!(weekly.matches(at(2025, 11, 10, 8, 30)));
        assert!(!weekly.matches(at(2025, 11, 11, 8, 30)));
        let sunday = Schedule::parse("0 0 * * 7").expect("parses");
        assert!(sunday.matches(at(2025, 11, 16, 0, 0)));
        let quarter_hours = Schedule::parse("*/15 9-18 * * 1-5").expect("parses");
        assert!(quarter_hours.matches(at(2025, 11, 11, 9, 45)));
        assert!(!quarter_hours.matches(at(2025, 11, 11, 9, 50)));
        assert!(!quarter_hours.matches(at(2025, 11, 15, 9, 45)));
        // Day of month or day of week when both are restricted (cron's rule).
        let either = Schedule::parse("0 0 1 * 1").expect("parses");
        assert!(either.matches(at(2025, 11, 1, 0, 0)));
        assert!(either.matches(at(2025, 11, 10, 0, 0)));
        assert!(!either.matches(at(2025, 11, 11, 0, 0)));
        let ms = |s: i64| u64::try_from(s * 1000).expect("positive");
        let six = at(2025, 11, 11, 6, 0);
        assert!(daily.due_between(ms(six - 60), ms(six)));
        assert!(!daily.due_between(ms(six), ms(six + 3000)));
        assert!(daily.due_between(ms(six - 3600), ms(six + 3600)));
    }

    #[test]
    fn bad_schedules_say_why() {
        for (text, why) in [
            ("0 6 * *", "five fields"),
            ("60 6 * * *", "minute: '60'"),
            ("0 24 * * *", "hour: '24'"),
            ("0 6 0 * *", "day of month: '0'"),
            ("0 6 * 13 *", "month: '13'"),
            ("0 6 * * 8", "day of week: '8'"),
            ("*/0 6 * * *", "not a step"),
            ("0 9-6 * * *", "empty"),
        ] {
            let e = Schedule::parse(text).expect_err(text);
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
