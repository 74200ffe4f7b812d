//! # amoeba-data — e-commerce platform exports, synthesized, with their truth
//!
//! [`generate`] writes a warehouse the way the outside world fills it (see
//! `shared/spec/exports.md`): the back-office exports of Tmall, JD, Pinduoduo and Douyin with
//! their own Chinese headers and quirks, and the company's ERP, carrier and finance files. Beside
//! them it writes `truth/<view>.parquet`: the unified views of `docs/unified.md` exactly as the
//! generator produced them, after de-duplication and corrections, so that the catalog's mappings
//! can be checked row by row.
//!
//! ## Design
//!
//! * **One simulation, four vocabularies.** [`sim`] simulates every shop's year the same way
//!   (calendar and peaks from [`shape`], Zipf popularity, payment, cancellation, shipping,
//!   receipt, after-sales); [`platforms`] renders it per platform — ids, statuses, where postage
//!   and subsidies live, which money files record what — and derives the truth *from the rows it
//!   exports*, so truth and exports cannot drift apart.
//! * **Money in cents.** All amounts are `i64` fen ([`money`]); floats appear only where JD
//!   really exports floats. Order-level amounts are split with the exact largest-remainder rule.
//! * **Column-wise output.** Rows are pushed straight into Arrow builders ([`table`]) and every
//!   file is one `ArrowWriter` write with ZSTD ([`write`]).
//! * **Deterministic, in parallel.** Each shop, each file's delivery quirks and the company side
//!   have their own `ChaCha8Rng` derived from the seed; shops run on a small thread pool and
//!   their results are assembled in shop order. Same `(scale, seed)` → byte-identical files,
//!   whatever the number of threads.
//! * **Delivery quirks** (re-deliveries, corrections) are applied to platform files only, when
//!   writing ([`write`]); the truth holds the final values.
//!
//! Output layout under [`GenOptions::out`]: `exports/<platform>/<kind>/shop=<id>/dt=<last day
//! of month>/part-<YYYYMM>-0001.parquet` (plus `-0002-redelivery` / `-0003-correction`
//! deliveries), `erp/{skus,shops,purchases,stock_adjustments}`, `logistics/waybills`,
//! `finance/{expenses,hours}`, `truth/<view>.parquet`, and a marker `.amoeba-gen` that lets a
//! later run replace what this one wrote (and only that).

mod company;
mod error;
pub mod fixture;
mod money;
mod platforms;
mod shape;
mod sim;
mod table;
mod truth;
mod world;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub use chrono::NaiveDate;
use datafusion::arrow::record_batch::RecordBatch;
use indicatif::{ProgressBar, ProgressStyle};

pub use error::{DataError, Result};

use platforms::{ShopOutput, run_shop};
use table::schema_of;
use world::World;
use write::{Sink, Tally};

/// The platforms, as they appear in paths and in the `platform` column.
pub const PLATFORMS: [&str; 4] = ["tmall", "jd", "pdd", "douyin"];

/// The unified views, as written under `truth/` (docs/unified.md).
pub const UNIFIED_VIEWS: [&str; 11] = [
    "order_lines",
    "refunds",
    "fees",
    "ad_spend",
    "waybills",
    "purchases",
    "stock_adjustments",
    "expenses",
    "hours",
    "skus",
    "shops",
];

/// The units of the generated company: `(id, name, kind)`. `U01`–`U08` are the profit units
/// that run the shops (`erp/shops.运营团队` is the unit name; two teams per platform, in
/// [`PLATFORMS`] order), `U09`–`U12` are service units. They are the `单元` of `finance/hours`
/// and, with `公共`, the `成本中心` of `finance/expenses`.
pub const UNITS: [(&str, &str, &str); 12] = [
    ("U01", "天猫一组", "profit"),
    ("U02", "天猫二组", "profit"),
    ("U03", "京东一组", "profit"),
    ("U04", "京东二组", "profit"),
    ("U05", "拼多多一组", "profit"),
    ("U06", "拼多多二组", "profit"),
    ("U07", "抖音直播组", "profit"),
    ("U08", "抖音商城组", "profit"),
    ("U09", "仓储物流中心", "service"),
    ("U10", "客服中心", "service"),
    ("U11", "采购中心", "service"),
    ("U12", "内容直播中心", "service"),
];

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// 1.0 ≈ one year with ~1,000,000 order lines, 40 shops and 5,000 SKUs; lines scale
    /// linearly, shops and SKUs with the square root. Must be in (0, 100].
    pub scale: f64,
    /// Same `(scale, seed)` → identical output.
    pub seed: u64,
    /// The warehouse directory (created if missing).
    pub out: PathBuf,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Deliver the platform export rows of this day on their own, under `dt=<day>`, and the
    /// rest of its month under `dt=<the day before>`, as a platform that exports daily would:
    /// one day of exports to take in (`benches/refresh.sh`). `None`: one delivery per shop,
    /// kind and month, under `dt=<the month's last day>`.
    pub day_apart: Option<NaiveDate>,
}

/// What was generated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenSummary {
    /// Parquet files written (exports, company files and truth).
    pub files: usize,
    /// Paid order lines (rows of `truth/order_lines`).
    pub order_lines: usize,
    /// Bytes written.
    pub bytes: u64,
    /// Shops generated.
    pub shops: usize,
    /// SKUs in the catalogue.
    pub skus: usize,
    /// Platform export files delivered a second time (`-0002-redelivery`).
    pub redeliveries: usize,
    /// Platform export files corrected by a later delivery (`-0003-correction`).
    pub corrections: usize,
    /// Rows of each truth view, in [`UNIFIED_VIEWS`] order.
    pub truth_rows: Vec<(&'static str, usize)>,
}

/// Top-level directories this generator owns under `out`.
const OWNED: [&str; 6] = ["exports", "erp", "logistics", "finance", "truth", "ledger"];
/// Marks a directory as written by the generator, so that a re-run may replace its output.
const MARKER: &str = ".amoeba-gen";

/// Generates the synthetic warehouse described in the crate docs.
pub fn generate(opts: &GenOptions) -> Result<GenSummary> {
    let mut world = World::build(opts.scale, opts.seed)?;
    world.day_apart = opts.day_apart;
    prepare(&opts.out)?;
    let sink = Sink::new(&opts.out);
    let bar = if opts.progress {
        let bar = ProgressBar::new(world.shops.len() as u64 + 2);
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {msg:<28} [{bar:30}] {pos}/{len} {elapsed}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    bar.set_message("shops");

    write_default_model(&opts.out)?;
    let mut shops = run_shops(&world, &sink, &bar)?;
    bar.set_message("company files");
    let company = company::generate(&world, &sink, &mut shops)?;
    bar.inc(1);
    bar.set_message("truth");

    let mut tally = Tally::default();
    for s in &shops {
        tally.add(&s.tally);
    }
    tally.add(&company.tally);
    let mut truth_rows = Vec::with_capacity(UNIFIED_VIEWS.len());
    for (v, (view, cols)) in UNIFIED_VIEWS.iter().zip(truth::LAYOUTS).enumerate() {
        let batches: Vec<&RecordBatch> = if v < 4 {
            shops.iter().filter_map(|s| s.truth.get(v)).collect()
        } else {
            company.truth.get(v - 4).into_iter().collect()
        };
        let rows = batches.iter().map(|b| b.num_rows()).sum();
        tally.bytes += sink.write(&format!("truth/{view}.parquet"), schema_of(cols), batches)?;
        tally.files += 1;
        truth_rows.push((*view, rows));
    }
    bar.inc(1);
    bar.finish_and_clear();

    let summary = GenSummary {
        files: tally.files,
        order_lines: truth_rows.first().map_or(0, |r| r.1),
        bytes: tally.bytes,
        shops: world.shops.len(),
        skus: world.skus.len(),
        redeliveries: tally.redeliveries,
        corrections: tally.corrections,
        truth_rows,
    };
    log::info!(
        "generated {} files ({} bytes) under {}: {} shops, {} SKUs, {} paid order lines, {} re-deliveries, {} corrections",
        summary.files,
        summary.bytes,
        opts.out.display(),
        summary.shops,
        summary.skus,
        summary.order_lines,
        summary.redeliveries,
        summary.corrections
    );
    Ok(summary)
}

/// Creates `out`, and removes the output of an earlier run — only if that run left its marker;
/// refuses to touch owned directories that something else wrote.
/// The default accounting model, fitted to the generated data (`data/model/model.toml`).
pub const DEFAULT_MODEL: &str = include_str!("../model/model.toml");

/// Writes [`DEFAULT_MODEL`] to `<out>/model/model.toml` unless the warehouse has a model
/// already (an edited model survives a re-generation).
fn write_default_model(out: &Path) -> Result<()> {
    let dir = out.join("model");
    let file = dir.join("model.toml");
    if file.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&dir).map_err(DataError::io(&dir))?;
    std::fs::write(&file, DEFAULT_MODEL).map_err(DataError::io(&file))
}

fn prepare(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(DataError::io(out))?;
    let marker = out.join(MARKER);
    let ours = marker.exists();
    for dir in OWNED {
        let path = out.join(dir);
        if !path.exists() {
            continue;
        }
        if ours {
            std::fs::remove_dir_all(&path).map_err(DataError::io(&path))?;
        } else {
            let mut entries = std::fs::read_dir(&path).map_err(DataError::io(&path))?;
            if entries.next().is_some() {
                return Err(DataError::InvalidOptions {
                    message: format!(
                        "{} already holds data that `amoeba gen` did not write (no {MARKER} marker); \
                         choose an empty directory or remove it",
                        path.display()
                    ),
                });
            }
        }
    }
    std::fs::write(
        &marker,
        "written by amoeba-data; a new `amoeba gen` may replace it\n",
    )
    .map_err(DataError::io(&marker))
}

/// Runs the shops on a small pool of threads; results come back in shop order.
fn run_shops(world: &World, sink: &Sink, bar: &ProgressBar) -> Result<Vec<ShopOutput>> {
    let n = world.shops.len();
    let workers = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .clamp(1, n.max(1));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<ShopOutput>>>> =
        Mutex::new((0..n).map(|_| None).collect());
    let joined = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n || failed.load(Ordering::Relaxed) {
                            break;
                        }
                        let Some(shop) = world.shops.get(i) else {
                            break;
                        };
                        let out = run_shop(world, shop, sink, world.seed);
                        if out.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        if let Ok(mut r) = results.lock()
                            && let Some(slot) = r.get_mut(i)
                        {
                            *slot = Some(out);
                        }
                        bar.inc(1);
                    }
                })
            })
            .collect();
        handles.into_iter().all(|h| h.join().is_ok())
    });
    if !joined {
        return Err(DataError::internal("shops", "a worker thread panicked"));
    }
    let results = results
        .into_inner()
        .map_err(|_| DataError::internal("shops", "a worker thread panicked"))?;
    let mut outputs = Vec::with_capacity(n);
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Some(r) => outputs.push(r?),
            None => {
                return Err(DataError::internal(
                    "shops",
                    format!("shop {i} was not generated"),
                ));
            }
        }
    }
    Ok(outputs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("amoeba-data-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn deterministic_truth() {
        let (a, b) = (temp_dir("a"), temp_dir("b"));
        let opts = |out: &Path| GenOptions {
            scale: 0.0005,
            seed: 42,
            out: out.to_path_buf(),
            progress: false,
            day_apart: None,
        };
        let sa = generate(&opts(&a)).unwrap();
        let sb = generate(&opts(&b)).unwrap();
        assert_eq!(sa, sb);
        assert!(sa.order_lines > 100);
        assert!(sa.corrections >= 4 && sa.redeliveries >= 4);
        for view in UNIFIED_VIEWS {
            let f = format!("truth/{view}.parquet");
            let (x, y) = (
                std::fs::read(a.join(&f)).unwrap(),
                std::fs::read(b.join(&f)).unwrap(),
            );
            assert_eq!(x, y, "{view} differs between two runs");
        }
        // A second run into the same directory replaces the first.
        assert_eq!(generate(&opts(&a)).unwrap(), sa);
        let _ = std::fs::remove_dir_all(&a);
        let _ = std::fs::remove_dir_all(&b);
    }

    /// A day apart is the same data delivered otherwise: the truth is unchanged, the day's
    /// files hold that day's rows only, and the rest of its month lands the day before.
    #[test]
    fn a_day_apart_is_delivered_on_its_own() {
        use datafusion::arrow::array::{Array, AsArray};
        use std::collections::BTreeSet;
        let (whole, apart) = (temp_dir("whole"), temp_dir("apart"));
        // 双11: every shop sells that day, even at the smallest scale.
        let day = NaiveDate::from_ymd_opt(2025, 11, 11).unwrap();
        let opts = |out: &Path, day_apart| GenOptions {
            scale: 0.0005,
            seed: 42,
            out: out.to_path_buf(),
            progress: false,
            day_apart,
        };
        let sw = generate(&opts(&whole, None)).unwrap();
        let sa = generate(&opts(&apart, Some(day))).unwrap();
        assert_eq!(sw.order_lines, sa.order_lines);
        for view in UNIFIED_VIEWS {
            let f = format!("truth/{view}.parquet");
            assert_eq!(
                std::fs::read(whole.join(&f)).unwrap(),
                std::fs::read(apart.join(&f)).unwrap(),
                "{view}: the truth depends on how the exports are delivered"
            );
        }
        // The orders' 订单创建时间 (their event time): all on the day in its delivery, all
        // other days in the rest of the month's.
        let created_days = |dir: &Path| -> BTreeSet<String> {
            read_all(dir)
                .iter()
                .flat_map(|b| {
                    let c = b.column_by_name("订单创建时间").expect("订单创建时间");
                    let c = datafusion::arrow::compute::cast(
                        c,
                        &datafusion::arrow::datatypes::DataType::Utf8,
                    )
                    .unwrap();
                    let c = c.as_string::<i32>().clone();
                    (0..c.len())
                        .filter(|&i| c.is_valid(i))
                        .map(|i| c.value(i)[..10].to_string())
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let mut shops_with_the_day = 0;
        for shop in std::fs::read_dir(apart.join("exports/tmall/orders")).unwrap() {
            let shop = shop.unwrap().path();
            let (the_day, before) = (shop.join("dt=2025-11-11"), shop.join("dt=2025-11-10"));
            assert!(
                before.join("part-202511-0001.parquet").exists(),
                "{before:?}"
            );
            let rest = created_days(&before);
            assert!(
                !rest.is_empty()
                    && rest
                        .iter()
                        .all(|d| d.starts_with("2025-11-") && d != "2025-11-11")
            );
            if the_day.exists() {
                shops_with_the_day += 1;
                assert!(
                    the_day.join("part-20251111-0001.parquet").exists(),
                    "{the_day:?}"
                );
                assert_eq!(
                    created_days(&the_day),
                    BTreeSet::from(["2025-11-11".to_string()])
                );
            }
        }
        assert!(
            shops_with_the_day > 0,
            "no tmall shop had orders on the day"
        );
        let _ = std::fs::remove_dir_all(&whole);
        let _ = std::fs::remove_dir_all(&apart);
    }

    /// Every Parquet file under `dir`, read back.
    fn read_all(dir: &Path) -> Vec<RecordBatch> {
        use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "parquet") {
                    let f = std::fs::File::open(&p).unwrap();
                    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
                        .unwrap()
                        .build()
                        .unwrap();
                    out.extend(reader.map(|b| b.unwrap()));
                }
            }
        }
        out
    }

    /// Tmall order amounts add up, and the order's goods equal its items.
    #[test]
    fn tmall_orders_are_consistent() {
        use datafusion::arrow::array::{Array, AsArray};
        use datafusion::arrow::datatypes::{Decimal128Type, Int64Type};
        let dir = temp_dir("tmall");
        generate(&GenOptions {
            scale: 0.0005,
            seed: 7,
            out: dir.clone(),
            progress: false,
            day_apart: None,
        })
        .unwrap();
        let dec = |b: &RecordBatch, c: &str| {
            b.column_by_name(c)
                .unwrap()
                .as_primitive::<Decimal128Type>()
                .clone()
        };
        let mut goods = std::collections::BTreeMap::<String, i128>::new();
        for b in read_all(&dir.join("exports/tmall/order_items")) {
            let ids = b
                .column_by_name("订单编号")
                .unwrap()
                .as_string::<i32>()
                .clone();
            let subs = b
                .column_by_name("子订单编号")
                .unwrap()
                .as_string::<i32>()
                .clone();
            let qty = b
                .column_by_name("购买数量")
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone();
            let (price, disc) = (dec(&b, "价格"), dec(&b, "店铺优惠"));
            for i in 0..b.num_rows() {
                // Re-deliveries and corrections repeat sub-orders: count each once.
                let key = format!("{}|{}", ids.value(i), subs.value(i));
                goods.insert(
                    key,
                    price.value(i) * i128::from(qty.value(i)) - disc.value(i),
                );
            }
        }
        let mut per_order = std::collections::BTreeMap::<String, i128>::new();
        for (k, v) in goods {
            *per_order
                .entry(k.split('|').next().unwrap().to_string())
                .or_default() += v;
        }
        let mut orders = 0;
        for b in read_all(&dir.join("exports/tmall/orders")) {
            let ids = b
                .column_by_name("订单编号")
                .unwrap()
                .as_string::<i32>()
                .clone();
            let (g, post, total, pay) = (
                dec(&b, "买家应付货款"),
                dec(&b, "买家应付邮费"),
                dec(&b, "总金额"),
                dec(&b, "买家实际支付金额"),
            );
            let (coupon, points) = (dec(&b, "天猫卡券抵扣"), dec(&b, "集分宝抵扣"));
            for i in 0..b.num_rows() {
                assert_eq!(g.value(i) + post.value(i), total.value(i));
                assert_eq!(
                    total.value(i) - coupon.value(i) - points.value(i),
                    pay.value(i)
                );
                assert!(pay.value(i) >= 0 && !g.is_null(i));
                assert_eq!(
                    per_order.get(ids.value(i)),
                    Some(&g.value(i)),
                    "order {}",
                    ids.value(i)
                );
                orders += 1;
            }
        }
        assert!(orders > 50);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rejects_bad_scale() {
        let opts = GenOptions {
            scale: f64::NAN,
            seed: 1,
            out: temp_dir("bad"),
            progress: false,
            day_apart: None,
        };
        assert!(matches!(
            generate(&opts),
            Err(DataError::InvalidOptions { .. })
        ));
    }
}
