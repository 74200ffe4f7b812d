//! The ledger on generated data: it reconciles (every check passes) at two scales and seeds,
//! under FIFO and moving average, deterministically; broken inputs are reported, not dropped.

use std::path::Path;

use amoeba_catalog::{Catalog, Model, Warehouse};
use amoeba_engine::{Ledger, LedgerMode};
use datafusion::prelude::SessionContext;

use crate::support::{copy_warehouse, parquet_files, rewrite_parquet, rows, scalar, warehouse};

async fn open(path: &Path) -> (SessionContext, Catalog, Ledger) {
    let (ctx, catalog, ledger) = amoeba_engine::open_with_ledger(
        Warehouse::open(&path.to_string_lossy()).expect("open warehouse"),
        LedgerMode::InMemory,
    )
    .await
    .expect("open with ledger");
    (
        ctx,
        catalog,
        ledger.expect("the generated warehouse has a model"),
    )
}

fn problems(ledger: &Ledger) -> Vec<String> {
    ledger
        .checks()
        .iter()
        .filter(|c| c.status != amoeba_engine::ledger::Status::Ok)
        .map(|c| {
            format!(
                "{} {} [{}] {:?} {:?} {}",
                c.status.as_str(),
                c.check,
                c.scope,
                c.expected,
                c.actual,
                c.detail
            )
        })
        .collect()
}

/// Independent of the checks' code: the invariants of pnl.md in plain SQL.
async fn assert_invariants(ctx: &SessionContext) {
    // Sales reach the ledger exactly once.
    assert_eq!(
        scalar(
            ctx,
            "SELECT CAST(SUM(gross_sales) AS VARCHAR) FROM order_lines"
        )
        .await,
        scalar(ctx, "SELECT CAST(SUM(gross_sales) AS VARCHAR) FROM pnl").await,
    );
    assert_eq!(
        scalar(ctx, "SELECT CAST(-SUM(amount) AS VARCHAR) FROM refunds").await,
        scalar(ctx, "SELECT CAST(SUM(refund) AS VARCHAR) FROM pnl").await,
    );
    assert_eq!(
        scalar(ctx, "SELECT CAST(-SUM(spend) AS VARCHAR) FROM ad_spend").await,
        scalar(
            ctx,
            "SELECT CAST(SUM(amount) AS VARCHAR) FROM pnl_ledger WHERE source = 'ad_spend'"
        )
        .await,
    );
    assert_eq!(
        scalar(ctx, "SELECT CAST(-SUM(cost) AS VARCHAR) FROM waybills").await,
        scalar(ctx, "SELECT CAST(SUM(shipping_cost) AS VARCHAR) FROM pnl").await,
    );
    assert_eq!(
        scalar(ctx, "SELECT CAST(-SUM(amount) AS VARCHAR) FROM expenses").await,
        scalar(
            ctx,
            "SELECT CAST(SUM(amount) AS VARCHAR) FROM pnl_ledger \
             WHERE starts_with(source, 'expenses:') OR starts_with(source, 'pool:')"
        )
        .await,
    );
    // Internal settlement nets to zero in every month.
    let unbalanced = rows(
        ctx,
        "SELECT month, SUM(internal_revenue + internal_cost) FROM pnl GROUP BY month \
         HAVING SUM(internal_revenue + internal_cost) <> 0",
    )
    .await;
    assert!(unbalanced.is_empty(), "{unbalanced:?}");
    // The company is the sum of its units, and the layers add up.
    assert_eq!(
        scalar(ctx, "SELECT CAST(SUM(amount) AS VARCHAR) FROM pnl_ledger").await,
        scalar(
            ctx,
            "SELECT CAST(SUM(p) AS VARCHAR) FROM (SELECT unit_id, SUM(net_profit) AS p FROM pnl GROUP BY unit_id)"
        )
        .await,
    );
    let broken_layers = scalar(
        ctx,
        "SELECT COUNT(*) FROM pnl WHERE net_sales <> gross_sales + seller_discount + shipping_income + refund \
         OR gross_profit <> net_sales + cogs + inventory_loss \
         OR net_profit <> cm3 + allocated_total + internal_revenue + internal_cost + other_platform_fee",
    )
    .await;
    assert_eq!(broken_layers, "0");
    // Every row sits on a unit of the model; every amount is in cents.
    assert_eq!(
        scalar(ctx, "SELECT COUNT(*) FROM pnl_ledger WHERE unit_id NOT IN (SELECT unit_id FROM amoeba_units)").await,
        "0"
    );
    // COGS exists and is a cost; sales are on profit units.
    let cogs: f64 = scalar(ctx, "SELECT CAST(SUM(cogs) AS DOUBLE) FROM pnl")
        .await
        .parse()
        .expect("number");
    assert!(cogs < 0.0, "cogs {cogs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_data_reconciles_at_two_scales_and_seeds() {
    for (scale, seed) in [(0.005, 1), (0.02, 2)] {
        let path = warehouse(scale, seed);
        let (ctx, _, ledger) = open(&path).await;
        assert!(
            ledger.num_rows() > 1000,
            "scale {scale}: {} rows",
            ledger.num_rows()
        );
        let problems = problems(&ledger);
        let failures: Vec<&String> = problems.iter().filter(|p| p.starts_with("fail")).collect();
        assert!(
            failures.is_empty(),
            "scale {scale} seed {seed}: {failures:#?}"
        );
        assert!(!ledger.failed());
        assert_invariants(&ctx).await;
        // The checks table is served.
        assert_eq!(
            scalar(
                &ctx,
                "SELECT COUNT(*) FROM amoeba_checks WHERE status = 'fail'"
            )
            .await,
            "0"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_average_reconciles_and_the_build_is_deterministic() {
    let path = warehouse(0.005, 1);
    let catalog = Catalog::open(Warehouse::open(&path.to_string_lossy()).expect("open"))
        .await
        .expect("catalog");
    let fifo_model = catalog.model().cloned().expect("model");
    let text = std::fs::read_to_string(path.join("model/model.toml")).expect("model text");
    let mwa_model = Model::parse(
        "model.toml",
        &text.replace("method = \"fifo\"", "method = \"moving_average\""),
    )
    .expect("mwa model");
    let fifo = Ledger::build_with(&catalog, fifo_model.clone())
        .await
        .expect("fifo");
    let again = Ledger::build_with(&catalog, fifo_model)
        .await
        .expect("fifo again");
    assert_eq!(fifo.batches(), again.batches(), "same inputs, same ledger");
    let mwa = Ledger::build_with(&catalog, mwa_model).await.expect("mwa");
    assert!(!mwa.failed(), "{:#?}", problems(&mwa));
    let cogs = |l: &Ledger| -> i128 {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::Decimal128Type;
        let mut total = 0;
        for b in l.batches() {
            let account = b
                .column_by_name("account")
                .expect("account")
                .as_string::<i32>();
            let amount = b
                .column_by_name("amount")
                .expect("amount")
                .as_primitive::<Decimal128Type>();
            for i in 0..b.num_rows() {
                if account.value(i) == "cogs" {
                    total += amount.value(i);
                }
            }
        }
        total
    };
    let (f, m) = (cogs(&fifo), cogs(&mwa));
    assert!(f < 0 && m < 0, "fifo {f} mwa {m}");
    assert_ne!(f, m, "prices drift, so FIFO and moving average differ");
    // Within 5 % of each other: the same goods at nearby prices.
    assert!((f - m).abs() * 20 < f.abs(), "fifo {f} mwa {m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_inputs_are_reported_not_dropped() {
    let copy = copy_warehouse(&warehouse(0.005, 1));
    let root = copy.path();
    // 1. A fee name no mapping knows, in a new delivery of a tmall ledger file.
    let ledger_file = first_file(&root.join("exports/tmall/ledger"));
    let shop_dir = ledger_file
        .parent()
        .and_then(Path::parent)
        .expect("shop dir");
    let new_dir = shop_dir.join("dt=2026-01-05");
    std::fs::create_dir_all(&new_dir).expect("mkdir");
    rewrite_parquet(
        &ledger_file,
        &new_dir.join("part-9999-mystery.parquet"),
        "SELECT concat(\"账务流水号\", '-X') AS \"账务流水号\", \"业务流水号\", \"商户订单号\", \"发生时间\", \
                \"收入金额（+元）\", CAST(-12.34 AS DECIMAL(18,2)) AS \"支出金额（-元）\", \
                '神秘费用' AS \"业务类型\", \"备注\" FROM t LIMIT 1",
    )
    .await;
    // 2. A sold SKU with no purchase cost: its receipts removed.
    let sku = {
        let (vctx, _) = crate::support::session(root).await;
        scalar(
            &vctx,
            "SELECT sku FROM order_lines GROUP BY sku ORDER BY COUNT(*) DESC, sku LIMIT 1",
        )
        .await
    };
    for file in parquet_files(&root.join("erp/purchases")) {
        let tmp = file.with_extension("tmp");
        rewrite_parquet(
            &file,
            &tmp,
            &format!("SELECT * FROM t WHERE \"商家编码\" <> '{sku}'"),
        )
        .await;
        std::fs::rename(&tmp, &file).expect("replace");
    }
    // 3. A pool whose driver is zero for every target (profit units have no area).
    let model = root.join("model/model.toml");
    let text = std::fs::read_to_string(&model).expect("model");
    let text = text.replace(
        "name = \"hq\"\ncategories = [\"总部管理费\"]\ndriver = \"net_sales\"",
        "name = \"hq\"\ncategories = [\"总部管理费\"]\ndriver = \"area\"",
    );
    assert!(
        text.contains("driver = \"area\"\n\n[[settlements]]")
            || text.contains("\"总部管理费\"]\ndriver = \"area\"")
    );
    std::fs::write(&model, text).expect("write model");

    let (ctx, _, ledger) = open(root).await;
    assert!(ledger.failed());
    let found = |check: &str, status: &str| {
        ledger
            .checks()
            .iter()
            .filter(|c| c.check == check && c.status.as_str() == status)
            .map(|c| c.scope.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        found("fee_name_mapped", "fail"),
        vec!["tmall 神秘费用".to_string()]
    );
    assert_eq!(found("sku_has_cost", "fail"), vec![sku.clone()]);
    assert_eq!(
        found("pool_driver_not_zero", "warn").len(),
        12,
        "every month of hq"
    );
    // Nothing dropped: the mystery fee is in the ledger, the pool is on the root, and the
    // totals still reconcile.
    assert_eq!(
        scalar(
            &ctx,
            "SELECT CAST(SUM(amount) AS VARCHAR) FROM pnl_ledger WHERE source = 'fees:神秘费用'"
        )
        .await,
        "-12.34"
    );
    assert_eq!(
        scalar(&ctx, "SELECT CAST(-SUM(amount) AS VARCHAR) FROM expenses WHERE category = '总部管理费'").await,
        scalar(&ctx, "SELECT CAST(SUM(amount) AS VARCHAR) FROM pnl_ledger WHERE source = 'pool:hq' AND unit_id = 'U00'").await,
    );
    for check in [
        "sales_reconcile",
        "fees_reconcile",
        "expenses_reconcile",
        "settlement_nets_to_zero",
    ] {
        assert!(found(check, "fail").is_empty(), "{check}");
    }
    assert_invariants(&ctx).await;
    // `amoeba check` names them and fails.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_amoeba"))
        .args(["check", "--warehouse"])
        .arg(root)
        .output()
        .expect("run amoeba check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("神秘费用") && stdout.contains(&sku),
        "{stdout}"
    );
}

fn first_file(dir: &Path) -> std::path::PathBuf {
    parquet_files(dir)
        .into_iter()
        .next()
        .expect("a parquet file")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_is_published_as_parquet_by_month_and_served_over_pgwire() {
    let copy = copy_warehouse(&warehouse(0.005, 1));
    let root = copy.path();
    let ledger_cmd = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_amoeba"))
            .args(["ledger", "--warehouse"])
            .arg(root)
            .output()
            .expect("run amoeba ledger");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("checks passed"), "{stdout}");
        std::fs::read_to_string(root.join("ledger/_current")).expect("_current")
    };
    let first = ledger_cmd();
    let month_dir = root.join("ledger").join(&first).join("month=2025-03");
    assert!(
        !parquet_files(&month_dir).is_empty(),
        "no Parquet under {month_dir:?}"
    );
    // Publishing again keeps the replaced versions for the retention window (60 minutes by
    // default: a reader, here or on another server, may still use them) …
    let versions = || {
        let mut versions: Vec<String> = std::fs::read_dir(root.join("ledger"))
            .expect("ledger dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with('v'))
            .collect();
        versions.sort();
        versions
    };
    std::thread::sleep(std::time::Duration::from_millis(5));
    let second = ledger_cmd();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let third = ledger_cmd();
    assert_eq!(
        versions(),
        vec![first.clone(), second.clone(), third.clone()]
    );
    // … and past it deletes them, but for the one before the current.
    let model_file = root.join("model/model.toml");
    let model = std::fs::read_to_string(&model_file).expect("model");
    std::fs::write(
        &model_file,
        format!("{model}\n[ledger]\nretention_minutes = 0\n"),
    )
    .expect("write model");
    std::thread::sleep(std::time::Duration::from_millis(5));
    let fourth = ledger_cmd();
    assert_eq!(versions(), vec![third.clone(), fourth.clone()]);

    // Served from the published files: equal to the in-memory build.
    let (ctx, _, published) = amoeba_engine::open_with_ledger(
        Warehouse::open(&root.to_string_lossy()).expect("open"),
        LedgerMode::Publish,
    )
    .await
    .expect("publish");
    let published = published.expect("ledger");
    // `amoeba ledger` records what it built from, like a refresh: nothing changed since the
    // fourth version, and a start on the same inputs serves this one as it is.
    let changes = published.input_changes().expect("changes since the fourth");
    assert_eq!(changes.since, fourth);
    assert!(
        changes.added.is_empty() && changes.only_added(),
        "{changes:?}"
    );
    let closure = published.closure().expect("a closure");
    assert!(closure.months.is_empty(), "{}", closure.summary());
    let restarted = amoeba_engine::open_published(
        Warehouse::open(&root.to_string_lossy()).expect("open"),
        Default::default(),
    )
    .await
    .expect("open published");
    assert!(
        restarted
            .ledger
            .as_ref()
            .and_then(Ledger::reused_version)
            .is_some()
    );
    let (mem_ctx, _, _) = open(root).await;
    let totals = "SELECT month, account, CAST(SUM(amount) AS VARCHAR), COUNT(*) FROM pnl_ledger \
                  GROUP BY month, account ORDER BY month, account";
    assert_eq!(rows(&ctx, totals).await, rows(&mem_ctx, totals).await);
    assert_eq!(
        scalar(&ctx, "SELECT COUNT(*) FROM pnl_ledger").await,
        published.num_rows().to_string()
    );
    let plan = rows(
        &ctx,
        "EXPLAIN SELECT SUM(amount) FROM pnl_ledger WHERE month = '2025-03'",
    )
    .await;
    let plan = format!("{plan:?}");
    assert!(
        plan.contains("file_groups={1 group: [[") || plan.contains("month=2025-03"),
        "{plan}"
    );
    assert!(
        !plan.contains("month=2025-04"),
        "month partitions are pruned: {plan}"
    );

    // Over the wire, as a BI tool sees it.
    let server = crate::support::TestServer::start(ctx).await;
    let client = server.client().await;
    let rows = client
        .query(
            "SELECT unit_id, CAST(SUM(net_sales) AS TEXT), CAST(SUM(net_profit) AS TEXT) FROM pnl \
             WHERE month = '2025-03' GROUP BY unit_id ORDER BY unit_id",
            &[],
        )
        .await
        .expect("pnl over pgwire");
    assert!(rows.len() >= 8, "{} units", rows.len());
    let checks: i64 = client
        .query_one(
            "SELECT count(*) FROM amoeba_checks WHERE status = 'fail'",
            &[],
        )
        .await
        .expect("checks")
        .get(0);
    assert_eq!(checks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_model_is_an_error_naming_file_line_and_key() {
    let copy = copy_warehouse(&warehouse(0.005, 1));
    let root = copy.path();
    let model = root.join("model/model.toml");
    let text = std::fs::read_to_string(&model).expect("model");
    std::fs::write(&model, text.replacen("unit = \"U01\"", "unit = \"U99\"", 1)).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_amoeba"))
        .args(["check", "--warehouse"])
        .arg(root)
        .output()
        .expect("run amoeba check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("model/model.toml:") && stderr.contains("].unit: unknown unit 'U99'"),
        "{stderr}"
    );
}

/// A start on the inputs the published ledger was built from serves it as it is (same rows,
/// same report, no new version); `--full`, or any input that changes, builds it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_on_unchanged_inputs_serves_the_published_ledger() {
    let copy = copy_warehouse(&warehouse(0.005, 1));
    let root = copy.path();
    let open = |full: bool| async move {
        amoeba_engine::open_published(
            Warehouse::open(&root.to_string_lossy()).expect("open warehouse"),
            amoeba_engine::cube::RefreshOptions {
                full,
                ..Default::default()
            },
        )
        .await
        .expect("open published")
    };
    let version = |served: &amoeba_engine::Served| {
        served
            .ledger_manifest
            .as_ref()
            .map(|m| m.version.clone())
            .expect("a published ledger")
    };
    let totals = "SELECT month, account, source, CAST(SUM(amount) AS VARCHAR), COUNT(*) \
                  FROM pnl_ledger GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";
    let report = "SELECT * FROM amoeba_checks ORDER BY 1, 2, 3";

    let first = open(false).await;
    let built = first.ledger.as_ref().expect("ledger");
    assert_eq!(built.reused_version(), None);
    // Published, the rows are read from the files: the build's copy is let go.
    assert!(
        built.batches().is_empty(),
        "a served ledger kept its rows in memory"
    );
    assert!(built.num_rows() > 0);
    let (rows_built, totals_built, report_built) = (
        built.num_rows(),
        rows(&first.ctx, totals).await,
        rows(&first.ctx, report).await,
    );
    assert!(report_built.len() > 10, "{report_built:?}");

    let second = open(false).await;
    let reused = second.ledger.as_ref().expect("ledger");
    assert_eq!(reused.reused_version(), Some(version(&first).as_str()));
    assert_eq!(version(&second), version(&first));
    assert_eq!(reused.num_rows(), rows_built);
    assert_eq!(rows(&second.ctx, totals).await, totals_built);
    assert_eq!(rows(&second.ctx, report).await, report_built);

    let full = open(true).await;
    assert_eq!(full.ledger.as_ref().and_then(Ledger::reused_version), None);
    assert_ne!(version(&full), version(&first));

    // The model is an input: any change to it (here a comment) builds the ledger again.
    let model_file = root.join("model/model.toml");
    let model = std::fs::read_to_string(&model_file).expect("model");
    std::fs::write(&model_file, format!("{model}\n# touched\n")).expect("write model");
    let changed = open(false).await;
    assert_eq!(
        changed.ledger.as_ref().and_then(Ledger::reused_version),
        None
    );
    assert_eq!(rows(&changed.ctx, totals).await, totals_built);
}

/// `[ledger] memory_limit_mb`: the build keeps its working tables as Parquet in a scratch
/// folder and spills its sorts and aggregates beyond the limit (what lets a warehouse larger
/// than the machine's memory be built). The ledger is the same, month by month, as the one
/// built in memory; so are the checks; published and served, it reads the same, and each
/// month's file keeps the ledger's order (by account first), which the page index relies on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_under_a_memory_limit_stages_on_disk_and_gives_the_same_ledger() {
    use datafusion::arrow::array::AsArray;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let copy = copy_warehouse(&warehouse(0.005, 1));
    let root = copy.path();
    let catalog = Catalog::open(Warehouse::open(&root.to_string_lossy()).expect("open"))
        .await
        .expect("catalog");
    let model_file = root.join("model/model.toml");
    let text = std::fs::read_to_string(&model_file).expect("model text");
    assert!(
        !text.contains("[ledger]"),
        "the generated model sets [ledger]"
    );
    let limited = format!("{text}\n[ledger]\nmemory_limit_mb = 64\n");
    let limited_model = Model::parse("model.toml", &limited).expect("model with a limit");

    let in_memory = Ledger::build_with(&catalog, catalog.model().cloned().expect("model"))
        .await
        .expect("in memory");
    let on_disk = Ledger::build_with(&catalog, limited_model)
        .await
        .expect("on disk");
    assert!(!in_memory.built_on_disk());
    assert!(on_disk.built_on_disk());
    assert!(
        on_disk.batches().is_empty(),
        "the rows are in the scratch folder"
    );
    assert!(in_memory.num_rows() > 10_000);
    assert_eq!(on_disk.num_rows(), in_memory.num_rows());
    let months = in_memory.month_fingerprints().expect("fingerprints");
    assert!(months.len() >= 12, "{months:?}");
    assert_eq!(on_disk.month_fingerprints().expect("fingerprints"), months);
    assert_eq!(on_disk.checks(), in_memory.checks());
    assert!(!on_disk.failed(), "{:#?}", problems(&on_disk));

    // Served from the warehouse after a start that built on disk.
    let totals = "SELECT month, account, source, CAST(SUM(amount) AS VARCHAR), COUNT(*) \
                  FROM pnl_ledger GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";
    let memory_ctx = amoeba_engine::new_session().expect("session");
    in_memory.register(&memory_ctx).await.expect("register");
    // Registered (as `amoeba query` does) and then let go of: the session still reads every
    // row from the scratch folder, which lives as long as the session does.
    let disk_ctx = amoeba_engine::new_session().expect("session");
    on_disk.register(&disk_ctx).await.expect("register");
    drop(on_disk);
    assert_eq!(
        rows(&disk_ctx, totals).await,
        rows(&memory_ctx, totals).await
    );
    std::fs::write(&model_file, &limited).expect("write model");
    let served = amoeba_engine::open_published(
        Warehouse::open(&root.to_string_lossy()).expect("open warehouse"),
        amoeba_engine::cube::RefreshOptions::default(),
    )
    .await
    .expect("open published");
    let manifest = served.ledger_manifest.as_ref().expect("published");
    assert_eq!(manifest.months, months);
    assert_eq!(
        rows(&served.ctx, totals).await,
        rows(&memory_ctx, totals).await
    );

    let month_dir = root
        .join("ledger")
        .join(&manifest.version)
        .join("month=2025-03");
    for file in parquet_files(&month_dir) {
        let reader = ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&file).expect("open file"),
        )
        .expect("parquet")
        .build()
        .expect("reader");
        let mut accounts = Vec::new();
        for batch in reader {
            let batch = batch.expect("batch");
            let column = batch.column_by_name("account").expect("account");
            let column = datafusion::arrow::compute::cast(
                column,
                &datafusion::arrow::datatypes::DataType::Utf8,
            )
            .expect("cast");
            accounts.extend(
                column
                    .as_string::<i32>()
                    .iter()
                    .map(|a| a.map(str::to_string)),
            );
        }
        assert!(accounts.len() > 1000, "{file:?}: {} rows", accounts.len());
        assert!(
            accounts.is_sorted(),
            "{file:?}: the rows are not in the ledger's order"
        );
    }
}
