//! Benchmark of the costing kernel (`amoeba_engine::ledger::cost_movements`): FIFO layers and
//! the moving weighted average over `AMOEBA_BENCH_ROWS` stock movements (default 2,000,000),
//! 2,000 SKUs in one warehouse each, in the order the ledger build hands them over (by SKU,
//! warehouse, time).
//!
//! `cargo bench -p amoeba-engine --bench costing` (release). Each method runs once to warm up,
//! then `AMOEBA_BENCH_RUNS` times (default 5); prints min / median / max wall time and the
//! movements per second at the median. A self-contained harness, as the udfs benchmark (see
//! there why not criterion). There is no SQL to compare with: each issue's cost depends on
//! every movement before it, which is why the kernel is a sequential loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use amoeba_catalog::model::CostingMethod;
use amoeba_engine::ledger::cost_movements;
use datafusion::arrow::array::{ArrayRef, Decimal128Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Movements of `skus` SKUs: per SKU a receipt every ~20 movements (10–200 units at 1–100
/// yuan, 4 decimals), issues of 1–3 units, a return of an earlier issue 1 time in 20, a stock
/// adjustment 1 time in 100.
fn movements(rows: usize, skus: usize) -> Result<RecordBatch> {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let per_sku = rows.div_ceil(skus);
    let (mut sku, mut warehouse, mut kind, mut qty, mut value, mut line) = (
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
    );
    for s in 0..skus {
        let name = format!("SKU{s:05}");
        let mut issued = 0u64;
        for m in 0..per_sku.min(rows - sku.len()) {
            let r = rng.below(100);
            let (k, q, v, l): (&str, i64, Option<i128>, Option<String>) = if m % 20 == 0 {
                let q = 10 + rng.below(190);
                let cost = 10_000 + i128::from(rng.below(990_000));
                ("receipt", q as i64, Some(cost * i128::from(q)), None)
            } else if r < 5 && issued > 0 {
                let of = rng.below(issued);
                ("return", 1, None, Some(format!("tmall|S1|{s}-{of}")))
            } else if r == 5 {
                ("adjust", rng.below(5) as i64 - 3, None, None)
            } else {
                issued += 1;
                let q = 1 + rng.below(3);
                (
                    "issue",
                    q as i64,
                    None,
                    Some(format!("tmall|S1|{s}-{issued}")),
                )
            };
            sku.push(name.clone());
            warehouse.push("WH1");
            kind.push(k);
            qty.push(q);
            value.push(v);
            line.push(l);
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("sku", DataType::Utf8, false),
        Field::new("warehouse", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("qty", DataType::Int64, false),
        Field::new("receipt_value", DataType::Decimal128(38, 4), true),
        Field::new("line", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(sku)),
        Arc::new(StringArray::from(warehouse)),
        Arc::new(StringArray::from(kind)),
        Arc::new(Int64Array::from(qty)),
        Arc::new(Decimal128Array::from(value).with_precision_and_scale(38, 4)?),
        Arc::new(StringArray::from(line)),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn main() -> Result<()> {
    let rows = env("AMOEBA_BENCH_ROWS", 2_000_000);
    let runs = env("AMOEBA_BENCH_RUNS", 5).max(1);
    let batch = movements(rows, 2_000)?;
    println!(
        "costing {} movements of 2,000 SKUs, {runs} runs after a warm-up",
        batch.num_rows()
    );
    println!(
        "{:<16} {:>10} {:>10} {:>10} {:>16}",
        "method", "min ms", "median ms", "max ms", "movements/s"
    );
    for (label, method) in [
        ("fifo", CostingMethod::Fifo),
        ("moving_average", CostingMethod::MovingAverage),
    ] {
        let costed = cost_movements(method, &batch)?;
        assert_eq!(costed.num_rows(), batch.num_rows());
        let mut times: Vec<Duration> = (0..runs)
            .map(|_| {
                let started = Instant::now();
                let out = cost_movements(method, &batch);
                let took = started.elapsed();
                out.map(|_| took)
            })
            .collect::<std::result::Result<_, _>>()?;
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let median = times[times.len() / 2];
        println!(
            "{label:<16} {:>10.1} {:>10.1} {:>10.1} {:>16.0}",
            ms(times[0]),
            ms(median),
            ms(times[times.len() - 1]),
            batch.num_rows() as f64 / median.as_secs_f64()
        );
    }
    Ok(())
}
