//! The same warehouse served from an S3-compatible endpoint (moto, on loopback, started
//! here) gives the same answers as from the local directory: every view equals the truth.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use amoeba_catalog::Warehouse;
use amoeba_engine::LedgerMode;
use object_store::{ObjectStoreExt, PutPayload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::catalog_truth::assert_session_equals_truth;
use crate::support::{KillOnDrop, free_port, register_truth, rows, tool, wait_for_port, warehouse};

/// Creates a bucket with a plain (unsigned) request: moto does not check signatures.
async fn create_bucket(port: u16, bucket: &str) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect moto");
    let request = format!(
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "create bucket: {response}"
    );
}

fn local_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            local_files(root, &path, out);
        } else {
            out.push(
                path.strip_prefix(root)
                    .expect("inside")
                    .to_string_lossy()
                    .to_string(),
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_warehouse_serves_the_same_answers() {
    let local = warehouse(0.005, 2);
    let port = free_port();
    let moto = KillOnDrop(
        Command::new(tool("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server"),
    );
    wait_for_port(port, Duration::from_secs(60)).await;
    create_bucket(port, "amoeba-test").await;

    let endpoint = format!("http://127.0.0.1:{port}");
    let options = [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_access_key_id", "test"),
        ("aws_secret_access_key", "test"),
        ("aws_region", "us-east-1"),
        ("aws_allow_http", "true"),
    ];
    let s3 =
        Warehouse::open_with_options("s3://amoeba-test/shop/warehouse", &options).expect("open s3");
    let mut files = Vec::new();
    for top in ["exports", "erp", "logistics", "finance"] {
        local_files(&local, &local.join(top), &mut files);
    }
    assert!(files.len() > 50, "{} files", files.len());
    for file in &files {
        let bytes = std::fs::read(local.join(file)).expect("read");
        let key = file
            .split('/')
            .fold(s3.prefix().clone(), |p, part| p.join(part));
        s3.store()
            .put(&key, PutPayload::from(bytes))
            .await
            .expect("upload");
    }

    let (ctx, catalog) = amoeba_engine::open_session(s3.clone())
        .await
        .expect("open s3 session");
    assert_eq!(
        catalog.files().len(),
        files.len(),
        "every uploaded file is served"
    );
    assert!(
        catalog.rejections().is_empty(),
        "{:?}",
        catalog.rejections()
    );
    register_truth(&ctx, &local).await;
    assert_session_equals_truth(&ctx, "s3").await;

    // The ledger is built from S3 and published back to it (Parquet by month + `_current`),
    // and equals the ledger of the local copy.
    let model = std::fs::read(local.join("model/model.toml")).expect("model");
    let model_key = s3.prefix().clone().join("model").join("model.toml");
    s3.store()
        .put(&model_key, PutPayload::from(model))
        .await
        .expect("upload model");
    let (published, _, ledger) = amoeba_engine::open_with_ledger(s3.clone(), LedgerMode::Publish)
        .await
        .expect("build and publish on s3");
    let ledger = ledger.expect("the model was uploaded");
    assert!(
        !ledger.failed(),
        "{:?}",
        ledger
            .checks()
            .iter()
            .filter(|c| c.status != amoeba_engine::ledger::Status::Ok)
            .collect::<Vec<_>>()
    );
    let current = s3.prefix().clone().join("ledger").join("_current");
    let version = s3
        .store()
        .get(&current)
        .await
        .expect("_current")
        .bytes()
        .await
        .expect("bytes");
    assert!(version.starts_with(b"v"), "{version:?}");
    let (in_memory, _, _) = amoeba_engine::open_with_ledger(
        Warehouse::open(&local.to_string_lossy()).expect("open local"),
        LedgerMode::InMemory,
    )
    .await
    .expect("local ledger");
    let totals = "SELECT month, CAST(SUM(amount) AS VARCHAR), COUNT(*) FROM pnl_ledger GROUP BY month ORDER BY month";
    assert_eq!(
        rows(&published, totals).await,
        rows(&in_memory, totals).await
    );
    drop(moto);
}
