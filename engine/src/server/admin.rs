//! Administrative commands over SQL: `REFRESH CUBE <name> [FULL]` and `REFRESH CUBES [FULL]`.
//!
//! ```text
//!  "REFRESH CUBE shop_daily FULL" ──► AdminCommand::parse ──► role check (admin only)
//!        │ (anything else: the SQL engine)                     │
//!        ▼                                                     ▼
//!  DataFusion (sqlparser has no REFRESH)      Refresher::refresh_cubes ──► rows of amoeba_cubes
//! ```
//!
//! The commands are recognised before the SQL parser sees the text (it does not know
//! `REFRESH`), in both the simple and the extended protocol, so psql and drivers that prepare
//! every statement (pgjdbc) can run them. Only a user whose role in the model's `[[users]]` is
//! `admin` may run them: a refresh rewrites what everyone reads. The answer is the refreshed
//! cubes' rows of `amoeba_cubes`, so the caller sees what was rebuilt.

use std::sync::Arc;

use amoeba_catalog::Role;
use datafusion::arrow::array::RecordBatch;
use datafusion_postgres::pgwire::error::PgWireResult;

use super::pg_error::error;
use crate::Refresher;
use crate::cube;
use crate::runtime::InQueryRuntime;

/// A recognised administrative command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AdminCommand {
    /// Refresh one cube (`Some`) or every cube (`None`); `full` rebuilds every month.
    RefreshCubes {
        /// The cube, or every cube.
        cube: Option<String>,
        /// Rebuild every month, not only those whose inputs changed.
        full: bool,
    },
}

impl AdminCommand {
    /// The command `sql` is, if it starts with `REFRESH CUBE`/`REFRESH CUBES`; a malformed one
    /// is a syntax error (SQLSTATE 42601) rather than something the SQL parser would reject
    /// less clearly.
    pub(crate) fn parse(sql: &str) -> Option<PgWireResult<AdminCommand>> {
        let text = sql.trim().trim_end_matches(';').trim();
        let words: Vec<&str> = text.split_whitespace().collect();
        let keyword = |i: usize, k: &str| words.get(i).is_some_and(|w| w.eq_ignore_ascii_case(k));
        if !keyword(0, "REFRESH") || !(keyword(1, "CUBE") || keyword(1, "CUBES")) {
            return None;
        }
        let usage = || {
            Some(Err(error(
                "42601",
                format!(
                    "syntax error in '{text}': expected REFRESH CUBE <name> [FULL] or REFRESH CUBES [FULL]"
                ),
            )))
        };
        let (cube, rest) = if keyword(1, "CUBES") {
            (None, &words[2..])
        } else {
            let Some(name) = words.get(2) else {
                return usage();
            };
            let name = name
                .strip_prefix("cubes.")
                .unwrap_or(name)
                .trim_matches('"');
            if name.is_empty() {
                return usage();
            }
            (Some(name.to_string()), &words[3..])
        };
        let full = match rest {
            [] => false,
            [w] if w.eq_ignore_ascii_case("FULL") => true,
            _ => return usage(),
        };
        Some(Ok(AdminCommand::RefreshCubes { cube, full }))
    }

    /// Runs the command for `user`, who must be an admin of the served model.
    pub(crate) async fn run(
        &self,
        refresher: Option<&Arc<Refresher>>,
        user: Option<&str>,
    ) -> PgWireResult<RecordBatch> {
        let Some(refresher) = refresher else {
            return Err(error(
                "55000",
                "this server serves a fixed session: it has no warehouse to refresh".to_string(),
            ));
        };
        let model = refresher.model().await.ok_or_else(|| {
            error(
                "55000",
                "the warehouse has no model: there are no cubes to refresh".to_string(),
            )
        })?;
        let user = user.unwrap_or("");
        match model.user(user).map(|u| u.role) {
            Some(Role::Admin) => {}
            role => {
                return Err(error(
                    "42501",
                    format!(
                        "permission denied: REFRESH CUBE needs the admin role; user '{user}' {}",
                        match role {
                            Some(r) => format!("is {}", r.as_str()),
                            None => "is not declared in the model's [[users]]".to_string(),
                        }
                    ),
                ));
            }
        }
        let AdminCommand::RefreshCubes { cube, full } = self;
        if let Some(name) = cube
            && model.cube(name).is_none()
        {
            return Err(error(
                "42704",
                format!(
                    "cube '{name}' is not declared in the model (cubes: {})",
                    model
                        .cubes
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        log::info!("user {user}: REFRESH CUBE {cube:?} (full: {full})");
        let statuses = InQueryRuntime::new(refresher.refresh_cubes(cube.as_deref(), *full))
            .await
            .map_err(|e| {
                error(
                    "XX000",
                    format!("refresh failed, the previous state stays served: {e}"),
                )
            })?;
        cube::status_batch(&statuses).map_err(|e| error("XX000", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(sql: &str) -> Option<Result<AdminCommand, String>> {
        AdminCommand::parse(sql).map(|r| r.map_err(|e| e.to_string()))
    }

    #[test]
    fn refresh_commands_are_recognised_and_others_are_left_to_sql() {
        let cube = |c: Option<&str>, full| {
            Some(Ok(AdminCommand::RefreshCubes {
                cube: c.map(str::to_string),
                full,
            }))
        };
        assert_eq!(
            parsed("REFRESH CUBE shop_daily"),
            cube(Some("shop_daily"), false)
        );
        assert_eq!(
            parsed("  refresh cube cubes.\"shop_daily\" full; "),
            cube(Some("shop_daily"), true)
        );
        assert_eq!(parsed("REFRESH CUBES"), cube(None, false));
        assert_eq!(parsed("Refresh Cubes Full"), cube(None, true));
        assert_eq!(parsed("SELECT 'REFRESH CUBE x'"), None);
        assert_eq!(parsed("REFRESH MATERIALIZED VIEW x"), None);
        for bad in ["REFRESH CUBE", "REFRESH CUBE a b", "REFRESH CUBES x FULL"] {
            let e = parsed(bad).and_then(Result::err).unwrap_or_default();
            assert!(
                e.contains("42601") && e.contains("expected REFRESH CUBE"),
                "{bad}: {e}"
            );
        }
    }
}
