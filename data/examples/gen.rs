//! Generates a synthetic warehouse: `cargo run -p amoeba-data --release --example gen -- [scale] [seed] [out]`.

use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let scale = args.next().map_or(Ok(0.01), |s| s.parse())?;
    let seed = args.next().map_or(Ok(42), |s| s.parse())?;
    let out = args
        .next()
        .map_or_else(|| PathBuf::from("warehouse"), PathBuf::from);
    let started = Instant::now();
    let summary = amoeba_data::generate(&amoeba_data::GenOptions {
        scale,
        seed,
        out,
        progress: true,
        day_apart: None,
    })?;
    println!("{summary:#?}");
    println!("elapsed: {:.2?}", started.elapsed());
    Ok(())
}
