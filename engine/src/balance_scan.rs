//! Balanced scans: a filtered file scan under an aggregate that hashes its input is cut
//! into small byte ranges that the partitions share, instead of a half of the files each.
//!
//! DataFusion splits the files of a scan between the partitions by bytes: with 2 partitions,
//! each reads the row groups whose middle lies in its half. That balances the work when every
//! row group is read. But the ledger is written sorted (month, account, unit_id, …), so the
//! rows a filter keeps lie together: a month's `account = 'advertising'` rows at scale 10
//! (2.02 M of 6.16 M) are 16 neighbouring row groups of 48, all in the first half. And a
//! filter on `date` keeps the rows of one month file, which is whole in one partition's half
//! of the ledger. The statistics and the page index prune the rest, and one partition decodes
//! and aggregates every row that is left while the other finds nothing to do:
//!
//! ```text
//!  month file:  │ advertising (16 row groups) │ cogs … │ gross_sales … │ … shipping_income │
//!  before:      │◄─────────── partition 0 ────────────►│◄────────── partition 1 ─────────►│
//!               2.02 M rows → partition 0                 0 rows → partition 1
//!
//!  after:       │ 0 │ 1 │ 0 │ 1 │ 0 │ 1 │ 0 │ 1 │ 0 │ 1 │ 0 │ 1 │ 0 │ 1 │ 0 │ 1 │  morsels,
//!               about half of the advertising rows each      taken from a shared queue
//! ```
//!
//! [`BalanceFilteredScans`] cuts each file (range) of such a scan into morsels of about an
//! eighth of a partition's share (at least 256 KiB, so a row group or a few), deals them to
//! the partitions in turn, and lets the scan forget its files' order. Without an order to
//! keep, DataFusion's file streams take their next morsel from a queue the partitions share
//! (`datafusion.execution.enable_file_stream_work_stealing`), so a partition whose morsels
//! were pruned helps the other; each partition still decodes and aggregates its own rows, on
//! its own thread. It applies when a `Partial` aggregate hashes its input
//! (`ordering_mode=Linear`: it has no use for the order) and reads, through projections and
//! filters only, a file scan of more than one partition with a predicate and no limit.
//! Aggregates that use the order (run aggregation, `ordering_mode=Sorted`) keep their scan as
//! it is. `SET amoeba.balance_scans = false` turns it off, for comparison.
//!
//! (Dealing the scan's batches round-robin to the aggregates, a `RepartitionExec` over the
//! scan, balances as well, but moves every batch to another thread: on the scans that were
//! balanced already it cost 20–37 % at scale 10.)

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, InputOrderMode};

use crate::cube::AmoebaOptions;

/// Morsels per partition a scan is cut into (when its files are large enough).
const MORSELS_PER_PARTITION: u64 = 8;
/// The smallest morsel: a row group of the ledger at scale 1 is about 200 KiB.
const MIN_MORSEL_BYTES: u64 = 256 * 1024;

/// Cuts the filtered file scans under hash aggregates into morsels the partitions share (see
/// the module docs).
#[derive(Debug, Default)]
pub(crate) struct BalanceFilteredScans;

impl BalanceFilteredScans {
    /// `plan` with the file scan it reads through projections and filters cut into morsels,
    /// or `None` when it reads something else or the scan does not qualify.
    fn balanced(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        if let Some(scan) = plan.downcast_ref::<DataSourceExec>() {
            let partitions = plan.output_partitioning().partition_count();
            return Ok(scan
                .data_source()
                .downcast_ref::<FileScanConfig>()
                .filter(|files| {
                    partitions > 1
                        && files.file_source().filter().is_some()
                        && files.limit.is_none()
                        && files.output_partitioning.is_none()
                })
                .map(|files| {
                    let morsels = Self::morsels(&files.file_groups, partitions);
                    let config = FileScanConfigBuilder::from(files.clone())
                        .with_file_groups(morsels)
                        .with_output_ordering(Vec::new())
                        .with_preserve_order(false)
                        .build();
                    DataSourceExec::from_data_source(config) as Arc<dyn ExecutionPlan>
                }));
        }
        let passes_through = plan.downcast_ref::<ProjectionExec>().is_some()
            || plan.downcast_ref::<FilterExec>().is_some()
            || plan.downcast_ref::<CooperativeExec>().is_some();
        let children = plan.children();
        let [child] = children.as_slice() else {
            return Ok(None);
        };
        if !passes_through {
            return Ok(None);
        }
        Self::balanced(child)?
            .map(|child| {
                Arc::clone(plan).replace_children(
                    vec![child],
                    ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
                )
            })
            .transpose()
    }

    /// The files of `groups` cut into morsels and dealt to `partitions` groups in turn.
    fn morsels(groups: &[FileGroup], partitions: usize) -> Vec<FileGroup> {
        let files: Vec<_> = groups.iter().flat_map(FileGroup::iter).collect();
        let total: u64 = files.iter().map(|f| f.effective_size()).sum();
        let per_partition = total.div_ceil(partitions as u64);
        let morsel = (per_partition / MORSELS_PER_PARTITION).max(MIN_MORSEL_BYTES);
        let mut dealt: Vec<Vec<_>> = vec![Vec::new(); partitions];
        let mut next = 0;
        for file in files {
            let (start, end) = file.range();
            let step = (end - start).div_ceil((end - start).div_ceil(morsel).max(1));
            let mut at = start;
            loop {
                let until = (at + step).min(end);
                dealt[next % partitions].push(file.clone().with_range(
                    i64::try_from(at).unwrap_or(i64::MAX),
                    i64::try_from(until).unwrap_or(i64::MAX),
                ));
                next += 1;
                at = until;
                if at >= end {
                    break;
                }
            }
        }
        dealt.into_iter().map(FileGroup::new).collect()
    }
}

impl PhysicalOptimizerRule for BalanceFilteredScans {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !AmoebaOptions::of(config).balance_scans {
            return Ok(plan);
        }
        Ok(plan
            .transform_up(|node| {
                let Some(aggregate) = node.downcast_ref::<AggregateExec>() else {
                    return Ok(Transformed::no(node));
                };
                if aggregate.mode() != &AggregateMode::Partial
                    || aggregate.input_order_mode() != &InputOrderMode::Linear
                {
                    return Ok(Transformed::no(node));
                }
                let Some(input) = Self::balanced(aggregate.input())? else {
                    return Ok(Transformed::no(node));
                };
                Ok(Transformed::yes(node.replace_children(
                    vec![input],
                    ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
                )?))
            })?
            .data)
    }

    fn name(&self) -> &str {
        "amoeba_balance_filtered_scans"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::physical_plan::displayable;

    use crate::session::new_session;

    /// A month's file of a table sorted like the ledger (about 2 MB): the filter keeps the
    /// rows of one "account", which lie together in the first half of the file.
    async fn plan_and_rows(balance: bool) -> (String, String) {
        let ctx = new_session().expect("session");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sorted.parquet");
        ctx.sql(&format!(
            "COPY (SELECT CASE WHEN v < 40000 THEN 'advertising' ELSE 'sales' END AS account, \
                          v % 997 AS sku, CAST(v AS DECIMAL(18,2)) AS amount, md5(CAST(v AS VARCHAR)) AS pad \
                   FROM generate_series(0, 99999) AS t(v) ORDER BY account, v) \
             TO '{}' STORED AS PARQUET OPTIONS ('format.max_row_group_size' '5000')",
            path.display()
        ))
        .await
        .expect("copy")
        .collect()
        .await
        .expect("write");
        ctx.sql(&format!(
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{}'",
            path.display()
        ))
        .await
        .expect("table");
        ctx.sql(&format!("SET amoeba.balance_scans = {balance}"))
            .await
            .expect("set");
        ctx.sql("SET datafusion.execution.target_partitions = 2")
            .await
            .expect("set");
        ctx.sql("SET datafusion.optimizer.repartition_file_min_size = 1")
            .await
            .expect("set");
        let df = ctx
            .sql(
                "SELECT sku, SUM(amount) AS amount, COUNT(*) AS n FROM t \
                 WHERE account = 'advertising' GROUP BY sku ORDER BY sku",
            )
            .await
            .expect("plan");
        let plan = df
            .clone()
            .create_physical_plan()
            .await
            .expect("physical plan");
        let rows = df.collect().await.expect("rows");
        let total: usize = rows.iter().map(|b| b.num_rows()).sum();
        assert_eq!(total, 997, "one row per sku");
        let rows = pretty_format_batches(&rows).expect("format").to_string();
        (displayable(plan.as_ref()).indent(false).to_string(), rows)
    }

    #[tokio::test]
    async fn a_filtered_scan_under_a_hash_aggregate_is_cut_into_morsels_the_partitions_share() {
        // Each byte range of the file is named `sorted.parquet:<start>..<end>`.
        let (balanced, balanced_rows) = plan_and_rows(true).await;
        let morsels = balanced.matches("sorted.parquet:").count();
        assert!(
            morsels >= 6,
            "the scan was not cut into morsels ({morsels} ranges):\n{balanced}"
        );
        let (plain, plain_rows) = plan_and_rows(false).await;
        assert_eq!(
            plain.matches("sorted.parquet:").count(),
            2,
            "the scan with the rule off:\n{plain}"
        );
        assert_eq!(balanced_rows, plain_rows);
    }
}
