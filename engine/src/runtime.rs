//! The query runtime: the threads that run DataFusion's work, apart from the server's.
//!
//! ```text
//!  server runtime (tokio::main)            query runtime ("amoeba-query" threads)
//!  ───────────────────────────             ──────────────────────────────────────
//!  accept, TLS, startup, SCRAM             planning (entered while it is polled)
//!  each connection's messages     ──────►  DataFusion's tasks (scans, repartitions,
//!  CancelRequest ─► stop signal            joins, aggregates), the row encoding
//!  statement_timeout timers       ◄──────  rows, batch by batch, through a channel
//! ```
//!
//! DataFusion's operators compute inside a poll for as long as their input is ready, and
//! spawn their partitions as tasks on whatever runtime polls them. On the server's runtime a
//! few heavy queries would take every worker thread, and then nothing else is polled: not
//! the accept loop, not a psql Ctrl-C (a cancel request arrives on a new connection), not the
//! timer of `statement_timeout`, not the light queries of the other clients. So every
//! statement's planning and execution run on a runtime of their own, and the server's threads
//! stay free to take connections and to stop statements.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use tokio::runtime::{Builder, Handle, Runtime};

/// The query runtime, made on first use with a worker per core; the server's statements and
/// the refreshes (spawn `Refresher::poll` on it) run there. If it cannot be made (no threads
/// left), the work runs on the caller's runtime, as it would without it.
pub fn query_runtime() -> Handle {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("amoeba-query")
            .enable_all()
            .build()
            .inspect_err(|e| log::warn!("no query runtime ({e}): queries share the server's"))
            .ok()
    });
    match runtime {
        Some(runtime) => runtime.handle().clone(),
        None => Handle::current(),
    }
}

/// A future polled inside the query runtime's context: the tasks it spawns (DataFusion's
/// partitions) and the timers it makes belong to that runtime, while the future itself stays
/// where it is (it may borrow the connection, so it cannot be moved to another runtime).
pub(crate) struct InQueryRuntime<F> {
    runtime: Handle,
    inner: Pin<Box<F>>,
}

impl<F: Future> InQueryRuntime<F> {
    pub(crate) fn new(inner: F) -> Self {
        InQueryRuntime {
            runtime: query_runtime(),
            inner: Box::pin(inner),
        }
    }
}

impl<F: Future> Future for InQueryRuntime<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let _entered = this.runtime.enter();
        this.inner.as_mut().poll(cx)
    }
}

/// Makes joins yield to the runtime between their output batches.
///
/// DataFusion's sources yield (they spend tokio's task budget per batch), but a join may
/// produce a great many batches from each input batch — a cross join of in-memory sides never
/// polls a source again for minutes — and the operator above it (an aggregate) keeps polling
/// it inside one poll of the task. Such a task never returns to the runtime, so when its
/// statement is cancelled or times out, the abort cannot take effect and the work goes on,
/// holding a query thread. Wrapped in `CooperativeExec`, a join spends the budget per batch and
/// the task yields regularly; the cost is an atomic decrement per batch.
#[derive(Debug, Default)]
pub(crate) struct CooperativeJoins;

impl CooperativeJoins {
    /// Joins by their operator's name: `HashJoinExec`, `CrossJoinExec`, `NestedLoopJoinExec`,
    /// `SortMergeJoinExec`, `SymmetricHashJoinExec`, `PiecewiseMergeJoinExec`.
    fn is_join(plan: &Arc<dyn ExecutionPlan>) -> bool {
        plan.name().ends_with("JoinExec")
    }

    fn cooperative(plan: &Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
        if Self::is_join(plan) {
            Arc::new(CooperativeExec::new(Arc::clone(plan)))
        } else {
            Arc::clone(plan)
        }
    }
}

impl PhysicalOptimizerRule for CooperativeJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        // Each node wraps its join children (so a join already wrapped is not wrapped again).
        let plan = plan
            .transform_up(|node| {
                let children = node.children();
                if !children.iter().any(|c| Self::is_join(c)) {
                    return Ok(Transformed::no(node));
                }
                let children = children.into_iter().map(Self::cooperative).collect();
                Ok(Transformed::yes(node.replace_children(
                    children,
                    ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
                )?))
            })?
            .data;
        Ok(Self::cooperative(&plan))
    }

    fn name(&self) -> &str {
        "amoeba_cooperative_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
