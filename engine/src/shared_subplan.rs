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
//! A copy can also differ from the others by a filter on its group keys: in
//!
//! ```text
//!  WITH a AS (SELECT unit_id, account, SUM(amount) … GROUP BY unit_id, account),
//!       ns AS (SELECT unit_id, SUM(amount) FROM a WHERE account IN (…) GROUP BY unit_id)
//!  SELECT … FROM a LEFT JOIN ns …
//! ```
//!
//! DataFusion pushes `account IN (…)` through the aggregate into one copy's scan, and the two
//! copies print differently. A filter on group keys only chooses groups, it does not change
//! what a group sums, so such a copy is the other copy's result filtered: when a plan holds the
//! same aggregate without the scan's predicate, the filtered copy becomes a `FilterExec` (the
//! predicate, over the aggregate's group columns) above a reader of the shared one. This is
//! done only for an aggregate over one file scan, through nothing but repartitions and a
//! partial aggregate, and a predicate whose every column is a group key taken unchanged from
//! the scan.
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

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::ArrayData;
use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::logical_expr::Volatility;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::repartition::RepartitionExec;
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

    /// For a shareable aggregate whose only scan filters on its group keys: the [`Self::shape`]
    /// of the same aggregate without that filter, and the filter over the aggregate's output.
    fn filtered_copy(
        node: &Arc<dyn ExecutionPlan>,
    ) -> Result<Option<(String, Arc<dyn PhysicalExpr>)>> {
        let Some(key) = Self::key(node)? else {
            return Ok(None);
        };
        let Some(aggregate) = node.downcast_ref::<AggregateExec>() else {
            return Ok(None);
        };
        let group_by = aggregate.group_expr();
        if !group_by.is_single() || group_by.is_empty() {
            return Ok(None);
        }
        // Down to the scan through repartitions and (at most) the partial aggregate.
        let mut innermost = aggregate;
        let mut below = aggregate.input();
        let scan = loop {
            if let Some(scan) = below.downcast_ref::<DataSourceExec>() {
                break scan;
            }
            if let Some(partial) = below.downcast_ref::<AggregateExec>() {
                if !matches!(partial.mode(), AggregateMode::Partial)
                    || !std::ptr::eq(innermost, aggregate)
                {
                    return Ok(None);
                }
                innermost = partial;
                below = partial.input();
                continue;
            }
            let passes_rows = below.downcast_ref::<RepartitionExec>().is_some()
                || below.downcast_ref::<CoalescePartitionsExec>().is_some();
            match below.children().as_slice() {
                [child] if passes_rows => below = child,
                _ => return Ok(None),
            }
        };
        let Some(files) = scan.data_source().downcast_ref::<FileScanConfig>() else {
            return Ok(None);
        };
        let source = files.file_source();
        let Some(predicate) = source.filter() else {
            return Ok(None);
        };
        // The group key of each scan column the predicate reads (the predicate is over the
        // table's schema, the group columns come first in the aggregate's output, in order).
        let scanned_as_is = |name: &str| match source.projection() {
            None => true,
            Some(projection) => projection.as_ref().iter().any(|p| {
                p.alias == name
                    && p.expr
                        .downcast_ref::<Column>()
                        .is_some_and(|c| c.name() == name)
            }),
        };
        let group_column = |name: &str| -> Option<usize> {
            let i = group_by
                .expr()
                .iter()
                .position(|(_, alias)| alias == name)?;
            let (inner, inner_alias) = innermost.group_expr().expr().get(i)?;
            let plain = inner
                .downcast_ref::<Column>()
                .is_some_and(|c| c.name() == name);
            (plain && inner_alias == name && scanned_as_is(name)).then_some(i)
        };
        let mut all_group_keys = true;
        let over_output = Arc::clone(&predicate)
            .transform(|e| match e.downcast_ref::<Column>() {
                Some(c) => match group_column(c.name()) {
                    Some(i) => Ok(Transformed::yes(
                        Arc::new(Column::new(c.name(), i)) as Arc<dyn PhysicalExpr>
                    )),
                    None => {
                        all_group_keys = false;
                        Ok(Transformed::no(e))
                    }
                },
                None => Ok(Transformed::no(e)),
            })?
            .data;
        if !all_group_keys {
            return Ok(None);
        }
        // The same text without the predicate (which the scan prints last on its line).
        let needle = format!(", predicate={predicate}");
        let Some(at) = key.find(&needle) else {
            return Ok(None);
        };
        if key[at + needle.len()..].contains(&needle) {
            return Ok(None);
        }
        let end = key[at..].find('\n').map_or(key.len(), |n| at + n);
        let unfiltered = format!("{}{}", &key[..at], &key[end..]);
        Ok(Some((Self::shape(&unfiltered), over_output)))
    }

    /// A key without what only says how rows are spread between partitions: the round-robin
    /// repartitions and the input partition counts, which DataFusion chooses from a scan's
    /// estimated size (a filtered copy may get a round-robin step the other lacks), and the
    /// indentation. Used only to match chains (no node with two children), whose lines alone
    /// give the tree; the output partitioning is compared separately.
    fn shape(key: &str) -> String {
        const INPUT_PARTITIONS: &str = ", input_partitions=";
        let mut shape = String::with_capacity(key.len());
        for line in key.lines().map(str::trim) {
            if line.starts_with("RepartitionExec: partitioning=RoundRobinBatch(") {
                continue;
            }
            let mut rest = line;
            while let Some(at) = rest.find(INPUT_PARTITIONS) {
                shape.push_str(&rest[..at]);
                rest = rest[at + INPUT_PARTITIONS.len()..]
                    .trim_start_matches(|c: char| c.is_ascii_digit());
            }
            shape.push_str(rest);
            shape.push('\n');
        }
        shape
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
        // Each shareable aggregate by its text (the first occurrence kept), and the filtered
        // copies by the text of the aggregate they filter.
        let mut occurrences: HashMap<String, (usize, Arc<dyn ExecutionPlan>)> = HashMap::new();
        let mut by_shape: HashMap<String, String> = HashMap::new();
        let mut copies: Vec<(String, Arc<dyn ExecutionPlan>)> = Vec::new();
        plan.apply(|node| {
            if let Some(key) = Self::key(node)? {
                by_shape
                    .entry(Self::shape(&key))
                    .or_insert_with(|| key.clone());
                occurrences.entry(key).or_insert((0, Arc::clone(node))).0 += 1;
            }
            if let Some((shape, _)) = Self::filtered_copy(node)? {
                copies.push((shape, Arc::clone(node)));
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        // A filtered copy reads the first aggregate of its shape without the filter, when that
        // gives the rows in the same columns, partitions and order (a copy filtered on
        // `account = 'x'` may be known sorted by account, and its reader rely on it).
        let unfiltered_of = |shape: &str, copy: &Arc<dyn ExecutionPlan>| -> Option<String> {
            let key = by_shape.get(shape)?;
            let (_, first) = occurrences.get(key)?;
            let same = first.schema() == copy.schema()
                && first.properties().partitioning == copy.properties().partitioning
                && first.properties().output_ordering() == copy.properties().output_ordering();
            same.then(|| key.clone())
        };
        let mut filtered_copies: HashMap<String, usize> = HashMap::new();
        for (shape, copy) in &copies {
            if let Some(key) = unfiltered_of(shape, copy) {
                *filtered_copies.entry(key).or_default() += 1;
            }
        }
        let readers = |key: &str| match occurrences.get(key) {
            Some((n, _)) => n + filtered_copies.get(key).copied().unwrap_or(0),
            None => 0,
        };
        if occurrences.keys().all(|key| readers(key) < 2) {
            return Ok(plan);
        }
        let shareable: HashMap<String, Arc<dyn ExecutionPlan>> = occurrences
            .iter()
            .filter(|(key, _)| readers(key) >= 2)
            .map(|(key, (_, first))| (key.clone(), Arc::clone(first)))
            .collect();
        let filtered: HashMap<String, String> = copies
            .iter()
            .filter_map(|(shape, copy)| {
                let unfiltered = unfiltered_of(shape, copy)?;
                shareable
                    .contains_key(&unfiltered)
                    .then(|| (shape.clone(), unfiltered))
            })
            .collect();
        let mut sharer = Sharer {
            shareable,
            filtered,
            shared: HashMap::new(),
        };
        sharer.share(plan)
    }

    fn name(&self) -> &str {
        "amoeba_share_repeated_aggregates"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Replaces the shareable aggregates of a plan by readers, each shared subtree built once.
///
/// A repeated aggregate may hold another (`um` over `f`, both repeated): the subtree a reader
/// runs is itself rewritten, so the inner aggregate inside it is a reader too, and every node
/// of the final plan is executed by one parent only (a `RepartitionExec` executed twice for
/// the same partition panics).
struct Sharer {
    /// The first occurrence of every aggregate that is read at least twice, by its key.
    shareable: HashMap<String, Arc<dyn ExecutionPlan>>,
    /// The filtered copies that read a shared aggregate, by shape: that aggregate's key.
    filtered: HashMap<String, String>,
    /// The shared subtrees built so far (rewritten) and their results, by key.
    shared: HashMap<String, (Arc<dyn ExecutionPlan>, Arc<SharedResults>)>,
}

impl Sharer {
    /// `plan` with its outermost shareable aggregates (and filtered copies) replaced.
    fn share(&mut self, plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(plan
            .transform_down(|node| {
                if let Some((shape, predicate)) = ShareRepeatedAggregates::filtered_copy(&node)?
                    && let Some(unfiltered) = self.filtered.get(&shape).cloned()
                {
                    let exec = self.reader(&unfiltered)?;
                    let filter = FilterExec::try_new(predicate, Arc::new(exec))?;
                    return Ok(Transformed::new(
                        Arc::new(filter),
                        true,
                        TreeNodeRecursion::Jump,
                    ));
                }
                match ShareRepeatedAggregates::key(&node)? {
                    Some(key) if self.shareable.contains_key(&key) => Ok(Transformed::new(
                        Arc::new(self.reader(&key)?),
                        true,
                        TreeNodeRecursion::Jump,
                    )),
                    _ => Ok(Transformed::no(node)),
                }
            })?
            .data)
    }

    /// A new reader of the shared aggregate `key` (its subtree rewritten the first time).
    fn reader(&mut self, key: &str) -> Result<SharedExec> {
        if let Some((input, results)) = self.shared.get(key) {
            return Ok(SharedExec::new(Arc::clone(input), Arc::clone(results)));
        }
        let Some(first) = self.shareable.get(key).cloned() else {
            return Err(DataFusionError::Internal(
                "SharedExec: no aggregate for a shared key".to_string(),
            ));
        };
        // The subtree's own children are rewritten (the node itself is this key's: it stays).
        let children = first
            .children()
            .into_iter()
            .map(|child| self.share(Arc::clone(child)))
            .collect::<Result<Vec<_>>>()?;
        let input = replace_children_if_necessary(first, children)?;
        let results = Arc::new(SharedResults::default());
        self.shared
            .insert(key.to_string(), (Arc::clone(&input), Arc::clone(&results)));
        Ok(SharedExec::new(input, results))
    }
}

/// The memory a partition's batches hold, each buffer counted once.
///
/// An aggregate emits its groups as one batch that DataFusion then slices into batches of
/// `batch_size` rows; every slice shares the whole batch's buffers, and
/// `RecordBatch::get_array_memory_size` counts them in full for each slice: a partition of
/// n slices counted n times what it holds. At scale 10 the two partitions of the aggregate that
/// benches/queries/08 shares counted as 4 GB, and the query failed at the server's 4 GiB limit
/// a query may use. Here a buffer is counted by its allocation, the first time a batch refers
/// to it.
#[derive(Debug, Default)]
struct HeldBuffers {
    /// The start of every allocation counted so far.
    seen: HashSet<usize>,
}

impl HeldBuffers {
    /// The bytes of `batch`'s buffers not counted before.
    fn add(&mut self, batch: &RecordBatch) -> usize {
        batch
            .columns()
            .iter()
            .map(|column| self.add_data(&column.to_data()))
            .sum()
    }

    fn add_data(&mut self, data: &ArrayData) -> usize {
        let mut bytes = 0;
        for buffer in data.buffers() {
            bytes += self.add_buffer(buffer);
        }
        if let Some(nulls) = data.nulls() {
            bytes += self.add_buffer(nulls.buffer());
        }
        for child in data.child_data() {
            bytes += self.add_data(child);
        }
        bytes
    }

    fn add_buffer(&mut self, buffer: &Buffer) -> usize {
        if self.seen.insert(buffer.data_ptr().as_ptr() as usize) {
            buffer.capacity()
        } else {
            0
        }
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
            let mut held = HeldBuffers::default();
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                reservation.try_grow(held.add(&batch))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Decimal128Array, Int64Array, StringArray};

    fn batch(rows: usize) -> RecordBatch {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows as i64));
        let names: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| format!("sku-{i:08}")),
        ));
        let amounts: ArrayRef = Arc::new(
            Decimal128Array::from_iter((0..rows).map(|i| (i % 7 != 0).then_some(i as i128)))
                .with_precision_and_scale(38, 2)
                .expect("decimal"),
        );
        RecordBatch::try_from_iter([("id", ids), ("sku", names), ("amount", amounts)])
            .expect("batch")
    }

    #[test]
    fn slices_of_one_batch_count_its_buffers_once() {
        let whole = batch(100_000);
        let mut held = HeldBuffers::default();
        let sliced: usize = (0..100)
            .map(|i| held.add(&whole.slice(i * 1_000, 1_000)))
            .sum();
        // 8 + 16 bytes a row, the strings (12 bytes each) and their offsets, two null bitmaps.
        let exact = whole.get_array_memory_size();
        assert!(sliced <= exact && sliced > exact / 2, "{sliced} of {exact}");
        // Counted per slice, as before: a hundred times over.
        let naive: usize = (0..100)
            .map(|i| whole.slice(i * 1_000, 1_000).get_array_memory_size())
            .sum();
        assert!(naive > 50 * exact, "{naive} against {exact}");
        // Separate batches are each counted.
        let other = batch(1_000);
        assert_eq!(
            held.add(&other),
            HeldBuffers::default().add(&other),
            "a new batch's buffers are new"
        );
        assert!(held.add(&other) == 0, "and counted once");
    }
}
