//! Cursors declared in SQL: `DECLARE name CURSOR FOR query`, `FETCH`, `CLOSE`, in both
//! protocols, with bound parameters.
//!
//! ```text
//!  DECLARE c CURSOR FOR SELECT … WHERE x = $1      (Parse: the query's plan, its $n typed)
//!      │ Bind($1) ─► Execute ─► plan with the values ─► DataFrame ─► producer task ───┐
//!      │                                               (query runtime)  batches, ≤ 2  │
//!      └─► protocol portal "c" (Describe Portal "c" answers the query's columns)       ▼
//!  FETCH FORWARD n FROM c ─► up to n rows taken from the producer ─► encoded in the FETCH's
//!                            format (its RowDescription: the cursor's columns)
//!  CLOSE c / COMMIT / ROLLBACK (cursors WITHOUT HOLD) ─► the producer is dropped: its work stops
//! ```
//!
//! This is what psycopg's server-side cursors (`conn.cursor(name=…)`) and psql's
//! `FETCH_COUNT` send. datafusion-postgres's cursor hook plans the query text without its
//! parameters (so `DECLARE … $1` fails), registers no portal a client can describe, and
//! answers a FETCH's Describe with no columns (libpq then rejects the rows); it also encodes
//! the rows once, in text, when the cursor is declared.
//!
//! A cursor holds at most two batches ahead of the client (the channel), so a cursor over a
//! large result does not grow the server's memory; it scans forward only, as PostgreSQL's
//! `NO SCROLL` cursors do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{DFSchema, ParamValues};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::DataFrame;
use datafusion::sql::sqlparser::ast::{
    CloseCursor, DeclareType, FetchDirection, Statement, Value, ValueWithSpan,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters;
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::api::results::{QueryResponse, Response, Tag};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::types::format::FormatOptions;
use futures::StreamExt;

use super::cancel::AbortOnDrop;
use super::pg_error::error;
use crate::runtime::query_runtime;

/// A cursor statement, as the client wrote it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CursorStatement {
    /// `DECLARE name [NO SCROLL] CURSOR [WITH HOLD] FOR query`.
    Declare {
        name: String,
        /// `WITH HOLD`: the cursor outlives the transaction.
        hold: bool,
        query: String,
    },
    /// `FETCH [FORWARD] [n | ALL] FROM name`; `count` is `None` for ALL.
    Fetch { name: String, count: Option<usize> },
    /// `CLOSE name`, or `CLOSE ALL` (`name` is `None`).
    Close { name: Option<String> },
}

impl CursorStatement {
    /// The cursor statement `sql` is, if it is one (a single statement), with its parse.
    pub(crate) fn parse(sql: &str) -> Option<PgWireResult<(Statement, CursorStatement)>> {
        let head = sql
            .trim_start()
            .chars()
            .take(7)
            .collect::<String>()
            .to_ascii_lowercase();
        if !(head.starts_with("declare") || head.starts_with("fetch") || head.starts_with("close"))
        {
            return None;
        }
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
        let statement = statements.pop()?;
        if !statements.is_empty() {
            return None;
        }
        let cursor = CursorStatement::of(&statement)?;
        Some(cursor.map(|cursor| (statement, cursor)))
    }

    /// The cursor statement `statement` is, if it is one.
    pub(crate) fn of(statement: &Statement) -> Option<PgWireResult<CursorStatement>> {
        match statement {
            Statement::Declare { stmts } => {
                let [declare] = stmts.as_slice() else {
                    return Some(Err(syntax("DECLARE one cursor at a time")));
                };
                if declare.declare_type != Some(DeclareType::Cursor) {
                    return None;
                }
                if declare.scroll == Some(true) {
                    return Some(Err(not_supported(
                        "SCROLL cursors: Amoeba's cursors scan forward only (NO SCROLL)",
                    )));
                }
                let (Some(name), Some(query)) = (declare.names.first(), &declare.for_query) else {
                    return Some(Err(syntax("DECLARE name CURSOR FOR query")));
                };
                Some(Ok(CursorStatement::Declare {
                    name: name.value.clone(),
                    hold: declare.hold == Some(true),
                    query: query.to_string(),
                }))
            }
            Statement::Fetch {
                name,
                direction,
                into: None,
                ..
            } => {
                let count = match direction {
                    FetchDirection::Next | FetchDirection::Forward { limit: None } => Ok(Some(1)),
                    FetchDirection::Forward { limit: Some(n) }
                    | FetchDirection::Count { limit: n } => count_of(n).map(Some),
                    FetchDirection::All | FetchDirection::ForwardAll => Ok(None),
                    _ => Err(not_supported(
                        "cursor can only scan forward (FETCH [FORWARD] n | ALL | NEXT)",
                    )),
                };
                Some(count.map(|count| CursorStatement::Fetch {
                    name: name.value.clone(),
                    count,
                }))
            }
            Statement::Close { cursor } => Some(Ok(CursorStatement::Close {
                name: match cursor {
                    CloseCursor::All => None,
                    CloseCursor::Specific { name } => Some(name.value.clone()),
                },
            })),
            _ => None,
        }
    }
}

/// The statements of a simple-protocol query of several statements (`BEGIN; DECLARE …; FETCH
/// …; COMMIT`) when one of them is a cursor statement, each as SQL text: they run one by one,
/// the cursor statements here and the others as usual. `None` for anything else.
pub(crate) fn split_around_cursors(sql: &str) -> Option<Vec<String>> {
    // Only a text of several statements with a cursor word in it is parsed here: a single
    // statement (nearly every query) costs no extra parse.
    let lower = sql.trim_end().trim_end_matches(';').to_ascii_lowercase();
    if !lower.contains(';')
        || !["declare", "fetch", "close"]
            .iter()
            .any(|w| lower.contains(w))
    {
        return None;
    }
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    (statements.len() > 1 && statements.iter().any(|s| CursorStatement::of(s).is_some()))
        .then(|| statements.iter().map(ToString::to_string).collect())
}

/// Whether `statement` ends a transaction (and with it the cursors declared without HOLD).
pub(crate) fn ends_transaction(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Commit { .. }
            | Statement::Rollback {
                savepoint: None,
                ..
            }
    )
}

/// Whether the SQL text `sql` ends a transaction (the simple protocol's check: a prefix, then
/// a parse only for those).
pub(crate) fn text_ends_transaction(sql: &str) -> bool {
    let head: String = sql
        .trim_start()
        .chars()
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase();
    ["commit", "rollback", "end", "abort"]
        .iter()
        .any(|w| head.starts_with(w))
        && Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .map(|s| s.iter().any(ends_transaction))
            .unwrap_or(false)
}

fn count_of(n: &ValueWithSpan) -> PgWireResult<usize> {
    match &n.value {
        Value::Number(text, _) => text
            .parse::<usize>()
            .map_err(|_| syntax(&format!("FETCH count {text} is not a row count"))),
        other => Err(syntax(&format!("FETCH count {other} is not a row count"))),
    }
}

fn syntax(message: &str) -> PgWireError {
    error("42601", message.to_string())
}

fn not_supported(message: &str) -> PgWireError {
    error("0A000", message.to_string())
}

fn no_such_cursor(name: &str) -> PgWireError {
    error("34000", format!("cursor \"{name}\" does not exist"))
}

/// The cursors of one connection (kept in its extensions).
#[derive(Default)]
pub(crate) struct Cursors(Mutex<HashMap<String, Arc<Cursor>>>);

/// One declared cursor.
pub(crate) struct Cursor {
    schema: SchemaRef,
    hold: bool,
    rows: tokio::sync::Mutex<Pending>,
}

/// What a cursor has not handed out yet.
struct Pending {
    /// The rest of a batch a FETCH took part of.
    leftover: Option<RecordBatch>,
    batches: tokio::sync::mpsc::Receiver<datafusion::error::Result<RecordBatch>>,
    /// The task running the query; dropping it stops the query.
    _producer: AbortOnDrop,
}

impl Cursors {
    /// The cursors of `client`'s connection.
    pub(crate) fn of<C: ClientInfo + ?Sized>(client: &C) -> Arc<Cursors> {
        client
            .session_extensions()
            .get_or_insert_with(Cursors::default)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Cursor>>> {
        // A panic while holding this lock cannot leave the map half-changed (single calls).
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The columns of cursor `name`, as an empty plan (what a FETCH statement describes).
    pub(crate) fn fetch_plan(&self, name: &str) -> PgWireResult<LogicalPlan> {
        let cursor = self
            .lock()
            .get(name)
            .cloned()
            .ok_or_else(|| no_such_cursor(name))?;
        let schema = DFSchema::try_from(cursor.schema.as_ref().clone())
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        Ok(LogicalPlan::EmptyRelation(EmptyRelation {
            produce_one_row: false,
            schema: Arc::new(schema),
        }))
    }

    /// Opens cursor `name` over `df`: its query starts on the query runtime and runs ahead of
    /// the client by at most two batches.
    pub(crate) async fn declare(
        &self,
        name: &str,
        hold: bool,
        df: DataFrame,
    ) -> PgWireResult<Response> {
        if self.lock().contains_key(name) {
            return Err(error("42P03", format!("cursor \"{name}\" already exists")));
        }
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let mut stream = df
            .execute_stream()
            .await
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let (tx, batches) = tokio::sync::mpsc::channel(2);
        let producer = AbortOnDrop(query_runtime().spawn(async move {
            while let Some(batch) = stream.next().await {
                let failed = batch.is_err();
                if tx.send(batch).await.is_err() || failed {
                    break;
                }
            }
        }));
        let cursor = Arc::new(Cursor {
            schema,
            hold,
            rows: tokio::sync::Mutex::new(Pending {
                leftover: None,
                batches,
                _producer: producer,
            }),
        });
        let mut cursors = self.lock();
        if cursors.contains_key(name) {
            return Err(error("42P03", format!("cursor \"{name}\" already exists")));
        }
        cursors.insert(name.to_string(), cursor);
        Ok(Response::Execution(Tag::new("DECLARE CURSOR")))
    }

    /// The next `count` rows of cursor `name` (all that are left for `None`), encoded in
    /// `format`; they stream to the client as the query makes them.
    pub(crate) fn fetch(
        &self,
        name: &str,
        count: Option<usize>,
        format: &Format,
        options: Arc<FormatOptions>,
    ) -> PgWireResult<Response> {
        let cursor = self
            .lock()
            .get(name)
            .cloned()
            .ok_or_else(|| no_such_cursor(name))?;
        let fields = Arc::new(arrow_schema_to_pg_fields(
            &cursor.schema,
            format,
            Some(options),
        )?);
        let remaining = count.unwrap_or(usize::MAX);
        let batches =
            futures::stream::unfold((cursor, remaining), |(cursor, remaining)| async move {
                if remaining == 0 {
                    return None;
                }
                let next = cursor.rows.lock().await.take(remaining).await?;
                let taken = next.as_ref().map(RecordBatch::num_rows).unwrap_or(0);
                Some((next, (cursor, remaining - taken)))
            });
        let row_fields = Arc::clone(&fields);
        let rows = batches
            .map(move |batch| {
                let rows: Box<dyn Iterator<Item = PgWireResult<_>> + Send + Sync> = match batch {
                    Ok(batch) => encode_recordbatch(Arc::clone(&row_fields), batch),
                    Err(e) => Box::new(std::iter::once(Err(PgWireError::ApiError(Box::new(e))))),
                };
                futures::stream::iter(rows)
            })
            .flatten();
        let mut response = QueryResponse::new(fields, rows);
        response.set_command_tag("FETCH");
        Ok(Response::Query(response))
    }

    /// Closes cursor `name` (every cursor for `None`).
    /// Closes cursor `name` (every cursor for `None`); the names closed.
    pub(crate) fn close(&self, name: Option<&str>) -> PgWireResult<Vec<String>> {
        let mut cursors = self.lock();
        match name {
            None => Ok(cursors.drain().map(|(name, _)| name).collect()),
            Some(name) => {
                cursors.remove(name).ok_or_else(|| no_such_cursor(name))?;
                Ok(vec![name.to_string()])
            }
        }
    }

    /// The transaction ended: the cursors declared without HOLD are closed; their names.
    pub(crate) fn end_transaction(&self) -> Vec<String> {
        let mut cursors = self.lock();
        let closed: Vec<String> = cursors
            .iter()
            .filter(|(_, cursor)| !cursor.hold)
            .map(|(name, _)| name.clone())
            .collect();
        for name in &closed {
            cursors.remove(name);
        }
        closed
    }
}

impl Pending {
    /// The next rows, at most `at_most`: `None` when the query has no more.
    async fn take(&mut self, at_most: usize) -> Option<datafusion::error::Result<RecordBatch>> {
        let batch = match self.leftover.take() {
            Some(batch) => batch,
            None => loop {
                match self.batches.recv().await? {
                    Ok(batch) if batch.num_rows() == 0 => continue,
                    Ok(batch) => break batch,
                    Err(e) => return Some(Err(e)),
                }
            },
        };
        if batch.num_rows() > at_most {
            self.leftover = Some(batch.slice(at_most, batch.num_rows() - at_most));
            Some(Ok(batch.slice(0, at_most)))
        } else {
            Some(Ok(batch))
        }
    }
}

/// The values a Bind gave a DECLARE's query, typed by its plan's placeholders.
pub(crate) fn bound_parameters<S: Clone>(
    portal: &Portal<S>,
    plan: &LogicalPlan,
) -> PgWireResult<ParamValues> {
    let types = plan
        .get_parameter_types()
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let mut ordered: Vec<(usize, Option<datafusion::arrow::datatypes::DataType>)> = types
        .into_iter()
        .filter_map(|(id, ty)| {
            id.strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .map(|n| (n, ty))
        })
        .collect();
    ordered.sort_by_key(|(n, _)| *n);
    let refs: Vec<_> = ordered.iter().map(|(_, ty)| ty.as_ref()).collect();
    deserialize_parameters(portal, &refs)
}

#[cfg(test)]
mod tests {
    use super::{CursorStatement, split_around_cursors, text_ends_transaction};

    #[test]
    fn cursor_statements_are_recognised() {
        let declare = CursorStatement::parse(
            "DECLARE \"c1\" NO SCROLL CURSOR WITH HOLD FOR select * from t where a = $1",
        );
        assert_eq!(
            declare.map(|r| r.ok().map(|(_, c)| c)),
            Some(Some(CursorStatement::Declare {
                name: "c1".to_string(),
                hold: true,
                query: "SELECT * FROM t WHERE a = $1".to_string(),
            }))
        );
        for (sql, count) in [
            ("FETCH FORWARD 100 FROM _psql_cursor", Some(100)),
            ("fetch 5 from _psql_cursor", Some(5)),
            ("FETCH NEXT FROM _psql_cursor", Some(1)),
            ("FETCH ALL FROM _psql_cursor", None),
            ("FETCH FORWARD ALL IN _psql_cursor", None),
        ] {
            assert_eq!(
                CursorStatement::parse(sql).map(|r| r.ok().map(|(_, c)| c)),
                Some(Some(CursorStatement::Fetch {
                    name: "_psql_cursor".to_string(),
                    count,
                })),
                "{sql}"
            );
        }
        let backward = CursorStatement::parse("FETCH BACKWARD 1 FROM c");
        assert!(matches!(backward, Some(Err(_))));
        assert_eq!(
            CursorStatement::parse("close all").map(|r| r.ok().map(|(_, c)| c)),
            Some(Some(CursorStatement::Close { name: None }))
        );
        assert!(CursorStatement::parse("select 1").is_none());
        assert!(CursorStatement::parse("closed").is_none());
        assert!(CursorStatement::parse("close").is_none());
        assert_eq!(
            split_around_cursors("begin; declare c cursor for select 1; fetch all from c; commit"),
            Some(vec![
                "BEGIN".to_string(),
                "DECLARE c CURSOR FOR SELECT 1".to_string(),
                "FETCH ALL FROM c".to_string(),
                "COMMIT".to_string(),
            ])
        );
        assert_eq!(split_around_cursors("select 1; select 2"), None);
        assert_eq!(split_around_cursors("fetch all from c"), None);
        assert!(text_ends_transaction("COMMIT"));
        assert!(text_ends_transaction("end"));
        assert!(text_ends_transaction("rollback"));
        assert!(!text_ends_transaction("ROLLBACK TO SAVEPOINT s"));
        assert!(!text_ends_transaction("select 1"));
    }
}
