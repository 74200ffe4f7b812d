//! Content fingerprints: what a refresh compares to know which months changed.
//!
//! A fingerprint is the row count and the wrapping sum of one 64-bit hash per row (DataFusion's
//! fixed-seed row hash over every column), so it does not depend on row or batch order. Equal
//! fingerprints mean equal contents (up to a 2^-64 accident); a different hash function after
//! an upgrade only makes the next refresh rebuild everything.

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::common::hash_utils::{RandomState, create_hashes};

use crate::error::Result;

const SEED: u64 = 0x616d_6f65_6261; // "amoeba"

/// A fingerprint of a set of rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    pub(crate) rows: u64,
    pub(crate) hash: u64,
}

impl Fingerprint {
    /// As stored in manifests: `<rows>:<hash hex>`.
    pub(crate) fn encode(&self) -> String {
        format!("{}:{:016x}", self.rows, self.hash)
    }

    /// The row count of an encoded fingerprint (`None` if `encoded` is not one).
    pub(crate) fn rows_of(encoded: &str) -> Option<u64> {
        encoded.split_once(':')?.0.parse().ok()
    }
}

/// Fingerprints of `batches`, grouped by the string column `key` (which is not hashed).
pub(crate) fn by_key(batches: &[RecordBatch], key: &str) -> Result<BTreeMap<String, Fingerprint>> {
    let state = RandomState::with_seed(SEED);
    let mut out: BTreeMap<String, Fingerprint> = BTreeMap::new();
    for batch in batches {
        let schema = batch.schema();
        let Ok(k) = schema.index_of(key) else {
            continue;
        };
        let keys = datafusion::arrow::compute::cast(
            batch.column(k),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )?;
        let keys = keys.as_string::<i32>();
        let hashed: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != k)
            .map(|(_, c)| c.clone())
            .collect();
        let mut hashes = vec![0u64; batch.num_rows()];
        create_hashes(&hashed, &state, &mut hashes)?;
        for (i, h) in hashes.iter().enumerate() {
            let key = if keys.is_null(i) { "" } else { keys.value(i) };
            let f = match out.get_mut(key) {
                Some(f) => f,
                None => out.entry(key.to_string()).or_default(),
            };
            f.rows += 1;
            f.hash = f.hash.wrapping_add(*h);
        }
    }
    Ok(out)
}

/// The fingerprint of every row of `batch`.
pub(crate) fn of_batch(batch: &RecordBatch) -> Result<Fingerprint> {
    let mut hashes = vec![0u64; batch.num_rows()];
    create_hashes(batch.columns(), &RandomState::with_seed(SEED), &mut hashes)?;
    Ok(Fingerprint {
        rows: batch.num_rows() as u64,
        hash: hashes.iter().fold(0u64, |a, h| a.wrapping_add(*h)),
    })
}

/// A fingerprint of a value's debug form (a definition, a list of inputs).
pub(crate) fn of_text(text: &str) -> String {
    format!("{:016x}", RandomState::with_seed(SEED).hash_one(text))
}
