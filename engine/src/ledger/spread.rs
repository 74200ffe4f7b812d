//! Spreads: an amount split over the rows of its group by a driver, for many small groups at
//! once — a fee of an order over the order's lines, a waybill over the lines it shipped, a
//! shop's ad plan over the SKUs it sold that day.
//!
//! ```text
//!  SQL: the spread's rows, ORDER BY group keys, tie order      one sequential pass (here)
//!  ┌───────┬──────┬────────┬────────┐                         ┌────────┐
//!  │ order │ line │ amount │ driver │  ── groups by the keys ─►│ share  │ allocate_exact per
//!  │ A     │ 1    │ 10.00  │ 3      │     (arrow `partition`)  │  7.50  │ group, the udfs
//!  │ A     │ 2    │ 10.00  │ 1      │                          │  2.50  │ kernel
//!  │ B     │ 1    │  5.00  │ 0      │  driver total 0:         │  5.00  │ ◄ all on the first
//!  └───────┴──────┴────────┴────────┘  the first row           └────────┘   row
//! ```
//!
//! The same shares as `allocate_exact(amount, driver) OVER (PARTITION BY keys ORDER BY tie)`
//! with `COALESCE(share, CASE WHEN row_number() OVER … = 1 THEN amount ELSE 0 END)`, which is
//! what the ledger used first. But a window evaluates each partition on its own (a slice of
//! the batch, an evaluator, an output array, a final concat): microseconds per partition, and
//! nearly every partition here is an order of one to three lines: at scale 1 the window over
//! 0.4 M fee rows took 2.3 s of CPU (dev build). The sort stays in DataFusion; the pass over
//! sorted rows is linear.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, RecordBatch};
use datafusion::arrow::compute::{cast, concat_batches, partition};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, SchemaRef};
use datafusion::prelude::SessionContext;

use super::append_columns;
use super::staging::Staging;
use crate::error::{EngineError, Result};

/// The name of the column a spread appends: DECIMAL(38,2), the row's share of its group's
/// amount.
pub(crate) const SHARE: &str = "share";

/// How one spread reads its rows.
pub(crate) struct Spread<'a> {
    /// The working table it is registered as.
    pub(crate) name: &'a str,
    /// Its rows, sorted by `groups` and then by the order that breaks ties between equal
    /// remainders (the target key).
    pub(crate) sql: &'a str,
    /// The columns that make a group (one amount is split within each).
    pub(crate) groups: &'a [&'a str],
    /// The amount to split (the same on every row of a group), DECIMAL with scale ≤ 2.
    pub(crate) amount: &'a str,
    /// The driver (DECIMAL or integer).
    pub(crate) driver: &'a str,
}

impl Spread<'_> {
    /// Runs the spread's SQL, appends [`SHARE`] and registers the result as `name`.
    pub(crate) async fn register(&self, ctx: &SessionContext, staging: &Staging) -> Result<()> {
        let err = |e: &dyn std::fmt::Display| {
            EngineError::ledger(format!("ledger step {}: {e}", self.name))
        };
        let df = ctx.sql(self.sql).await.map_err(|e| err(&e))?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(|e| err(&e))?;
        let batch = concat_batches(&schema, &batches)?;
        drop(batches);
        let spread = self.apply(&batch).map_err(|e| err(&e))?;
        drop(batch);
        staging.batch(ctx, self.name, spread).await
    }

    /// `batch` with [`SHARE`] appended.
    pub(crate) fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let column = |name: &str| -> Result<&ArrayRef> {
            batch
                .column_by_name(name)
                .ok_or_else(|| EngineError::ledger(format!("no column '{name}'")))
        };
        let keys: Vec<ArrayRef> = self
            .groups
            .iter()
            .map(|g| column(g).cloned())
            .collect::<Result<_>>()?;
        let amount = column(self.amount)?;
        if !matches!(amount.data_type(), DataType::Decimal128(_, s) if *s <= 2) {
            return Err(EngineError::ledger(format!(
                "the amount '{}' is {}, not a decimal in cents",
                self.amount,
                amount.data_type()
            )));
        }
        let amount = cast(amount, &DataType::Decimal128(38, 2))?;
        let amount = amount.as_primitive::<Decimal128Type>();
        let driver = column(self.driver)?;
        let driver_scale = match driver.data_type() {
            DataType::Decimal128(_, s) => *s,
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => 0,
            other => {
                return Err(EngineError::ledger(format!(
                    "the driver '{}' is {other}, not a decimal or an integer",
                    self.driver
                )));
            }
        };
        let driver = cast(driver, &DataType::Decimal128(38, driver_scale))?;
        let driver = driver.as_primitive::<Decimal128Type>();

        let mut shares: Vec<Option<i128>> = Vec::with_capacity(batch.num_rows());
        let ranges = if keys.is_empty() {
            // No group columns: the whole batch is one group.
            std::iter::once(0..batch.num_rows()).collect()
        } else {
            partition(&keys)?.ranges()
        };
        for range in ranges {
            let pool =
                (range.start..range.end).find_map(|i| amount.is_valid(i).then(|| amount.value(i)));
            let drivers: Vec<Option<i128>> = (range.start..range.end)
                .map(|i| driver.is_valid(i).then(|| driver.value(i)))
                .collect();
            let allocated = match pool {
                Some(pool) => amoeba_udfs::allocate_exact(pool, &drivers)
                    .map_err(|e| EngineError::ledger(e.to_string()))?,
                None => None,
            };
            // As the window form did: a driver total of zero (or no amount) leaves every share
            // NULL, and the whole amount goes on the group's first row, 0 on the others. A
            // NULL driver's own share is NULL too and is filled the same way (first row: the
            // amount, which would then be counted beside the others' shares; the spreads'
            // driver, a line's net sales, is never NULL).
            let allocated = allocated.unwrap_or_else(|| vec![None; drivers.len()]);
            for (k, share) in allocated.into_iter().enumerate() {
                shares.push(share.or(if k == 0 { pool } else { Some(0) }));
            }
        }
        let shares: ArrayRef =
            Arc::new(Decimal128Array::from(shares).with_precision_and_scale(38, 2)?);
        append_columns(
            batch,
            vec![(Field::new(SHARE, DataType::Decimal128(38, 2), true), shares)],
        )
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Decimal128Array, StringArray};
    use datafusion::arrow::datatypes::Schema;
    use datafusion::datasource::MemTable;

    use super::*;

    /// Random groups of 1–4 rows (zero, NULL and negative drivers, NULL and negative
    /// amounts): the spread gives the shares of the window form it replaces, row for row.
    #[tokio::test]
    async fn the_same_shares_as_the_window() -> Result<()> {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let (mut groups, mut lines, mut amounts, mut drivers) = (vec![], vec![], vec![], vec![]);
        for g in 0..2_000u64 {
            let amount = match next(10) {
                0 => None,
                1 => Some(-(next(100_000) as i128)),
                _ => Some(next(100_000) as i128),
            };
            for l in 0..=next(4) {
                groups.push(format!("g{g:05}"));
                lines.push(format!("l{l}"));
                amounts.push(amount);
                drivers.push(match next(8) {
                    0 => None,
                    1 => Some(0),
                    2 => Some(-(next(5_000) as i128)),
                    _ => Some(next(5_000) as i128),
                });
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("grp", DataType::Utf8, false),
            Field::new("line", DataType::Utf8, false),
            Field::new("amount", DataType::Decimal128(18, 2), true),
            Field::new("driver", DataType::Decimal128(18, 4), true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(groups)),
                Arc::new(StringArray::from(lines)),
                Arc::new(Decimal128Array::from(amounts).with_precision_and_scale(18, 2)?),
                Arc::new(Decimal128Array::from(drivers).with_precision_and_scale(18, 4)?),
            ],
        )?;
        // In memory, and staged on disk as a build under a memory limit does.
        for staging in [Staging::Memory, Staging::new(Some(64 << 20))?] {
            let ctx = crate::session::new_session_in(staging.runtime()?)?;
            let table = MemTable::try_new(Arc::clone(&schema), vec![vec![batch.clone()]])?;
            ctx.register_table("t", Arc::new(table))?;
            Spread {
                name: "spread",
                sql: "SELECT * FROM t ORDER BY grp, line",
                groups: &["grp"],
                amount: "amount",
                driver: "driver",
            }
            .register(&ctx, &staging)
            .await?;
            let differences = ctx
                .sql(
                    "WITH w AS (SELECT grp, line, \
                     CAST(COALESCE(allocate_exact(amount, driver) OVER p, \
                          CASE WHEN row_number() OVER p = 1 THEN amount ELSE 0 END) \
                          AS DECIMAL(38,2)) AS share \
                   FROM t WINDOW p AS (PARTITION BY grp ORDER BY line)) \
                 SELECT count(*) FROM w FULL JOIN spread s ON s.grp = w.grp AND s.line = w.line \
                 WHERE (s.share IS DISTINCT FROM w.share) OR s.grp IS NULL OR w.grp IS NULL",
                )
                .await?
                .collect()
                .await?;
            let n = differences[0]
                .column(0)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .value(0);
            assert_eq!(n, 0, "rows whose share differs from the window's");
            let rows = ctx
                .sql("SELECT count(*) FROM spread")
                .await?
                .collect()
                .await?;
            assert!(
                rows[0]
                    .column(0)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .value(0)
                    > 4_000
            );
        }
        Ok(())
    }

    #[test]
    fn a_driver_total_of_zero_puts_the_amount_on_the_first_row() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("grp", DataType::Utf8, false),
            Field::new("amount", DataType::Decimal128(18, 2), true),
            Field::new("driver", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["A", "A", "B", "B"])),
                Arc::new(
                    Decimal128Array::from(vec![1000, 1000, 500, 500])
                        .with_precision_and_scale(18, 2)?,
                ),
                Arc::new(datafusion::arrow::array::Int64Array::from(vec![3, 1, 0, 0])),
            ],
        )?;
        let spread = Spread {
            name: "s",
            sql: "",
            groups: &["grp"],
            amount: "amount",
            driver: "driver",
        }
        .apply(&batch)?;
        let shares = spread.column(3).as_primitive::<Decimal128Type>();
        assert_eq!(shares.values().to_vec(), vec![750, 250, 500, 0]);
        Ok(())
    }
}
