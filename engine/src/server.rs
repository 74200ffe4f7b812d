//! The PostgreSQL-protocol server, through datafusion-postgres (pgwire).

use std::sync::Arc;

use datafusion::prelude::SessionContext;
use datafusion_postgres::ServerOptions;

use crate::error::{EngineError, Result};

/// Serves `ctx` on `listen` (`host:port`) until the process ends.
pub async fn serve(ctx: Arc<SessionContext>, listen: &str) -> Result<()> {
    let (host, port) = parse_listen(listen)?;
    let options = ServerOptions::new().with_host(host).with_port(port);
    datafusion_postgres::serve(ctx, &options)
        .await
        .map_err(|source| EngineError::Server {
            listen: listen.to_string(),
            source,
        })
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
