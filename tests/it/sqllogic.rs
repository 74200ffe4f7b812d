//! sqllogictest files (`tests/slt/*.slt`) run against a session on a generated warehouse.
//! They pin the SQL behaviour of the unified views: schemas, invariants that must hold for
//! any generated data, and the catalog's own tables.

use std::path::Path;

use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use sqllogictest::{DBOutput, DefaultColumnType};

use crate::support::{render, warehouse};

struct Amoeba {
    ctx: SessionContext,
}

#[derive(Debug)]
struct SltError(String);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

#[async_trait]
impl sqllogictest::AsyncDB for Amoeba {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let df = self
            .ctx
            .sql(sql)
            .await
            .map_err(|e| SltError(e.to_string()))?;
        let columns = df.schema().fields().len();
        let batches = df.collect().await.map_err(|e| SltError(e.to_string()))?;
        let rows = render(&batches);
        if columns == 0
            || (rows.is_empty() && sql.trim_start().to_ascii_lowercase().starts_with("create"))
        {
            return Ok(DBOutput::StatementComplete(0));
        }
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; columns],
            rows,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "amoeba"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_files() {
    // The views, the ledger (`pnl_ledger`, `pnl`, `amoeba_checks`) and the generator's truth.
    let path = warehouse(0.005, 1);
    let (ctx, _, ledger) = amoeba_engine::open_with_ledger(
        amoeba_catalog::Warehouse::open(&path.to_string_lossy()).expect("open warehouse"),
        amoeba_engine::LedgerMode::InMemory,
    )
    .await
    .expect("open with ledger");
    assert!(ledger.is_some(), "the generated warehouse has a model");
    crate::support::register_truth(&ctx, &path).await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/slt")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {dir:?}");
    for file in files {
        let ctx = ctx.clone();
        let mut runner = sqllogictest::Runner::new(move || {
            let ctx = ctx.clone();
            async move { Ok::<_, SltError>(Amoeba { ctx }) }
        });
        if let Err(e) = runner.run_file_async(&file).await {
            panic!("{}: {e}", file.display());
        }
    }
}
