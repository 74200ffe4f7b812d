//! A coarse aggregate of the ledger that a plan also computes at a finer grain is rolled up
//! from the finer one.
//!
//! The analyst's "the unit-months that lost money, and the account that weighed most on each"
//! (benches/queries/26) sums the ledger twice: by month × unit (the loss) and by month × unit
//! × account (the accounts; [`crate::eager_aggregate`] sums that side before its join). Both
//! read and hash every ledger row, though the first is the second summed again:
//!
//! ```text
//!  Aggregate [month, unit; SUM(amount)]          Projection [the same names and types]
//!    scan pnl_ledger                     ──►       Aggregate [month, unit; SUM(s)]
//!                                                    Aggregate [month, unit, account; SUM(amount) AS s]
//!  Aggregate [month, unit, account;                    scan pnl_ledger   ◄─ the same subtree as
//!             SUM(amount) AS s]                                             the finer aggregate's
//!    scan pnl_ledger
//! ```
//!
//! The coarse aggregate is rewritten over an exact copy of the finer one, and the shared
//! subplans rule ([`crate::shared_subplan`]) then computes that once for both readers: the
//! ledger is read and hashed once, and the coarse sums come from a few thousand rows.
//!
//! It applies only when the result is the same, row for row:
//!
//! - both aggregate the ledger through the same filters (the scan's and those above it, their
//!   columns compared without qualifiers) under projections of plain columns and aliases;
//! - both group by plain columns, the coarse one's a strict subset of the finer one's;
//! - both compute the same functions (as a set, with their `FILTER`s): `SUM` of an integer or
//!   a decimal, `MIN` or `MAX`, without `DISTINCT` or `ORDER BY`. (The same set, so that the
//!   copy needs every column the finer aggregate computes: DataFusion would prune a copy's
//!   unused sums, and a pruned copy is no longer the same subtree.)
//!
//! The finer aggregate is the finest of its kind in the plan, and is itself left alone. The
//! rewrite pays only when the copy is shared, so it runs with `amoeba.share_subplans` (off:
//! neither rule runs, for comparison).

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema};
use datafusion::error::Result;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use crate::aggregate_rewrite::{as_before, rolls_up};
use crate::cube::AmoebaOptions;
use crate::ledger::LEDGER_TABLE;

/// Rolls a coarse aggregate of the ledger up from a finer one in the same plan (see the
/// module docs).
#[derive(Debug, Default)]
pub(crate) struct RollupFromFiner;

impl OptimizerRule for RollupFromFiner {
    fn name(&self) -> &str {
        "amoeba_rollup_from_finer"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        if !AmoebaOptions::of(&config.options()).share_subplans {
            return Ok(Transformed::no(plan));
        }
        let mut found: Vec<Summary> = Vec::new();
        plan.apply(|node| {
            if let LogicalPlan::Aggregate(aggregate) = node
                && let Some(summary) = Summary::of(aggregate)?
            {
                found.push(summary);
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if found.len() < 2 {
            return Ok(Transformed::no(plan));
        }
        // The finest of each kind: no other aggregate of the same source and functions
        // groups by more.
        let finest: Vec<&Summary> = found
            .iter()
            .filter(|s| !found.iter().any(|other| other.is_finer_than(s)))
            .collect();
        plan.transform_up(|node| {
            let LogicalPlan::Aggregate(aggregate) = &node else {
                return Ok(Transformed::no(node));
            };
            let Some(coarse) = Summary::of(aggregate)? else {
                return Ok(Transformed::no(node));
            };
            let Some(finer) = finest.iter().find(|f| f.is_finer_than(&coarse)) else {
                return Ok(Transformed::no(node));
            };
            match rolled_up(aggregate, &coarse, finer)? {
                Some(rewritten) => Ok(Transformed::yes(rewritten)),
                None => Ok(Transformed::no(node)),
            }
        })
    }
}

/// What identifies an aggregate of the ledger for this rule.
struct Summary {
    aggregate: Aggregate,
    /// The source: the scan's filters and those above it, without qualifiers.
    source: String,
    /// The group columns' names.
    groups: Vec<String>,
    /// The functions, without qualifiers or aliases.
    functions: Vec<String>,
}

impl Summary {
    /// The summary of `aggregate`, or `None` when the rule does not apply to it.
    fn of(aggregate: &Aggregate) -> Result<Option<Summary>> {
        let mut groups = Vec::with_capacity(aggregate.group_expr.len());
        for expr in &aggregate.group_expr {
            let Expr::Column(column) = expr else {
                return Ok(None);
            };
            groups.push(column.name.clone());
        }
        if groups.is_empty() {
            return Ok(None);
        }
        let Some(source) = source(&aggregate.input)? else {
            return Ok(None);
        };
        let mut functions = Vec::with_capacity(aggregate.aggr_expr.len());
        for expr in &aggregate.aggr_expr {
            let Expr::AggregateFunction(function) = expr.clone().unalias() else {
                return Ok(None);
            };
            if !rolls_up(&function, aggregate.input.schema())? {
                return Ok(None);
            }
            functions.push(unqualified(&Expr::AggregateFunction(function))?);
        }
        Ok(Some(Summary {
            aggregate: aggregate.clone(),
            source,
            groups,
            functions,
        }))
    }

    /// Whether this one computes what `coarse` does at a strictly finer grain.
    fn is_finer_than(&self, coarse: &Summary) -> bool {
        let same_functions = self.functions.iter().collect::<BTreeSet<_>>()
            == coarse.functions.iter().collect::<BTreeSet<_>>();
        self.source == coarse.source
            && same_functions
            && coarse.groups.len() < self.groups.len()
            && coarse.groups.iter().all(|g| self.groups.contains(g))
    }
}

/// `aggregate` (summarized as `coarse`) as a roll-up of a copy of `finer`, with its own
/// names and types; `None` when a column cannot be matched.
fn rolled_up(
    aggregate: &Aggregate,
    coarse: &Summary,
    finer: &Summary,
) -> Result<Option<LogicalPlan>> {
    let copy = LogicalPlan::Aggregate(finer.aggregate.clone());
    let schema: &DFSchema = copy.schema();
    let column = |index: usize| {
        let (qualifier, field) = schema.qualified_field(index);
        Expr::Column(Column::new(qualifier.cloned(), field.name()))
    };
    let mut groups = Vec::with_capacity(coarse.groups.len());
    for name in &coarse.groups {
        let Some(at) = finer.groups.iter().position(|g| g == name) else {
            return Ok(None);
        };
        groups.push(column(at));
    }
    let mut outer = Vec::with_capacity(coarse.functions.len());
    for (expr, text) in aggregate.aggr_expr.iter().zip(&coarse.functions) {
        let Expr::AggregateFunction(function) = expr.clone().unalias() else {
            return Ok(None);
        };
        let Some(at) = finer.functions.iter().position(|f| f == text) else {
            return Ok(None);
        };
        outer.push(Expr::AggregateFunction(AggregateFunction::new_udf(
            Arc::clone(&function.func),
            vec![column(finer.groups.len() + at)],
            false,
            None,
            vec![],
            None,
        )));
    }
    let regrouped = Aggregate::try_new(Arc::new(copy), groups, outer)?;
    Ok(Some(as_before(regrouped, aggregate)?))
}

/// The filters a ledger scan goes through (scan filters, then the filters above it), without
/// qualifiers; `None` unless `plan` is a scan of the ledger under filters, projections of
/// plain columns and aliases only.
fn source(plan: &LogicalPlan) -> Result<Option<String>> {
    match plan {
        LogicalPlan::SubqueryAlias(alias) => source(&alias.input),
        LogicalPlan::Projection(projection)
            if projection.expr.iter().all(|e| matches!(e, Expr::Column(_))) =>
        {
            source(&projection.input)
        }
        LogicalPlan::Filter(filter) => {
            let Some(below) = source(&filter.input)? else {
                return Ok(None);
            };
            Ok(Some(format!(
                "{below} | {}",
                unqualified(&filter.predicate)?
            )))
        }
        LogicalPlan::TableScan(scan)
            if scan.table_name.table() == LEDGER_TABLE && scan.fetch.is_none() =>
        {
            let mut filters = scan
                .filters
                .iter()
                .map(unqualified)
                .collect::<Result<Vec<_>>>()?;
            filters.sort();
            Ok(Some(format!(
                "{} [{}]",
                scan.table_name,
                filters.join(", ")
            )))
        }
        _ => Ok(None),
    }
}

/// `expr`'s text with its columns unqualified.
fn unqualified(expr: &Expr) -> Result<String> {
    let expr = expr.clone().transform(|e| match e {
        Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::new_unqualified(
            c.name,
        )))),
        other => Ok(Transformed::no(other)),
    })?;
    Ok(expr.data.to_string())
}
