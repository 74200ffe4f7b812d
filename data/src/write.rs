//! Writing Parquet files, and how platform exports are delivered.
//!
//! Every file is one `RecordBatch` (or a few) written by `ArrowWriter` with ZSTD compression;
//! nothing is written row by row. Platform exports are laid out as
//! `exports/<platform>/<kind>/shop=<id>/dt=<last day of month>/part-<YYYYMM>-0001.parquet`, one
//! file per shop, kind and month of the rows' own event time. With a day apart
//! ([`crate::GenOptions::day_apart`]), that day's rows are a delivery of their own,
//! `dt=<day>/part-<YYYYMMDD>-0001.parquet`, and the rest of its month lands the day before.
//!
//! Delivery quirks, decided per file from a random stream of its own (so they do not depend on
//! thread scheduling): about 2 % of files are **re-delivered** — an identical copy
//! `part-<YYYYMM>-0002-redelivery.parquet` beside the original — and about 1 % are
//! **corrected**: the original holds stale values for ~5 % of its rows and
//! `part-<YYYYMM>-0003-correction.parquet` holds those rows again, same natural key, final
//! values. File names sort in delivery order, so "newest delivery wins" picks the final values.
//! A few quirks are forced on fixed shops and months so that even a tiny scale exercises them.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};
use crate::shape::{chance, date_of, last_day, month_of, month_of_date, rng_for, tag};
use crate::table::{Col, TableBuilder};
use crate::world::Shop;

/// Share of platform export files delivered twice.
const P_REDELIVER: f64 = 0.02;
/// Share of platform export files corrected by a later delivery.
const P_CORRECT: f64 = 0.01;
/// Share of a corrected file's rows that were stale in the original.
const P_STALE_ROW: f64 = 0.05;

/// Where files go, and how they are encoded.
#[derive(Debug)]
pub(crate) struct Sink {
    root: PathBuf,
    props: WriterProperties,
}

/// What was written.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    pub(crate) files: usize,
    pub(crate) bytes: u64,
    pub(crate) rows: u64,
    pub(crate) redeliveries: usize,
    pub(crate) corrections: usize,
}

impl Tally {
    pub(crate) fn add(&mut self, o: &Tally) {
        self.files += o.files;
        self.bytes += o.bytes;
        self.rows += o.rows;
        self.redeliveries += o.redeliveries;
        self.corrections += o.corrections;
    }
}

impl Sink {
    pub(crate) fn new(root: &Path) -> Sink {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        Sink {
            root: root.to_path_buf(),
            props,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        rel.split('/').fold(self.root.clone(), |p, c| p.join(c))
    }

    /// Writes batches (all of `schema`) to one Parquet file under the root; returns its size.
    pub(crate) fn write<'a>(
        &self,
        rel: &str,
        schema: SchemaRef,
        batches: impl IntoIterator<Item = &'a RecordBatch>,
    ) -> Result<u64> {
        let path = self.path(rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(DataError::io(dir))?;
        }
        let file = File::create(&path).map_err(DataError::io(&path))?;
        let mut w = ArrowWriter::try_new(file, schema, Some(self.props.clone()))
            .map_err(DataError::parquet(&path))?;
        for b in batches {
            w.write(b).map_err(DataError::parquet(&path))?;
        }
        let file = w.into_inner().map_err(DataError::parquet(&path))?;
        let len = file.metadata().map_err(DataError::io(&path))?.len();
        Ok(len)
    }

    /// Writes one batch and counts it.
    pub(crate) fn write_one(
        &self,
        rel: &str,
        batch: &RecordBatch,
        tally: &mut Tally,
    ) -> Result<()> {
        tally.bytes += self.write(rel, batch.schema(), [batch])?;
        tally.files += 1;
        tally.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// A byte-identical copy of a file written before (a re-delivery).
    fn copy(&self, from: &str, to: &str) -> Result<u64> {
        let (src, dst) = (self.path(from), self.path(to));
        fs::copy(&src, &dst).map_err(DataError::io(&dst))
    }
}

/// A row of a platform export kind.
pub(crate) trait ExportRow: Clone {
    /// The event time that decides the month file of the row.
    fn at(&self) -> i64;
    /// Pushes the row's cells, in the kind's column order.
    fn put(&self, t: &mut TableBuilder);
    /// The row as an earlier, not yet final delivery showed it (same natural key, a stale
    /// value), or `None` when this row cannot have been stale.
    fn stale(&self, _rng: &mut ChaCha8Rng) -> Option<Self> {
        None
    }
    /// Rows appended at the end of every file of the kind (PDD's 合计/说明 lines).
    fn trailer(_rows: &[&Self]) -> Vec<Self> {
        Vec::new()
    }
}

/// One kind of one shop's exports: where and how it is written.
pub(crate) struct Kind<'a> {
    pub(crate) sink: &'a Sink,
    pub(crate) shop: &'a Shop,
    pub(crate) seed: u64,
    pub(crate) name: &'static str,
    pub(crate) cols: &'static [Col],
    /// The day delivered on its own ([`crate::GenOptions::day_apart`]).
    pub(crate) day_apart: Option<NaiveDate>,
}

/// Quirks forced on fixed files, so that every platform shows them even at a tiny scale:
/// corrections on the largest shop (orders-like and money kinds), re-deliveries on the second.
fn forced(shop: &Shop, kind: &str, month: u32) -> (bool, bool) {
    if month / 100 != 2025 {
        return (false, false);
    }
    let m = month % 100;
    let correct = shop.rank == 0
        && matches!(
            (kind, m),
            ("orders", 3)
                | ("order_items", 11)
                | ("ledger" | "settlement" | "bill" | "funds", 5)
                | ("aftersale", 7)
                | ("ads", 9)
        );
    let redeliver = shop.rank == 1 && matches!((kind, m), ("orders", 6) | ("ads", 2));
    (redeliver, correct)
}

fn build<R: ExportRow>(k: &Kind<'_>, rows: &[&R]) -> Result<RecordBatch> {
    let trailer = R::trailer(rows);
    let mut t = TableBuilder::new(k.name, k.cols)?;
    for r in rows.iter().copied().chain(trailer.iter()) {
        r.put(&mut t);
    }
    t.finish()
}

/// Writes all rows of one kind of one shop: one file per month (and one for the day apart,
/// if any), plus re-deliveries and corrections. `rows` hold the final values.
pub(crate) fn write_export<R: ExportRow>(
    k: &Kind<'_>,
    rows: &[R],
    tally: &mut Tally,
) -> Result<()> {
    // (month, whether the rows are the day apart's) → the rows of that delivery.
    let mut deliveries: BTreeMap<(u32, bool), Vec<&R>> = BTreeMap::new();
    for r in rows {
        let apart = k.day_apart == Some(date_of(r.at()));
        deliveries
            .entry((month_of(r.at()), apart))
            .or_default()
            .push(r);
    }
    let platform = k.shop.platform.name();
    for ((month, apart), finals) in deliveries {
        // Where the delivery lands, and the month or day its files are named after.
        let (dt, part, stream) = match k.day_apart {
            Some(day) if apart => (
                day.format("%Y-%m-%d").to_string(),
                day.format("%Y%m%d").to_string(),
                u64::from(month) * 100 + u64::from(day.day()),
            ),
            Some(day) if month_of_date(day) == month => (
                day.pred_opt().unwrap_or(day).format("%Y-%m-%d").to_string(),
                month.to_string(),
                u64::from(month),
            ),
            _ => (last_day(month), month.to_string(), u64::from(month)),
        };
        let dir = format!("exports/{platform}/{}/shop={}/dt={dt}", k.name, k.shop.id);
        let mut rng = rng_for(
            k.seed,
            &[tag("delivery"), k.shop.index as u64, tag(k.name), stream],
        );
        let (force_redeliver, force_correct) = if apart {
            (false, false)
        } else {
            forced(k.shop, k.name, month)
        };
        let redeliver = chance(&mut rng, P_REDELIVER) || force_redeliver;
        let correct = chance(&mut rng, P_CORRECT) || force_correct;

        let mut stale: Vec<(usize, R)> = Vec::new();
        if correct {
            for (pos, r) in finals.iter().enumerate() {
                if chance(&mut rng, P_STALE_ROW)
                    && let Some(s) = r.stale(&mut rng)
                {
                    stale.push((pos, s));
                }
            }
            if stale.is_empty()
                && let Some((pos, s)) = finals
                    .iter()
                    .enumerate()
                    .find_map(|(pos, r)| r.stale(&mut rng).map(|s| (pos, s)))
            {
                stale.push((pos, s));
            }
        }

        let mut delivered: Vec<&R> = finals.clone();
        for (pos, s) in &stale {
            if let Some(slot) = delivered.get_mut(*pos) {
                *slot = s;
            }
        }
        let original = format!("{dir}/part-{part}-0001.parquet");
        sink_write(k, &original, &delivered, tally)?;
        if redeliver {
            let copy = format!("{dir}/part-{part}-0002-redelivery.parquet");
            tally.bytes += k.sink.copy(&original, &copy)?;
            tally.files += 1;
            tally.redeliveries += 1;
        }
        if !stale.is_empty() {
            let fixed: Vec<&R> = stale
                .iter()
                .filter_map(|(pos, _)| finals.get(*pos).copied())
                .collect();
            let name = format!("{dir}/part-{part}-0003-correction.parquet");
            sink_write(k, &name, &fixed, tally)?;
            tally.corrections += 1;
        }
    }
    Ok(())
}

fn sink_write<R: ExportRow>(k: &Kind<'_>, rel: &str, rows: &[&R], tally: &mut Tally) -> Result<()> {
    let batch = build(k, rows)?;
    k.sink.write_one(rel, &batch, tally)
}
