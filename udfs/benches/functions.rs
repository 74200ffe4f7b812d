//! Benchmarks: each KPI function and `allocate_exact` against the same computation written in
//! plain SQL, and the costing window functions (`fifo_cost`, `mwa_cost`; no SQL equivalent),
//! over `AMOEBA_BENCH_ROWS` rows (default 10,000,000) in a `MemTable` of 4 partitions.
//!
//! `cargo bench -p amoeba-udfs` (release). Each query runs once to warm up, then
//! `AMOEBA_BENCH_RUNS` times (default 5); the table prints min / median / max wall time and the
//! ratio of the medians function / plain SQL (below 1: the function is faster).
//!
//! A self-contained harness (`harness = false`) rather than criterion: criterion's `ciborium`
//! turns on `serde/alloc`, which changes the feature set of the whole DataFusion build graph and
//! forces a second full release build of DataFusion just for the benches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{ArrayRef, Decimal128Array, Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use datafusion::prelude::{SessionConfig, SessionContext};

const PARTITIONS: usize = 4;
const BATCH: usize = 8192;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// KPI inputs: money `a`, `b`, `c` DECIMAL(38,2) (≈5% zeros and 1% NULLs in `b`, refunds make
/// some negative), `n` BIGINT counts (5% zeros), `h` DOUBLE hours.
fn kpi_table(rows: usize) -> Result<MemTable> {
    let money = DataType::Decimal128(38, 2);
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", money.clone(), true),
        Field::new("b", money.clone(), true),
        Field::new("c", money.clone(), true),
        Field::new("n", DataType::Int64, true),
        Field::new("h", DataType::Float64, true),
    ]));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut partitions = vec![Vec::new(); PARTITIONS];
    let mut done = 0;
    let mut p = 0;
    while done < rows {
        let len = BATCH.min(rows - done);
        let mut a = Vec::with_capacity(len);
        let mut b = Vec::with_capacity(len);
        let mut c = Vec::with_capacity(len);
        let mut n = Vec::with_capacity(len);
        let mut h = Vec::with_capacity(len);
        for _ in 0..len {
            let signed =
                |r: &mut Rng, range: u64| i128::from(r.below(range)) - i128::from(range / 10);
            a.push(Some(signed(&mut rng, 100_000_000)));
            b.push(match rng.below(100) {
                0 => None,
                1..=5 => Some(0),
                _ => Some(signed(&mut rng, 10_000_000)),
            });
            c.push(Some(signed(&mut rng, 50_000_000)));
            n.push(Some(if rng.below(20) == 0 {
                0
            } else {
                i64::try_from(rng.below(10_000)).unwrap_or(0)
            }));
            h.push(Some(rng.below(2_000) as f64 / 4.0));
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Decimal128Array::from(a).with_precision_and_scale(38, 2)?),
            Arc::new(Decimal128Array::from(b).with_precision_and_scale(38, 2)?),
            Arc::new(Decimal128Array::from(c).with_precision_and_scale(38, 2)?),
            Arc::new(Int64Array::from(n)),
            Arc::new(Float64Array::from(h)),
        ];
        partitions[p % PARTITIONS].push(RecordBatch::try_new(schema.clone(), cols)?);
        p += 1;
        done += len;
    }
    MemTable::try_new(schema, partitions)
}

/// Allocation inputs: pools of 100 targets, DECIMAL(38,2) pool amounts, BIGINT drivers.
fn alloc_table(rows: usize) -> Result<MemTable> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("pool_id", DataType::Int64, false),
        Field::new("target", DataType::Int64, false),
        Field::new("pool", DataType::Decimal128(38, 2), false),
        Field::new("driver", DataType::Int64, false),
    ]));
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut partitions = vec![Vec::new(); PARTITIONS];
    let targets = 100usize;
    let mut done = 0;
    let mut p = 0;
    while done < rows {
        // Whole pools per batch, so that every pool has one amount.
        let len = (BATCH / targets * targets).min(rows - done);
        let mut pool_id = Vec::with_capacity(len);
        let mut target = Vec::with_capacity(len);
        let mut pool = Vec::with_capacity(len);
        let mut driver = Vec::with_capacity(len);
        let mut amount = 0i128;
        for i in 0..len {
            let row = done + i;
            if row % targets == 0 {
                amount = i128::from(rng.below(1_000_000_000));
            }
            pool_id.push(i64::try_from(row / targets).unwrap_or(0));
            target.push(i64::try_from(row % targets).unwrap_or(0));
            pool.push(amount);
            driver.push(i64::try_from(rng.below(1_000)).unwrap_or(0));
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(pool_id)),
            Arc::new(Int64Array::from(target)),
            Arc::new(Decimal128Array::from(pool).with_precision_and_scale(38, 2)?),
            Arc::new(Int64Array::from(driver)),
        ];
        partitions[p % PARTITIONS].push(RecordBatch::try_new(schema.clone(), cols)?);
        p += 1;
        done += len;
    }
    MemTable::try_new(schema, partitions)
}

async fn time(ctx: &SessionContext, sql: &str, runs: usize) -> Result<(Vec<Duration>, String)> {
    let mut result = String::new();
    let mut times = Vec::with_capacity(runs);
    for i in 0..=runs {
        let started = Instant::now();
        let batches = ctx.sql(sql).await?.collect().await?;
        let elapsed = started.elapsed();
        if i == 0 {
            result = datafusion::arrow::util::pretty::pretty_format_batches(&batches)?
                .to_string()
                .lines()
                .nth(3)
                .unwrap_or_default()
                .to_string();
        } else {
            times.push(elapsed);
        }
    }
    times.sort();
    Ok((times, result))
}

/// Whether two printed result rows hold the same numbers: equal counts, and sums within a
/// relative 1e-12 (a DOUBLE sum of 10M ratios differs in its last digits with the order of
/// addition; a DECIMAL sum may print at another scale).
fn same_numbers(a: &str, b: &str) -> bool {
    let numbers = |row: &str| -> Vec<Option<f64>> {
        row.split('|')
            .map(str::trim)
            .filter(|cell| !cell.is_empty())
            .map(|cell| cell.parse::<f64>().ok())
            .collect()
    };
    let (x, y) = (numbers(a), numbers(b));
    x.len() == y.len()
        && x.iter().zip(&y).all(|pair| match pair {
            (Some(p), Some(q)) => (p - q).abs() <= 1e-12 * p.abs().max(q.abs()),
            _ => false,
        })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn compare(
    ctx: &SessionContext,
    name: &str,
    function: &str,
    plain: &str,
    runs: usize,
) -> Result<()> {
    let (f, fr) = time(ctx, function, runs).await?;
    let (s, sr) = time(ctx, plain, runs).await?;
    let med = |t: &[Duration]| t[t.len() / 2];
    println!(
        "{name:<20} fn {:>8.1} {:>8.1} {:>8.1} | sql {:>8.1} {:>8.1} {:>8.1} | fn/sql {:>5.2}{}",
        ms(f[0]),
        ms(med(&f)),
        ms(f[f.len() - 1]),
        ms(s[0]),
        ms(med(&s)),
        ms(s[s.len() - 1]),
        med(&f).as_secs_f64() / med(&s).as_secs_f64(),
        if same_numbers(&fr, &sr) {
            ""
        } else {
            "  (results differ: see below)"
        }
    );
    if !same_numbers(&fr, &sr) {
        println!("    fn : {fr}\n    sql: {sr}");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let rows = env("AMOEBA_BENCH_ROWS", 10_000_000);
    let runs = env("AMOEBA_BENCH_RUNS", 5).max(1);
    let only = std::env::var("AMOEBA_BENCH_ONLY").unwrap_or_default();
    let config = SessionConfig::new().with_target_partitions(PARTITIONS);
    let ctx = SessionContext::new_with_config(config);
    amoeba_udfs::register_all(&ctx)?;

    println!("{rows} rows, {PARTITIONS} partitions, {runs} runs; times in ms: min median max");
    ctx.register_table("k", Arc::new(kpi_table(rows)?))?;
    // Plain SQL: the same quotient with CASE for the zero / NULL denominator.
    let ratio = |num: &str, den: &str| {
        format!(
            "CASE WHEN {den} = 0 OR {den} IS NULL THEN NULL ELSE CAST({num} AS DOUBLE) / CAST({den} AS DOUBLE) END"
        )
    };
    let per_unit = |num: &str, den: &str| {
        format!(
            "CASE WHEN {den} = 0 OR {den} IS NULL THEN NULL ELSE CAST({num} / {den} AS DECIMAL(38,4)) END"
        )
    };
    let kpis: Vec<(&str, String, String)> = vec![
        ("safe_div", "safe_div(a, b)".into(), ratio("a", "b")),
        ("gross_margin", "gross_margin(a, b)".into(), ratio("a", "b")),
        ("net_margin", "net_margin(a, b)".into(), ratio("a", "b")),
        ("roi", "roi(a, b)".into(), ratio("a", "abs(b)")),
        ("roas", "roas(a, b)".into(), ratio("a", "abs(b)")),
        (
            "break_even_roas",
            "break_even_roas(a, b)".into(),
            "CASE WHEN a = 0 OR b = 0 OR a IS NULL OR b IS NULL THEN NULL ELSE CAST(b AS DOUBLE) / CAST(a AS DOUBLE) END".into(),
        ),
        ("return_rate", "return_rate(n, n + 7)".into(), ratio("n", "(n + 7)")),
        ("aov", "aov(a, n)".into(), per_unit("a", "n")),
        ("cost_per_order", "cost_per_order(c, n)".into(), per_unit("abs(c)", "n")),
        ("inventory_turnover", "inventory_turnover(c, b)".into(), ratio("abs(c)", "b")),
        (
            "inventory_days",
            "inventory_days(30, b, c)".into(),
            "CASE WHEN c = 0 OR c IS NULL THEN NULL ELSE 30 * CAST(b AS DOUBLE) / abs(CAST(c AS DOUBLE)) END".into(),
        ),
        ("cac", "cac(c, n)".into(), per_unit("abs(c)", "n")),
        (
            "hourly_value_added",
            "hourly_value_added(a, c, n)".into(),
            per_unit("(a - abs(c))", "n"),
        ),
        ("take_rate", "take_rate(c, a)".into(), ratio("abs(c)", "a")),
    ];
    for (name, f, s) in &kpis {
        if !only.is_empty() && !only.split(',').any(|o| o == *name) {
            continue;
        }
        // count + sum of the result: every row is evaluated, the output is one row.
        let q = |e: &str| format!("SELECT count(x), sum(x) FROM (SELECT {e} AS x FROM k)");
        compare(&ctx, name, &q(f), &q(s), runs).await?;
    }
    ctx.deregister_table("k")?;

    if only.is_empty() || only.split(',').any(|o| o == "allocate_exact") {
        ctx.register_table("alloc", Arc::new(alloc_table(rows)?))?;
        let f = "SELECT count(s), sum(s) FROM (SELECT allocate_exact(pool, driver) OVER (PARTITION BY pool_id ORDER BY target) AS s FROM alloc)";
        // Largest remainder in plain SQL: floors and remainders in cents, leftover cents by rank.
        let s = "WITH b AS (
              SELECT pool_id, target, CAST(pool * 100 AS BIGINT) AS cents, driver,
                     SUM(driver) OVER (PARTITION BY pool_id) AS total
              FROM alloc),
            e AS (
              SELECT pool_id, target, cents, total,
                     CASE WHEN total = 0 THEN NULL ELSE (cents * driver) / total END AS fl,
                     CASE WHEN total = 0 THEN NULL ELSE (cents * driver) % total END AS rem
              FROM b),
            r AS (
              SELECT fl, cents - SUM(fl) OVER (PARTITION BY pool_id) AS leftover,
                     ROW_NUMBER() OVER (PARTITION BY pool_id ORDER BY rem DESC, target) AS rk
              FROM e)
            SELECT count(s), sum(s) FROM (
              SELECT CAST(fl + CASE WHEN rk <= leftover THEN 1 ELSE 0 END AS DECIMAL(38,2)) / 100 AS s FROM r)";
        compare(&ctx, "allocate_exact", f, s, runs).await?;
        ctx.deregister_table("alloc")?;
    }

    // Costing: sequential by nature (each issue's cost depends on every movement before it),
    // so there is no plain SQL to compare with; the movements per second are printed.
    for (name, function) in [("fifo_cost", "fifo_cost"), ("mwa_cost", "mwa_cost")] {
        if !only.is_empty() && !only.split(',').any(|o| o == name) {
            continue;
        }
        if !ctx.table_exist("moves")? {
            ctx.register_table("moves", Arc::new(moves_table(rows)?))?;
        }
        let sql = format!(
            "SELECT count(v), sum(v) FROM (SELECT {function}(qty, cost) OVER (PARTITION BY sku ORDER BY ts) AS v FROM moves)"
        );
        let (t, _) = time(&ctx, &sql, runs).await?;
        let median = t[t.len() / 2];
        println!(
            "{name:<20} fn {:>8.1} {:>8.1} {:>8.1} | {:.1} M movements/s at the median",
            ms(t[0]),
            ms(median),
            ms(t[t.len() - 1]),
            rows as f64 / median.as_secs_f64() / 1e6
        );
    }
    Ok(())
}

/// Stock movements for the costing functions: 2,000 SKUs, a receipt (10–200 units at 1–100
/// yuan, 4 decimals) every 20 movements of a SKU, otherwise issues of 1–3 units (negative).
fn moves_table(rows: usize) -> Result<MemTable> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("sku", DataType::Int64, false),
        Field::new("ts", DataType::Int64, false),
        Field::new("qty", DataType::Int64, false),
        Field::new("cost", DataType::Decimal128(18, 4), true),
    ]));
    let skus = 2_000usize;
    let mut rng = Rng(0xA076_1D64_78BD_642F);
    let mut partitions = vec![Vec::new(); PARTITIONS];
    let mut done = 0;
    let mut p = 0;
    while done < rows {
        let len = BATCH.min(rows - done);
        let (mut sku, mut ts, mut qty, mut cost) = (
            Vec::with_capacity(len),
            Vec::with_capacity(len),
            Vec::with_capacity(len),
            Vec::with_capacity(len),
        );
        for i in 0..len {
            let row = done + i;
            let step = row / skus;
            sku.push(i64::try_from(row % skus).unwrap_or(0));
            ts.push(i64::try_from(step).unwrap_or(0));
            if step.is_multiple_of(20) {
                qty.push(i64::try_from(10 + rng.below(190)).unwrap_or(0));
                cost.push(Some(i128::from(10_000 + rng.below(990_000))));
            } else {
                qty.push(-i64::try_from(1 + rng.below(3)).unwrap_or(0));
                cost.push(None);
            }
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(sku)),
            Arc::new(Int64Array::from(ts)),
            Arc::new(Int64Array::from(qty)),
            Arc::new(Decimal128Array::from(cost).with_precision_and_scale(18, 4)?),
        ];
        partitions[p % PARTITIONS].push(RecordBatch::try_new(schema.clone(), cols)?);
        p += 1;
        done += len;
    }
    MemTable::try_new(schema, partitions)
}
