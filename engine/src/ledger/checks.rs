//! The reconciliation report (`amoeba check`, the SQL table `amoeba_checks`): source totals vs
//! ledger totals, pools vs their shares, settlement netting to zero, the company vs its units,
//! and every input problem the build worked around (unmapped fee names, SKUs without a
//! purchase cost, zero drivers, rows on the root, rejected files and rows).
//!
//! A row is `ok`, `warn` (reported, the numbers are still whole) or `fail` (an invariant is
//! broken or an input needs fixing); `amoeba check` exits non-zero when any row fails.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Decimal128Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::SessionContext;

use super::{decimal_col, string_col};
use crate::error::Result;

/// The name of the checks table.
pub const CHECKS_TABLE: &str = "amoeba_checks";

/// How a check came out.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// As it should be.
    Ok,
    /// Reported; nothing lost.
    Warn,
    /// An invariant is broken or an input needs fixing.
    Fail,
}

impl Status {
    /// `ok`, `warn`, `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "ok" => Status::Ok,
            "warn" => Status::Warn,
            _ => Status::Fail,
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckRow {
    /// What is checked (`sales_reconcile`).
    pub check: String,
    /// Where (`tmall tm001 2025-03`).
    pub scope: String,
    /// The outcome.
    pub status: Status,
    /// The source side, in cents (or a count), when the check compares.
    pub expected: Option<i128>,
    /// The ledger side, in cents.
    pub actual: Option<i128>,
    /// What it means.
    pub detail: String,
}

impl CheckRow {
    /// A comparison: ok when equal, fail otherwise.
    pub(crate) fn compare(
        check: &str,
        scope: String,
        expected: i128,
        actual: i128,
        detail: String,
    ) -> CheckRow {
        CheckRow {
            check: check.to_string(),
            scope,
            status: if expected == actual {
                Status::Ok
            } else {
                Status::Fail
            },
            expected: Some(expected),
            actual: Some(actual),
            detail,
        }
    }

    /// A finding.
    pub(crate) fn note(
        check: &str,
        scope: String,
        status: Status,
        amount: Option<i128>,
        detail: String,
    ) -> CheckRow {
        CheckRow {
            check: check.to_string(),
            scope,
            status,
            expected: None,
            actual: amount,
            detail,
        }
    }
}

/// A comparison per platform, shop and month: `source` yields (platform, shop_id, month, v),
/// the ledger side is the sum of the rows matching `ledger_rows`.
fn per_shop_month(source: &str, ledger_rows: &str, detail: &str) -> String {
    format!(
        "WITH s AS ({source}), \
              l AS (SELECT platform, shop_id, month, SUM(amount) AS v \
                    FROM b_ledger_sums WHERE {ledger_rows} GROUP BY 1, 2, 3) \
         SELECT concat(COALESCE(s.platform, l.platform), ' ', COALESCE(s.shop_id, l.shop_id), ' ', \
                       COALESCE(s.month, l.month)), \
                COALESCE(s.v, 0), COALESCE(l.v, 0), '{detail}' \
         FROM s FULL JOIN l ON s.platform = l.platform AND s.shop_id = l.shop_id AND s.month = l.month"
    )
}

/// The source side of a comparison per platform, shop and month: the `kind` rows of
/// `b_source_sums`.
fn source_sums_of(kind: &str) -> String {
    format!("SELECT platform, shop_id, month, v FROM b_source_sums WHERE kind = '{kind}'")
}

/// Comparisons in SQL over the build's tables: each yields (check, scope, expected, actual,
/// detail) with money as DECIMAL(38,2).
fn comparisons() -> Vec<(&'static str, String)> {
    vec![
        (
            "sales_reconcile",
            per_shop_month(
                &source_sums_of("sales"),
                "source = 'order_lines'",
                "order_lines gross − seller discount + shipping vs the ledger",
            ),
        ),
        (
            "refunds_reconcile",
            per_shop_month(
                &source_sums_of("refunds"),
                "source = 'refunds'",
                "refunds vs the ledger",
            ),
        ),
        (
            "ad_spend_reconcile",
            per_shop_month(
                &source_sums_of("ad_spend"),
                "source = 'ad_spend'",
                "ad spend vs the ledger",
            ),
        ),
        (
            "fees_reconcile",
            "WITH s AS (SELECT platform, shop_id, v FROM b_source_sums WHERE kind = 'fees'), \
                  l AS (SELECT platform, shop_id, SUM(amount) AS v FROM b_ledger_sums \
                        WHERE starts_with(source, 'fees:') GROUP BY 1, 2) \
             SELECT concat(COALESCE(s.platform, l.platform), ' ', COALESCE(s.shop_id, l.shop_id)), \
                    COALESCE(s.v, 0), COALESCE(l.v, 0), \
                    'fees vs the ledger (fees move to their order''s payment month, so per shop)' \
             FROM s FULL JOIN l ON s.platform = l.platform AND s.shop_id = l.shop_id"
                .to_string(),
        ),
        (
            "waybills_reconcile",
            "SELECT 'all', (SELECT COALESCE(SUM(v), 0) FROM b_source_sums WHERE kind = 'waybills'), \
                    (SELECT COALESCE(SUM(amount), 0) FROM b_ledger_sums WHERE source = 'waybills'), \
                    'waybill freight vs the ledger (outbound freight moves to the payment month)'"
                .to_string(),
        ),
        (
            "expenses_reconcile",
            "WITH s AS (SELECT month, v FROM b_source_sums WHERE kind = 'expenses'), \
                  l AS (SELECT month, SUM(amount) AS v FROM b_ledger_sums \
                        WHERE starts_with(source, 'expenses:') OR starts_with(source, 'pool:') GROUP BY 1) \
             SELECT COALESCE(s.month, l.month), COALESCE(s.v, 0), COALESCE(l.v, 0), \
                    'expenses vs their direct costs and pool shares' \
             FROM s FULL JOIN l ON s.month = l.month"
                .to_string(),
        ),
        (
            "settlement_nets_to_zero",
            "SELECT month, CAST(0 AS DECIMAL(38,2)), SUM(amount), \
                    'internal revenue + internal cost, company-wide' \
             FROM b_ledger_sums WHERE account IN ('internal_revenue', 'internal_cost') GROUP BY 1"
                .to_string(),
        ),
        (
            // The stock book (b_stock, one row per chain and month) against the ledger: a
            // month's change of stock value is its receipts plus its COGS and inventory-loss
            // rows. A costed movement missing from the ledger, or posted to another month
            // than the one it was costed in, shows here.
            "stock_rollforward",
            "WITH v AS (SELECT month, SUM(value) AS v FROM b_stock GROUP BY month), \
                  b AS (SELECT month, v - COALESCE(lag(v) OVER (ORDER BY month), 0) AS v FROM v), \
                  r AS (SELECT month, SUM(value) AS v FROM b_costed WHERE kind = 'receipt' GROUP BY month), \
                  l AS (SELECT month, SUM(amount) AS v FROM b_ledger_sums \
                        WHERE account IN ('cogs', 'inventory_loss') GROUP BY month), \
                  p AS (SELECT COALESCE(r.month, l.month) AS month, \
                               COALESCE(r.v, 0) + COALESCE(l.v, 0) AS v \
                        FROM r FULL JOIN l ON r.month = l.month) \
             SELECT COALESCE(b.month, p.month), COALESCE(b.v, 0), COALESCE(p.v, 0), \
                    'month-end stock value less the month before vs receipts + cogs + inventory_loss' \
             FROM b FULL JOIN p ON b.month = p.month"
                .to_string(),
        ),
        (
            "company_equals_units",
            "SELECT 'all', (SELECT COALESCE(SUM(amount), 0) FROM b_ledger_sums), \
                    (SELECT COALESCE(SUM(l.amount), 0) FROM b_ledger_sums l JOIN b_units u ON u.unit_id = l.unit_id), \
                    'company profit vs the sum of the units'' profits (rows of unknown units would differ)'"
                .to_string(),
        ),
    ]
}

/// Findings in SQL: each yields (scope, status, amount, detail).
const FINDINGS: &[(&str, &str)] = &[
    (
        "fee_name_mapped",
        "SELECT concat(platform, ' ', name), 'fail', v, \
                concat(CAST(n AS VARCHAR), ' fee row(s) with a name in no mapping: booked as other_platform_fee; \
                        add it to [fee_accounts] in the model or to the platform mapping') \
         FROM b_source_sums WHERE kind = 'unmapped_fees'",
    ),
    (
        "sku_has_cost",
        "SELECT sku, 'fail', CAST(SUM(qty) AS DECIMAL(38,2)), \
                concat(CAST(COUNT(*) AS VARCHAR), ' movement(s) of ', CAST(SUM(qty) AS VARCHAR), \
                       ' unit(s) with no purchase cost: COGS 0 (add its purchases)') \
         FROM b_costed WHERE uncosted GROUP BY sku",
    ),
    (
        "stock_covers_sales",
        "SELECT concat(sku, ' @ ', warehouse), 'warn', CAST(SUM(shortfall) AS DECIMAL(38,2)), \
                concat(CAST(SUM(shortfall) AS VARCHAR), ' unit(s) issued beyond the stock on hand, costed at the last known cost') \
         FROM b_costed WHERE shortfall > 0 AND NOT uncosted GROUP BY sku, warehouse",
    ),
    (
        "rows_on_root",
        "SELECT concat(account, ' ', source), 'warn', SUM(amount), \
                concat(CAST(SUM(n) AS VARCHAR), ' ledger row(s) no assignment rule matched: on the root unit') \
         FROM b_ledger_sums WHERE unit_id = (SELECT unit_id FROM b_units WHERE kind = 'company') GROUP BY account, source",
    ),
    (
        "unit_known",
        "SELECT unit_id, 'fail', SUM(amount), 'ledger rows of a unit the model does not declare' \
         FROM b_ledger_sums WHERE unit_id NOT IN (SELECT unit_id FROM b_units) GROUP BY unit_id",
    ),
    (
        "files_served",
        "SELECT path, 'fail', CAST(NULL AS DECIMAL(38,2)), concat('rejected file: ', error) \
         FROM amoeba_files WHERE status = 'rejected'",
    ),
    (
        "rows_mapped",
        "SELECT concat(\"view\", ' ', file), 'fail', CAST(COUNT(*) AS DECIMAL(38,2)), \
                concat(CAST(COUNT(*) AS VARCHAR), ' row(s) left out of the view, e.g. for a missing ', MIN(missing_column)) \
         FROM amoeba_rejected_rows GROUP BY \"view\", file",
    ),
];

/// The ledger summed at the grain every check needs (`b_ledger_sums`): the checks read this
/// table of some thousands of rows instead of scanning the ledger's millions once each.
const LEDGER_SUMS: &str = "\
    SELECT month, platform, shop_id, unit_id, account, source, SUM(amount) AS amount, COUNT(*) AS n \
    FROM b_ledger GROUP BY month, platform, shop_id, unit_id, account, source";

/// The source totals the comparisons and the unmapped fee names read (`b_source_sums`), from a
/// build session's unified views and its working table `b_fees`: one row per `kind` and
/// group with rows, its total `v` and its rows `n`.
///
/// A refresh by delta sums these over every source row too, not by delta: they are its check
/// on the closure (`delta::refresh`). The sales are summed from `order_lines` itself, not
/// from `b_lines` (its rows, one per line, with the unit and the shipping status joined): the
/// sums are the same, and a refresh by delta need not build `b_lines` over every line only
/// for them (0.3 s of a day at scale 1).
const SOURCE_SUMS: &str = "\
    SELECT 'sales' AS kind, platform, shop_id, to_char(CAST(paid_at AS DATE), '%Y-%m') AS month, \
           CAST(NULL AS VARCHAR) AS name, \
           SUM(gross_sales - seller_discount + shipping_income) AS v, COUNT(*) AS n \
    FROM order_lines GROUP BY 2, 3, 4 \
    UNION ALL SELECT 'refunds', platform, shop_id, to_char(refunded_at, '%Y-%m'), NULL, \
           SUM(-amount), COUNT(*) FROM refunds GROUP BY 2, 3, 4 \
    UNION ALL SELECT 'ad_spend', platform, shop_id, to_char(date, '%Y-%m'), NULL, SUM(-spend), \
           COUNT(*) FROM ad_spend GROUP BY 2, 3, 4 \
    UNION ALL SELECT 'fees', platform, shop_id, NULL, NULL, SUM(amount), COUNT(*) \
           FROM b_fees GROUP BY 2, 3 \
    UNION ALL SELECT 'unmapped_fees', platform, NULL, NULL, fee_name, SUM(amount), COUNT(*) \
           FROM b_fees WHERE unmapped GROUP BY 2, 5 \
    UNION ALL SELECT 'waybills', NULL, NULL, NULL, NULL, SUM(-cost), COUNT(*) FROM waybills \
           HAVING COUNT(*) > 0 \
    UNION ALL SELECT 'expenses', NULL, NULL, month, NULL, SUM(-amount), COUNT(*) \
           FROM expenses GROUP BY 4";

/// The columns of `b_source_sums`, cast to the types it is stored with.
const SOURCE_SUMS_COLUMNS: &str = "CAST(kind AS VARCHAR) AS kind, \
    CAST(platform AS VARCHAR) AS platform, CAST(shop_id AS VARCHAR) AS shop_id, \
    CAST(month AS VARCHAR) AS month, CAST(name AS VARCHAR) AS name, \
    CAST(COALESCE(v, 0) AS DECIMAL(38,2)) AS v, CAST(n AS BIGINT) AS n";

/// The order of the source totals' rows: one order, so that the table is the same however
/// its rows were computed.
const SOURCE_SUMS_ORDER: &str = "kind, platform, shop_id, month, name";

/// The totals the checks compare. The ledger's are kept with each version, so that a refresh
/// by delta takes those of the months it does not rewrite instead of reading their files.
#[derive(Debug, Clone)]
pub struct CheckSums {
    /// The source totals (`b_source_sums`: `kind`, `platform`, `shop_id`, `month`, `name`,
    /// `v`, `n`).
    pub sources: RecordBatch,
    /// The ledger's totals by month, platform, shop, unit, account and source
    /// (`b_ledger_sums`).
    pub ledger: RecordBatch,
}

impl CheckSums {
    /// The sums of a build session over its working tables and `b_ledger`.
    pub(crate) async fn of_build(ctx: &SessionContext) -> Result<CheckSums> {
        Ok(CheckSums {
            sources: source_sums(ctx).await?,
            ledger: ledger_sums(ctx, "b_ledger").await?,
        })
    }
}

/// The source totals of a session with the build's working tables (`SOURCE_SUMS`).
pub(crate) async fn source_sums(ctx: &SessionContext) -> Result<RecordBatch> {
    super::delta::collect_one(
        ctx,
        &format!("SELECT {SOURCE_SUMS_COLUMNS} FROM ({SOURCE_SUMS}) ORDER BY {SOURCE_SUMS_ORDER}"),
    )
    .await
}

/// The totals of the ledger rows in `table`, at the checks' grain (`LEDGER_SUMS`).
pub(crate) async fn ledger_sums(ctx: &SessionContext, table: &str) -> Result<RecordBatch> {
    super::delta::collect_one(
        ctx,
        &format!(
            "SELECT month, platform, shop_id, unit_id, account, source, \
                    CAST(amount AS DECIMAL(38,2)) AS amount, CAST(n AS BIGINT) AS n \
             FROM ({}) ORDER BY month, platform, shop_id, unit_id, account, source",
            LEDGER_SUMS.replace("FROM b_ledger", &format!("FROM {table}"))
        ),
    )
    .await
}

/// Runs the SQL checks over `sums` and the build session's other tables (`b_stock`,
/// `b_costed`, `b_units`, `amoeba_files`, `amoeba_rejected_rows`).
pub(crate) async fn run(ctx: &SessionContext, sums: &CheckSums) -> Result<Vec<CheckRow>> {
    super::register(ctx, "b_source_sums", sums.sources.clone())?;
    super::register(ctx, "b_ledger_sums", sums.ledger.clone())?;
    let mut rows = Vec::new();
    for (check, sql) in comparisons() {
        let sql = format!(
            "SELECT CAST(c0 AS VARCHAR), CAST(c1 AS DECIMAL(38,2)), CAST(c2 AS DECIMAL(38,2)), CAST(c3 AS VARCHAR) \
             FROM ({sql}) AS t(c0, c1, c2, c3) ORDER BY 1"
        );
        for batch in ctx.sql(&sql).await?.collect().await? {
            let (scope, expected, actual, detail) = (
                string_col(&batch, 0)?,
                decimal_col(&batch, 1, 2)?,
                decimal_col(&batch, 2, 2)?,
                string_col(&batch, 3)?,
            );
            for i in 0..batch.num_rows() {
                rows.push(CheckRow::compare(
                    check,
                    scope.value(i).to_string(),
                    dec(&expected, i),
                    dec(&actual, i),
                    detail.value(i).to_string(),
                ));
            }
        }
    }
    for (check, sql) in FINDINGS {
        let sql = format!(
            "SELECT CAST(c0 AS VARCHAR), CAST(c1 AS VARCHAR), CAST(c2 AS DECIMAL(38,2)), CAST(c3 AS VARCHAR) \
             FROM ({sql}) AS t(c0, c1, c2, c3) ORDER BY 1"
        );
        for batch in ctx.sql(&sql).await?.collect().await? {
            let (scope, status, amount, detail) = (
                string_col(&batch, 0)?,
                string_col(&batch, 1)?,
                decimal_col(&batch, 2, 2)?,
                string_col(&batch, 3)?,
            );
            for i in 0..batch.num_rows() {
                rows.push(CheckRow::note(
                    check,
                    scope.value(i).to_string(),
                    Status::parse(status.value(i)),
                    (!datafusion::arrow::array::Array::is_null(&amount, i))
                        .then(|| amount.value(i)),
                    detail.value(i).to_string(),
                ));
            }
        }
    }
    Ok(rows)
}

fn dec(a: &Decimal128Array, i: usize) -> i128 {
    if datafusion::arrow::array::Array::is_null(a, i) {
        0
    } else {
        a.value(i)
    }
}

/// The schema of `amoeba_checks`.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("check", DataType::Utf8, false),
        Field::new("scope", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("expected", DataType::Decimal128(38, 2), true),
        Field::new("actual", DataType::Decimal128(38, 2), true),
        Field::new("difference", DataType::Decimal128(38, 2), true),
        Field::new("detail", DataType::Utf8, false),
    ]))
}

/// The report as one batch.
pub(crate) fn to_batch(rows: &[CheckRow]) -> Result<RecordBatch> {
    let s = |f: fn(&CheckRow) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let d = |f: fn(&CheckRow) -> Option<i128>| -> Result<ArrayRef> {
        Ok(Arc::new(
            rows.iter()
                .map(f)
                .collect::<Decimal128Array>()
                .with_precision_and_scale(38, 2)?,
        ))
    };
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            s(|r| &r.check),
            s(|r| &r.scope),
            s(|r| r.status.as_str()),
            d(|r| r.expected)?,
            d(|r| r.actual)?,
            d(|r| match (r.expected, r.actual) {
                (Some(e), Some(a)) => Some(a - e),
                _ => None,
            })?,
            s(|r| &r.detail),
        ],
    )?)
}
