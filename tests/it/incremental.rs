//! The incremental build (docs/incremental.md), for a new last day, a new day in the middle
//! and a corrected order header:
//! - a refresh by delta publishes what a full build from the same version does: every
//!   month's fingerprint, the stock book, the costed movements, the month inputs, the checks;
//! - the closure of a change (the orders, shop-days, SKUs and months the added files may
//!   touch) holds every month whose rows a full rebuild changes;
//! - each part of the delta, checked on its own against the full build: the order-local rows
//!   rebuilt over the closure's keys on both sides of the change, the chains it changes
//!   costed again from the old version's stock book, the month rules, the merge.
//!
//! The delta rebuilds the closure only, so a month or row missing here would be served stale.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::support::{copy_warehouse, parquet_files, rewrite_parquet, rows, warehouse};
use amoeba_catalog::Warehouse;
use amoeba_engine::cube::RefreshOptions;
use amoeba_engine::ledger::delta::{
    MonthDelta, PublishedCosting, Side, cost_ledger_rows, cost_rows, merge_months, month_rows,
    net_delta, order_rows,
};
use amoeba_engine::ledger::{
    MappedPatch, MonthInputs, published_costed, published_ledger_sums, published_month_inputs,
    published_stock,
};
use amoeba_engine::{Closure, Served};
use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

async fn publish(root: &Path) -> Served {
    amoeba_engine::open_published(
        Warehouse::open(&root.to_string_lossy()).expect("open warehouse"),
        RefreshOptions::default(),
    )
    .await
    .expect("open published")
}

/// A full build of `root` (never by delta), published.
async fn publish_full(root: &Path) -> Served {
    amoeba_engine::open_published(
        Warehouse::open(&root.to_string_lossy()).expect("open warehouse"),
        RefreshOptions {
            full: true,
            ..RefreshOptions::default()
        },
    )
    .await
    .expect("open published")
}

fn day_of(path: &Path) -> Option<String> {
    path.components().find_map(|c| {
        c.as_os_str()
            .to_string_lossy()
            .strip_prefix("dt=")
            .map(str::to_string)
    })
}

/// Moves every export file of day `day` from `root` to the same place below `aside` (or back,
/// with the two swapped); returns how many.
fn move_day(from: &Path, to: &Path, day: &str) -> usize {
    let mut moved = 0;
    for file in parquet_files(&from.join("exports")) {
        if day_of(&file).as_deref() != Some(day) {
            continue;
        }
        let target = to.join(file.strip_prefix(from).expect("below the root"));
        std::fs::create_dir_all(target.parent().expect("a folder")).expect("mkdir");
        std::fs::rename(&file, &target).expect("move");
        moved += 1;
    }
    moved
}

/// The months whose fingerprint differs between the ledgers `before` and `after` serve.
fn months_changed(before: &Served, after: &Served) -> BTreeSet<String> {
    let months = |s: &Served| {
        s.ledger_manifest
            .as_ref()
            .map(|m| m.months.clone())
            .expect("a published ledger")
    };
    let (before, after) = (months(before), months(after));
    before
        .keys()
        .chain(after.keys())
        .filter(|m| before.get(*m) != after.get(*m))
        .cloned()
        .collect()
}

/// The closure of the refresh that gave `after`, checked against what changed since `before`.
fn check(what: &str, before: &Served, after: &Served) -> Closure {
    let closure = closure_of(after);
    eprintln!("{what}: {}", closure.summary());
    assert_eq!(closure.everything, None, "{what}");
    assert!(closure.deliveries > 0, "{what}");
    let changed = months_changed(before, after);
    eprintln!("{what}: months a full rebuild changed: {changed:?}");
    assert!(!changed.is_empty(), "{what}: nothing changed");
    assert!(
        changed.is_subset(&closure.months),
        "{what}: months changed {changed:?}, closure {:?}",
        closure.months
    );
    closure
}

/// The catalog after a change, without the added files, reads as the catalog before it:
/// the old side of the delta build.
async fn same_views_without_the_added_files(what: &str, before: &Served, after: &Served) {
    let added: BTreeSet<String> = after
        .ledger
        .as_ref()
        .and_then(|l| l.input_changes())
        .map(|c| c.added.iter().cloned().collect())
        .expect("the changes");
    let old = amoeba_engine::new_session().expect("session");
    after
        .catalog
        .without(&added)
        .register(&old)
        .await
        .expect("register the catalog without the added files");
    for sql in [
        "SELECT COUNT(*), CAST(SUM(net_sales) AS VARCHAR), MAX(paid_at) FROM order_lines",
        "SELECT COUNT(*), CAST(SUM(amount) AS VARCHAR) FROM refunds",
        "SELECT COUNT(*), CAST(SUM(amount) AS VARCHAR) FROM fees",
        "SELECT COUNT(*), CAST(SUM(cost) AS VARCHAR) FROM waybills",
        "SELECT COUNT(*), CAST(SUM(spend) AS VARCHAR) FROM ad_spend",
        "SELECT COUNT(*) FROM amoeba_files",
    ] {
        let (was, is) = (rows(&before.ctx, sql).await, rows(&old, sql).await);
        assert_eq!(was, is, "{what}: {sql}");
        // A day of orders: its files and its order lines are new.
        if sql.contains("order_lines") || sql.contains("amoeba_files") {
            assert_ne!(
                rows(&after.ctx, sql).await,
                is,
                "{what}: the day is in {sql}"
            );
        }
    }
}

/// A ledger grain row's key (date, platform, shop, SKU, campaign, unit, account, source) and
/// its amount in cents and quantity.
type Grain = BTreeMap<Vec<String>, (i128, i64)>;

/// The order-local sources: what [`order_rows`] rebuilds.
const ORDER_LOCAL: &str =
    "source IN ('order_lines', 'refunds', 'ad_spend', 'waybills') OR source LIKE 'fees:%'";

/// The costing's sources: what [`cost_rows`] rebuilds.
const COSTING: &str = "source LIKE 'cogs:%' OR source = 'stock_adjustments'";

/// The rows of `table` in `ctx` (ledger columns) whose source is one of `sources` (a
/// condition), added with `sign` into `into`.
async fn add_rows(into: &mut Grain, ctx: &SessionContext, table: &str, sources: &str, sign: i128) {
    let sql = format!(
        "SELECT CAST(date AS VARCHAR), platform, shop_id, sku, campaign, unit_id, account, \
                source, CAST(amount AS VARCHAR), CAST(qty AS VARCHAR) \
         FROM {table} WHERE {sources}"
    );
    for mut row in rows(ctx, &sql).await {
        let qty = row.pop().expect("qty");
        let amount = row.pop().expect("amount");
        let cents: i128 = amount.replace('.', "").parse().expect("an amount");
        assert!(amount.ends_with(|c: char| c.is_ascii_digit()) && amount.contains('.'));
        let qty: i64 = if qty == "NULL" {
            0
        } else {
            qty.parse().expect("a qty")
        };
        let entry = into.entry(row).or_default();
        entry.0 += sign * cents;
        entry.1 += i64::try_from(sign).expect("±1") * qty;
    }
    // The ledger keeps no row that carries nothing, and neither does a sum of deltas.
    into.retain(|_, (amount, qty)| *amount != 0 || *qty != 0);
}

/// The two sides of the change that gave `after`, seen through its closure: the old one, the
/// new one.
async fn sides(after: &Served) -> (Side, Side) {
    let ledger = after.ledger.as_ref().expect("a ledger");
    let keys = ledger
        .closure()
        .and_then(|c| c.keys.as_ref())
        .expect("the closure's keys");
    let added: BTreeSet<String> = ledger
        .input_changes()
        .map(|c| c.added.iter().cloned().collect())
        .expect("the changes");
    let model = after.catalog.model().cloned().expect("a model");
    let old = Side::open(&after.catalog.without(&added), &model, keys)
        .await
        .expect("the old side");
    let new = Side::open(&after.catalog, &model, keys)
        .await
        .expect("the new side");
    (old, new)
}

/// Rows of a delta: those of the new side, those of the old.
type Sides = (Vec<RecordBatch>, Vec<RecordBatch>);

/// ledger(Fₙ) = ledger(Fₒ) + order_rows(K, Fₙ) − order_rows(K, Fₒ) for the order-local
/// sources: the closure's keys bound every row the change touches.
async fn order_local_rows_add_up(
    what: &str,
    before: &Served,
    after: &Served,
    (old, new): (&Side, &Side),
) -> Sides {
    let model = after.catalog.model().cloned().expect("a model");
    let new_side = order_rows(new, &model).await.expect("rows(K, Fn)");
    let old_side = order_rows(old, &model).await.expect("rows(K, Fo)");
    let delta = amoeba_engine::new_session().expect("session");
    for (name, batches) in [("d_new", new_side.clone()), ("d_old", old_side.clone())] {
        let schema = batches.first().expect("rows").schema();
        let table = MemTable::try_new(schema, vec![batches]).expect("a table");
        delta
            .register_table(name, Arc::new(table))
            .expect("register");
    }
    let mut expected = Grain::new();
    add_rows(&mut expected, &before.ctx, "pnl_ledger", ORDER_LOCAL, 1).await;
    let unchanged = expected.len();
    add_rows(&mut expected, &delta, "d_new", ORDER_LOCAL, 1).await;
    add_rows(&mut expected, &delta, "d_old", ORDER_LOCAL, -1).await;
    let mut built = Grain::new();
    add_rows(&mut built, &after.ctx, "pnl_ledger", ORDER_LOCAL, 1).await;
    assert_same_grain(what, &built, &expected);
    assert_ne!(built.len(), unchanged, "{what}: the day added rows");
    eprintln!(
        "{what}: {} order-local grain rows = {unchanged} before ± the delta",
        built.len()
    );
    (new_side, old_side)
}

/// `built` and `expected` hold the same rows.
fn assert_same_grain(what: &str, built: &Grain, expected: &Grain) {
    let differing: Vec<_> = built
        .iter()
        .filter(|(k, v)| expected.get(*k) != Some(*v))
        .map(|(k, v)| (k, v, expected.get(k)))
        .chain(
            expected
                .iter()
                .filter(|(k, _)| !built.contains_key(*k))
                .map(|(k, v)| (k, v, None)),
        )
        .take(10)
        .collect();
    assert!(
        differing.is_empty(),
        "{what}: the delta misses (key, built, expected): {differing:#?}"
    );
}

/// Registers `batch` as `name` in `ctx`.
fn register(ctx: &SessionContext, name: &str, batch: &RecordBatch) {
    let table = MemTable::try_new(batch.schema(), vec![vec![batch.clone()]]).expect("a table");
    ctx.register_table(name, Arc::new(table)).expect("register");
}

/// ledger(Fₙ)'s costing rows = ledger(Fₒ)'s + those of the changed chains re-costed from the
/// published book − those they replace, and the re-costed chains' book pages are the new
/// build's.
async fn costing_adds_up(
    what: &str,
    before: &Served,
    after: &Served,
    (old, new): (&Side, &Side),
) -> (MonthInputs, Sides) {
    let ledger = after.ledger.as_ref().expect("a ledger");
    // What the published version stored for the delta build, read back.
    let warehouse = before.catalog.warehouse();
    let version = &before.ledger_manifest.as_ref().expect("published").version;
    let published_costed = published_costed(warehouse, version)
        .await
        .expect("read the costed movements")
        .expect("stored with the version");
    let published_book = published_stock(warehouse, version)
        .await
        .expect("read the book")
        .expect("stored with the version");
    let month_inputs = published_month_inputs(warehouse, version)
        .await
        .expect("read the month inputs")
        .expect("stored with the version");
    let model = after.catalog.model().cloned().expect("a model");
    let new_book = ledger.stock_book().expect("the new book");
    let check = amoeba_engine::new_session().expect("session");
    register(&check, "a_book", new_book);
    let last_month = rows(&check, "SELECT max(month) FROM a_book")
        .await
        .remove(0)
        .remove(0);
    let delta = cost_rows(
        old,
        new,
        &model,
        PublishedCosting {
            costed: &published_costed,
            book: &published_book,
        },
        Some(&last_month),
    )
    .await
    .expect("re-costing");
    let mut grains = Vec::new();
    for (name, costed) in [("d_new", &delta.costed), ("d_old", &delta.replaced)] {
        let grain = cost_ledger_rows(costed, &model).await.expect("cost rows");
        register(&check, name, &grain);
        grains.push(vec![grain]);
    }
    let mut expected = Grain::new();
    add_rows(&mut expected, &before.ctx, "pnl_ledger", COSTING, 1).await;
    let unchanged = expected.len();
    add_rows(&mut expected, &check, "d_new", COSTING, 1).await;
    add_rows(&mut expected, &check, "d_old", COSTING, -1).await;
    let mut built = Grain::new();
    add_rows(&mut built, &after.ctx, "pnl_ledger", COSTING, 1).await;
    assert_same_grain(&format!("{what}, costing"), &built, &expected);

    register(&check, "d_chains", &delta.chains);
    register(&check, "d_book", &delta.book);
    let from = "a_book a JOIN d_chains c ON c.sku = a.sku AND c.warehouse = a.warehouse \
                WHERE a.month >= c.from_month";
    for sql in [
        format!("SELECT count(*) FROM (SELECT a.* FROM {from} EXCEPT SELECT * FROM d_book)"),
        format!("SELECT count(*) FROM (SELECT * FROM d_book EXCEPT SELECT a.* FROM {from})"),
    ] {
        assert_eq!(
            rows(&check, &sql).await,
            vec![vec!["0".to_string()]],
            "{what}: the re-costed book differs from the new build's: {sql}"
        );
    }
    let months: BTreeSet<String> = rows(&check, "SELECT DISTINCT from_month FROM d_chains")
        .await
        .into_iter()
        .flatten()
        .collect();
    // A corrected postage moves no stock: no chain is costed again.
    let moves_stock = !what.contains("header");
    assert_eq!(
        delta.chains.num_rows() > 0,
        moves_stock,
        "{what}: chains re-costed"
    );
    assert_eq!(delta.book.num_rows() > 0, moves_stock, "{what}: book pages");
    eprintln!(
        "{what}: {} chains re-costed from {months:?}: {} of {} movements; {} costing grain \
         rows = {unchanged} before ± the delta",
        delta.chains.num_rows(),
        delta.costed.num_rows(),
        published_costed.num_rows(),
        built.len()
    );
    let old_grain = grains.pop().expect("old");
    let new_grain = grains.pop().expect("new");
    (month_inputs, (new_grain, old_grain))
}

/// The month rules' rows: everything but the order-local and costing sources.
const MONTH_RULES: &str = "source NOT IN ('order_lines', 'refunds', 'ad_spend', 'waybills', \
     'stock_adjustments') AND source NOT LIKE 'fees:%' AND source NOT LIKE 'cogs:%'";

/// ledger(Fₙ)'s month-rule rows (pools, settlements, step-down) are ledger(Fₒ)'s, with those
/// of the months [`month_rows`] finds changed replaced by the rows it computes from the
/// published month inputs plus the change.
async fn month_rules_add_up(
    what: &str,
    before: &Served,
    after: &Served,
    (old, new): (&Side, &Side),
    published: &MonthInputs,
    net: &[RecordBatch],
) -> MonthDelta {
    let model = after.catalog.model().cloned().expect("a model");
    let delta = month_rows(old, new, &model, published, net)
        .await
        .expect("the month rules");
    assert!(!delta.months.is_empty(), "{what}: no month's rules changed");
    let check = amoeba_engine::new_session().expect("session");
    register(&check, "d_month", &delta.rows);
    let months = delta
        .months
        .iter()
        .map(|m| format!("'{m}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut expected = Grain::new();
    let kept = format!("({MONTH_RULES}) AND to_char(date, '%Y-%m') NOT IN ({months})");
    add_rows(&mut expected, &before.ctx, "pnl_ledger", &kept, 1).await;
    let unchanged = expected.len();
    add_rows(&mut expected, &check, "d_month", MONTH_RULES, 1).await;
    let mut built = Grain::new();
    add_rows(&mut built, &after.ctx, "pnl_ledger", MONTH_RULES, 1).await;
    assert_same_grain(&format!("{what}, month rules"), &built, &expected);
    assert_eq!(
        delta.inputs.months(),
        after
            .ledger
            .as_ref()
            .and_then(|l| l.month_inputs())
            .expect("built")
            .months(),
        "{what}: the months of the month rules"
    );
    eprintln!(
        "{what}: month rules of {} month(s) replaced ({:?}): {} month-rule grain rows, {unchanged} \
         of them kept",
        delta.months.len(),
        delta.months,
        built.len()
    );
    delta
}

/// The published ledger with the delta merged in ([`merge_months`]) is the new build's, month
/// by month: each rewritten month has the fingerprint of the new build's, and every other
/// month is the same in both builds.
async fn merged_months_are_the_new_builds(
    what: &str,
    before: &Served,
    after: &Served,
    net: &[RecordBatch],
    rules: &MonthDelta,
) {
    let merged = merge_months(&before.ctx, net, rules)
        .await
        .expect("the merge");
    let fingerprints = merged.fingerprints().expect("fingerprints");
    let months = |served: &Served| {
        served
            .ledger_manifest
            .as_ref()
            .expect("published")
            .months
            .clone()
    };
    let (was, is) = (months(before), months(after));
    for month in was.keys().chain(is.keys()).collect::<BTreeSet<_>>() {
        if merged.months.contains(month) {
            assert_eq!(
                fingerprints.get(month),
                is.get(month),
                "{what}: the merged month {month} is not the new build's"
            );
        } else {
            assert_eq!(
                was.get(month),
                is.get(month),
                "{what}: month {month} changed but was not merged"
            );
        }
    }
    let rows: usize = merged.batches.iter().map(RecordBatch::num_rows).sum();
    eprintln!(
        "{what}: {} month(s) merged ({:?}): {rows} rows, each month's fingerprint the new \
         build's",
        merged.months.len(),
        merged.months
    );
}

/// Delivers again the first of `files` (a source's files, sorted), rewritten by `select` over
/// `t`, as the file `name` in its shop's folder of the last delivery day among `files`.
async fn deliver_again(files: &[PathBuf], name: &str, select: &str) {
    let first = files.first().expect("a file");
    let last_day = files.last().and_then(|p| p.parent()).expect("a folder");
    let shop = first
        .parent()
        .and_then(Path::parent)
        .expect("the shop folder");
    let to = shop.join(last_day.file_name().expect("dt")).join(name);
    std::fs::create_dir_all(to.parent().expect("a folder")).expect("mkdir");
    rewrite_parquet(first, &to, select).await;
}

/// Delivers the first tmall order header file again on the last day, as `name`, with each
/// order's postage raised by `plus` yuan.
async fn correct_tmall_headers(root: &Path, name: &str, plus: u32) {
    deliver_again(
        &parquet_files(&root.join("exports/tmall/orders")),
        name,
        &format!(
            "SELECT * REPLACE (CAST(\"买家应付邮费\" + {plus} AS DECIMAL(18, 2)) AS \"买家应付邮费\") FROM t"
        ),
    )
    .await;
}

/// The delta's parts, each checked against the full build `after`: the order-local rows,
/// the costing, the month rules and the merge (over two [`Side`]s opened once).
async fn the_delta_parts_add_up(what: &str, before: &Served, after: &Served) {
    let (old, new) = sides(after).await;
    let order = order_local_rows_add_up(what, before, after, (&old, &new)).await;
    let (published, cost) = costing_adds_up(what, before, after, (&old, &new)).await;
    let net = net_delta(&[(&order.0, 1), (&order.1, -1), (&cost.0, 1), (&cost.1, -1)])
        .await
        .expect("the net delta");
    let rules = month_rules_add_up(what, before, after, (&old, &new), &published, &net).await;
    merged_months_are_the_new_builds(what, before, after, &net, &rules).await;
}

/// Refreshes `root`, published as `before`, twice from that version: by delta (the default),
/// then in full, with `_current` set back to `before`'s version in between so that both take
/// in the same change. Returns both, after checking that the refresh by delta published what
/// the full build did: every month, the stock book, the costed movements, the month inputs,
/// the checks, and what `pnl` serves.
async fn refreshed_by_delta_and_in_full(
    what: &str,
    root: &Path,
    before: &Served,
) -> (Served, Served) {
    let base = before
        .ledger_manifest
        .as_ref()
        .expect("published")
        .version
        .clone();
    let delta = publish(root).await;
    let ledger = delta.ledger.as_ref().expect("a ledger");
    let by_delta = ledger.by_delta_of().unwrap_or_else(|| {
        panic!(
            "{what}: built in full, not by delta: {:?}",
            ledger.full_because()
        )
    });
    assert_eq!(by_delta.base, base, "{what}");
    std::fs::write(root.join("ledger/_current"), &base).expect("rewind _current");
    let full = publish_full(root).await;
    let (d, f) = (
        delta.ledger_manifest.as_ref().expect("published"),
        full.ledger_manifest.as_ref().expect("published"),
    );
    assert_ne!(d.version, f.version);
    assert_eq!(
        d.months, f.months,
        "{what}: the months by delta and in full"
    );
    assert_eq!(d.rows, f.rows, "{what}: rows");
    assert_eq!(d.checks, f.checks, "{what}: the checks");
    let warehouse = root.to_string_lossy().to_string();
    let warehouse = Warehouse::open(&warehouse).expect("open warehouse");
    let check = amoeba_engine::new_session().expect("session");
    let mut widths = BTreeMap::new();
    let mut in_costing_order = Vec::new();
    for (name, version) in [("d", &d.version), ("f", &f.version)] {
        let book = published_stock(&warehouse, version)
            .await
            .expect("read")
            .expect("a book");
        let costed = published_costed(&warehouse, version)
            .await
            .expect("read")
            .expect("costed movements");
        let ledger_sums = published_ledger_sums(&warehouse, version)
            .await
            .expect("read")
            .expect("ledger sums");
        for (table, batch) in [
            ("book", &book),
            ("costed", &costed),
            ("ledger_sums", &ledger_sums),
        ] {
            register(&check, &format!("{name}_{table}"), batch);
            widths.insert(table, batch.num_columns());
        }
        in_costing_order.push(costed);
    }
    // The next refresh merges into the costed movements in their stored order.
    assert!(
        in_costing_order[0] == in_costing_order[1],
        "{what}: the costed movements, in costing order"
    );
    // Every column, sorted by all of them: equal tables give equal lists.
    for (table, width) in widths {
        let by_all = (1..=width)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let all = |side: &str| format!("SELECT * FROM {side}_{table} ORDER BY {by_all}");
        let (by_delta, in_full) = (rows(&check, &all("d")).await, rows(&check, &all("f")).await);
        assert!(!in_full.is_empty(), "{what}: {table}");
        assert_eq!(by_delta, in_full, "{what}: the {table}");
    }
    // The mapped rows the next refresh starts from: patched by delta, mapped in full.
    let mapped = |version: &str| root.join("ledger").join(version).join("_mapped");
    let kept: BTreeSet<String> = std::fs::read_dir(mapped(&f.version))
        .expect("the full build's mapped rows")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        kept.contains("order_lines") && kept.contains("group.tmall.order_lines.0"),
        "{what}: {kept:?}"
    );
    // Each set is a folder with a file per month; by delta, the months that did not change
    // are the base version's files, copied.
    for file in &kept {
        let mut listed = Vec::new();
        for (name, version) in [("d", &d.version), ("f", &f.version)] {
            let path = mapped(version).join(file);
            let table = format!("{name}_mapped");
            check
                .register_parquet(
                    &table,
                    &format!("{}/", path.to_string_lossy()),
                    datafusion::prelude::ParquetReadOptions::default().file_extension(".rows"),
                )
                .await
                .unwrap_or_else(|e| panic!("{what}: {}: {e}", path.display()));
            let width = check
                .table(table.as_str())
                .await
                .expect("a table")
                .schema()
                .fields()
                .len();
            let by_all = (1..=width).map(|i| i.to_string()).collect::<Vec<_>>();
            listed.push(
                rows(
                    &check,
                    &format!("SELECT * FROM {table} ORDER BY {}", by_all.join(", ")),
                )
                .await,
            );
            check.deregister_table(table.as_str()).expect("deregister");
        }
        assert!(
            listed[0] == listed[1],
            "{what}: the mapped rows of {file} differ: {} by delta, {} in full",
            listed[0].len(),
            listed[1].len()
        );
    }
    let inputs = |v: &str| {
        let warehouse = &warehouse;
        let v = v.to_string();
        async move {
            published_month_inputs(warehouse, &v)
                .await
                .expect("read")
                .expect("month inputs")
        }
    };
    // Compared whole, not printed: the inputs hold every month's drivers and expenses.
    let (inputs_by_delta, inputs_in_full) = (inputs(&d.version).await, inputs(&f.version).await);
    assert!(
        inputs_by_delta == inputs_in_full,
        "{what}: the month inputs differ"
    );
    // What is served, read from the files of each version (not the cubes: routing off),
    // every month with its manifest's number of rows.
    let served = "SELECT month, COUNT(*), CAST(SUM(amount) AS VARCHAR), \
                         CAST(SUM(CASE WHEN account = 'cogs' THEN amount END) AS VARCHAR) \
                  FROM pnl_ledger GROUP BY month ORDER BY month";
    let mut by_month = Vec::new();
    for (served_by, manifest) in [(&delta, d), (&full, f)] {
        rows(&served_by.ctx, "SET amoeba.cube_routing = false").await;
        let months = rows(&served_by.ctx, served).await;
        let counts: BTreeMap<String, String> = months
            .iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect();
        let listed: BTreeMap<String, String> = manifest
            .months
            .iter()
            .map(|(m, f)| {
                (
                    m.clone(),
                    f.split(':').next().unwrap_or_default().to_string(),
                )
            })
            .collect();
        assert_eq!(counts, listed, "{what}: the files of {}", manifest.version);
        by_month.push(months);
    }
    assert_eq!(by_month[0], by_month[1], "{what}: pnl_ledger by month");
    eprintln!(
        "{what}: by delta from {base}: {} month(s) rewritten {:?}, {} carried over, {}, in \
         {:.2}s (the full build: {:.2}s); every month, the book, the costed movements, the \
         month inputs, the checks and the ledger's totals the full build's",
        by_delta.rewritten.len(),
        by_delta.rewritten,
        d.months.len() - by_delta.rewritten.len(),
        by_delta.mapped,
        ledger.elapsed().as_secs_f64(),
        full.ledger
            .as_ref()
            .expect("a ledger")
            .elapsed()
            .as_secs_f64()
    );
    (delta, full)
}

/// The closure of the change that `served`'s ledger took in.
fn closure_of(served: &Served) -> Closure {
    served
        .ledger
        .as_ref()
        .and_then(|l| l.closure())
        .cloned()
        .expect("a closure")
}

/// How the refresh by delta that published `served` made its mapped rows.
fn patch_of(served: &Served) -> MappedPatch {
    served
        .ledger
        .as_ref()
        .and_then(|l| l.by_delta_of())
        .map(|d| d.mapped.clone())
        .expect("a ledger built by delta")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_closure_of_a_change_holds_every_month_a_full_rebuild_changes() {
    let copy = copy_warehouse(&warehouse(0.005, 1));
    let root = copy.path();
    let aside = tempfile::tempdir().expect("tempdir");
    // Days with orders (exports go on after the last of them: refunds, settlements).
    let days: BTreeSet<String> = parquet_files(&root.join("exports"))
        .iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "orders"))
        .filter_map(|p| day_of(p))
        .collect();
    let days: Vec<String> = days.into_iter().collect();

    // A new day of orders at the end, then one in the middle (what FIFO carries to every later month).
    for (what, day) in [
        ("the last order day", days[days.len() - 1].clone()),
        ("a day in the middle", days[days.len() / 2].clone()),
    ] {
        let moved = move_day(root, aside.path(), &day);
        assert!(moved > 10, "{what} {day}: {moved} files");
        let before = publish(root).await;
        // Files taken away: their rows are gone, and only a full build can take that in.
        let why = before
            .ledger
            .as_ref()
            .and_then(|l| l.full_because())
            .map(|w| w.0.clone());
        if what != "the last order day" {
            assert!(
                why.as_deref().is_some_and(|w| w.contains("removed")),
                "{what}: the build without the day: {why:?}"
            );
        }
        assert_eq!(move_day(aside.path(), root, &day), moved);
        let (delta, after) = refreshed_by_delta_and_in_full(what, root, &before).await;
        // A day of new keys: its rows are added, its tmall orders' groups mapped from the
        // day's files, and next to none of the published rows give way.
        let patch = patch_of(&delta);
        assert!(
            patch.added > 0 && patch.regrouped > 0 && patch.replaced < patch.added,
            "{what}: {patch}"
        );
        let closure = check(&format!("{what} ({day})"), &before, &after);
        assert!(closure.deliveries <= moved, "{what}");
        same_views_without_the_added_files(what, &before, &after).await;
        the_delta_parts_add_up(what, &before, &after).await;
        if what == "the last order day" {
            assert!(
                closure.months.len() < after.ledger_manifest.as_ref().map_or(0, |m| m.months.len()),
                "the last day closes over every month: {:?}",
                closure.months
            );
        }
    }

    // A corrected order header, delivered on the last day: tmall joins its items to it, so
    // its rows change through the header's delivery (`joined_delivery`) alone.
    let before = publish(root).await;
    correct_tmall_headers(root, "part-999999-corrected.parquet", 1).await;
    let what = "a corrected tmall order header";
    let (delta, after) = refreshed_by_delta_and_in_full(what, root, &before).await;
    // The header's order is mapped again, with its items read from their files.
    let patch = patch_of(&delta);
    assert!(
        patch.groups > 0 && patch.group_files >= 1 && patch.replaced >= 1 && patch.added == 0,
        "{what}: {patch}"
    );
    let closure = check(what, &before, &after);
    assert_eq!(closure.deliveries, 1);
    the_delta_parts_add_up(what, &before, &after).await;

    // Corrected once more, in a file that sorts later: the header's keys now have three
    // deliveries, and the old side must read the newest of the first two.
    correct_tmall_headers(root, "part-999999-recorrected.parquet", 2).await;
    let what = "a tmall order header corrected twice";
    let (delta, _) = refreshed_by_delta_and_in_full(what, root, &after).await;
    let patch = patch_of(&delta);
    assert!(patch.groups > 0 && patch.replaced >= 1, "{what}: {patch}");

    // A platform mapping that feeds a view the delta does not restrict to its keys (here
    // stock_adjustments, from a platform with no files yet): its rows are patched as any
    // other view's, and the delta is as exact. The mapping itself is a model change, which
    // builds in full.
    let mappings = root.join("model/mappings");
    std::fs::create_dir_all(&mappings).expect("mkdir");
    std::fs::write(
        mappings.join("shopx.toml"),
        "name = \"shopx\"\nlayout = \"platform\"\n\
         [sources.stock]\nkey = [\"sku\"]\ncolumns = { sku = \"string\" }\n\
         [[views.stock_adjustments]]\nfrom = \"{stock}\"\n\
         columns = { adjustment_id = \"sku\", sku = \"sku\", warehouse = \"'w'\", qty = \"0\", \
         date = \"NULL\", reason = \"'count'\" }\n",
    )
    .expect("write the mapping");
    let before = publish(root).await;
    correct_tmall_headers(root, "part-999999-third.parquet", 3).await;
    let what = "a correction, with a platform mapping feeding stock_adjustments";
    let (delta, _) = refreshed_by_delta_and_in_full(what, root, &before).await;
    let patch = patch_of(&delta);
    assert!(patch.groups > 0 && patch.replaced >= 1, "{what}: {patch}");
}

/// A tmall ledger row delivered again under its flow number (`账务流水号`, its key) but naming
/// another order. The closure used to see only the new version, and the delta's checks caught
/// the fee counted twice (the refresh built in full). The published row it replaces now comes
/// with the change (`mapped.rs`), and the closure holds the old order too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fee_moved_to_another_order_is_taken_in_by_delta() {
    let copy = copy_warehouse(&warehouse(0.005, 1));
    let root = copy.path();
    let before = publish(root).await;
    let files = parquet_files(&root.join("exports/tmall/ledger"));
    let first = files.first().expect("a tmall ledger file");
    let shop = first
        .parent()
        .and_then(Path::parent)
        .expect("the shop folder");
    let shop_id = shop
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("shop="))
        .expect("shop=<id>");
    register_file(&before, "t_raw", first).await;
    // A fee of an order with lines, moved to an order of the same shop paid in another month.
    let fee = rows(
        &before.ctx,
        &format!(
            "SELECT t.\"账务流水号\", t.\"商户订单号\", CAST(min(to_char(l.paid_at, '%Y-%m')) AS VARCHAR) \
             FROM t_raw t JOIN order_lines l ON l.platform = 'tmall' AND l.shop_id = '{shop_id}' \
               AND l.order_id = t.\"商户订单号\" \
             LEFT SEMI JOIN fees f ON f.platform = 'tmall' AND f.shop_id = '{shop_id}' \
               AND f.order_id = t.\"商户订单号\" AND f.fee_name = t.\"业务类型\" \
             WHERE coalesce(t.\"收入金额（+元）\", 0) + coalesce(t.\"支出金额（-元）\", 0) <> 0 \
             GROUP BY 1, 2 ORDER BY 1 LIMIT 1"
        ),
    )
    .await
    .remove(0);
    let (flow, order, month) = (&fee[0], &fee[1], &fee[2]);
    let other = rows(
        &before.ctx,
        &format!(
            "SELECT order_id FROM order_lines WHERE platform = 'tmall' AND shop_id = '{shop_id}' \
               AND to_char(paid_at, '%Y-%m') <> '{month}' ORDER BY order_id LIMIT 1"
        ),
    )
    .await
    .remove(0)
    .remove(0);
    deliver_again(
        &files,
        "part-999999-moved.parquet",
        &format!(
            "SELECT * REPLACE ('{other}' AS \"商户订单号\") FROM t WHERE \"账务流水号\" = '{flow}'"
        ),
    )
    .await;
    let what = format!("the fee of {flow} moved from {order} to {other}");
    // The published row the new one replaces names the old order: the closure holds both,
    // and the delta counts the fee once, where it now is, as the full build does.
    let (delta, full) = refreshed_by_delta_and_in_full(&what, root, &before).await;
    let closure = closure_of(&delta);
    assert!(closure.orders >= 2, "{what}: {}", closure.summary());
    assert!(!full.ledger.as_ref().expect("a ledger").failed(), "{what}");
    assert_ne!(
        before.ledger_manifest.as_ref().map(|m| &m.months),
        full.ledger_manifest.as_ref().map(|m| &m.months)
    );
}

/// `amoeba refresh`, the command, with its default logging (info): after a day was taken out
/// (a full build, and why) and put back, it builds by delta and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_command_says_how_it_built_the_ledger() {
    let copy = copy_warehouse(&warehouse(0.005, 1));
    let root = copy.path();
    let aside = tempfile::tempdir().expect("tempdir");
    let refresh = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_amoeba"))
            .args(["refresh", "--warehouse"])
            .arg(root)
            .env_remove("RUST_LOG")
            .output()
            .expect("amoeba refresh");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        );
        assert!(out.status.success(), "{stdout}\n{stderr}");
        (stdout, stderr)
    };
    refresh();
    let day = "2025-12-31";
    let moved = move_day(root, aside.path(), day);
    assert!(moved > 10, "{moved} files of {day}");
    let (without, _) = refresh();
    assert!(
        without.contains(&format!("in full: 0 input(s) replaced, {moved} removed")),
        "{without}"
    );
    move_day(aside.path(), root, day);
    let (with, log) = refresh();
    let line = with
        .lines()
        .find(|l| l.starts_with("ledger: "))
        .unwrap_or_else(|| panic!("no ledger line: {with}"));
    assert!(line.contains(" by delta from v"), "{line}");
    assert!(
        line.contains("month(s) rewritten (2025-11 2025-12 2026-01)"),
        "{line}"
    );
    assert!(line.contains("; mapped rows: the published "), "{line}");
    assert!(line.contains(" from the added files"), "{line}");
    assert!(!log.contains("WARN"), "{log}");
    eprintln!("{line}");
}

/// A corrected order header that moves the order's payment to the next day moves its lines
/// off a shop-day whose ads were spread over them. The closure once held the new day (the
/// changed lines') but not the old one, and a delta kept the old day's spread as published:
/// its January differed from the full build's (2,795 rows against 2,791), and every check
/// passed. Then the refresh built in full when it saw a line leave a day outside the closure;
/// now the replaced lines bring their old day into the closure, and the delta is exact.
#[tokio::test(flavor = "multi_thread")]
async fn a_line_moved_to_another_payment_day_is_taken_in_by_delta() {
    let copy = copy_warehouse(&warehouse(0.005, 1));
    let root = copy.path();
    let before = publish(root).await;
    let files = parquet_files(&root.join("exports/tmall/orders"));
    let first = files.first().expect("a tmall order header file");
    register_file(&before, "t_raw", first).await;
    // An order paid mid-month on a day its shop had ads spread over its SKUs.
    let order = rows(
        &before.ctx,
        "SELECT t.\"订单编号\" FROM t_raw t \
         JOIN order_lines l ON l.platform = 'tmall' AND l.order_id = t.\"订单编号\" \
         WHERE t.\"订单付款时间 \" IS NOT NULL \
           AND date_part('day', t.\"订单付款时间 \") BETWEEN 3 AND 26 \
           AND EXISTS (SELECT 1 FROM pnl_ledger p WHERE p.platform = 'tmall' \
                 AND p.shop_id = l.shop_id AND p.sku = l.sku AND p.account = 'advertising' \
                 AND p.date = CAST(l.paid_at AS DATE)) \
         ORDER BY 1 LIMIT 1",
    )
    .await
    .remove(0)
    .remove(0);
    deliver_again(
        &files,
        "part-999999-paid-a-day-later.parquet",
        &format!(
            "SELECT * REPLACE (\"订单付款时间 \" + INTERVAL '1 day' AS \"订单付款时间 \") \
             FROM t WHERE \"订单编号\" = '{order}'"
        ),
    )
    .await;
    let what = format!("order {order}, paid a day later");
    let (delta, _) = refreshed_by_delta_and_in_full(&what, root, &before).await;
    // Both days' ads are spread again: the old day comes with the replaced lines.
    let closure = closure_of(&delta);
    assert!(closure.shop_days >= 2, "{what}: {}", closure.summary());
}

/// Registers the Parquet file `path` as `name` in `served`'s session.
async fn register_file(served: &Served, name: &str, path: &Path) {
    served
        .ctx
        .register_parquet(name, path.to_string_lossy().as_ref(), Default::default())
        .await
        .expect("register");
}
