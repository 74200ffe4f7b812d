//! Month-level rules over small aggregates: expense pools, internal settlement and step-down.
//!
//! ```text
//!  expenses ──► pool (by category) ──┬─ cost centre is a unit ──► that unit's own cost
//!                                    └─ shared (公共) ──► allocate_exact(pool, driver) over targets
//!                                                        driver total 0 ──► root + warning
//!  drivers (month × unit): net_sales, gross_sales, orders, units, weight_kg, hours, cogs,
//!                          orders/units shipped; headcount, area, equal, fixed % from the model
//!  settlements ──► receiver internal_cost −a, provider internal_revenue +a   (nets to 0)
//!  step_down (in order) ──► the service unit's month total moves to its targets; it is closed
//! ```
//!
//! These run in Rust because they are tiny (months × units) and sequential (a step-down sees
//! what the steps before it moved); every split goes through [`amoeba_udfs::allocate_exact`],
//! the same kernel the SQL spreads use.

use std::collections::{BTreeMap, BTreeSet};

use amoeba_catalog::model::{Basis, Driver, Model};
use amoeba_udfs::allocate_exact;
use serde::{Deserialize, Serialize};

use super::checks::{CheckRow, Status};
use crate::error::{EngineError, Result};

/// A month-level ledger row (no platform, shop, SKU or campaign), dated the month's last day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MonthRow {
    pub(crate) month: String,
    pub(crate) unit_id: String,
    pub(crate) account: String,
    pub(crate) cents: i128,
    pub(crate) source: String,
}

/// One expense row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expense {
    pub(crate) month: String,
    pub(crate) category: String,
    pub(crate) cost_center: String,
    pub(crate) cents: i128,
}

/// Driver values × 10^4 by (month, unit, driver name).
pub(crate) type Drivers = BTreeMap<(String, String, String), i128>;

/// The output of the month-level rules.
#[derive(Debug, Default)]
pub(crate) struct MonthRules {
    pub(crate) rows: Vec<MonthRow>,
    pub(crate) checks: Vec<CheckRow>,
}

impl MonthRules {
    fn push(&mut self, month: &str, unit: &str, account: &str, cents: i128, source: String) {
        if cents != 0 {
            self.rows.push(MonthRow {
                month: month.to_string(),
                unit_id: unit.to_string(),
                account: account.to_string(),
                cents,
                source,
            });
        }
    }
}

/// What the month rules of a version are computed from, kept with it: the driver values and
/// unit totals by month, and the expenses. The delta build adds what a change does to the
/// totals and drivers (`MonthInputs::add`) and applies the rules again: they are tiny.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonthInputs {
    pub(crate) drivers: Drivers,
    /// Unit totals (cents) by (month, unit) of everything before the rules.
    pub(crate) totals: BTreeMap<(String, String), i128>,
    pub(crate) expenses: Vec<Expense>,
}

impl MonthInputs {
    /// Every month with data: those of the totals and of the expenses.
    pub fn months(&self) -> BTreeSet<String> {
        let mut months: BTreeSet<String> = self.totals.keys().map(|(m, _)| m.clone()).collect();
        months.extend(self.expenses.iter().map(|e| e.month.clone()));
        months
    }

    /// Pools, settlements and step-down over these inputs.
    pub(crate) fn apply(&self, model: &Model) -> Result<MonthRules> {
        apply(
            model,
            &self.expenses,
            &self.drivers,
            &self.totals,
            &self.months(),
        )
    }

    /// As stored with a version (`_month_inputs.json`): amounts as exact integers in text
    /// (drivers × 10^4, totals and expenses in cents).
    pub(crate) fn to_json(&self) -> Result<Vec<u8>> {
        let stored = StoredMonthInputs {
            drivers: self
                .drivers
                .iter()
                .map(|((m, u, d), v)| [m.clone(), u.clone(), d.clone(), v.to_string()])
                .collect(),
            totals: self
                .totals
                .iter()
                .map(|((m, u), v)| [m.clone(), u.clone(), v.to_string()])
                .collect(),
            expenses: self
                .expenses
                .iter()
                .map(|e| {
                    [
                        e.month.clone(),
                        e.category.clone(),
                        e.cost_center.clone(),
                        e.cents.to_string(),
                    ]
                })
                .collect(),
        };
        serde_json::to_vec(&stored).map_err(|e| EngineError::ledger(format!("month inputs: {e}")))
    }

    /// Read back from [`MonthInputs::to_json`]'s bytes; `at` names the file in errors.
    pub(crate) fn from_json(bytes: &[u8], at: &str) -> Result<MonthInputs> {
        let stored: StoredMonthInputs =
            serde_json::from_slice(bytes).map_err(|e| EngineError::ledger(format!("{at}: {e}")))?;
        let number = |text: &str| {
            text.parse::<i128>()
                .map_err(|_| EngineError::ledger(format!("{at}: '{text}' is not an integer")))
        };
        let mut out = MonthInputs::default();
        for [m, u, d, v] in stored.drivers {
            let value = number(&v)?;
            out.drivers.insert((m, u, d), value);
        }
        for [m, u, v] in stored.totals {
            let value = number(&v)?;
            out.totals.insert((m, u), value);
        }
        for [month, category, cost_center, cents] in stored.expenses {
            let cents = number(&cents)?;
            out.expenses.push(Expense {
                month,
                category,
                cost_center,
                cents,
            });
        }
        Ok(out)
    }

    /// Adds `drivers` and `totals`, times `sign` (±1), to these.
    pub(crate) fn add(
        &mut self,
        drivers: &Drivers,
        totals: &BTreeMap<(String, String), i128>,
        sign: i128,
    ) {
        for (key, value) in drivers {
            *self.drivers.entry(key.clone()).or_default() += sign * value;
        }
        for (key, value) in totals {
            *self.totals.entry(key.clone()).or_default() += sign * value;
        }
        self.drop_zeros();
    }

    /// Drops every driver value and unit total of 0: it weighs nothing in any rule (a unit
    /// without a driver value gets nothing, a month's total of 0 is not stepped down), and
    /// without them a build and a delta that sums to the same values keep the same inputs.
    pub(crate) fn drop_zeros(&mut self) {
        self.drivers.retain(|_, v| *v != 0);
        self.totals.retain(|_, v| *v != 0);
    }
}

/// [`MonthInputs`] as stored: rows of text.
#[derive(Serialize, Deserialize)]
struct StoredMonthInputs {
    /// month, unit, driver, value × 10^4
    drivers: Vec<[String; 4]>,
    /// month, unit, cents
    totals: Vec<[String; 3]>,
    /// month, category, cost centre, cents
    expenses: Vec<[String; 4]>,
}

/// Applies pools, settlements and step-down. `totals` are the unit totals (cents) by (month,
/// unit) of everything before (sales, costs, fees …); `months` every month with data.
pub(crate) fn apply(
    model: &Model,
    expenses: &[Expense],
    drivers: &Drivers,
    totals: &BTreeMap<(String, String), i128>,
    months: &BTreeSet<String>,
) -> Result<MonthRules> {
    let mut out = MonthRules::default();
    pools(model, expenses, drivers, &mut out)?;
    settlements(model, drivers, months, &mut out)?;
    step_down(model, drivers, totals, &mut out)?;
    Ok(out)
}

/// The driver of every target in `month`, in target order (as `allocate_exact` takes them).
fn driver_values(
    model: &Model,
    drivers: &Drivers,
    driver: Driver,
    percentages: &BTreeMap<String, i128>,
    month: &str,
    targets: &[String],
) -> Vec<Option<i128>> {
    targets
        .iter()
        .map(|t| Some(driver_value(model, drivers, driver, percentages, month, t)))
        .collect()
}

fn driver_value(
    model: &Model,
    drivers: &Drivers,
    driver: Driver,
    percentages: &BTreeMap<String, i128>,
    month: &str,
    unit: &str,
) -> i128 {
    match driver {
        Driver::Headcount => model
            .unit(unit)
            .and_then(|u| u.headcount)
            .map_or(0, i128::from),
        Driver::Area => model.unit(unit).and_then(|u| u.area).map_or(0, i128::from),
        Driver::Equal => 1,
        Driver::Fixed => percentages.get(unit).copied().unwrap_or(0),
        other => drivers
            .get(&(
                month.to_string(),
                unit.to_string(),
                other.as_str().to_string(),
            ))
            .copied()
            .unwrap_or(0),
    }
}

fn split(pool: i128, drivers: &[Option<i128>]) -> Result<Option<Vec<i128>>> {
    let shares = allocate_exact(pool, drivers).map_err(|e| EngineError::ledger(e.to_string()))?;
    Ok(shares.map(|s| s.into_iter().map(|x| x.unwrap_or(0)).collect()))
}

fn pools(
    model: &Model,
    expenses: &[Expense],
    drivers: &Drivers,
    out: &mut MonthRules,
) -> Result<()> {
    // (pool index, month) → shared cents.
    let mut shared: BTreeMap<(usize, String), i128> = BTreeMap::new();
    for e in expenses {
        let source = format!("expenses:{}", e.category);
        let Some((i, pool)) = model
            .pools
            .iter()
            .enumerate()
            .find(|(_, p)| p.categories.contains(&e.category))
        else {
            out.push(&e.month, model.root(), "allocated_other", -e.cents, source);
            out.checks.push(CheckRow::note(
                "expense_category_in_pool",
                format!("{} {} {}", e.month, e.category, e.cost_center),
                Status::Fail,
                Some(e.cents),
                format!(
                    "expense category '{}' is in no pool of the model: booked on the root as allocated_other",
                    e.category
                ),
            ));
            continue;
        };
        if model.unit(&e.cost_center).is_some() {
            out.push(&e.month, &e.cost_center, &pool.account, -e.cents, source);
        } else {
            *shared.entry((i, e.month.clone())).or_default() += e.cents;
        }
    }
    for ((i, month), cents) in shared {
        let Some(pool) = model.pools.get(i) else {
            continue;
        };
        let source = format!("pool:{}", pool.name);
        let targets = model.target_ids(&pool.targets);
        let values = driver_values(
            model,
            drivers,
            pool.driver,
            &pool.percentages,
            &month,
            &targets,
        );
        let before = out.rows.len();
        match split(-cents, &values)? {
            Some(shares) => {
                for (t, share) in targets.iter().zip(shares) {
                    out.push(&month, t, &pool.account, share, source.clone());
                }
            }
            None => {
                out.push(&month, model.root(), &pool.account, -cents, source.clone());
                out.checks.push(CheckRow::note(
                    "pool_driver_not_zero",
                    format!("{} {month}", pool.name),
                    Status::Warn,
                    Some(cents),
                    format!(
                        "the driver '{}' is 0 for every target: the pool stays on the root",
                        pool.driver.as_str()
                    ),
                ));
            }
        }
        let allocated: i128 = out
            .rows
            .get(before..)
            .unwrap_or_default()
            .iter()
            .map(|r| r.cents)
            .sum();
        out.checks.push(CheckRow::compare(
            "pool_equals_shares",
            format!("{} {month}", pool.name),
            -cents,
            allocated,
            format!(
                "shared expenses of pool '{}' vs the sum of its shares",
                pool.name
            ),
        ));
    }
    Ok(())
}

fn settlements(
    model: &Model,
    drivers: &Drivers,
    months: &BTreeSet<String>,
    out: &mut MonthRules,
) -> Result<()> {
    for rule in &model.settlements {
        let source = format!("settlement:{}", rule.name);
        let receivers: Vec<String> = model
            .target_ids(&rule.receivers)
            .into_iter()
            .filter(|r| *r != rule.provider)
            .collect();
        for month in months {
            if *month < rule.from || rule.to.as_ref().is_some_and(|to| month > to) {
                continue;
            }
            let amounts: Vec<i128> = match rule.basis {
                Basis::FixedMonthly => {
                    let cents = div_half_even(rule.rate_e4, 100);
                    let ones = vec![Some(1); receivers.len()];
                    split(cents, &ones)?.unwrap_or_default()
                }
                basis => {
                    let (driver, divisor) = match basis {
                        Basis::PerOrder => ("orders_shipped", 1_000_000),
                        Basis::PerKg => ("weight_kg", 1_000_000),
                        Basis::PerUnit => ("units_shipped", 1_000_000),
                        Basis::PctNetSales => ("net_sales", 100_000_000),
                        // COGS is negative in the ledger: the mark-up is on its magnitude.
                        Basis::CostPlusCogs => ("cogs", -100_000_000),
                        Basis::FixedMonthly => ("", 1),
                    };
                    receivers
                        .iter()
                        .map(|r| {
                            let d = drivers
                                .get(&(month.clone(), r.clone(), driver.to_string()))
                                .copied()
                                .unwrap_or(0);
                            div_half_even(rule.rate_e4.saturating_mul(d), divisor)
                        })
                        .collect()
                }
            };
            for (r, a) in receivers.iter().zip(amounts) {
                out.push(month, r, "internal_cost", -a, source.clone());
                out.push(month, &rule.provider, "internal_revenue", a, source.clone());
            }
        }
    }
    Ok(())
}

fn step_down(
    model: &Model,
    drivers: &Drivers,
    totals: &BTreeMap<(String, String), i128>,
    out: &mut MonthRules,
) -> Result<()> {
    if model.step_down.is_empty() {
        return Ok(());
    }
    let mut totals = totals.clone();
    for r in &out.rows {
        *totals
            .entry((r.month.clone(), r.unit_id.clone()))
            .or_default() += r.cents;
    }
    let months: BTreeSet<String> = totals.keys().map(|(m, _)| m.clone()).collect();
    let mut closed: BTreeSet<String> = BTreeSet::new();
    for step in &model.step_down {
        closed.insert(step.unit.clone());
        let account = format!("allocated_{}", step.unit.to_lowercase());
        let source = format!("step_down:{}", step.unit);
        let targets: Vec<String> = model
            .target_ids(&step.targets)
            .into_iter()
            .filter(|t| !closed.contains(t))
            .collect();
        for month in &months {
            let net = totals
                .get(&(month.clone(), step.unit.clone()))
                .copied()
                .unwrap_or(0);
            if net == 0 {
                continue;
            }
            let values = driver_values(
                model,
                drivers,
                step.driver,
                &step.percentages,
                month,
                &targets,
            );
            match split(net, &values)? {
                Some(shares) => {
                    out.push(month, &step.unit, &account, -net, source.clone());
                    *totals
                        .entry((month.clone(), step.unit.clone()))
                        .or_default() -= net;
                    for (t, share) in targets.iter().zip(shares) {
                        out.push(month, t, &account, share, source.clone());
                        *totals.entry((month.clone(), t.clone())).or_default() += share;
                    }
                }
                None => out.checks.push(CheckRow::note(
                    "step_down_driver_not_zero",
                    format!("{} {month}", step.unit),
                    Status::Warn,
                    Some(net),
                    format!(
                        "the driver '{}' is 0 for every target: unit {} keeps its result",
                        step.driver.as_str(),
                        step.unit
                    ),
                )),
            }
        }
    }
    Ok(())
}

/// `n / d`, rounded half-even (`d` may be negative).
pub(crate) fn div_half_even(n: i128, d: i128) -> i128 {
    if d == 0 {
        return 0;
    }
    let (n, d) = if d < 0 { (-n, -d) } else { (n, d) };
    let q = n.div_euclid(d);
    let r = n.rem_euclid(d);
    match (2 * r).cmp(&d) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
    }
}

/// Days since 1970-01-01 of the last day of `YYYY-MM`.
pub(crate) fn month_end_days(month: &str) -> Option<i32> {
    let y: i64 = month.get(..4)?.parse().ok()?;
    let m: i64 = month.get(5..7)?.parse().ok()?;
    if !(1..=12).contains(&m) {
        return None;
    }
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    i32::try_from(days_from_civil(ny, nm, 1) - 1).ok()
}

/// Days since 1970-01-01 (proleptic Gregorian; Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_ends() {
        assert_eq!(month_end_days("1970-01"), Some(30));
        assert_eq!(month_end_days("2024-02"), Some(19_782)); // 2024-02-29
        assert_eq!(month_end_days("2025-12"), Some(20_453)); // 2025-12-31
        assert_eq!(month_end_days("2025-13"), None);
    }

    fn model(headcounts: &[i64]) -> Model {
        let mut text = String::from(
            "[[units]]\nid = \"C\"\nname = \"c\"\nkind = \"company\"\n\
             [[pools]]\nname = \"hq\"\ncategories = [\"总部\"]\ndriver = \"headcount\"\n",
        );
        for (i, h) in headcounts.iter().enumerate() {
            text.push_str(&format!(
                "[[units]]\nid = \"P{i:02}\"\nname = \"p\"\nkind = \"profit\"\nparent = \"C\"\nheadcount = {h}\n"
            ));
        }
        Model::parse("m.toml", &text).expect("model")
    }

    proptest::proptest! {
        /// A shared pool always lands whole: on the targets by driver, to the cent, zero
        /// drivers getting nothing, or on the root when every driver is zero (never a
        /// division by zero); the result does not depend on the order of the expense rows.
        #[test]
        fn pools_land_whole(
            headcounts in proptest::collection::vec(0i64..20, 1..12),
            amounts in proptest::collection::vec(-1_000_000i128..10_000_000, 1..6),
        ) {
            let model = model(&headcounts);
            let expenses: Vec<Expense> = amounts
                .iter()
                .enumerate()
                .map(|(i, a)| Expense {
                    month: "2025-03".into(),
                    category: "总部".into(),
                    cost_center: format!("公共{i}"),
                    cents: *a,
                })
                .collect();
            let run = |rows: &[Expense]| {
                let mut out = MonthRules::default();
                pools(&model, rows, &Drivers::new(), &mut out).expect("pools");
                out
            };
            let out = run(&expenses);
            let total: i128 = amounts.iter().sum();
            proptest::prop_assert_eq!(out.rows.iter().map(|r| r.cents).sum::<i128>(), -total);
            let all_zero = headcounts.iter().all(|h| *h == 0);
            for r in &out.rows {
                let i: usize = r.unit_id.trim_start_matches('P').parse().unwrap_or(usize::MAX);
                if r.unit_id == "C" {
                    proptest::prop_assert!(all_zero);
                } else {
                    proptest::prop_assert!(headcounts.get(i).copied().unwrap_or(0) > 0);
                }
            }
            let mut reversed = expenses.clone();
            reversed.reverse();
            proptest::prop_assert_eq!(run(&reversed).rows, out.rows);
        }
    }

    #[test]
    fn half_even_with_negative_divisors() {
        assert_eq!(div_half_even(15, 10), 2);
        assert_eq!(div_half_even(25, 10), 2);
        assert_eq!(div_half_even(25, -10), -2);
        assert_eq!(div_half_even(-35, 10), -4);
        assert_eq!(div_half_even(-251, 100), -3);
    }
}
