//! Cubes: refreshed from the published ledger, checked, published atomically, rebuilt only
//! where the inputs changed, recovered after a crash, served over pgwire.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use amoeba_catalog::Warehouse;
use amoeba_engine::cube::{CubeStatus, Outcome, RefreshOptions, current_manifest};
use amoeba_engine::{Served, open_published};
use datafusion::prelude::SessionContext;

use crate::support::{
    Rng, copy_warehouse, parquet_files, rewrite_parquet, rows, scalar, warehouse,
};

async fn refresh(root: &Path, options: RefreshOptions) -> Served {
    open_published(
        Warehouse::open(&root.to_string_lossy()).expect("open warehouse"),
        options,
    )
    .await
    .expect("refresh")
}

fn outcomes(cubes: &[CubeStatus]) -> BTreeMap<String, Outcome> {
    cubes
        .iter()
        .map(|c| (c.cube.clone(), c.outcome.clone()))
        .collect()
}

fn rebuilt(cubes: &[CubeStatus], cube: &str) -> Vec<String> {
    match cubes.iter().find(|c| c.cube == cube).map(|c| &c.outcome) {
        Some(Outcome::Rebuilt(months)) => months.clone(),
        other => panic!("{cube}: expected a rebuild, got {other:?}"),
    }
}

/// Every row of a cube, in a stable order, as text.
async fn cube_rows(ctx: &SessionContext, cube: &str) -> Vec<Vec<String>> {
    rows(
        ctx,
        &format!("SELECT * FROM cubes.{cube} ORDER BY 1, 2, 3, 4, 5, 6, 7"),
    )
    .await
}

/// The version folders of a cube.
fn version_dirs(root: &Path, cube: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("cubes").join(cube))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with('v'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A new PDD order file in the last month of `shop`'s orders: the rows of its last file with
/// new order ids (new sales, in that month only).
async fn add_new_orders(root: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = parquet_files(&root.join("exports/pdd/orders"));
    files.sort_by_key(|p| {
        let dt = p
            .parent()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().to_string());
        (dt, p.clone())
    });
    let last = files.last().expect("a pdd orders file").clone();
    let to = last.with_file_name("part-999999-0009-extra.parquet");
    rewrite_parquet(
        &last,
        &to,
        "SELECT * REPLACE (concat(\"订单号\", '-EXTRA') AS \"订单号\") FROM t",
    )
    .await;
    to
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cubes_are_checked_published_and_refreshed_only_where_inputs_changed() {
    let copy = copy_warehouse(&warehouse(0.005, 1));
    let root = copy.path();
    // One cube with no retention window, to see replaced versions go.
    let model_file = root.join("model/model.toml");
    let model = std::fs::read_to_string(&model_file).expect("model");
    let model = model.replacen(
        "name = \"unit_monthly\"\n",
        "name = \"unit_monthly\"\nretention_minutes = 0\n",
        1,
    );
    std::fs::write(&model_file, model).expect("write model");

    // First refresh: every month of every cube, checked before publishing.
    let first = refresh(root, RefreshOptions::default()).await;
    let ledger = first.ledger_manifest.clone().expect("ledger published");
    let months: Vec<String> = ledger.months.keys().cloned().collect();
    assert!(months.len() >= 12, "{months:?}");
    for c in &first.cubes {
        let built = rebuilt(&first.cubes, &c.cube);
        assert!(
            months.iter().all(|m| built.contains(m)),
            "{}: {built:?}",
            c.cube
        );
        assert!(!c.checks.is_empty(), "{}: checked", c.cube);
        assert!(
            c.checks
                .iter()
                .all(|r| r.status == amoeba_engine::ledger::Status::Ok),
            "{}: {:?}",
            c.cube,
            c.checks
        );
    }
    assert_eq!(
        outcomes(&first.cubes).keys().cloned().collect::<Vec<_>>(),
        [
            "shop_daily",
            "sku_campaign",
            "unit_efficiency",
            "unit_monthly"
        ]
    );
    let ctx = &first.ctx;

    // A cube answers what the ledger answers, KPIs recomputed from the summed parts.
    let leaf = "month,quarter,year,unit_id,parent_unit_id";
    assert_eq!(
        rows(
            ctx,
            &format!(
                "SELECT unit_id, CAST(net_profit AS VARCHAR), CAST(round(net_margin, 9) AS VARCHAR) \
                 FROM cubes.unit_monthly WHERE month = '2025-03' AND _set = '{leaf}' ORDER BY unit_id"
            )
        )
        .await,
        rows(
            ctx,
            "SELECT unit_id, CAST(SUM(net_profit) AS VARCHAR), \
                    CAST(round(net_margin(SUM(net_profit), SUM(net_sales)), 9) AS VARCHAR) \
             FROM pnl WHERE month = '2025-03' GROUP BY unit_id ORDER BY unit_id"
        )
        .await
    );
    // The company total (the coarsest set) equals the ledger's, every month.
    assert_eq!(
        rows(
            ctx,
            "SELECT month, CAST(net_profit AS VARCHAR), units_sold FROM cubes.unit_monthly \
             WHERE _set = 'month,quarter,year' ORDER BY month"
        )
        .await,
        rows(
            ctx,
            "SELECT month, CAST(SUM(amount) AS VARCHAR), \
                    SUM(CASE WHEN account = 'gross_sales' THEN qty ELSE 0 END) \
             FROM pnl_ledger GROUP BY month ORDER BY month"
        )
        .await
    );
    // Daily shop P&L, hourly value added: the other default cubes hold rows too.
    let daily: i64 = scalar(
        ctx,
        "SELECT COUNT(*) FROM cubes.shop_daily WHERE _set = 'month,date,week'",
    )
    .await
    .parse()
    .expect("count");
    assert!(daily >= 300, "{daily} days");
    let hva = scalar(
        ctx,
        "SELECT COUNT(*) FROM cubes.unit_efficiency WHERE hours > 0 AND hourly_value_added IS NOT NULL",
    )
    .await;
    assert_ne!(hva, "0");
    assert_eq!(
        scalar(
            ctx,
            "SELECT COUNT(*) FROM amoeba_cubes WHERE status = 'rebuilt' AND last_error IS NULL"
        )
        .await,
        "4"
    );

    // Nothing changed: nothing is rebuilt, no new version.
    let versions_before = version_dirs(root, "sku_campaign");
    let again = refresh(root, RefreshOptions::default()).await;
    assert!(
        again.cubes.iter().all(|c| c.outcome == Outcome::Fresh),
        "{:?}",
        outcomes(&again.cubes)
    );
    assert_eq!(version_dirs(root, "sku_campaign"), versions_before);
    let unchanged_rows = cube_rows(&again.ctx, "sku_campaign").await;

    // New orders in the last month: only the months whose ledger changed are rebuilt.
    let added = add_new_orders(root).await;
    let incremental = refresh(root, RefreshOptions::default()).await;
    let after = incremental.ledger_manifest.clone().expect("ledger");
    // The build knows what changed since the version it replaces: the one file added.
    let changes = incremental
        .ledger
        .as_ref()
        .and_then(|l| l.input_changes())
        .expect("the changes since the published version");
    let added = added
        .strip_prefix(root)
        .expect("in the warehouse")
        .to_string_lossy()
        .to_string();
    assert_eq!(changes.since, ledger.version);
    assert_eq!(changes.added, vec![added]);
    assert!(changes.replaced.is_empty() && changes.removed.is_empty());
    assert_eq!(
        changes.summary(),
        format!(
            "since {}: 1 added (exports/pdd/orders 1), 0 replaced, 0 removed",
            ledger.version
        )
    );
    let changed: Vec<String> = after
        .months
        .iter()
        .filter(|(m, f)| ledger.months.get(*m) != Some(*f))
        .map(|(m, _)| m.clone())
        .collect();
    assert!(
        !changed.is_empty() && changed.len() < months.len() / 2,
        "{changed:?}"
    );
    // … which the closure of the change (what the incremental build will rebuild) holds.
    let closure = incremental
        .ledger
        .as_ref()
        .and_then(|l| l.closure())
        .expect("a closure");
    assert_eq!(closure.deliveries, 1, "{}", closure.summary());
    assert!(
        changed.iter().all(|m| closure.months.contains(m)),
        "{changed:?} against {}",
        closure.summary()
    );
    for cube in ["unit_monthly", "shop_daily", "sku_campaign"] {
        assert_eq!(rebuilt(&incremental.cubes, cube), changed, "{cube}");
    }
    // … and give what a full rebuild gives.
    let incremental_rows = cube_rows(&incremental.ctx, "sku_campaign").await;
    assert_ne!(incremental_rows, unchanged_rows);
    let full = refresh(
        root,
        RefreshOptions {
            only: Some("sku_campaign".into()),
            full: true,
            ..RefreshOptions::default()
        },
    )
    .await;
    assert_eq!(
        rebuilt(&full.cubes, "sku_campaign"),
        after.months.keys().cloned().collect::<Vec<_>>()
    );
    assert_eq!(cube_rows(&full.ctx, "sku_campaign").await, incremental_rows);

    // Retention: unit_monthly keeps no replaced version, but the files its current version
    // still uses (the months not rebuilt) stay where they were written.
    let manifest = current_manifest(
        &Warehouse::open(&root.to_string_lossy()).expect("open"),
        "unit_monthly",
    )
    .await
    .expect("manifest")
    .expect("published");
    for p in &manifest.partitions {
        assert!(
            root.join("cubes/unit_monthly").join(&p.file).exists(),
            "{}",
            p.file
        );
    }
    let versions = version_dirs(root, "unit_monthly");
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert!(
        !root
            .join("cubes/unit_monthly")
            .join(&versions[0])
            .join("_manifest.json")
            .exists(),
        "the replaced version's manifest is removed"
    );
    assert!(
        manifest
            .partitions
            .iter()
            .any(|p| !p.file.starts_with(&manifest.version)),
        "unchanged months are carried over, not rewritten"
    );
    // With the default window (60 minutes) replaced versions stay.
    assert!(version_dirs(root, "sku_campaign").len() >= 3);

    // Over the wire, as a dashboard asks.
    let server = crate::support::TestServer::start(incremental.ctx).await;
    let client = server.client().await;
    let got = client
        .query(
            "SELECT platform, CAST(SUM(net_sales) AS TEXT), CAST(SUM(net_profit) AS TEXT) \
             FROM cubes.shop_daily WHERE _set = 'month,date,week,platform' AND month = '2025-11' \
             GROUP BY platform ORDER BY platform",
            &[],
        )
        .await
        .expect("cube over pgwire");
    let platforms: Vec<Option<String>> = got.iter().map(|r| r.get(0)).collect();
    // The four platforms, and the rows of no platform (pools, settlements, unit expenses).
    assert_eq!(
        platforms,
        [Some("douyin"), Some("jd"), Some("pdd"), Some("tmall"), None]
            .map(|p| p.map(str::to_string))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_refresh_leaves_the_last_version_served_and_the_next_one_recovers() {
    let copy = copy_warehouse(&warehouse(0.005, 1));
    let root = copy.path();
    let amoeba = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_amoeba"));
        cmd.args(args).arg("--warehouse").arg(root);
        cmd.env("RUST_LOG", "warn");
        cmd
    };
    let started = Instant::now();
    let out = amoeba(&["refresh"]).output().expect("refresh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let full = started.elapsed();

    // Kill -9 at spread-out points of a refresh that has work to do (--full), several times.
    let warehouse = Warehouse::open(&root.to_string_lossy()).expect("open");
    let cubes = [
        "shop_daily",
        "sku_campaign",
        "unit_efficiency",
        "unit_monthly",
    ];
    for i in 0..6u32 {
        let mut child = amoeba(&["refresh", "--full"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let at = full.mul_f64(0.15 + 0.15 * f64::from(i));
        std::thread::sleep(at);
        child.kill().expect("kill -9");
        child.wait().expect("reap");
        // Whatever was interrupted, each cube serves a whole version.
        for cube in cubes {
            let manifest = current_manifest(&warehouse, cube)
                .await
                .expect("manifest readable")
                .expect("a version stays published");
            for p in &manifest.partitions {
                let file = root.join("cubes").join(cube).join(&p.file);
                assert!(
                    file.exists(),
                    "kill {i}: {cube} names {} which is missing",
                    p.file
                );
            }
        }
    }
    // Leftovers of a build that never published, as a crash leaves them.
    let orphan = root.join("cubes/unit_monthly/v99999999999999");
    std::fs::create_dir_all(&orphan).expect("orphan dir");
    std::fs::write(orphan.join("2025-01.parquet"), b"half a file").expect("orphan file");

    // The next refresh recovers and succeeds, and every check passes.
    let out = amoeba(&["refresh"]).output().expect("refresh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!orphan.exists(), "the unpublished build is removed");
    let out = amoeba(&["check"]).output().expect("check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("cube_totals") && stdout.contains("cube_rollup"),
        "{stdout}"
    );
}

/// `amoeba check` compares every published cube with the ledger, a month at a time: a coarse
/// row that is not the sum of its children fails both the rollup and the totals check of its
/// grouping set, naming the month, and nothing else fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_cube_row_that_is_not_the_sum_of_its_children_fails_the_check() {
    use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, RecordBatch};
    use datafusion::arrow::datatypes::Decimal128Type;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let copy = copy_warehouse(&warehouse(0.005, 1));
    let root = copy.path();
    let served = refresh(root, RefreshOptions::default()).await;
    let warehouse = served.catalog.warehouse();
    let model = served.catalog.model().expect("model");
    let clean = amoeba_engine::cube::check_published_warehouse(warehouse, model, &served.ctx)
        .await
        .expect("check");
    assert!(
        clean.len() > 8
            && clean
                .iter()
                .all(|r| r.status == amoeba_engine::ledger::Status::Ok),
        "{clean:?}"
    );

    // One cent more on the company total of one month of `unit_monthly`.
    let manifest = current_manifest(warehouse, "unit_monthly")
        .await
        .expect("manifest")
        .expect("published");
    let partition = &manifest.partitions[manifest.partitions.len() / 2];
    let file = root.join("cubes/unit_monthly").join(&partition.file);
    let batches: Vec<RecordBatch> =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).expect("open"))
            .expect("parquet")
            .build()
            .expect("reader")
            .collect::<std::result::Result<_, _>>()
            .expect("read");
    let coarsest = "month,quarter,year";
    let mut tampered = 0;
    let batches: Vec<RecordBatch> = batches
        .into_iter()
        .map(|b| {
            let schema = b.schema();
            let set = b.column(schema.index_of("_set").expect("_set")).clone();
            let set = datafusion::arrow::compute::cast(
                &set,
                &datafusion::arrow::datatypes::DataType::Utf8,
            )
            .expect("cast");
            let set = set.as_string::<i32>();
            let at = schema.index_of("net_profit").expect("net_profit");
            let old = b.column(at).as_primitive::<Decimal128Type>();
            let new: Decimal128Array = (0..old.len())
                .map(|r| {
                    let v = old.is_valid(r).then(|| old.value(r));
                    if tampered == 0 && set.value(r) == coarsest {
                        tampered += 1;
                        v.map(|v| v + 1)
                    } else {
                        v
                    }
                })
                .collect::<Decimal128Array>()
                .with_data_type(old.data_type().clone());
            let mut columns: Vec<ArrayRef> = b.columns().to_vec();
            columns[at] = Arc::new(new);
            RecordBatch::try_new(schema, columns).expect("batch")
        })
        .collect();
    assert_eq!(tampered, 1, "a company-total row in {}", partition.file);
    let mut writer = ArrowWriter::try_new(
        std::fs::File::create(&file).expect("create"),
        batches[0].schema(),
        None,
    )
    .expect("writer");
    for b in &batches {
        writer.write(b).expect("write");
    }
    writer.close().expect("close");

    let checks = amoeba_engine::cube::check_published_warehouse(warehouse, model, &served.ctx)
        .await
        .expect("check");
    let failed: Vec<_> = checks
        .iter()
        .filter(|r| r.status != amoeba_engine::ledger::Status::Ok)
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    let rollup = failed
        .iter()
        .find(|r| r.check == "cube_rollup")
        .expect("the rollup check fails");
    assert!(
        rollup
            .scope
            .starts_with(&format!("unit_monthly [{coarsest}] = Σ")),
        "{rollup:?}"
    );
    // The tampered row is in one side and not the other, and the other way round.
    assert_eq!(rollup.actual, Some(2), "{rollup:?}");
    let totals = failed
        .iter()
        .find(|r| r.check == "cube_totals")
        .expect("the totals check fails");
    assert_eq!(totals.scope, format!("unit_monthly [{coarsest}]"));
    assert!(
        totals
            .detail
            .starts_with(&format!("{} net_profit", partition.month)),
        "{totals:?}"
    );
    assert_eq!(
        totals.actual.zip(totals.expected).map(|(a, e)| a - e),
        Some(1)
    );
}

/// A final aggregate a query repeats (a CTE read twice, the same derived table joined to
/// itself) runs once for all its readers (`amoeba.share_subplans`), with the same rows as when
/// each reference runs on its own; what could differ between runs (a volatile function, an
/// in-memory table) is never shared, and a plan run twice computes twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_aggregates_run_once_with_the_same_rows() {
    let copy = copy_warehouse(&warehouse(0.005, 1));
    let served = refresh(copy.path(), RefreshOptions::default()).await;
    let ctx = &served.ctx;
    rows(ctx, "SET amoeba.cube_routing = false").await;
    let month = scalar(ctx, "SELECT MAX(month) FROM pnl_ledger").await;
    // (query, readers of the shared aggregate; 0: nothing may be shared)
    let cases: Vec<(String, usize)> = vec![
        // A share of a pool (benches/queries/20): the CTE on both sides of a join.
        (
            "WITH a AS (SELECT account, unit_id, SUM(amount) AS amount FROM pnl_ledger \
                        WHERE account LIKE 'allocated_%' GROUP BY account, unit_id), \
                  pool AS (SELECT account, SUM(amount) AS amount FROM a GROUP BY account) \
             SELECT a.account, a.unit_id, CAST(a.amount AS VARCHAR), CAST(pool.amount AS VARCHAR) \
             FROM a JOIN pool ON pool.account = a.account ORDER BY 1, 2"
                .to_string(),
            2,
        ),
        // A LEFT JOIN to an aggregate of the CTE's positive amounts (a filter on a sum stays
        // above the shared aggregate).
        (
            format!(
                "WITH a AS (SELECT unit_id, account, SUM(amount) AS amount FROM pnl_ledger \
                            WHERE month = '{month}' GROUP BY unit_id, account), \
                      ns AS (SELECT unit_id, SUM(amount) AS net_sales FROM a \
                             WHERE amount > 0 GROUP BY unit_id) \
                 SELECT a.unit_id, a.account, CAST(a.amount AS VARCHAR), CAST(ns.net_sales AS VARCHAR) \
                 FROM a LEFT JOIN ns ON ns.unit_id = a.unit_id ORDER BY 1, 2"
            ),
            2,
        ),
        // A filter on a group key (benches/queries/19): pushed into one copy's scan, that copy
        // becomes a filter over the shared aggregate.
        (
            format!(
                "WITH a AS (SELECT unit_id, account, SUM(amount) AS amount FROM pnl_ledger \
                            WHERE month = '{month}' GROUP BY unit_id, account), \
                      ns AS (SELECT unit_id, SUM(amount) AS net_sales FROM a \
                             WHERE account IN ('gross_sales', 'refund') GROUP BY unit_id) \
                 SELECT a.unit_id, a.account, CAST(a.amount AS VARCHAR), CAST(ns.net_sales AS VARCHAR) \
                 FROM a LEFT JOIN ns ON ns.unit_id = a.unit_id ORDER BY 1, 2"
            ),
            2,
        ),
        // The same with the filter on both keys, one of them through an expression, and a
        // third copy filtered differently: one shared aggregate, three readers. (An equality
        // on a key, `account = 'x'`, may make a copy known sorted by it: that copy is
        // computed on its own, see the next case.)
        (
            format!(
                "WITH a AS (SELECT unit_id, account, SUM(amount) AS amount FROM pnl_ledger \
                            WHERE month = '{month}' GROUP BY unit_id, account) \
                 SELECT 'all', unit_id, CAST(SUM(amount) AS VARCHAR) FROM a GROUP BY unit_id \
                 UNION ALL SELECT 'sales', unit_id, CAST(SUM(amount) AS VARCHAR) FROM a \
                   WHERE account IN ('gross_sales', 'refund') AND upper(unit_id) <> 'X' GROUP BY unit_id \
                 UNION ALL SELECT 'not sales', unit_id, CAST(SUM(amount) AS VARCHAR) FROM a \
                   WHERE account <> 'gross_sales' GROUP BY unit_id \
                 ORDER BY 1, 2"
            ),
            3,
        ),
        // A copy known sorted (by the key its filter fixes) is not the unsorted one filtered.
        (
            format!(
                "WITH a AS (SELECT unit_id, account, SUM(amount) AS amount FROM pnl_ledger \
                            WHERE month = '{month}' GROUP BY unit_id, account) \
                 SELECT a.unit_id, a.account, CAST(a.amount AS VARCHAR), CAST(s.amount AS VARCHAR) \
                 FROM a LEFT JOIN (SELECT unit_id, amount FROM a WHERE account = 'gross_sales') s \
                   ON s.unit_id = a.unit_id ORDER BY 1, 2"
            ),
            0,
        ),
        // A filter on a column that is not a group key is not the aggregate's: nothing shared.
        (
            format!(
                "WITH a AS (SELECT unit_id, account, SUM(amount) AS amount FROM pnl_ledger \
                            WHERE month = '{month}' GROUP BY unit_id, account), \
                      b AS (SELECT unit_id, account, SUM(amount) AS amount FROM pnl_ledger \
                            WHERE month = '{month}' AND platform = 'tmall' GROUP BY unit_id, account) \
                 SELECT a.unit_id, a.account, CAST(a.amount AS VARCHAR), CAST(b.amount AS VARCHAR) \
                 FROM a LEFT JOIN b ON b.unit_id = a.unit_id AND b.account = a.account ORDER BY 1, 2"
            ),
            0,
        ),
        // Three readers, through UNION ALL.
        (
            "WITH m AS (SELECT month, account, SUM(amount) AS amount FROM pnl_ledger GROUP BY 1, 2) \
             SELECT 'costs', month, CAST(SUM(amount) AS VARCHAR) FROM m WHERE amount < 0 GROUP BY month \
             UNION ALL SELECT 'revenue', month, CAST(SUM(amount) AS VARCHAR) FROM m WHERE amount > 0 GROUP BY month \
             UNION ALL SELECT 'all', month, CAST(SUM(amount) AS VARCHAR) FROM m GROUP BY month \
             ORDER BY 1, 2"
                .to_string(),
            3,
        ),
        // The same derived table twice, no CTE: month over month per unit.
        (
            "SELECT x.unit_id, x.month, CAST(x.s - y.s AS VARCHAR) \
             FROM (SELECT unit_id, month, SUM(amount) AS s FROM pnl_ledger GROUP BY 1, 2) x \
             JOIN (SELECT unit_id, month, SUM(amount) AS s FROM pnl_ledger GROUP BY 1, 2) y \
               ON y.unit_id = x.unit_id AND y.month < x.month ORDER BY 1, 2, 3"
                .to_string(),
            2,
        ),
        // A repeated aggregate over another repeated one (benches/queries/26 written over the
        // finest sums): `um` is read twice and holds `f`, which `costs` reads too. The `f`
        // inside the shared `um` is a reader as well: no operator runs twice.
        (
            "WITH f AS (SELECT month, unit_id, account, SUM(amount) AS amount FROM pnl_ledger \
                        GROUP BY month, unit_id, account), \
                  um AS (SELECT month, unit_id, SUM(amount) AS net FROM f GROUP BY month, unit_id \
                         HAVING SUM(amount) <> 0), \
                  costs AS (SELECT f.month, f.unit_id, f.account, SUM(f.amount) AS amount, \
                                   ROW_NUMBER() OVER (PARTITION BY f.month, f.unit_id \
                                                      ORDER BY SUM(f.amount), f.account) AS rn \
                            FROM f JOIN um ON um.month = f.month AND um.unit_id = f.unit_id \
                            GROUP BY f.month, f.unit_id, f.account) \
             SELECT um.month, um.unit_id, CAST(um.net AS VARCHAR), c.account, CAST(c.amount AS VARCHAR) \
             FROM um JOIN costs c ON c.month = um.month AND c.unit_id = um.unit_id AND c.rn = 1 \
             ORDER BY 1, 2"
                .to_string(),
            2,
        ),
        // A coarse aggregate of the ledger beside a finer one with the same sums
        // (benches/queries/26 as written): the coarse one rolls up from a copy of the finer,
        // and the two copies are one shared aggregate.
        (
            "WITH um AS (SELECT month, unit_id, SUM(amount) AS net FROM pnl_ledger \
                         GROUP BY month, unit_id HAVING SUM(amount) <> 0), \
                  costs AS (SELECT l.month, l.unit_id, l.account, SUM(l.amount) AS amount, \
                                   ROW_NUMBER() OVER (PARTITION BY l.month, l.unit_id \
                                                      ORDER BY SUM(l.amount), l.account) AS rn \
                            FROM pnl_ledger l JOIN um ON um.month = l.month AND um.unit_id = l.unit_id \
                            GROUP BY l.month, l.unit_id, l.account) \
             SELECT um.month, um.unit_id, CAST(um.net AS VARCHAR), c.account, CAST(c.amount AS VARCHAR) \
             FROM um JOIN costs c ON c.month = um.month AND c.unit_id = um.unit_id AND c.rn = 1 \
             ORDER BY 1, 2"
                .to_string(),
            2,
        ),
        // The same grains in one query, rolled up through a filter on both sides and with
        // MIN/MAX and a FILTER clause (the same functions on both).
        (
            format!(
                "SELECT 'unit', u.unit_id, NULL, CAST(u.s AS VARCHAR), CAST(u.lo AS VARCHAR), CAST(u.hi AS VARCHAR) \
                 FROM (SELECT unit_id, SUM(amount) FILTER (WHERE account <> 'cogs') AS s, \
                              MIN(amount) AS lo, MAX(amount) AS hi \
                       FROM pnl_ledger WHERE month = '{month}' GROUP BY unit_id) u \
                 UNION ALL \
                 SELECT 'account', a.unit_id, a.account, CAST(a.s AS VARCHAR), CAST(a.lo AS VARCHAR), CAST(a.hi AS VARCHAR) \
                 FROM (SELECT unit_id, account, MAX(amount) AS hi, MIN(amount) AS lo, \
                              SUM(amount) FILTER (WHERE account <> 'cogs') AS s \
                       FROM pnl_ledger WHERE month = '{month}' GROUP BY unit_id, account) a \
                 ORDER BY 1, 2, 3"
            ),
            2,
        ),
        // Other sums at the finer grain: nothing rolls up.
        (
            "SELECT u.unit_id, CAST(u.s AS VARCHAR), a.account, CAST(a.q AS VARCHAR) \
             FROM (SELECT unit_id, SUM(amount) AS s FROM pnl_ledger GROUP BY unit_id) u \
             JOIN (SELECT unit_id, account, SUM(qty) AS q FROM pnl_ledger GROUP BY unit_id, account) a \
               ON a.unit_id = u.unit_id ORDER BY 1, 2, 3, 4"
                .to_string(),
            0,
        ),
        // Another filter on the coarse side: nothing rolls up.
        (
            format!(
                "SELECT u.unit_id, CAST(u.s AS VARCHAR), a.account, CAST(a.s AS VARCHAR) \
                 FROM (SELECT unit_id, SUM(amount) AS s FROM pnl_ledger WHERE month = '{month}' GROUP BY unit_id) u \
                 JOIN (SELECT unit_id, account, SUM(amount) AS s FROM pnl_ledger GROUP BY unit_id, account) a \
                   ON a.unit_id = u.unit_id ORDER BY 1, 2, 3, 4"
            ),
            0,
        ),
        // A volatile function under the aggregate: each reference draws its own values.
        (
            "WITH r AS (SELECT unit_id, SUM(amount) * 0 + MAX(CAST(random() * 0 AS INT)) AS z \
                        FROM pnl_ledger GROUP BY unit_id) \
             SELECT a.unit_id, CAST(a.z + b.z AS VARCHAR) FROM r a JOIN r b ON a.unit_id = b.unit_id ORDER BY 1"
                .to_string(),
            0,
        ),
        // An in-memory table (the units): its copies are not known to be the same table.
        (
            "WITH k AS (SELECT kind, COUNT(*) AS n FROM amoeba_units GROUP BY kind) \
             SELECT a.kind, a.n + b.n FROM k a JOIN k b ON a.kind = b.kind ORDER BY 1"
                .to_string(),
            0,
        ),
    ];
    for (sql, readers) in &cases {
        rows(ctx, "SET amoeba.share_subplans = true").await;
        let plan = format!("{:?}", rows(ctx, &format!("EXPLAIN {sql}")).await);
        let shared = rows(ctx, sql).await;
        if *readers == 0 {
            assert!(
                !plan.contains("SharedExec"),
                "shared, yet it may differ: {sql}\n{plan}"
            );
        } else {
            let readers = format!("SharedExec: computed once for {readers} readers");
            assert!(plan.contains(&readers), "expected {readers}: {sql}\n{plan}");
        }
        rows(ctx, "SET amoeba.share_subplans = false").await;
        let plan = format!("{:?}", rows(ctx, &format!("EXPLAIN {sql}")).await);
        assert!(!plan.contains("SharedExec"), "off, yet shared: {plan}");
        let each = rows(ctx, sql).await;
        assert!(!each.is_empty(), "no rows: {sql}");
        assert_eq!(shared, each, "{sql}");
    }

    // Query 26 as written: `um` (read twice) is rolled up from the accounts' sums, which are
    // shared with the other side of its join. EXPLAIN prints a shared subtree under each of
    // its readers: two readers of `um`, each over a reader of the sums, and the sums' other
    // reader make five (without the roll-up: the two readers of `um`).
    rows(ctx, "SET amoeba.share_subplans = true").await;
    let (sql, _) = cases
        .iter()
        .find(|(sql, _)| sql.starts_with("WITH um AS"))
        .expect("query 26");
    let plan = format!("{:?}", rows(ctx, &format!("EXPLAIN {sql}")).await);
    assert_eq!(
        plan.matches("SharedExec: computed once").count(),
        5,
        "{plan}"
    );

    // One physical plan run again (its state reset, as DataFusion requires) computes again
    // and gives the same rows.
    rows(ctx, "SET amoeba.share_subplans = true").await;
    let (sql, _) = &cases[0];
    let df = ctx.sql(sql).await.expect("plan");
    let physical = df.create_physical_plan().await.expect("physical plan");
    let first = datafusion::physical_plan::collect(Arc::clone(&physical), ctx.task_ctx())
        .await
        .expect("first run");
    let physical =
        datafusion::physical_plan::execution_plan::reset_plan_states(physical).expect("reset");
    let second = datafusion::physical_plan::collect(physical, ctx.task_ctx())
        .await
        .expect("second run");
    assert_eq!(
        crate::support::render(&first),
        crate::support::render(&second)
    );
    assert_eq!(crate::support::render(&first), rows(ctx, sql).await);
}

/// Aggregates over the ledger joined to master data sum the ledger before the join
/// (`amoeba.eager_aggregation`): every combination of groups (from either side), sums, FILTERs,
/// MIN/MAX and filters gives the same rows summed first and not; what a sum of sums would
/// change (a count, an average, a float sum, a sum of the other side, an outer join) is never
/// rewritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sums_over_the_ledger_joined_to_master_data_equal_the_join_summed() {
    let copy = copy_warehouse(&warehouse(0.005, 1));
    let served = refresh(copy.path(), RefreshOptions::default()).await;
    let ctx = &served.ctx;
    let month = scalar(ctx, "SELECT MAX(month) FROM pnl_ledger").await;
    let joins = [
        "JOIN skus k ON k.sku = l.sku",
        "JOIN amoeba_units u ON u.unit_id = l.unit_id",
        "JOIN skus k ON l.sku = k.sku JOIN amoeba_units u ON u.unit_id = l.unit_id",
    ];
    let groups = [
        vec!["k.category"],
        vec!["k.brand", "l.platform"],
        vec!["l.sku", "k.category"],
        vec!["u.kind"],
        vec!["u.kind", "l.month", "l.account"],
    ];
    let aggregates = [
        "CAST(SUM(l.amount) AS VARCHAR)",
        "CAST(SUM(l.qty) FILTER (WHERE l.account = 'gross_sales') AS VARCHAR)",
        "CAST(SUM(l.amount) FILTER (WHERE l.account IN ('refund', 'cogs')) AS VARCHAR), \
         CAST(MIN(l.date) AS VARCHAR), CAST(MAX(l.amount) AS VARCHAR)",
    ];
    let filters = [
        String::new(),
        format!("WHERE l.month = '{month}'"),
        "WHERE l.platform IS NOT NULL AND l.account LIKE '%s%'".to_string(),
    ];
    let mut cases: Vec<(String, bool)> = Vec::new();
    for (j, join) in joins.iter().enumerate() {
        for group in &groups {
            let needs_units = group.iter().any(|g| g.starts_with("u."));
            let needs_skus = group.iter().any(|g| g.starts_with("k."));
            if (needs_units && j == 0) || (needs_skus && j == 1) {
                continue;
            }
            for (a, aggregate) in aggregates.iter().enumerate() {
                let filter = &filters[(j + a) % filters.len()];
                let g = group.join(", ");
                cases.push((
                    format!("SELECT {g}, {aggregate} FROM pnl_ledger l {join} {filter} GROUP BY {g} ORDER BY {g}"),
                    // Two joins: the ledger side of the outer one is a join, not a scan.
                    j < 2,
                ));
            }
        }
    }
    // Never rewritten: a sum of sums would not be the same.
    for (select, join) in [
        ("COUNT(*)", "JOIN skus k ON k.sku = l.sku"),
        (
            "CAST(AVG(l.amount) AS VARCHAR)",
            "JOIN skus k ON k.sku = l.sku",
        ),
        (
            "SUM(CAST(l.amount AS DOUBLE)) > 0",
            "JOIN skus k ON k.sku = l.sku",
        ),
        ("COUNT(DISTINCT l.sku)", "JOIN skus k ON k.sku = l.sku"),
        (
            "CAST(SUM(u.headcount) AS VARCHAR)",
            "JOIN amoeba_units u ON u.unit_id = l.unit_id",
        ),
        (
            "CAST(SUM(l.amount) AS VARCHAR)",
            "LEFT JOIN skus k ON k.sku = l.sku",
        ),
    ] {
        let g = if join.contains("units") {
            "u.kind"
        } else {
            "k.category"
        };
        cases.push((
            format!("SELECT {g}, {select} FROM pnl_ledger l {join} GROUP BY {g} ORDER BY {g}"),
            false,
        ));
    }
    for (sql, rewritten) in &cases {
        rows(ctx, "SET amoeba.eager_aggregation = true").await;
        let plan = format!("{:?}", rows(ctx, &format!("EXPLAIN {sql}")).await);
        assert_eq!(plan.contains("__eager_"), *rewritten, "{sql}\n{plan}");
        let eager = rows(ctx, sql).await;
        rows(ctx, "SET amoeba.eager_aggregation = false").await;
        let plan = format!("{:?}", rows(ctx, &format!("EXPLAIN {sql}")).await);
        assert!(!plan.contains("__eager_"), "off, yet rewritten: {plan}");
        let joined = rows(ctx, sql).await;
        assert!(!joined.is_empty(), "no rows: {sql}");
        assert_eq!(eager, joined, "{sql}");
    }
    rows(ctx, "SET amoeba.eager_aggregation = true").await;
}

/// Aggregates over `pnl` group the ledger by the dimensions they use only (`amoeba.narrow_pnl`):
/// random aggregates — joins to the units and the SKU master, filters on dimensions and on
/// measures, sums and the aggregates that count rows — give the same rows narrowed and not,
/// and those that depend on the number of `pnl` rows are never narrowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_over_pnl_grouped_by_what_they_use_equal_the_full_view() {
    let copy = copy_warehouse(&warehouse(0.005, 1));
    let served = refresh(copy.path(), RefreshOptions::default()).await;
    let ctx = &served.ctx;
    rows(ctx, "SET amoeba.cube_routing = false").await;
    let dims = [
        "p.month",
        "p.date",
        "p.platform",
        "p.shop_id",
        "p.sku",
        "p.campaign",
        "p.unit_id",
        "u.kind",
        "u.parent_id",
        "k.category",
    ];
    let measures = [
        "net_sales",
        "gross_profit",
        "cm3",
        "net_profit",
        "refund",
        "advertising",
        "cogs",
        "allocated_staff",
        "allocated_total",
    ];
    let filters = [
        "p.month = '2025-11'",
        "p.month BETWEEN '2025-03' AND '2025-06'",
        "p.platform IN ('tmall', 'jd')",
        "u.kind = 'profit'",
        "p.date >= DATE '2025-06-18'",
        "p.sku IS NULL",
        "k.category IS NOT NULL",
        "p.net_sales > 0",
        "p.net_profit < 0",
    ];
    // Aggregates that depend on how many `pnl` rows there are: never narrowed.
    let row_counting = [
        "COUNT(*)",
        "AVG(p.net_sales)",
        "SUM(u.headcount)",
        "COUNT(p.sku)",
    ];
    let mut rng = Rng(0x0A0E_BA11);
    let (mut narrowed, mut total) = (0, 0);
    for i in 0..200 {
        let n = rng.below(4);
        let group = rng.pick(&dims, n);
        let n = 1 + rng.below(3);
        let mut aggs: Vec<String> = rng
            .pick(&measures, n)
            .iter()
            .map(|m| format!("CAST(SUM(p.{m}) AS VARCHAR)"))
            .collect();
        match rng.below(6) {
            0 => aggs.push("CAST(MIN(p.date) AS VARCHAR)".to_string()),
            1 => aggs.push("CAST(COUNT(DISTINCT p.sku) AS VARCHAR)".to_string()),
            2 => aggs.push(format!(
                "CAST({} AS VARCHAR)",
                row_counting[rng.below(row_counting.len())]
            )),
            _ => {}
        }
        let n = rng.below(3);
        let wheres = rng.pick(&filters, n);
        let mut sql = format!(
            "SELECT {} FROM pnl p LEFT JOIN amoeba_units u ON u.unit_id = p.unit_id \
             LEFT JOIN skus k ON k.sku = p.sku",
            group
                .iter()
                .map(|d| format!("CAST({d} AS VARCHAR)"))
                .chain(aggs.iter().cloned())
                .enumerate()
                .map(|(i, e)| format!("{e} AS c{i}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        if !wheres.is_empty() {
            sql.push_str(&format!(" WHERE {}", wheres.join(" AND ")));
        }
        if !group.is_empty() {
            sql.push_str(&format!(" GROUP BY {}", group.join(", ")));
        }
        let columns = group.len() + aggs.len();
        let order: Vec<String> = (1..=columns).map(|c| format!("{c} NULLS FIRST")).collect();
        sql.push_str(&format!(" ORDER BY {} LIMIT 300", order.join(", ")));

        rows(ctx, "SET amoeba.narrow_pnl = true").await;
        let plan = format!("{:?}", rows(ctx, &format!("EXPLAIN {sql}")).await);
        let is_narrowed = plan.contains("TableScan: pnl_ledger");
        let with = rows(ctx, &sql).await;
        rows(ctx, "SET amoeba.narrow_pnl = false").await;
        let plan_off = format!("{:?}", rows(ctx, &format!("EXPLAIN {sql}")).await);
        assert!(!plan_off.contains("TableScan: pnl_ledger"), "off: {sql}");
        let without = rows(ctx, &sql).await;
        assert_eq!(with, without, "query {i}: {sql}");
        total += 1;
        if is_narrowed {
            narrowed += 1;
        }
        if wheres.iter().any(|w| w.contains("net_")) || row_counting.iter().any(|a| sql.contains(a))
        {
            assert!(!is_narrowed, "depends on the pnl rows, yet narrowed: {sql}");
        }
    }
    eprintln!("{narrowed} of {total} random aggregates over pnl were narrowed");
    assert!(narrowed * 3 >= total, "only {narrowed} of {total} narrowed");
    assert!(narrowed < total, "every aggregate was narrowed");

    // A self-join of pnl is left alone (each side's rows multiply the other's sums), and so is
    // an aggregate over an empty selection, which still yields no group.
    rows(ctx, "SET amoeba.narrow_pnl = true").await;
    let self_join = "SELECT a.month, CAST(SUM(a.net_sales) AS VARCHAR) FROM pnl a \
                     JOIN pnl b ON a.unit_id = b.unit_id AND a.date = b.date AND a.sku = b.sku \
                     WHERE a.month = '2025-11' GROUP BY a.month";
    let plan = format!("{:?}", rows(ctx, &format!("EXPLAIN {self_join}")).await);
    assert!(!plan.contains("TableScan: pnl_ledger"), "{plan}");
    // The same through a derived table: the outer scan may be narrowed, the inner one (the
    // same scan behind another alias) must keep its rows.
    let derived = "SELECT p.month, CAST(SUM(p.net_sales) AS VARCHAR) AS s FROM pnl p \
                   JOIN (SELECT * FROM pnl p) x ON x.unit_id = p.unit_id AND x.month = p.month \
                   WHERE p.month = '2025-11' GROUP BY p.month";
    let with = rows(ctx, derived).await;
    rows(ctx, "SET amoeba.narrow_pnl = false").await;
    assert_eq!(with, rows(ctx, derived).await, "{derived}");
    rows(ctx, "SET amoeba.narrow_pnl = true").await;
    let empty = "SELECT u.name, CAST(SUM(p.net_sales) AS VARCHAR) FROM amoeba_units u \
                 LEFT JOIN pnl p ON p.unit_id = u.unit_id AND p.month = '1999-01' \
                 GROUP BY u.name ORDER BY 1";
    let with = rows(ctx, empty).await;
    rows(ctx, "SET amoeba.narrow_pnl = false").await;
    assert_eq!(with, rows(ctx, empty).await);

    // The master data a serving session holds in memory is still a view to clients.
    assert_eq!(
        rows(
            ctx,
            "SELECT table_name, table_type FROM information_schema.tables \
             WHERE table_name IN ('skus', 'ad_spend') ORDER BY 1"
        )
        .await,
        vec![vec!["ad_spend", "VIEW"], vec!["skus", "VIEW"]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_routed_to_cubes_equal_the_ledger_over_random_queries() {
    let copy = copy_warehouse(&warehouse(0.005, 1));
    let served = refresh(copy.path(), RefreshOptions::default()).await;
    let ctx = &served.ctx;
    let dims = [
        "month", "date", "platform", "shop_id", "sku", "campaign", "unit_id",
    ];
    let measures = [
        "net_sales",
        "gross_profit",
        "cm2",
        "cm3",
        "net_profit",
        "gross_sales",
        "refund",
        "advertising",
        "cogs",
        "internal_cost",
        "allocated_staff",
        "allocated_total",
    ];
    let filters = [
        "month = '2025-11'",
        "month BETWEEN '2025-03' AND '2025-06'",
        "platform IN ('tmall', 'jd')",
        "unit_id = 'U07'",
        "unit_id <> 'U00'",
        "date >= DATE '2025-06-18'",
        "shop_id LIKE 'tm%'",
        "sku IS NULL",
        "campaign IS NOT NULL",
        "net_sales > 0",
    ];
    let mut rng = Rng(0x5EED_CAFE);
    let (mut routed, mut total) = (0, 0);
    for i in 0..240 {
        // Every third query is on the ledger itself: SUM(amount), sometimes of one account.
        let on_ledger = i % 3 == 2;
        let n = rng.below(4);
        let group = rng.pick(&dims, n);
        let sums: Vec<String> = if on_ledger {
            vec!["CAST(SUM(amount) AS VARCHAR) AS s_amount".to_string()]
        } else {
            let n = 1 + rng.below(3);
            rng.pick(&measures, n)
                .iter()
                .map(|m| format!("CAST(SUM({m}) AS VARCHAR) AS s_{m}"))
                .collect()
        };
        let mut sql = format!(
            "SELECT {} FROM {}",
            group
                .iter()
                .map(|d| format!("CAST({d} AS VARCHAR) AS {d}"))
                .chain(sums.iter().cloned())
                .collect::<Vec<_>>()
                .join(", "),
            if on_ledger { "pnl_ledger" } else { "pnl" }
        );
        let n = rng.below(3);
        let mut wheres = rng.pick(&filters, n);
        if on_ledger {
            wheres.retain(|w| !w.starts_with("net_sales"));
            if rng.below(3) == 0 {
                wheres.push("account = 'refund'");
            }
        }
        if !wheres.is_empty() {
            sql.push_str(&format!(" WHERE {}", wheres.join(" AND ")));
        }
        if !group.is_empty() {
            sql.push_str(&format!(" GROUP BY {}", group.join(", ")));
        }
        let columns = group.len() + sums.len();
        let order: Vec<String> = (1..=columns).map(|c| format!("{c} NULLS FIRST")).collect();
        sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
        // Rollups of a month are small; keep the SKU-by-day ones bounded.
        if group.contains(&"sku") && group.contains(&"date") {
            sql.push_str(" LIMIT 500");
        }

        rows(ctx, "SET amoeba.cube_routing = true").await;
        let plan = rows(ctx, &format!("EXPLAIN {sql}")).await;
        let on_cube = format!("{plan:?}").contains("cubes.");
        let with = rows(ctx, &sql).await;
        rows(ctx, "SET amoeba.cube_routing = false").await;
        let plan_off = rows(ctx, &format!("EXPLAIN {sql}")).await;
        assert!(
            !format!("{plan_off:?}").contains("cubes."),
            "routing off: {sql}"
        );
        let without = rows(ctx, &sql).await;
        assert_eq!(with, without, "query {i}: {sql}");
        total += 1;
        if on_cube {
            routed += 1;
        }
        // What a cube cannot answer stays on the ledger.
        if wheres.contains(&"net_sales > 0")
            || wheres.contains(&"account = 'refund'")
            || sums.iter().any(|s| s.contains("allocated_total"))
        {
            assert!(!on_cube, "not answerable from a cube, yet routed: {sql}");
        }
    }
    eprintln!("{routed} of {total} random queries were answered from a cube");
    assert!(
        routed * 3 >= total,
        "only {routed} of {total} queries were routed"
    );
    assert!(
        routed < total,
        "every query was routed: the unroutable ones were not generated"
    );

    // Of the sets that can answer, the one with the fewest rows is read: the company by
    // month is unit_monthly's (month, quarter, year) set, not sku_campaign's (month,
    // category) nor shop_daily's (month, date, week), which hold more rows.
    rows(ctx, "SET amoeba.cube_routing = true").await;
    let plan = rows(
        ctx,
        "EXPLAIN SELECT month, SUM(net_sales) FROM pnl GROUP BY month",
    )
    .await;
    let plan = plan.concat().join("\n");
    assert!(
        plan.contains("cubes.unit_monthly._set = Utf8(\"month,quarter,year\")"),
        "{plan}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_warehouse_refreshes_when_exports_land_and_keeps_its_state_on_bad_input() {
    let copy = copy_warehouse(&warehouse(0.005, 1));
    let root = copy.path();
    // sku_campaign is refreshed on a schedule only (06:00 on 1 January, Asia/Shanghai).
    let model_file = root.join("model/model.toml");
    let model = std::fs::read_to_string(&model_file).expect("model");
    std::fs::write(
        &model_file,
        model.replacen(
            "name = \"sku_campaign\"\n",
            "name = \"sku_campaign\"\nschedule = \"0 6 1 1 *\"\n",
            1,
        ),
    )
    .expect("write model");
    let (refresher, _) = amoeba_engine::Refresher::open(
        Warehouse::open(&root.to_string_lossy()).expect("open warehouse"),
    )
    .await
    .expect("open");
    let refresher = std::sync::Arc::new(refresher);
    let server =
        crate::support::TestServer::start_refreshing(std::sync::Arc::clone(&refresher)).await;
    let client = server.client().await;
    let count = |sql: &'static str| {
        let client = &client;
        async move {
            let row = client.query_one(sql, &[]).await.expect(sql);
            row.get::<_, String>(0)
        }
    };
    let lines = "SELECT CAST(COUNT(*) AS TEXT) FROM order_lines";
    let version = "SELECT version FROM amoeba_cubes WHERE cube = 'shop_daily'";
    let scheduled = "SELECT version FROM amoeba_cubes WHERE cube = 'sku_campaign'";
    let by_sku =
        "EXPLAIN SELECT sku, SUM(net_profit) FROM pnl WHERE month = '2025-12' GROUP BY sku";
    let plan = |sql: &'static str| {
        let client = &client;
        async move {
            let rows = client.query(sql, &[]).await.expect(sql);
            rows.iter()
                .map(|r| r.get::<_, String>(1))
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    assert!(plan(by_sku).await.contains("cubes.sku_campaign"));
    let scheduled_before = count(scheduled).await;
    assert_eq!(
        count("SELECT refresh FROM amoeba_cubes WHERE cube = 'sku_campaign'").await,
        "schedule 0 6 1 1 * (Asia/Shanghai)"
    );
    assert_eq!(
        count("SELECT refresh FROM amoeba_cubes WHERE cube = 'shop_daily'").await,
        "on new exports"
    );
    let (lines_before, version_before) = (count(lines).await, count(version).await);
    assert!(
        refresher
            .refresh_if_changed(false)
            .await
            .expect("poll")
            .is_none(),
        "nothing changed, nothing is rebuilt"
    );

    // New exports land: the poller rebuilds and swaps, the server keeps serving.
    add_new_orders(root).await;
    tokio::spawn(std::sync::Arc::clone(&refresher).poll(std::time::Duration::from_millis(300)));
    let started = Instant::now();
    while count(version).await == version_before {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(240),
            "no refresh within 240 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert_ne!(
        count(lines).await,
        lines_before,
        "the new orders are served"
    );
    // The scheduled cube waits for its time: not rebuilt, so not routed to (the ledger answers).
    assert_eq!(count(scheduled).await, scheduled_before);
    assert!(!plan(by_sku).await.contains("cubes.sku_campaign"));
    let six = |minute: u64| {
        // 2026-01-01 06:00 Asia/Shanghai = 2025-12-31 22:00 UTC, in Unix ms.
        (1_767_218_400 + minute * 60) * 1000
    };
    assert!(
        refresher
            .refresh_scheduled(six(1), six(30))
            .await
            .expect("not due")
            .is_empty()
    );
    let done = refresher
        .refresh_scheduled(six(0) - 1000, six(1))
        .await
        .expect("due");
    assert_eq!(done.len(), 1, "{done:?}");
    assert_ne!(count(scheduled).await, scheduled_before);
    assert!(plan(by_sku).await.contains("cubes.sku_campaign"));
    let routed = client
        .query_one(
            "SELECT CAST(SUM(net_profit) AS TEXT) FROM pnl WHERE month = '2025-12'",
            &[],
        )
        .await
        .expect("pnl")
        .get::<_, Option<String>>(0);
    let ledger = client
        .query_one(
            "SELECT CAST(SUM(amount) AS TEXT) FROM pnl_ledger WHERE month = '2025-12' AND account IS NOT NULL",
            &[],
        )
        .await
        .expect("ledger")
        .get::<_, Option<String>>(0);
    assert_eq!(routed, ledger);

    // REFRESH CUBE over SQL: admins only, in the simple and the extended protocol.
    let sqlstate = |e: tokio_postgres::Error| {
        let db = e.as_db_error().cloned();
        db.map(|d| (d.code().code().to_string(), d.message().to_string()))
            .unwrap_or_default()
    };
    let analyst = server.client_as("analyst").await;
    let (code, message) = sqlstate(
        analyst
            .simple_query("REFRESH CUBE shop_daily")
            .await
            .expect_err("an analyst may not refresh"),
    );
    assert_eq!(code, "42501", "{message}");
    assert!(message.contains("user 'analyst' is analyst"), "{message}");
    let stranger = server.client_as("mallory").await;
    let (code, message) = sqlstate(
        stranger
            .query("REFRESH CUBE shop_daily", &[])
            .await
            .expect_err("an unknown user may not refresh"),
    );
    assert_eq!(code, "42501", "{message}");
    assert!(message.contains("not declared"), "{message}");
    for (sql, expected) in [
        ("REFRESH CUBE no_such_cube", "42704"),
        ("REFRESH CUBE", "42601"),
        ("REFRESH CUBES shop_daily", "42601"),
    ] {
        let (code, message) = sqlstate(client.simple_query(sql).await.expect_err(sql));
        assert_eq!(code, expected, "{sql}: {message}");
    }
    // Nothing changed: the extended protocol (as drivers that prepare every statement send
    // it) answers with the cube's row of amoeba_cubes, not rebuilt.
    let rows = client
        .query("refresh cube shop_daily", &[])
        .await
        .expect("refresh cube over the extended protocol");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>("cube"), "shop_daily");
    assert_eq!(rows[0].get::<_, String>("status"), "fresh");
    let months = rows[0].get::<_, Option<i64>>("months").unwrap_or(0);
    assert!(months > 1, "{months}");
    // FULL rebuilds every month, publishes a new version and keeps it routed to.
    let scheduled_before = count(scheduled).await;
    let answer = client
        .simple_query("REFRESH CUBE sku_campaign FULL;")
        .await
        .expect("refresh cube full");
    let row = answer
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .expect("a row");
    assert_eq!(row.get("status"), Some("rebuilt"));
    let rebuilt = row.get("rebuilt_months").unwrap_or("").split(',').count();
    let months = row
        .get("months")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(0);
    assert_eq!(rebuilt, months, "FULL rebuilds every month");
    assert_ne!(count(scheduled).await, scheduled_before);
    assert_eq!(
        Some(count(scheduled).await.as_str()),
        row.get("version"),
        "amoeba_cubes serves the new version"
    );
    assert!(plan(by_sku).await.contains("cubes.sku_campaign"));

    // A bad model: the refresh fails, the last good state stays served and says why.
    let model_file = root.join("model/model.toml");
    let model = std::fs::read_to_string(&model_file).expect("model");
    std::fs::write(
        &model_file,
        model.replacen("unit = \"U01\"", "unit = \"U99\"", 1),
    )
    .expect("write model");
    let failed = refresher.refresh_if_changed(true).await;
    assert!(failed.is_err(), "a bad model fails the refresh");
    assert_ne!(count(lines).await, lines_before);
    let error = client
        .query_one(
            "SELECT last_error FROM amoeba_cubes WHERE cube = 'sku_campaign'",
            &[],
        )
        .await
        .expect("status")
        .get::<_, Option<String>>(0)
        .unwrap_or_default();
    assert!(error.contains("unknown unit 'U99'"), "{error}");
}
