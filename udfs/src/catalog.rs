//! `amoeba_functions`: the function library as a table, for psql users and BI tools.
//!
//! ```text
//!  name | kind | signature | return_type | description | example
//! ```
//!
//! Built from the same [`Spec`] records as each function's DataFusion documentation, so the two
//! never disagree.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;

use crate::error::Result;
use crate::types::Spec;

/// The table's name.
pub const TABLE_NAME: &str = "amoeba_functions";

/// Every function's documentation record, sorted by name.
pub(crate) fn specs() -> Vec<Spec> {
    let mut all: Vec<Spec> = crate::kpi::KPIS.iter().map(|(s, _, _)| *s).collect();
    all.extend(crate::allocate::SPECS.iter().map(|(s, _)| *s));
    all.extend(crate::costing::SPECS.iter().map(|(s, _)| *s));
    all.sort_by_key(|s| s.name);
    all
}

/// The `amoeba_functions` table.
pub(crate) fn table() -> Result<MemTable> {
    let specs = specs();
    let columns = [
        "name",
        "kind",
        "signature",
        "return_type",
        "description",
        "example",
    ];
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ));
    let col = |f: &dyn Fn(&Spec) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(specs.iter().map(f)))
    };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            col(&|s| s.name.to_string()),
            col(&|s| s.kind.as_str().to_string()),
            col(&|s| s.signature()),
            col(&|s| s.returns.to_string()),
            col(&|s| s.description.to_string()),
            col(&|s| s.example.to_string()),
        ],
    )?;
    Ok(MemTable::try_new(schema, vec![vec![batch]])?)
}
