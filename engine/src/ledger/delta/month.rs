//! The month rules again after a change ([`month_rows`]).

use std::collections::{BTreeMap, BTreeSet};

use amoeba_catalog::model::Model;
use datafusion::arrow::array::RecordBatch;

use super::Side;
use crate::error::{EngineError, Result};
use crate::ledger::CheckRow;
use crate::ledger::allocation::{MonthInputs, MonthRow};
use crate::ledger::{
    BASE_DRIVERS_SQL, ORDER_DRIVERS_SQL, drivers_of, month_rows_batch, register_rows, unit_totals,
};
use crate::session::new_session;

/// The month rules after a change ([`month_rows`]).
#[derive(Debug, Clone)]
pub struct MonthDelta {
    /// The months whose month-rule rows (pools, settlements, step-down) change.
    pub months: BTreeSet<String>,
    /// Those months' month-rule rows after the change, all of them (the ledger's columns
    /// without `month`, as the build's `b_month`): they replace the months' old ones.
    pub rows: RecordBatch,
    /// What the rules were computed from after the change.
    pub inputs: MonthInputs,
    /// The rules' checks after the change (pools left on the root, …), as a full build
    /// reports them.
    pub checks: Vec<CheckRow>,
}

/// The month rules again after a change: the published `inputs` plus what the change does to
/// the unit totals and the drivers, the rules applied to that, and the months whose rows come
/// out different.
///
/// ```text
///  totals, money drivers (net sales, gross sales, COGS)   from `net`: the change's net delta
///                                                          at the grain (sums add up)
///  order drivers (orders, units, shipped, weight)         over each side's orders, the old
///                                                          side's subtracted (counts of
///                                                          distinct orders add up over
///                                                          disjoint sets of orders)
///  expenses, hours                                        as published (a change to them
///                                                          makes the build a full one)
/// ```
///
/// The rules themselves are tiny (months × units): they run over every month, and only the
/// months whose rows differ from the published rules' are returned.
pub async fn month_rows(
    old: &Side,
    new: &Side,
    model: &Model,
    published: &MonthInputs,
    net: &[RecordBatch],
) -> Result<MonthDelta> {
    let step =
        |what: &str, e: EngineError| EngineError::ledger(format!("month rules: {what}: {e}"));
    let mut inputs = published.clone();
    let ctx = new_session()?;
    if register_rows(&ctx, "b_base", net)? {
        let drivers = drivers_of(&ctx, BASE_DRIVERS_SQL)
            .await
            .map_err(|e| step("the money drivers", e))?;
        let totals = unit_totals(&ctx, "b_base")
            .await
            .map_err(|e| step("the unit totals", e))?;
        inputs.add(&drivers, &totals, 1);
    }
    for (side, sign) in [(old, -1), (new, 1)] {
        let drivers = drivers_of(&side.ctx, ORDER_DRIVERS_SQL)
            .await
            .map_err(|e| step("the order drivers", e))?;
        inputs.add(&drivers, &BTreeMap::new(), sign);
    }
    let before = published.apply(model)?;
    let after = inputs.apply(model)?;
    let by_month = |rows: &[MonthRow]| {
        let mut out: BTreeMap<String, Vec<MonthRow>> = BTreeMap::new();
        for r in rows {
            out.entry(r.month.clone()).or_default().push(r.clone());
        }
        out
    };
    let (was, is) = (by_month(&before.rows), by_month(&after.rows));
    let months: BTreeSet<String> = was
        .keys()
        .chain(is.keys())
        .filter(|m| was.get(*m) != is.get(*m))
        .cloned()
        .collect();
    let rows: Vec<MonthRow> = after
        .rows
        .into_iter()
        .filter(|r| months.contains(&r.month))
        .collect();
    Ok(MonthDelta {
        months,
        rows: month_rows_batch(&rows)?,
        inputs,
        checks: after.checks,
    })
}
