//! Stopping a running statement: a cancel request (psql's Ctrl-C) or `statement_timeout`.
//!
//! ```text
//!  CancelRequest(pid, key) ─► ConnectionManager ─► QueryCancel (this connection's handle)
//!                                                        │ fires
//!  statement ──► planning ──┬── select ◄────────────────┤◄── sleep(statement_timeout)
//!                           └─► rows, streamed ── stop ◄─┘     → ERROR 57014
//! ```
//!
//! pgwire races only the call that *plans* a statement against a cancel; DataFusion does its
//! work while the rows stream to the client, after that call returned, so a cancel (or a
//! timeout, which datafusion-postgres also applies to planning only) would never stop a long
//! query. Here the connection's cancel handle is kept under our own key (pgwire does not see
//! it) and both the planning and the row stream are cut when it fires or the statement's time
//! is up; dropping the stream stops DataFusion's work.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use datafusion::execution::memory_pool::MemoryPool;
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::api::{ClientInfo, ConnectionHandle};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt};

use super::idle::Running;
use crate::runtime::{InQueryRuntime, query_runtime};

/// The connection's cancel handle, stored in its extensions under this type so that pgwire's
/// own (planning-only) cancel does not consume it.
pub(crate) struct QueryCancel(pub(crate) Arc<ConnectionHandle>);

/// The client's `statement_timeout` (datafusion-postgres keeps `SET statement_timeout` there).
const TIMEOUT_KEY: &str = "statement_timeout_ms";

/// Why a statement stopped.
#[derive(Clone, Copy, Debug)]
enum Stop {
    Cancelled,
    TimedOut,
}

/// Completes when the statement must stop (never, without a cancel handle or a timeout).
type StopSignal = Shared<BoxFuture<'static, Stop>>;

async fn stop_signal<C: ClientInfo + ?Sized>(client: &C, ceiling: Option<Duration>) -> StopSignal {
    let cancel = match client.session_extensions().get::<QueryCancel>() {
        Some(handle) => Some(handle.0.start_query().await),
        None => None,
    };
    let timeout = client
        .metadata()
        .get(TIMEOUT_KEY)
        .and_then(|ms| ms.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis);
    // The server's limit is a ceiling: a client may only ask for less.
    let timeout = match (timeout, ceiling) {
        (Some(asked), Some(ceiling)) => Some(asked.min(ceiling)),
        (asked, ceiling) => asked.or(ceiling),
    };
    async move {
        let cancelled = async move {
            // Ok: the cancel fired. Err: the sender was dropped (the next statement started,
            // or the connection ended): not a cancel.
            let fired = match cancel {
                Some(rx) => rx.await.is_ok(),
                None => false,
            };
            if fired {
                Stop::Cancelled
            } else {
                futures::future::pending().await
            }
        };
        let timed_out = async move {
            match timeout {
                Some(t) => {
                    tokio::time::sleep(t).await;
                    Stop::TimedOut
                }
                None => futures::future::pending().await,
            }
        };
        futures::pin_mut!(cancelled, timed_out);
        futures::future::select(cancelled, timed_out)
            .await
            .factor_first()
            .0
    }
    .boxed()
    .shared()
}

fn error(stop: Stop) -> PgWireError {
    let message = match stop {
        Stop::Cancelled => "canceling statement due to user request",
        Stop::TimedOut => "canceling statement due to statement timeout",
    };
    super::pg_error::error("57014", message)
}

/// The stop signal of one statement, and what must live as long as its rows.
pub(crate) struct Stopper {
    signal: StopSignal,
    running: Arc<Option<Running>>,
    /// Set when the statement's rows end in an error or a stop.
    stopped: Arc<AtomicBool>,
}

/// Whether the connection's last statement was stopped before its end (kept in the
/// connection's extensions).
struct StoppedEarly(Arc<AtomicBool>);

/// The most rows handed from the query runtime to the connection at once.
const ROWS_PER_CHUNK: usize = 1024;

/// How long a statement waits for its stopped predecessor's memory.
const SETTLE_AT_MOST: Duration = Duration::from_secs(2);

impl Stopper {
    /// A statement of `client` starts: its cancel handle is armed, its timeout starts (the
    /// client's `statement_timeout`, at most the server's `ceiling`). `running` is held until
    /// its rows are sent.
    ///
    /// When the connection's previous statement was stopped (an error, a cancel, a timeout),
    /// its tasks let go of their memory only as they notice the abort: the statement waits a
    /// little for the connection's memory `pool` to empty, so that it has the whole of it.
    pub(crate) async fn start<C: ClientInfo + ?Sized>(
        client: &C,
        ceiling: Option<Duration>,
        running: Option<Running>,
        pool: &Arc<dyn MemoryPool>,
    ) -> Stopper {
        let stopped = client
            .session_extensions()
            .get_or_insert_with(|| StoppedEarly(Arc::new(AtomicBool::new(false))));
        if stopped.0.swap(false, Ordering::SeqCst) {
            let since = std::time::Instant::now();
            while pool.reserved() > 0 && since.elapsed() < SETTLE_AT_MOST {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Stopper {
            signal: stop_signal(client, ceiling).await,
            running: Arc::new(running),
            stopped: Arc::clone(&stopped.0),
        }
    }

    /// Runs the planning of the statement until it ends or the statement must stop.
    pub(crate) async fn run<T>(
        &self,
        planning: impl std::future::Future<Output = PgWireResult<T>>,
    ) -> PgWireResult<T> {
        // Planning may already start DataFusion's tasks: on the query runtime.
        let planning = InQueryRuntime::new(planning);
        futures::pin_mut!(planning);
        match futures::future::select(planning, self.signal.clone()).await {
            futures::future::Either::Left((result, _)) => result,
            futures::future::Either::Right((why, _)) => Err(error(why)),
        }
    }

    /// `response` with its row stream cut when the statement must stop.
    pub(crate) fn rows(&self, response: Response) -> Response {
        let Response::Query(mut query) = response else {
            return response;
        };
        let rows = std::mem::replace(&mut query.data_rows, Box::pin(futures::stream::empty()));
        // The rows are produced by a task of their own, on the query runtime: an operator may
        // compute for a long time inside one poll, and the stop must reach the client
        // meanwhile. The task is aborted when the stream is dropped (stopped, finished, or the
        // client gone), which drops DataFusion's stream and with it the tasks it spawned.
        // Rows cross between the runtimes in chunks (what is ready, up to ROWS_PER_CHUNK): a
        // hand-over per row would cost a wake-up of the other runtime per row.
        let (tx, mut rx) = tokio::sync::mpsc::channel(2);
        let producer = AbortOnDrop(query_runtime().spawn(async move {
            let mut chunks = rows.ready_chunks(ROWS_PER_CHUNK);
            while let Some(chunk) = chunks.next().await {
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
        }));
        let mut signal = self.signal.clone();
        let running = Arc::clone(&self.running);
        let stopped = Arc::clone(&self.stopped);
        let mut done = false;
        let mut pending = std::collections::VecDeque::new();
        query.data_rows = Box::pin(futures::stream::poll_fn(move |cx| {
            let (_producer, _running) = (&producer, &running);
            if done {
                return Poll::Ready(None);
            }
            if let Poll::Ready(why) = signal.poll_unpin(cx) {
                done = true;
                stopped.store(true, Ordering::SeqCst);
                return Poll::Ready(Some(Err(error(why))));
            }
            if pending.is_empty() {
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(chunk)) => pending.extend(chunk),
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => return Poll::Pending,
                }
            }
            let next = pending.pop_front();
            if let Some(Err(_)) = &next {
                stopped.store(true, Ordering::SeqCst);
            }
            Poll::Ready(next)
        }));
        Response::Query(query)
    }
}

/// Aborts the task when dropped.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
