//! Run aggregation: a grouped aggregate over input already sorted on its group keys, without
//! a hash table.
//!
//! The ledger is written sorted (account, unit_id, …), so a month's rows of one unit and one
//! account lie next to each other. DataFusion sees the order and runs its aggregate in
//! `ordering_mode=Sorted`, which emits each group as soon as the next begins — but it still
//! finds every row's group by hashing its keys and comparing them with the group's stored
//! ones: for `GROUP BY unit_id, account` over a month at scale 10 (6.16 M rows, 141 groups)
//! that is 142 ms of the query's 200, where reading and decoding the Parquet takes 55.
//!
//! On sorted input a group is a run of equal keys. [`RunAggregateExec`] finds the runs by
//! comparing each row's keys with the row before (Arrow's `partition` kernel, a vectorized
//! comparison of the column against itself shifted by one), numbers them, and hands the
//! numbers to DataFusion's own `GroupsAccumulator`s (the same accumulators, the same
//! results, state and types as `AggregateExec`):
//!
//! ```text
//!  unit_id  account   amount      run   group index      accumulators (sum)
//!  U01      cogs       -10.00     ─┐                        0: -35.00  ◄─ U01 cogs
//!  U01      cogs       -25.00      │ 0   0                  1: 990.00  ◄─ U01 gross_sales
//!  U01      gross_s…   500.00     ─┤                            (kept open: the next
//!  ═══════════ batch boundary ═════│ 1   1                       batch may continue it)
//!  U01      gross_s…   490.00      │     1 (same keys as the
//!  U02      cogs        -7.00     ─┘ 2   2   last row before)
//! ```
//!
//! Input sorted on some of the keys only (`ordering_mode=PartiallySorted`: `GROUP BY account,
//! source` over the ledger, sorted by account but not by source) comes in stretches of equal
//! sorted keys, in which the runs of the other keys recur in any order. A run's group is then
//! looked up by its keys (Arrow's row format) among the stretch's groups: a hash lookup per
//! run, not per row. When the sorted keys change, the stretch's groups are complete.
//!
//! A run may go on into the next batch, so the last group stays open: its keys are compared
//! with the next batch's first row. Every group before it is complete, and groups are emitted
//! (`EmitTo::First`) once a batch's worth are complete, and all at the end: the output is in
//! the input's order and holds at most a batch and a half of groups in memory.
//!
//! [`RunAggregates`] replaces an `AggregateExec` by a [`RunAggregateExec`] when it reads raw
//! rows (`Partial`, `Single`, `SinglePartitioned`), in `ordering_mode=Sorted` or
//! `PartiallySorted` (keys Arrow's row format takes), with one grouping (no `GROUPING SETS`), no limit and no dynamic
//! filter, and every aggregate has a `GroupsAccumulator`, is not `DISTINCT` and needs no input
//! order. `SET amoeba.run_aggregation = false` keeps DataFusion's aggregate, for comparison.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array, make_comparator,
    new_null_array,
};
use datafusion::arrow::compute::kernels::partition::partition;
use datafusion::arrow::compute::{SortOptions, concat, take};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputOrderMode, PlanProperties, RecordBatchStream,
    SendableRecordBatchStream,
};
use futures::{Stream, StreamExt};

use crate::cube::AmoebaOptions;

/// Replaces the aggregates over input sorted on their group keys by [`RunAggregateExec`]s
/// (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct RunAggregates;

impl PhysicalOptimizerRule for RunAggregates {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !AmoebaOptions::of(config).run_aggregation {
            return Ok(plan);
        }
        Ok(plan
            .transform_up(|node| {
                let Some(aggregate) = node.downcast_ref::<AggregateExec>() else {
                    return Ok(Transformed::no(node));
                };
                match RunAggregateExec::try_new(Arc::new(aggregate.clone())) {
                    Some(run) => Ok(Transformed::yes(Arc::new(run) as Arc<dyn ExecutionPlan>)),
                    None => Ok(Transformed::no(node)),
                }
            })?
            .data)
    }

    fn name(&self) -> &str {
        "amoeba_run_aggregates"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// A grouped aggregate over input sorted on its group keys: each run of equal keys is a
/// group (see the module docs). It computes what the `AggregateExec` it replaces would, with
/// that aggregate's schema, partitioning and ordering.
#[derive(Debug)]
pub(crate) struct RunAggregateExec {
    /// The aggregate this one replaces: its expressions, schema and properties (and the way
    /// back when a later rule changes the input).
    aggregate: Arc<AggregateExec>,
    metrics: ExecutionPlanMetricsSet,
}

impl RunAggregateExec {
    /// A run aggregate in place of `aggregate`, or `None` when it cannot be one.
    fn try_new(aggregate: Arc<AggregateExec>) -> Option<Self> {
        let raw_input = matches!(
            aggregate.mode(),
            AggregateMode::Partial | AggregateMode::Single | AggregateMode::SinglePartitioned
        );
        let group_by = aggregate.group_expr();
        let accumulable = aggregate.aggr_expr().iter().all(|a| {
            !a.is_distinct() && a.order_bys().is_empty() && a.groups_accumulator_supported()
        });
        // The runs are found by comparing keys (Arrow's `partition`, `make_comparator`): a
        // key type they do not take leaves the aggregate to DataFusion instead of failing
        // when it runs.
        let key_types = Self::key_types(&aggregate)?;
        let ordered = key_types.iter().all(Self::runs_can_compare)
            && match aggregate.input_order_mode() {
                InputOrderMode::Sorted => true,
                InputOrderMode::PartiallySorted(sorted) => {
                    !sorted.is_empty()
                        && RowConverter::supports_fields(
                            &key_types
                                .into_iter()
                                .map(SortField::new)
                                .collect::<Vec<_>>(),
                        )
                }
                InputOrderMode::Linear => false,
            };
        let applies = raw_input
            && ordered
            && group_by.is_single()
            && !group_by.expr().is_empty()
            && aggregate.limit_options().is_none()
            && aggregate.dynamic_expressions_produced().is_empty()
            && accumulable;
        applies.then(|| RunAggregateExec {
            aggregate,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// Whether the run kernels compare keys of type `key` (tried on two nulls).
    fn runs_can_compare(key: &DataType) -> bool {
        let nulls = new_null_array(key, 2);
        make_comparator(nulls.as_ref(), nulls.as_ref(), SortOptions::default()).is_ok()
            && partition(&[nulls]).is_ok()
    }

    /// The types of the group keys (`None` if one cannot be typed).
    fn key_types(aggregate: &AggregateExec) -> Option<Vec<DataType>> {
        let input = aggregate.input_schema();
        aggregate
            .group_expr()
            .expr()
            .iter()
            .map(|(e, _)| e.data_type(&input).ok())
            .collect()
    }

    /// Whether the output holds the aggregates' states (a partial aggregate) rather than their
    /// values.
    fn emits_state(&self) -> bool {
        matches!(self.aggregate.mode(), AggregateMode::Partial)
    }
}

impl DisplayAs for RunAggregateExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups: Vec<String> = self
            .aggregate
            .group_expr()
            .expr()
            .iter()
            .map(|(e, alias)| {
                let e = e.to_string();
                if e == *alias {
                    e
                } else {
                    format!("{e} as {alias}")
                }
            })
            .collect();
        let aggregates: Vec<&str> = self
            .aggregate
            .aggr_expr()
            .iter()
            .map(|a| a.name())
            .collect();
        write!(
            f,
            "RunAggregateExec: mode={:?}, gby=[{}], aggr=[{}]",
            self.aggregate.mode(),
            groups.join(", "),
            aggregates.join(", ")
        )
    }
}

impl ExecutionPlan for RunAggregateExec {
    fn name(&self) -> &str {
        "RunAggregateExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.aggregate.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.aggregate.input()]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.aggregate.apply_expressions(f)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // The aggregate rebuilt over the new input decides again: if the input is no longer
        // sorted on the keys, it stays an `AggregateExec`.
        let rebuilt = Arc::clone(&self.aggregate).replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )?;
        let Some(aggregate) = rebuilt.downcast_ref::<AggregateExec>() else {
            return Ok(rebuilt);
        };
        match RunAggregateExec::try_new(Arc::new(aggregate.clone())) {
            Some(run) => Ok(Arc::new(run)),
            None => Ok(rebuilt),
        }
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self
            .aggregate
            .input()
            .execute(partition, Arc::clone(&context))?;
        let aggregates = self.aggregate.aggr_expr();
        let accumulators = aggregates
            .iter()
            .map(|a| a.create_groups_accumulator())
            .collect::<Result<Vec<_>>>()?;
        let stretches = match self.aggregate.input_order_mode() {
            InputOrderMode::PartiallySorted(sorted) => {
                let types = Self::key_types(&self.aggregate).ok_or_else(|| {
                    DataFusionError::Internal("RunAggregateExec: untyped group key".to_string())
                })?;
                Some(Stretches::new(sorted.clone(), types)?)
            }
            _ => None,
        };
        Ok(Box::pin(RunAggregateStream {
            input,
            schema: self.schema(),
            emits_state: self.emits_state(),
            group_exprs: self
                .aggregate
                .group_expr()
                .expr()
                .iter()
                .map(|(e, _)| Arc::clone(e))
                .collect(),
            arguments: aggregates.iter().map(|a| a.expressions()).collect(),
            names: aggregates.iter().map(|a| a.name().to_string()).collect(),
            filters: self.aggregate.filter_expr().to_vec(),
            accumulators,
            keys: Vec::new(),
            groups: 0,
            stretches,
            batch_size: context.session_config().batch_size(),
            finished: false,
            baseline: BaselineMetrics::new(&self.metrics, partition),
        }))
    }
}

/// Row numbers as `take` indices.
fn row_indices(rows: impl Iterator<Item = usize>) -> Result<UInt32Array> {
    let rows = rows
        .map(|row| {
            u32::try_from(row).map_err(|_| {
                DataFusionError::Execution(format!("RunAggregateExec: row {row} is over 2^32"))
            })
        })
        .collect::<Result<Vec<u32>>>()?;
    Ok(UInt32Array::from(rows))
}

/// Whether rows `a` and `b` of the key columns have the same keys (nulls equal nulls, as in a
/// `GROUP BY`).
fn same_keys(keys: &[ArrayRef], a: usize, b: usize) -> Result<bool> {
    for key in keys {
        let compare = make_comparator(key.as_ref(), key.as_ref(), SortOptions::default())?;
        if !compare(a, b).is_eq() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Grouping runs when the input is sorted on some of the keys only (DataFusion's
/// `PartiallySorted`): a stretch of rows with the same sorted keys holds its groups' runs in
/// any order, so a run's group is looked up by its keys (in Arrow's row format) among the
/// stretch's groups — once per run, not per row. When the sorted keys change, the stretch's
/// groups are complete.
struct Stretches {
    /// The sorted keys, by their place among the group keys.
    sorted: Vec<usize>,
    converter: RowConverter,
    /// The current stretch's groups by their keys (row format).
    groups_by_keys: HashMap<Box<[u8]>, usize>,
    /// The current stretch's first group: those before it are complete.
    first_group: usize,
    /// The sorted keys of the last row seen (one-row arrays).
    last_sorted: Option<Vec<ArrayRef>>,
}

impl Stretches {
    fn new(sorted: Vec<usize>, key_types: Vec<DataType>) -> Result<Self> {
        Ok(Stretches {
            sorted,
            converter: RowConverter::new(key_types.into_iter().map(SortField::new).collect())?,
            groups_by_keys: HashMap::new(),
            first_group: 0,
            last_sorted: None,
        })
    }

    /// The group index of each row, and the rows that begin new groups (`groups`: how many
    /// are held, updated).
    fn number_runs(
        &mut self,
        keys: &[ArrayRef],
        runs: &[Range<usize>],
        groups: &mut usize,
    ) -> Result<(Vec<usize>, Vec<usize>)> {
        let starts = row_indices(runs.iter().map(|run| run.start))?;
        let run_keys = keys
            .iter()
            .map(|k| take(k.as_ref(), &starts, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let run_rows = self.converter.convert_columns(&run_keys)?;
        let sorted: Vec<&ArrayRef> = self.sorted.iter().map(|&i| &run_keys[i]).collect();
        let within = sorted
            .iter()
            .map(|k| make_comparator(k.as_ref(), k.as_ref(), SortOptions::default()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let from_last = match &self.last_sorted {
            Some(last) => Some(
                last.iter()
                    .zip(&sorted)
                    .map(|(l, k)| make_comparator(l.as_ref(), k.as_ref(), SortOptions::default()))
                    .collect::<std::result::Result<Vec<_>, _>>()?,
            ),
            None => None,
        };
        let mut group_indices = Vec::with_capacity(keys.first().map_or(0, |k| k.len()));
        let mut new_groups = Vec::new();
        for (r, run) in runs.iter().enumerate() {
            let new_stretch = if r == 0 {
                match &from_last {
                    Some(compare) => compare.iter().any(|c| !c(0, 0).is_eq()),
                    None => true,
                }
            } else {
                within.iter().any(|c| !c(r - 1, r).is_eq())
            };
            if new_stretch {
                self.groups_by_keys.clear();
                self.first_group = *groups;
            }
            let row = run_rows.row(r);
            let group = match self.groups_by_keys.get(row.as_ref()) {
                Some(&group) => group,
                None => {
                    let group = *groups;
                    *groups += 1;
                    self.groups_by_keys.insert(row.as_ref().into(), group);
                    new_groups.push(run.start);
                    group
                }
            };
            group_indices.extend(std::iter::repeat_n(group, run.len()));
        }
        if let Some(last) = runs.len().checked_sub(1) {
            self.last_sorted = Some(sorted.iter().map(|k| k.slice(last, 1)).collect());
        }
        Ok((group_indices, new_groups))
    }

    /// The first `emitted` groups are gone: the stretch's groups are numbered from 0 again.
    fn renumber(&mut self, emitted: usize) {
        for group in self.groups_by_keys.values_mut() {
            *group -= emitted;
        }
        self.first_group -= emitted;
    }
}

/// One partition of a [`RunAggregateExec`].
struct RunAggregateStream {
    input: SendableRecordBatchStream,
    schema: SchemaRef,
    emits_state: bool,
    group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    /// Each aggregate's arguments, read from the raw rows.
    arguments: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    /// Each aggregate's name, for errors.
    names: Vec<String>,
    filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    /// The keys of the groups the accumulators hold, in group-index order: one chunk (a
    /// column per key) per batch that began groups. The last group is the open one.
    keys: Vec<Vec<ArrayRef>>,
    /// How many groups the accumulators hold.
    groups: usize,
    /// Input sorted on some of the keys only: the groups of the current stretch of equal
    /// sorted keys, found by their keys.
    stretches: Option<Stretches>,
    batch_size: usize,
    finished: bool,
    baseline: BaselineMetrics,
}

impl RunAggregateStream {
    /// Adds a batch's rows to their groups; returns the groups completed, once a batch's worth
    /// are.
    fn aggregate(&mut self, batch: &RecordBatch) -> Result<Option<RecordBatch>> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(None);
        }
        let keys = self
            .group_exprs
            .iter()
            .map(|e| e.evaluate(batch)?.into_array(rows))
            .collect::<Result<Vec<_>>>()?;
        // Input sorted on every key: when the first and the last row have the same keys, so
        // do all the rows between them, and the batch is one run (most batches, when groups
        // are long). Not so when it is sorted on some keys only.
        let runs = if self.stretches.is_none() && same_keys(&keys, 0, rows - 1)? {
            std::iter::once(0..rows).collect()
        } else {
            partition(&keys)?.ranges()
        };
        let (group_indices, new_groups) = match &mut self.stretches {
            None => self.number_runs(&keys, &runs)?,
            Some(stretches) => stretches.number_runs(&keys, &runs, &mut self.groups)?,
        };
        let new_groups = row_indices(new_groups.into_iter())?;
        if !new_groups.is_empty() {
            self.keys.push(
                keys.iter()
                    .map(|k| take(k.as_ref(), &new_groups, None))
                    .collect::<std::result::Result<_, _>>()?,
            );
        }
        for (i, accumulator) in self.accumulators.iter_mut().enumerate() {
            let values = self.arguments[i]
                .iter()
                .map(|e| e.evaluate(batch)?.into_array(rows))
                .collect::<Result<Vec<_>>>()?;
            let filter = match &self.filters[i] {
                Some(f) => Some(f.evaluate(batch)?.into_array(rows)?),
                None => None,
            };
            let filter: Option<&BooleanArray> = match &filter {
                Some(f) => Some(f.as_boolean_opt().ok_or_else(|| {
                    DataFusionError::Internal(format!(
                        "RunAggregateExec: the FILTER of {} is not boolean",
                        self.names[i]
                    ))
                })?),
                None => None,
            };
            accumulator.update_batch(&values, &group_indices, filter, self.groups)?;
        }
        // Complete: every group before the open one (before the open stretch's first).
        let complete = match &self.stretches {
            None => self.groups - 1,
            Some(stretches) => stretches.first_group,
        };
        if complete >= self.batch_size {
            if let Some(stretches) = &mut self.stretches {
                stretches.renumber(complete);
            }
            return self.emit(EmitTo::First(complete)).map(Some);
        }
        Ok(None)
    }

    /// Input sorted on every key: run r is a new group, the open one for the first run when
    /// it has the open group's keys. The group index of each row, and the rows that begin
    /// new groups.
    fn number_runs(
        &mut self,
        keys: &[ArrayRef],
        runs: &[Range<usize>],
    ) -> Result<(Vec<usize>, Vec<usize>)> {
        let continues = self.continues_open_group(keys)?;
        let base = self.groups - usize::from(continues);
        let mut group_indices = Vec::with_capacity(keys.first().map_or(0, |k| k.len()));
        for (r, run) in runs.iter().enumerate() {
            group_indices.extend(std::iter::repeat_n(base + r, run.len()));
        }
        self.groups = base + runs.len();
        let new_groups = runs
            .iter()
            .skip(usize::from(continues))
            .map(|run| run.start)
            .collect();
        Ok((group_indices, new_groups))
    }

    /// Whether the batch's first row has the open group's keys (the last row of the keys
    /// held); nulls equal nulls, as in a `GROUP BY`.
    fn continues_open_group(&self, keys: &[ArrayRef]) -> Result<bool> {
        let Some(last) = self.keys.last() else {
            return Ok(false);
        };
        for (held, key) in last.iter().zip(keys) {
            let compare = make_comparator(held.as_ref(), key.as_ref(), SortOptions::default())?;
            if !compare(held.len() - 1, 0).is_eq() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The first groups (or all) as an output batch, their keys then their aggregates.
    fn emit(&mut self, emit_to: EmitTo) -> Result<RecordBatch> {
        let count = match emit_to {
            EmitTo::All => self.groups,
            EmitTo::First(n) => n,
        };
        let columns = self.keys.first().map_or(0, Vec::len);
        let mut output = Vec::with_capacity(self.schema.fields().len());
        let mut rest = Vec::with_capacity(columns);
        for c in 0..columns {
            let chunks: Vec<&dyn Array> = self.keys.iter().map(|k| k[c].as_ref()).collect();
            let all = concat(&chunks)?;
            output.push(all.slice(0, count));
            rest.push(all.slice(count, all.len() - count));
        }
        self.keys = if rest.first().is_some_and(|r| !r.is_empty()) {
            vec![rest]
        } else {
            Vec::new()
        };
        for accumulator in &mut self.accumulators {
            if self.emits_state {
                output.extend(accumulator.state(emit_to)?);
            } else {
                output.push(accumulator.evaluate(emit_to)?);
            }
        }
        self.groups -= count;
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), output)?)
    }
}

impl Stream for RunAggregateStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            let next = match this.input.poll_next_unpin(cx) {
                Poll::Ready(next) => next,
                Poll::Pending => return Poll::Pending,
            };
            let elapsed_compute = this.baseline.elapsed_compute().clone();
            let timer = elapsed_compute.timer();
            let output = match next {
                Some(Ok(batch)) => this.aggregate(&batch),
                Some(Err(e)) => Err(e),
                None => {
                    this.finished = true;
                    if this.groups == 0 {
                        Ok(None)
                    } else {
                        this.emit(EmitTo::All).map(Some)
                    }
                }
            };
            timer.done();
            match output {
                Ok(Some(batch)) => {
                    return this.baseline.record_poll(Poll::Ready(Some(Ok(batch))));
                }
                Ok(None) => {}
                Err(e) => {
                    this.finished = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

impl RecordBatchStream for RunAggregateStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Decimal128Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::{SessionContext, col};

    /// k1, k2, amount (cents), qty, name.
    type Row = (
        Option<String>,
        Option<i64>,
        Option<i128>,
        Option<i64>,
        String,
    );

    /// 600 rows sorted by (k1, k2), nulls last, in `partitions` partitions of batches of 7:
    /// runs that cross batch boundaries, null keys, null amounts and quantities.
    fn sorted_table(partitions: usize) -> MemTable {
        let mut rows: Vec<Row> = Vec::new();
        let mut seed = 7u64;
        for i in 0..600u64 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = seed >> 33;
            let k1 = match r % 5 {
                0 => None,
                n => Some(format!("account_with_a_long_name_{n}")),
            };
            let k2 = (!r.is_multiple_of(7)).then_some(((r >> 3) % 3) as i64);
            let amount = (!r.is_multiple_of(11)).then_some((r % 200_000) as i128 - 100_000);
            let qty = (!r.is_multiple_of(13)).then_some((r % 9) as i64);
            rows.push((k1, k2, amount, qty, format!("n{}", i % 17)));
        }
        // Sorted ascending, nulls last (None < Some in Rust: put them after).
        rows.sort_by(|a, b| {
            let key = |r: &Row| (r.0.is_none(), r.0.clone(), r.1.is_none(), r.1);
            key(a).cmp(&key(b))
        });
        let schema = Arc::new(Schema::new(vec![
            Field::new("k1", DataType::Utf8View, true),
            Field::new("k2", DataType::Int64, true),
            Field::new("amount", DataType::Decimal128(18, 2), true),
            Field::new("qty", DataType::Int64, true),
            Field::new("name", DataType::Utf8, false),
        ]));
        // Each partition sorted (every other row of two): a group's rows are in each.
        let partitions = (0..partitions)
            .map(|p| {
                let rows: Vec<_> = rows.iter().skip(p).step_by(partitions).cloned().collect();
                rows.chunks(7)
                    .map(|chunk| {
                        let k1: StringArray = chunk.iter().map(|r| r.0.clone()).collect();
                        let k1 = datafusion::arrow::compute::cast(&k1, &DataType::Utf8View)
                            .expect("Utf8 casts to Utf8View");
                        let k2: Int64Array = chunk.iter().map(|r| r.1).collect();
                        let amount =
                            Decimal128Array::from(chunk.iter().map(|r| r.2).collect::<Vec<_>>())
                                .with_precision_and_scale(18, 2)
                                .expect("a valid decimal type");
                        let qty: Int64Array = chunk.iter().map(|r| r.3).collect();
                        let name: StringArray = chunk.iter().map(|r| Some(r.4.clone())).collect();
                        RecordBatch::try_new(
                            Arc::clone(&schema),
                            vec![
                                k1,
                                Arc::new(k2),
                                Arc::new(amount),
                                Arc::new(qty),
                                Arc::new(name),
                            ],
                        )
                        .expect("columns of the schema")
                    })
                    .collect()
            })
            .collect();
        MemTable::try_new(schema, partitions)
            .expect("a table")
            .with_sort_order(vec![vec![
                col("k1").sort(true, false),
                col("k2").sort(true, false),
            ]])
    }

    async fn session(batch_size: usize, partitions: usize) -> SessionContext {
        let ctx = crate::session::new_session().expect("a session");
        ctx.register_table("t", Arc::new(sorted_table(partitions)))
            .expect("registered");
        run(
            &ctx,
            &format!("SET datafusion.execution.batch_size = {batch_size}"),
        )
        .await;
        run(
            &ctx,
            &format!("SET datafusion.execution.target_partitions = {partitions}"),
        )
        .await;
        ctx
    }

    async fn run(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx
            .sql(sql)
            .await
            .expect("planned")
            .collect()
            .await
            .expect("ran");
        pretty_format_batches(&batches)
            .expect("printable")
            .to_string()
    }

    /// Every query gives the same rows with run aggregation on and off: with a batch size that
    /// makes it emit mid-stream (3) and one that holds every group to the end, as a partial
    /// aggregate (2 partitions; a final one merges) and as the only one (1 partition: a run
    /// that goes on into the next batch must stay one group). With it on, the plan has a
    /// `RunAggregateExec` where DataFusion's aggregate was sorted, and the first query's is.
    #[tokio::test]
    async fn run_aggregation_gives_the_hash_aggregates_rows() {
        let queries = [
            // Keys in the table's order, nulls among them; sums, counts and averages of
            // columns with nulls, a string minimum, a FILTER.
            "SELECT k1, k2, SUM(amount) AS amount, COUNT(*) AS n, COUNT(qty) AS nq, \
             AVG(qty) AS avg_qty, MIN(name) AS first, MAX(amount) AS top, \
             SUM(qty) FILTER (WHERE amount > 0) AS positive_qty \
             FROM t GROUP BY k1, k2 ORDER BY k1, k2",
            // A prefix of the order; the keys named in the other order.
            "SELECT k1, SUM(amount) AS amount, COUNT(*) AS n FROM t GROUP BY k1 ORDER BY k1",
            "SELECT k2, k1, SUM(amount) AS amount FROM t GROUP BY k2, k1 ORDER BY k1, k2",
            // A filter that leaves runs with gaps between them.
            "SELECT k1, k2, SUM(amount) AS amount FROM t WHERE qty > 3 GROUP BY k1, k2 \
             ORDER BY k1, k2",
            // A key that is constant under the filter.
            "SELECT k1, k2, COUNT(*) AS n FROM t WHERE k1 = 'account_with_a_long_name_2' \
             GROUP BY k1, k2 ORDER BY k2",
            // Sorted on k1 only (DataFusion's PartiallySorted): runs of (k1, name) and of
            // (k1, qty) recur within a k1.
            "SELECT k1, name, SUM(amount) AS amount, COUNT(*) AS n, MAX(qty) AS most \
             FROM t GROUP BY k1, name ORDER BY k1, name",
            "SELECT qty, k1, SUM(amount) AS amount, COUNT(qty) AS nq FROM t \
             GROUP BY qty, k1 ORDER BY k1, qty",
            "SELECT k1, k2, qty, SUM(amount) AS amount FROM t GROUP BY k1, k2, qty \
             ORDER BY k1, k2, qty",
            // No rows at all.
            "SELECT k1, k2, SUM(amount) AS amount FROM t WHERE qty > 100 GROUP BY k1, k2",
        ];
        for (batch_size, partitions) in [(3, 2), (8192, 2), (3, 1), (8192, 1)] {
            let ctx = session(batch_size, partitions).await;
            for sql in queries {
                run(&ctx, "SET amoeba.run_aggregation = true").await;
                let plan = run(&ctx, &format!("EXPLAIN {sql}")).await;
                let with_runs = run(&ctx, sql).await;
                run(&ctx, "SET amoeba.run_aggregation = false").await;
                let hashed = run(&ctx, sql).await;
                assert_eq!(
                    with_runs, hashed,
                    "batch size {batch_size}, {partitions} partitions: {sql}"
                );
                assert!(
                    !sql.contains("qty > 100") || !with_runs.contains("| k1"),
                    "no rows expected:\n{with_runs}"
                );
                let plain = run(&ctx, &format!("EXPLAIN {sql}")).await;
                assert!(!plain.contains("RunAggregateExec"), "{plain}");
                if plain.contains("ordering_mode=Sorted")
                    || plain.contains("ordering_mode=PartiallySorted")
                {
                    assert!(plan.contains("RunAggregateExec"), "{sql}:\n{plan}");
                }
            }
            run(&ctx, "SET amoeba.run_aggregation = true").await;
            let partially = run(&ctx, &format!("EXPLAIN {}", queries[5])).await;
            assert!(partially.contains("RunAggregateExec"), "{partially}");
            let plan = run(&ctx, &format!("EXPLAIN {}", queries[0])).await;
            let mode = if partitions == 1 {
                "mode=Single"
            } else {
                "mode=Partial"
            };
            assert!(
                plan.contains(&format!("RunAggregateExec: {mode}")),
                "{partitions} partitions:\n{plan}"
            );
        }
    }
}
