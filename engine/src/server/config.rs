//! How the PostgreSQL frontend listens and whom it lets in.

use std::path::PathBuf;
use std::time::Duration;

/// How the server listens (`amoeba serve --listen … --tls-cert … --tls-key … --require-tls
/// --max-connections …`); who may log in is [`Auth`](super::Auth).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `host:port` to listen on.
    pub listen: String,
    /// PEM certificate chain and PKCS#8 key: TLS is offered. A file that cannot be loaded
    /// stops the server from starting — it never falls back to plain text.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Refuse connections that did not negotiate TLS (SQLSTATE 28000).
    pub require_tls: bool,
    /// Connections served at once; one more is refused with SQLSTATE 53300. 0: no limit.
    pub max_connections: usize,
    /// Memory a connection's query may hold (bytes; a connection runs one query at a time):
    /// over it, operators that can spill to disk spill, and a query that still needs more
    /// fails with SQLSTATE 53200 while the server and the other queries go on. `None`: no
    /// limit.
    pub query_memory: Option<usize>,
    /// The longest a statement may run (planning and sending its rows); over it, it stops
    /// with SQLSTATE 57014. A client's `SET statement_timeout` may ask for less, never for
    /// more. `None`: no limit of the server's.
    pub statement_timeout: Option<Duration>,
    /// A connection with no statement running for this long is closed (FATAL 57P05, like
    /// PostgreSQL's `idle_session_timeout`). `None`: never.
    pub idle_timeout: Option<Duration>,
}

impl ServerConfig {
    /// Listens on `listen`, no TLS, at most 100 connections, no memory or time limits.
    pub fn new(listen: impl Into<String>) -> ServerConfig {
        ServerConfig {
            listen: listen.into(),
            tls: None,
            require_tls: false,
            max_connections: 100,
            query_memory: None,
            statement_timeout: None,
            idle_timeout: None,
        }
    }

    /// The same with a statement time limit (`None`: none of the server's).
    pub fn with_statement_timeout(mut self, limit: Option<Duration>) -> ServerConfig {
        self.statement_timeout = limit.filter(|t| !t.is_zero());
        self
    }

    /// The same, closing connections idle for `timeout` (`None`: never).
    pub fn with_idle_timeout(mut self, timeout: Option<Duration>) -> ServerConfig {
        self.idle_timeout = timeout.filter(|t| !t.is_zero());
        self
    }

    /// The same with a per-query memory limit in bytes (`None`: no limit).
    pub fn with_query_memory(mut self, bytes: Option<usize>) -> ServerConfig {
        self.query_memory = bytes;
        self
    }

    /// The same with TLS from these PEM files.
    pub fn with_tls(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> ServerConfig {
        self.tls = Some((cert.into(), key.into()));
        self
    }

    /// The same, refusing plain-text connections.
    pub fn with_require_tls(mut self, require: bool) -> ServerConfig {
        self.require_tls = require;
        self
    }

    /// The same with a connection limit (0: none).
    pub fn with_max_connections(mut self, max: usize) -> ServerConfig {
        self.max_connections = max;
        self
    }
}
