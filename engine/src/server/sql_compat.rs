//! PostgreSQL SQL that BI tools and drivers send, rewritten into SQL DataFusion answers the
//! same way, before datafusion-postgres parses it (both protocols).
//!
//! ```text
//!  client SQL ─► sqlparser (PostgreSQL) ─► rewrites below ─► text ─► datafusion-postgres
//!                    └─ does not parse: sent unchanged (the error comes from there)
//! ```
//!
//! | PostgreSQL sends                          | DataFusion would                  | sent instead                        |
//! |-------------------------------------------|-----------------------------------|-------------------------------------|
//! | `SHOW server_version` (and the settings   | answer '' or its own version      | `SELECT '16.6' AS "server_version"` |
//! |  of `pg_compat::setting`)                 |                                   |                                     |
//! | `SELECT count(*), count(*)`, `NULL, NULL` | refuse duplicate output names     | the repeats aliased `count(*)_2` …  |
//! | `SELECT current_user`                     | name it `session_user()`          | `… AS "current_user"`               |
//! | `x::name`                                 | not know the type                 | `x::text`                           |
//! | `'boolin'::regproc`                       | cast the name to an integer       | `'boolin'` (pg_type keeps names)    |
//! | `pg_proc.oid = t.typreceive` (Npgsql)     | cast the name to an integer       | `pg_proc.proname = t.typreceive`    |
//! | `a LIKE p ESCAPE '/'`                     | take only `\` as escape           | `p` with its escapes turned into `\`|
//! | `(SELECT x FROM … WHERE correlated)`      | refuse a non-aggregated scalar    | `(SELECT max(x) FROM …)`            |
//! |  as a scalar subquery                     |  subquery                         |                                     |
//! | `information_schema.table_constraints`,   | not have the table                | `pg_catalog.amoeba_is_…` (empty:    |
//! |  `key_column_usage`, …                    |                                   |  no constraints are declared)       |
//! | `generate_subscripts(a, d)`               | not have it                       | `unnest(range(1, length + 1))`      |
//! | `IN (SELECT … current_setting(            | index an array by a series column | `IN ('public')` (the search path)   |
//! |  'search_path') …)` (Grafana)             |                                   |                                     |

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::{DFSchema, ParamValues};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::results::{Response, Tag};
use datafusion_postgres::pgwire::error::PgWireResult;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, CastKind, DataType, Expr, FunctionArguments, GroupByExpr, Ident, ObjectName,
    ObjectNamePart, Query, Select, SelectItem, SetExpr, Statement, Value, ValueWithSpan, VisitMut,
    VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::pg_compat;

/// `information_schema` tables DataFusion lacks, and the `pg_catalog` tables standing in.
const INFORMATION_SCHEMA_TABLES: &[(&str, &str)] = &[
    ("table_constraints", "amoeba_is_table_constraints"),
    ("key_column_usage", "amoeba_is_key_column_usage"),
    (
        "referential_constraints",
        "amoeba_is_referential_constraints",
    ),
    (
        "constraint_column_usage",
        "amoeba_is_constraint_column_usage",
    ),
    ("character_sets", "amoeba_is_character_sets"),
    ("columns", "amoeba_is_columns"),
];

/// Aggregate functions: a scalar subquery selecting one of these is already aggregated.
const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "every",
    "first_value",
    "last_value",
    "json_agg",
    "jsonb_agg",
];

/// `sql` rewritten for DataFusion, or `None` when nothing needed rewriting (or it does not
/// parse). `settings` are the connection's own (`SET` by the client), in lower case.
pub(crate) fn rewrite(sql: &str, settings: &HashMap<String, String>) -> Option<String> {
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    let mut rewriter = Rewriter { changed: false };
    for statement in &mut statements {
        if let Some(select) = show_as_select(statement, settings) {
            *statement = select;
            rewriter.changed = true;
            continue;
        }
        let _ = statement.visit(&mut rewriter);
    }
    rewriter.changed.then(|| {
        statements
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// `SHOW <setting>` as a one-row SELECT, for the settings Amoeba answers itself.
fn show_as_select(statement: &Statement, settings: &HashMap<String, String>) -> Option<Statement> {
    let Statement::ShowVariable { variable } = statement else {
        return None;
    };
    let [name] = variable.as_slice() else {
        return None;
    };
    let key = name.value.to_ascii_lowercase();
    // statement_timeout is the connection's, answered by datafusion-postgres.
    if key == "statement_timeout" {
        return None;
    }
    let value = settings
        .get(&key)
        .cloned()
        .or_else(|| pg_compat::setting(&key))?;
    let sql = format!(
        "SELECT {} AS {}",
        Value::SingleQuotedString(value),
        Ident::with_quote('"', name.value.as_str())
    );
    Parser::parse_sql(&PostgreSqlDialect {}, &sql)
        .ok()?
        .into_iter()
        .next()
}

struct Rewriter {
    changed: bool,
}

impl VisitorMut for Rewriter {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut() {
            self.changed |= unique_output_names(select);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<()> {
        if let [
            ObjectNamePart::Identifier(schema),
            ObjectNamePart::Identifier(table),
        ] = relation.0.as_slice()
            && schema.value.eq_ignore_ascii_case("information_schema")
            && let Some((_, ours)) = INFORMATION_SCHEMA_TABLES
                .iter()
                .find(|(theirs, _)| table.value.eq_ignore_ascii_case(theirs))
        {
            *relation = ObjectName(vec![
                ObjectNamePart::Identifier(Ident::new("pg_catalog")),
                ObjectNamePart::Identifier(Ident::new(*ours)),
            ]);
            self.changed = true;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Cast {
                kind: CastKind::DoubleColon | CastKind::Cast,
                expr: inner,
                data_type: DataType::Custom(type_name, modifiers),
                ..
            } if modifiers.is_empty() => {
                let type_name = type_name.to_string().to_ascii_lowercase();
                if type_name == "name" || type_name == "pg_catalog.name" {
                    let inner = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
                    *expr = Expr::Cast {
                        kind: CastKind::Cast,
                        expr: Box::new(inner),
                        data_type: DataType::Text,
                        array: false,
                        format: None,
                    };
                    self.changed = true;
                } else if (type_name == "regproc" || type_name == "pg_catalog.regproc")
                    && matches!(
                        inner.as_ref(),
                        Expr::Value(ValueWithSpan {
                            value: Value::SingleQuotedString(_),
                            ..
                        })
                    )
                {
                    *expr = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
                    self.changed = true;
                }
            }
            Expr::Like {
                pattern,
                escape_char: Some(escape),
                ..
            }
            | Expr::ILike {
                pattern,
                escape_char: Some(escape),
                ..
            } => {
                if let Value::SingleQuotedString(c) = &escape.value
                    && c != "\\"
                    && c.chars().count() == 1
                    && let Some(translated) = backslash_escapes(pattern, c)
                {
                    **pattern = translated;
                    escape.value = Value::SingleQuotedString("\\".to_string());
                    self.changed = true;
                }
            }
            Expr::Function(function)
                if function
                    .name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .is_some_and(|i| i.value.eq_ignore_ascii_case("generate_subscripts")) =>
            {
                if let FunctionArguments::List(list) = &function.args
                    && let [array, dimension] = list.args.as_slice()
                    && let Some(subscripts) = parsed_expr(&format!(
                        "unnest(range(1, CAST(coalesce(array_length({array}, {dimension}), 0) AS BIGINT) + 1))"
                    ))
                {
                    *expr = subscripts;
                    self.changed = true;
                }
            }
            Expr::InSubquery {
                expr: probe,
                subquery,
                negated,
            } if subquery
                .to_string()
                .contains("current_setting('search_path')") =>
            {
                // Grafana's "schemas of the search path" subquery indexes an array by a
                // generate_series column; the search path is `"$user", public` and no schema
                // is named after a user, so it is the public schema.
                *expr = Expr::InList {
                    expr: Box::new(std::mem::replace(probe.as_mut(), Expr::value(Value::Null))),
                    list: vec![Expr::value(Value::SingleQuotedString("public".to_string()))],
                    negated: *negated,
                };
                self.changed = true;
            }
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => {
                // pg_type's function columns hold the function's name, not its oid: a join on
                // `pg_proc.oid = typreceive` (Npgsql) matches the name instead.
                let oid_side = if names_type_function(right) {
                    Some(left)
                } else if names_type_function(left) {
                    Some(right)
                } else {
                    None
                };
                if let Some(oid_side) = oid_side
                    && let Expr::CompoundIdentifier(parts) = oid_side.as_mut()
                    && let Some(last) = parts.last_mut()
                    && last.value.eq_ignore_ascii_case("oid")
                {
                    *last = Ident::new("proname");
                    self.changed = true;
                }
            }
            Expr::Subquery(query) => {
                if let SetExpr::Select(select) = query.body.as_mut()
                    && aggregate_single_value(select)
                {
                    self.changed = true;
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// A column of `pg_type` naming a function (`typreceive`, …).
fn names_type_function(expr: &Expr) -> bool {
    const COLUMNS: &[&str] = &[
        "typinput",
        "typoutput",
        "typreceive",
        "typsend",
        "typmodin",
        "typmodout",
        "typanalyze",
    ];
    let ident = match expr {
        Expr::Identifier(ident) => ident,
        Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(ident) => ident,
            None => return false,
        },
        _ => return false,
    };
    COLUMNS.iter().any(|c| ident.value.eq_ignore_ascii_case(c))
}

/// An expression parsed from PostgreSQL text.
fn parsed_expr(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .ok()?
        .parse_expr()
        .ok()
}

/// `pattern` with PostgreSQL's escape character `escape` turned into a backslash: a literal
/// backslash doubled first, then `<escape><c>` → `\<c>` (`chr(92)` is the backslash, spelled
/// so that no layer of quoting reads it as an escape).
fn backslash_escapes(pattern: &Expr, escape: &str) -> Option<Expr> {
    let escaped: String = escape
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() {
                ch.to_string()
            } else {
                format!("\\{ch}")
            }
        })
        .collect();
    parsed_expr(&format!(
        "regexp_replace(replace(({pattern}), chr(92), chr(92) || chr(92)), '{}(.)', chr(92) || '${{1}}', 'g')",
        escaped.replace('\'', "''")
    ))
}

/// A scalar subquery selecting one plain column without aggregating: wrapped in `max()`
/// (PostgreSQL fails when such a subquery yields two rows; where it yields one, the value is
/// the same). True when rewritten.
fn aggregate_single_value(select: &mut Select) -> bool {
    let [SelectItem::UnnamedExpr(item) | SelectItem::ExprWithAlias { expr: item, .. }] =
        select.projection.as_mut_slice()
    else {
        return false;
    };
    let grouped = !matches!(
        &select.group_by,
        GroupByExpr::Expressions(e, _) if e.is_empty()
    );
    if grouped || select.having.is_some() || is_aggregate(item) || select.from.is_empty() {
        return false;
    }
    match parsed_expr(&format!("max({item})")) {
        Some(aggregated) => {
            *item = aggregated;
            true
        }
        None => false,
    }
}

fn is_aggregate(expr: &Expr) -> bool {
    match expr {
        Expr::Function(f) => {
            f.over.is_none()
                && f.name.0.last().is_some_and(|part| {
                    part.as_ident()
                        .is_some_and(|i| AGGREGATES.iter().any(|a| i.value.eq_ignore_ascii_case(a)))
                })
        }
        Expr::Cast { expr, .. } | Expr::Nested(expr) => is_aggregate(expr),
        _ => false,
    }
}

/// PostgreSQL lets a SELECT return two columns of the same name; DataFusion does not. The
/// repeats of an unnamed item are aliased with a suffix, and `current_user`/`session_user`
/// get PostgreSQL's column names (DataFusion would call both `session_user()`). True when
/// rewritten.
fn unique_output_names(select: &mut Select) -> bool {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut changed = false;
    for item in &mut select.projection {
        let SelectItem::UnnamedExpr(expr) = item else {
            continue;
        };
        let text = expr.to_string();
        let count = seen.entry(text.clone()).or_default();
        *count += 1;
        let user_function = matches!(
            text.to_ascii_lowercase().as_str(),
            "current_user" | "session_user" | "user" | "current_role"
        );
        let alias = if *count > 1 {
            format!("{text}_{count}")
        } else if user_function {
            text.to_ascii_lowercase()
        } else {
            continue;
        };
        let expr = std::mem::replace(expr, Expr::value(Value::Null));
        *item = SelectItem::ExprWithAlias {
            expr,
            alias: Ident::with_quote('"', alias),
        };
        changed = true;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        rewrite(sql, &HashMap::new()).unwrap_or_else(|| sql.to_string())
    }

    #[test]
    fn postgres_sql_is_rewritten_for_datafusion() {
        assert_eq!(
            rewritten("SHOW server_version"),
            "SELECT '16.6' AS \"server_version\""
        );
        assert_eq!(
            rewrite(
                "show TimeZone",
                &HashMap::from([("timezone".to_string(), "Asia/Shanghai".to_string())])
            )
            .as_deref(),
            Some("SELECT 'Asia/Shanghai' AS \"TimeZone\"")
        );
        assert_eq!(rewrite("SHOW statement_timeout", &HashMap::new()), None);
        assert_eq!(
            rewritten("select count(*), count(*), NULL, NULL from t"),
            "SELECT count(*), count(*) AS \"count(*)_2\", NULL, NULL AS \"NULL_2\" FROM t"
        );
        assert_eq!(
            rewritten("select current_user, session_user"),
            "SELECT current_user AS \"current_user\", session_user AS \"session_user\""
        );
        assert_eq!(
            rewritten("select n.nspname::name from pg_namespace n"),
            "SELECT CAST(n.nspname AS TEXT) FROM pg_namespace n"
        );
        assert_eq!(
            rewritten("select 1 from pg_type where typinput = 'array_in'::regproc"),
            "SELECT 1 FROM pg_type WHERE typinput = 'array_in'"
        );
        assert_eq!(
            rewritten("select * from information_schema.table_constraints tc"),
            "SELECT * FROM pg_catalog.amoeba_is_table_constraints tc"
        );
        assert!(
            rewritten("select (select t.typname from pg_type t where t.oid = a.atttypid) from pg_attribute a")
                .contains("SELECT max(t.typname) FROM pg_type")
        );
        assert_eq!(
            rewrite("select (select max(x) from t) from u", &HashMap::new()),
            None
        );
        assert_eq!(
            rewrite("select 1 from t where a like 'x%'", &HashMap::new()),
            None
        );
        assert!(
            rewritten("select 1 from t where a not like 'pg/_%' escape '/'")
                .contains("regexp_replace")
        );
        assert_eq!(rewrite("select 1", &HashMap::new()), None);
        assert_eq!(
            rewritten("select 1 from pg_type a join pg_proc on pg_proc.oid = a.typreceive"),
            "SELECT 1 FROM pg_type a JOIN pg_proc ON pg_proc.proname = a.typreceive"
        );
        assert_eq!(
            rewritten("select generate_subscripts(k, 1) from t"),
            "SELECT unnest(range(1, CAST(coalesce(array_length(k, 1), 0) AS BIGINT) + 1)) FROM t"
        );
        assert_eq!(rewrite("not sql at all", &HashMap::new()), None);
    }
}

/// `SAVEPOINT`, `RELEASE [SAVEPOINT]` and `ROLLBACK TO [SAVEPOINT]`: transactions are no-ops on
/// a read-only server, and so are savepoints (psycopg wraps its type lookups in one). A
/// rollback to a savepoint leaves a failed transaction usable again, as in PostgreSQL.
#[derive(Debug)]
pub(crate) struct SavepointHook;

impl SavepointHook {
    fn respond(statement: &Statement) -> Option<PgWireResult<Response>> {
        match statement {
            Statement::Savepoint { .. } => Some(Ok(Response::Execution(Tag::new("SAVEPOINT")))),
            Statement::ReleaseSavepoint { .. } => {
                Some(Ok(Response::Execution(Tag::new("RELEASE"))))
            }
            Statement::Rollback {
                savepoint: Some(_), ..
            } => Some(Ok(Response::TransactionStart(Tag::new("ROLLBACK")))),
            _ => None,
        }
    }
}

#[async_trait]
impl QueryHook for SavepointHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::respond(statement)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        let _answered_at_execution = Self::respond(statement)?;
        Some(Ok(LogicalPlan::EmptyRelation(EmptyRelation {
            produce_one_row: false,
            schema: Arc::new(DFSchema::empty()),
        })))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::respond(statement)
    }
}
