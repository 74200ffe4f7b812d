//! The server with real clients: tokio-postgres (simple and extended protocol) and psql.

use crate::support::{KillOnDrop, TestServer, psql, psql_with, rows, session, warehouse};

const BY_PLATFORM: &str =
    "select platform, count(*), sum(net_sales) from order_lines group by 1 order by 1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_get_the_truth() {
    let path = warehouse(0.005, 1);
    let (ctx, _) = session(&path).await;
    let truth = rows(
        &ctx,
        &BY_PLATFORM.replace("order_lines", "truth_order_lines"),
    )
    .await;
    assert_eq!(truth.len(), 4);
    let server = TestServer::start(ctx).await;
    let client = server.client().await;

    // Simple query protocol: text values, to the cent.
    let messages = client
        .simple_query(BY_PLATFORM)
        .await
        .expect("simple query");
    let served: Vec<Vec<String>> = messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL").to_string())
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    assert_eq!(served, truth);

    // Extended protocol: a prepared statement with a parameter, typed results.
    let statement = client
        .prepare(
            "select count(*), cast(sum(net_sales) as varchar) from order_lines where platform = $1",
        )
        .await
        .expect("prepare");
    for expected in &truth {
        let row = client
            .query_one(&statement, &[&expected[0]])
            .await
            .expect("execute");
        let count: i64 = row.get(0);
        let sum: String = row.get(1);
        assert_eq!(count.to_string(), expected[1]);
        assert_eq!(sum, expected[2]);
    }

    // psql: the acceptance query, \dt and \d.
    let out = psql(server.port, BY_PLATFORM).await;
    let expected: Vec<String> = truth.iter().map(|r| r.join("|")).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);
    // … through a cursor (FETCH_COUNT: DECLARE, FETCH FORWARD 3 until done, CLOSE, COMMIT).
    let fetched = psql_with(server.port, &["-v", "FETCH_COUNT=3"], BY_PLATFORM).await;
    assert_eq!(fetched.lines().collect::<Vec<_>>(), expected);
    // … and declared by hand, the statements in one simple query.
    let declared = psql(
        server.port,
        &format!("BEGIN; DECLARE by_platform CURSOR FOR {BY_PLATFORM}; FETCH 2 FROM by_platform; FETCH ALL FROM by_platform; COMMIT"),
    )
    .await;
    let tagged: Vec<String> = ["BEGIN", "DECLARE CURSOR"]
        .iter()
        .map(|t| t.to_string())
        .chain(expected.iter().cloned())
        .chain(["COMMIT".to_string()])
        .collect();
    assert_eq!(declared.lines().collect::<Vec<_>>(), tagged);
    // A correlated subquery in the select list computes its values (datafusion-postgres
    // alone would answer NULL).
    let correlated = psql(
        server.port,
        "select p.platform, (select count(*) from order_lines o where o.platform = p.platform), \
         (select sum(o.net_sales) from order_lines o where o.platform = p.platform) \
         from (select distinct platform from order_lines) p order by 1",
    )
    .await;
    assert_eq!(correlated.lines().collect::<Vec<_>>(), expected);
    // Ranking functions are bigint, named as PostgreSQL names them.
    let ranked = client
        .query(
            "select platform, row_number() over (order by platform) from order_lines group by platform",
            &[],
        )
        .await
        .expect("row_number");
    assert_eq!(ranked.len(), truth.len());
    assert_eq!(ranked[0].columns()[1].name(), "row_number");
    let numbers: Vec<i64> = ranked.iter().map(|row| row.get(1)).collect();
    assert_eq!(
        numbers.iter().sum::<i64>(),
        (1..=truth.len() as i64).sum::<i64>()
    );
    let tables = psql(server.port, "\\dt").await;
    assert!(
        tables
            .lines()
            .any(|l| l.starts_with("public|amoeba_files|table|")),
        "\\dt:\n{tables}"
    );
    let views = psql(server.port, "\\dv").await;
    for view in [
        "order_lines",
        "refunds",
        "fees",
        "ad_spend",
        "waybills",
        "purchases",
        "skus",
        "shops",
    ] {
        let line = format!("public|{view}|view|");
        assert!(
            views.lines().any(|l| l.starts_with(&line)),
            "\\dv lacks {view}:\n{views}"
        );
    }
    // \df lists Amoeba's functions (pg_proc), with their arguments and result types.
    let functions = psql(server.port, "\\df").await;
    for line in [
        "public|roi|double precision|net_profit numeric, ad_spend numeric|func",
        "public|aov|numeric|net_sales numeric, orders numeric|func",
        "public|allocate_exact|numeric|pool_amount numeric, driver numeric|window",
    ] {
        assert!(
            functions.lines().any(|l| l == line),
            "\\df lacks {line}:\n{functions}"
        );
    }
    let described = psql(server.port, "\\d order_lines").await;
    for column in ["platform", "net_sales", "paid_at"] {
        assert!(
            described
                .lines()
                .any(|l| l.starts_with(&format!("{column}|"))),
            "\\d lacks {column}:\n{described}"
        );
    }
}

/// The README's path: `amoeba demo` generates a warehouse into an empty directory and serves
/// it; psql's answer equals the generator's truth to the cent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_command_serves_a_generated_warehouse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let warehouse = dir.path().join("warehouse");
    let port = crate::support::free_port();
    let _demo = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_amoeba"))
            .args([
                "demo",
                "--scale",
                "0.005",
                "--seed",
                "3",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("--warehouse")
            .arg(&warehouse)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start amoeba demo"),
    );
    crate::support::wait_for_port(port, std::time::Duration::from_secs(120)).await;

    let truth_ctx = datafusion::prelude::SessionContext::new();
    crate::support::register_truth(&truth_ctx, &warehouse).await;
    let truth = rows(
        &truth_ctx,
        &BY_PLATFORM.replace("order_lines", "truth_order_lines"),
    )
    .await;
    assert_eq!(truth.len(), 4);
    let out = psql(port, BY_PLATFORM).await;
    let expected: Vec<String> = truth.iter().map(|r| r.join("|")).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);
}

/// Amoeba's functions over the extended protocol: a prepared statement whose function
/// arguments are parameters, typed by a cast or left untyped (sent as text, PostgreSQL's
/// `unknown`, and read as exact numbers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_take_parameters_over_the_wire() {
    let (ctx, _) = session(&warehouse(0.005, 1)).await;
    let server = TestServer::start(ctx).await;
    let client = server.client().await;
    let pairs = |rows: Vec<tokio_postgres::Row>| -> Vec<(Option<String>, Option<String>)> {
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    let typed = client
        .prepare(
            "select cast(safe_div($1::float8, $2::float8) as varchar), \
                    cast(roas($1::float8, $2::float8) as varchar)",
        )
        .await
        .expect("prepare typed");
    let got = client
        .query(&typed, &[&150.0f64, &60.0f64])
        .await
        .expect("typed");
    assert_eq!(pairs(got), vec![(Some("2.5".into()), Some("2.5".into()))]);

    let untyped = client
        .prepare("select cast(safe_div($1, $2) as varchar), cast(aov($1, $2) as varchar)")
        .await
        .expect("prepare untyped");
    let got = client
        .query(&untyped, &[&"150.00", &"60"])
        .await
        .expect("untyped");
    assert_eq!(
        pairs(got),
        vec![(Some("2.5".into()), Some("2.5000".into()))]
    );
    // A zero denominator is NULL, never an error.
    let got = client
        .query(&untyped, &[&"150.00", &"0"])
        .await
        .expect("zero");
    assert_eq!(pairs(got), vec![(None, None)]);
    // Text that is not a number is an error naming it; the connection stays usable.
    let err = client
        .query(&untyped, &[&"abc", &"1"])
        .await
        .expect_err("not a number");
    assert!(format!("{err:?}").contains("abc"), "{err:?}");
    let got = client
        .query(&untyped, &[&"1", &"4"])
        .await
        .expect("after the error");
    assert_eq!(
        pairs(got),
        vec![(Some("0.25".into()), Some("0.2500".into()))]
    );
}
