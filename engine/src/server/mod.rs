//! The PostgreSQL-protocol server: datafusion-postgres (pgwire) serving a DataFusion session,
//! with Amoeba's handlers in front (`handlers`: administrative commands such as
//! `REFRESH CUBE`, `admin`).

mod admin;
mod handlers;

use std::sync::Arc;

use datafusion::prelude::SessionContext;
use datafusion_postgres::ServerOptions;

use crate::Refresher;
use crate::error::{EngineError, Result};
use handlers::AmoebaHandlers;

/// Serves `ctx` on `listen` (`host:port`) until the process ends; a fixed session, so
/// `REFRESH CUBE` is refused.
pub async fn serve(ctx: Arc<SessionContext>, listen: &str) -> Result<()> {
    serve_with(AmoebaHandlers::new(ctx, None), listen).await
}

/// Serves a refreshed warehouse's session on `listen` until the process ends; admins may
/// run `REFRESH CUBE <name> [FULL]` and `REFRESH CUBES [FULL]`.
pub async fn serve_refreshing(refresher: Arc<Refresher>, listen: &str) -> Result<()> {
    serve_with(
        AmoebaHandlers::new(refresher.ctx(), Some(refresher)),
        listen,
    )
    .await
}

async fn serve_with(handlers: AmoebaHandlers, listen: &str) -> Result<()> {
    let (host, port) = parse_listen(listen)?;
    let options = ServerOptions::new().with_host(host).with_port(port);
    datafusion_postgres::serve_with_handlers(Arc::new(handlers), &options)
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
