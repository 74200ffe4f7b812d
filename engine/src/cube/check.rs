//! A cube's invariants, checked before a version is published and by `amoeba check`:
//!
//! - `cube_totals`: for every month and grouping set, the sum of each measure over the set's
//!   rows equals the same measure computed from the ledger (and `hours`) directly;
//! - `cube_rollup`: every coarser grouping set equals the finest one summed to its dimensions
//!   (every rollup level is the sum of its children).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use amoeba_catalog::cube::CubeDef;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Int64Type, SchemaRef};
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

/// The ledger summed by month and account (`month`, `account`, `amount`, `qty`, `n` rows),
/// over `months` (all when `None`): what every cube's totals are checked against. Each
/// measure is a sum over accounts, so it comes out of this as out of the ledger's rows, and
/// one scan of the ledger serves every cube.
pub(crate) async fn ledger_totals(
    ctx: &SessionContext,
    months: Option<&[String]>,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let filter = month_filter(months);
    let df = ctx
        .sql(&format!(
            "SELECT arrow_cast(month, 'Utf8') AS month, arrow_cast(account, 'Utf8') AS account, \
                    CAST(SUM(amount) AS DECIMAL(38,2)) AS amount, \
                    CAST(SUM(qty) AS BIGINT) AS qty, COUNT(*) AS n \
             FROM {LEDGER_TABLE}{filter} GROUP BY month, account"
        ))
        .await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    Ok((schema, df.collect().await?))
}

/// The table of [`ledger_totals`] a check reads.
pub(crate) const LEDGER_TOTALS_TABLE: &str = "cube_ledger_totals";

/// Checks the cube `def` stored as `table` in `ctx` (which also has the ledger), month by
/// month, over `months` (all the table has when `None`).
pub(crate) async fn check(
    ctx: &SessionContext,
    def: &CubeDef,
    table: &str,
    months: Option<&[String]>,
) -> Result<Vec<CheckRow>> {
    let months = match months {
        Some(months) => months.to_vec(),
        None => {
            // Every month either side has: a month of the ledger missing from the cube fails.
            let mut all: BTreeSet<String> = months_of(ctx, table).await?.into_iter().collect();
            all.extend(months_of(ctx, LEDGER_TOTALS_TABLE).await?);
            if def.has_measure("hours") {
                all.extend(months_of(ctx, HOURS_TABLE).await?);
            }
            all.into_iter().collect()
        }
    };
    let mut checks = CubeChecks::new(def);
    for month in &months {
        checks.month(ctx, table, month).await?;
    }
    Ok(checks.rows())
}

/// A cube's checks, taken a month at a time (a refresh checks each month's rows in memory
/// before it writes them) and reported for the months together.
pub(crate) struct CubeChecks<'a> {
    def: &'a CubeDef,
    /// Months in which the ledger (or `hours`) has rows.
    months_expected: usize,
    /// Grouping set label → its comparison with the ledger.
    totals: BTreeMap<String, SetTotals>,
    /// Coarser grouping set → rows that differ from the sum of their children.
    rollups: BTreeMap<String, i128>,
}

impl<'a> CubeChecks<'a> {
    pub(crate) fn new(def: &'a CubeDef) -> Self {
        CubeChecks {
            def,
            months_expected: 0,
            totals: def
                .grouping_sets
                .iter()
                .map(|s| (CubeDef::set_label(s), SetTotals::default()))
                .collect(),
            rollups: BTreeMap::new(),
        }
    }

    /// Checks `month` of the cube rows in `table` against the ledger totals
    /// ([`LEDGER_TOTALS_TABLE`], registered in `ctx`) and against themselves (rollups).
    pub(crate) async fn month(
        &mut self,
        ctx: &SessionContext,
        table: &str,
        month: &str,
    ) -> Result<()> {
        self.totals_of(ctx, table, month).await?;
        self.rollups_of(ctx, table, month).await
    }

    async fn totals_of(&mut self, ctx: &SessionContext, table: &str, month: &str) -> Result<()> {
        let def = self.def;
        let filter = month_filter(Some(&[month.to_string()]));
        let names: Vec<&str> = def.measures.iter().map(|m| m.name.as_str()).collect();
        // The ledger side: every measure of the month, from the ledger's sums by account.
        let mut facts = format!(
            "SELECT month, account, amount, qty, n, CAST(NULL AS DECIMAL(38,2)) AS hours \
             FROM {LEDGER_TOTALS_TABLE}{filter}"
        );
        if def.has_measure("hours") {
            facts.push_str(&format!(
                " UNION ALL SELECT CAST(month AS VARCHAR), CAST(NULL AS VARCHAR), \
                    CAST(NULL AS DECIMAL(38,2)), CAST(NULL AS BIGINT), 0, \
                    CAST(hours AS DECIMAL(38,2)) FROM {HOURS_TABLE}{filter}"
            ));
        }
        let ledger_measures: Vec<String> = def
            .measures
            .iter()
            .map(|m| format!("{} AS {}", measure_expr(&m.kind), m.name))
            .collect();
        let ledger = ctx
            .sql(&format!(
                "SELECT {} FROM ({facts}) GROUP BY month",
                ledger_measures.join(", ")
            ))
            .await?
            .collect()
            .await?;
        let mut expected: Option<Vec<Option<i128>>> = None;
        for b in &ledger {
            for r in 0..b.num_rows() {
                expected = Some(
                    (0..names.len())
                        .map(|i| exact(b, i, r))
                        .collect::<Result<Vec<_>>>()?,
                );
            }
        }
        if expected.is_some() {
            self.months_expected += 1;
        }
        let want = expected.unwrap_or_default();
        let sums: Vec<String> = names.iter().map(|n| format!("SUM({n})")).collect();
        let cube = ctx
            .sql(&format!(
                "SELECT {SET_COLUMN}, {} FROM {table}{filter} GROUP BY {SET_COLUMN}",
                sums.join(", ")
            ))
            .await?
            .collect()
            .await?;
        for b in &cube {
            for r in 0..b.num_rows() {
                let set = string(b, 0, r)?;
                let entry = self.totals.entry(set).or_default();
                entry.compared += 1;
                for (i, name) in names.iter().enumerate() {
                    let got = exact(b, i + 1, r)?.unwrap_or(0);
                    let exp = want.get(i).copied().flatten().unwrap_or(0);
                    if got != exp && entry.first_difference.is_none() {
                        entry.first_difference = Some(Difference {
                            month: month.to_string(),
                            measure: (*name).to_string(),
                            expected: exp,
                            actual: got,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Compares every coarser grouping set of `month` with the finest one summed to its
    /// dimensions. A month at a time: the comparison holds both sides' rows in hash tables
    /// (EXCEPT), and a month of a fine cube is what fits (at scale 10, `sku_campaign` is
    /// 7.3 M rows, over half a million a month; all months at once is the likely reason
    /// `amoeba check` went past 10 GiB there).
    async fn rollups_of(&mut self, ctx: &SessionContext, table: &str, month: &str) -> Result<()> {
        let def = self.def;
        let Some(finest) = def.grouping_sets.first() else {
            return Ok(());
        };
        let filter = month_filter(Some(&[month.to_string()]));
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
            let differ = self.rollups.entry(CubeDef::set_label(set)).or_insert(0);
            for sql in [count(&mine, &children), count(&children, &mine)] {
                for b in ctx.sql(&sql).await?.collect().await? {
                    if b.num_rows() > 0 {
                        *differ += exact(&b, 0, 0)?.unwrap_or(0);
                    }
                }
            }
        }
        Ok(())
    }

    /// The check rows of the months checked: per grouping set, its totals (`cube_totals`)
    /// and, for each coarser one, its rollup (`cube_rollup`).
    pub(crate) fn rows(self) -> Vec<CheckRow> {
        let def = self.def;
        let months_expected = self.months_expected;
        let mut out: Vec<CheckRow> = self
            .totals
            .into_iter()
            .map(|(set, totals)| totals_row(def, &set, totals, months_expected))
            .collect();
        let finest = def
            .grouping_sets
            .first()
            .map(|s| CubeDef::set_label(s))
            .unwrap_or_default();
        // In the order of the definition, as the sets are declared.
        for set in def.grouping_sets.iter().skip(1) {
            let label = CubeDef::set_label(set);
            let Some(&differ) = self.rollups.get(&label) else {
                continue;
            };
            out.push(CheckRow {
                check: "cube_rollup".into(),
                scope: format!("{} [{label}] = Σ [{finest}]", def.name),
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
        out
    }
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

fn totals_row(def: &CubeDef, set: &str, totals: SetTotals, months_expected: usize) -> CheckRow {
    let scope = format!("{} [{set}]", def.name);
    let compared = totals.compared;
    let measures = def.measures.len();
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
            detail: format!("{measures} measure(s) equal the ledger's in {compared} month(s)"),
        },
    }
}

/// The months `table` has rows in.
async fn months_of(ctx: &SessionContext, table: &str) -> Result<Vec<String>> {
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
