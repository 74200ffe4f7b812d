//! `COPY (query) TO STDOUT`: a query's rows in PostgreSQL's COPY text or CSV format, as psql's
//! `\copy (…) to 'file'` and drivers' `copy_expert` ask for them.
//!
//! ```text
//!  COPY (SELECT …) TO STDOUT [WITH (FORMAT csv, HEADER, DELIMITER ',', NULL '')]
//!     │ the query runs in the connection's session (row-level security, memory limit)
//!     ▼
//!  CopyOutResponse ─► CopyData (one per batch: its rows, formatted) … ─► CopyDone
//! ```
//!
//! DataFusion's own `COPY … TO` writes files and has no STDOUT; a table name (`COPY t TO
//! STDOUT`) is read as `SELECT * FROM t`. `COPY … FROM` (loading data) is not served: the
//! warehouse is read-only over SQL.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement,
};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::results::{CopyResponse, Response};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::copy::CopyData;
use futures::StreamExt;

/// How the rows are written.
#[derive(Debug, Clone, PartialEq)]
struct CopyFormat {
    csv: bool,
    header: bool,
    delimiter: char,
    null: String,
    quote: char,
}

impl CopyFormat {
    fn of(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> PgWireResult<CopyFormat> {
        let csv = options
            .iter()
            .any(|o| matches!(o, CopyOption::Format(f) if f.value.eq_ignore_ascii_case("csv")))
            || legacy.iter().any(|o| matches!(o, CopyLegacyOption::Csv(_)));
        let binary = options
            .iter()
            .any(|o| matches!(o, CopyOption::Format(f) if f.value.eq_ignore_ascii_case("binary")))
            || legacy.iter().any(|o| matches!(o, CopyLegacyOption::Binary));
        if binary {
            return Err(not_supported("COPY … TO STDOUT in binary format"));
        }
        let mut format = CopyFormat {
            csv,
            header: false,
            delimiter: if csv { ',' } else { '\t' },
            null: if csv {
                String::new()
            } else {
                "\\N".to_string()
            },
            quote: '"',
        };
        for option in options {
            match option {
                CopyOption::Header(on) => format.header = *on,
                CopyOption::Delimiter(c) => format.delimiter = *c,
                CopyOption::Null(s) => format.null = s.clone(),
                CopyOption::Quote(c) => format.quote = *c,
                _ => {}
            }
        }
        for option in legacy {
            match option {
                CopyLegacyOption::Header => format.header = true,
                CopyLegacyOption::Delimiter(c) => format.delimiter = *c,
                CopyLegacyOption::Null(s) => format.null = s.clone(),
                CopyLegacyOption::Csv(csv_options) => {
                    for o in csv_options {
                        match o {
                            CopyLegacyCsvOption::Header => format.header = true,
                            CopyLegacyCsvOption::Quote(c) => format.quote = *c,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(format)
    }

    /// One value as COPY writes it.
    fn field(&self, out: &mut String, value: Option<&str>) {
        let Some(value) = value else {
            out.push_str(&self.null);
            return;
        };
        if self.csv {
            let quoted = value.is_empty() && self.null.is_empty()
                || value.contains([self.delimiter, self.quote, '\n', '\r'])
                || value == self.null;
            if quoted {
                out.push(self.quote);
                for c in value.chars() {
                    if c == self.quote {
                        out.push(self.quote);
                    }
                    out.push(c);
                }
                out.push(self.quote);
            } else {
                out.push_str(value);
            }
        } else {
            for c in value.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c == self.delimiter => {
                        out.push('\\');
                        out.push(c);
                    }
                    c => out.push(c),
                }
            }
        }
    }

    fn line(&self, out: &mut String, values: impl Iterator<Item = Option<String>>) {
        for (i, value) in values.enumerate() {
            if i > 0 {
                out.push(self.delimiter);
            }
            self.field(out, value.as_deref());
        }
        out.push('\n');
    }

    /// The rows of `batch`, a line each.
    fn lines(&self, batch: &RecordBatch) -> PgWireResult<Vec<String>> {
        let options = FormatOptions::default().with_null("");
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let mut lines = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let values = batch
                .columns()
                .iter()
                .zip(&formatters)
                .map(|(column, f)| (!column.is_null(row)).then(|| f.value(row).to_string()));
            let mut line = String::new();
            self.line(&mut line, values);
            lines.push(line);
        }
        Ok(lines)
    }
}

fn not_supported(what: &str) -> PgWireError {
    super::pg_error::error("0A000", format!("{what} is not supported"))
}

/// Serves `COPY (query) TO STDOUT` and `COPY table TO STDOUT`.
#[derive(Debug)]
pub(crate) struct CopyOutHook;

impl CopyOutHook {
    async fn run(statement: &Statement, ctx: &SessionContext) -> Option<PgWireResult<Response>> {
        let Statement::Copy {
            source,
            to: true,
            target: CopyTarget::Stdout,
            options,
            legacy_options,
            ..
        } = statement
        else {
            return None;
        };
        let query = match source {
            CopySource::Query(query) => query.to_string(),
            CopySource::Table {
                table_name,
                columns,
            } => {
                let columns = if columns.is_empty() {
                    "*".to_string()
                } else {
                    columns
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                format!("SELECT {columns} FROM {table_name}")
            }
        };
        Some(Self::copy(&query, options, legacy_options, ctx).await)
    }

    async fn copy(
        query: &str,
        options: &[CopyOption],
        legacy: &[CopyLegacyOption],
        ctx: &SessionContext,
    ) -> PgWireResult<Response> {
        let format = Arc::new(CopyFormat::of(options, legacy)?);
        let api = |e: datafusion::error::DataFusionError| PgWireError::ApiError(Box::new(e));
        let frame = ctx.sql(query).await.map_err(api)?;
        let schema = frame.schema().as_arrow().clone();
        let columns = schema.fields().len();
        let batches = frame.execute_stream().await.map_err(api)?;
        // A CopyData message per row, as PostgreSQL sends them (pgwire's `COPY n` counts the
        // messages). The header goes in front of the first row, so that it is not counted; a
        // result without rows sends it alone.
        let header = Arc::new(std::sync::Mutex::new(format.header.then(|| {
            let mut out = String::new();
            format.line(
                &mut out,
                schema.fields().iter().map(|f| Some(f.name().to_string())),
            );
            out
        })));
        let first = Arc::clone(&header);
        let rows = batches.flat_map(move |batch| {
            let lines = batch.map_err(api).and_then(|batch| format.lines(&batch));
            let messages: Vec<PgWireResult<CopyData>> = match lines {
                Ok(mut lines) => {
                    if let Some(line) = lines.first_mut()
                        && let Some(header) = first.lock().ok().and_then(|mut h| h.take())
                    {
                        line.insert_str(0, &header);
                    }
                    lines
                        .into_iter()
                        .map(|l| Ok(CopyData::new(Bytes::from(l))))
                        .collect()
                }
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(messages)
        });
        let header_alone = futures::stream::once(async move {
            header
                .lock()
                .ok()
                .and_then(|mut h| h.take())
                .map(|h| Ok(CopyData::new(Bytes::from(h))))
        })
        .filter_map(futures::future::ready);
        let data = rows.chain(header_alone);
        // Overall format 0: text (CSV is text too).
        Ok(Response::CopyOut(CopyResponse::new(0, columns, data)))
    }
}

#[async_trait]
impl QueryHook for CopyOutHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::run(statement, ctx).await
    }

    async fn handle_extended_parse_query(
        &self,
        _statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        None
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::run(statement, ctx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_as_copy_writes_them() {
        let csv = CopyFormat::of(
            &[
                CopyOption::Format(datafusion::sql::sqlparser::ast::Ident::new("csv")),
                CopyOption::Header(true),
            ],
            &[],
        )
        .expect("csv");
        let mut out = String::new();
        csv.line(
            &mut out,
            [
                Some("a,b".to_string()),
                None,
                Some("say \"hi\"".to_string()),
                Some(String::new()),
                Some("天猫".to_string()),
            ]
            .into_iter(),
        );
        assert_eq!(out, "\"a,b\",,\"say \"\"hi\"\"\",\"\",天猫\n");
        let text = CopyFormat::of(&[], &[]).expect("text");
        let mut out = String::new();
        text.line(&mut out, [Some("a\tb\\c".to_string()), None].into_iter());
        assert_eq!(out, "a\\tb\\\\c\t\\N\n");
    }
}
