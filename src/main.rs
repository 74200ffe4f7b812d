//! `amoeba`: the command line. Thin: every command calls into the crates.
//!
//! ```text
//! amoeba demo                       generate ./warehouse if empty, then serve it on 127.0.0.1:5433
//! amoeba gen --scale 1 --seed 7 --out ./warehouse
//! amoeba gen --worked-example --out ./worked-example   the hand-checked example of docs/model.md
//! amoeba serve --warehouse W --listen 127.0.0.1:5433 [--auth scram|trust] [--tls-cert C --tls-key K]
//! amoeba password                   the SCRAM verifier of a password read from stdin
//! amoeba ledger --warehouse W       build the ledger, publish it as Parquet, print the checks
//! amoeba refresh --warehouse W [CUBE] [--full]   publish the ledger, refresh the cubes
//! amoeba check --warehouse W        the reconciliation report; exit 1 if a check fails
//! amoeba query --warehouse W "SQL"  run one query, print the result
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use amoeba_catalog::Warehouse;
use amoeba_engine::cube::{CubeStatus, Outcome, RefreshOptions};
use amoeba_engine::ledger::{CheckRow, Status};
use amoeba_engine::{Auth, Credentials, LedgerMode, ScramVerifier, ServerConfig};
use clap::{Parser, Subcommand};
use datafusion::arrow::util::pretty::pretty_format_batches;

#[derive(Parser)]
#[command(
    name = "amoeba",
    version,
    about = "Amoeba-style P&L cubes for e-commerce sellers, over the PostgreSQL protocol"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a demo warehouse (if the directory is empty) and serve it.
    Demo {
        /// Warehouse directory.
        #[arg(long, default_value = "./warehouse")]
        warehouse: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:5433")]
        listen: String,
        /// Scale of the generated data (1 ≈ one year, 1,000,000 order lines).
        #[arg(long, default_value_t = 0.05)]
        scale: f64,
        /// Seed of the generated data.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Serve a warehouse over the PostgreSQL protocol.
    Serve {
        /// Warehouse location: a directory, file://… or s3://bucket/prefix.
        #[arg(long, env = "AMOEBA_WAREHOUSE", default_value = "./warehouse")]
        warehouse: String,
        /// Look for new or changed inputs every this many seconds and refresh the ledger and
        /// the cubes when there are (0: never).
        #[arg(long, env = "AMOEBA_POLL_SECONDS", default_value_t = 60)]
        poll_seconds: u64,
        #[command(flatten)]
        frontend: Frontend,
    },
    /// Print the SCRAM-SHA-256 verifier of a password read from stdin, for `password = "…"`
    /// in the model's [[users]] (the model never holds the password itself).
    Password,
    /// Generate synthetic platform exports (and their truth) into a directory.
    Gen {
        /// Scale (1 ≈ one year, 1,000,000 order lines, 40 shops, 5,000 SKUs).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Seed: the same seed gives the same files.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output directory.
        #[arg(long, default_value = "./warehouse")]
        out: PathBuf,
        /// Write the small hand-checked warehouse of docs/model.md instead (scale and seed
        /// are ignored).
        #[arg(long)]
        worked_example: bool,
        /// Deliver this day's export rows on their own (dt=<day>), the rest of its month the
        /// day before: one day of exports, as a platform exporting daily delivers it
        /// (benches/refresh.sh takes in 2025-12-31 so).
        #[arg(long, value_name = "YYYY-MM-DD")]
        day_apart: Option<amoeba_data::NaiveDate>,
    },
    /// Build the ledger, write it into the warehouse (ledger/) and print the checks.
    Ledger {
        /// Warehouse location.
        #[arg(long, env = "AMOEBA_WAREHOUSE", default_value = "./warehouse")]
        warehouse: String,
    },
    /// Build and publish the ledger, then refresh the cubes: only the months whose inputs
    /// changed are rebuilt; exits 1 if a cube fails (its previous version stays served).
    Refresh {
        /// Warehouse location.
        #[arg(long, env = "AMOEBA_WAREHOUSE", default_value = "./warehouse")]
        warehouse: String,
        /// Only this cube.
        cube: Option<String>,
        /// Rebuild every month, changed or not.
        #[arg(long)]
        full: bool,
    },
    /// The reconciliation report: rejected files and rows, and, with a model, source totals vs
    /// the ledger, pools, settlement, units, and the published cubes vs the published ledger;
    /// exits 1 if a check fails.
    Check {
        /// Warehouse location.
        #[arg(long, env = "AMOEBA_WAREHOUSE", default_value = "./warehouse")]
        warehouse: String,
    },
    /// Run one SQL query against a warehouse and print the result.
    Query {
        /// Warehouse location.
        #[arg(long, env = "AMOEBA_WAREHOUSE", default_value = "./warehouse")]
        warehouse: String,
        /// The query.
        sql: String,
    },
}

/// How `amoeba serve` listens and whom it lets in.
#[derive(clap::Args)]
struct Frontend {
    /// Address to listen on.
    #[arg(long, env = "AMOEBA_LISTEN", default_value = "127.0.0.1:5433")]
    listen: String,
    /// Authentication: `scram` (SCRAM-SHA-256 against the model's [[users]]: their `password`
    /// verifier or the variable named by `password_env`) or `trust` (no password; only for a
    /// server nobody else can reach).
    #[arg(long, env = "AMOEBA_AUTH", default_value = "scram", value_parser = ["scram", "trust"])]
    auth: String,
    /// PEM certificate chain: TLS is offered (with --tls-key). A file that cannot be loaded
    /// stops the server from starting.
    #[arg(long, env = "AMOEBA_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, env = "AMOEBA_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Refuse connections that do not use TLS.
    #[arg(long, env = "AMOEBA_REQUIRE_TLS")]
    require_tls: bool,
    /// Connections served at once (0: no limit); one more is refused with SQLSTATE 53300.
    #[arg(long, env = "AMOEBA_MAX_CONNECTIONS", default_value_t = 100)]
    max_connections: usize,
    /// Memory one query may hold, in MiB (0: no limit): operators spill to disk beyond it,
    /// and a query that still needs more fails with SQLSTATE 53200; the server goes on.
    #[arg(long, env = "AMOEBA_QUERY_MEMORY_MB", default_value_t = 4096)]
    query_memory_mb: usize,
    /// The longest a statement may run, in seconds (0: no limit): it stops with SQLSTATE
    /// 57014. A client's `SET statement_timeout` may ask for less, never for more.
    #[arg(long, env = "AMOEBA_STATEMENT_TIMEOUT_SECONDS", default_value_t = 0)]
    statement_timeout_seconds: u64,
    /// Close a connection with no statement running for this many seconds (FATAL 57P05, as
    /// PostgreSQL's idle_session_timeout; 0: never).
    #[arg(long, env = "AMOEBA_IDLE_TIMEOUT_SECONDS", default_value_t = 0)]
    idle_timeout_seconds: u64,
}

impl Frontend {
    fn config(&self) -> ServerConfig {
        let mut config = ServerConfig::new(&self.listen)
            .with_require_tls(self.require_tls)
            .with_max_connections(self.max_connections)
            .with_query_memory((self.query_memory_mb > 0).then_some(self.query_memory_mb << 20))
            .with_statement_timeout(Some(Duration::from_secs(self.statement_timeout_seconds)))
            .with_idle_timeout(Some(Duration::from_secs(self.idle_timeout_seconds)));
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            config = config.with_tls(cert, key);
        }
        config
    }
}

type CliResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            // Print the chain of causes, leaving out those the message already says.
            let mut said = e.to_string();
            eprintln!("error: {said}");
            let mut source = e.source();
            while let Some(cause) = source {
                let text = cause.to_string();
                if !said.contains(&text) {
                    eprintln!("  caused by: {text}");
                    said = text;
                }
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> CliResult<ExitCode> {
    match command {
        Command::Gen {
            out,
            worked_example: true,
            ..
        } => {
            amoeba_data::fixture::worked_example(&out)?;
            println!(
                "wrote the worked example of docs/model.md to {}",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Gen {
            scale,
            seed,
            out,
            day_apart,
            ..
        } => {
            generate(scale, seed, &out, day_apart)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            warehouse,
            listen,
            scale,
            seed,
        } => {
            let empty = match std::fs::read_dir(&warehouse) {
                Ok(mut entries) => entries.next().is_none(),
                Err(_) => true,
            };
            if empty {
                println!(
                    "generating a demo warehouse in {} (scale {scale}, seed {seed})",
                    warehouse.display()
                );
                generate(scale, seed, &warehouse, None)?;
            } else {
                println!("serving the existing warehouse in {}", warehouse.display());
            }
            let frontend = Frontend {
                listen,
                auth: "scram".to_string(),
                tls_cert: None,
                tls_key: None,
                require_tls: false,
                max_connections: 100,
                query_memory_mb: 4096,
                statement_timeout_seconds: 0,
                idle_timeout_seconds: 0,
            };
            serve(&warehouse.to_string_lossy(), &frontend, 60, true).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            warehouse,
            poll_seconds,
            frontend,
        } => {
            serve(&warehouse, &frontend, poll_seconds, false).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Password => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                return Err("no password on stdin".into());
            }
            println!("{}", ScramVerifier::generate(password));
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { warehouse } => check(&warehouse).await,
        Command::Refresh {
            warehouse,
            cube,
            full,
        } => {
            let started = Instant::now();
            let options = RefreshOptions {
                only: cube,
                full,
                ..RefreshOptions::default()
            };
            let served =
                amoeba_engine::refresh_published(Warehouse::open(&warehouse)?, options).await?;
            let Some(ledger) = &served.ledger else {
                return Err(format!(
                    "warehouse {warehouse} has no model/model.toml (`amoeba gen` writes the default one)"
                )
                .into());
            };
            match ledger.reused_version() {
                Some(version) => println!(
                    "ledger: {} rows, inputs unchanged: version {version} served as published",
                    ledger.num_rows()
                ),
                None => println!("ledger: {} rows {}", ledger.num_rows(), built(ledger)),
            }
            print_changes(ledger);
            print_cubes(&served.cubes);
            println!("refresh done in {:.1}s", started.elapsed().as_secs_f64());
            Ok(
                if served
                    .cubes
                    .iter()
                    .any(|c| matches!(c.outcome, Outcome::Failed(_)))
                {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                },
            )
        }
        Command::Ledger { warehouse } => {
            let started = Instant::now();
            let (_, _, ledger) =
                amoeba_engine::open_with_ledger(Warehouse::open(&warehouse)?, LedgerMode::Publish)
                    .await?;
            let Some(ledger) = ledger else {
                return Err(format!(
                    "warehouse {warehouse} has no model/model.toml (`amoeba gen` writes the default one)"
                )
                .into());
            };
            println!(
                "ledger: {} rows {}, published in {:.1}s",
                ledger.num_rows(),
                built(&ledger),
                started.elapsed().as_secs_f64()
            );
            print_changes(&ledger);
            Ok(report(ledger.checks()))
        }
        Command::Query { warehouse, sql } => {
            let (ctx, _, _) =
                amoeba_engine::open_with_ledger(Warehouse::open(&warehouse)?, LedgerMode::InMemory)
                    .await?;
            let batches = ctx.sql(&sql).await?.collect().await?;
            println!("{}", pretty_format_batches(&batches)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn generate(
    scale: f64,
    seed: u64,
    out: &Path,
    day_apart: Option<amoeba_data::NaiveDate>,
) -> CliResult<()> {
    let started = Instant::now();
    let summary = amoeba_data::generate(&amoeba_data::GenOptions {
        scale,
        seed,
        out: out.to_path_buf(),
        progress: true,
        day_apart,
    })?;
    println!(
        "wrote {} files ({} order lines, {:.1} MiB) to {} in {:.1}s",
        summary.files,
        summary.order_lines,
        summary.bytes as f64 / (1024.0 * 1024.0),
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Serves a warehouse; `demo`: users whose password variable is not set get their name as
/// password (and are told so).
async fn serve(
    warehouse: &str,
    frontend: &Frontend,
    poll_seconds: u64,
    demo: bool,
) -> CliResult<()> {
    let listen = frontend.listen.as_str();
    let started = Instant::now();
    let (refresher, served) = amoeba_engine::Refresher::open(Warehouse::open(warehouse)?).await?;
    let (catalog, ledger) = (served.catalog, served.ledger);
    println!(
        "warehouse {warehouse}: {} files served, {} rejected ({:.1}s){}",
        catalog.files().len(),
        catalog.rejections().len(),
        started.elapsed().as_secs_f64(),
        if catalog.rejections().is_empty() {
            ""
        } else {
            " — see `amoeba check`"
        }
    );
    for rejection in catalog.rejections() {
        log::warn!("rejected {}: {}", rejection.path, rejection.reason);
    }
    match &ledger {
        Some(ledger) => println!(
            "ledger: {} rows ({}); checks: {}",
            ledger.num_rows(),
            match ledger.reused_version() {
                Some(version) => format!("inputs unchanged: {version} served as published"),
                None => built(ledger),
            },
            if ledger.failed() {
                "FAILED — see `amoeba check` or SELECT * FROM amoeba_checks WHERE status <> 'ok'"
            } else {
                "all pass"
            }
        ),
        None => println!("no model/model.toml: serving the unified views without a ledger"),
    }
    print_cubes(&served.cubes);
    let (host, port) = amoeba_engine::parse_listen(listen)?;
    let auth = match (frontend.auth.as_str(), catalog.model()) {
        ("trust", _) => {
            println!(
                "authentication is OFF (--auth trust): anyone who can reach {listen} may connect"
            );
            Auth::Trust
        }
        (_, None) => {
            return Err("SCRAM authentication needs the users of model/model.toml; \
                        this warehouse has no model (serve it with --auth trust)"
                .into());
        }
        (_, Some(model)) => {
            let env = |var: &str| std::env::var(var).ok();
            let (credentials, warnings) = Credentials::from_model(model, |var| {
                env(var).or_else(|| {
                    let user = model.users.iter().find(|u| {
                        u.password == Some(amoeba_catalog::users::Password::Env(var.to_string()))
                    })?;
                    demo.then(|| {
                        println!(
                            "demo: user {} has password '{}' (set ${var} to change it)",
                            user.name, user.name
                        );
                        user.name.clone()
                    })
                })
            })?;
            for warning in warnings {
                println!("warning: {warning}");
            }
            if credentials.is_empty() {
                return Err("no user can log in: give the model's [[users]] a password \
                            (`amoeba password` prints a verifier) or set their password_env \
                            variables"
                    .into());
            }
            Auth::Scram(credentials)
        }
    };
    println!("listening on {listen}; connect with:\n  psql -h {host} -p {port} -U amoeba amoeba");
    let refresher = Arc::new(refresher);
    if poll_seconds > 0 {
        println!("refreshing when inputs change (checked every {poll_seconds}s)");
        // On the query runtime: a rebuild must not hold the threads that serve connections.
        amoeba_engine::query_runtime()
            .spawn(Arc::clone(&refresher).poll(std::time::Duration::from_secs(poll_seconds)));
    }
    amoeba_engine::serve_refreshing(refresher, auth, &frontend.config()).await?;
    Ok(())
}

async fn check(warehouse: &str) -> CliResult<ExitCode> {
    let (ctx, catalog, ledger) =
        amoeba_engine::open_with_ledger(Warehouse::open(warehouse)?, LedgerMode::InMemory).await?;
    println!(
        "{} files served, {} rejected",
        catalog.files().len(),
        catalog.rejections().len()
    );
    for rejection in catalog.rejections() {
        println!("rejected file {}: {}", rejection.path, rejection.reason);
    }
    let rows = ctx
        .sql("SELECT view, file, missing_column, row FROM amoeba_rejected_rows ORDER BY file, view, row")
        .await?
        .collect()
        .await?;
    let rejected_rows: usize = rows.iter().map(|b| b.num_rows()).sum();
    println!("{rejected_rows} rejected rows");
    if rejected_rows > 0 {
        println!("{}", pretty_format_batches(&rows)?);
    }
    let clean = catalog.rejections().is_empty() && rejected_rows == 0;
    match ledger {
        Some(ledger) => {
            println!("ledger: {} rows {}", ledger.num_rows(), built(&ledger));
            let mut checks = ledger.checks().to_vec();
            checks.extend(
                amoeba_engine::cube::check_published_warehouse(
                    catalog.warehouse(),
                    ledger.model(),
                    &ctx,
                )
                .await?,
            );
            Ok(report(&checks))
        }
        None => {
            println!("no model/model.toml: no ledger checks");
            Ok(if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// "built in 12.3s", and how, when the model limits the build's memory.
fn built(ledger: &amoeba_engine::Ledger) -> String {
    let took = format!("built in {:.1}s", ledger.elapsed().as_secs_f64());
    let took = match ledger.model().ledger_memory_limit {
        Some(bytes) => format!("{took} (on disk, memory limit {} MiB)", bytes >> 20),
        None => took,
    };
    match (ledger.by_delta_of(), ledger.full_because()) {
        (Some(delta), _) => format!(
            "{took} by delta from {}: {} month(s) rewritten ({}), {} carried over; {}",
            delta.base,
            delta.rewritten.len(),
            delta
                .rewritten
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
            delta.months.len().saturating_sub(delta.rewritten.len()),
            delta.mapped
        ),
        (None, Some(why)) => format!("{took} in full: {}", why.0),
        (None, None) => took,
    }
}

/// What changed in the inputs since the version a build replaces, and what that may touch.
fn print_changes(ledger: &amoeba_engine::Ledger) {
    if let Some(changes) = ledger.input_changes() {
        println!("inputs {}", changes.summary());
    }
    if let Some(closure) = ledger.closure() {
        println!("{}", closure.summary());
    }
}

/// A line per cube: what the refresh did.
fn print_cubes(cubes: &[CubeStatus]) {
    for c in cubes {
        let served = c
            .manifest
            .as_ref()
            .map_or("nothing served".to_string(), |m| {
                format!(
                    "{} ({} rows, {} months)",
                    m.version,
                    m.rows(),
                    m.partitions.len()
                )
            });
        match &c.outcome {
            Outcome::Rebuilt(months) => println!(
                "cube {}: rebuilt {} month(s) in {:.1}s → {served}",
                c.cube,
                months.len(),
                c.refresh_ms as f64 / 1000.0
            ),
            Outcome::Fresh => println!("cube {}: unchanged → {served}", c.cube),
            Outcome::Failed(e) => println!("cube {}: FAILED ({e}); serving {served}", c.cube),
        }
    }
}

/// Prints the reconciliation report: a line per check, then every row that is not ok.
fn report(checks: &[CheckRow]) -> ExitCode {
    let mut by_check: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    for c in checks {
        let n = by_check.entry(c.check.as_str()).or_default();
        match c.status {
            Status::Ok => n[0] += 1,
            Status::Warn => n[1] += 1,
            Status::Fail => n[2] += 1,
        }
    }
    println!("{:<28} {:>6} {:>6} {:>6}", "check", "ok", "warn", "fail");
    for (check, [ok, warn, fail]) in &by_check {
        println!("{check:<28} {ok:>6} {warn:>6} {fail:>6}");
    }
    let money = |v: Option<i128>| {
        v.map(|c| {
            let sign = if c < 0 { "-" } else { "" };
            format!(
                "{sign}{}.{:02}",
                c.unsigned_abs() / 100,
                c.unsigned_abs() % 100
            )
        })
        .unwrap_or_default()
    };
    let problems: Vec<&CheckRow> = checks.iter().filter(|c| c.status != Status::Ok).collect();
    for c in problems.iter().take(50) {
        println!(
            "{} {} [{}] expected {} actual {}: {}",
            c.status.as_str().to_uppercase(),
            c.check,
            c.scope,
            money(c.expected),
            money(c.actual),
            c.detail
        );
    }
    if problems.len() > 50 {
        println!(
            "… and {} more (SELECT * FROM amoeba_checks WHERE status <> 'ok')",
            problems.len() - 50
        );
    }
    if checks.iter().any(|c| c.status == Status::Fail) {
        println!("checks FAILED");
        ExitCode::FAILURE
    } else {
        println!("checks passed");
        ExitCode::SUCCESS
    }
}
