//! The pgwire handlers: datafusion-postgres's session service, with Amoeba's administrative
//! commands in front of it.
//!
//! ```text
//!  client ──► AmoebaHandlers
//!               ├─ startup: TLS required? SCRAM-SHA-256 or trust (auth.rs), one per connection
//!               ├─ simple query ──► AdminCommand? ──yes──► admin::run ──► rows
//!               │        (statements stop on a cancel request or statement_timeout: cancel.rs)
//!               │                        └─no──► DfSessionService (SQL, pg_catalog, SET/SHOW…)
//!               └─ extended: parse ──► AdminCommand? ──yes──► statement without a plan
//!                            execute ──► (no plan and an AdminCommand) ──► admin::run
//! ```
//!
//! Everything that is not an administrative command goes to `DfSessionService` unchanged, so
//! the SQL behaviour is datafusion-postgres's (and pinned by the `.slt` files).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use amoeba_catalog::Model;
use async_trait::async_trait;
use datafusion::common::DFSchema;
use datafusion::execution::memory_pool::MemoryPool;
use datafusion::logical_expr::expr::Placeholder;
use datafusion::logical_expr::{EmptyRelation, Expr, LogicalPlan, LogicalPlanBuilder, lit};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use datafusion_postgres::arrow_pg::datatypes::df::encode_dataframe;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire::api::auth::StartupHandler;
use datafusion_postgres::pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use datafusion_postgres::pgwire::api::portal::{Format, Portal, PortalExecutionState};
use datafusion_postgres::pgwire::api::query::{
    ExtendedQueryHandler, SimpleQueryHandler, send_execution_response, send_query_response,
};
use datafusion_postgres::pgwire::api::results::{FieldInfo, Response, Tag};
use datafusion_postgres::pgwire::api::stmt::{QueryParser, StoredStatement};
use datafusion_postgres::pgwire::api::store::{Entry, PortalStore};
use datafusion_postgres::pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, DEFAULT_NAME, ErrorHandler, METADATA_USER,
    PgWireConnectionState, PgWireServerHandlers, RandomPidSecretKeyGenerator, Type,
};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::pgwire::messages::extendedquery::Execute;
use datafusion_postgres::pgwire::messages::response::EmptyQueryResponse;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use datafusion_postgres::{DfSessionService, QueryHook};
use futures::{Sink, SinkExt};

use super::access::{AccessControl, PERMISSION_DENIED, StatementGate, session_for};
use super::admin::AdminCommand;
use super::auth::{Auth, ConnectionStartup, Credentials};
use super::cancel::Stopper;
use super::config::ServerConfig;
use super::copy_out::CopyOutHook;
use super::cursor::{self, CursorStatement, Cursors};
use super::idle::IdleWatch;
use super::pg_error;
use super::sql_compat::{self, SavepointHook};
use crate::Refresher;
use crate::cube;

/// A statement as datafusion-postgres keeps it: the text, and its parse and plan (none for an
/// administrative command).
type DfStatement = (String, Option<(Statement, LogicalPlan)>);

/// The handlers of one server.
pub(crate) struct AmoebaHandlers {
    service: Arc<AmoebaService>,
    /// `None`: trust.
    credentials: Option<Arc<Credentials>>,
    require_tls: bool,
    query_memory: Option<usize>,
    connections: Arc<ConnectionManager>,
    pids: Arc<RandomPidSecretKeyGenerator>,
    cancel: Arc<DefaultCancelHandler>,
    pub(crate) idle: Arc<IdleWatch>,
}

impl AmoebaHandlers {
    pub(crate) fn new(
        ctx: Arc<SessionContext>,
        refresher: Option<Arc<Refresher>>,
        model: Option<&Model>,
        auth: Auth,
        config: &ServerConfig,
    ) -> Self {
        let access = Arc::new(AccessControl::from_model(model));
        let sessions = Arc::new(Sessions {
            any: Sessions::service(Arc::new(ctx.as_ref().clone()), &access),
            base: ctx,
            access,
            query_memory: config.query_memory,
        });
        let connections = Arc::new(ConnectionManager::new());
        let idle = Arc::new(IdleWatch::new(config.idle_timeout, config.tls.is_some()));
        AmoebaHandlers {
            service: Arc::new(AmoebaService {
                parser: Arc::new(AmoebaParser {
                    sessions: Arc::clone(&sessions),
                }),
                sessions,
                refresher,
                statement_timeout: config.statement_timeout,
                idle: Arc::clone(&idle),
            }),
            credentials: match auth {
                Auth::Scram(credentials) => Some(Arc::new(credentials)),
                Auth::Trust => None,
            },
            require_tls: config.require_tls,
            query_memory: config.query_memory,
            pids: Arc::new(RandomPidSecretKeyGenerator::default()),
            cancel: Arc::new(DefaultCancelHandler::new(Arc::clone(&connections))),
            connections,
            idle,
        }
    }
}

impl PgWireServerHandlers for AmoebaHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.service)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.service)
    }

    /// A new one per connection (pgwire asks once per connection): it holds the state of
    /// that connection's authentication exchange.
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(ConnectionStartup::new(
            self.credentials.clone(),
            self.require_tls,
            Arc::clone(&self.connections),
            Arc::clone(&self.pids),
        ))
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(LoggingErrorHandler {
            query_memory: self.query_memory,
        })
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::clone(&self.cancel)
    }
}

/// PostgreSQL's SQLSTATE for DataFusion's errors that have one (drivers and BI tools branch
/// on the class: 42 = the statement is wrong, 0A = not supported, 22 = bad data); the rest
/// stay XX000.
fn sqlstate_of(text: &str) -> Option<&'static str> {
    if text.contains("table '") && text.contains("' not found") {
        return Some("42P01");
    }
    const CODES: &[(&str, &str)] = &[
        ("No field named", "42703"),
        ("Invalid function", "42883"),
        ("no function matches", "42883"),
        ("ParserError", "42601"),
        ("sql parser error", "42601"),
        ("This feature is not implemented", "0A000"),
        ("Unsupported", "0A000"),
        ("Divide by zero", "22012"),
        ("Cast error", "22P02"),
    ];
    CODES
        .iter()
        .find(|(pattern, _)| text.contains(pattern))
        .map(|(_, code)| *code)
}

struct LoggingErrorHandler {
    query_memory: Option<usize>,
}

impl ErrorHandler for LoggingErrorHandler {
    /// Logs the error; a refusal raised while planning (row-level security) gets SQLSTATE
    /// 42501 like the others, a query over its memory limit 53200.
    fn on_error<C>(&self, client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        if let PgWireError::ApiError(e) = error {
            let text = e.to_string();
            let coded = pg_error::error;
            if let Some(code) = sqlstate_of(&text) {
                *error = coded(code, text.clone());
            }
            if let Some(at) = text.find(PERMISSION_DENIED) {
                *error = coded("42501", text[at..].to_string());
            } else if text.contains("Resources exhausted") {
                *error = coded(
                    "53200",
                    format!(
                        "out of memory: the query needs more than the {} a query may use \
                         (--query-memory-mb): {text}",
                        memory_limit_text(self.query_memory)
                    ),
                );
            }
        }
        log::info!(
            "to {} ({}): {error}",
            client.socket_addr(),
            user_of(client).unwrap_or("?")
        );
    }
}

/// The per-query memory limit as a reader wants it: MiB, or KiB below one MiB (tests set
/// limits of a few hundred KiB, which "0 MiB" would misstate).
fn memory_limit_text(limit: Option<usize>) -> String {
    match limit {
        None => "memory".to_string(),
        Some(bytes) if bytes < 1 << 20 => format!("{} KiB", bytes >> 10),
        Some(bytes) => format!("{} MiB", bytes >> 20),
    }
}

fn user_of<C: ClientInfo + ?Sized>(client: &C) -> Option<&str> {
    client.metadata().get(METADATA_USER).map(String::as_str)
}

/// The SQL session of each connection: its own `SessionContext` over the served catalog, so
/// that a `SET` is the connection's (as in PostgreSQL) and a unit leader's plans are cut to
/// their units (`access.rs`). Kept in the connection's extensions: it ends with it.
pub(crate) struct Sessions {
    base: Arc<SessionContext>,
    access: Arc<AccessControl>,
    query_memory: Option<usize>,
    /// For what needs no user: describing a parsed statement's parameters and columns.
    any: Arc<DfSessionService>,
}

/// The SQL service of one connection.
#[derive(Clone)]
pub(crate) struct ConnectionSql {
    pub(crate) service: Arc<DfSessionService>,
    /// The connection's session (what the service plans and runs in).
    pub(crate) ctx: Arc<SessionContext>,
    /// The memory pool of the connection's queries.
    pub(crate) pool: Arc<dyn MemoryPool>,
}

impl Sessions {
    fn service(ctx: Arc<SessionContext>, access: &Arc<AccessControl>) -> Arc<DfSessionService> {
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(StatementGate {
                access: Arc::clone(access),
            }),
            Arc::new(SavepointHook),
            Arc::new(CopyOutHook),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
        ];
        Arc::new(DfSessionService::new_with_hooks(ctx, hooks))
    }

    /// The SQL service of `client`'s connection (made at its first statement).
    fn of<C: ClientInfo + ?Sized>(&self, client: &C) -> ConnectionSql {
        let user = user_of(client).unwrap_or("");
        let sql = client.session_extensions().get_or_insert_with(|| {
            let access = self.access.of(user);
            let ctx = session_for(&self.base, user, &access, self.query_memory);
            let ctx = Arc::new(ctx);
            ConnectionSql {
                pool: Arc::clone(&ctx.runtime_env().memory_pool),
                service: Sessions::service(Arc::clone(&ctx), &self.access),
                ctx,
            }
        });
        sql.as_ref().clone()
    }
}

/// The query service: administrative commands, then SQL in the user's session.
struct AmoebaService {
    sessions: Arc<Sessions>,
    parser: Arc<AmoebaParser>,
    refresher: Option<Arc<Refresher>>,
    /// The server's `statement_timeout`: a ceiling, clients may only ask for less.
    statement_timeout: Option<Duration>,
    idle: Arc<IdleWatch>,
}

impl AmoebaService {
    async fn admin<C: ClientInfo>(
        &self,
        client: &C,
        command: &AdminCommand,
        format: &Format,
    ) -> PgWireResult<Response> {
        let batch = command
            .run(self.refresher.as_ref(), user_of(client))
            .await?;
        let ctx = SessionContext::new();
        let df = ctx
            .read_batch(batch)
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        Ok(Response::Query(
            encode_dataframe(df, format, Some(options)).await?,
        ))
    }

    /// Runs a cursor statement (`cursor.rs`); a DECLARE with the `plan` of its query, its
    /// parameters bound. Closed cursors' protocol portals go with them.
    async fn cursor<C: ClientInfo + ClientPortalStore>(
        &self,
        client: &C,
        statement: CursorStatement,
        plan: Option<LogicalPlan>,
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C::PortalStore: PortalStore,
    {
        let running = self.idle.running(client);
        let cursors = Cursors::of(client);
        match statement {
            CursorStatement::Declare { name, hold, .. } => {
                let plan = plan.ok_or_else(|| {
                    PgWireError::ApiError("a DECLARE without its query's plan".into())
                })?;
                let sql = self.sessions.of(client);
                let stopper =
                    Stopper::start(client, self.statement_timeout, running, &sql.pool).await;
                stopper
                    .run(async {
                        let df = sql
                            .ctx
                            .execute_logical_plan(plan)
                            .await
                            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
                        cursors.declare(&name, hold, df).await
                    })
                    .await
            }
            CursorStatement::Fetch { name, count } => {
                let sql = self.sessions.of(client);
                let stopper =
                    Stopper::start(client, self.statement_timeout, running, &sql.pool).await;
                let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
                Ok(stopper.rows(cursors.fetch(&name, count, format, options)?))
            }
            CursorStatement::Close { name } => {
                for closed in cursors.close(name.as_deref())? {
                    client.portal_store().rm_portal(&closed);
                }
                Ok(Response::Execution(Tag::new("CLOSE CURSOR")))
            }
        }
    }

    /// A cursor statement in the extended protocol: a DECLARE's query gets the Bind's values,
    /// and the cursor becomes a protocol portal too (psycopg describes it by name).
    async fn extended_cursor<C>(
        &self,
        client: &mut C,
        portal: &Portal<DfStatement>,
        statement: &Statement,
        cursor: CursorStatement,
        plan: &LogicalPlan,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = DfStatement>,
    {
        let format = &portal.result_column_format;
        let CursorStatement::Declare { name, query, .. } = &cursor else {
            return self.cursor(client, cursor, None, format).await;
        };
        let (name, query) = (name.clone(), query.clone());
        let values = cursor::bound_parameters(portal, plan)?;
        let bound = plan
            .clone()
            .replace_params_with_values(&values)
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let response = self.cursor(client, cursor, Some(bound), format).await?;
        if let Statement::Declare { stmts } = statement
            && let Some(for_query) = stmts.first().and_then(|d| d.for_query.clone())
        {
            let described: DfStatement = (query, Some((Statement::Query(for_query), plan.clone())));
            client
                .portal_store()
                .put_portal(Arc::new(Portal::new_cursor(
                    name.clone(),
                    Arc::new(StoredStatement::new(name, described, vec![])),
                )));
        }
        Ok(response)
    }

    /// A COMMIT or ROLLBACK closes the cursors declared without HOLD.
    fn end_transaction<C: ClientInfo + ClientPortalStore>(client: &C)
    where
        C::PortalStore: PortalStore,
    {
        for closed in Cursors::of(client).end_transaction() {
            client.portal_store().rm_portal(&closed);
        }
    }
}

#[async_trait]
impl SimpleQueryHandler for AmoebaService {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(statements) = cursor::split_around_cursors(query) {
            let mut responses = Vec::with_capacity(statements.len());
            for statement in statements {
                responses.extend(SimpleQueryHandler::do_query(self, client, &statement).await?);
            }
            return Ok(responses);
        }
        let running = self.idle.running(client);
        match AdminCommand::parse(query) {
            Some(command) => Ok(vec![
                self.admin(client, &command?, &Format::UnifiedText).await?,
            ]),
            None => {
                if let Some(statement) = CursorStatement::parse(query) {
                    let (_, statement) = statement?;
                    let plan = match &statement {
                        CursorStatement::Declare { query, .. } => {
                            match self.parser.parse_query(client, query, &[]).await? {
                                Some((_, Some((_, plan)))) => Some(plan),
                                _ => None,
                            }
                        }
                        _ => None,
                    };
                    return Ok(vec![
                        self.cursor(client, statement, plan, &Format::UnifiedText)
                            .await?,
                    ]);
                }
                if cursor::text_ends_transaction(query) {
                    AmoebaService::end_transaction(client);
                }
                let sql = self.sessions.of(client);
                let rewritten = sql_compat::rewrite(query, client.metadata());
                let query = rewritten.as_deref().unwrap_or(query);
                let stopper =
                    Stopper::start(client, self.statement_timeout, running, &sql.pool).await;
                let responses = stopper
                    .run(SimpleQueryHandler::do_query(
                        sql.service.as_ref(),
                        client,
                        query,
                    ))
                    .await?;
                Ok(responses.into_iter().map(|r| stopper.rows(r)).collect())
            }
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for AmoebaService {
    type Statement = DfStatement;
    type QueryParser = AmoebaParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::clone(&self.parser)
    }

    /// pgwire's Execute collects all of a portal's rows before sending the first when the
    /// client fetches them all (`max_rows` 0, what drivers do without a fetch size): a large
    /// result would sit whole in the server's memory. A query's rows are streamed here
    /// instead, batch by batch as DataFusion makes them; a fetch of some rows (a fetch size,
    /// a cursor's batches) and every other statement take pgwire's way.
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let portal = match client.portal_store().get_portal(name) {
            Some(Entry::Value(portal))
                if message.max_rows == 0
                    && matches!(client.state(), PgWireConnectionState::ReadyForQuery)
                    && matches!(
                        portal.statement.statement,
                        (_, Some((Statement::Query(_) | Statement::Fetch { .. }, _)))
                    ) =>
            {
                portal
            }
            _ => return self._on_execute(client, message).await,
        };
        let state = portal.state();
        if !matches!(*state.lock().await, PortalExecutionState::Initial) {
            return self._on_execute(client, message).await;
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        match ExtendedQueryHandler::do_query(self, client, portal.as_ref(), 0).await? {
            Response::Query(rows) => {
                *state.lock().await = PortalExecutionState::Finished;
                send_query_response(client, rows, false).await?;
            }
            Response::EmptyQuery => {
                client
                    .feed(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await?;
            }
            Response::Execution(tag) => send_execution_response(client, tag).await?,
            Response::Error(e) => return Err(PgWireError::UserError(e)),
            _ => {
                return Err(PgWireError::ApiError(
                    "a query answered with a transaction or COPY response".into(),
                ));
            }
        }
        client.set_state(PgWireConnectionState::ReadyForQuery);
        Ok(())
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let text_and_plan = &portal.statement.statement;
        let (text, plan) = text_and_plan;
        let running = self.idle.running(client);
        if plan.is_none()
            && let Some(command) = AdminCommand::parse(text)
        {
            return self
                .admin(client, &command?, &portal.result_column_format)
                .await;
        }
        if let (_, Some((statement, plan))) = text_and_plan {
            if let Some(cursor) = CursorStatement::of(statement) {
                drop(running);
                return self
                    .extended_cursor(client, portal, statement, cursor?, plan)
                    .await;
            }
            if cursor::ends_transaction(statement) {
                AmoebaService::end_transaction(client);
            }
        }
        let sql = self.sessions.of(client);
        let stopper = Stopper::start(client, self.statement_timeout, running, &sql.pool).await;
        let response = stopper
            .run(ExtendedQueryHandler::do_query(
                sql.service.as_ref(),
                client,
                portal,
                max_rows,
            ))
            .await?;
        Ok(stopper.rows(response))
    }
}

/// datafusion-postgres's parser, with administrative commands kept as statements without a
/// plan (it would reject them), and cursor statements planned here (`cursor.rs`).
pub(crate) struct AmoebaParser {
    sessions: Arc<Sessions>,
}

impl AmoebaParser {
    /// A query (or any statement datafusion-postgres answers) in `client`'s session, after
    /// the compatibility rewrites.
    async fn parse_query<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<DfStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let parser = self.sessions.of(client).service.query_parser();
        let (rewritten, bound) = sql_compat::rewrite_binding(sql, client.metadata());
        let sql = rewritten.as_deref().unwrap_or(sql);
        Ok(match parser.parse_sql(client, sql, types).await? {
            Some((text, Some((statement, plan)))) => {
                Some((text, Some((statement, parameters_kept(plan, &bound)?))))
            }
            other => other,
        })
    }
}

/// `plan` with every parameter of `bound` in it. datafusion-postgres binds the values of an
/// Execute to the parameters its plan has, in order, so a parameter its SQL rewrites dropped
/// (a catalog subquery replaced by NULL) would shift the values after it onto the wrong
/// parameters. A dropped one comes back in a filter that is always true (`$n IS NULL OR
/// true`, gone once the values are bound and the plan simplified).
fn parameters_kept(
    plan: LogicalPlan,
    bound: &std::collections::BTreeSet<String>,
) -> PgWireResult<LogicalPlan> {
    if bound.is_empty()
        || matches!(
            plan,
            LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Statement(_)
        )
    {
        return Ok(plan);
    }
    let planned = plan
        .get_parameter_types()
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let kept = bound
        .iter()
        .filter(|id| !planned.contains_key(*id))
        .map(|id| {
            Expr::Placeholder(Placeholder::new_with_field(id.clone(), None))
                .is_null()
                .or(lit(true))
        })
        .reduce(Expr::and);
    match kept {
        None => Ok(plan),
        Some(predicate) => LogicalPlanBuilder::from(plan)
            .filter(predicate)
            .and_then(LogicalPlanBuilder::build)
            .map_err(|e| PgWireError::ApiError(Box::new(e))),
    }
}

#[async_trait]
impl QueryParser for AmoebaParser {
    type Statement = DfStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        match AdminCommand::parse(sql) {
            Some(command) => {
                command?;
                Ok(Some((sql.to_string(), None)))
            }
            None => {
                let Some(cursor) = CursorStatement::parse(sql) else {
                    return self.parse_query(client, sql, types).await;
                };
                let (statement, cursor) = cursor?;
                let plan = match &cursor {
                    CursorStatement::Declare { query, .. } => {
                        match self.parse_query(client, query, types).await? {
                            Some((_, Some((_, plan)))) => plan,
                            _ => {
                                return Err(pg_error::error(
                                    "42601",
                                    "DECLARE CURSOR needs a query",
                                ));
                            }
                        }
                    }
                    // A FETCH describes the cursor's columns.
                    CursorStatement::Fetch { name, .. } => Cursors::of(client).fetch_plan(name)?,
                    CursorStatement::Close { .. } => LogicalPlan::EmptyRelation(EmptyRelation {
                        produce_one_row: false,
                        schema: Arc::new(DFSchema::empty()),
                    }),
                };
                Ok(Some((sql.to_string(), Some((statement, plan)))))
            }
        }
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.sessions.any.query_parser().get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match stmt {
            // A DECLARE and a CLOSE return no rows (the cursor's rows come with FETCH).
            (_, Some((Statement::Declare { .. } | Statement::Close { .. }, _))) => Ok(vec![]),
            (text, None) if AdminCommand::parse(text).is_some() => arrow_schema_to_pg_fields(
                &cube::status_schema(),
                column_format.unwrap_or(&Format::UnifiedText),
                None,
            ),
            _ => self
                .sessions
                .any
                .query_parser()
                .get_result_schema(stmt, column_format),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sqlstate_of;

    #[test]
    fn datafusion_errors_get_postgres_sqlstates() {
        for (error, code) in [
            (
                "Error during planning: table 'amoeba.public.nope' not found",
                Some("42P01"),
            ),
            (
                "Schema error: No field named nope. Valid fields are a, b.",
                Some("42703"),
            ),
            (
                "Error during planning: Invalid function 'nope'",
                Some("42883"),
            ),
            (
                "SQL error: ParserError(\"Expected: an expression\")",
                Some("42601"),
            ),
            ("This feature is not implemented: SAVEPOINT", Some("0A000")),
            ("Arrow error: Divide by zero error", Some("22012")),
            (
                "Object at location /w/ledger/v1/x.parquet not found: No such file",
                None,
            ),
        ] {
            assert_eq!(sqlstate_of(error), code, "{error}");
        }
    }
}
