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
    let third = connect(port, "amoeba", "s3cret-密码").await.expect("third");
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
        let (code, message) = refusal(connect(port, user, password).await);
        assert_eq!(code, "28P01", "{user}: {message}");
        assert_eq!(
            message,
            format!("password authentication failed for user \"{user}\"")
        );
    }
    let (ok, _, err) = psql(
        &format!("host=127.0.0.1 port={port} user=amoeba dbname=amoeba"),
        "wrong",
        "SELECT 1",
    )
    .await;
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
