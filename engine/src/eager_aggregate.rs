//! Aggregates over the ledger joined to a dimension table sum the ledger before the join.
//!
//! The analyst's way to cut the P&L by an attribute of the SKU master (brand, category) joins
//! every ledger row to its SKU and then groups: millions of ledger rows go through the join's
//! probe only to be summed into a few dozen groups. A sum over joined rows is the sum, per join
//! key, of the ledger's sums: a join only repeats each ledger row once per matching dimension
//! row, and it repeats a pre-summed row the same number of times. So this rule (a logical
//! optimizer rule, run after DataFusion's own: filters and projections are already pushed
//! into the scans) sums the ledger first, by the join keys and the ledger columns the query
//! groups by, and joins the few thousand sums:
//!
//! ```text
//!  Aggregate [G; SUM(l.x) FILTER (…), MIN(l.y)]      Projection [the same names and types]
//!    (Projection of columns)                           Aggregate [G; SUM(e0), MIN(e1)]
//!      Inner Join l.k = d.k                  ──►         Inner Join l.k = d.k
//!        l: the ledger (scan, filters)                     Aggregate [l.k, G ∩ l; SUM(l.x) FILTER (…) AS e0,
//!        d: anything                                                              MIN(l.y) AS e1]
//!                                                            l: the ledger
//!                                                          d: anything
//! ```
//!
//! It leaves the query alone unless it is sure the result is the same, row for row:
//!
//! - every aggregate is a `SUM` (of an integer or a decimal: a float sum would depend on the
//!   order of its terms), a `MIN` or a `MAX`, without `DISTINCT` or `ORDER BY`, and reads (with
//!   its `FILTER`) columns of the ledger side only;
//! - the groups are plain columns, no grouping sets;
//! - the join is an inner equi-join with no other condition (its keys may be expressions:
//!   the ledger is summed by the columns its side's keys read);
//! - the ledger side is a scan of `pnl_ledger` under filters, projections and aliases only.
//!
//! The last condition is also the rule's bet that the sums are far fewer than the rows: the
//! ledger is the fact table, and its finest grain (date, platform, shop, SKU, campaign, unit,
//! account) is rarely what a query joined to master data groups by. The outer sums are cast
//! back to the types the query's own sums have (a sum of sums is one precision wider).
//! `SET amoeba.eager_aggregation = false` turns the rule off, for comparison.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema};
use datafusion::error::Result;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Aggregate, Expr, Join, JoinType, LogicalPlan, LogicalPlanBuilder};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use crate::aggregate_rewrite::{as_before, rolls_up};
use crate::cube::AmoebaOptions;
use crate::ledger::LEDGER_TABLE;

/// The prefix of the pre-aggregate's sum columns.
const EAGER_PREFIX: &str = "__eager_";

/// Sums the ledger before it is joined to a dimension table (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct EagerAggregate;

impl OptimizerRule for EagerAggregate {
    fn name(&self) -> &str {
        "amoeba_eager_aggregate"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        if !AmoebaOptions::of(&config.options()).eager_aggregation {
            return Ok(Transformed::no(plan));
        }
        let LogicalPlan::Aggregate(aggregate) = &plan else {
            return Ok(Transformed::no(plan));
        };
        match eager(aggregate)? {
            Some(rewritten) => Ok(Transformed::yes(rewritten)),
            None => Ok(Transformed::no(plan)),
        }
    }
}

/// The aggregate with the ledger side summed first, or `None` when the rule does not apply.
fn eager(aggregate: &Aggregate) -> Result<Option<LogicalPlan>> {
    if aggregate.group_expr.is_empty()
        || !aggregate
            .group_expr
            .iter()
            .all(|g| matches!(g, Expr::Column(_)))
    {
        return Ok(None);
    }
    // A projection of plain columns between the aggregate and the join only prunes columns.
    let mut input = aggregate.input.as_ref();
    if let LogicalPlan::Projection(projection) = input
        && projection.expr.iter().all(|e| matches!(e, Expr::Column(_)))
    {
        input = projection.input.as_ref();
    }
    let LogicalPlan::Join(join) = input else {
        return Ok(None);
    };
    if join.join_type != JoinType::Inner || join.filter.is_some() || join.on.is_empty() {
        return Ok(None);
    }

    // The aggregates, and the side every column they read is on.
    let mut functions = Vec::with_capacity(aggregate.aggr_expr.len());
    let mut read: BTreeSet<Column> = BTreeSet::new();
    for expr in &aggregate.aggr_expr {
        let Expr::AggregateFunction(function) = expr.clone().unalias() else {
            return Ok(None);
        };
        if !rolls_up(&function, aggregate.input.schema())? {
            return Ok(None);
        }
        let params = &function.params;
        for arg in params.args.iter().chain(params.filter.as_deref()) {
            read.extend(arg.column_refs().into_iter().cloned());
        }
        functions.push(function);
    }
    let on_side = |schema: &DFSchema| read.iter().all(|c| schema.has_column(c));
    let ledger_is_left = if on_side(join.left.schema()) && !read.is_empty() {
        true
    } else if on_side(join.right.schema()) && !read.is_empty() {
        false
    } else {
        return Ok(None);
    };
    let (ledger, other) = if ledger_is_left {
        (&join.left, &join.right)
    } else {
        (&join.right, &join.left)
    };
    // (the sums' names must not meet another rewrite's on the other side)
    let named_apart = !other
        .schema()
        .fields()
        .iter()
        .any(|f| f.name().starts_with(EAGER_PREFIX));
    if !is_ledger_scan(ledger)? || !named_apart {
        return Ok(None);
    }
    // The ledger summed by the columns its join keys read and the ledger columns the query
    // groups by.
    let mut keys: Vec<Expr> = Vec::new();
    let ledger_keys = join
        .on
        .iter()
        .map(|(l, r)| if ledger_is_left { l } else { r });
    for key in ledger_keys.chain(aggregate.group_expr.iter()) {
        for c in key.column_refs() {
            let key = Expr::Column(c.clone());
            if ledger.schema().has_column(c) && !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    let sums: Vec<Expr> = functions
        .iter()
        .enumerate()
        .map(|(i, f)| Expr::AggregateFunction(f.clone()).alias(format!("{EAGER_PREFIX}{i}")))
        .collect();
    let summed = LogicalPlanBuilder::from(ledger.as_ref().clone())
        .aggregate(keys, sums)?
        .build()?;
    let (left, right) = if ledger_is_left {
        (Arc::new(summed), Arc::clone(other))
    } else {
        (Arc::clone(other), Arc::new(summed))
    };
    let joined = Join::try_new(
        left,
        right,
        join.on.clone(),
        None,
        JoinType::Inner,
        join.join_constraint,
        join.null_equality,
        join.null_aware,
    )?;

    // The query's aggregate over the sums, then its own names and types.
    let outer: Vec<Expr> = functions
        .iter()
        .enumerate()
        .map(|(i, f)| {
            Expr::AggregateFunction(AggregateFunction::new_udf(
                Arc::clone(&f.func),
                vec![Expr::Column(Column::new_unqualified(format!(
                    "{EAGER_PREFIX}{i}"
                )))],
                false,
                None,
                vec![],
                None,
            ))
        })
        .collect();
    let regrouped = Aggregate::try_new(
        Arc::new(LogicalPlan::Join(joined)),
        aggregate.group_expr.clone(),
        outer,
    )?;
    Ok(Some(as_before(regrouped, aggregate)?))
}

/// Whether `plan` is a scan of the ledger under filters, projections and aliases only.
pub(crate) fn is_ledger_scan(plan: &LogicalPlan) -> Result<bool> {
    let mut ledger = false;
    let mut only_rows = true;
    plan.apply(|node| {
        match node {
            LogicalPlan::TableScan(scan) if scan.table_name.table() == LEDGER_TABLE => {
                ledger = true;
            }
            LogicalPlan::Filter(_) | LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) => {
            }
            _ => {
                only_rows = false;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(ledger && only_rows)
}
