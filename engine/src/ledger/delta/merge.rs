//! The merge: the published ledger's months plus a change's delta, as a full build would
//! write them ([`merge_months`]).

use std::collections::{BTreeMap, BTreeSet};

use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;

use super::{MonthDelta, collect_one, sql_list};
use crate::error::Result;
use crate::fingerprint;
use crate::ledger::sources::{LEDGER_COLUMNS, MONTH_RULE_SOURCES};
use crate::ledger::{
    LEDGER_TABLE, ledger_sql, register, register_rows, string_col, summed_at_grain,
};
use crate::session::new_session;

/// The months a change rewrites, merged.
#[derive(Debug, Clone)]
pub struct MergedMonths {
    /// The months rewritten: those whose rows from the exports or whose month rules change.
    pub months: BTreeSet<String>,
    /// Their rows, with the ledger's columns and in its order.
    pub batches: Vec<RecordBatch>,
}

impl MergedMonths {
    /// Each rewritten month's fingerprint (`<rows>:<hash>`, as in a published manifest).
    pub fn fingerprints(&self) -> Result<BTreeMap<String, String>> {
        Ok(fingerprint::by_key(&self.batches, "month")?
            .into_iter()
            .map(|(m, f)| (m, f.encode()))
            .collect())
    }
}

/// The published ledger (`pnl_ledger` in `published`) with a change merged in: `net` is the
/// change's net delta at the grain ([`net_delta`](super::net_delta) of the order-local rows
/// and the costing's, of each side), and `rules` the month rules after it.
///
/// ```text
///  a rewritten month = Σ at the grain ( its published rows from the exports + the net delta )
///                      keeping the grain rows that carry something (as `b_base` does)
///                    + its month-rule rows: the new ones if its rules changed, else as published
/// ```
///
/// The closure's unchanged orders cancel in the net delta, so the months it holds are the
/// months whose rows from the exports change. A grain row of a full build exists exactly when
/// its sums carry something, so the merged months are the full build's, row for row, and
/// their fingerprints equal its. The other months are untouched.
pub async fn merge_months(
    published: &SessionContext,
    net: &[RecordBatch],
    rules: &MonthDelta,
) -> Result<MergedMonths> {
    let ctx = new_session()?;
    let mut months = rules.months.clone();
    if register_rows(&ctx, "m_net", net)? {
        for batch in ctx
            .sql("SELECT DISTINCT arrow_cast(to_char(date, '%Y-%m'), 'Utf8') FROM m_net")
            .await?
            .collect()
            .await?
        {
            let column = string_col(&batch, 0)?;
            months.extend(column.iter().flatten().map(str::to_string));
        }
    }
    if months.is_empty() {
        return Ok(MergedMonths {
            months,
            batches: Vec::new(),
        });
    }
    let old = collect_one(
        published,
        &format!(
            "SELECT * FROM {LEDGER_TABLE} WHERE month IN ({})",
            sql_list(&months)
        ),
    )
    .await?;
    register(&ctx, "m_old", old)?;
    register(&ctx, "m_rules", rules.rows.clone())?;
    let mut summed = vec![format!(
        "SELECT {LEDGER_COLUMNS} FROM m_old WHERE NOT {MONTH_RULE_SOURCES}"
    )];
    if !net.is_empty() {
        summed.push(format!("SELECT {LEDGER_COLUMNS} FROM m_net"));
    }
    let kept_rules = if rules.months.is_empty() {
        String::new()
    } else {
        format!(" AND month NOT IN ({})", sql_list(&rules.months))
    };
    let rows = format!(
        "{summed} \
         UNION ALL SELECT {LEDGER_COLUMNS} FROM m_old WHERE {MONTH_RULE_SOURCES}{kept_rules} \
         UNION ALL SELECT {LEDGER_COLUMNS} FROM m_rules",
        summed = summed_at_grain(&summed.join(" UNION ALL ")),
    );
    let batches = ctx.sql(&ledger_sql(&rows)).await?.collect().await?;
    Ok(MergedMonths { months, batches })
}
