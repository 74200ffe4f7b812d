//! Real clients and BI tools against a started server (`tests/clients/`).
//!
//! - psycopg 3, SQLAlchemy + pandas, pgjdbc and node-postgres run their scripts
//!   (`tests/clients/run.sh`, installed by `tests/clients/setup.sh` from `scripts/setup`); each
//!   prints `RESULT name=value` lines that must equal `tests/clients/checks.sql` run here.
//! - The introspection sequences that Metabase, Superset, Grafana, DBeaver, Tableau and Power BI
//!   send (`tests/clients/bi/*.sql`) are replayed statement by statement, in the protocol the
//!   tool uses, with its parameters.
//! - psql's `\copy`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::types::{ToSql, Type};

use crate::support::{TestServer, copy_warehouse, psql, warehouse};

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// A server over a refreshed copy of the small warehouse (ledger, cubes, users).
async fn served() -> (TestServer, tempfile::TempDir) {
    let copy = copy_warehouse(&warehouse(0.005, 1));
    let (refresher, _) = amoeba_engine::Refresher::open(
        amoeba_catalog::Warehouse::open(&copy.path().to_string_lossy()).expect("open warehouse"),
    )
    .await
    .expect("open");
    (
        TestServer::start_refreshing(std::sync::Arc::new(refresher)).await,
        copy,
    )
}

/// The one value of each row of a simple query, as text.
async fn texts(client: &tokio_postgres::Client, sql: &str) -> Vec<Option<String>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_string)),
            _ => None,
        })
        .collect()
}

/// `tests/clients/checks.sql`: check name → its query.
fn checks() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(clients_dir().join("checks.sql")).expect("checks.sql");
    let mut checks = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("-- name:") {
            if let Some((name, sql)) = current.take() {
                checks.insert(name, sql);
            }
            current = Some((name.trim().to_string(), String::new()));
        } else if let Some((_, sql)) = current.as_mut()
            && !line.starts_with("--")
        {
            sql.push_str(line);
            sql.push('\n');
        }
    }
    if let Some((name, sql)) = current {
        checks.insert(name, sql);
    }
    checks
}

/// Decimals compare by value (`12.50` = `12.5`); everything else as text.
fn normalized(value: &str) -> String {
    let value = value.trim();
    let numeric = !value.is_empty()
        && value
            .trim_start_matches('-')
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.');
    if numeric && value.contains('.') {
        value
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        value.to_string()
    }
}

/// Steps of the client scripts the server cannot serve yet (client, step as the script
/// names it): each must still fail, everything else must pass.
const KNOWN_CLIENT_GAPS: &[(&str, &str)] = &[];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_read_the_figures_the_server_computes() {
    let (server, _warehouse) = served().await;
    let admin = server.client().await;
    let mut expected = BTreeMap::new();
    for (name, sql) in checks() {
        let value = texts(&admin, &sql).await;
        assert_eq!(value.len(), 1, "{name}: one row");
        expected.insert(name, value[0].clone().unwrap_or_default());
    }
    let nonzero = expected
        .values()
        .filter(|v| !matches!(v.as_str(), "" | "0"))
        .count();
    assert!(
        nonzero * 2 > expected.len(),
        "the checks see data: {expected:?}"
    );

    let mut failures = Vec::new();
    for client in ["psycopg", "sqlalchemy", "jdbc", "node"] {
        let output = tokio::process::Command::new(clients_dir().join("run.sh"))
            .arg(client)
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", server.port.to_string())
            .env("PGUSER", "amoeba")
            .env("PGPASSWORD", "amoeba")
            .env("PGDATABASE", "amoeba")
            .output()
            .await
            .expect("run the client");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        // The steps that failed (`FAIL <step>: <error>`): only known gaps may, and each known
        // gap must still fail (a fix takes it off the list).
        let failed: Vec<&str> = stdout
            .lines()
            .chain(stderr.lines())
            .filter(|l| l.starts_with("FAIL "))
            .collect();
        let gaps: Vec<&str> = KNOWN_CLIENT_GAPS
            .iter()
            .filter(|(c, _)| *c == client)
            .map(|(_, step)| *step)
            .collect();
        for line in &failed {
            if !gaps
                .iter()
                .any(|g| line.starts_with(&format!("FAIL {g}: ")))
            {
                failures.push(format!("{client}: {line}"));
            }
        }
        for gap in &gaps {
            if !failed
                .iter()
                .any(|l| l.starts_with(&format!("FAIL {gap}: ")))
            {
                failures.push(format!(
                    "{client}: '{gap}' now passes, take it off KNOWN_CLIENT_GAPS"
                ));
            }
        }
        if !output.status.success() && failed.is_empty() {
            failures.push(format!(
                "{client}: exit {:?}\n{stdout}\n{stderr}",
                output.status.code()
            ));
            continue;
        }
        let mut seen = 0;
        for line in stdout.lines() {
            let Some((name, value)) = line.strip_prefix("RESULT ").and_then(|r| r.split_once('='))
            else {
                continue;
            };
            seen += 1;
            match expected.get(name) {
                None => failures.push(format!("{client}: {name} is not in checks.sql")),
                Some(want) if normalized(want) != normalized(value) => failures.push(format!(
                    "{client}: {name} = {value}, the server says {want}"
                )),
                Some(_) => {}
            }
        }
        if seen < 4 {
            failures.push(format!("{client}: only {seen} results\n{stdout}\n{stderr}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// One statement of a BI tool's replay file.
#[derive(Debug)]
struct Replayed {
    file: String,
    step: String,
    extended: bool,
    params: Vec<(Type, String)>,
    rows_expected: bool,
    sql: String,
}

/// Parses `tests/clients/bi/<tool>.sql` (format in `tests/clients/bi/README.md`).
fn replay_file(path: &Path) -> Vec<Replayed> {
    let text = std::fs::read_to_string(path).expect("replay file");
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut statements: Vec<Replayed> = Vec::new();
    for line in text.lines() {
        if let Some(step) = line.strip_prefix("-- step:") {
            statements.push(Replayed {
                file: file.clone(),
                step: step.trim().to_string(),
                extended: false,
                params: Vec::new(),
                rows_expected: false,
                sql: String::new(),
            });
            continue;
        }
        let Some(current) = statements.last_mut() else {
            continue; // the file's header
        };
        if let Some(protocol) = line.strip_prefix("-- protocol:") {
            current.extended = protocol.trim() == "extended";
        } else if let Some(params) = line.strip_prefix("-- params:") {
            for param in params.split(", ") {
                let (ty, value) = param.trim().split_once(':').expect("type:value");
                let ty = match ty {
                    "text" => Type::TEXT,
                    "varchar" => Type::VARCHAR,
                    "int4" => Type::INT4,
                    "int8" => Type::INT8,
                    "bool" => Type::BOOL,
                    other => panic!("{file}: parameter type {other}"),
                };
                current.params.push((ty, value.to_string()));
            }
        } else if let Some(rows) = line.strip_prefix("-- expect-rows:") {
            current.rows_expected = rows.trim() == ">0";
        } else {
            current.sql.push_str(line);
            current.sql.push('\n');
        }
    }
    statements
}

/// Runs one replayed statement: the number of rows, or the server's error.
async fn replay(client: &tokio_postgres::Client, statement: &Replayed) -> Result<usize, String> {
    let sql = statement.sql.trim();
    if !statement.extended {
        let messages = client
            .simple_query(sql)
            .await
            .map_err(|e| format!("{e:?}"))?;
        return Ok(messages
            .iter()
            .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
            .count());
    }
    let sql = sql.trim_end_matches(';');
    let types: Vec<Type> = statement.params.iter().map(|(t, _)| t.clone()).collect();
    let prepared = client
        .prepare_typed(sql, &types)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let mut values: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    for (ty, value) in &statement.params {
        let parse_err = |e: &dyn std::fmt::Display| format!("parameter {value}: {e}");
        values.push(match *ty {
            Type::INT4 => Box::new(value.parse::<i32>().map_err(|e| parse_err(&e))?),
            Type::INT8 => Box::new(value.parse::<i64>().map_err(|e| parse_err(&e))?),
            Type::BOOL => Box::new(value.parse::<bool>().map_err(|e| parse_err(&e))?),
            _ => Box::new(value.clone()),
        });
    }
    let refs: Vec<&(dyn ToSql + Sync)> = values
        .iter()
        .map(|v| v.as_ref() as &(dyn ToSql + Sync))
        .collect();
    client
        .query(&prepared, &refs)
        .await
        .map(|rows| rows.len())
        .map_err(|e| format!("{e:?}"))
}

/// Statements the server cannot answer yet (file, step): each must still fail, so that a fix
/// takes it off this list. Everything else must succeed.
const KNOWN_GAPS: &[(&str, &str)] = &[];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bi_tools_introspection_sequences_replay() {
    let (server, _warehouse) = served().await;
    let mut files: Vec<PathBuf> = std::fs::read_dir(clients_dir().join("bi"))
        .expect("bi replays")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    let (mut failures, mut ran, mut gaps_failing) = (Vec::new(), 0, Vec::new());
    for file in &files {
        // A tool's sequence runs on one connection, in order, as the tool sends it.
        let client = server.client().await;
        let statements = replay_file(file);
        assert!(!statements.is_empty(), "{file:?}");
        for statement in &statements {
            ran += 1;
            let known = KNOWN_GAPS
                .iter()
                .any(|(f, s)| *f == statement.file && *s == statement.step);
            let outcome = match replay(&client, statement).await {
                Ok(0) if statement.rows_expected => Err("no rows".to_string()),
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            match (outcome, known) {
                (Ok(()), false) => {}
                (Ok(()), true) => failures.push(format!(
                    "{} / {}: now succeeds, take it off KNOWN_GAPS",
                    statement.file, statement.step
                )),
                (Err(e), false) => failures.push(format!(
                    "{} / {}: {e}\n{}",
                    statement.file, statement.step, statement.sql
                )),
                (Err(e), true) => {
                    eprintln!("known gap {} / {}: {e}", statement.file, statement.step);
                    gaps_failing.push(format!("{}/{}", statement.file, statement.step))
                }
            }
        }
        // The server is still up: a statement did not take it down.
        assert_eq!(
            texts(&client, "SELECT 1").await,
            vec![Some("1".to_string())]
        );
    }
    eprintln!(
        "replayed {ran} statements of {} tools; known gaps: {}",
        files.len(),
        gaps_failing.len()
    );
    assert!(
        failures.is_empty(),
        "{} failing:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_copies_a_query_to_a_file() {
    // psql's other meta-commands (\dt, \dv, \df, \d) are in server.rs.
    let (server, _warehouse) = served().await;
    let out_dir = tempfile::tempdir().expect("tempdir");
    let csv = out_dir.path().join("units.csv");
    let sql = "select unit_id, name, parent_id from amoeba_units order by unit_id";
    let status = psql(
        server.port,
        &format!("\\copy ({sql}) to '{}' with csv header", csv.display()),
    )
    .await;
    let copied = std::fs::read_to_string(&csv).expect("the copied file");
    let admin = server.client().await;
    let rows = admin
        .simple_query(sql)
        .await
        .expect("units")
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..3)
                    .map(|i| row.get(i).unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert!(rows.len() > 3, "{rows:?}");
    let mut want = vec!["unit_id,name,parent_id".to_string()];
    want.extend(rows);
    assert_eq!(copied.lines().collect::<Vec<_>>(), want);
    // The row count of the command tag, as PostgreSQL's (the header is not a row).
    assert_eq!(status.trim(), format!("COPY {}", want.len() - 1));

    // COPY … TO STDOUT in text format, and a table name, as drivers' copy_expert send them.
    let text = psql(server.port, "\\copy amoeba_units to stdout").await;
    assert_eq!(text.lines().count(), want.len() - 1, "{text}");
}
