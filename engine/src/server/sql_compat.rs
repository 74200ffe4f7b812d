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

use std::collections::{BTreeSet, HashMap};
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
    AccessExpr, BinaryOperator, CastKind, DataType, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, GroupByExpr, Ident, ObjectName, ObjectNamePart, Query, Select, SelectItem,
    SetExpr, Statement, Subscript, Value, ValueWithSpan, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::pg_compat;
use crate::pg_expandarray::EXPANDARRAY;

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
    rewrite_binding(sql, settings).0
}

/// [`rewrite`], and the `$n` parameters the client's SQL binds (from the same parse; empty
/// when it does not parse).
pub(crate) fn rewrite_binding(
    sql: &str,
    settings: &HashMap<String, String>,
) -> (Option<String>, BTreeSet<String>) {
    let Ok(mut statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return (None, BTreeSet::new());
    };
    let mut rewriter = Rewriter {
        changed: false,
        reads_catalog: false,
        parameters: BTreeSet::new(),
    };
    for statement in &mut statements {
        if let Some(select) = show_as_select(statement, settings) {
            *statement = select;
            rewriter.changed = true;
            continue;
        }
        rewriter.reads_catalog = reads_catalog(statement);
        let _ = statement.visit(&mut rewriter);
    }
    let rewritten = rewriter.changed.then(|| {
        statements
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    });
    (rewritten, rewriter.parameters)
}

/// `SHOW <setting>` as a one-row SELECT, for the settings Amoeba answers itself; the
/// session's DataFusion and Amoeba options (dotted names) through `current_setting`, which
/// reads them when the query runs; `SHOW ALL` from `pg_settings` and DataFusion's options.
fn show_as_select(statement: &Statement, settings: &HashMap<String, String>) -> Option<Statement> {
    let Statement::ShowVariable { variable } = statement else {
        return None;
    };
    let words: Vec<&str> = variable.iter().map(|part| part.value.as_str()).collect();
    // `SHOW TRANSACTION ISOLATION LEVEL`, `SHOW TIME ZONE`: names of several words;
    // `SHOW amoeba.cube_routing` comes as two.
    let name = match words.join(" ").to_ascii_lowercase().as_str() {
        "transaction isolation level" => "transaction_isolation".to_string(),
        "time zone" => "TimeZone".to_string(),
        _ => words.join("."),
    };
    let key = name.to_ascii_lowercase();
    let sql = if key == "all" {
        let amoeba: String = pg_compat::amoeba_options()
            .iter()
            .map(|option| {
                format!(
                    " UNION ALL SELECT {name}, current_setting({name}), {description}",
                    name = Value::SingleQuotedString(option.key.clone()),
                    description = Value::SingleQuotedString(option.description.to_string()),
                )
            })
            .collect();
        format!(
            "SELECT name, setting, description FROM (\
               SELECT name, setting, short_desc AS description FROM pg_catalog.pg_settings \
               UNION ALL SELECT name, value, description FROM information_schema.df_settings \
                 WHERE name LIKE 'datafusion.%'{amoeba}) \
             ORDER BY name"
        )
    } else if key.contains('.') {
        format!(
            "SELECT current_setting({}) AS {}",
            Value::SingleQuotedString(key),
            Ident::with_quote('"', name.as_str())
        )
    } else if key == "statement_timeout" {
        // statement_timeout is the connection's, answered by datafusion-postgres.
        return None;
    } else {
        let value = settings
            .get(&key)
            .cloned()
            .or_else(|| pg_compat::setting(&key))?;
        format!(
            "SELECT {} AS {}",
            Value::SingleQuotedString(value),
            Ident::with_quote('"', name.as_str())
        )
    };
    Parser::parse_sql(&PostgreSqlDialect {}, &sql)
        .ok()?
        .into_iter()
        .next()
}

struct Rewriter {
    changed: bool,
    /// The statement reads the system catalog (its subqueries in a select list are left to
    /// datafusion-postgres, see `keep_scalar_subqueries`).
    reads_catalog: bool,
    /// The `$n` parameters met, before any rewrite.
    parameters: BTreeSet<String>,
}

impl VisitorMut for Rewriter {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Value(ValueWithSpan {
            value: Value::Placeholder(id),
            ..
        }) = expr
        {
            self.parameters.insert(id.clone());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        self.changed |= cast_aggregates_apart(query);
        if let SetExpr::Select(select) = query.body.as_mut() {
            self.changed |= keep_scalar_subqueries(select, self.reads_catalog);
            self.changed |= unique_output_names(select);
            self.changed |= bigint_ranks(select);
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
            Expr::Function(function) if is_named(function, "generate_subscripts") => {
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
            Expr::Function(function)
                if is_named(function, "generate_series") && function.over.is_none() =>
            {
                // In a select list, PostgreSQL's generate_series returns rows; DataFusion's
                // scalar generate_series returns a list.
                if let Some(series) = parsed_expr(&format!("unnest({function})")) {
                    *expr = series;
                    self.changed = true;
                }
            }
            Expr::Function(function)
                if (is_named(function, "col_description")
                    || is_named(function, "obj_description"))
                    && casts_a_name_to_regclass(&function.args) =>
            {
                // `col_description(format('%I.%I', schema, table)::regclass, n)` (Metabase): a
                // name-to-oid lookup DataFusion cannot cast. Amoeba keeps no comments (the
                // function is NULL for every object), so the call is NULL.
                *expr = Expr::Cast {
                    kind: CastKind::Cast,
                    expr: Box::new(Expr::value(Value::Null)),
                    data_type: DataType::Text,
                    array: false,
                    format: None,
                };
                self.changed = true;
            }
            Expr::Function(function) if is_named(function, "_pg_expandarray") => {
                if let FunctionArguments::List(list) = &function.args
                    && let [array] = list.args.as_slice()
                    && let Some(expanded) = parsed_expr(&format!("unnest({EXPANDARRAY}({array}))"))
                {
                    *expr = expanded;
                    self.changed = true;
                }
            }
            Expr::CompoundFieldAccess { root, access_chain } => {
                match access_chain.as_mut_slice() {
                    // `(record).field`
                    [AccessExpr::Dot(Expr::Identifier(field))]
                        if matches!(**root, Expr::Nested(_)) =>
                    {
                        if let Some(get) = parsed_expr(&format!(
                            "get_field({root}, {})",
                            Value::SingleQuotedString(field.value.clone())
                        )) {
                            *expr = get;
                            self.changed = true;
                        }
                    }
                    // `pg_index.indkey[i]`: int2vector and oidvector count from 0.
                    [
                        ..,
                        AccessExpr::Dot(Expr::Identifier(name)),
                        AccessExpr::Subscript(Subscript::Index { index }),
                    ] if is_zero_based(&name.value) => {
                        *index = plus_one(index);
                        self.changed = true;
                    }
                    [AccessExpr::Subscript(Subscript::Index { index })]
                        if last_name(root).is_some_and(is_zero_based) =>
                    {
                        *index = plus_one(index);
                        self.changed = true;
                    }
                    _ => {}
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
                op: BinaryOperator::Eq | BinaryOperator::NotEq,
                right,
            } if boolean_literal(left, right).is_some()
                || boolean_literal(right, left).is_some() =>
            {
                // `pg_index.indisprimary = 't'` (psqlODBC): PostgreSQL reads the literal as a
                // boolean; DataFusion would compare the column's text, 'true', with 't'.
                let (literal, value) = match boolean_literal(left, right) {
                    Some(value) => (right, value),
                    None => {
                        let value = boolean_literal(right, left).unwrap_or_default();
                        (left, value)
                    }
                };
                **literal = Expr::value(Value::Boolean(value));
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
            Expr::Case {
                operand: None,
                conditions,
                else_result,
                ..
            } if conditions.len() == 1
                && else_result.as_deref().is_none_or(|e| {
                    matches!(
                        e,
                        Expr::Value(ValueWithSpan {
                            value: Value::Null,
                            ..
                        })
                    )
                })
                && matches!(&conditions[0].result, Expr::Subquery(q) if matches!(*q.body, SetExpr::Select(_))) =>
            {
                // `CASE WHEN c THEN (SELECT …) END` (SQLAlchemy's column defaults): DataFusion
                // does not decorrelate a subquery inside CASE. Both are NULL unless `c` holds and
                // the subquery finds a row, so `c` moves into the subquery's WHERE.
                let when = conditions.remove(0);
                let (condition, mut subquery) = match when.result {
                    Expr::Subquery(subquery) => (when.condition, subquery),
                    _ => return ControlFlow::Continue(()),
                };
                if let SetExpr::Select(select) = subquery.body.as_mut() {
                    let condition = Expr::Nested(Box::new(condition));
                    select.selection = Some(match select.selection.take() {
                        Some(filter) => Expr::BinaryOp {
                            left: Box::new(Expr::Nested(Box::new(filter))),
                            op: BinaryOperator::And,
                            right: Box::new(condition),
                        },
                        None => condition,
                    });
                }
                // In parentheses, so that datafusion-postgres keeps it (`keep_scalar_subqueries`).
                *expr = if self.reads_catalog {
                    Expr::Subquery(subquery)
                } else {
                    Expr::Nested(Box::new(Expr::Subquery(subquery)))
                };
                self.changed = true;
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

/// DataFusion leaves a cast out of a column's name, so it names `max(CAST(ts AS DATE))` like
/// `max(ts)` and refuses a select with both (apache/datafusion#18975). The cast arguments of
/// aggregates whose names would clash are wrapped in a one-argument `coalesce` (the same value,
/// a name of its own), wherever the select, its HAVING and its ORDER BY use them. True when
/// rewritten.
fn cast_aggregates_apart(query: &mut Query) -> bool {
    /// An aggregate call's text with its casts left out: how DataFusion names it.
    fn uncast(function: &Expr) -> String {
        struct Uncast;
        impl VisitorMut for Uncast {
            type Break = ();
            fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
                if let Expr::Cast { expr: inner, .. } = expr {
                    *expr = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
                }
                ControlFlow::Continue(())
            }
        }
        let mut function = function.clone();
        let _ = function.visit(&mut Uncast);
        function.to_string()
    }
    struct Names(HashMap<String, std::collections::HashSet<String>>);
    impl datafusion::sql::sqlparser::ast::Visitor for Names {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if matches!(expr, Expr::Function(_)) && is_aggregate(expr) {
                self.0
                    .entry(uncast(expr))
                    .or_default()
                    .insert(expr.to_string());
            }
            ControlFlow::Continue(())
        }
    }
    struct Apart(std::collections::HashSet<String>, bool);
    impl VisitorMut for Apart {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if !(matches!(expr, Expr::Function(_))
                && is_aggregate(expr)
                && self.0.contains(&uncast(expr)))
            {
                return ControlFlow::Continue(());
            }
            if let Expr::Function(function) = expr
                && let FunctionArguments::List(list) = &mut function.args
            {
                for arg in &mut list.args {
                    if let FunctionArg::Unnamed(FunctionArgExpr::Expr(cast @ Expr::Cast { .. })) =
                        arg
                        && let Some(wrapped) = parsed_expr(&format!("coalesce({cast})"))
                    {
                        *cast = wrapped;
                        self.1 = true;
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let SetExpr::Select(select) = query.body.as_mut() else {
        return false;
    };
    let mut names = Names(HashMap::new());
    let _ = datafusion::sql::sqlparser::ast::Visit::visit(&select.projection, &mut names);
    let clashing: std::collections::HashSet<String> = names
        .0
        .into_iter()
        .filter(|(_, texts)| texts.len() > 1)
        .map(|(name, _)| name)
        .collect();
    if clashing.is_empty() {
        return false;
    }
    let mut apart = Apart(clashing, false);
    let _ = select.projection.visit(&mut apart);
    let _ = select.having.visit(&mut apart);
    let _ = query.order_by.visit(&mut apart);
    apart.1
}

/// Catalog columns of PostgreSQL's `int2vector` and `oidvector` types (kept as arrays, which
/// count from 1), whose subscripts count from 0; `i_indoption` is pgjdbc's alias of one.
const ZERO_BASED_VECTORS: &[&str] = &[
    "indkey",
    "indoption",
    "indclass",
    "indcollation",
    "proargtypes",
    "i_indoption",
];

fn is_zero_based(column: &str) -> bool {
    ZERO_BASED_VECTORS
        .iter()
        .any(|vector| column.eq_ignore_ascii_case(vector))
}

/// `(index) + 1`.
fn plus_one(index: &mut Expr) -> Expr {
    Expr::BinaryOp {
        left: Box::new(Expr::Nested(Box::new(std::mem::replace(
            index,
            Expr::value(Value::Null),
        )))),
        op: BinaryOperator::Plus,
        right: Box::new(Expr::value(Value::Number("1".to_string(), false))),
    }
}

/// Boolean columns of the system catalog that drivers compare with `'t'` or `'f'`.
const BOOLEAN_CATALOG_COLUMNS: &[&str] = &[
    "indisprimary",
    "indisunique",
    "indisclustered",
    "indisvalid",
    "indisready",
    "indislive",
    "indimmediate",
    "attisdropped",
    "attnotnull",
    "atthasdef",
    "attislocal",
    "relhasindex",
    "relhasrules",
    "relhastriggers",
    "relhassubclass",
    "relispartition",
    "relisshared",
    "condeferrable",
    "condeferred",
    "convalidated",
    "typnotnull",
    "typisdefined",
    "typbyval",
    "proisstrict",
    "proretset",
    "rolsuper",
    "rolcanlogin",
    "rolinherit",
    "datallowconn",
    "datistemplate",
];

/// The boolean `literal` stands for when `column` is a boolean catalog column and `literal`
/// a string PostgreSQL reads as a boolean (`'t'`, `'false'`, `'yes'`, `'0'`, …).
fn boolean_literal(column: &Expr, literal: &Expr) -> Option<bool> {
    let name = last_name(column)?;
    if !BOOLEAN_CATALOG_COLUMNS
        .iter()
        .any(|c| name.eq_ignore_ascii_case(c))
    {
        return None;
    }
    let Expr::Value(ValueWithSpan {
        value: Value::SingleQuotedString(text),
        ..
    }) = literal
    else {
        return None;
    };
    match text.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// The column name `expr` ends in, if it is a (qualified) column.
fn last_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Identifier(ident) => Some(ident.value.as_str()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|ident| ident.value.as_str()),
        _ => None,
    }
}

/// Whether `args` cast something other than a literal to `regclass`.
fn casts_a_name_to_regclass(args: &FunctionArguments) -> bool {
    struct Finder(bool);
    impl datafusion::sql::sqlparser::ast::Visitor for Finder {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Expr::Cast {
                expr: inner,
                data_type: DataType::Regclass,
                ..
            } = expr
                && !matches!(inner.as_ref(), Expr::Value(_))
            {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut finder = Finder(false);
    let _ = datafusion::sql::sqlparser::ast::Visit::visit(args, &mut finder);
    finder.0
}

/// Whether `function` is called `name` (in any schema, any case).
fn is_named(function: &datafusion::sql::sqlparser::ast::Function, name: &str) -> bool {
    function
        .name
        .0
        .last()
        .and_then(|part| part.as_ident())
        .is_some_and(|ident| ident.value.eq_ignore_ascii_case(name))
}

/// datafusion-pg-catalog replaces a correlated subquery that is a select-list item by NULL
/// (meant for catalog queries of psql and pgcli that DataFusion could not plan), which would
/// make `SELECT u, (SELECT sum(x) FROM t WHERE t.u = o.u) FROM o` answer NULLs, and drops the
/// subquery's parameters (the others then bind to the wrong values). Such a subquery is put in
/// parentheses, which that rule does not look into, unless the statement reads the system
/// catalog (the queries the rule was written for; the parameters it drops are put back by
/// `parameters_kept` in `handlers.rs`, from those `rewrite_binding` found). True when rewritten.
fn keep_scalar_subqueries(select: &mut Select, reads_catalog: bool) -> bool {
    let mut changed = false;
    for item in &mut select.projection {
        let (SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. }) = item else {
            continue;
        };
        if !reads_catalog && matches!(expr, Expr::Subquery(_)) {
            *expr = Expr::Nested(Box::new(std::mem::replace(expr, Expr::value(Value::Null))));
            changed = true;
        }
    }
    changed
}

/// Whether `statement` reads a table of the system catalog (`pg_catalog`,
/// `information_schema`, or a `pg_…` table by its bare name).
fn reads_catalog(statement: &Statement) -> bool {
    struct Finder;
    impl datafusion::sql::sqlparser::ast::Visitor for Finder {
        type Break = ();
        fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
            let catalog = relation
                .0
                .iter()
                .filter_map(|part| part.as_ident())
                .any(|ident| {
                    let name = ident.value.to_ascii_lowercase();
                    name == "pg_catalog" || name == "information_schema" || name.starts_with("pg_")
                });
            if catalog {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
    }
    datafusion::sql::sqlparser::ast::Visit::visit(statement, &mut Finder).is_break()
}

/// Ranking window functions PostgreSQL types `bigint`; DataFusion's are unsigned, which
/// the wire has no type for but `numeric`.
const RANKING_FUNCTIONS: &[&str] = &["row_number", "rank", "dense_rank", "ntile"];

/// A ranking window function selected as a column is cast to `bigint` and, unnamed, named
/// after the function as PostgreSQL names it (DataFusion would spell out the window). True
/// when rewritten.
fn bigint_ranks(select: &mut Select) -> bool {
    let mut changed = false;
    for item in &mut select.projection {
        let (SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. }) = item else {
            continue;
        };
        let Expr::Function(function) = &*expr else {
            continue;
        };
        let name = function.name.to_string().to_ascii_lowercase();
        if function.over.is_none() || !RANKING_FUNCTIONS.contains(&name.as_str()) {
            continue;
        }
        let ranked = Expr::Cast {
            kind: CastKind::Cast,
            expr: Box::new(std::mem::replace(expr, Expr::value(Value::Null))),
            data_type: DataType::BigInt(None),
            array: false,
            format: None,
        };
        *item = match std::mem::replace(item, SelectItem::Wildcard(Default::default())) {
            SelectItem::ExprWithAlias { alias, .. } => SelectItem::ExprWithAlias {
                expr: ranked,
                alias,
            },
            _ => SelectItem::ExprWithAlias {
                expr: ranked,
                alias: Ident::with_quote('"', name),
            },
        };
        changed = true;
    }
    changed
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
            rewritten("SHOW amoeba.cube_routing"),
            "SELECT current_setting('amoeba.cube_routing') AS \"amoeba.cube_routing\""
        );
        assert!(rewritten("show all").contains("information_schema.df_settings"));
        assert_eq!(
            rewrite_binding(
                "select $2, (select x from t where y = $1) from pg_class",
                &HashMap::new()
            )
            .1,
            BTreeSet::from(["$1".to_string(), "$2".to_string()])
        );
        assert_eq!(
            rewritten("select u, (select sum(x) from t where t.u = o.u) as s from o"),
            "SELECT u, ((SELECT sum(x) FROM t WHERE t.u = o.u)) AS s FROM o"
        );
        assert_eq!(
            rewrite(
                "select (select max(typname) from pg_type t where t.oid = a.atttypid) from pg_attribute a",
                &HashMap::new()
            ),
            None
        );
        assert_eq!(
            rewritten(
                "select case when a.g in ('') then (select d.x from d where d.k = a.k) end from a"
            ),
            "SELECT ((SELECT max(d.x) FROM d WHERE (d.k = a.k) AND (a.g IN ('')))) FROM a"
        );
        assert_eq!(
            rewritten(
                "select x from i where i.indisprimary = 't' and 'f' <> i.attisdropped and i.indkey[a.n - 1] = 1"
            ),
            "SELECT x FROM i WHERE i.indisprimary = true AND false <> i.attisdropped AND i.indkey[(a.n - 1) + 1] = 1"
        );
        assert_eq!(
            rewritten(
                "select col_description(cast(format('%I.%I', s, t) as regclass), 2), 'pg_class'::regclass from c"
            ),
            "SELECT CAST(NULL AS TEXT), 'pg_class'::REGCLASS FROM c"
        );
        assert_eq!(
            rewritten(
                "select max(cast(ts as date)) as d, max(ts) from t having max(cast(ts as date)) > 0 order by max(ts::date)"
            ),
            "SELECT max(coalesce(CAST(ts AS DATE))) AS d, max(ts) FROM t \
             HAVING max(coalesce(CAST(ts AS DATE))) > 0 ORDER BY max(coalesce(ts::DATE))"
        );
        assert_eq!(
            rewritten("select generate_series(1, 3) as i, x from generate_series(1, 2) s(x)"),
            "SELECT unnest(generate_series(1, 3)) AS i, x FROM generate_series(1, 2) s (x)"
        );
        assert_eq!(
            rewritten("select (information_schema._pg_expandarray(i.indkey)).n, (k).x from i"),
            "SELECT get_field((unnest(amoeba_pg_expandarray(i.indkey))), 'n'), get_field((k), 'x') FROM i"
        );
        assert_eq!(
            rewritten("select sku, row_number() over (order by n desc), rank() over w as r from t"),
            "SELECT sku, CAST(row_number() OVER (ORDER BY n DESC) AS BIGINT) AS \"row_number\", \
             CAST(rank() OVER w AS BIGINT) AS r FROM t"
        );
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
            rewritten("select (select max(x) from t) from u"),
            "SELECT ((SELECT max(x) FROM t)) FROM u"
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
