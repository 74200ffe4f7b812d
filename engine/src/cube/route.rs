//! Query routing: an aggregate over `pnl` that a cube can answer is answered from the cube.
//!
//! ```text
//!  Aggregate [group: dims, aggr: SUM(measure)…]          Aggregate [the same expressions]
//!    Filter [predicate on dims]*                 ──►       Filter [the same predicates]*
//!      TableScan pnl   (the view, not inlined)               SubqueryAlias pnl
//!                                                              Filter _set = '<grouping set>'
//!                                                                TableScan cubes.<name>
//! ```
//!
//! The rule ([`CubeRouter`], an analyzer rule that runs before type coercion) routes when
//! every group and filter column is a dimension of one stored grouping set and every aggregate
//! is a plain `SUM` of a stored measure (over `pnl_ledger`: `SUM(amount)`, the cube's
//! `net_profit`): sums are additive, so summing the set's rows gives what summing the ledger
//! gives, and every cube row stands for at least one ledger row, so the groups are the same.
//! Anything else — `COUNT`, `AVG`, `DISTINCT`, a filter on a
//! measure, `GROUPING SETS`, a column no cube keeps — runs on the ledger. The set with the
//! fewest rows that answers wins. Only cubes built from the ledger being served are candidates, and
//! `SET amoeba.cube_routing = false` turns routing off (for comparisons). `EXPLAIN` shows the
//! cube: `TableScan: cubes.<name>`.
//!
//! `pnl` is registered as [`PnlView`], a view that DataFusion does not inline at planning, so
//! that the rule sees `TableScan: pnl`; when nothing is routed it plans like any view.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use amoeba_catalog::Dimension;
use amoeba_catalog::cube::CubeDef;
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::config::ConfigExtension;
use datafusion::common::tree_node::{Transformed, TransformedResult};
use datafusion::common::{TableReference, extensions_options};
use datafusion::config::ConfigOptions;
use datafusion::datasource::{ViewTable, provider_as_source};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Aggregate, Expr, LogicalPlan, LogicalPlanBuilder, TableProviderFilterPushDown, TableType, col,
    lit,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_plan::ExecutionPlan;

use super::plan::SET_COLUMN;
use crate::aggregate_rewrite::as_before;
use crate::ledger::{LEDGER_TABLE, PNL_VIEW};

extensions_options! {
    /// Amoeba's session settings (`SET amoeba.<name> = …`, `SHOW amoeba.<name>`).
    pub struct AmoebaOptions {
        /// Answer aggregates over `pnl` from a cube when one can (off: always from the ledger).
        pub cube_routing: bool, default = true
        /// Group the ledger only by the `pnl` dimensions an aggregate over `pnl` uses (off:
        /// the view's seven, then the query's grouping; the same results, slower).
        pub narrow_pnl: bool, default = true
        /// Compute a final aggregate that a plan repeats (a CTE read twice) once for all its
        /// readers (off: once per reference; the same results, slower).
        pub share_subplans: bool, default = true
        /// Sum the ledger by the join keys before joining it to a dimension table, when an
        /// aggregate over the join sums ledger columns only (off: every ledger row is joined,
        /// then summed; the same results, slower).
        pub eager_aggregation: bool, default = true
        /// Aggregate input sorted on the group keys (the ledger by account and unit) run by
        /// run, without hashing the keys (off: DataFusion's hash aggregate; the same results,
        /// slower).
        pub run_aggregation: bool, default = true
        /// Cut a filtered file scan under a hash aggregate into small byte ranges that the
        /// partitions share: the ledger is sorted, so the rows a filter keeps lie together, in
        /// one partition's half of the files (off: each partition reads its half; the same
        /// results, slower).
        pub balance_scans: bool, default = true
    }
}

impl ConfigExtension for AmoebaOptions {
    const PREFIX: &'static str = "amoeba";
}

impl AmoebaOptions {
    /// A session's settings (the defaults when the session has none: a session made without
    /// `new_session`).
    pub(crate) fn of(config: &ConfigOptions) -> AmoebaOptions {
        config
            .extensions
            .get::<AmoebaOptions>()
            .cloned()
            .unwrap_or_default()
    }
}

/// A cube the router may use: its definition and its stored table (the current version).
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub(crate) def: CubeDef,
    pub(crate) table: Arc<dyn TableProvider>,
    pub(crate) rows: u64,
    /// Rows per grouping set (label → rows), when the manifest says.
    pub(crate) set_rows: std::collections::BTreeMap<String, u64>,
}

/// The cubes a session routes to; replaced after each refresh.
#[derive(Debug, Default)]
pub struct CubeRoutes {
    routes: RwLock<Vec<Route>>,
}

impl CubeRoutes {
    pub(crate) fn set(&self, routes: Vec<Route>) {
        if let Ok(mut r) = self.routes.write() {
            *r = routes;
        }
    }

    pub(crate) fn routes(&self) -> Vec<Route> {
        self.routes.read().map(|r| r.clone()).unwrap_or_default()
    }
}

/// The analyzer rule.
#[derive(Debug)]
pub struct CubeRouter {
    routes: Arc<CubeRoutes>,
}

impl CubeRouter {
    /// A router over `routes`.
    pub fn new(routes: Arc<CubeRoutes>) -> Self {
        CubeRouter { routes }
    }
}

/// The `pnl` columns a cube dimension can stand for.
const PNL_DIMENSIONS: [Dimension; 7] = [
    Dimension::Date,
    Dimension::Month,
    Dimension::Platform,
    Dimension::ShopId,
    Dimension::Sku,
    Dimension::Campaign,
    Dimension::UnitId,
];

impl AnalyzerRule for CubeRouter {
    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> DfResult<LogicalPlan> {
        if !AmoebaOptions::of(config).cube_routing {
            return Ok(plan);
        }
        let routes = self.routes.routes();
        if routes.is_empty() {
            return Ok(plan);
        }
        plan.transform_up_with_subqueries(|node| {
            if let LogicalPlan::Aggregate(agg) = &node
                && let Some(routed) = route(agg, &routes)?
            {
                return Ok(Transformed::yes(routed));
            }
            Ok(Transformed::no(node))
        })
        .data()
    }

    fn name(&self) -> &str {
        "amoeba_cube_router"
    }
}

/// Which of the two routable tables `table` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The wide `pnl` view: `SUM(<measure column>)`.
    Pnl,
    /// The ledger: `SUM(amount)` over every account is the cube's `net_profit`.
    Ledger,
}

fn source_of(table: &TableReference) -> Option<Source> {
    let ours = table.schema().is_none_or(|s| s == "public")
        && table
            .catalog()
            .is_none_or(|c| c == crate::session::CATALOG_NAME);
    match table.table() {
        t if ours && t == PNL_VIEW => Some(Source::Pnl),
        t if ours && t == LEDGER_TABLE => Some(Source::Ledger),
        _ => None,
    }
}

/// The routed plan of `agg`, or `None` when no cube answers it.
fn route(agg: &Aggregate, routes: &[Route]) -> DfResult<Option<LogicalPlan>> {
    // Aggregate ← Filter* ← [SubqueryAlias] ← TableScan pnl
    let mut predicates = Vec::new();
    let mut node = agg.input.as_ref();
    while let LogicalPlan::Filter(f) = node {
        predicates.push(f.predicate.clone());
        node = f.input.as_ref();
    }
    let (qualifier, scan) = match node {
        LogicalPlan::SubqueryAlias(a) => match a.input.as_ref() {
            LogicalPlan::TableScan(s) => (a.alias.clone(), s),
            _ => return Ok(None),
        },
        LogicalPlan::TableScan(s) => (s.table_name.clone(), s),
        _ => return Ok(None),
    };
    let Some(source) = source_of(&scan.table_name) else {
        return Ok(None);
    };
    if !scan.filters.is_empty() || scan.fetch.is_some() {
        return Ok(None);
    }
    if agg
        .group_expr
        .iter()
        .any(|e| matches!(e, Expr::GroupingSet(_)))
    {
        return Ok(None);
    }
    // The dimensions the query needs.
    let mut needed: BTreeSet<Dimension> = BTreeSet::new();
    for e in agg.group_expr.iter().chain(&predicates) {
        for c in e.column_refs() {
            match Dimension::parse(&c.name).filter(|d| PNL_DIMENSIONS.contains(d)) {
                Some(d) => {
                    needed.insert(d);
                }
                None => return Ok(None),
            }
        }
    }
    // The measures it sums, and the aggregate that sums each over the cube.
    let mut measures = Vec::new();
    let mut aggr_expr = Vec::new();
    for e in &agg.aggr_expr {
        let inner = match e {
            Expr::Alias(a) => a.expr.as_ref(),
            other => other,
        };
        let Expr::AggregateFunction(AggregateFunction { func, params }) = inner else {
            return Ok(None);
        };
        let plain = func.name() == "sum"
            && !params.distinct
            && params.filter.is_none()
            && params.order_by.is_empty();
        match (source, params.args.as_slice()) {
            (Source::Pnl, [Expr::Column(c)]) if plain => {
                measures.push(c.name.clone());
                aggr_expr.push(e.clone());
            }
            // Every ledger row's amount, summed: net profit. (With an account filter or
            // grouping the ledger has no row where a cube has a zero: not routed.)
            (Source::Ledger, [Expr::Column(c)]) if plain && c.name == "amount" => {
                measures.push("net_profit".to_string());
                aggr_expr.push(datafusion::functions_aggregate::expr_fn::sum(col(
                    "net_profit",
                )));
            }
            _ => return Ok(None),
        }
    }
    // The set with the fewest rows that holds the dimensions, of a cube that stores the
    // measures (sets whose rows the manifest does not say: the narrowest, after those).
    // A cube with hours has rows for units with hours and no ledger row: never routed to.
    let best = routes
        .iter()
        .filter(|r| !r.def.has_measure("hours"))
        .filter(|r| measures.iter().all(|m| r.def.has_measure(m)))
        .flat_map(|r| {
            r.def
                .grouping_sets
                .iter()
                .filter(|set| needed.iter().all(|d| set.contains(d)))
                .map(move |set| {
                    let set_rows = r
                        .set_rows
                        .get(&CubeDef::set_label(set))
                        .copied()
                        .unwrap_or(u64::MAX);
                    ((set_rows, set.len(), r.rows, r.def.name.clone()), r, set)
                })
        })
        .min_by_key(|(rank, _, _)| rank.clone());
    let Some((_, route, set)) = best else {
        return Ok(None);
    };
    let name = format!("{}.{}", super::CUBES_SCHEMA, route.def.name);
    let mut builder = LogicalPlanBuilder::scan(
        name.as_str(),
        provider_as_source(Arc::clone(&route.table)),
        None,
    )?
    .filter(col(SET_COLUMN).eq(lit(CubeDef::set_label(set))))?
    .alias(qualifier)?;
    for p in predicates.into_iter().rev() {
        builder = builder.filter(p)?;
    }
    let input = builder.build()?;
    let routed = Aggregate::try_new(Arc::new(input), agg.group_expr.clone(), aggr_expr)?;
    log::debug!(
        "routed an aggregate over pnl to {name} [{}]",
        CubeDef::set_label(set)
    );
    // The same output schema as the aggregate it replaces (names, qualifiers and types).
    Ok(Some(as_before(routed, agg)?))
}

/// The `pnl` view, planned like a view but not inlined into queries, so that the router sees
/// `TableScan: pnl`.
#[derive(Debug)]
pub(crate) struct PnlView {
    view: ViewTable,
}

impl PnlView {
    pub(crate) fn new(view: ViewTable) -> Self {
        PnlView { view }
    }

    /// The view's plan (`SELECT … FROM pnl_ledger GROUP BY` its seven dimensions).
    pub(crate) fn logical_plan(&self) -> &LogicalPlan {
        self.view.logical_plan()
    }
}

#[async_trait]
impl TableProvider for PnlView {
    fn schema(&self) -> SchemaRef {
        self.view.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn get_table_definition(&self) -> Option<&str> {
        self.view.get_table_definition()
    }

    fn get_logical_plan(&'_ self) -> Option<Cow<'_, LogicalPlan>> {
        None
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        self.view.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.view.scan(state, projection, filters, limit).await
    }
}
