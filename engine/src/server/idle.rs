//! Closing connections left idle (`--idle-timeout-seconds`, PostgreSQL's
//! `idle_session_timeout`).
//!
//! ```text
//!  accept ──► IdleWatch::watch(socket) ──► watchdog task (one per connection)
//!                 │ keeps a duplicate of the socket      │ wakes at last activity + timeout
//!                 ▼                                      ▼
//!  statement ─► Running guard (held by its row streams)  no statement running and idle
//!               ends: last activity = now                  long enough? FATAL 57P05,
//!                                                           shut the socket: pgwire's read
//!                                                           ends and the connection with it
//! ```
//!
//! pgwire owns the connection's socket and its message loop, so the watchdog works on the
//! socket itself: shutting it down makes pgwire's pending read end as if the client had
//! gone. A connection is idle from the moment its last statement's rows were sent (or from
//! its start) until the next statement: a long query is never idle, however quiet the client.
//! The FATAL message is written only on a connection known to be plain text: under TLS it
//! would have to go through pgwire's TLS session, so there the socket is only shut.

use std::collections::HashMap;
use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion_postgres::pgwire::api::ClientInfo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::fatal_message;

/// The idle connections' watchdogs of one server.
pub(crate) struct IdleWatch {
    timeout: Option<Duration>,
    /// Whether the server offers TLS (then a connection is plain text only once seen so).
    tls_offered: bool,
    connections: Mutex<HashMap<SocketAddr, Arc<Activity>>>,
}

/// What the watchdog of one connection looks at.
struct Activity {
    running: AtomicUsize,
    last: Mutex<Instant>,
    plain_text: AtomicBool,
}

impl Activity {
    fn last(&self) -> Instant {
        *self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl IdleWatch {
    pub(crate) fn new(timeout: Option<Duration>, tls_offered: bool) -> IdleWatch {
        IdleWatch {
            timeout: timeout.filter(|t| !t.is_zero()),
            tls_offered,
            connections: Mutex::new(HashMap::new()),
        }
    }

    /// Starts watching the connection on `socket` (when a timeout is set). The returned guard
    /// stops the watchdog when the connection ends.
    pub(crate) fn watch(
        self: &Arc<Self>,
        socket: TcpStream,
        peer: SocketAddr,
    ) -> std::io::Result<(TcpStream, Option<Watched>)> {
        let Some(timeout) = self.timeout else {
            return Ok((socket, None));
        };
        // A duplicate of the socket for the watchdog: pgwire takes the original.
        let socket = socket.into_std()?;
        let duplicate = socket.try_clone()?;
        let socket = TcpStream::from_std(socket)?;
        let activity = Arc::new(Activity {
            running: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
            plain_text: AtomicBool::new(!self.tls_offered),
        });
        self.map().insert(peer, Arc::clone(&activity));
        let watchdog = tokio::spawn(async move {
            loop {
                tokio::time::sleep_until(activity.last() + timeout).await;
                if activity.running.load(Ordering::SeqCst) == 0
                    && activity.last().elapsed() >= timeout
                {
                    break;
                }
            }
            log::info!("closing the connection from {peer}: idle for {timeout:?}");
            if activity.plain_text.load(Ordering::SeqCst) {
                // The socket's send buffer is empty (nothing was sent since the last
                // statement), so this small write does not block; a failure changes nothing.
                let _ = (&duplicate).write_all(&fatal_message(
                    "57P05",
                    "terminating connection due to idle-session timeout",
                ));
            }
            let _ = duplicate.shutdown(Shutdown::Both);
        });
        Ok((
            socket,
            Some(Watched {
                watch: Arc::clone(self),
                peer,
                watchdog,
            }),
        ))
    }

    /// A statement of `client` starts: the connection is not idle until the guard is dropped.
    pub(crate) fn running<C: ClientInfo + ?Sized>(&self, client: &C) -> Option<Running> {
        let activity = Arc::clone(self.map().get(&client.socket_addr())?);
        activity
            .plain_text
            .store(!client.is_secure(), Ordering::SeqCst);
        activity.running.fetch_add(1, Ordering::SeqCst);
        Some(Running(activity))
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Arc<Activity>>> {
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A watched connection: dropping it (the connection ended) stops its watchdog.
pub(crate) struct Watched {
    watch: Arc<IdleWatch>,
    peer: SocketAddr,
    watchdog: tokio::task::JoinHandle<()>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.watchdog.abort();
        self.watch.map().remove(&self.peer);
    }
}

/// A running statement: the connection is busy while it lives.
pub(crate) struct Running(Arc<Activity>);

impl Drop for Running {
    fn drop(&mut self) {
        *self
            .0
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Instant::now();
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}
