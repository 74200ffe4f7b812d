//! Re-costing the chains a change touches ([`cost_rows`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use amoeba_catalog::model::Model;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, UInt32Array,
};
use datafusion::arrow::compute::{cast, filter_record_batch, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use super::{Side, collect_one};
use crate::error::{EngineError, Result};
use crate::ledger::cost::{self, Stock};
use crate::ledger::{base_sql, lap, named, register, sources, stock, utf8_named};
use crate::session::new_session;

/// The costing side of a change: the chains (SKU × warehouse) whose movements it changes,
/// costed again from their first changed month over the new inputs, resumed from the
/// published stock book. With the order-local rows, the delta build's second part:
///
/// ```text
///  cogs(Fₙ) = cogs(Fₒ) + cost_ledger_rows(costed) − cost_ledger_rows(replaced)
/// ```
#[derive(Debug, Clone)]
pub struct CostDelta {
    /// Each changed chain: `sku`, `warehouse` and `from_month`, the first month in which its
    /// movements differ between the two sides.
    pub chains: RecordBatch,
    /// The chains' movements from `from_month` on, over the new inputs, costed.
    pub costed: RecordBatch,
    /// The published costed movements they replace (the chains' from `from_month` on).
    pub replaced: RecordBatch,
    /// The chains' stock book pages from `from_month` on (the stored book's columns), carried
    /// forward through the last month given.
    pub book: RecordBatch,
}

/// The columns of a movement (`sources::moves`, with its `month`), in the costing's order:
/// what the costed movements carry before their values.
const MOVE_COLUMNS: &str = "sku, warehouse, ts, ord, id, kind, qty, receipt_value, line, date, platform, shop_id, \
     unit_id, month";

/// The order in which movements are costed, as the full build sorts them (`sources::moves`).
pub(super) const COSTING_ORDER: &str = "sku, warehouse, ts, ord, id, line";

/// The published costing a change is applied to: the costed movements and the stock book of
/// the version built over the old inputs, as it published them
/// ([`published_costed`](crate::ledger::published_costed),
/// [`published_stock`](crate::ledger::published_stock)).
#[derive(Debug, Clone, Copy)]
pub struct PublishedCosting<'a> {
    /// The costed movements, in chain and time order.
    pub costed: &'a RecordBatch,
    /// The stock book as stored.
    pub book: &'a RecordBatch,
}

/// Costs again what a change does to the stock: `old` and `new` are the two sides of it
/// (seen through its closure), `published` the costing built over `old`, and `last_month`
/// the new ledger's last month (through which the book is carried).
///
/// ```text
///  moves of K's orders (issues, returns), each side ─► the differing ones ─► chains C, and
///        │                                                   each one's first month m
///        ▼
///  published movements of C from m, less K's lines ─► + K's new movements of C from m
///        │                                              sorted as the full build sorts
///        ▼
///  Stock::resume(the book page at the end of the month before m,
///                what C's earlier issues took, for the returns still to come) ─► costed
/// ```
///
/// A movement of an order outside K is the same on both sides, and so is every movement of
/// a chain before its first differing one: resumed there, the chain's costing from then on
/// is the full build's. Receipts and stock adjustments are carried over as published (a
/// change to purchases or adjustments makes the build a full one).
pub async fn cost_rows(
    old: &Side,
    new: &Side,
    model: &Model,
    published: PublishedCosting<'_>,
    last_month: Option<&str>,
) -> Result<CostDelta> {
    let step = |what: &str, e: EngineError| EngineError::ledger(format!("re-costing: {what}: {e}"));
    let mut lap_started = Instant::now();
    let old_moves = keyed_moves(old, model)
        .await
        .map_err(|e| step("the old side's movements", e))?;
    let new_moves = keyed_moves(new, model)
        .await
        .map_err(|e| step("the new side's movements", e))?;
    lap(&mut lap_started, "re-costing: the two sides' movements");
    let ctx = new_session()?;
    register(&ctx, "d_old", old_moves)?;
    register(&ctx, "d_new", new_moves)?;
    register(&ctx, "d_published", published.costed.clone())?;
    // A movement is changed when the two sides hold it a different number of times.
    let chains = collect_one(
        &ctx,
        &format!(
            "SELECT arrow_cast(sku, 'Utf8') AS sku, arrow_cast(warehouse, 'Utf8') AS warehouse, \
                    arrow_cast(min(month), 'Utf8') AS from_month \
             FROM (SELECT {MOVE_COLUMNS} FROM \
                     (SELECT {MOVE_COLUMNS}, 1 AS side FROM d_new \
                      UNION ALL SELECT {MOVE_COLUMNS}, -1 AS side FROM d_old) \
                   GROUP BY {MOVE_COLUMNS} HAVING sum(side) <> 0) \
             GROUP BY sku, warehouse ORDER BY sku, warehouse"
        ),
    )
    .await
    .map_err(|e| step("the changed chains", e))?;
    lap(&mut lap_started, "re-costing: the changed chains");
    register(&ctx, "d_chains", chains.clone())?;
    let from = "JOIN d_chains c ON c.sku = p.sku AND c.warehouse = p.warehouse";
    let split = ChainSplit::of(published.costed, &chains)
        .map_err(|e| step("the published movements of the chains", e))?;
    // In costing order, as the published movements are.
    let replaced = filter_record_batch(published.costed, &split.from_first)?;
    lap(&mut lap_started, "re-costing: the replaced movements");
    // Every published movement of K's lines in a changed chain from its month on is on the
    // old side: all of them give way to the new side's.
    let moves = collect_one(
        &ctx,
        &format!(
            "SELECT {MOVE_COLUMNS} FROM ( \
               SELECT {p} FROM d_published p {from} \
                 LEFT ANTI JOIN (SELECT line FROM d_old UNION SELECT line FROM d_new) k \
                   ON k.line = p.line \
               WHERE p.month >= c.from_month \
               UNION ALL \
               SELECT {p} FROM d_new p {from} WHERE p.month >= c.from_month) \
             ORDER BY {COSTING_ORDER}",
            p = qualified("p", MOVE_COLUMNS),
        ),
    )
    .await
    .map_err(|e| step("the movements to cost", e))?;
    lap(&mut lap_started, "re-costing: the movements to cost");
    let moves = cost::with_utf8_line(&moves)?;
    // What the chains' earlier issues took, for the returns to come of the lines they issued.
    let earlier = split
        .earlier_issues(published.costed, &moves)
        .map_err(|e| step("the earlier issues", e))?;
    lap(&mut lap_started, "re-costing: the earlier issues");
    let mut issued = cost::issued_by_chain(&earlier)?;
    // Each chain resumes at the end of the month before its first changed one; a chain with
    // no page there had no movement before it, and starts empty.
    let pages = stock::pages_of(published.book)?;
    let mut start = HashMap::new();
    let (c_sku, c_warehouse, c_from) = (
        utf8_named(&chains, "sku", "re-costing")?,
        utf8_named(&chains, "warehouse", "re-costing")?,
        utf8_named(&chains, "from_month", "re-costing")?,
    );
    for i in 0..chains.num_rows() {
        let Some(before) = stock::previous_month(c_from.value(i)) else {
            return Err(EngineError::ledger(format!(
                "re-costing: '{}' is not a month (YYYY-MM)",
                c_from.value(i)
            )));
        };
        start.insert((c_sku.value(i), c_warehouse.value(i)), before);
    }
    let mut states = HashMap::new();
    for page in &pages {
        if start.get(&(page.sku.as_str(), page.warehouse.as_str())) == Some(&page.month) {
            states.insert((page.sku.clone(), page.warehouse.clone()), &page.state);
        }
    }
    let method = model.costing;
    let mut book_pages = Vec::new();
    let costed = cost::cost_batch_from(
        method,
        &moves,
        &mut |sku, warehouse| {
            let chain = (sku.to_string(), warehouse.to_string());
            match states.get(&chain) {
                Some(state) => {
                    Stock::resume(method, state, issued.remove(&chain).unwrap_or_default())
                }
                None => Stock::new(method),
            }
        },
        Some(&mut book_pages),
    )?;
    let book = stock::book_batch(&book_pages, last_month)?;
    lap(&mut lap_started, "re-costing: costed");
    Ok(CostDelta {
        chains,
        costed,
        replaced,
        book,
    })
}

/// The ledger rows of costed movements (COGS, its reversals, inventory losses), summed at the
/// ledger grain: what [`CostDelta::costed`] adds and [`CostDelta::replaced`] takes away.
pub async fn cost_ledger_rows(costed: &RecordBatch, model: &Model) -> Result<RecordBatch> {
    let ctx = new_session()?;
    register(&ctx, "b_costed", costed.clone())?;
    collect_one(&ctx, &base_sql(&[sources::costed(model.costing)])).await
}

/// The issues and returns of one side's orders (the closure's), as the full build's
/// movements (`sources::moves`) with their month, in costing order.
async fn keyed_moves(side: &Side, model: &Model) -> Result<RecordBatch> {
    let ctx = &side.ctx;
    // All the movements first, then the issues and returns among them: with the filter on
    // `kind` around the statement, the plan DataFusion 55 made of it panicked in a
    // RepartitionExec ("partition not used yet"), and the receipts and adjustments are few.
    register(
        ctx,
        "d_moves",
        collect_one(ctx, &sources::moves(model)).await?,
    )?;
    let moves = collect_one(
        ctx,
        &format!(
            "SELECT * FROM d_moves WHERE kind IN ('issue', 'return') ORDER BY {COSTING_ORDER}"
        ),
    )
    .await?;
    stock::with_month(&cost::with_utf8_line(&moves)?)
}

/// `columns` (comma-separated) qualified with `table`.
fn qualified(table: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{table}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A run of consecutive rows of one chain (`sku`, `warehouse`; `None` for a null).
pub(super) struct ChainRun<'a> {
    pub(super) chain: (Option<&'a str>, Option<&'a str>),
    pub(super) rows: std::ops::Range<usize>,
}

/// The chains' runs of movements in costing order (their `sku` and `warehouse` columns). A
/// null sorts after every value, as `ORDER BY` puts it by default.
pub(super) fn chain_runs<'a>(
    sku: &'a StringArray,
    warehouse: &'a StringArray,
    what: &str,
) -> Result<Vec<ChainRun<'a>>> {
    let key = |i: usize| {
        (
            sku.is_valid(i).then(|| sku.value(i)),
            warehouse.is_valid(i).then(|| warehouse.value(i)),
        )
    };
    let mut runs: Vec<ChainRun<'a>> = Vec::new();
    for i in 0..sku.len() {
        let chain = key(i);
        match runs.last_mut() {
            Some(run) if run.chain == chain => run.rows.end = i + 1,
            _ => runs.push(ChainRun {
                chain,
                rows: i..i + 1,
            }),
        }
    }
    // Each chain is one run, in order; anything else is not costing order.
    for pair in runs.windows(2) {
        if null_last(pair[0].chain) >= null_last(pair[1].chain) {
            return Err(EngineError::ledger(format!(
                "{what}: not in costing order at row {}",
                pair[1].rows.start
            )));
        }
    }
    Ok(runs)
}

/// A chain key in `ORDER BY` order (nulls last).
type ChainOrder<'a> = ((bool, Option<&'a str>), (bool, Option<&'a str>));

/// A chain key ordered as `ORDER BY sku, warehouse` orders it: nulls last.
pub(super) fn null_last<'a>(chain: (Option<&'a str>, Option<&'a str>)) -> ChainOrder<'a> {
    ((chain.0.is_none(), chain.0), (chain.1.is_none(), chain.1))
}

/// The published costed movements of the changed chains, by where they stand to each one's
/// first changed month. One pass over the chains' runs (the movements are in costing order,
/// so a chain is one run, looked up once): two joins with the chains took 0.42 s of a day at
/// scale 1, scanning the 1.5 M movements and sorting what they kept.
struct ChainSplit {
    /// A changed chain's movements from its first changed month on: what re-costing replaces.
    from_first: BooleanArray,
    /// The rows of a changed chain's movements before that month.
    before: Vec<usize>,
}

impl ChainSplit {
    /// Splits `published` (costed movements, in costing order) by `chains` (`sku`,
    /// `warehouse`, `from_month`). A movement with no month, or of a chain with a null key,
    /// is in neither part, as SQL's comparisons and joins leave it out.
    fn of(published: &RecordBatch, chains: &RecordBatch) -> Result<ChainSplit> {
        const WHAT: &str = "the published costed movements";
        let utf8 = |name: &str| -> Result<ArrayRef> {
            Ok(cast(named(published, name, WHAT)?, &DataType::Utf8)?)
        };
        let (sku, warehouse, month) = (utf8("sku")?, utf8("warehouse")?, utf8("month")?);
        let month = month.as_string::<i32>();
        let (c_sku, c_warehouse, c_from) = (
            utf8_named(chains, "sku", "re-costing")?,
            utf8_named(chains, "warehouse", "re-costing")?,
            utf8_named(chains, "from_month", "re-costing")?,
        );
        let first_changed: HashMap<(&str, &str), &str> = (0..chains.num_rows())
            .filter(|&i| c_sku.is_valid(i) && c_warehouse.is_valid(i) && c_from.is_valid(i))
            .map(|i| ((c_sku.value(i), c_warehouse.value(i)), c_from.value(i)))
            .collect();
        let mut from_first = vec![false; published.num_rows()];
        let mut before = Vec::new();
        for run in chain_runs(sku.as_string(), warehouse.as_string(), WHAT)? {
            let (Some(sku), Some(warehouse)) = run.chain else {
                continue;
            };
            let Some(&first) = first_changed.get(&(sku, warehouse)) else {
                continue;
            };
            for i in run.rows.filter(|&i| month.is_valid(i)) {
                if month.value(i) >= first {
                    from_first[i] = true;
                } else {
                    before.push(i);
                }
            }
        }
        Ok(ChainSplit {
            from_first: BooleanArray::from(from_first),
            before,
        })
    }

    /// The issues before the first changed month of lines that `moves` (the movements to
    /// cost) return: `sku`, `warehouse`, `kind`, `line` (as text), `qty` and `value_e4`, what
    /// [`cost::issued_by_chain`] reads.
    fn earlier_issues(&self, published: &RecordBatch, moves: &RecordBatch) -> Result<RecordBatch> {
        const WHAT: &str = "the earlier issues";
        let utf8 = |batch: &RecordBatch, name: &str| -> Result<ArrayRef> {
            Ok(cast(named(batch, name, WHAT)?, &DataType::Utf8)?)
        };
        let (m_kind, m_line) = (utf8(moves, "kind")?, utf8(moves, "line")?);
        let (m_kind, m_line) = (m_kind.as_string::<i32>(), m_line.as_string::<i32>());
        let returned: HashSet<&str> = (0..moves.num_rows())
            .filter(|&i| m_kind.is_valid(i) && m_kind.value(i) == "return" && m_line.is_valid(i))
            .map(|i| m_line.value(i))
            .collect();
        let (kind, line) = (utf8(published, "kind")?, utf8(published, "line")?);
        let (kind, line) = (kind.as_string::<i32>(), line.as_string::<i32>());
        let issued: Vec<u32> = self
            .before
            .iter()
            .copied()
            .filter(|&i| {
                kind.is_valid(i)
                    && kind.value(i) == "issue"
                    && line.is_valid(i)
                    && returned.contains(line.value(i))
            })
            .map(|i| u32::try_from(i).map_err(|_| EngineError::ledger(format!("{WHAT}: row {i}"))))
            .collect::<Result<_>>()?;
        let earlier = take_record_batch(published, &UInt32Array::from(issued))?;
        let text = |name: &str| -> Result<ArrayRef> { utf8(&earlier, name) };
        let columns: Vec<ArrayRef> = vec![
            text("sku")?,
            text("warehouse")?,
            text("kind")?,
            text("line")?,
            Arc::clone(named(&earlier, "qty", WHAT)?),
            Arc::clone(named(&earlier, "value_e4", WHAT)?),
        ];
        let fields: Vec<Field> = ["sku", "warehouse", "kind", "line", "qty", "value_e4"]
            .iter()
            .zip(&columns)
            .map(|(name, c)| Field::new(*name, c.data_type().clone(), true))
            .collect();
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns,
        )?)
    }
}
