//! Aggregates over the `pnl` view group the ledger only by the dimensions they use.
//!
//! `pnl` is one row per (date, month, platform, shop, SKU, campaign, unit): a view that groups
//! `pnl_ledger` by all seven. Almost every question asked of it groups again, by far fewer
//! (`month, unit_id`; `sku`; `platform, date`), and sums its measures. Planned as written, the
//! ledger is first grouped into millions of fine rows (seven string keys each) only to be
//! summed again into a few hundred. A sum of sums is the sum, so this rule (an analyzer rule,
//! after the cube router: what a cube answers never gets here) groups the ledger directly by
//! the dimensions the query uses:
//!
//! ```text
//!  Aggregate [group: G, aggr: SUM(p.m)…]                Aggregate [the same]
//!    Filter / Join / Projection (of columns)*   ──►       Filter / Join / Projection*
//!      SubqueryAlias p                                      SubqueryAlias p
//!        TableScan pnl                                        Projection [every pnl column:
//!                                                               D and the m's; the rest NULL]
//!                                                               Aggregate [group: D ⊆ the 7,
//!                                                                          aggr: the m's only]
//!                                                                 TableScan pnl_ledger
//! ```
//!
//! where D holds every `pnl` dimension the query names anywhere between the aggregate and the
//! scan (groups, filters, join keys). The result is the same row for row: each fine row falls
//! in exactly one coarse row with the same D, its measures summed into it, and a join or
//! filter above sees only D, so each coarse row meets what its fine rows met. The rule leaves
//! the query alone unless it is sure of that:
//!
//! - every aggregate is a plain `SUM` of a `pnl` measure, or a `MIN`, `MAX` or
//!   `COUNT(DISTINCT …)` of columns that are not `pnl` measures (these do not depend on how many
//!   rows carry a value); `COUNT(*)`, `AVG`, a `SUM` of another table's column, … depend on the
//!   number of `pnl` rows, and stop it;
//! - between the aggregate and the scan there are only filters, joins, projections of plain
//!   columns and the scan's own alias (anything else — a nested aggregate, a window, a limit,
//!   a union — is a boundary the rule does not look past);
//! - a measure appears nowhere but in the sums (a filter on `net_sales > 0` needs the fine
//!   rows), no subquery sits on the way, and only one `pnl` scan is reachable (in a self-join
//!   each side's row count multiplies the other's sums).
//!
//! When no dimension is used at all, `month` is kept, so that an empty ledger still yields no
//! rows (grouping by nothing would yield one). `SET amoeba.narrow_pnl = false` turns the rule
//! off, for comparisons.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Column, TableReference};
use datafusion::datasource::source_as_provider;
use datafusion::error::Result;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, Projection, TableScan, lit};
use datafusion::optimizer::AnalyzerRule;
use datafusion::scalar::ScalarValue;

use crate::cube::{AmoebaOptions, PnlView};

/// The `pnl` columns that are dimensions (its `GROUP BY`); every other column is a measure.
const DIMENSIONS: [&str; 7] = [
    "date", "month", "platform", "shop_id", "sku", "campaign", "unit_id",
];

/// The analyzer rule.
#[derive(Debug, Default)]
pub(crate) struct NarrowPnl;

impl AnalyzerRule for NarrowPnl {
    fn name(&self) -> &str {
        "amoeba_narrow_pnl"
    }

    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> Result<LogicalPlan> {
        if !AmoebaOptions::of(config).narrow_pnl {
            return Ok(plan);
        }
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Aggregate(agg) => narrow(agg),
            other => Ok(Transformed::no(other)),
        })
        .data()
    }
}

/// A `pnl` scan under an aggregate, with the name its columns go by above it.
struct Candidate {
    scan: TableScan,
    qualifier: TableReference,
}

/// What lies between an aggregate and the `pnl` scans it can see.
#[derive(Default)]
struct Path {
    candidates: Vec<Candidate>,
    /// Every filter and join condition on the way.
    exprs: Vec<Expr>,
    /// The columns projections pass on (a measure may pass, to the sums).
    passed: Vec<Expr>,
}

fn walk(node: &LogicalPlan, path: &mut Path) {
    match node {
        LogicalPlan::Filter(f) => {
            path.exprs.push(f.predicate.clone());
            walk(&f.input, path);
        }
        LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
            path.passed.extend(p.expr.iter().cloned());
            walk(&p.input, path);
        }
        LogicalPlan::Join(j) => {
            for (l, r) in &j.on {
                path.exprs.push(l.clone());
                path.exprs.push(r.clone());
            }
            path.exprs.extend(j.filter.iter().cloned());
            walk(&j.left, path);
            walk(&j.right, path);
        }
        LogicalPlan::SubqueryAlias(a) => {
            if let LogicalPlan::TableScan(scan) = a.input.as_ref()
                && is_pnl(scan)
            {
                path.candidates.push(Candidate {
                    scan: scan.clone(),
                    qualifier: a.alias.clone(),
                });
            }
        }
        LogicalPlan::TableScan(scan) if is_pnl(scan) => path.candidates.push(Candidate {
            scan: scan.clone(),
            qualifier: scan.table_name.clone(),
        }),
        // Anything else is a boundary.
        _ => {}
    }
}

fn is_pnl(scan: &TableScan) -> bool {
    source_as_provider(&scan.source).is_ok_and(|p| p.is::<PnlView>())
}

fn has_subquery(e: &Expr) -> bool {
    e.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_) | Expr::InSubquery(_) | Expr::Exists(_)
        ))
    })
    .unwrap_or(true)
}

/// The aggregate with its `pnl` scan narrowed, when it can be.
fn narrow(agg: Aggregate) -> Result<Transformed<LogicalPlan>> {
    let mut path = Path::default();
    walk(&agg.input, &mut path);
    let [candidate] = path.candidates.as_slice() else {
        return Ok(Transformed::no(LogicalPlan::Aggregate(agg)));
    };
    // A subquery on the way: its outer references are not followed, so nothing is narrowed.
    let subquery = path.exprs.iter().any(has_subquery);
    if subquery || candidate.scan.projection.is_some() || !candidate.scan.filters.is_empty() {
        return Ok(Transformed::no(LogicalPlan::Aggregate(agg)));
    }
    let Some(used) = used_columns(&agg, &path, &candidate.qualifier) else {
        return Ok(Transformed::no(LogicalPlan::Aggregate(agg)));
    };
    let Ok(provider) = source_as_provider(&candidate.scan.source) else {
        return Ok(Transformed::no(LogicalPlan::Aggregate(agg)));
    };
    let Some(view) = provider.downcast_ref::<PnlView>() else {
        return Ok(Transformed::no(LogicalPlan::Aggregate(agg)));
    };
    let Some(narrowed) = narrowed_view(view, &candidate.scan, &used)? else {
        return Ok(Transformed::no(LogicalPlan::Aggregate(agg)));
    };
    let target = candidate.scan.clone();
    let input = replace(Arc::unwrap_or_clone(agg.input), &target, &narrowed)?;
    if !input.transformed {
        return Err(datafusion::error::DataFusionError::Internal(
            "amoeba_narrow_pnl: the pnl scan it found was not replaced".to_string(),
        ));
    }
    log::debug!(
        "pnl grouped by [{}] for an aggregate of [{}]",
        used.dimensions
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
        used.measures.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    Aggregate::try_new_with_schema(
        Arc::new(input.data),
        agg.group_expr,
        agg.aggr_expr,
        agg.schema,
    )
    .map(|a| Transformed::yes(LogicalPlan::Aggregate(a)))
}

/// The `pnl` columns a query uses.
struct Used {
    dimensions: BTreeSet<String>,
    measures: BTreeSet<String>,
}

/// The dimensions and measures of `pnl` (known as `qualifier`) the aggregate uses, or `None`
/// when it uses them in a way that depends on the number of `pnl` rows.
fn used_columns(agg: &Aggregate, path: &Path, qualifier: &TableReference) -> Option<Used> {
    let ours = |c: &Column| c.relation.as_ref() == Some(qualifier);
    let unqualified_pnl_column =
        |c: &Column| c.relation.is_none() && candidate_columns_contain(&path.candidates, &c.name);
    let mut used = Used {
        dimensions: BTreeSet::new(),
        measures: BTreeSet::new(),
    };
    // Columns named by groups, filters and join keys: dimensions only. A projection of plain
    // columns may pass a measure on, to the sums.
    let named = agg.group_expr.iter().chain(&path.exprs).map(|e| (e, false));
    for (e, pass_through) in named.chain(path.passed.iter().map(|e| (e, true))) {
        for c in e.column_refs() {
            if unqualified_pnl_column(c) {
                return None;
            }
            if !ours(c) {
                continue;
            }
            if DIMENSIONS.contains(&c.name.as_str()) {
                used.dimensions.insert(c.name.clone());
            } else if !pass_through {
                return None;
            }
        }
    }
    for e in &agg.aggr_expr {
        let inner = match e {
            Expr::Alias(a) => a.expr.as_ref(),
            other => other,
        };
        let Expr::AggregateFunction(AggregateFunction { func, params }) = inner else {
            return None;
        };
        if params.filter.is_some() || !params.order_by.is_empty() {
            return None;
        }
        let name = func.name();
        let sum = name == "sum" && !params.distinct;
        let insensitive = matches!(name, "min" | "max") || (name == "count" && params.distinct);
        for arg in &params.args {
            let Expr::Column(c) = arg else {
                return None;
            };
            if unqualified_pnl_column(c) {
                return None;
            }
            let measure = ours(c) && !DIMENSIONS.contains(&c.name.as_str());
            match (sum, insensitive, measure, ours(c)) {
                (true, _, true, _) => {
                    used.measures.insert(c.name.clone());
                }
                (_, true, false, true) => {
                    used.dimensions.insert(c.name.clone());
                }
                (_, true, false, false) => {}
                _ => return None,
            }
        }
    }
    if used.dimensions.is_empty() {
        used.dimensions.insert("month".to_string());
    }
    Some(used)
}

fn candidate_columns_contain(candidates: &[Candidate], name: &str) -> bool {
    candidates.iter().any(|c| {
        c.scan
            .projected_schema
            .fields()
            .iter()
            .any(|f| f.name() == name)
    })
}

/// The `pnl` view grouped by `used.dimensions` only, with `scan`'s schema: the columns the
/// query does not use are NULL (or a default where the column is not nullable).
fn narrowed_view(view: &PnlView, scan: &TableScan, used: &Used) -> Result<Option<LogicalPlan>> {
    let LogicalPlan::Projection(projection) = view.logical_plan() else {
        return Ok(None);
    };
    let LogicalPlan::Aggregate(fine) = projection.input.as_ref() else {
        return Ok(None);
    };
    let keep = |name: &str| used.dimensions.contains(name) || used.measures.contains(name);
    let group: Vec<Expr> = fine
        .group_expr
        .iter()
        .filter(|e| {
            e.try_as_col()
                .is_some_and(|c| used.dimensions.contains(c.name.as_str()))
        })
        .cloned()
        .collect();
    if group.len() != used.dimensions.len() {
        return Ok(None);
    }
    // The fine aggregate's outputs the kept projections read.
    let mut read: HashSet<Column> = HashSet::new();
    for (e, (_, field)) in projection.expr.iter().zip(projection.schema.iter()) {
        if keep(field.name()) {
            read.extend(e.column_refs().into_iter().cloned());
        }
    }
    let groups = fine.group_expr.len();
    let aggr: Vec<Expr> = fine
        .aggr_expr
        .iter()
        .zip(fine.schema.iter().skip(groups))
        .filter(|(_, (q, f))| read.contains(&Column::new(q.cloned(), f.name())))
        .map(|(e, _)| e.clone())
        .collect();
    let coarse = Aggregate::try_new(Arc::clone(&fine.input), group, aggr)?;
    let mut exprs = Vec::with_capacity(projection.expr.len());
    for ((e, (_, field)), (_, wanted)) in projection
        .expr
        .iter()
        .zip(projection.schema.iter())
        .zip(scan.projected_schema.iter())
    {
        if field.name() != wanted.name() {
            return Ok(None);
        }
        let e = if keep(field.name()) {
            e.clone().unalias()
        } else if wanted.is_nullable() {
            lit(ScalarValue::try_from(wanted.data_type())?)
        } else {
            lit(ScalarValue::new_default(wanted.data_type())?)
        };
        exprs.push(e.alias_qualified(Some(scan.table_name.clone()), wanted.name()));
    }
    if exprs.len() != scan.projected_schema.fields().len() {
        return Ok(None);
    }
    let plan = Projection::try_new(exprs, Arc::new(LogicalPlan::Aggregate(coarse)))?;
    Ok(Some(LogicalPlan::Projection(plan)))
}

/// `node` with `target` replaced by `with`, looking only where [`walk`] looked.
fn replace(
    node: LogicalPlan,
    target: &TableScan,
    with: &LogicalPlan,
) -> Result<Transformed<LogicalPlan>> {
    match node {
        LogicalPlan::TableScan(scan) if &scan == target => Ok(Transformed::yes(with.clone())),
        LogicalPlan::Filter(_) | LogicalPlan::Join(_) => {
            node.map_children(|c| replace(c, target, with))
        }
        // Only the scan's own alias: another alias is a boundary of the walk, and a scan
        // equal to the target behind it (`JOIN (SELECT * FROM pnl p) x`) is not the one.
        LogicalPlan::SubqueryAlias(ref a) if matches!(a.input.as_ref(), LogicalPlan::TableScan(scan) if scan == target) => {
            node.map_children(|c| replace(c, target, with))
        }
        LogicalPlan::Projection(ref p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
            node.map_children(|c| replace(c, target, with))
        }
        other => Ok(Transformed::no(other)),
    }
}
