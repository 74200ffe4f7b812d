//! Where the ledger build keeps its working tables: in memory, or — when the model sets
//! `[ledger] memory_limit_mb` — as Parquet in a scratch folder, with DataFusion's sorts and
//! aggregations spilling to disk beyond the limit.
//!
//! ```text
//!                      in memory (no limit)            on disk (memory_limit_mb = N)
//!  working table       DataFrame::cache → MemTable     write_parquet → <scratch>/<name>/
//!                                                      read back as a Parquet table
//!  sorts, aggregates   unbounded pool                  FairSpillPool of N MiB, spill files
//!                                                      in <scratch>/spill
//!  the ledger          collected batches               <scratch>/ledger/month=…/*.parquet,
//!                                                      copied into the version at publish
//! ```
//!
//! In memory the build is fastest, and it holds every working table and the ledger at once:
//! about 4 GiB at scale 1, ten times that at scale 10. On disk a working table costs a Parquet
//! write and the reads of the steps that use it, and what is resident is what the running step
//! needs (its pool, its hash-join build sides, the spreads' and costing's sorted rows). The
//! rows are the same either way (`tests/it/ledger.rs` builds both and compares).
//!
//! The scratch folder is under the system's temporary folder (`TMPDIR`) and removed when the
//! built ledger is dropped (after it was published, or when the build fails).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::TableProvider;
use datafusion::common::config::TableParquetOptions;
use datafusion::dataframe::{DataFrame, DataFrameWriteOptions};
use datafusion::datasource::MemTable;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use super::store::ledger_schema;
use crate::error::{EngineError, Result};

/// Where a build's working tables go.
#[derive(Debug, Clone)]
pub(crate) enum Staging {
    /// Cached in memory.
    Memory,
    /// Written as Parquet into a scratch folder, removed with the last clone.
    Disk(Arc<Scratch>),
}

/// A session's hold on the scratch folder of the ledger it serves (a session config
/// extension): the folder is removed with the last holder.
#[derive(Debug)]
pub(crate) struct KeptScratch {
    /// Held, never read.
    pub(crate) _staging: Staging,
}

/// A build's scratch folder and its memory limit.
#[derive(Debug)]
pub(crate) struct Scratch {
    dir: tempfile::TempDir,
    memory_limit: usize,
}

impl Staging {
    /// In memory without a limit, on disk with one (bytes).
    pub(crate) fn new(memory_limit: Option<usize>) -> Result<Staging> {
        let Some(memory_limit) = memory_limit else {
            return Ok(Staging::Memory);
        };
        let dir = tempfile::Builder::new()
            .prefix("amoeba-ledger-build-")
            .tempdir()
            .map_err(|e| EngineError::ledger(format!("scratch folder of the build: {e}")))?;
        Ok(Staging::Disk(Arc::new(Scratch { dir, memory_limit })))
    }

    /// The runtime of the build's session: a spilling pool of the limit, spill files in the
    /// scratch folder; DataFusion's default (no limit) in memory.
    pub(crate) fn runtime(&self) -> Result<Option<Arc<RuntimeEnv>>> {
        let Staging::Disk(scratch) = self else {
            return Ok(None);
        };
        let spill = scratch.path("spill");
        std::fs::create_dir_all(&spill)
            .map_err(|e| EngineError::ledger(format!("spill folder {}: {e}", spill.display())))?;
        // Fair: the spreads' and the ledger's sorts and the aggregates of one step share the
        // pool instead of the first one taking it all and the next failing.
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(scratch.memory_limit)))
            .with_temp_file_path(spill)
            .build()?;
        Ok(Some(Arc::new(runtime)))
    }

    /// Computes `df` and registers the result as `name`.
    pub(crate) async fn table(
        &self,
        ctx: &SessionContext,
        name: &str,
        df: DataFrame,
    ) -> Result<()> {
        let table = self.materialize(ctx, name, df).await?;
        ctx.register_table(name, table)?;
        Ok(())
    }

    /// Computes `df` (named `name` in the scratch folder) and returns a table of its rows, for
    /// the caller to register (in place of a view `df` reads, for one).
    pub(crate) async fn materialize(
        &self,
        ctx: &SessionContext,
        name: &str,
        df: DataFrame,
    ) -> Result<Arc<dyn TableProvider>> {
        match self {
            Staging::Memory => Ok(df.cache().await?.into_view()),
            Staging::Disk(scratch) => {
                let schema = df.schema().as_arrow().clone();
                let dir = url_of_dir(&scratch.path(name))?;
                df.write_parquet(&dir, DataFrameWriteOptions::new(), Some(scratch_parquet()))
                    .await?;
                // The schema as computed, not as inferred from the files: the same types as
                // in memory (strings stay Utf8), and a table that wrote no file still reads.
                let read = ctx
                    .read_parquet(&dir, ParquetReadOptions::default().schema(&schema))
                    .await?;
                Ok(read.into_view())
            }
        }
    }

    /// Registers `batch` as `name`.
    pub(crate) async fn batch(
        &self,
        ctx: &SessionContext,
        name: &str,
        batch: RecordBatch,
    ) -> Result<()> {
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        match self {
            Staging::Memory => {
                ctx.register_table(name, Arc::new(table))?;
                Ok(())
            }
            Staging::Disk(_) => {
                self.table(ctx, name, ctx.read_table(Arc::new(table))?)
                    .await
            }
        }
    }

    /// The folder the staged ledger is written into (on disk only).
    pub(crate) fn ledger_dir(&self) -> Option<PathBuf> {
        match self {
            Staging::Memory => None,
            Staging::Disk(scratch) => Some(scratch.path("ledger")),
        }
    }

    /// Writes the ledger `df` into [`Staging::ledger_dir`], one folder per month, each
    /// month's rows in `df`'s order, and registers it as `name`.
    pub(crate) async fn ledger(
        &self,
        ctx: &SessionContext,
        name: &str,
        df: DataFrame,
        parquet: TableParquetOptions,
    ) -> Result<()> {
        let Some(dir) = self.ledger_dir() else {
            return Err(EngineError::ledger("the ledger is staged on disk only"));
        };
        df.write_parquet(
            &url_of_dir(&dir)?,
            DataFrameWriteOptions::new().with_partition_by(vec!["month".to_string()]),
            Some(parquet),
        )
        .await?;
        register_ledger(ctx, name, &dir).await
    }
}

/// Registers the ledger staged in `dir` as `name`, with the ledger's schema (`month` from the
/// folder names).
pub(crate) async fn register_ledger(ctx: &SessionContext, name: &str, dir: &Path) -> Result<()> {
    let schema = ledger_schema();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .filter(|f| f.name() != "month")
        .map(|f| f.as_ref().clone())
        .collect();
    ctx.register_parquet(
        name,
        &url_of_dir(dir)?,
        ParquetReadOptions::default()
            .schema(&Schema::new(fields))
            .table_partition_cols(vec![("month".to_string(), DataType::Utf8)]),
    )
    .await?;
    Ok(())
}

/// The files of the ledger staged in `dir`: (month, file name, path), in order.
pub(crate) fn ledger_files(dir: &Path) -> Result<Vec<(String, String, PathBuf)>> {
    let io = |at: &Path, e: std::io::Error| {
        EngineError::ledger(format!("staged ledger {}: {e}", at.display()))
    };
    let mut out = Vec::new();
    for month in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let month = month.map_err(|e| io(dir, e))?.path();
        let Some(name) = month.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(value) = name.strip_prefix("month=") else {
            continue;
        };
        for file in std::fs::read_dir(&month).map_err(|e| io(&month, e))? {
            let file = file.map_err(|e| io(&month, e))?.path();
            if let Some(file_name) = file.file_name().and_then(|n| n.to_str()) {
                out.push((value.to_string(), file_name.to_string(), file.clone()));
            }
        }
    }
    out.sort();
    Ok(out)
}

impl Scratch {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A local folder as DataFusion reads and writes one (a trailing slash: a folder of files).
fn url_of_dir(dir: &Path) -> Result<String> {
    let text = dir.to_str().ok_or_else(|| {
        EngineError::ledger(format!("scratch folder {} is not UTF-8", dir.display()))
    })?;
    Ok(format!("{}/", text.trim_end_matches('/')))
}

/// Working tables are read once or twice and then deleted: fast compression, no statistics
/// beyond DataFusion's defaults.
fn scratch_parquet() -> TableParquetOptions {
    let mut options = TableParquetOptions::default();
    options.global.compression = Some("lz4_raw".to_string());
    options
}
