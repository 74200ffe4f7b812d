//! A refresh by delta: the published version plus the change since it, instead of a full
//! build ([`refresh`]).
//!
//! ```text
//!  published vN: months, _costed.moves, _stock.book, _month_inputs.json, _mapped/
//!        │
//!  vN's mapped rows ──────────────────────────────► Side(Fₒ) ─┐
//!        └─ + the added files' (mapped.rs) ─► closure K ─► Side(Fₙ) ─┤
//!                                                     ├─ order_rows, cost_rows ─► net delta
//!                                                     ├─ month_rows (rules over vN's inputs + Δ)
//!                                                     └─ merge_months ─► the months it rewrites
//!        │
//!  v(N+1) = the rewritten months' rows + every other month's files of vN as they are,
//!           vN's costed movements and book with the re-costed chains' replaced,
//!           the new month inputs, the mapped rows after the change, the checks: the
//!           ledger's totals by month from vN's (_ledger.sums) but the rewritten months',
//!           the sources' over every mapped row
//! ```
//!
//! It is taken only when the change is one the delta build is exact for (docs/incremental.md,
//! "When the build is full"): files were only added, all of them platform exports, the
//! published version kept what the delta starts from, and the ledger is built in memory.
//! Otherwise the reason is returned ([`FullBecause`]) and the caller builds in full. A delta
//! whose checks fail where the published version's passed is not published either: a full
//! build follows, so a gap in the closure costs time, never a wrong ledger.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use amoeba_catalog::Catalog;
use amoeba_catalog::model::Model;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::{cast, interleave};
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;

use super::recost::{chain_runs, null_last};
use super::{
    MergedMonths, PublishedCosting, Side, collect_one, cost_ledger_rows, cost_rows, merge_months,
    month_rows, net_delta, order_rows, sql_list,
};
use crate::error::Result;
use crate::fingerprint::Fingerprint;
use crate::inputs::InputChanges;
use crate::ledger::checks::{self, CheckRow, CheckSums, Status};
use crate::ledger::closure::{self, ChangeSince, ClosureKeys};
use crate::ledger::staging::Staging;
use crate::ledger::{
    ByDelta, Ledger, LedgerManifest, cache, conform_to, lap, mapped, named, published_costed,
    published_ledger_sums, published_month_inputs, published_stock, register, register_published,
    register_rows, share_mapped, sources, stock, units_batch,
};
use crate::session::new_session;

/// Why a refresh builds the ledger in full rather than by delta (one line, for the refresh
/// log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullBecause(pub String);

/// What the published version kept for the delta build.
struct Published {
    costed: RecordBatch,
    book: RecordBatch,
    month_inputs: crate::ledger::MonthInputs,
    ledger_sums: RecordBatch,
}

/// The ledger of `catalog` (the inputs after `changes`) as the published version `manifest`
/// plus the change, or why it must be built in full.
pub(crate) async fn refresh(
    catalog: &Catalog,
    model: &Model,
    manifest: &LedgerManifest,
    changes: &InputChanges,
) -> Result<std::result::Result<Ledger, FullBecause>> {
    let started = Instant::now();
    let mut step = Instant::now();
    if let Some(why) = full_because(model, manifest, changes) {
        return Ok(Err(why));
    }
    // What the version kept, read together: the costed movements decode on one core while
    // the mapped rows decode file by file on the others.
    let (published, stored) = tokio::join!(
        published_costing(catalog, manifest),
        mapped::published(catalog.warehouse(), &manifest.version, catalog)
    );
    let published = match published? {
        Ok(published) => published,
        Err(why) => return Ok(Err(why)),
    };
    let stored = match stored? {
        Ok(stored) => stored,
        Err(why) => return Ok(Err(FullBecause(why))),
    };
    lap(
        &mut step,
        "delta: the published costing and mapped rows read",
    );
    let last_month = manifest.months.keys().next_back().map(String::as_str);

    // The new side: the published mapped rows with the change's, the closure over them.
    let added: BTreeSet<String> = changes.added.iter().cloned().collect();
    let patched = match mapped::patched(catalog, &stored, &added).await? {
        Ok(patched) => patched,
        Err(why) => return Ok(Err(FullBecause(why))),
    };
    lap(&mut step, "delta: the mapped rows patched");
    log::info!("{}", patched.patch);
    let new_ctx = new_session()?;
    patched
        .rows
        .register(&new_ctx, catalog, &patched.schemas)
        .await?;
    lap(&mut step, "delta: the patched rows registered");
    // The published rows that gave way: the closure holds what they named (a fee's old
    // order, a line's old payment day) as it holds what the new rows name.
    patched.register_replaced(&new_ctx).await?;
    lap(&mut step, "delta: the replaced rows registered");
    let closure = closure::closure_in(
        &new_ctx,
        catalog,
        ChangeSince {
            changes,
            last_month,
        },
    )
    .await?;
    log::info!("{}", closure.summary());
    lap(&mut step, "delta: the closure");
    if let Some(why) = &closure.everything {
        return Ok(Err(FullBecause(why.clone())));
    }
    let Some(keys) = closure.keys.clone() else {
        return Ok(Err(FullBecause(
            "no added file was served (all rejected?): nothing to take in by delta".to_string(),
        )));
    };
    // The checks read the whole new side (its source totals, files and rejected rows): a
    // second session over the same mapped rows.
    let checks_ctx = new_session()?;
    share_mapped(&new_ctx, &checks_ctx, catalog).await?;
    lap(&mut step, "delta: the checks' session");
    // The old side: the published mapped rows as they are. The two sides are opened
    // together: each is many small queries over the closure's rows.
    let old_ctx = new_session()?;
    stored
        .register(&old_ctx, &catalog.without(&added), &patched.schemas)
        .await?;
    drop(stored);
    let (new, old) = tokio::try_join!(
        Side::restricted(new_ctx, model, &keys),
        Side::restricted(old_ctx, model, &keys)
    )?;
    lap(&mut step, "delta: the new side and the old side");
    if let Some(moved) = line_off_the_closures_days(&old, &new, &keys).await? {
        return Ok(Err(FullBecause(moved)));
    }

    let (new_rows, old_rows) = tokio::try_join!(order_rows(&new, model), order_rows(&old, model))?;
    lap(&mut step, "delta: order rows");
    let cost = cost_rows(
        &old,
        &new,
        model,
        PublishedCosting {
            costed: &published.costed,
            book: &published.book,
        },
        // Not carried forward here: the merged book carries every chain through the new
        // inputs' last month, which the month rules find.
        None,
    )
    .await?;
    let cost_new = cost_ledger_rows(&cost.costed, model).await?;
    let cost_old = cost_ledger_rows(&cost.replaced, model).await?;
    lap(&mut step, "delta: re-costing");
    let net = net_delta(&[
        (&new_rows, 1),
        (&old_rows, -1),
        (std::slice::from_ref(&cost_new), 1),
        (std::slice::from_ref(&cost_old), -1),
    ])
    .await?;
    let rules = month_rows(&old, &new, model, &published.month_inputs, &net).await?;
    drop((old, new));
    lap(&mut step, "delta: month rules");
    let published_ctx = new_session()?;
    register_published(&published_ctx, catalog.warehouse(), &manifest.version).await?;
    let merged = merge_months(&published_ctx, &net, &rules).await?;
    lap(&mut step, "delta: merge");

    let new_last = rules.inputs.months().into_iter().next_back();
    let book = merged_book(
        &published.book,
        &cost.chains,
        &cost.book,
        new_last.as_deref(),
    )?;
    let costed = merged_costed(&published.costed, &cost.chains, &cost.costed)?;
    lap(&mut step, "delta: book and costed movements");

    let (mut checks, check_sums) = delta_checks(
        &checks_ctx,
        model,
        ledger_sums_by_delta(&published.ledger_sums, &merged).await?,
        &costed,
        &book,
    )
    .await?;
    checks.extend(rules.checks.iter().cloned());
    lap(&mut step, "delta: checks");
    if let Some(failed) = newly_failed(&manifest.checks, &checks) {
        return Ok(Err(FullBecause(format!(
            "the delta's check {failed} failed where version {} passed",
            manifest.version
        ))));
    }
    let mut months = manifest.months.clone();
    months.retain(|m, _| !merged.months.contains(m));
    months.extend(merged.fingerprints()?);
    let rows = months
        .values()
        .filter_map(|f| usize::try_from(Fingerprint::rows_of(f)?).ok())
        .sum();
    log::info!(
        "delta from {}: {} month(s) rewritten, {} carried over ({:.2}s)",
        manifest.version,
        merged.months.len(),
        months.len().saturating_sub(merged.months.len()),
        started.elapsed().as_secs_f64()
    );
    Ok(Ok(Ledger {
        model: model.clone(),
        batches: merged.batches,
        rows,
        stock: Some(book),
        costed: Some(costed),
        month_inputs: Some(rules.inputs),
        check_sums: Some(check_sums),
        checks,
        elapsed: started.elapsed(),
        inputs: None,
        listing: None,
        changes: None,
        closure: Some(closure),
        reused: None,
        staged: None,
        by_delta: Some(ByDelta {
            base: manifest.version.clone(),
            rewritten: merged.months,
            months,
            mapped: patched.patch,
        }),
        full_because: None,
        mapped: Some(patched.rows),
    }))
}

/// Why the delta cannot be exact, when a line of K's orders left a shop-day the closure
/// does not hold: it moved to another payment day (a corrected header), or it is gone.
///
/// The ads of a shop-day are spread over the lines paid that day. A line that left a day
/// outside the closure's shop-days (D) would leave that day's spread as published, and the
/// checks would not see it (the day's ad spend still adds up to its shop's). The closure
/// holds the days of the published rows the change replaced (`mapped.rs`), so this does not
/// happen; it stays as a guard (under 0.05 s at scale 1), and a refresh that trips it
/// builds in full.
async fn line_off_the_closures_days(
    old: &Side,
    new: &Side,
    keys: &ClosureKeys,
) -> Result<Option<String>> {
    const LINES: &str = "SELECT arrow_cast(platform, 'Utf8') AS platform, \
        arrow_cast(shop_id, 'Utf8') AS shop_id, arrow_cast(order_id, 'Utf8') AS order_id, \
        arrow_cast(line_id, 'Utf8') AS line_id, CAST(paid_at AS DATE) AS day FROM order_lines";
    let ctx = new_session()?;
    register(&ctx, "m_old", collect_one(&old.ctx, LINES).await?)?;
    register(&ctx, "m_new", collect_one(&new.ctx, LINES).await?)?;
    register(&ctx, "m_days", keys.shop_days.clone())?;
    let left = collect_one(
        &ctx,
        "SELECT o.platform, o.shop_id, o.order_id, o.line_id, CAST(o.day AS VARCHAR) AS day \
         FROM m_old o \
         LEFT ANTI JOIN m_new n ON n.platform = o.platform AND n.shop_id = o.shop_id \
           AND n.line_id = o.line_id AND n.day IS NOT DISTINCT FROM o.day \
         LEFT ANTI JOIN m_days d ON d.platform = o.platform AND d.shop_id = o.shop_id \
           AND d.date = o.day \
         WHERE o.day IS NOT NULL \
         ORDER BY 1, 2, 3, 4 LIMIT 1",
    )
    .await?;
    if left.num_rows() == 0 {
        return Ok(None);
    }
    let text = |name: &str| -> Result<String> {
        let column = named(&left, name, "a line off the closure's days")?;
        let column = cast(column, &DataType::Utf8)?;
        Ok(column.as_string::<i32>().value(0).to_string())
    };
    Ok(Some(format!(
        "line {} of {} order {} (shop {}) left its payment day {}, whose ad spread the \
         closure does not hold",
        text("line_id")?,
        text("platform")?,
        text("order_id")?,
        text("shop_id")?,
        text("day")?
    )))
}

/// Why a change cannot be taken in by delta, if it cannot (before anything is read).
fn full_because(
    model: &Model,
    manifest: &LedgerManifest,
    changes: &InputChanges,
) -> Option<FullBecause> {
    let full = |why: String| Some(FullBecause(why));
    if !changes.only_added() {
        return full(format!(
            "{} input(s) replaced, {} removed: their old rows are gone",
            changes.replaced.len(),
            changes.removed.len()
        ));
    }
    if changes.is_empty() {
        return full(format!(
            "the inputs of version {} again, built by another program",
            manifest.version
        ));
    }
    if let Some(path) = changes.added.iter().find(|p| !p.starts_with("exports/")) {
        return full(format!(
            "{path} is not a platform export (master data, purchases, stock, expenses and \
             hours are taken in by a full build)"
        ));
    }
    if model.ledger_memory_limit.is_some() {
        return full("the ledger is built on disk ([ledger] memory_limit_mb)".to_string());
    }
    None
}

/// The costing the published version kept (its costed movements, book, month inputs and
/// ledger sums), read together, or why the change is built in full without them.
async fn published_costing(
    catalog: &Catalog,
    manifest: &LedgerManifest,
) -> Result<std::result::Result<Published, FullBecause>> {
    let warehouse = catalog.warehouse();
    let version = &manifest.version;
    let (costed, book, month_inputs, ledger_sums) = tokio::try_join!(
        published_costed(warehouse, version),
        published_stock(warehouse, version),
        published_month_inputs(warehouse, version),
        published_ledger_sums(warehouse, version),
    )?;
    let (Some(costed), Some(book), Some(month_inputs), Some(ledger_sums)) =
        (costed, book, month_inputs, ledger_sums)
    else {
        return Ok(Err(FullBecause(format!(
            "version {version} kept no costed movements, stock book, month inputs or ledger sums"
        ))));
    };
    Ok(Ok(Published {
        costed,
        book,
        month_inputs,
        ledger_sums,
    }))
}

/// The published book with the re-costed chains' pages from their first changed month on
/// replaced by `recosted`, every chain carried forward through `last_month`.
fn merged_book(
    published: &RecordBatch,
    chains: &RecordBatch,
    recosted: &RecordBatch,
    last_month: Option<&str>,
) -> Result<RecordBatch> {
    let from = chain_months(chains)?;
    let mut pages: Vec<_> = stock::pages_of(published)?
        .into_iter()
        .filter(|p| {
            from.get(&(p.sku.clone(), p.warehouse.clone()))
                .is_none_or(|m| p.month < *m)
        })
        .collect();
    pages.extend(stock::pages_of(recosted)?);
    pages.sort_by(|a, b| (&a.sku, &a.warehouse, &a.month).cmp(&(&b.sku, &b.warehouse, &b.month)));
    stock::book_batch(&pages, last_month)
}

/// Each re-costed chain's first changed month.
fn chain_months(chains: &RecordBatch) -> Result<BTreeMap<(String, String), String>> {
    const WHAT: &str = "re-costed chains";
    let sku = crate::ledger::utf8_named(chains, "sku", WHAT)?;
    let warehouse = crate::ledger::utf8_named(chains, "warehouse", WHAT)?;
    let from = crate::ledger::utf8_named(chains, "from_month", WHAT)?;
    Ok((0..chains.num_rows())
        .map(|i| {
            (
                (sku.value(i).to_string(), warehouse.value(i).to_string()),
                from.value(i).to_string(),
            )
        })
        .collect())
}

/// The published costed movements with the re-costed chains' from their first changed month
/// on replaced by `recosted`, in costing order.
///
/// Both inputs are in costing order (`sku, warehouse, ts, …`), and a chain's movements from
/// a month on are the end of its run, so the two are merged chain by chain in one pass: each
/// published chain keeps its movements before its first changed month, followed by its
/// re-costed ones, and a chain only re-costed (a SKU × warehouse new to the data) comes in
/// its place. Sorting the union instead took about half a second at scale 1 (1.5 M
/// movements).
fn merged_costed(
    published: &RecordBatch,
    chains: &RecordBatch,
    recosted: &RecordBatch,
) -> Result<RecordBatch> {
    const WHAT: &str = "the costed movements";
    let from = chain_months(chains)?;
    let recosted = conform_to(recosted, &published.schema(), WHAT)?;
    let utf8 = |batch: &RecordBatch, name: &str| -> Result<ArrayRef> {
        Ok(cast(named(batch, name, WHAT)?, &DataType::Utf8)?)
    };
    let (p_sku, p_warehouse, p_month) = (
        utf8(published, "sku")?,
        utf8(published, "warehouse")?,
        utf8(published, "month")?,
    );
    let (r_sku, r_warehouse) = (utf8(&recosted, "sku")?, utf8(&recosted, "warehouse")?);
    let p_runs = chain_runs(p_sku.as_string(), p_warehouse.as_string(), WHAT)?;
    let r_runs = chain_runs(r_sku.as_string(), r_warehouse.as_string(), WHAT)?;
    let p_month = p_month.as_string::<i32>();
    let mut take: Vec<(usize, usize)> = Vec::with_capacity(published.num_rows());
    let (mut p, mut r) = (p_runs.iter().peekable(), r_runs.iter().peekable());
    loop {
        let order = match (p.peek(), r.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => null_last(a.chain).cmp(&null_last(b.chain)),
        };
        if order != Ordering::Greater
            && let Some(run) = p.next()
        {
            let first_changed =
                run.chain.0.zip(run.chain.1).and_then(|(sku, warehouse)| {
                    from.get(&(sku.to_string(), warehouse.to_string()))
                });
            take.extend(
                run.rows
                    .clone()
                    .filter(|&i| {
                        first_changed
                            .is_none_or(|m| p_month.is_valid(i) && p_month.value(i) < m.as_str())
                    })
                    .map(|i| (0, i)),
            );
        }
        if order != Ordering::Less
            && let Some(run) = r.next()
        {
            take.extend(run.rows.clone().map(|i| (1, i)));
        }
    }
    let columns = (0..published.num_columns())
        .map(|c| {
            interleave(
                &[published.column(c).as_ref(), recosted.column(c).as_ref()],
                &take,
            )
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(published.schema(), columns)?)
}

/// The checks of a ledger built by delta, and the totals they compared: the source totals
/// over the whole new side (`ctx`, a session over its mapped rows), the ledger's by delta
/// (`ledger_sums`), the merged costed movements and book.
///
/// The source totals are not taken by delta, on purpose: summed from every source row, they
/// are the build's check on its closure. A change the closure misses (a fee moved to another
/// order, docs/incremental.md step 2) leaves the ledger's totals short or over, and this
/// comparison sends the refresh to a full build.
async fn delta_checks(
    ctx: &SessionContext,
    model: &Model,
    ledger_sums: RecordBatch,
    costed: &RecordBatch,
    book: &RecordBatch,
) -> Result<(Vec<CheckRow>, CheckSums)> {
    register(ctx, "b_units", units_batch(model)?)?;
    // Of the build's working tables, the source totals read the fees.
    cache(ctx, &Staging::Memory, "b_fees", &sources::fees(model)).await?;
    register(ctx, "b_costed", costed.clone())?;
    register(ctx, "b_stock", book.clone())?;
    let mut lap_started = Instant::now();
    let sums = CheckSums {
        sources: checks::source_sums(ctx).await?,
        ledger: ledger_sums,
    };
    lap(&mut lap_started, "checks: the source totals");
    let report = checks::run(ctx, &sums).await?;
    lap(&mut lap_started, "checks: compared");
    Ok((report, sums))
}

/// The ledger's totals after a change: the published version's (`published`) of the months
/// it did not rewrite, and those of the rewritten months' rows.
async fn ledger_sums_by_delta(
    published: &RecordBatch,
    merged: &MergedMonths,
) -> Result<RecordBatch> {
    let ctx = new_session()?;
    register(&ctx, "s_published", published.clone())?;
    let rewritten = sql_list(&merged.months);
    let kept = if rewritten.is_empty() {
        "SELECT * FROM s_published".to_string()
    } else {
        format!("SELECT * FROM s_published WHERE month NOT IN ({rewritten})")
    };
    if !register_rows(&ctx, "c_rewritten", &merged.batches)? {
        return collect_one(&ctx, &kept).await;
    }
    let new = checks::ledger_sums(&ctx, "c_rewritten").await?;
    register(&ctx, "s_rewritten", new)?;
    collect_one(
        &ctx,
        &format!(
            "SELECT * FROM ({kept} UNION ALL SELECT * FROM s_rewritten) \
             ORDER BY month, platform, shop_id, unit_id, account, source"
        ),
    )
    .await
}

/// The first check (`check` at `scope`) that fails in `now` but did not in `before`.
fn newly_failed(before: &[CheckRow], now: &[CheckRow]) -> Option<String> {
    let failed_before: BTreeSet<(&str, &str)> = before
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| (c.check.as_str(), c.scope.as_str()))
        .collect();
    now.iter()
        .filter(|c| c.status == Status::Fail)
        .find(|c| !failed_before.contains(&(c.check.as_str(), c.scope.as_str())))
        .map(|c| format!("{} ({})", c.check, c.scope))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(check: &str, scope: &str, status: Status) -> CheckRow {
        CheckRow::note(check, scope.to_string(), status, None, String::new())
    }

    #[test]
    fn only_a_check_that_passed_before_and_fails_now_stops_a_delta() {
        let before = vec![
            check("fees", "tmall T1 2025-12", Status::Fail),
            check("sales", "jd J1 2025-12", Status::Ok),
        ];
        let same_failure = vec![
            check("fees", "tmall T1 2025-12", Status::Fail),
            check("sales", "jd J1 2025-12", Status::Ok),
        ];
        assert_eq!(newly_failed(&before, &same_failure), None);
        let new_failure = vec![
            check("fees", "tmall T1 2025-12", Status::Fail),
            check("sales", "jd J1 2025-12", Status::Fail),
        ];
        assert_eq!(
            newly_failed(&before, &new_failure).as_deref(),
            Some("sales (jd J1 2025-12)")
        );
        // A scope the published version did not have is new, failing or not.
        let new_scope = vec![check("sales", "jd J1 2026-01", Status::Fail)];
        assert_eq!(
            newly_failed(&before, &new_scope).as_deref(),
            Some("sales (jd J1 2026-01)")
        );
    }
}
