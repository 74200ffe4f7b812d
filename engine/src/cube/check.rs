//! A cube's invariants, checked before a version is published and by `amoeba check`:
//!
//! - `cube_totals`: for every month and grouping set, the sum of each measure over the set's
//!   rows equals the same measure computed from the ledger (and `hours`) directly;
//! - `cube_rollup`: every coarser grouping set equals the finest one summed to its dimensions
//!   (every rollup level is the sum of its children).

use std::collections::BTreeMap;

use amoeba_catalog::cube::CubeDef;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Int64Type};
use datafusion::prelude::SessionContext;

use super::plan::{self, HOURS_TABLE, SET_COLUMN, measure_expr};
use crate::error::Result;
use crate::ledger::{CheckRow, LEDGER_TABLE, Status};

/// Reads column `i` of `batch` row `r` as an exact integer (cents or a count).
fn exact(batch: &RecordBatch, i: usize, r: usize) -> Result<Option<i128>> {
    let col = batch.column(i);
    if col.is_null(r) {
        return Ok(None);
    }
    Ok(Some(match col.data_type() {
        DataType::Decimal128(..) => col.as_primitive::<Decimal128Type>().value(r),
        DataType::Int64 => i128::from(col.as_primitive::<Int64Type>().value(r)),
        _ => {
            let c = cast(col, &DataType::Int64)?;
            i128::from(c.as_primitive::<Int64Type>().value(r))
        }
    }))
}

fn string(batch: &RecordBatch, i: usize, r: usize) -> Result<String> {
    let c = cast(batch.column(i), &DataType::Utf8)?;
    let s = c.as_string::<i32>();
    Ok(if s.is_null(r) {
        String::new()
    } else {
        s.value(r).to_string()
    })
}

fn month_filter(months: Option<&[String]>) -> String {
    match months {
        None => String::new(),
        Some(ms) => {
            let list: Vec<String> = ms
                .iter()
                .map(|m| amoeba_catalog::mapping::sql_string(m))
                .collect();
            format!(" WHERE month IN ({})", list.join(", "))
        }
    }
}

/// Checks the cube `def` stored as `table` in `ctx` (which also has the ledger), over `months`
/// (all when `None`).
pub(crate) async fn check(
    ctx: &SessionContext,
    def: &CubeDef,
    table: &str,
    months: Option<&[String]>,
) -> Result<Vec<CheckRow>> {
    let mut rows = totals(ctx, def, table, months).await?;
    rows.extend(rollups(ctx, def, table, months).await?);
    Ok(rows)
}

/// The first measure of a month whose cube sum differs from the ledger's.
struct Difference {
    month: String,
    measure: String,
    expected: i128,
    actual: i128,
}

/// One grouping set's comparison with the ledger.
#[derive(Default)]
struct SetTotals {
    /// Months compared.
    compared: usize,
    first_difference: Option<Difference>,
}

async fn totals(
    ctx: &SessionContext,
    def: &CubeDef,
    table: &str,
    months: Option<&[String]>,
) -> Result<Vec<CheckRow>> {
    let filter = month_filter(months);
    let names: Vec<&str> = def.measures.iter().map(|m| m.name.as_str()).collect();
    // The ledger side: every measure per month, straight from the ledger rows.
    let mut facts = format!(
        "SELECT month, account, amount, qty, 1 AS n, CAST(NULL AS DECIMAL(38,2)) AS hours \
         FROM {LEDGER_TABLE}{filter}"
    );
    if def.has_measure("hours") {
        facts.push_str(&format!(
            " UNION ALL SELECT month, CAST(NULL AS VARCHAR), CAST(NULL AS DECIMAL(38,2)), \
                CAST(NULL AS BIGINT), 0, CAST(hours AS DECIMAL(38,2)) FROM {HOURS_TABLE}{filter}"
        ));
    }
    let ledger_measures: Vec<String> = def
        .measures
        .iter()
        .map(|m| format!("{} AS {}", measure_expr(&m.kind), m.name))
        .collect();
    let ledger = ctx
        .sql(&format!(
            "SELECT month, {} FROM ({facts}) GROUP BY month",
            ledger_measures.join(", ")
        ))
        .await?
        .collect()
        .await?;
    let mut expected: BTreeMap<String, Vec<Option<i128>>> = BTreeMap::new();
    for b in &ledger {
        for r in 0..b.num_rows() {
            let values = (0..names.len())
                .map(|i| exact(b, i + 1, r))
                .collect::<Result<Vec<_>>>()?;
            expected.insert(string(b, 0, r)?, values);
        }
    }
    let sums: Vec<String> = names.iter().map(|n| format!("SUM({n})")).collect();
    let cube = ctx
        .sql(&format!(
            "SELECT {SET_COLUMN}, month, {} FROM {table}{filter} GROUP BY {SET_COLUMN}, month",
            sums.join(", ")
        ))
        .await?
        .collect()
        .await?;
    let mut by_set: BTreeMap<String, SetTotals> = def
        .grouping_sets
        .iter()
        .map(|s| (CubeDef::set_label(s), SetTotals::default()))
        .collect();
    for b in &cube {
        for r in 0..b.num_rows() {
            let set = string(b, 0, r)?;
            let month = string(b, 1, r)?;
            let want = expected.get(&month).cloned().unwrap_or_default();
            let entry = by_set.entry(set).or_default();
            entry.compared += 1;
            for (i, name) in names.iter().enumerate() {
                let got = exact(b, i + 2, r)?.unwrap_or(0);
                let exp = want.get(i).copied().flatten().unwrap_or(0);
                if got != exp && entry.first_difference.is_none() {
                    entry.first_difference = Some(Difference {
                        month: month.clone(),
                        measure: (*name).to_string(),
                        expected: exp,
                        actual: got,
                    });
                }
            }
        }
    }
    let months_expected = expected.len();
    Ok(by_set
        .into_iter()
        .map(|(set, totals)| {
            let scope = format!("{} [{set}]", def.name);
            let compared = totals.compared;
            match totals.first_difference {
                Some(Difference {
                    month,
                    measure,
                    expected: exp,
                    actual: got,
                }) => CheckRow {
                    check: "cube_totals".into(),
                    scope,
                    status: Status::Fail,
                    expected: Some(exp),
                    actual: Some(got),
                    detail: format!(
                        "{month} {measure}: the cube's rows sum to {got}, the ledger to {exp} (cents or count)"
                    ),
                },
                None if compared != months_expected => CheckRow {
                    check: "cube_totals".into(),
                    scope,
                    status: Status::Fail,
                    expected: Some(months_expected as i128),
                    actual: Some(compared as i128),
                    detail: format!(
                        "the cube has {compared} month(s) of this set, the ledger {months_expected}"
                    ),
                },
                None => CheckRow {
                    check: "cube_totals".into(),
                    scope,
                    status: Status::Ok,
                    expected: Some(months_expected as i128),
                    actual: Some(compared as i128),
                    detail: format!(
                        "{} measure(s) equal the ledger's in {compared} month(s)",
                        names.len()
                    ),
                },
            }
        })
        .collect())
}

/// The months of `table` to check: `months`, or every month it has.
async fn months_of(
    ctx: &SessionContext,
    table: &str,
    months: Option<&[String]>,
) -> Result<Vec<String>> {
    if let Some(months) = months {
        return Ok(months.to_vec());
    }
    let batches = ctx
        .sql(&format!(
            "SELECT DISTINCT CAST(month AS VARCHAR) FROM {table} ORDER BY 1"
        ))
        .await?
        .collect()
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            out.push(string(b, 0, r)?);
        }
    }
    Ok(out)
}

/// Compares every coarser grouping set with the finest one summed to its dimensions, a month
/// at a time: the comparison holds both sides' rows in hash tables (EXCEPT), and a month of a
/// fine cube is what fits (at scale 10, `sku_campaign` is 7.3 M rows, over half a million a
/// month; all months at once is the likely reason `amoeba check` went past 10 GiB there).
async fn rollups(
    ctx: &SessionContext,
    def: &CubeDef,
    table: &str,
    months: Option<&[String]>,
) -> Result<Vec<CheckRow>> {
    let Some(finest) = def.grouping_sets.first() else {
        return Ok(Vec::new());
    };
    let months = months_of(ctx, table, months).await?;
    let mut out = Vec::new();
    for set in def.grouping_sets.iter().skip(1) {
        if !set.iter().all(|d| finest.contains(d)) {
            continue;
        }
        let dims: Vec<&str> = set.iter().map(|d| d.column()).collect();
        let stored: Vec<String> = def.measures.iter().map(|m| m.name.clone()).collect();
        let summed: Vec<String> = def
            .measures
            .iter()
            .map(|m| {
                let t = match plan::measure_type(&m.kind) {
                    DataType::Int64 => "BIGINT",
                    _ => "DECIMAL(38,2)",
                };
                format!("CAST(SUM({n}) AS {t}) AS {n}", n = m.name)
            })
            .collect();
        let label = |s: &[amoeba_catalog::Dimension]| {
            amoeba_catalog::mapping::sql_string(&CubeDef::set_label(s))
        };
        let mut differ = 0i128;
        for month in &months {
            let filter = month_filter(Some(std::slice::from_ref(month)));
            let mine = format!(
                "SELECT {}, {} FROM {table}{filter} AND {SET_COLUMN} = {}",
                dims.join(", "),
                stored.join(", "),
                label(set)
            );
            let children = format!(
                "SELECT {}, {} FROM {table}{filter} AND {SET_COLUMN} = {} GROUP BY {}",
                dims.join(", "),
                summed.join(", "),
                label(finest),
                dims.join(", ")
            );
            let count = |a: &str, b: &str| format!("SELECT COUNT(*) FROM (({a}) EXCEPT ({b}))");
            for sql in [count(&mine, &children), count(&children, &mine)] {
                for b in ctx.sql(&sql).await?.collect().await? {
                    if b.num_rows() > 0 {
                        differ += exact(&b, 0, 0)?.unwrap_or(0);
                    }
                }
            }
        }
        out.push(CheckRow {
            check: "cube_rollup".into(),
            scope: format!(
                "{} [{}] = Σ [{}]",
                def.name,
                CubeDef::set_label(set),
                CubeDef::set_label(finest)
            ),
            status: if differ == 0 {
                Status::Ok
            } else {
                Status::Fail
            },
            expected: Some(0),
            actual: Some(differ),
            detail: if differ == 0 {
                "every row equals the sum of its children".into()
            } else {
                format!("{differ} row(s) differ from the sum of their children")
            },
        });
    }
    Ok(out)
}
