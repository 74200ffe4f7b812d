//! The merge: the published ledger's months plus a change's delta, as a full build would
//! write them ([`merge_months`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Int64Array, RecordBatch, UInt32Array,
};
use datafusion::arrow::compute::{SortOptions, cast, concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Int64Type, Schema};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::prelude::SessionContext;

use super::{MonthDelta, collect_one, sql_list};
use crate::error::{EngineError, Result};
use crate::fingerprint;
use crate::ledger::sources::{LEDGER_COLUMNS, MONTH_RULE_SOURCES};
use crate::ledger::{
    LEDGER_ORDER, LEDGER_TABLE, conform_to, decimal_named, lap, ledger_projection, named,
    published_projection, register, register_rows, string_col,
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
///
/// The sum is a merge, not a hash aggregate and a sort: the published months are already in
/// the ledger's order, which is the grain's, and the delta is small. All the rows are keyed
/// once in that order (arrow's row format), put in order (a stable sort that finds the
/// published months' runs), and equal grains are summed in one pass.
pub async fn merge_months(
    published: &SessionContext,
    net: &[RecordBatch],
    rules: &MonthDelta,
) -> Result<MergedMonths> {
    let mut lap_started = Instant::now();
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
    // Each part with the ledger's columns and whether a row is a month rule's.
    let part =
        |projected: String| format!("SELECT *, {MONTH_RULE_SOURCES} AS {RULE} FROM ({projected})");
    let replaced_rules = if rules.months.is_empty() {
        String::new()
    } else {
        format!(
            " AND NOT ({MONTH_RULE_SOURCES} AND month IN ({}))",
            sql_list(&rules.months)
        )
    };
    let old = collect_one(
        published,
        &part(published_projection(&format!(
            "SELECT {LEDGER_COLUMNS}, month FROM {LEDGER_TABLE} \
             WHERE month IN ({}){replaced_rules}",
            sql_list(&months)
        ))),
    )
    .await?;
    lap(&mut lap_started, "merge: the published months read");
    let schema = old.schema();
    let mut parts = vec![old];
    register(&ctx, "m_rules", rules.rows.clone())?;
    let mut new = vec![format!("SELECT {LEDGER_COLUMNS} FROM m_rules")];
    if !net.is_empty() {
        new.push(format!("SELECT {LEDGER_COLUMNS} FROM m_net"));
    }
    let new = collect_one(&ctx, &part(ledger_projection(&new.join(" UNION ALL ")))).await?;
    parts.push(conform_to(&new, &schema, "the delta's rows")?);
    let all = concat_batches(&schema, &parts)?;
    drop(parts);
    lap(&mut lap_started, "merge: the delta's rows");
    let merged = summed_in_order(&all)?;
    lap(&mut lap_started, "merge: summed in order");
    Ok(MergedMonths {
        months,
        batches: vec![merged],
    })
}

/// The column that marks a month rule's row while merging.
const RULE: &str = "_rule";

/// `rows` (the ledger's columns and [`RULE`]) in the ledger's order, the rows that are not a
/// month rule's summed at the grain and kept when they carry something (an amount or a
/// quantity), as `summed_at_grain` keeps them; a month rule's rows as they are.
fn summed_in_order(rows: &RecordBatch) -> Result<RecordBatch> {
    const WHAT: &str = "the merged months";
    let keys: Vec<ArrayRef> = LEDGER_ORDER
        .split(',')
        .map(|c| named(rows, c.trim(), WHAT).cloned())
        .collect::<Result<_>>()?;
    // ORDER BY's default: ascending, nulls last.
    let fields = keys
        .iter()
        .map(|k| {
            SortField::new_with_options(
                k.data_type().clone(),
                SortOptions {
                    descending: false,
                    nulls_first: false,
                },
            )
        })
        .collect();
    let started = Instant::now();
    let converter = RowConverter::new(fields)?;
    let keyed = converter.convert_columns(&keys)?;
    let converted = started.elapsed();
    let mut order: Vec<u32> = (0..u32::try_from(rows.num_rows()).map_err(|_| {
        EngineError::ledger(format!("{WHAT}: {} rows are too many", rows.num_rows()))
    })?)
        .collect();
    order.sort_by(|&a, &b| keyed.row(a as usize).cmp(&keyed.row(b as usize)));
    let sorted = started.elapsed();

    let rule = named(rows, RULE, WHAT)?
        .as_boolean_opt()
        .ok_or_else(|| EngineError::ledger(format!("{WHAT}: '{RULE}' is not a boolean")))?;
    let amount = decimal_named(rows, "amount", WHAT)?;
    let qty = cast(named(rows, "qty", WHAT)?, &DataType::Int64)?;
    let qty = qty.as_primitive::<Int64Type>();
    let value = |i: usize| {
        (
            amount.is_valid(i).then(|| amount.value(i)),
            qty.is_valid(i).then(|| qty.value(i)),
        )
    };
    let overflow = || EngineError::ledger(format!("{WHAT}: a sum at the grain overflows"));

    let (mut take, mut amounts, mut qtys) = (Vec::new(), Vec::new(), Vec::new());
    let mut i = 0;
    while i < order.len() {
        let first = order[i] as usize;
        let (mut sum, mut units) = value(first);
        let mut next = i + 1;
        if !(rule.is_valid(first) && rule.value(first)) {
            // A grain's rows are adjacent now; a month rule's never share one with the others
            // (the grain has the source).
            while next < order.len() && keyed.row(order[next] as usize) == keyed.row(first) {
                let (a, q) = value(order[next] as usize);
                sum = add(sum, a).ok_or_else(overflow)?;
                units = add(units, q).ok_or_else(overflow)?;
                next += 1;
            }
            let carries = sum.is_some_and(|a| a != 0) || units.unwrap_or(0) != 0;
            if !carries {
                i = next;
                continue;
            }
        }
        take.push(order[i]);
        amounts.push(sum);
        qtys.push(units);
        i = next;
    }
    let summed = started.elapsed();
    let taken = take_record_batch(rows, &UInt32Array::from(take))?;
    let out_schema = Arc::new(Schema::new(
        rows.schema()
            .fields()
            .iter()
            .filter(|f| f.name() != RULE)
            .cloned()
            .collect::<Vec<_>>(),
    ));
    let amount_type = amount.data_type().clone();
    let columns = out_schema
        .fields()
        .iter()
        .map(|f| -> Result<ArrayRef> {
            Ok(match f.name().as_str() {
                // The sums are in the amounts' own unit (cents at scale 2): typed, not cast.
                "amount" => match amount_type {
                    DataType::Decimal128(precision, scale) => Arc::new(
                        Decimal128Array::from(amounts.clone())
                            .with_precision_and_scale(precision, scale)?,
                    ),
                    _ => {
                        return Err(EngineError::ledger(format!(
                            "{WHAT}: amount is {amount_type}, not a decimal"
                        )));
                    }
                },
                "qty" => cast(&Int64Array::from(qtys.clone()), f.data_type())?,
                name => Arc::clone(named(&taken, name, WHAT)?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    log::debug!(
        "{WHAT}: {} rows keyed {:.2}s, sorted {:.2}s, summed {:.2}s, taken {:.2}s",
        rows.num_rows(),
        converted.as_secs_f64(),
        (sorted - converted).as_secs_f64(),
        (summed - sorted).as_secs_f64(),
        (started.elapsed() - summed).as_secs_f64(),
    );
    Ok(RecordBatch::try_new(out_schema, columns)?)
}

/// SQL's `SUM` of two values: null only when both are; `None` when it overflows.
fn add<T: CheckedAdd>(a: Option<T>, b: Option<T>) -> Option<Option<T>> {
    match (a, b) {
        (Some(a), Some(b)) => a.checked(b).map(Some),
        (a, None) => Some(a),
        (None, b) => Some(b),
    }
}

/// Integers that add with an overflow check.
trait CheckedAdd: Sized {
    fn checked(self, other: Self) -> Option<Self>;
}

impl CheckedAdd for i128 {
    fn checked(self, other: Self) -> Option<Self> {
        self.checked_add(other)
    }
}

impl CheckedAdd for i64 {
    fn checked(self, other: Self) -> Option<Self> {
        self.checked_add(other)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{BooleanArray, Date32Array, StringArray};
    use datafusion::arrow::datatypes::Field;

    use super::*;

    /// A ledger row: (day, sku, account, cents, qty, source), in 2025-12 of one shop.
    type Row<'a> = (i32, &'a str, &'a str, i128, Option<i64>, &'a str);

    fn rows(rows: &[Row<'_>]) -> RecordBatch {
        let text = |f: &dyn Fn(&Row<'_>) -> String| {
            Arc::new(StringArray::from_iter_values(rows.iter().map(f))) as ArrayRef
        };
        // The ledger's columns, and whether a row is a month rule's.
        let mut fields: Vec<Field> = crate::ledger::store::ledger_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(RULE, DataType::Boolean, true));
        let schema = Schema::new(fields);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Date32Array::from_iter_values(
                rows.iter().map(|r| 20_423 + r.0),
            )),
            text(&|_| "tmall".into()),
            text(&|_| "T1".into()),
            text(&|r| r.1.into()),
            text(&|_| String::new()),
            text(&|_| "U1".into()),
            text(&|r| r.2.into()),
            Arc::new(
                Decimal128Array::from_iter_values(rows.iter().map(|r| r.3))
                    .with_precision_and_scale(crate::ledger::store::LEDGER_AMOUNT_PRECISION, 2)
                    .expect("decimal"),
            ),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.4).collect::<Vec<_>>(),
            )),
            text(&|r| r.5.into()),
            text(&|_| "2025-12".into()),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| Some(r.5.starts_with("pool:"))),
            )),
        ];
        RecordBatch::try_new(Arc::new(schema), columns).expect("batch")
    }

    /// (sku, account, cents, qty) of each merged row, in order.
    fn summary(batch: &RecordBatch) -> Vec<(String, String, i128, Option<i64>)> {
        let sku = batch.column_by_name("sku").expect("sku").as_string::<i32>();
        let account = batch
            .column_by_name("account")
            .expect("account")
            .as_string::<i32>();
        let amount = batch
            .column_by_name("amount")
            .expect("amount")
            .as_primitive::<datafusion::arrow::datatypes::Decimal128Type>();
        let qty = batch
            .column_by_name("qty")
            .expect("qty")
            .as_primitive::<Int64Type>();
        (0..batch.num_rows())
            .map(|i| {
                (
                    sku.value(i).to_string(),
                    account.value(i).to_string(),
                    amount.value(i),
                    qty.is_valid(i).then(|| qty.value(i)),
                )
            })
            .collect()
    }

    #[test]
    fn equal_grains_are_summed_in_the_ledger_order_and_kept_when_they_carry_something() {
        let input = rows(&[
            (1, "B", "gross_sales", 5_000, Some(2), "order"),
            (1, "A", "gross_sales", 1_000, Some(1), "order"),
            // The delta: A's sale corrected, B's taken out whole, C's quantity returned.
            (1, "A", "gross_sales", 250, None, "order"),
            (1, "B", "gross_sales", -5_000, Some(-2), "order"),
            (1, "C", "gross_sales", 0, Some(-1), "order"),
            // A month rule's rows are kept as they are, even at one grain.
            (1, "", "allocated_rent", 700, None, "pool:rent"),
            (1, "", "allocated_rent", 300, None, "pool:rent"),
        ]);
        let merged = summed_in_order(&input).expect("merged");
        assert!(merged.column_by_name(RULE).is_none());
        assert_eq!(
            summary(&merged),
            vec![
                ("".into(), "allocated_rent".into(), 700, None),
                ("".into(), "allocated_rent".into(), 300, None),
                ("A".into(), "gross_sales".into(), 1_250, Some(1)),
                ("C".into(), "gross_sales".into(), 0, Some(-1)),
            ]
        );
    }
}
