//! The PostgreSQL-protocol server: pgwire connections, each served by Amoeba's handlers in
//! front of datafusion-postgres's session service.
//!
//! ```text
//!  accept ─► over max_connections? ── FATAL 53300 ──► close
//!     │
//!     ▼ pgwire: SSLRequest ─► TLS (the configured certificate)          config.rs
//!  ConnectionStartup: require TLS? ─► SCRAM-SHA-256 (or trust) ─► ready  auth.rs
//!     │
//!     ▼ queries: REFRESH CUBE … (admin) │ SQL in the user's session       handlers.rs, admin.rs
//!                (statements gated by role, rows by unit for leaders)   access.rs
//!                (run on the query runtime; stopped by a cancel or      ../runtime.rs
//!                 statement_timeout, while planning or sending rows)    cancel.rs
//!     idle for idle_timeout? ─► FATAL 57P05 ─► close                    idle.rs
//! ```
//!
//! The certificate and key are loaded before the server listens: a file that cannot be read
//! or parsed is an error and the server does not start (it never falls back to plain text).

mod access;
mod admin;
mod auth;
mod cancel;
mod config;
mod copy_out;
mod cursor;
mod handlers;
mod idle;
mod pg_error;
mod sql_compat;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::prelude::SessionContext;
use datafusion_postgres::pgwire::tokio::tokio_rustls::rustls;
use datafusion_postgres::pgwire::tokio::{TlsAcceptor, process_socket};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::Refresher;
use crate::error::{EngineError, Result};
pub use auth::{Auth, Credentials, ScramVerifier};
pub use config::ServerConfig;
use handlers::AmoebaHandlers;

/// Serves `ctx` (a fixed session: `REFRESH CUBE` is refused; with no model, every user is an
/// admin) until the process ends.
pub async fn serve(ctx: Arc<SessionContext>, auth: Auth, config: &ServerConfig) -> Result<()> {
    let handlers = AmoebaHandlers::new(ctx, None, None, auth, config);
    serve_with(handlers, config).await
}

/// Serves a refreshed warehouse's session until the process ends, with the roles of its
/// model's users (read when it starts); admins may run `REFRESH CUBE <name> [FULL]` and
/// `REFRESH CUBES [FULL]`.
pub async fn serve_refreshing(
    refresher: Arc<Refresher>,
    auth: Auth,
    config: &ServerConfig,
) -> Result<()> {
    let model = refresher.model().await;
    let handlers = AmoebaHandlers::new(
        refresher.ctx(),
        Some(refresher),
        model.as_ref(),
        auth,
        config,
    );
    serve_with(handlers, config).await
}

async fn serve_with(handlers: AmoebaHandlers, config: &ServerConfig) -> Result<()> {
    let listen = config.listen.as_str();
    let server_err = |source: std::io::Error| EngineError::Server {
        listen: listen.to_string(),
        source,
    };
    let tls = match &config.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None if config.require_tls => {
            return Err(EngineError::setup(
                "require_tls needs a certificate and a key (--tls-cert, --tls-key)",
            ));
        }
        None => None,
    };
    let (host, port) = parse_listen(listen)?;
    let listener = TcpListener::bind((host.as_str(), port))
        .await
        .map_err(server_err)?;
    log::info!(
        "listening on {listen} ({})",
        if tls.is_some() {
            "TLS offered"
        } else {
            "no TLS"
        }
    );
    let handlers = Arc::new(handlers);
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let (mut socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little, keep serving.
                log::warn!("accept on {listen}: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = Slot::take(&open, config.max_connections);
        let (handlers, tls) = (Arc::clone(&handlers), tls.clone());
        tokio::spawn(async move {
            let Some(_slot) = slot else {
                log::warn!("refused {peer}: too many connections");
                let _ = socket
                    .write_all(&fatal_message("53300", "sorry, too many clients already"))
                    .await;
                return;
            };
            let (socket, _watched) = match handlers.idle.watch(socket, peer) {
                Ok(watched) => watched,
                Err(e) => {
                    log::warn!("connection from {peer}: {e}");
                    return;
                }
            };
            if let Err(e) = process_socket(socket, tls, handlers).await {
                log::info!("connection from {peer}: {e}");
            }
        });
    }
}

/// One of the `max` connection slots, given back when dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// A slot, or `None` when `max` are taken (0: no limit).
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        let taken = open.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(Arc::clone(open));
        (max == 0 || taken < max).then_some(slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An ErrorResponse (severity FATAL) as bytes, for a connection refused before its startup.
fn fatal_message(code: &str, message: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (tag, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', code),
        (b'M', message),
    ] {
        fields.push(tag);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(&((fields.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(&fields);
    out
}

/// The TLS acceptor of a PEM certificate chain and key; an error names the file.
fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor> {
    let tls_err = |path: &std::path::Path, why: String| {
        EngineError::setup(format!("TLS: {}: {why}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_err(cert, e.to_string()))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| tls_err(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(tls_err(cert, "no certificate in the file".to_string()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_err(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| tls_err(cert, format!("the key does not fit the certificate: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Splits `host:port` (`[::1]:5433` for IPv6).
pub fn parse_listen(listen: &str) -> Result<(String, u16)> {
    let invalid = || EngineError::InvalidListen {
        listen: listen.to_string(),
    };
    let (host, port) = listen.rsplit_once(':').ok_or_else(invalid)?;
    let port: u16 = port.parse().map_err(|_| invalid())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(invalid());
    }
    Ok((host.to_string(), port))
}
