//! The old side of a change, read from the exports that hold the closure's rows only.
//!
//! A refresh by delta computes `rows(K, Fₒ)`: the ledger rows of the closure's keys over the
//! published version's inputs (`delta/mod.rs`). Reading every export for them costs as much
//! as the new side does (4.5 s at scale 1), though K's rows sit in a sixth of the files. The
//! new side, read whole, says which: each mapped row carries the deliveries it came from
//! (`_delivery`, `_joined_delivery`).
//!
//! ```text
//!  new side (every export, mapped) ── K's rows ──► their deliveries ─┐
//!        │                                                           ├─ − the added files
//!        └─ keys delivered more than once ──► every delivery of a    │   + every delivery of
//!                                             key a read file holds ─┘     the keys they hold
//!                                                                    │
//!  the old side: the published version's inputs with only these platform exports
//! ```
//!
//! The old side over those files is exact for K when these hold, and the side is read from
//! every export when the last does not ([`OldSideRead::Every`] says why):
//!
//! - **Each of K's old rows has a new row with its files**, or is an old version of a key the
//!   added files deliver again (those are read). Without re-delivered keys this always holds:
//!   the raw tables after the change are those before it plus new keys, and a mapping part
//!   (filters, joins, windows over an order) keeps every row it made before, with the same
//!   lineage. A re-delivered key can take a row out of a join (a tmall header corrected to
//!   unpaid takes its items' lines with it): the files of those items are known only if the
//!   order has other rows. Such a row belongs to the closure's known gap (docs/incremental.md,
//!   step 2): its order is rarely in K at all, and the delta's checks, which compare every
//!   source total with the ledger, send the refresh to a full build when its amount is lost.
//! - **Every delivery of a key a read file holds is read** (the closure over
//!   [`Catalog::redelivered_keys`]), so that the newest delivery of each key read is the
//!   newest of all: no row read is an outdated version.
//! - **The platform mappings feed only the order-keyed views** (`order_lines`, `refunds`,
//!   `fees`, `ad_spend`, `waybills`): the others (purchases, expenses, …) are read whole.
//!
//! Two kinds of rows are not K's and are taken on both sides whole (`RESTRICTED` in
//! `delta/mod.rs`): fees whose line is not in the data and waybills without an order. The
//! files of the fees are read, and whether a fee's line is in the data is judged against the
//! old side's lines plus the new side's lines of every order outside K, which are the same
//! on both sides (`lines_elsewhere`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use amoeba_catalog::Catalog;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::datasource::TableProvider;
use datafusion::prelude::SessionContext;

use crate::error::{EngineError, Result};
use crate::ledger::closure::ClosureKeys;
use crate::ledger::{lap, register};

/// The views a platform export may feed for its old side to be read in part: those the delta
/// restricts to the closure's keys.
const ORDER_KEYED_VIEWS: [&str; 5] = ["order_lines", "refunds", "fees", "ad_spend", "waybills"];

/// How the old side of a change was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldSideRead {
    /// From some of the published version's platform exports (and every other input).
    Part {
        /// Platform export files read.
        files: usize,
        /// Of so many the published version has.
        of: usize,
        /// Their bytes.
        bytes: u64,
        /// Of so many.
        of_bytes: u64,
        /// Keys the added files deliver again, whose old versions' files are read too.
        again: usize,
    },
    /// From every export, and why.
    Every(String),
}

impl std::fmt::Display for OldSideRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OldSideRead::Part {
                files,
                of,
                bytes,
                of_bytes,
                again,
            } => write!(
                f,
                "the old side read {files} of {of} export files ({:.1} of {:.1} MB; {again} \
                 key(s) delivered again)",
                *bytes as f64 / 1e6,
                *of_bytes as f64 / 1e6
            ),
            OldSideRead::Every(why) => write!(f, "the old side read every export: {why}"),
        }
    }
}

/// What the old side is built from.
pub(super) struct OldSide {
    /// The published version's inputs, with only the platform exports it needs.
    pub(super) catalog: Catalog,
    /// The lines of the side its catalog does not hold (for [`Side::restricted`](super::Side)).
    pub(super) lines_elsewhere: Option<Arc<dyn TableProvider>>,
    pub(super) read: OldSideRead,
}

/// The old side of the change that added `added` to the published inputs, found from the
/// new side: `new` is a session over every input after the change (its `raw.<view>_mapped`
/// materialized, the catalog's raw tables registered), `catalog` that catalog.
pub(super) async fn old_side(
    new: &SessionContext,
    catalog: &Catalog,
    keys: &ClosureKeys,
    added: &BTreeSet<String>,
    versions: &[Vec<i64>],
) -> Result<OldSide> {
    let published = catalog.without(added);
    let every = |why: String| OldSide {
        catalog: published.clone(),
        lines_elsewhere: None,
        read: OldSideRead::Every(why),
    };
    if let Some((mapping, view)) = catalog.platform_view_outside(&ORDER_KEYED_VIEWS) {
        return Ok(every(format!(
            "the {mapping} mapping feeds {view}, which a delta reads whole"
        )));
    }
    let added_deliveries: BTreeSet<i64> = catalog.deliveries_of(added).into_iter().collect();
    let mut step = Instant::now();
    let again = versions
        .iter()
        .filter(|d| d.iter().any(|d| added_deliveries.contains(d)))
        .count();
    // The files of K's rows and the added ones, with every delivery of the keys they hold:
    // an added file's keys bring their old versions in.
    let held = deliveries_of(new, keys).await?;
    lap(&mut step, "delta: the files of the closure's rows");
    let read = closed_over_keys(held.union(&added_deliveries).copied().collect(), versions);
    let read: BTreeSet<i64> = read.difference(&added_deliveries).copied().collect();
    let exports = published.platform_exports();
    let (mut files, mut of, mut bytes, mut of_bytes) = (0, 0, 0, 0);
    let mut left_out: BTreeSet<String> = added.clone();
    for file in exports {
        let size = file.meta.size;
        of += 1;
        of_bytes += size;
        if read.contains(&file.delivery) {
            files += 1;
            bytes += size;
        } else {
            left_out.insert(file.path.clone());
        }
    }
    Ok(OldSide {
        catalog: catalog.without(&left_out),
        lines_elsewhere: Some(lines_outside(new, keys).await?),
        read: OldSideRead::Part {
            files,
            of,
            bytes,
            of_bytes,
            again,
        },
    })
}

/// The deliveries holding a row of K's on the new side: its orders' lines, refunds and fees
/// (both deliveries of a row made from two sources), the fees of its lines, its shop-days'
/// ads, its bare order ids' waybills; and the rows taken whole on both sides (fees whose
/// line is not in the data, waybills without an order).
async fn deliveries_of(ctx: &SessionContext, keys: &ClosureKeys) -> Result<BTreeSet<i64>> {
    register(ctx, "l_orders", keys.orders.clone())?;
    register(ctx, "l_bare", keys.bare.clone())?;
    register(ctx, "l_shop_days", keys.shop_days.clone())?;
    let of_orders = |view: &str| {
        format!(
            "SELECT m._delivery, m._joined_delivery FROM raw.{view}_mapped m \
             LEFT SEMI JOIN l_orders k \
               ON k.platform = m.platform AND k.shop_id = m.shop_id AND k.order_id = m.order_id"
        )
    };
    let sql = format!(
        "WITH l_lines AS ( \
           SELECT m.platform, m.shop_id, m.line_id, m._delivery, m._joined_delivery \
           FROM raw.order_lines_mapped m LEFT SEMI JOIN l_orders k \
             ON k.platform = m.platform AND k.shop_id = m.shop_id AND k.order_id = m.order_id), \
         held AS ( \
           SELECT _delivery, _joined_delivery FROM l_lines \
           UNION ALL {refunds} UNION ALL {fees} \
           UNION ALL SELECT m._delivery, m._joined_delivery FROM raw.fees_mapped m \
             LEFT SEMI JOIN l_lines l \
               ON l.platform = m.platform AND l.shop_id = m.shop_id AND l.line_id = m.line_id \
             WHERE m.order_id IS NULL \
           UNION ALL SELECT m._delivery, m._joined_delivery FROM raw.fees_mapped m \
             LEFT ANTI JOIN order_lines l \
               ON l.platform = m.platform AND l.shop_id = m.shop_id AND l.line_id = m.line_id \
             WHERE m.order_id IS NULL \
           UNION ALL SELECT m._delivery, m._joined_delivery FROM raw.ad_spend_mapped m \
             LEFT SEMI JOIN l_shop_days k \
               ON k.platform = m.platform AND k.shop_id = m.shop_id AND k.date = m.date \
           UNION ALL SELECT m._delivery, m._joined_delivery FROM raw.waybills_mapped m \
             LEFT SEMI JOIN l_bare b ON b.order_id = m.order_id \
           UNION ALL SELECT m._delivery, m._joined_delivery FROM raw.waybills_mapped m \
             WHERE m.order_id IS NULL) \
         SELECT DISTINCT d FROM ( \
           SELECT _delivery AS d FROM held UNION ALL SELECT _joined_delivery AS d FROM held) \
         WHERE d IS NOT NULL",
        refunds = of_orders("refunds"),
        fees = of_orders("fees"),
    );
    let found = ctx.sql(&sql).await;
    let batches = match found {
        Ok(df) => df.collect().await,
        Err(e) => Err(e),
    };
    for name in ["l_orders", "l_bare", "l_shop_days"] {
        ctx.deregister_table(name)?;
    }
    let mut deliveries = BTreeSet::new();
    for batch in batches? {
        let column = batch
            .column(0)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| EngineError::ledger("the closure's deliveries: not BIGINT"))?;
        deliveries.extend(column.iter().flatten());
    }
    Ok(deliveries)
}

/// The new side's order lines (`platform`, `shop_id`, `line_id`) of every order outside K:
/// the same on the old side.
async fn lines_outside(ctx: &SessionContext, keys: &ClosureKeys) -> Result<Arc<dyn TableProvider>> {
    register(ctx, "l_outside_orders", keys.orders.clone())?;
    let lines = ctx
        .sql(
            "SELECT l.platform, l.shop_id, l.line_id FROM order_lines l \
             LEFT ANTI JOIN l_outside_orders k \
               ON k.platform = l.platform AND k.shop_id = l.shop_id AND k.order_id = l.order_id",
        )
        .await;
    ctx.deregister_table("l_outside_orders")?;
    Ok(lines?.into_view())
}

/// The deliveries of each platform export key delivered more than once, read from the
/// versions tables (kept by `materialize_mapped` for this).
pub(super) async fn redelivered_keys(
    ctx: &SessionContext,
    catalog: &Catalog,
) -> Result<Vec<Vec<i64>>> {
    let mut groups = BTreeSet::new();
    for table in catalog.redelivered_keys() {
        let mut more = false;
        for batch in ctx.sql(&table.twice).await?.collect().await? {
            let column = |name: &str| {
                batch
                    .column_by_name(name)
                    .and_then(|c| c.as_primitive_opt::<Int64Type>())
                    .ok_or_else(|| {
                        EngineError::ledger(format!(
                            "the keys of {} delivered more than once: no BIGINT {name}",
                            table.table
                        ))
                    })
            };
            let (oldest, newest, rows) =
                (column("oldest")?, column("newest")?, column("deliveries")?);
            for i in 0..batch.num_rows() {
                if rows.value(i) > 2 {
                    more = true;
                } else {
                    groups.insert(vec![oldest.value(i), newest.value(i)]);
                }
            }
        }
        if more {
            log::debug!("{}: keys delivered three times or more", table.table);
            for batch in ctx.sql(&table.more).await?.collect().await? {
                groups.extend(delivery_lists(&batch)?);
            }
        }
    }
    Ok(groups.into_iter().collect())
}

fn delivery_lists(batch: &RecordBatch) -> Result<Vec<Vec<i64>>> {
    let not_a_list = || EngineError::ledger("the deliveries of a key: not a list of BIGINT");
    let lists = batch
        .column(0)
        .as_list_opt::<i32>()
        .ok_or_else(not_a_list)?;
    let mut out = Vec::with_capacity(lists.len());
    for i in 0..lists.len() {
        if lists.is_null(i) {
            continue;
        }
        let values = lists.value(i);
        let values = values
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(not_a_list)?;
        let mut deliveries: Vec<i64> = values.iter().flatten().collect();
        deliveries.sort_unstable();
        out.push(deliveries);
    }
    Ok(out)
}

/// `read` with every delivery of each key one of them holds (`versions`: the deliveries of
/// each key delivered more than once), until no more come in.
fn closed_over_keys(mut read: BTreeSet<i64>, versions: &[Vec<i64>]) -> BTreeSet<i64> {
    loop {
        let before = read.len();
        for deliveries in versions {
            if deliveries.iter().any(|d| read.contains(d)) {
                read.extend(deliveries.iter().copied());
            }
        }
        if read.len() == before {
            return read;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_file_brings_every_delivery_of_its_keys_with_it() {
        // Keys in (1, 5), (5, 9) and (2, 3): reading 1 brings 5, which brings 9.
        let versions = vec![vec![1, 5], vec![5, 9], vec![2, 3]];
        assert_eq!(
            closed_over_keys(BTreeSet::from([1, 7]), &versions),
            BTreeSet::from([1, 5, 7, 9])
        );
        assert_eq!(
            closed_over_keys(BTreeSet::from([4]), &versions),
            BTreeSet::from([4])
        );
    }
}
