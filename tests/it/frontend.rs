//! The frontend's doors: SCRAM-SHA-256 passwords (tokio-postgres and psql/libpq as clients),
//! TLS offered and required, a certificate that cannot be loaded, the connection limit — and
//! the SQLSTATE codes PostgreSQL uses for each refusal.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use amoeba_engine::{Auth, Credentials, ScramVerifier, ServerConfig};

use crate::support::{TestServer, session, tool, warehouse};

async fn connect(
    port: u16,
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user={user} password={password} dbname=amoeba connect_timeout=10"),
        tokio_postgres::NoTls,
    )
    .await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The server's error behind a client error (a test fails if it is not one).
fn server_error(e: &tokio_postgres::Error) -> &tokio_postgres::error::DbError {
    e.as_db_error()
        .unwrap_or_else(|| panic!("not a server error: {e}"))
}

/// The SQLSTATE and message of a server's refusal.
fn refusal(result: Result<tokio_postgres::Client, tokio_postgres::Error>) -> (String, String) {
    match result {
        Ok(_) => panic!("the connection was accepted"),
        Err(e) => {
            let db = e
                .as_db_error()
                .unwrap_or_else(|| panic!("not a server error: {e}"));
            (db.code().code().to_string(), db.message().to_string())
        }
    }
}

/// psql with a connection string and a password; (success, stdout, stderr).
async fn psql(conninfo: &str, password: &str, command: &str) -> (bool, String, String) {
    let output = tokio::process::Command::new(tool("psql"))
        .args([conninfo, "-X", "-A", "-t", "-w", "-c", command])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .await
        .expect("run psql");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// `amoeba password`, as an administrator runs it to write a verifier into the model.
async fn amoeba_password(password: &str) -> String {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_amoeba"))
        .arg("password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("amoeba password");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .await
        .expect("write the password");
    drop(stdin);
    let output = child.wait_with_output().await.expect("wait");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_are_checked_with_scram_and_refusals_carry_the_standard_codes() {
    let (ctx, _) = session(&warehouse(0.005, 1)).await;
    let printed = amoeba_password("an4lyst").await;
    assert!(printed.starts_with("SCRAM-SHA-256$4096:"), "{printed}");
    assert!(!printed.contains("an4lyst"));
    let mut credentials = Credentials::new();
    credentials.insert("amoeba", ScramVerifier::generate("s3cret-密码"));
    credentials.insert(
        "analyst",
        ScramVerifier::parse(&printed).expect("the printed verifier parses"),
    );
    let server =
        TestServer::start_with(ctx, Auth::Scram(credentials), |c| c.with_max_connections(3)).await;
    let port = server.port;

    // The right passwords: tokio-postgres and libpq both speak SCRAM-SHA-256.
    let admin = connect(port, "amoeba", "s3cret-密码")
        .await
        .expect("the admin's password");
    let lines: i64 = admin
        .query_one("SELECT COUNT(*) FROM order_lines", &[])
        .await
        .expect("query")
        .get(0);
    assert!(lines > 0);
    let analyst = connect(port, "analyst", "an4lyst")
        .await
        .expect("the verifier from `amoeba password` admits its password");
    let (ok, out, err) = psql(
        &format!("host=127.0.0.1 port={port} user=analyst dbname=amoeba"),
        "an4lyst",
        "SELECT 40 + 2",
    )
    .await;
    assert!(ok, "psql: {err}");
    assert_eq!(out.trim(), "42");

    // The connection limit: 3 at once; the fourth is refused with 53300 and served again
    // once one closes.
    // psql's connection has ended on its side; the server lets go of its slot when it sees
    // the socket close, a moment later.
    let mut third = None;
    for _ in 0..50 {
        match connect(port, "amoeba", "s3cret-密码").await {
            Ok(c) => {
                third = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let third = third.expect("third");
    let (code, message) = refusal(connect(port, "amoeba", "s3cret-密码").await);
    assert_eq!(code, "53300", "{message}");
    drop(third);
    let mut reopened = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(c) = connect(port, "amoeba", "s3cret-密码").await {
            reopened = Some(c);
            break;
        }
    }
    assert!(reopened.is_some(), "a slot frees when a connection closes");
    drop(reopened);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Wrong passwords and unknown users get the same answer (28P01): nothing says which
    // user names exist.
    for (user, password) in [
        ("amoeba", "S3cret-密码"),
        ("analyst", "s3cret-密码"),
        ("mallory", "s3cret-密码"),
    ] {
        // (The previous refused connection may hold the last slot for a moment: 53300.)
        let mut answer = refusal(connect(port, user, password).await);
        for _ in 0..50 {
            if answer.0 != "53300" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            answer = refusal(connect(port, user, password).await);
        }
        let (code, message) = answer;
        assert_eq!(code, "28P01", "{user}: {message}");
        assert_eq!(
            message,
            format!("password authentication failed for user \"{user}\"")
        );
    }
    let conninfo = format!("host=127.0.0.1 port={port} user=amoeba dbname=amoeba");
    let (mut ok, mut err) = (true, String::new());
    for _ in 0..50 {
        (ok, _, err) = psql(&conninfo, "wrong", "SELECT 1").await;
        if !err.contains("too many clients") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !ok && err.contains("password authentication failed"),
        "{err}"
    );
    // The accepted sessions still work.
    assert!(analyst.simple_query("SELECT 1").await.is_ok());
    assert!(admin.simple_query("SELECT 1").await.is_ok());
}

fn openssl(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let status = std::process::Command::new(tool("openssl"))
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "openssl req failed");
    (cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_offered_and_required_and_a_bad_certificate_stops_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = openssl(dir.path(), "server");
    let (ctx, _) = session(&warehouse(0.005, 1)).await;

    // A setup that cannot be loaded is an error before the server listens: never plain text.
    let (other_cert, _) = openssl(dir.path(), "other");
    let garbage = dir.path().join("garbage.crt");
    std::fs::write(&garbage, "not a certificate").expect("write");
    let missing = dir.path().join("missing.crt");
    for (config, says) in [
        (
            ServerConfig::new("127.0.0.1:0").with_tls(&missing, &key),
            "missing.crt",
        ),
        (
            ServerConfig::new("127.0.0.1:0").with_tls(&garbage, &key),
            "no certificate",
        ),
        (
            ServerConfig::new("127.0.0.1:0").with_tls(&other_cert, &key),
            "does not fit",
        ),
        (
            ServerConfig::new("127.0.0.1:0").with_require_tls(true),
            "require_tls needs a certificate",
        ),
    ] {
        let started = tokio::time::timeout(
            Duration::from_secs(10),
            amoeba_engine::serve(std::sync::Arc::new(ctx.clone()), Auth::Trust, &config),
        )
        .await
        .expect("a bad TLS setup fails at once");
        let e = started
            .expect_err("a bad TLS setup does not serve")
            .to_string();
        assert!(e.contains(says), "{e}");
    }

    let server = TestServer::start_with(ctx, Auth::Trust, |c| {
        c.with_tls(&cert, &key).with_require_tls(true)
    })
    .await;
    let conninfo = |mode: &str| {
        format!(
            "host=127.0.0.1 port={} user=amoeba dbname=amoeba sslmode={mode}",
            server.port
        )
    };
    let (ok, out, err) = psql(&conninfo("require"), "", "\\conninfo").await;
    assert!(ok, "psql over TLS: {err}");
    assert!(out.contains("SSL connection"), "{out}");
    let (ok, out, err) = psql(
        &conninfo("require"),
        "",
        "SELECT COUNT(*) > 0 FROM order_lines",
    )
    .await;
    assert!(ok && out.trim() == "t", "{out}{err}");
    // Plain text is refused: psql, and tokio-postgres with the standard code.
    let (ok, _, err) = psql(&conninfo("disable"), "", "SELECT 1").await;
    assert!(!ok && err.contains("TLS connections only"), "{err}");
    let (code, message) = refusal(connect(server.port, "amoeba", "").await);
    assert_eq!(code, "28000", "{message}");
}

/// Rows of a simple query, as text.
async fn texts(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<Vec<Vec<String>>, (String, String)> {
    match client.simple_query(sql).await {
        Ok(messages) => Ok(messages
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                    (0..r.len())
                        .map(|i| r.get(i).unwrap_or("NULL").to_string())
                        .collect(),
                ),
                _ => None,
            })
            .collect()),
        Err(e) => Err(e
            .as_db_error()
            .map(|d| (d.code().code().to_string(), d.message().to_string()))
            .unwrap_or_else(|| ("?".to_string(), e.to_string()))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_leader_reads_their_units_only_through_every_path() {
    let copy = crate::support::copy_warehouse(&warehouse(0.005, 1));
    let root = copy.path();
    // The head of the Douyin department leads DOUYIN and, through it, U07 and U08.
    let model_file = root.join("model/model.toml");
    let model = std::fs::read_to_string(&model_file).expect("model");
    std::fs::write(
        &model_file,
        format!("{model}\n[[users]]\nname = \"douyin_head\"\nrole = \"unit_leader\"\nunit = \"DOUYIN\"\n"),
    )
    .expect("write model");
    let (refresher, _) = amoeba_engine::Refresher::open(
        amoeba_catalog::Warehouse::open(&root.to_string_lossy()).expect("open warehouse"),
    )
    .await
    .expect("open");
    let server = TestServer::start_refreshing(std::sync::Arc::new(refresher)).await;
    let admin = server.client_as("amoeba").await;
    let leader = server.client_as("douyin_head").await;
    let analyst = server.client_as("analyst").await;
    let subtree = "('DOUYIN', 'U07', 'U08')";

    // Randomized: whatever a leader asks of pnl, pnl_ledger or a unit cube equals the
    // admin's answer cut to the subtree (routed to cubes or not).
    let mut rng = crate::support::Rng(0xD0_0B11);
    let months = texts(&admin, "SELECT DISTINCT month FROM pnl_ledger ORDER BY 1")
        .await
        .expect("months");
    let mut compared = 0;
    for _ in 0..60 {
        let (table, dims, measures): (&str, &[&str], &[&str]) = match rng.below(3) {
            0 => (
                "pnl",
                &["month", "platform", "shop_id", "sku", "unit_id", "campaign"],
                &["net_sales", "net_profit", "cogs", "advertising", "cm3"],
            ),
            1 => (
                "pnl_ledger",
                &["month", "platform", "unit_id", "account", "source"],
                &["amount", "qty"],
            ),
            _ => (
                "cubes.unit_monthly",
                &["month", "quarter", "unit_id", "parent_unit_id", "_set"],
                &["net_sales", "net_profit", "gross_profit"],
            ),
        };
        let n = 1 + rng.below(2);
        let group = rng.pick(dims, n);
        let measure = rng.pick(measures, 1)[0];
        let month_filter = (rng.below(2) == 0)
            .then(|| rng.below(months.len()))
            .map(|i| months[i][0].clone())
            .map(|m| format!("month = '{m}'"));
        let cols = group.join(", ");
        let query = |extra: Option<String>| {
            let filters: Vec<String> = month_filter.iter().cloned().chain(extra).collect();
            format!(
                "SELECT {cols}, CAST(SUM({measure}) AS TEXT) FROM {table} {} GROUP BY {cols} ORDER BY {cols}",
                if filters.is_empty() {
                    String::new()
                } else {
                    format!("WHERE {}", filters.join(" AND "))
                }
            )
        };
        let theirs = texts(&leader, &query(None))
            .await
            .expect("the leader's query");
        let cut = texts(&admin, &query(Some(format!("unit_id IN {subtree}"))))
            .await
            .expect("the admin's query");
        assert_eq!(theirs, cut, "{}", query(None));
        compared += 1;
    }
    assert_eq!(compared, 60);

    // Every path into the data is cut the same way.
    let units = |rows: Vec<Vec<String>>| -> Vec<String> {
        rows.into_iter().map(|r| r[0].clone()).collect()
    };
    for sql in [
        "SELECT DISTINCT unit_id FROM pnl_ledger ORDER BY 1",
        "SELECT unit_id FROM amoeba_units ORDER BY 1",
        "SELECT u.unit_id FROM pnl p JOIN amoeba_units u USING (unit_id) GROUP BY 1 ORDER BY 1",
        "WITH l AS (SELECT unit_id, SUM(amount) AS a FROM pnl_ledger GROUP BY 1) SELECT unit_id FROM l ORDER BY 1",
        "SELECT unit_id FROM pnl_ledger UNION SELECT unit_id FROM amoeba_units ORDER BY 1",
        "SELECT unit_id FROM amoeba_units WHERE unit_id IN (SELECT unit_id FROM pnl_ledger) ORDER BY 1",
        "SELECT DISTINCT unit_id FROM cubes.unit_monthly ORDER BY 1",
        // A correlated subquery in the select list (computed, not NULL) reads the cut rows.
        "SELECT (SELECT max(l.unit_id) FROM pnl_ledger l WHERE l.month = m.month) AS u \
         FROM (SELECT DISTINCT month FROM pnl_ledger) m ORDER BY 1",
    ] {
        let seen = units(
            texts(&leader, sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e:?}")),
        );
        assert!(!seen.is_empty(), "{sql}");
        assert!(
            seen.iter()
                .all(|u| ["DOUYIN", "U07", "U08"].contains(&u.as_str())),
            "{sql}: {seen:?}"
        );
    }
    // A cursor's rows (simple protocol, as psql's FETCH_COUNT sends it) are cut the same way.
    for statement in [
        "BEGIN",
        "DECLARE leader_units CURSOR FOR SELECT DISTINCT unit_id FROM pnl_ledger ORDER BY 1",
    ] {
        texts(&leader, statement).await.expect(statement);
    }
    let fetched = units(
        texts(&leader, "FETCH ALL FROM leader_units")
            .await
            .expect("fetch"),
    );
    texts(&leader, "COMMIT").await.expect("commit");
    assert_eq!(fetched, ["U07", "U08"], "{fetched:?}");
    let total = |rows: Vec<Vec<String>>| rows[0][0].clone();
    assert_eq!(
        total(
            texts(
                &leader,
                "SELECT CAST((SELECT SUM(amount) FROM pnl_ledger) AS TEXT)"
            )
            .await
            .expect("scalar subquery")
        ),
        total(
            texts(
                &admin,
                &format!(
                    "SELECT CAST(SUM(amount) AS TEXT) FROM pnl_ledger WHERE unit_id IN {subtree}"
                )
            )
            .await
            .expect("admin")
        ),
    );
    let explained = texts(
        &leader,
        "EXPLAIN ANALYZE SELECT SUM(amount) FROM pnl_ledger",
    )
    .await
    .expect("explain analyze");
    assert!(!explained.is_empty());
    assert!(
        texts(&leader, "SELECT COUNT(*) FROM pg_catalog.pg_class")
            .await
            .is_ok(),
        "catalog introspection works"
    );

    // What a leader may not read, and what no reader may do: 42501.
    for sql in [
        "SELECT * FROM order_lines LIMIT 1",
        "SELECT COUNT(*) FROM refunds",
        "SELECT * FROM amoeba_checks",
        "SELECT * FROM cubes.sku_campaign LIMIT 1",
        "SELECT l.unit_id FROM pnl_ledger l JOIN order_lines o ON o.sku = l.sku LIMIT 1",
    ] {
        let (code, message) = texts(&leader, sql).await.expect_err(sql);
        assert_eq!(code, "42501", "{sql}: {message}");
        assert!(message.contains("douyin_head"), "{message}");
    }
    for client in [&leader, &analyst] {
        for sql in [
            "CREATE EXTERNAL TABLE leak STORED AS PARQUET LOCATION '/etc/'",
            "CREATE TABLE scratch AS SELECT 1",
            "DROP TABLE pnl_ledger",
            "INSERT INTO amoeba_units VALUES ('X', 'x', 'profit', NULL, NULL, NULL)",
            "COPY (SELECT 1) TO '/tmp/amoeba-leak.csv'",
            "SET datafusion.runtime.memory_limit = '100G'",
        ] {
            let (code, message) = texts(client, sql).await.expect_err(sql);
            assert_eq!(code, "42501", "{sql}: {message}");
            assert!(message.contains("needs the admin role"), "{message}");
        }
        // The same over the extended protocol (drivers prepare every statement).
        let e = client
            .query("DROP TABLE pnl_ledger", &[])
            .await
            .expect_err("extended DROP");
        assert_eq!(e.as_db_error().map(|d| d.code().code()), Some("42501"));
    }
    // The analyst reads everything; their settings are their connection's.
    assert!(
        texts(&analyst, "SELECT COUNT(*) FROM order_lines")
            .await
            .is_ok()
    );
    let shown = |rows: Vec<Vec<String>>| rows.concat().join(",");
    assert_eq!(
        shown(
            texts(&analyst, "SHOW amoeba.cube_routing")
                .await
                .expect("show")
        ),
        "true"
    );
    texts(&analyst, "SET amoeba.cube_routing = false")
        .await
        .expect("set");
    // SHOW and current_setting read the connection's options, in both protocols.
    assert_eq!(
        shown(
            texts(&analyst, "SHOW amoeba.cube_routing")
                .await
                .expect("show")
        ),
        "false"
    );
    let extended: String = analyst
        .query_one("SELECT current_setting('amoeba.cube_routing')", &[])
        .await
        .expect("current_setting")
        .get(0);
    assert_eq!(extended, "false");
    let all = texts(&analyst, "SHOW ALL").await.expect("show all");
    assert!(
        all.iter()
            .any(|row| row[..2] == ["amoeba.cube_routing".to_string(), "false".to_string()]),
        "{all:?}"
    );
    assert!(all.iter().any(|row| row[0] == "server_version"), "{all:?}");
    let (code, _) = texts(&analyst, "SHOW amoeba.no_such_setting")
        .await
        .expect_err("unknown setting");
    assert_ne!(code, "?");
    let plan = |rows: Vec<Vec<String>>| {
        rows.iter()
            .map(|r| r.join(" "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let by_unit = "EXPLAIN SELECT unit_id, SUM(net_profit) FROM pnl GROUP BY unit_id";
    assert!(!plan(texts(&analyst, by_unit).await.expect("explain")).contains("cubes.unit_monthly"));
    assert!(plan(texts(&admin, by_unit).await.expect("explain")).contains("cubes.unit_monthly"));
    // … and their connection's: another connection of the same user still routes.
    let analyst_again = server.client_as("analyst").await;
    assert!(
        plan(texts(&analyst_again, by_unit).await.expect("explain")).contains("cubes.unit_monthly")
    );
    // Undeclared names read nothing (possible only without passwords).
    let stranger = server.client_as("mallory").await;
    let (code, message) = texts(&stranger, "SELECT 1").await.expect_err("undeclared");
    assert_eq!(code, "42501", "{message}");
    // The admin still may.
    texts(&admin, "CREATE TABLE scratch AS SELECT 1 AS one")
        .await
        .expect("admin DDL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_its_memory_limit_fails_and_the_server_goes_on() {
    let (ctx, _) = session(&warehouse(0.005, 1)).await;
    // 256 KiB a query: far below what a sort of every order line needs, spilled or not.
    let server =
        TestServer::start_with(ctx, Auth::Trust, |c| c.with_query_memory(Some(256 << 10))).await;
    let client = server.client().await;
    let heavy = "SELECT order_id, line_id, sku, net_sales FROM order_lines \
                 ORDER BY net_sales DESC, order_id, line_id";
    let e = client
        .simple_query(heavy)
        .await
        .expect_err("over the limit");
    let db = server_error(&e);
    assert_eq!(db.code().code(), "53200", "{}", db.message());
    assert!(db.message().contains("out of memory"), "{}", db.message());
    assert!(db.message().contains("256 KiB"), "{}", db.message());
    // The same connection and another one go on with queries that fit. (A sort, even a TopK
    // of three rows, may reserve a few hundred KiB up front and not fit; a count does.)
    let small = "SELECT COUNT(*) FROM amoeba_functions";
    let count = |rows: Vec<tokio_postgres::SimpleQueryMessage>| -> i64 {
        rows.iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => {
                    row.get(0).and_then(|v| v.parse().ok())
                }
                _ => None,
            })
            .unwrap_or(-1)
    };
    let after = match client.simple_query(small).await {
        Ok(rows) => count(rows),
        Err(e) => panic!("after the refusal: {e:?}"),
    };
    assert!(after > 0, "{after}");
    let other = server.client().await;
    let rows = other.simple_query(small).await.expect("another connection");
    assert_eq!(count(rows), after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_or_the_statement_timeout_stops_a_running_query() {
    let (ctx, _) = session(&warehouse(0.005, 1)).await;
    let server = TestServer::start_with(ctx, Auth::Trust, |c| c).await;
    let client = server.client().await;
    let token = client.cancel_token();
    let started = std::time::Instant::now();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        token
            .cancel_query(tokio_postgres::NoTls)
            .await
            .expect("send the cancel request");
    });
    // Billions of pairs: minutes of work unless cancelled.
    let e = client
        .simple_query("SELECT COUNT(*) FROM order_lines a, order_lines b, order_lines c")
        .await
        .expect_err("cancelled");
    canceller.await.expect("canceller");
    let db = server_error(&e);
    assert_eq!(db.code().code(), "57014", "{}", db.message());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    if let Err(e) = client.simple_query("SELECT 1").await {
        panic!("the connection goes on: {e:?}");
    }

    // statement_timeout stops the work too (not only its planning), in both protocols.
    client
        .simple_query("SET statement_timeout TO '700ms'")
        .await
        .expect("set statement_timeout");
    for extended in [false, true] {
        let started = std::time::Instant::now();
        let sql = "SELECT COUNT(*) FROM order_lines a, order_lines b, order_lines c";
        let e = if extended {
            client
                .query(sql, &[])
                .await
                .map(|_| ())
                .expect_err("timed out")
        } else {
            client
                .simple_query(sql)
                .await
                .map(|_| ())
                .expect_err("timed out")
        };
        let db = server_error(&e);
        assert_eq!(db.code().code(), "57014", "{}", db.message());
        assert!(
            db.message().contains("statement timeout"),
            "{}",
            db.message()
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );
    }
    client
        .simple_query("SET statement_timeout TO 0")
        .await
        .expect("reset statement_timeout");
    let started = std::time::Instant::now();
    if let Err(e) = client.simple_query("SELECT 1").await {
        panic!("the connection goes on: {e:?}");
    }
    eprintln!("SELECT 1 after: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_statement_timeout_is_a_ceiling_and_idle_connections_are_closed() {
    let (ctx, _) = session(&warehouse(0.005, 1)).await;
    let server = TestServer::start_with(ctx, Auth::Trust, |c| {
        c.with_statement_timeout(Some(Duration::from_secs(3)))
            .with_idle_timeout(Some(Duration::from_secs(1)))
    })
    .await;
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=amoeba dbname=amoeba",
            server.port
        ),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect");
    let connection = tokio::spawn(connection);

    // A client may not lift the server's limit; a query running longer than the idle timeout
    // is not idle: it is stopped by the statement timeout, not by the idle one.
    client
        .simple_query("SET statement_timeout TO '1h'")
        .await
        .expect("set statement_timeout");
    let started = std::time::Instant::now();
    let e = client
        .simple_query("SELECT COUNT(*) FROM order_lines a, order_lines b, order_lines c")
        .await
        .expect_err("stopped by the server's statement timeout");
    let db = server_error(&e);
    assert_eq!(db.code().code(), "57014", "{}", db.message());
    assert!(
        db.message().contains("statement timeout"),
        "{}",
        db.message()
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(30),
        "{took:?}"
    );

    // A busy connection stays open past the idle timeout; an idle one is closed with 57P05.
    let busy = server.client().await;
    for _ in 0..8 {
        busy.simple_query("SELECT 1")
            .await
            .expect("a busy connection");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(!busy.is_closed());
    let ended = tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("the idle connection is closed")
        .expect("connection task");
    let e = ended.expect_err("closed by the server");
    let db = server_error(&e);
    assert_eq!(db.code().code(), "57P05", "{}", db.message());
    assert!(client.is_closed());
    assert!(client.simple_query("SELECT 1").await.is_err());
    busy.simple_query("SELECT 1")
        .await
        .expect("the server goes on");
}
