//! A cube's invariants, checked before a version is published and by `amoeba check`:
//!
//! - `cube_totals`: for every month and grouping set, the sum of each measure over the set's
//!   rows equals the same measure computed from the ledger (and `hours`) directly;
//! - `cube_rollup`: every coarser grouping set equals the finest one summed to its dimensions
//!   (every rollup level is the sum of its children).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use amoeba_catalog::cube::CubeDef;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Int64Type, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::prelude::SessionContext;

use super::plan::{self, HOURS_TABLE, SET_COLUMN, measure_expr};
use crate::error::Result;
use crate::ledger::{CheckRow, LEDGER_TABLE, Status};

/// Reads column `i` of `batch` row `r` as an exact integer (cents or a count).
fn exact(batch: &RecordBatch, i: usize, r: usize) -> Result<Option<i128>> {
    Ok(Exact::of(batch.column(i))?.get(r))
}

/// A measure column read as exact integers: cents (a decimal) or a count.
enum Exact {
    Cents(Decimal128Array),
    Count(Int64Array),
}

impl Exact {
    fn of(col: &ArrayRef) -> Result<Self> {
        Ok(match col.data_type() {
            DataType::Decimal128(..) => Exact::Cents(col.as_primitive::<Decimal128Type>().clone()),
            _ => Exact::Count(
                cast(col, &DataType::Int64)?
                    .as_primitive::<Int64Type>()
                    .clone(),
            ),
        })
    }

    fn get(&self, r: usize) -> Option<i128> {
        match self {
            Exact::Cents(a) => a.is_valid(r).then(|| a.value(r)),
            Exact::Count(a) => a.is_valid(r).then(|| i128::from(a.value(r))),
        }
    }
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

/// The grouping set label of every row of `batch`.
fn labels(batch: &RecordBatch) -> Result<StringArray> {
    let col = cast(
        batch.column(batch.schema().index_of(SET_COLUMN)?),
        &DataType::Utf8,
    )?;
    Ok(col.as_string::<i32>().clone())
}

/// The measure columns of `batch`, in the order of `def`.
fn measure_columns(def: &CubeDef, batch: &RecordBatch) -> Result<Vec<Exact>> {
    def.measures
        .iter()
        .map(|m| Exact::of(batch.column(batch.schema().index_of(&m.name)?)))
        .collect()
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

/// Checks the cube `def` stored as `table` in `ctx` (which also has the ledger's totals),
/// month by month, over `months` (all the table has when `None`). A month's rows are read
/// into memory and checked there, as a refresh checks them before it writes them.
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
    checks.expect(ctx, &months).await?;
    // The stored columns: a published cube's table also computes the KPIs when read.
    let stored: Vec<String> = plan::schema(def)
        .fields()
        .iter()
        .map(|f| format!("\"{}\"", f.name()))
        .collect();
    for month in &months {
        let filter = month_filter(Some(std::slice::from_ref(month)));
        let rows = ctx
            .sql(&format!(
                "SELECT {} FROM {table}{filter}",
                stored.join(", ")
            ))
            .await?
            .collect()
            .await?;
        checks.month(month, &rows)?;
    }
    Ok(checks.rows())
}

/// A cube's checks, taken a month at a time (a refresh checks each month's rows in memory
/// before it writes them) and reported for the months together.
///
/// The ledger's side of every month is one query ([`CubeChecks::expect`]); the cube's side is
/// summed here, in Rust, over the month's batches: a refresh by delta rebuilds a few small
/// months, and planning a query per month and grouping set cost more than the sums.
pub(crate) struct CubeChecks<'a> {
    def: &'a CubeDef,
    /// Month → every measure computed from the ledger (and `hours`) directly.
    expected: BTreeMap<String, Vec<Option<i128>>>,
    /// Months in which the ledger (or `hours`) has rows.
    months_expected: usize,
    /// Grouping set label → its comparison with the ledger.
    totals: BTreeMap<String, SetTotals>,
    /// Coarser grouping set → rows that differ from the sum of their children.
    rollups: BTreeMap<String, i128>,
}

/// A key (the dimension values, in the row format) and the measures of one row.
type KeyedMeasures = (Vec<u8>, Vec<Option<i128>>);

impl<'a> CubeChecks<'a> {
    pub(crate) fn new(def: &'a CubeDef) -> Self {
        CubeChecks {
            def,
            expected: BTreeMap::new(),
            months_expected: 0,
            totals: def
                .grouping_sets
                .iter()
                .map(|s| (CubeDef::set_label(s), SetTotals::default()))
                .collect(),
            rollups: BTreeMap::new(),
        }
    }

    /// Computes every measure of `months` from the ledger's totals ([`LEDGER_TOTALS_TABLE`],
    /// registered in `ctx`) and `hours`: what [`CubeChecks::month`] compares each grouping
    /// set's sums with.
    pub(crate) async fn expect(&mut self, ctx: &SessionContext, months: &[String]) -> Result<()> {
        if months.is_empty() {
            return Ok(());
        }
        let def = self.def;
        let filter = month_filter(Some(months));
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
        let measures: Vec<String> = def
            .measures
            .iter()
            .map(|m| format!("{} AS {}", measure_expr(&m.kind), m.name))
            .collect();
        let ledger = ctx
            .sql(&format!(
                "SELECT CAST(month AS VARCHAR), {} FROM ({facts}) GROUP BY month",
                measures.join(", ")
            ))
            .await?
            .collect()
            .await?;
        for b in &ledger {
            for r in 0..b.num_rows() {
                let values = (1..=def.measures.len())
                    .map(|i| exact(b, i, r))
                    .collect::<Result<Vec<_>>>()?;
                self.expected.insert(string(b, 0, r)?, values);
            }
        }
        Ok(())
    }

    /// Checks `month`'s cube rows (`rows`, every grouping set, in the stored columns) against
    /// the ledger ([`CubeChecks::expect`] must have computed the month) and against
    /// themselves (rollups).
    pub(crate) fn month(&mut self, month: &str, rows: &[RecordBatch]) -> Result<()> {
        self.totals_of(month, rows)?;
        self.rollups_of(rows)
    }

    fn totals_of(&mut self, month: &str, rows: &[RecordBatch]) -> Result<()> {
        let def = self.def;
        let want = match self.expected.get(month) {
            Some(values) => {
                self.months_expected += 1;
                values.clone()
            }
            None => Vec::new(),
        };
        // Grouping set → the sum of each measure over its rows.
        let mut sums: BTreeMap<String, Vec<i128>> = BTreeMap::new();
        for b in rows {
            let labels = labels(b)?;
            let measures = measure_columns(def, b)?;
            for r in 0..b.num_rows() {
                let set = labels.value(r);
                let entry = match sums.get_mut(set) {
                    Some(e) => e,
                    None => sums
                        .entry(set.to_string())
                        .or_insert_with(|| vec![0; def.measures.len()]),
                };
                for (sum, col) in entry.iter_mut().zip(&measures) {
                    *sum = sum.saturating_add(col.get(r).unwrap_or(0));
                }
            }
        }
        for (set, got) in sums {
            let entry = self.totals.entry(set).or_default();
            entry.compared += 1;
            for ((m, got), exp) in def.measures.iter().zip(got).zip(
                want.iter()
                    .copied()
                    .map(|e| e.unwrap_or(0))
                    .chain(std::iter::repeat(0)),
            ) {
                if got != exp && entry.first_difference.is_none() {
                    entry.first_difference = Some(Difference {
                        month: month.to_string(),
                        measure: m.name.clone(),
                        expected: exp,
                        actual: got,
                    });
                }
            }
        }
        Ok(())
    }

    /// Compares every coarser grouping set of a month with the finest one summed to its
    /// dimensions, as SQL's `EXCEPT` both ways would: the distinct rows (dimensions and
    /// measures) of either side that the other lacks. A month at a time: at scale 10 a month
    /// of `sku_campaign` is over half a million rows, and all months at once would not fit.
    fn rollups_of(&mut self, rows: &[RecordBatch]) -> Result<()> {
        let def = self.def;
        let Some(finest) = def.grouping_sets.first() else {
            return Ok(());
        };
        let finest_label = CubeDef::set_label(finest);
        for set in def.grouping_sets.iter().skip(1) {
            if !set.iter().all(|d| finest.contains(d)) {
                continue;
            }
            let label = CubeDef::set_label(set);
            let converter = RowConverter::new(
                set.iter()
                    .map(|d| SortField::new(plan::dimension_type(*d)))
                    .collect(),
            )?;
            // The finest rows summed to the set's dimensions, and the set's own rows.
            let mut children: HashMap<Vec<u8>, Vec<Option<i128>>> = HashMap::new();
            let mut mine: HashSet<KeyedMeasures> = HashSet::new();
            let fresh = || vec![None; def.measures.len()];
            for b in rows {
                let labels = labels(b)?;
                let dims = set
                    .iter()
                    .map(|d| {
                        let col = b.column(b.schema().index_of(d.column())?);
                        Ok(cast(col, &plan::dimension_type(*d))?)
                    })
                    .collect::<Result<Vec<_>>>()?;
                let keys = converter.convert_columns(&dims)?;
                let measures = measure_columns(def, b)?;
                for r in 0..b.num_rows() {
                    let of = labels.value(r);
                    if of == finest_label {
                        let key = keys.row(r);
                        // Looked up by the borrowed key: a group is allocated once.
                        let sums = match children.get_mut(key.as_ref()) {
                            Some(sums) => sums,
                            None => children.entry(key.as_ref().to_vec()).or_insert_with(fresh),
                        };
                        for (sum, col) in sums.iter_mut().zip(&measures) {
                            if let Some(v) = col.get(r) {
                                *sum = Some(sum.unwrap_or(0).saturating_add(v));
                            }
                        }
                    } else if of == label {
                        let values = measures.iter().map(|col| col.get(r)).collect();
                        mine.insert((keys.row(r).as_ref().to_vec(), values));
                    }
                }
            }
            // As `EXCEPT` both ways: distinct rows of one side the other lacks.
            let lacking_children = mine
                .iter()
                .filter(|(key, values)| children.get(key) != Some(values))
                .count();
            let lacking_mine = children
                .into_iter()
                .filter(|row| !mine.contains(row))
                .count();
            let differ = lacking_children + lacking_mine;
            *self.rollups.entry(label).or_insert(0) += differ as i128;
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use amoeba_catalog::Dimension;
    use amoeba_catalog::cube::{Measure, MeasureKind};
    use datafusion::arrow::array::{Decimal128Array, Int64Array};
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    /// month × platform × shop, kept at (month, platform, shop) and (month, platform).
    fn def() -> CubeDef {
        let finest = vec![Dimension::Month, Dimension::Platform, Dimension::ShopId];
        CubeDef {
            name: "t".into(),
            description: String::new(),
            dimensions: finest.clone(),
            measures: vec![
                Measure {
                    name: "revenue".into(),
                    kind: MeasureKind::Accounts(vec!["gross_sales".into()]),
                },
                Measure {
                    name: "units".into(),
                    kind: MeasureKind::UnitsSold,
                },
            ],
            kpis: Vec::new(),
            grouping_sets: vec![finest, vec![Dimension::Month, Dimension::Platform]],
            retention: Duration::ZERO,
            on_new_exports: true,
            schedule: None,
            line: 0,
        }
    }

    /// A cube row: (set, platform, shop, revenue in cents, units).
    type Line<'a> = (&'a str, &'a str, Option<&'a str>, i128, i64);

    fn rows(def: &CubeDef, rows: &[Line<'_>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new(SET_COLUMN, DataType::Utf8, false),
            Field::new("month", DataType::Utf8, false),
            Field::new("platform", DataType::Utf8, true),
            Field::new("shop_id", DataType::Utf8, true),
            Field::new("revenue", DataType::Decimal128(38, 2), true),
            Field::new("units", DataType::Int64, true),
        ]));
        assert_eq!(schema.fields().len(), plan::schema(def).fields().len());
        let text = |f: &dyn Fn(&Line<'_>) -> Option<String>| {
            Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>())) as ArrayRef
        };
        RecordBatch::try_new(
            schema,
            vec![
                text(&|r| Some(r.0.to_string())),
                text(&|_| Some("2025-12".to_string())),
                text(&|r| Some(r.1.to_string())),
                text(&|r| r.2.map(str::to_string)),
                Arc::new(
                    Decimal128Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())
                        .with_precision_and_scale(38, 2)
                        .expect("decimal"),
                ),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.4).collect::<Vec<_>>(),
                )),
            ],
        )
        .expect("batch")
    }

    fn checked(
        def: &CubeDef,
        batches: &[RecordBatch],
        revenue: i128,
        units: i128,
    ) -> Vec<CheckRow> {
        let mut checks = CubeChecks::new(def);
        checks
            .expected
            .insert("2025-12".into(), vec![Some(revenue), Some(units)]);
        checks.month("2025-12", batches).expect("checked");
        checks.rows()
    }

    const FINE: &str = "month,platform,shop_id";
    const COARSE: &str = "month,platform";

    #[test]
    fn a_month_in_memory_passes_when_it_sums_and_fails_where_it_does_not() {
        let def = def();
        // Split over two batches: a group's children may be in either.
        let good = [
            rows(
                &def,
                &[
                    (FINE, "jd", Some("jd-1"), 1000, 1),
                    (FINE, "tmall", Some("tm-1"), 250, 2),
                ],
            ),
            rows(
                &def,
                &[
                    (FINE, "tmall", Some("tm-2"), 750, 3),
                    (COARSE, "jd", None, 1000, 1),
                    (COARSE, "tmall", None, 1000, 5),
                ],
            ),
        ];
        let report = checked(&def, &good, 2000, 6);
        assert!(report.iter().all(|c| c.status == Status::Ok), "{report:#?}");
        assert_eq!(report.len(), 3, "two totals and one rollup: {report:#?}");

        // The ledger says otherwise: both sets' totals fail, naming the measure.
        let report = checked(&def, &good, 2001, 6);
        let totals: Vec<_> = report.iter().filter(|c| c.check == "cube_totals").collect();
        assert!(
            totals.iter().all(|c| c.status == Status::Fail),
            "{report:#?}"
        );
        assert!(totals[0].detail.contains("revenue"), "{}", totals[0].detail);

        // A coarse row that is not the sum of its children: it is in neither side's rows.
        let bad = [rows(
            &def,
            &[
                (FINE, "jd", Some("jd-1"), 1000, 1),
                (FINE, "tmall", Some("tm-1"), 250, 2),
                (FINE, "tmall", Some("tm-2"), 750, 3),
                (COARSE, "jd", None, 1000, 1),
                (COARSE, "tmall", None, 1000, 4),
            ],
        )];
        let report = checked(&def, &bad, 2000, 6);
        let rollup = report
            .iter()
            .find(|c| c.check == "cube_rollup")
            .expect("rollup row");
        assert_eq!(rollup.status, Status::Fail, "{report:#?}");
        assert_eq!(rollup.actual, Some(2), "{}", rollup.detail);

        // A coarse row missing: the children's sum has no row to match.
        let missing = [rows(
            &def,
            &[
                (FINE, "jd", Some("jd-1"), 1000, 1),
                (FINE, "tmall", Some("tm-1"), 1000, 5),
                (COARSE, "tmall", None, 1000, 5),
            ],
        )];
        let report = checked(&def, &missing, 2000, 6);
        let rollup = report
            .iter()
            .find(|c| c.check == "cube_rollup")
            .expect("rollup row");
        assert_eq!(rollup.actual, Some(1), "{report:#?}");
    }
}
