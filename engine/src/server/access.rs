//! Who reads what: the roles of the model's `[[users]]`, row-level security for unit leaders,
//! and the statements only an admin may run.
//!
//! ```text
//!  connection (user) ──► AccessControl::of ──► Admin, Analyst   a session of the connection's
//!                                                                own over the served catalog
//!                                             Leader           the same, whose first analyzer
//!                                                                rule is UnitRowFilter
//!  every statement ──► StatementGate (a datafusion-postgres query hook, before planning):
//!                      non-admins run queries, EXPLAIN, SHOW, safe SETs, transactions and
//!                      cursors; DDL, DML, COPY, external tables → 42501
//! ```
//!
//! A unit leader's session rewrites every table scan in the plan — in joins, subqueries, CTEs,
//! UNION branches and under EXPLAIN [ANALYZE] alike, since the rule walks the whole plan and
//! every subquery — into `Filter unit_id IN (<their unit and its descendants>)` over the scan.
//! A table without a `unit_id` column (the unified views and the platform tables, whose rows
//! belong to units only through the ledger; the reconciliation report; files and rejections)
//! is refused, so a leader reads money only through `pnl`, `pnl_ledger`, the cubes with a unit
//! dimension and `amoeba_units`, each cut to their subtree. Rows a cube keeps for a coarser
//! set (`unit_id` empty: totals over other units too) are filtered out with the rest. The rule
//! runs before the cube router, so a routed query keeps the unit filter and is answered by a
//! cube only if the cube has `unit_id`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use amoeba_catalog::{Model, Role};
use async_trait::async_trait;
use datafusion::common::tree_node::{Transformed, TransformedResult};
use datafusion::common::{Column, ParamValues, plan_err};
use datafusion::config::ConfigOptions;
use datafusion::error::Result as DfResult;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::memory_pool::{GreedyMemoryPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, lit};
use datafusion::optimizer::AnalyzerRule;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{CopySource, CopyTarget, Set, Statement};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::api::{ClientInfo, METADATA_USER};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use std::num::NonZeroUsize;

/// Tables every role may read although they have no `unit_id`: metadata, no amounts.
const PUBLIC_TABLES: [&str; 2] = ["amoeba_functions", "amoeba_cubes"];
/// Schemas of catalog metadata (clients' introspection).
const METADATA_SCHEMAS: [&str; 2] = ["pg_catalog", "information_schema"];
/// The marker of a refusal in an error message (mapped to SQLSTATE 42501 for the client).
pub(crate) const PERMISSION_DENIED: &str = "permission denied";

/// What one connection may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Access {
    /// Everything.
    Admin,
    /// Reads everything.
    Analyst,
    /// Reads the rows of `units` (their unit and its descendants) only.
    Leader {
        /// The unit they lead.
        unit: String,
        /// It and its descendants.
        units: BTreeSet<String>,
    },
    /// Not declared in a model that declares users (possible only without passwords).
    Unknown,
}

/// The roles of a model's users.
#[derive(Debug, Default)]
pub(crate) struct AccessControl {
    /// `None`: no model, or a model without users — everyone is an admin (a development
    /// setup: `--auth trust` on one's own machine).
    users: Option<HashMap<String, Access>>,
}

impl AccessControl {
    pub(crate) fn from_model(model: Option<&Model>) -> AccessControl {
        let Some(model) = model.filter(|m| !m.users.is_empty()) else {
            return AccessControl { users: None };
        };
        let users = model
            .users
            .iter()
            .map(|u| {
                let access = match (u.role, &u.unit) {
                    (Role::Admin, _) => Access::Admin,
                    (Role::Analyst, _) => Access::Analyst,
                    (Role::UnitLeader, Some(unit)) => Access::Leader {
                        unit: unit.clone(),
                        units: model.subtree(unit).into_iter().collect(),
                    },
                    // Validation binds every leader to a unit; without one, nothing.
                    (Role::UnitLeader, None) => Access::Unknown,
                };
                (u.name.clone(), access)
            })
            .collect();
        AccessControl { users: Some(users) }
    }

    /// What `user` may do.
    pub(crate) fn of(&self, user: &str) -> Access {
        match &self.users {
            None => Access::Admin,
            Some(users) => users.get(user).cloned().unwrap_or(Access::Unknown),
        }
    }
}

/// The session a connection of `access` runs in, made from the served session `base`: the
/// same catalog (what a refresh swaps in is seen at once), settings of its own, and a memory
/// pool of its own of `query_memory` bytes (a connection runs one query at a time).
pub(crate) fn session_for(
    base: &SessionContext,
    user: &str,
    access: &Access,
    query_memory: Option<usize>,
) -> SessionContext {
    let state = base.state();
    let mut builder = SessionStateBuilder::new_from_existing(state.clone());
    if let Access::Leader { unit, units } = access {
        let mut rules = state.analyzer().rules.clone();
        rules.insert(
            0,
            Arc::new(UnitRowFilter {
                user: user.to_string(),
                unit: unit.clone(),
                units: units.iter().cloned().collect(),
            }),
        );
        builder = builder.with_analyzer_rules(rules);
    }
    if let Some(bytes) = query_memory {
        let pool = TrackConsumersPool::new(
            GreedyMemoryPool::new(bytes),
            NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
        );
        match RuntimeEnvBuilder::from_runtime_env(state.runtime_env())
            .with_memory_pool(Arc::new(pool))
            .build()
        {
            Ok(runtime) => builder = builder.with_runtime_env(Arc::new(runtime)),
            // Building a runtime from a working one does not fail; should it, the session
            // keeps the server's pool rather than refusing the connection.
            Err(e) => log::warn!("memory limit of {user}'s session not set: {e}"),
        }
    }
    let ctx = SessionContext::new_with_state(builder.build());
    crate::pg_compat::register_user_functions(&ctx, user);
    ctx
}

/// Row-level security of a unit leader: every scan cut to their units (see the module docs).
#[derive(Debug)]
pub(crate) struct UnitRowFilter {
    user: String,
    unit: String,
    units: Vec<String>,
}

impl AnalyzerRule for UnitRowFilter {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::TableScan(scan) = &node else {
                return Ok(Transformed::no(node));
            };
            let table = &scan.table_name;
            if table
                .schema()
                .is_some_and(|s| METADATA_SCHEMAS.contains(&s))
                || (PUBLIC_TABLES.contains(&table.table())
                    && table.schema().is_none_or(|s| s == "public"))
            {
                return Ok(Transformed::no(node));
            }
            if scan.source.schema().field_with_name("unit_id").is_err() {
                return plan_err!(
                    "{PERMISSION_DENIED} for {table}: user '{}' leads unit {} and reads the rows \
                     of its units only (pnl, pnl_ledger, amoeba_units and the cubes with unit_id)",
                    self.user,
                    self.unit
                );
            }
            // Scan every column, keep the leader's rows, then give the plan the columns it had.
            let allowed = Expr::Column(Column::new(Some(table.clone()), "unit_id"))
                .in_list(self.units.iter().map(|u| lit(u.as_str())).collect(), false);
            let mut builder = LogicalPlanBuilder::scan_with_filters(
                table.clone(),
                Arc::clone(&scan.source),
                None,
                scan.filters.clone(),
            )?
            .filter(allowed)?;
            if scan.projection.is_some() {
                let columns: Vec<Expr> = scan
                    .projected_schema
                    .columns()
                    .into_iter()
                    .map(Expr::Column)
                    .collect();
                builder = builder.project(columns)?;
            }
            Ok(Transformed::yes(builder.build()?))
        })
        .data()
    }

    fn name(&self) -> &str {
        "amoeba_unit_row_filter"
    }
}

/// Refuses, for non-admins, every statement but queries, EXPLAIN, SHOW, safe SETs,
/// transactions and cursors (a datafusion-postgres query hook: it sees each parsed statement
/// before it is planned).
#[derive(Debug)]
pub(crate) struct StatementGate {
    pub(crate) access: Arc<AccessControl>,
}

impl StatementGate {
    fn check(
        &self,
        statement: &Statement,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireError> {
        let user = client
            .metadata()
            .get(METADATA_USER)
            .map_or("", String::as_str);
        let access = self.access.of(user);
        if access == Access::Admin {
            return None;
        }
        if let Access::Unknown = access {
            return Some(denied(format!(
                "user '{user}' is not declared in the model's [[users]]"
            )));
        }
        match allowed(statement) {
            Ok(()) => None,
            Err(what) => Some(denied(format!(
                "{what} needs the admin role; user '{user}' is {}",
                match access {
                    Access::Leader { .. } => "a unit leader",
                    _ => "an analyst",
                }
            ))),
        }
    }
}

/// Whether a non-admin may run `statement`; otherwise what it is.
fn allowed(statement: &Statement) -> Result<(), String> {
    match statement {
        // A query's rows to the client (psql's `\copy (…) to`): a query like any other.
        Statement::Copy {
            source: CopySource::Query(_),
            to: true,
            target: CopyTarget::Stdout,
            ..
        } => Ok(()),
        Statement::Query(_)
        | Statement::ExplainTable { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowFunctions { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowCreate { .. }
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Discard { .. }
        | Statement::Declare { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. }
        | Statement::Deallocate { .. } => Ok(()),
        Statement::Explain { statement, .. } => allowed(statement),
        Statement::Set(set) => match set {
            Set::SingleAssignment { variable, .. } => {
                let name = variable.to_string().to_lowercase();
                // DataFusion's own settings include the memory limit and the planner: only
                // the time zone is a reader's choice. `amoeba.*` and PostgreSQL's are free.
                if name.starts_with("datafusion.") && name != "datafusion.execution.time_zone" {
                    Err(format!("SET {name}"))
                } else {
                    Ok(())
                }
            }
            Set::SetTimeZone { .. } | Set::SetNames { .. } | Set::SetNamesDefault {} => Ok(()),
            Set::SetTransaction { .. } => Ok(()),
            other => Err(format!("SET {}", first_words(&other.to_string()))),
        },
        other => Err(first_words(&other.to_string())),
    }
}

/// The statement's first two words, upper-case (`CREATE EXTERNAL`, `DROP TABLE`).
fn first_words(sql: &str) -> String {
    sql.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

/// A refusal (SQLSTATE 42501).
pub(crate) fn denied(message: String) -> PgWireError {
    super::pg_error::error("42501", format!("{PERMISSION_DENIED}: {message}"))
}

#[async_trait]
impl QueryHook for StatementGate {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        self.check(statement, &*client).map(Err)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        self.check(statement, client).map(Err)
    }

    async fn handle_extended_query(
        &self,
        _statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn check(sql: &str) -> Result<(), String> {
        let statements =
            Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| e.to_string())?;
        statements.iter().try_for_each(allowed)
    }

    #[test]
    fn readers_run_queries_and_never_ddl_dml_or_limit_settings() {
        for ok in [
            "SELECT 1",
            "WITH a AS (SELECT 1) SELECT * FROM a",
            "EXPLAIN ANALYZE SELECT 1",
            "SHOW search_path",
            "COPY (SELECT * FROM pnl) TO STDOUT WITH (FORMAT csv, HEADER)",
            "SET amoeba.cube_routing = false",
            "SET datafusion.execution.time_zone = '+08:00'",
            "SET TIME ZONE 'Asia/Shanghai'",
            "BEGIN",
            "COMMIT",
            "DISCARD ALL",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for (refused, says) in [
            ("CREATE TABLE t (a INT)", "CREATE TABLE"),
            ("DROP TABLE pnl_ledger", "DROP TABLE"),
            ("INSERT INTO t VALUES (1)", "INSERT INTO"),
            ("COPY (SELECT 1) TO '/tmp/x'", "COPY"),
            ("COPY order_lines TO STDOUT", "COPY"),
            ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
            ("EXPLAIN DELETE FROM t", "DELETE FROM"),
            (
                "SET datafusion.runtime.memory_limit = '100G'",
                "SET datafusion.runtime.memory_limit",
            ),
        ] {
            let e = check(refused).expect_err(refused);
            assert!(e.starts_with(says), "{refused}: {e}");
        }
    }
}
