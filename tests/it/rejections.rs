//! Broken inputs: each gives a clear error naming the file (and the column), and everything
//! else stays served — by the catalog, over the wire, and in `amoeba check`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::support::{TestServer, copy_warehouse, rows, session, warehouse};

/// The data files of one platform kind, sorted.
fn files(root: &Path, platform: &str, kind: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("exports").join(platform).join(kind)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Rewrites a Parquet file through `edit`, which gets and returns each batch.
fn rewrite(path: &Path, edit: impl Fn(RecordBatch) -> RecordBatch) {
    let batches: Vec<RecordBatch> =
        ParquetRecordBatchReaderBuilder::try_new(File::open(path).expect("open"))
            .expect("reader")
            .build()
            .expect("build")
            .map(|b| edit(b.expect("batch")))
            .collect();
    let schema = batches[0].schema();
    let mut writer =
        ArrowWriter::try_new(File::create(path).expect("create"), schema, None).expect("writer");
    for batch in &batches {
        writer.write(batch).expect("write");
    }
    writer.close().expect("close");
}

fn drop_column(batch: RecordBatch, name: &str) -> RecordBatch {
    let index = batch.schema().index_of(name).expect("column");
    let mut batch = batch;
    batch.remove_column(index);
    batch
}

fn rename_column(batch: RecordBatch, from: &str, to: &str) -> RecordBatch {
    let fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| {
            if f.name() == from {
                f.as_ref().clone().with_name(to)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), batch.columns().to_vec()).expect("rename")
}

fn set_first_string(batch: RecordBatch, column: &str, value: &str) -> RecordBatch {
    let index = batch.schema().index_of(column).expect("column");
    let values = batch
        .column(index)
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("string column");
    let edited: StringArray = (0..values.len())
        .map(|i| {
            if i == 0 {
                Some(value.to_string())
            } else {
                values.is_valid(i).then(|| values.value(i).to_string())
            }
        })
        .collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns[index] = Arc::new(edited);
    RecordBatch::try_new(batch.schema(), columns).expect("edit")
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .expect("inside")
        .to_string_lossy()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_files_are_rejected_by_name_and_the_rest_is_served() {
    let source = warehouse(0.005, 1);
    let copy = copy_warehouse(&source);
    let root = copy.path();

    // Corrupt Parquet: garbage where a footer should be.
    let corrupt = files(root, "tmall", "orders")[0].clone();
    std::fs::write(&corrupt, b"this is not a parquet file").expect("corrupt");
    // A missing column.
    let missing = files(root, "jd", "orders")[0].clone();
    rewrite(&missing, |b| drop_column(b, "京东价"));
    // A renamed column.
    let renamed = files(root, "pdd", "orders")[0].clone();
    rewrite(&renamed, |b| rename_column(b, "商品总价(元)", "商品总价"));
    // An unknown platform.
    let unknown =
        root.join("exports/kuaishou/orders/shop=KS01/dt=2025-01-31/part-202501-0001.parquet");
    std::fs::create_dir_all(unknown.parent().expect("parent")).expect("mkdir");
    std::fs::copy(&files(root, "douyin", "orders")[0], &unknown).expect("copy");
    // A malformed amount in one row: the row is rejected, the file is served.
    let bad_row = files(root, "pdd", "orders")[1].clone();
    rewrite(&bad_row, |b| set_first_string(b, "商品总价(元)", "12,50"));

    let (ctx, catalog) = session(root).await;
    // The copy carries the truth of its source, registered by `session`.
    let rejections = catalog.rejections();
    let reason = |path: &Path| -> String {
        let rel = relative(root, path);
        rejections
            .iter()
            .find(|r| r.path == rel)
            .unwrap_or_else(|| panic!("{rel} not rejected: {rejections:?}"))
            .reason
            .clone()
    };
    assert!(
        reason(&corrupt).contains("not a readable Parquet file"),
        "{}",
        reason(&corrupt)
    );
    assert!(
        reason(&missing).contains("missing column(s) '京东价'"),
        "{}",
        reason(&missing)
    );
    let r = reason(&renamed);
    assert!(
        r.contains("'商品总价(元)'") && r.contains("'商品总价'") && r.contains("renamed"),
        "{r}"
    );
    assert!(
        reason(&unknown).contains("unknown platform 'kuaishou'"),
        "{}",
        reason(&unknown)
    );
    assert_eq!(rejections.len(), 4, "{rejections:?}");

    // The rejected row names its file and the column that could not be mapped.
    let rejected = rows(
        &ctx,
        "SELECT view, file, missing_column FROM amoeba_rejected_rows",
    )
    .await;
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0][0], "order_lines");
    assert_eq!(rejected[0][1], relative(root, &bad_row));
    assert_eq!(rejected[0][2], "unit_price");
    // The ledger build's report (which reads the rows as mapped once for the build) names
    // the same file and fails.
    let ledger = amoeba_engine::ledger::Ledger::build(&catalog)
        .await
        .expect("ledger");
    let mapped: Vec<_> = ledger
        .checks()
        .iter()
        .filter(|c| c.check == "rows_mapped")
        .collect();
    assert_eq!(mapped.len(), 1, "{mapped:?}");
    assert_eq!(
        mapped[0].scope,
        format!("order_lines {}", relative(root, &bad_row))
    );
    assert_eq!(mapped[0].status, amoeba_engine::ledger::Status::Fail);
    assert_eq!(mapped[0].actual, Some(100), "one row, as a count in cents");
    assert!(ledger.failed());

    // Untouched platforms are served whole; broken ones lose only the rejected files.
    let sql = "SELECT count(*), sum(net_sales) FROM {} WHERE platform = 'douyin'";
    assert_eq!(
        rows(&ctx, &sql.replace("{}", "order_lines")).await,
        rows(&ctx, &sql.replace("{}", "truth_order_lines")).await
    );
    for platform in ["tmall", "jd", "pdd"] {
        let served = rows(
            &ctx,
            &format!("SELECT count(*) FROM order_lines WHERE platform = '{platform}'"),
        )
        .await;
        let truth = rows(
            &ctx,
            &format!("SELECT count(*) FROM truth_order_lines WHERE platform = '{platform}'"),
        )
        .await;
        let (served, truth): (u64, u64) = (
            served[0][0].parse().expect("n"),
            truth[0][0].parse().expect("n"),
        );
        assert!(
            served > 0 && served < truth,
            "{platform}: {served} of {truth}"
        );
    }

    // Over the wire: the server is up, serves the rest and lists the rejected files.
    let server = TestServer::start(ctx).await;
    let client = server.client().await;
    let listed = client
        .query(
            "SELECT path, error FROM amoeba_files WHERE status = 'rejected' ORDER BY path",
            &[],
        )
        .await
        .expect("amoeba_files");
    assert_eq!(listed.len(), 4);
    let n: i64 = client
        .query_one("SELECT count(*) FROM order_lines", &[])
        .await
        .expect("count")
        .get(0);
    assert!(n > 0);

    // `amoeba check` names every rejected file and exits 1.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_amoeba"))
        .args(["check", "--warehouse"])
        .arg(root)
        .output()
        .expect("run amoeba check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    for path in [&corrupt, &missing, &renamed, &unknown, &bad_row] {
        assert!(
            stdout.contains(&relative(root, path)),
            "check does not name {path:?}:\n{stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_warehouse_checks_clean() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_amoeba"))
        .args(["check", "--warehouse"])
        .arg(warehouse(0.005, 1))
        .output()
        .expect("run amoeba check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("0 rejected") && stdout.contains("0 rejected rows"),
        "{stdout}"
    );
}
