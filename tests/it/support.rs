//! Shared test helpers: generated warehouses, sessions, a started server, external tools.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use amoeba_catalog::{Catalog, UNIFIED_VIEWS, Warehouse};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{ParquetReadOptions, SessionContext};

/// A generated warehouse for (scale, seed), generated once and reused (generation is
/// deterministic, so a finished one can be reused across runs).
pub(crate) fn warehouse(scale: f64, seed: u64) -> PathBuf {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<Mutex<()>>>>> = OnceLock::new();
    let name = format!("scale{scale}-seed{seed}");
    let lock = {
        let mut locks = LOCKS
            .get_or_init(Default::default)
            .lock()
            .expect("lock map");
        Arc::clone(locks.entry(name.clone()).or_default())
    };
    let _guard = lock.lock().expect("warehouse lock");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("warehouses")
        .join(&name);
    // Bump the marker when the generator writes something new (v2: model/model.toml, v3: its
    // cubes).
    let done = dir.join(".generated-v4");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        amoeba_data::generate(&amoeba_data::GenOptions {
            scale,
            seed,
            out: dir.clone(),
            progress: false,
            day_apart: None,
        })
        .expect("generate warehouse");
        std::fs::write(&done, b"").expect("mark warehouse");
    }
    dir
}

/// Copies a warehouse (exports, company side and its truth) into a fresh temporary directory.
pub(crate) fn copy_warehouse(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().expect("tempdir");
    copy_dir(from, to.path());
    to
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A session serving the warehouse at `path`, with the generator's truth registered as
/// `truth_<view>` when it exists.
pub(crate) async fn session(path: &Path) -> (SessionContext, Catalog) {
    let warehouse = Warehouse::open(&path.to_string_lossy()).expect("open warehouse");
    let (ctx, catalog) = amoeba_engine::open_session(warehouse)
        .await
        .expect("open session");
    register_truth(&ctx, path).await;
    (ctx, catalog)
}

/// Registers `truth/<view>.parquet` as `truth_<view>`.
pub(crate) async fn register_truth(ctx: &SessionContext, path: &Path) {
    for view in UNIFIED_VIEWS {
        let file = path.join("truth").join(format!("{}.parquet", view.name));
        if file.exists() {
            ctx.register_parquet(
                format!("truth_{}", view.name),
                file.to_string_lossy().as_ref(),
                ParquetReadOptions::default(),
            )
            .await
            .expect("register truth");
        }
    }
}

/// Runs `sql` and renders every value as text (NULL as `NULL`).
pub(crate) async fn rows(ctx: &SessionContext, sql: &str) -> Vec<Vec<String>> {
    let batches = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("plan {sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("run {sql}: {e}"));
    render(&batches)
}

/// Renders batches as text rows.
pub(crate) fn render(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formatter"))
            .collect();
        for row in 0..batch.num_rows() {
            out.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect(),
            );
        }
    }
    out
}

/// One value of a one-row, one-column query.
pub(crate) async fn scalar(ctx: &SessionContext, sql: &str) -> String {
    let rows = rows(ctx, sql).await;
    assert_eq!(rows.len(), 1, "{sql} returned {} rows", rows.len());
    rows[0][0].clone()
}

/// A free TCP port on loopback.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Waits until something accepts connections on `port`.
pub(crate) async fn wait_for_port(port: u16, within: Duration) {
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < within,
            "nothing listens on port {port} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The amoeba server, started in this process on a free loopback port.
pub(crate) struct TestServer {
    pub(crate) port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Serves a fixed session.
    pub(crate) async fn start(ctx: SessionContext) -> TestServer {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let task = tokio::spawn(async move {
            let config = amoeba_engine::ServerConfig::new(listen);
            if let Err(e) =
                amoeba_engine::serve(Arc::new(ctx), amoeba_engine::Auth::Trust, &config).await
            {
                panic!("server failed: {e}");
            }
        });
        wait_for_port(port, Duration::from_secs(30)).await;
        TestServer { port, task }
    }

    /// Serves a fixed session with `auth` and the settings `configure` makes of the defaults.
    pub(crate) async fn start_with(
        ctx: SessionContext,
        auth: amoeba_engine::Auth,
        configure: impl FnOnce(amoeba_engine::ServerConfig) -> amoeba_engine::ServerConfig,
    ) -> TestServer {
        let port = free_port();
        let config = configure(amoeba_engine::ServerConfig::new(format!(
            "127.0.0.1:{port}"
        )));
        let task = tokio::spawn(async move {
            if let Err(e) = amoeba_engine::serve(Arc::new(ctx), auth, &config).await {
                panic!("server failed: {e}");
            }
        });
        wait_for_port(port, Duration::from_secs(30)).await;
        TestServer { port, task }
    }

    /// Serves a refreshed warehouse, as `amoeba serve` does (admins may `REFRESH CUBE`).
    pub(crate) async fn start_refreshing(refresher: Arc<amoeba_engine::Refresher>) -> TestServer {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let task = tokio::spawn(async move {
            let config = amoeba_engine::ServerConfig::new(listen);
            if let Err(e) =
                amoeba_engine::serve_refreshing(refresher, amoeba_engine::Auth::Trust, &config)
                    .await
            {
                panic!("server failed: {e}");
            }
        });
        wait_for_port(port, Duration::from_secs(30)).await;
        TestServer { port, task }
    }

    /// A client connected as `amoeba` (the default model's admin).
    pub(crate) async fn client(&self) -> tokio_postgres::Client {
        self.client_as("amoeba").await
    }

    /// A client connected as `user`.
    pub(crate) async fn client_as(&self, user: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user={user} dbname=amoeba",
                self.port
            ),
            tokio_postgres::NoTls,
        )
        .await
        .expect("connect");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An external program the test needs. The test suite's setup (scripts/setup) installs them;
/// a missing one fails the test, naming the install step — it never skips.
pub(crate) fn tool(name: &str) -> PathBuf {
    let local = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv/bin")
        .join(name);
    if local.exists() {
        return local;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.exists())
        })
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed: run scripts/setup (the README's test command does)")
        })
}

/// A child process (a server under test), killed when the test ends, pass or fail.
pub(crate) struct KillOnDrop(pub(crate) std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A small deterministic generator (xorshift64*), for the random queries.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }
    pub(crate) fn pick<'a>(&mut self, from: &[&'a str], n: usize) -> Vec<&'a str> {
        let mut pool = from.to_vec();
        let mut out = Vec::new();
        for _ in 0..n.min(pool.len()) {
            out.push(pool.remove(self.below(pool.len())));
        }
        out
    }
}

/// psql as the demo's admin against a server on `port`: `-A -t` output of `command` (it must
/// succeed).
pub(crate) async fn psql(port: u16, command: &str) -> String {
    psql_with(port, &[], command).await
}

/// [`psql`] with more options (`-v FETCH_COUNT=3`, …).
pub(crate) async fn psql_with(port: u16, options: &[&str], command: &str) -> String {
    let output = tokio::process::Command::new(tool("psql"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "amoeba",
            "-d",
            "amoeba",
        ])
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args(options)
        .args(["-c", command])
        .env("PGCONNECT_TIMEOUT", "10")
        // The demo's admin password (trust servers ignore it).
        .env("PGPASSWORD", "amoeba")
        .output()
        .await
        .expect("run psql");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "psql -c {command:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Writes `select` over the Parquet file `from` (as table `t`) to the Parquet file `to`.
pub(crate) async fn rewrite_parquet(from: &Path, to: &Path, select: &str) {
    let ctx = SessionContext::new();
    ctx.register_parquet("t", from.to_string_lossy().as_ref(), Default::default())
        .await
        .expect("register");
    let batches = ctx
        .sql(select)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    let schema = batches.first().map(|b| b.schema()).expect("a batch");
    let file = std::fs::File::create(to).expect("create");
    let mut writer =
        datafusion::parquet::arrow::ArrowWriter::try_new(file, schema, None).expect("writer");
    for b in &batches {
        writer.write(b).expect("write");
    }
    writer.close().expect("close");
}

/// Every Parquet file below `dir`, sorted (none when `dir` does not exist).
pub(crate) fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(parquet_files(&path));
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
