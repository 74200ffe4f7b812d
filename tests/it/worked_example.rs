//! The worked example of spec/pnl.md (`amoeba_data::fixture::worked_example`, walked through
//! in docs/model.md): one Tmall shop, one SKU, 1,000 orders in March 2025. Every line of the
//! P&L chain is checked to the cent, through the SQL a user would write over `pnl` and
//! `pnl_ledger`; money is compared as exact decimal text, never as floats.

use amoeba_catalog::{Catalog, Warehouse};
use amoeba_engine::{Ledger, LedgerMode};
use datafusion::prelude::SessionContext;

use crate::support::{rows, scalar};

/// Writes the fixture into a temporary directory and opens it with its ledger.
async fn open() -> (tempfile::TempDir, SessionContext, Catalog, Ledger) {
    let dir = tempfile::tempdir().expect("tempdir");
    amoeba_data::fixture::worked_example(dir.path()).expect("write the worked example");
    let warehouse = Warehouse::open(&dir.path().to_string_lossy()).expect("open warehouse");
    let (ctx, catalog, ledger) = amoeba_engine::open_with_ledger(warehouse, LedgerMode::InMemory)
        .await
        .expect("open with ledger");
    let ledger = ledger.expect("the worked example has a model");
    (dir, ctx, catalog, ledger)
}

/// `SUM(<column>)` of `pnl` over `filter`, as exact decimal text, for each column.
async fn pnl_sums(ctx: &SessionContext, filter: &str, columns: &[&str]) -> Vec<(String, String)> {
    let select: Vec<String> = columns
        .iter()
        .map(|c| format!("CAST(SUM({c}) AS VARCHAR)"))
        .collect();
    let sql = format!("SELECT {} FROM pnl WHERE {filter}", select.join(", "));
    let got = rows(ctx, &sql).await;
    assert_eq!(got.len(), 1, "{sql}");
    columns
        .iter()
        .map(|c| c.to_string())
        .zip(got[0].iter().cloned())
        .collect()
}

fn expect(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn columns(pairs: &[(&'static str, &str)]) -> Vec<&'static str> {
    pairs.iter().map(|(c, _)| *c).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fixture_is_served_whole() {
    let (_dir, ctx, catalog, _) = open().await;
    assert!(
        catalog.rejections().is_empty(),
        "{:#?}",
        catalog.rejections()
    );
    assert_eq!(
        scalar(&ctx, "SELECT COUNT(*) FROM amoeba_rejected_rows").await,
        "0"
    );
    let views = rows(
        &ctx,
        "SELECT 'order_lines', COUNT(*), CAST(SUM(net_sales) AS VARCHAR) FROM order_lines \
         UNION ALL SELECT 'refunds', COUNT(*), CAST(SUM(amount) AS VARCHAR) FROM refunds \
         UNION ALL SELECT 'fees', COUNT(*), CAST(SUM(amount) AS VARCHAR) FROM fees \
         UNION ALL SELECT 'ad_spend', COUNT(*), CAST(SUM(spend) AS VARCHAR) FROM ad_spend \
         UNION ALL SELECT 'waybills', COUNT(*), CAST(SUM(cost) AS VARCHAR) FROM waybills \
         UNION ALL SELECT 'purchases', COUNT(*), CAST(SUM(qty) AS VARCHAR) FROM purchases \
         UNION ALL SELECT 'expenses', COUNT(*), CAST(SUM(amount) AS VARCHAR) FROM expenses \
         ORDER BY 1",
    )
    .await;
    let views: Vec<String> = views.iter().map(|r| r.join(" | ")).collect();
    let want = [
        "ad_spend | 1 | 2000.00",
        "expenses | 2 | 4800.00",
        "fees | 880 | -2640.00",
        "order_lines | 1000 | 60000.00",
        "purchases | 1 | 1000",
        "refunds | 120 | 7200.00",
        "waybills | 1120 | 4480.00",
    ];
    assert_eq!(views, want);
    // The returned orders were closed after payment: still sales, their money back as refunds.
    let status = rows(
        &ctx,
        "SELECT status, COUNT(*) FROM order_lines GROUP BY status ORDER BY status",
    )
    .await;
    let status: Vec<String> = status.iter().map(|r| r.join(" | ")).collect();
    assert_eq!(status, ["closed | 120", "completed | 880"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pnl_of_p1_line_by_line() {
    let (_dir, ctx, _, ledger) = open().await;

    // Unit P1, March 2025: the chain of spec/pnl.md's worked example.
    let p1 = [
        ("gross_sales", "60000.00"),
        ("seller_discount", "0.00"),
        ("shipping_income", "0.00"),
        ("refund", "-7200.00"),
        ("net_sales", "52800.00"),
        ("cogs", "-36960.00"),
        ("inventory_loss", "0.00"),
        ("gross_profit", "15840.00"),
        ("platform_commission", "-2640.00"),
        ("platform_service_fee", "0.00"),
        ("payment_fee", "0.00"),
        ("shipping_cost", "-4480.00"),
        ("packaging", "-800.00"),
        ("cm2", "7920.00"),
        ("advertising", "-2000.00"),
        ("affiliate_commission", "0.00"),
        ("cm3", "5920.00"),
        ("allocated_customer_service", "-4000.00"),
        ("allocated_other", "0.00"),
        ("allocated_total", "-4000.00"),
        ("other_platform_fee", "0.00"),
        ("internal_revenue", "0.00"),
        ("internal_cost", "-500.00"),
        ("net_profit", "1420.00"),
    ];
    assert_eq!(
        pnl_sums(&ctx, "unit_id = 'P1' AND month = '2025-03'", &columns(&p1)).await,
        expect(&p1)
    );

    // The SKU-level rows carry DEMO-1: sales, refunds, COGS, fees, freight and ads.
    let sku = [
        ("gross_sales", "60000.00"),
        ("refund", "-7200.00"),
        ("cogs", "-36960.00"),
        ("platform_commission", "-2640.00"),
        ("shipping_cost", "-4480.00"),
        ("packaging", "0.00"),
        ("advertising", "-2000.00"),
        ("cm3", "6720.00"),
        ("allocated_total", "0.00"),
        ("internal_cost", "0.00"),
        ("net_profit", "6720.00"),
    ];
    assert_eq!(
        pnl_sums(&ctx, "unit_id = 'P1' AND sku = 'DEMO-1'", &columns(&sku)).await,
        expect(&sku)
    );
    // The month-level rows (pools and settlement) have no SKU and are dated the month's end.
    let month = [
        ("gross_sales", "0.00"),
        ("packaging", "-800.00"),
        ("allocated_customer_service", "-4000.00"),
        ("internal_cost", "-500.00"),
        ("net_profit", "-5300.00"),
    ];
    assert_eq!(
        pnl_sums(&ctx, "unit_id = 'P1' AND sku IS NULL", &columns(&month)).await,
        expect(&month)
    );
    assert_eq!(
        scalar(
            &ctx,
            "SELECT CAST(COUNT(DISTINCT date) AS VARCHAR) || ' ' || CAST(MIN(date) AS VARCHAR) \
             FROM pnl WHERE sku IS NULL"
        )
        .await,
        "1 2025-03-31"
    );

    // The service unit earns what P1 pays it; the company is the sum of its units.
    let wh = [("internal_revenue", "500.00"), ("net_profit", "500.00")];
    assert_eq!(
        pnl_sums(&ctx, "unit_id = 'WH'", &columns(&wh)).await,
        expect(&wh)
    );
    let company = [
        ("internal_revenue", "500.00"),
        ("internal_cost", "-500.00"),
        ("net_profit", "1920.00"),
    ];
    assert_eq!(
        pnl_sums(&ctx, "true", &columns(&company)).await,
        expect(&company)
    );
    assert_eq!(
        rows(
            &ctx,
            "SELECT unit_id FROM pnl GROUP BY unit_id ORDER BY unit_id"
        )
        .await,
        vec![vec!["P1".to_string()], vec!["WH".to_string()]]
    );

    // Margins with the KPI functions: 30 % gross, 2.69 % net (below 5 %).
    let margins = rows(
        &ctx,
        "SELECT CAST(round(gross_margin(SUM(gross_profit), SUM(net_sales)), 4) AS VARCHAR), \
                CAST(round(net_margin(SUM(net_profit), SUM(net_sales)), 4) AS VARCHAR), \
                net_margin(SUM(net_profit), SUM(net_sales)) < 0.05 \
         FROM pnl WHERE unit_id = 'P1'",
    )
    .await;
    assert_eq!(margins, vec![vec!["0.3", "0.0269", "true"]]);

    // Reconciliation: every check is ok.
    let not_ok = rows(
        &ctx,
        "SELECT \"check\", scope, status, CAST(expected AS VARCHAR), CAST(actual AS VARCHAR), detail \
         FROM amoeba_checks WHERE status <> 'ok' ORDER BY 1, 2",
    )
    .await;
    assert!(not_ok.is_empty(), "{not_ok:#?}");
    assert_eq!(
        scalar(
            &ctx,
            "SELECT count(*) FROM amoeba_checks WHERE status <> 'ok'"
        )
        .await,
        "0"
    );
    assert!(!ledger.failed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ledger_line_has_its_source_date_and_sign() {
    let (_dir, ctx, _, _) = open().await;

    // The ledger rows by unit, account and source (zero lines — no discount, no postage —
    // left out), with their units and date range.
    let lines = rows(
        &ctx,
        "SELECT unit_id, account, source, COALESCE(sku, '-'), CAST(SUM(amount) AS VARCHAR), \
                COALESCE(CAST(SUM(qty) AS VARCHAR), '-'), \
                CAST(MIN(date) AS VARCHAR), CAST(MAX(date) AS VARCHAR) \
         FROM pnl_ledger GROUP BY unit_id, account, source, sku \
         HAVING SUM(amount) <> 0 ORDER BY unit_id, account, source",
    )
    .await;
    let lines: Vec<String> = lines.iter().map(|r| r.join(" | ")).collect();
    let want = [
        "P1 | advertising | ad_spend | DEMO-1 | -2000.00 | - | 2025-03-10 | 2025-03-10",
        "P1 | allocated_customer_service | pool:customer_service | - | -4000.00 | - | 2025-03-31 | 2025-03-31",
        "P1 | cogs | cogs:fifo | DEMO-1 | -42000.00 | 1000 | 2025-03-01 | 2025-03-20",
        "P1 | cogs | cogs:return | DEMO-1 | 5040.00 | -120 | 2025-03-06 | 2025-03-25",
        "P1 | gross_sales | order_lines | DEMO-1 | 60000.00 | 1000 | 2025-03-01 | 2025-03-20",
        "P1 | internal_cost | settlement:warehousing | - | -500.00 | - | 2025-03-31 | 2025-03-31",
        "P1 | packaging | pool:packaging | - | -800.00 | - | 2025-03-31 | 2025-03-31",
        "P1 | platform_commission | fees:天猫佣金 | DEMO-1 | -2640.00 | - | 2025-03-01 | 2025-03-20",
        "P1 | refund | refunds | DEMO-1 | -7200.00 | - | 2025-03-06 | 2025-03-25",
        "P1 | shipping_cost | waybills | DEMO-1 | -4480.00 | - | 2025-03-01 | 2025-03-23",
        "WH | internal_revenue | settlement:warehousing | - | 500.00 | - | 2025-03-31 | 2025-03-31",
    ];
    assert_eq!(lines, want);

    // A restocked return reverses its COGS on the refund's date: 42.00 for every 60.00 refunded.
    let mismatched = rows(
        &ctx,
        "SELECT date FROM pnl_ledger WHERE account IN ('refund', 'cogs') AND source <> 'cogs:fifo' \
         GROUP BY date \
         HAVING SUM(CASE WHEN account = 'refund' THEN amount ELSE 0 END) * 7 \
                <> -10 * SUM(CASE WHEN account = 'cogs' THEN amount ELSE 0 END)",
    )
    .await;
    assert!(mismatched.is_empty(), "{mismatched:?}");

    // Outbound freight sits on the payment date of its order (4.00 per 60.00 of sales), return
    // freight on the day the return was shipped, two days before its refund.
    let misdated = rows(
        &ctx,
        "WITH d AS (SELECT date, \
                 SUM(CASE WHEN account = 'shipping_cost' THEN amount ELSE 0 END) AS freight, \
                 SUM(CASE WHEN account = 'gross_sales' THEN amount ELSE 0 END) AS sales, \
                 SUM(CASE WHEN account = 'refund' THEN amount ELSE 0 END) AS refunds \
                 FROM pnl_ledger GROUP BY date) \
         SELECT CAST(a.date AS VARCHAR) FROM d a LEFT JOIN d b ON b.date = a.date + INTERVAL '2 days' \
         WHERE a.freight * 15 <> -a.sales + COALESCE(b.refunds, 0)",
    )
    .await;
    assert!(misdated.is_empty(), "{misdated:?}");

    // Internal settlement nets to zero company-wide.
    assert_eq!(
        scalar(
            &ctx,
            "SELECT CAST(SUM(amount) AS VARCHAR) FROM pnl_ledger \
             WHERE account IN ('internal_revenue', 'internal_cost')"
        )
        .await,
        "0.00"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sku_chain_is_served_from_a_cube() {
    let dir = tempfile::tempdir().expect("tempdir");
    amoeba_data::fixture::worked_example(dir.path()).expect("write the worked example");
    let warehouse = Warehouse::open(&dir.path().to_string_lossy()).expect("open warehouse");
    let served = amoeba_engine::open_published(warehouse, Default::default())
        .await
        .expect("refresh");
    let ctx = &served.ctx;
    let chain = |set: &str| {
        format!(
            "SELECT sku, CAST(gross_sales AS VARCHAR), CAST(refund AS VARCHAR), CAST(net_sales AS VARCHAR), \
                    CAST(gross_profit AS VARCHAR), CAST(cm2 AS VARCHAR), CAST(cm3 AS VARCHAR), \
                    CAST(net_profit AS VARCHAR), units_sold, CAST(round(gross_margin, 4) AS VARCHAR), \
                    CAST(round(net_margin, 4) AS VARCHAR), CAST(round(refund_rate, 4) AS VARCHAR), \
                    CAST(round(roas, 1) AS VARCHAR) \
             FROM cubes.sku_monthly WHERE _set = '{set}' AND unit_id = 'P1' AND month = '2025-03' \
             ORDER BY sku NULLS LAST"
        )
    };
    // The unit: the whole chain of docs/model.md, net margin 2.69 %.
    assert_eq!(
        rows(ctx, &chain("month,unit_id")).await,
        vec![vec![
            "NULL", "60000.00", "-7200.00", "52800.00", "15840.00", "7920.00", "5920.00",
            "1420.00", "1000", "0.3", "0.0269", "0.12", "26.4"
        ]]
    );
    // By SKU: the SKU's own P&L, and the unit's costs that carry no SKU (packaging material,
    // the customer-service pool, the warehouse's settlement) on a row of their own.
    assert_eq!(
        rows(ctx, &chain("month,sku,unit_id")).await,
        vec![
            vec![
                "DEMO-1", "60000.00", "-7200.00", "52800.00", "15840.00", "8720.00", "6720.00",
                "6720.00", "1000", "0.3", "0.1273", "0.12", "26.4"
            ],
            vec![
                "NULL", "0.00", "0.00", "0.00", "0.00", "-800.00", "-800.00", "-5300.00", "0",
                "NULL", "NULL", "NULL", "NULL"
            ],
        ]
    );
    assert_eq!(
        scalar(
            ctx,
            "SELECT status FROM amoeba_cubes WHERE cube = 'sku_monthly'"
        )
        .await,
        "rebuilt"
    );
    let checks = &served.cubes[0].checks;
    assert!(
        !checks.is_empty()
            && checks
                .iter()
                .all(|c| c.status == amoeba_engine::ledger::Status::Ok),
        "{checks:?}"
    );
}

/// The stock book: 1,000 units received in February at 42.00, all issued in March, 120
/// restocked — the month-end stock at cost, and how it rolls forward into the ledger's COGS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn month_end_stock_rolls_forward_into_the_ledger_cogs() {
    let (_dir, ctx, _, _) = open().await;
    assert_eq!(
        rows(
            &ctx,
            "SELECT month, sku, warehouse, CAST(units AS VARCHAR), CAST(value AS VARCHAR) \
             FROM stock_balances ORDER BY month"
        )
        .await,
        vec![
            vec!["2025-02", "DEMO-1", "杭州仓", "1000", "42000.00"],
            vec!["2025-03", "DEMO-1", "杭州仓", "120", "5040.00"],
        ]
    );
    // March's change of stock (5,040.00 − 42,000.00) is its COGS: −42,000.00 issued, +5,040.00
    // returned.
    assert_eq!(
        rows(
            &ctx,
            "SELECT scope, status, CAST(expected AS VARCHAR), CAST(actual AS VARCHAR) \
             FROM amoeba_checks WHERE \"check\" = 'stock_rollforward' ORDER BY scope"
        )
        .await,
        vec![
            vec!["2025-02", "ok", "42000.00", "42000.00"],
            vec!["2025-03", "ok", "-36960.00", "-36960.00"],
        ]
    );
    // 库存周转率 over March: |COGS| / the average of the opening and closing stock.
    assert_eq!(
        scalar(
            &ctx,
            "WITH s AS (SELECT month, SUM(value) AS value FROM stock_balances GROUP BY month) \
             SELECT CAST(round(inventory_turnover( \
                      (SELECT SUM(cogs) FROM pnl WHERE month = '2025-03'), \
                      (SELECT (a.value + b.value) / 2 FROM s a, s b \
                       WHERE a.month = '2025-02' AND b.month = '2025-03')), 4) AS VARCHAR)"
        )
        .await,
        "1.5714"
    );
}
