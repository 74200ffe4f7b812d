//! The company side: ERP dimensions and stock movements, carrier bills, the expense ledger and
//! labour hours.
//!
//! These are written after all shops, because they follow what the shops did: purchasing
//! replenishes each SKU ahead of its actual monthly sales (an opening receipt in late December
//! 2024, then every one to three months depending on the SKU's volume, at a drifting cost), the
//! carrier bills are the parcels the shops shipped and took back, and packaging material follows
//! the orders shipped. Monthly files are named `part-<YYYYMM>-0001.parquet` (their delivery order
//! is the file name; no `shop=`/`dt=` partitions); `erp/skus` and `erp/shops` are single files.
//! The company files have no delivery quirks.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate, Weekday};
use datafusion::arrow::record_batch::RecordBatch;
use rand_chacha::ChaCha8Rng;

use crate::error::Result;
use crate::platforms::ShopOutput;
use crate::shape::{
    DAY, HOUR, between, chance, date_of, date32, month_label, month_of, pick, rng_for, tag, uniform,
};
use crate::table::{Col, TableBuilder, Ty, col};
use crate::truth;
use crate::world::{Sku, WAREHOUSES, World};
use crate::write::{Sink, Tally};

/// A parcel on a carrier's bill.
#[derive(Debug, Clone)]
pub(crate) struct Waybill {
    pub(crate) no: String,
    pub(crate) carrier: &'static str,
    pub(crate) order_id: Option<String>,
    pub(crate) at: i64,
    /// Billed weight in grams (= kilograms with three decimals).
    pub(crate) grams: i64,
    pub(crate) cost_c: i64,
    pub(crate) outbound: bool,
}

pub(crate) const WAYBILLS: &[Col] = &[
    col("快递单号", Ty::Str),
    col("快递公司", Ty::Str),
    col("订单号", Ty::Str),
    col("发货时间", Ty::Ts),
    col("计费重量kg", Ty::Kg),
    col("运费", Ty::Money),
    col("类型", Ty::Str),
];

pub(crate) const PURCHASES: &[Col] = &[
    col("入库单号", Ty::Str),
    col("商家编码", Ty::Str),
    col("仓库", Ty::Str),
    col("入库时间", Ty::Ts),
    col("数量", Ty::I64),
    col("含税单价", Ty::Cost4),
    col("采购运费", Ty::Money),
];

const STOCK: &[Col] = &[
    col("单号", Ty::Str),
    col("商家编码", Ty::Str),
    col("仓库", Ty::Str),
    col("日期", Ty::Date),
    col("数量", Ty::I64),
    col("原因", Ty::Str),
];

pub(crate) const EXPENSES: &[Col] = &[
    col("月份", Ty::Str),
    col("费用类别", Ty::Str),
    col("成本中心", Ty::Str),
    col("金额", Ty::Money),
];

const HOURS: &[Col] = &[
    col("月份", Ty::Str),
    col("单元", Ty::Str),
    col("工时", Ty::Money),
];

pub(crate) const SKUS: &[Col] = &[
    col("商家编码", Ty::Str),
    col("SPU", Ty::Str),
    col("品牌", Ty::Str),
    col("类目", Ty::Str),
    col("重量kg", Ty::Kg),
    col("保质期天", Ty::I64),
    col("供应商", Ty::Str),
];

pub(crate) const SHOPS: &[Col] = &[
    col("平台", Ty::Str),
    col("店铺Id", Ty::Str),
    col("店铺名称", Ty::Str),
    col("品牌", Ty::Str),
    col("运营团队", Ty::Str),
];

/// A row of a company file: its month file (`None` for single-file kinds), its export cells and
/// its truth cells.
trait CompanyRow {
    fn month(&self) -> Option<u32>;
    fn export(&self, t: &mut TableBuilder);
    fn truth(&self, t: &mut TableBuilder);
}

/// Writes a company kind under `dir` and returns its truth view (rows in file order).
fn write_kind<R: CompanyRow>(
    sink: &Sink,
    dir: &'static str,
    cols: &'static [Col],
    view: &'static str,
    view_cols: &'static [Col],
    rows: &[R],
    tally: &mut Tally,
) -> Result<RecordBatch> {
    let mut files: BTreeMap<Option<u32>, Vec<&R>> = BTreeMap::new();
    for r in rows {
        files.entry(r.month()).or_default().push(r);
    }
    let mut truth = TableBuilder::new(view, view_cols)?;
    for (month, rows) in files {
        let mut t = TableBuilder::new(dir, cols)?;
        for r in &rows {
            r.export(&mut t);
            r.truth(&mut truth);
        }
        let name = match month {
            Some(m) => format!("{dir}/part-{m}-0001.parquet"),
            None => format!("{dir}/part-0001.parquet"),
        };
        sink.write_one(&name, &t.finish()?, tally)?;
    }
    truth.finish()
}

impl CompanyRow for Waybill {
    fn month(&self) -> Option<u32> {
        Some(month_of(self.at))
    }
    fn export(&self, t: &mut TableBuilder) {
        t.s(&self.no);
        t.s(self.carrier);
        t.os(self.order_id.as_deref());
        t.t(self.at);
        t.d(self.grams);
        t.d(self.cost_c);
        t.s(if self.outbound { "发货" } else { "退货" });
    }
    fn truth(&self, t: &mut TableBuilder) {
        t.s(&self.no);
        t.s(self.carrier);
        t.os(self.order_id.as_deref());
        t.t(self.at);
        t.d(self.grams);
        t.d(self.cost_c);
        t.s(if self.outbound { "outbound" } else { "return" });
    }
}

/// Rows whose export and truth cells are the same values in the same order.
macro_rules! same_cells {
    ($ty:ty) => {
        impl CompanyRow for $ty {
            fn month(&self) -> Option<u32> {
                self.file_month()
            }
            fn export(&self, t: &mut TableBuilder) {
                self.cells(t);
            }
            fn truth(&self, t: &mut TableBuilder) {
                self.cells(t);
            }
        }
    };
}

struct Purchase {
    receipt: String,
    sku: String,
    warehouse: &'static str,
    at: i64,
    qty: i64,
    cost_c4: i64,
    freight_c: i64,
}

impl Purchase {
    fn file_month(&self) -> Option<u32> {
        Some(month_of(self.at))
    }
    fn cells(&self, t: &mut TableBuilder) {
        t.s(&self.receipt);
        t.s(&self.sku);
        t.s(self.warehouse);
        t.t(self.at);
        t.i(self.qty);
        t.d(self.cost_c4);
        t.d(self.freight_c);
    }
}
same_cells!(Purchase);

struct Adjustment {
    id: String,
    sku: String,
    warehouse: &'static str,
    day: i64,
    qty: i64,
    reason: &'static str,
}

impl Adjustment {
    fn file_month(&self) -> Option<u32> {
        Some(month_of(self.day))
    }
    fn cells(&self, t: &mut TableBuilder) {
        t.s(&self.id);
        t.s(&self.sku);
        t.s(self.warehouse);
        t.date(date32(self.day));
        t.i(self.qty);
        t.s(self.reason);
    }
}
same_cells!(Adjustment);

struct Expense {
    month: u32,
    category: &'static str,
    center: &'static str,
    amount_c: i64,
}

impl Expense {
    fn file_month(&self) -> Option<u32> {
        Some(self.month)
    }
    fn cells(&self, t: &mut TableBuilder) {
        t.s(&month_label(self.month));
        t.s(self.category);
        t.s(self.center);
        t.d(self.amount_c);
    }
}
same_cells!(Expense);

struct Hours {
    month: u32,
    unit: &'static str,
    /// Hundredths of an hour.
    hours: i64,
}

impl Hours {
    fn file_month(&self) -> Option<u32> {
        Some(self.month)
    }
    fn cells(&self, t: &mut TableBuilder) {
        t.s(&month_label(self.month));
        t.s(self.unit);
        t.d(self.hours);
    }
}
same_cells!(Hours);

struct SkuRow<'a>(&'a Sku, &'static str);

impl CompanyRow for SkuRow<'_> {
    fn month(&self) -> Option<u32> {
        None
    }
    fn export(&self, t: &mut TableBuilder) {
        self.truth(t);
    }
    fn truth(&self, t: &mut TableBuilder) {
        let s = self.0;
        t.s(&s.code);
        t.s(&s.spu);
        t.s(self.1);
        t.s(s.category);
        t.d(s.grams);
        t.oi(s.shelf_life);
        t.s(s.supplier);
    }
}

struct ShopRow<'a>(&'a crate::world::Shop);

impl CompanyRow for ShopRow<'_> {
    fn month(&self) -> Option<u32> {
        None
    }
    fn export(&self, t: &mut TableBuilder) {
        self.truth(t);
    }
    fn truth(&self, t: &mut TableBuilder) {
        let s = self.0;
        t.s(s.platform.name());
        t.s(&s.id);
        t.s(&s.name);
        t.s(s.brand_name());
        t.s(s.team());
    }
}

/// Truth of the company views, in [`crate::UNIFIED_VIEWS`] order from `waybills` to `shops`.
pub(crate) struct CompanyOutput {
    pub(crate) truth: Vec<RecordBatch>,
    pub(crate) tally: Tally,
}

/// Writes every company file. Takes the shops' waybills out of their outputs.
pub(crate) fn generate(
    world: &World,
    sink: &Sink,
    shops: &mut [ShopOutput],
) -> Result<CompanyOutput> {
    let mut rng = rng_for(world.seed, &[tag("company")]);
    let mut tally = Tally::default();
    let mut truth = Vec::with_capacity(7);

    let mut waybills: Vec<Waybill> = shops
        .iter_mut()
        .flat_map(|s| std::mem::take(&mut s.waybills))
        .collect();
    waybills.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.no.cmp(&b.no)));
    truth.push(write_kind(
        sink,
        "logistics/waybills",
        WAYBILLS,
        "truth/waybills",
        truth::WAYBILLS,
        &waybills,
        &mut tally,
    )?);
    drop(waybills);

    let mut demand: BTreeMap<usize, [i64; 12]> = BTreeMap::new();
    let mut shipped = [0i64; 12];
    for s in shops.iter() {
        for (sku, months) in &s.sold {
            let d = demand.entry(*sku).or_insert([0; 12]);
            for (a, b) in d.iter_mut().zip(months) {
                *a += b;
            }
        }
        for (a, b) in shipped.iter_mut().zip(&s.shipped) {
            *a += b;
        }
    }

    let purchases = purchases(world, &demand, &mut rng);
    truth.push(write_kind(
        sink,
        "erp/purchases",
        PURCHASES,
        "truth/purchases",
        truth::PURCHASES,
        &purchases,
        &mut tally,
    )?);
    let adjustments = adjustments(world, &demand, &mut rng);
    truth.push(write_kind(
        sink,
        "erp/stock_adjustments",
        STOCK,
        "truth/stock_adjustments",
        truth::STOCK_ADJUSTMENTS,
        &adjustments,
        &mut tally,
    )?);
    let expenses = expenses(world, &shipped, &mut rng);
    truth.push(write_kind(
        sink,
        "finance/expenses",
        EXPENSES,
        "truth/expenses",
        truth::EXPENSES,
        &expenses,
        &mut tally,
    )?);
    let hours = hours(world, &mut rng);
    truth.push(write_kind(
        sink,
        "finance/hours",
        HOURS,
        "truth/hours",
        truth::HOURS,
        &hours,
        &mut tally,
    )?);
    let skus: Vec<SkuRow<'_>> = world
        .skus
        .iter()
        .map(|s| SkuRow(s, world.brand_name(s.brand)))
        .collect();
    truth.push(write_kind(
        sink,
        "erp/skus",
        SKUS,
        "truth/skus",
        truth::SKUS,
        &skus,
        &mut tally,
    )?);
    let shops_rows: Vec<ShopRow<'_>> = world.shops.iter().map(ShopRow).collect();
    truth.push(write_kind(
        sink,
        "erp/shops",
        SHOPS,
        "truth/shops",
        truth::SHOPS,
        &shops_rows,
        &mut tally,
    )?);
    Ok(CompanyOutput { truth, tally })
}

/// Seconds of a local date and hour.
fn at(y: i32, m: u32, d: u32, hour: i64) -> i64 {
    let days = NaiveDate::from_ymd_opt(y, m, d)
        .map(|date| date.signed_duration_since(NaiveDate::default()).num_days())
        .unwrap_or(0);
    days * DAY + hour * HOUR
}

/// Receipts ahead of demand: the receipt for months `m..m+k` arrives between the 18th and the
/// 26th of month `m − 1` (December 2024 for the opening stock), grouped into one 入库单 per
/// month, supplier and warehouse.
fn purchases(
    world: &World,
    demand: &BTreeMap<usize, [i64; 12]>,
    rng: &mut ChaCha8Rng,
) -> Vec<Purchase> {
    // (receipt month index 0..12, supplier, warehouse) → lines (sku, qty, cost)
    type Lines = Vec<(usize, i64, i64)>;
    let mut groups: BTreeMap<(usize, &str, &str), Lines> = BTreeMap::new();
    let none = [0i64; 12];
    for (i, sku) in world.skus.iter().enumerate() {
        let d = demand.get(&i).unwrap_or(&none);
        let annual: i64 = d.iter().sum();
        let every = if annual > 1_200 {
            1
        } else if annual > 200 {
            2
        } else {
            3
        };
        let mut drift = 0.0f64;
        for m in (0..12).step_by(every) {
            let covered: i64 = d.iter().skip(m).take(every).sum();
            if m > 0 && covered == 0 {
                continue;
            }
            let qty = ((covered as f64 * uniform(rng, 1.05, 1.25)).ceil() as i64).max(if m == 0 {
                10
            } else {
                1
            });
            drift = (drift + uniform(rng, -0.02, 0.025)).clamp(-0.10, 0.12);
            let cost = (sku.cost_c4 as f64 * (1.0 + drift)).round() as i64;
            groups
                .entry((m, sku.supplier, sku.warehouse))
                .or_default()
                .push((i, qty, cost));
        }
    }
    let mut out = Vec::new();
    let mut per_day: BTreeMap<i64, usize> = BTreeMap::new();
    for ((m, _, warehouse), lines) in groups {
        let (y, month) = if m == 0 { (2024, 12) } else { (2025, m as u32) };
        let t =
            at(y, month, between(rng, 18, 26) as u32, between(rng, 9, 16)) + between(rng, 0, 3_599);
        let n = per_day.entry(t / DAY).or_default();
        *n += 1;
        let receipt = format!("RK{}{:04}", crate::shape::ymd(t), n);
        for (i, qty, cost) in lines {
            let Some(sku) = world.skus.get(i) else {
                continue;
            };
            // Suppliers deliver free above a volume; else ~0.80 yuan per kg.
            let freight_c = if chance(rng, 0.3) {
                0
            } else {
                qty * sku.grams * 80 / 1_000
            };
            out.push(Purchase {
                receipt: receipt.clone(),
                sku: sku.code.clone(),
                warehouse,
                at: t,
                qty,
                cost_c4: cost,
                freight_c,
            });
        }
    }
    out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.receipt.cmp(&b.receipt)));
    out
}

/// One stock document: `lines` distinct SKUs of the pool that pass `filter`, each losing
/// between `qty.0` and `qty.1` units.
struct Doc<'f> {
    id: String,
    day: i64,
    lines: i64,
    qty: (i64, i64),
    reason: &'static str,
    filter: &'f dyn Fn(&Sku) -> bool,
}

fn push_doc(
    world: &World,
    pool: &[usize],
    doc: Doc<'_>,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<Adjustment>,
) {
    let candidates: Vec<&Sku> = pool
        .iter()
        .filter_map(|i| world.skus.get(*i))
        .filter(|s| (doc.filter)(s))
        .collect();
    // Distinct SKUs (the key is 单号 + 商家编码), in a stable order.
    let mut chosen = BTreeSet::new();
    for _ in 0..doc.lines * 4 {
        if chosen.len() as i64 >= doc.lines {
            break;
        }
        if let Some(s) = pick(rng, &candidates) {
            chosen.insert(s.code.as_str());
        }
    }
    for code in chosen {
        let Some(sku) = candidates.iter().find(|s| s.code == code) else {
            continue;
        };
        out.push(Adjustment {
            id: doc.id.clone(),
            sku: sku.code.clone(),
            warehouse: sku.warehouse,
            day: doc.day,
            qty: -between(rng, doc.qty.0, doc.qty.1),
            reason: doc.reason,
        });
    }
}

/// A few stock losses a month among the 300 best sellers: a stock-take per warehouse (盘亏),
/// quarterly write-offs of expiring goods (临期报废, SKUs with a shelf life) and the odd
/// breakage (破损).
fn adjustments(
    world: &World,
    demand: &BTreeMap<usize, [i64; 12]>,
    rng: &mut ChaCha8Rng,
) -> Vec<Adjustment> {
    let mut sold: Vec<(i64, usize)> = demand
        .iter()
        .map(|(i, d)| (d.iter().sum::<i64>(), *i))
        .filter(|(q, _)| *q > 0)
        .collect();
    sold.sort_by(|a, b| b.cmp(a));
    let pool: Vec<usize> = sold.iter().take(300).map(|(_, i)| *i).collect();
    let mut out = Vec::new();
    for m in 1..=12u32 {
        let month = 202_500 + m;
        let last = at(2025, m, 1, 0) + (days_in(2025, m) - 1) * DAY;
        for (w, warehouse) in WAREHOUSES.iter().enumerate() {
            let here = |s: &Sku| s.warehouse == *warehouse;
            let doc = Doc {
                id: format!("PD{month}{:02}", w + 1),
                day: last,
                lines: between(rng, 2, 6),
                qty: (1, 3),
                reason: "盘亏",
                filter: &here,
            };
            push_doc(world, &pool, doc, rng, &mut out);
            if m % 3 == 0 {
                let expiring = |s: &Sku| s.warehouse == *warehouse && s.shelf_life.is_some();
                let doc = Doc {
                    id: format!("BF{month}{:02}", w + 1),
                    day: at(2025, m, 25, 0),
                    lines: between(rng, 1, 4),
                    qty: (2, 20),
                    reason: "临期报废",
                    filter: &expiring,
                };
                push_doc(world, &pool, doc, rng, &mut out);
            }
        }
        for k in 0..between(rng, 0, 3) {
            let doc = Doc {
                id: format!("PS{month}{:03}", k + 1),
                day: at(2025, m, between(rng, 1, 28) as u32, 0),
                lines: between(rng, 1, 2),
                qty: (1, 2),
                reason: "破损",
                filter: &|_| true,
            };
            push_doc(world, &pool, doc, rng, &mut out);
        }
    }
    out
}

fn days_in(y: i32, m: u32) -> i64 {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    at(ny, nm, 1, 0) / DAY - at(y, m, 1, 0) / DAY
}

/// Monthly expenses by category and cost center (a unit id or 公共); amounts at scale 1, in
/// yuan per center and month. 包装材料 follows the parcels shipped.
const EXPENSE_PLAN: [(&str, &[&str], i64); 7] = [
    ("仓库租金", &["U09"], 300_000),
    ("客服工资", &["U10"], 200_000),
    (
        "运营工资",
        &[
            "U01", "U02", "U03", "U04", "U05", "U06", "U07", "U08", "U12",
        ],
        60_000,
    ),
    ("财务行政工资", &["公共", "U11"], 80_000),
    ("ERP服务费", &["公共"], 20_000),
    ("平台年费", &["公共"], 10_000),
    ("总部管理费", &["公共"], 100_000),
];

fn expenses(world: &World, shipped: &[i64; 12], rng: &mut ChaCha8Rng) -> Vec<Expense> {
    let mut out = Vec::new();
    for (m, parcels) in shipped.iter().enumerate() {
        let month = 202_501 + m as u32;
        for (category, centers, base) in EXPENSE_PLAN {
            for center in centers {
                let amount = (base as f64 * 100.0 * world.scale * uniform(rng, 0.95, 1.05)) as i64;
                out.push(Expense {
                    month,
                    category,
                    center,
                    amount_c: amount.max(10_000),
                });
            }
        }
        let packaging = (*parcels as f64 * 80.0 * uniform(rng, 0.9, 1.1)) as i64;
        out.push(Expense {
            month,
            category: "包装材料",
            center: "U09",
            amount_c: packaging.max(10_000),
        });
    }
    out
}

/// Headcount per unit at scale 1 (U01 … U12).
const HEADCOUNT: [f64; 12] = [
    8.0, 8.0, 6.0, 6.0, 5.0, 5.0, 7.0, 7.0, 40.0, 30.0, 6.0, 10.0,
];

fn hours(world: &World, rng: &mut ChaCha8Rng) -> Vec<Hours> {
    let mut out = Vec::new();
    for m in 1..=12u32 {
        let workdays = (0..days_in(2025, m))
            .filter(|d| {
                let wd = date_of(at(2025, m, 1, 0) + d * DAY).weekday();
                wd != Weekday::Sat && wd != Weekday::Sun
            })
            .count() as f64;
        for ((unit, _, _), heads) in crate::UNITS.iter().zip(HEADCOUNT) {
            let people = (heads * world.scale).max(1.0);
            let h = people * workdays * 8.0 * uniform(rng, 0.95, 1.08);
            out.push(Hours {
                month: 202_500 + m,
                unit,
                hours: (h * 100.0).round() as i64,
            });
        }
    }
    out
}
