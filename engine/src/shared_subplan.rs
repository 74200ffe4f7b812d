//! Shared subplans: an aggregate that a query computes more than once is computed once.
//!
//! DataFusion inlines a common table expression wherever it is referenced (apache/datafusion
//! #8777), so the analyst's way of writing a share of a total — an aggregate `a`, its total
//! over `a`, and `a` joined to that total — scans and aggregates the ledger twice:
//!
//! ```text
//!  WITH a AS (SELECT account, unit_id, SUM(amount) … GROUP BY …),
//!       pool AS (SELECT account, SUM(amount) FROM a GROUP BY account)
//!  SELECT … FROM a JOIN pool …
//!
//!  before                                   after
//!  HashJoinExec                             HashJoinExec
//!    AggregateExec ◄─ scan ledger             SharedExec ───────────┐ one task per partition
//!    AggregateExec                            AggregateExec         │ runs the aggregate once;
//!      AggregateExec ◄─ scan ledger again       SharedExec ◄────────┘ both readers replay its
//!                                                                     batches
//! ```
//!
//! [`ShareRepeatedAggregates`] finds final aggregates that occur more than once in a physical
//! plan with the same text (operators, expressions, files, projections and predicates, in
//! `EXPLAIN VERBOSE` form) and replaces each occurrence by a [`SharedExec`] over one of them.
//! Only subtrees that give the same rows whenever they run are shared: every leaf a file scan
//! (or an empty or one-row source), no volatile function (`random()`), no dynamic filter. An
//! in-memory table is never shared: two different tables of the same size print alike.
//!
//! `SET amoeba.share_subplans = false` turns the rule off, for comparison.
//!
//! The rule runs before DataFusion's last filter pushdown, which gives a join's dynamic filter
//! to the scan under its probe side: that filter would make the copies differ (one pruned by
//! the join, the other not), and a `SharedExec` takes no filter from above, so the shared
//! aggregate is computed whole, once.
//!
//! Each partition of the shared subtree runs in a task of its own the first time a reader asks
//! for it, not inside that reader's poll: a hash join collects its build side before it polls
//! its probe side, so a probe-side reader that started the work and is not polled must not
//! hold up the build-side reader waiting for it. The buffered batches count against the
//! query's memory pool (a query over its limit fails as any other would), and are let go as
//! soon as every reader has taken its partition.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::logical_expr::Volatility;
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
    displayable,
};
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt, TryStreamExt};

use crate::cube::AmoebaOptions;

/// The name of the physical optimizer rule this one runs before.
pub(crate) const RUNS_BEFORE: &str = "FilterPushdown(Post)";

/// Replaces the repeated final aggregates of a plan by [`SharedExec`]s (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct ShareRepeatedAggregates;

impl ShareRepeatedAggregates {
    /// The text that identifies a shareable subtree, or `None` when `node` is not one.
    fn key(node: &Arc<dyn ExecutionPlan>) -> Result<Option<String>> {
        let Some(aggregate) = node.downcast_ref::<AggregateExec>() else {
            return Ok(None);
        };
        let is_final = matches!(
            aggregate.mode(),
            AggregateMode::Final
                | AggregateMode::FinalPartitioned
                | AggregateMode::Single
                | AggregateMode::SinglePartitioned
        );
        if !is_final || !Self::repeatable(node)? {
            return Ok(None);
        }
        Ok(Some(displayable(node.as_ref()).indent(true).to_string()))
    }

    /// Whether the subtree gives the same rows each time it runs, and its text says what it
    /// reads.
    fn repeatable(plan: &Arc<dyn ExecutionPlan>) -> Result<bool> {
        let mut repeatable = true;
        plan.apply(|node| {
            let text = displayable(node.as_ref()).one_line().to_string();
            let leaf_ok = !node.children().is_empty()
                || matches!(node.name(), "EmptyExec" | "PlaceholderRowExec")
                || (node.name() == "DataSourceExec" && text.contains("file_type="));
            let mut volatile = false;
            node.apply_expressions(&mut |expr: &Arc<dyn PhysicalExpr>| {
                expr.apply(|e| {
                    let is_volatile = e
                        .downcast_ref::<ScalarFunctionExpr>()
                        .is_some_and(|f| f.fun().signature().volatility == Volatility::Volatile);
                    volatile |= is_volatile;
                    Ok(if is_volatile {
                        TreeNodeRecursion::Stop
                    } else {
                        TreeNodeRecursion::Continue
                    })
                })
            })?;
            if !leaf_ok || volatile || text.contains("DynamicFilter") {
                repeatable = false;
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        Ok(repeatable)
    }
}

impl PhysicalOptimizerRule for ShareRepeatedAggregates {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !AmoebaOptions::of(config).share_subplans {
            return Ok(plan);
        }
        let mut occurrences: HashMap<String, usize> = HashMap::new();
        plan.apply(|node| {
            if let Some(key) = Self::key(node)? {
                *occurrences.entry(key).or_default() += 1;
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if occurrences.values().all(|n| *n < 2) {
            return Ok(plan);
        }
        // The outermost repeated aggregates are shared; what is inside them runs once anyway.
        let mut shared: HashMap<String, (Arc<dyn ExecutionPlan>, Arc<SharedResults>)> =
            HashMap::new();
        let plan = plan
            .transform_down(|node| {
                let Some(key) = Self::key(&node)? else {
                    return Ok(Transformed::no(node));
                };
                if occurrences.get(&key).copied().unwrap_or(0) < 2 {
                    return Ok(Transformed::no(node));
                }
                let (input, results) = shared
                    .entry(key)
                    .or_insert_with(|| (Arc::clone(&node), Arc::new(SharedResults::default())));
                let exec = SharedExec::new(Arc::clone(input), Arc::clone(results));
                Ok(Transformed::new(
                    Arc::new(exec),
                    true,
                    TreeNodeRecursion::Jump,
                ))
            })?
            .data;
        Ok(plan)
    }

    fn name(&self) -> &str {
        "amoeba_share_repeated_aggregates"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// What a partition computed: its batches, counted in the query's memory pool.
#[derive(Debug)]
struct Materialized {
    batches: Vec<RecordBatch>,
    _reservation: MemoryReservation,
}

type Outcome = std::result::Result<Arc<Materialized>, Arc<DataFusionError>>;

/// A partition's result, awaited by every reader that asks for it.
type SharedOutcome = Shared<BoxFuture<'static, Outcome>>;

/// The partitions of one shared subtree, computed or being computed, and how many readers
/// (`SharedExec`s) share them.
#[derive(Default)]
struct SharedResults {
    readers: AtomicUsize,
    /// Per partition: its result and how many readers took it (dropped when all have).
    partitions: Mutex<HashMap<usize, (SharedOutcome, usize)>>,
}

impl fmt::Debug for SharedResults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedResults")
            .field("readers", &self.readers.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// One reader of a subtree that runs once for all its readers (see the module docs).
#[derive(Debug)]
pub(crate) struct SharedExec {
    input: Arc<dyn ExecutionPlan>,
    results: Arc<SharedResults>,
}

impl SharedExec {
    fn new(input: Arc<dyn ExecutionPlan>, results: Arc<SharedResults>) -> SharedExec {
        results.readers.fetch_add(1, Ordering::Relaxed);
        SharedExec { input, results }
    }

    /// Starts computing `partition` in a task of its own.
    fn start(&self, partition: usize, context: &Arc<TaskContext>) -> Result<SharedOutcome> {
        let mut stream = self.input.execute(partition, Arc::clone(context))?;
        let reservation =
            MemoryConsumer::new(format!("SharedExec[{partition}]")).register(context.memory_pool());
        let task = SpawnedTask::spawn(async move {
            let mut batches = Vec::new();
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                reservation.try_grow(batch.get_array_memory_size())?;
                batches.push(batch);
            }
            Ok::<_, DataFusionError>(Materialized {
                batches,
                _reservation: reservation,
            })
        });
        Ok(async move {
            match task.join().await {
                Ok(Ok(done)) => Ok(Arc::new(done)),
                Ok(Err(e)) => Err(Arc::new(e)),
                Err(e) => Err(Arc::new(DataFusionError::ExecutionJoin(Box::new(e)))),
            }
        }
        .boxed()
        .shared())
    }
}

impl DisplayAs for SharedExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SharedExec: computed once for {} readers",
            self.results.readers.load(Ordering::Relaxed)
        )
    }
}

impl ExecutionPlan for SharedExec {
    fn name(&self) -> &str {
        "SharedExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // A later rule may rebuild the subtree under a reader (equivalent by the rule's
        // contract): the readers still share one result, whichever of them computes it.
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(SharedExec {
                input,
                results: Arc::clone(&self.results),
            })),
            _ => Err(DataFusionError::Internal(
                "SharedExec takes exactly one child".to_string(),
            )),
        }
    }

    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        // A plan run again (after `reset_plan_states`) computes again: nothing a reader of
        // the last run left behind (one that stopped early) is served.
        Ok(Arc::new(SharedExec::new(
            Arc::clone(&self.input),
            Arc::new(SharedResults::default()),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let result = {
            let mut partitions = self.results.partitions.lock().map_err(|_| {
                DataFusionError::Internal("SharedExec: a reader panicked".to_string())
            })?;
            let (result, taken) = match partitions.remove(&partition) {
                Some((result, taken)) => (result, taken + 1),
                None => (self.start(partition, &context)?, 1),
            };
            // Kept until every reader has taken it; a plan run again computes it again.
            if taken < self.results.readers.load(Ordering::Relaxed) {
                partitions.insert(partition, (result.clone(), taken));
            }
            result
        };
        let batches = futures::stream::once(result)
            .map(|outcome| match outcome {
                Ok(done) => Ok(futures::stream::iter(
                    done.batches.clone().into_iter().map(Ok),
                )),
                Err(e) => Err(DataFusionError::Shared(e)),
            })
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            batches,
        )))
    }
}
