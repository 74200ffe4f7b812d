//! PostgreSQL's `information_schema._pg_expandarray(anyarray)`, which pgjdbc's
//! `getPrimaryKeys` and `getIndexInfo` (and so Metabase's sync and DBeaver) call on
//! `pg_index.indkey`.
//!
//! In PostgreSQL it is a set-returning function of records `(x, n)`: each element with its
//! 1-based position. DataFusion has no set-returning scalar functions, but it zips every
//! `unnest` of one select list in lockstep, as PostgreSQL does with set-returning functions,
//! so the SQL rewrite (`server/sql_compat.rs`) turns
//!
//! ```text
//!  information_schema._pg_expandarray(a)      ─►  unnest(amoeba_pg_expandarray(a))
//!  (information_schema._pg_expandarray(a)).n  ─►  get_field(unnest(amoeba_pg_expandarray(a)), 'n')
//!  (keys).x                                   ─►  get_field(keys, 'x')
//! ```
//!
//! and this function returns the list the rows come from: `[{x: a[1], n: 1}, {x: a[2], n: 2}, …]`,
//! sharing the array's values and offsets (no copy of the elements).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array, ListArray, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The name the SQL rewrite calls.
pub(crate) const EXPANDARRAY: &str = "amoeba_pg_expandarray";

/// `amoeba_pg_expandarray(list)`: the list's elements with their positions.
pub(crate) fn expandarray_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(ExpandArray {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ExpandArray {
    signature: Signature,
}

/// `{x: element, n: int4}`: the record `_pg_expandarray` returns.
fn record_fields(element: &DataType) -> Fields {
    Fields::from(vec![
        Field::new("x", element.clone(), true),
        Field::new("n", DataType::Int32, false),
    ])
}

impl ScalarUDFImpl for ExpandArray {
    fn name(&self) -> &str {
        EXPANDARRAY
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [DataType::List(element)] => Ok(DataType::List(Arc::new(Field::new_list_field(
                DataType::Struct(record_fields(element.data_type())),
                true,
            )))),
            [other] => plan_err!("_pg_expandarray needs an array, not {other}"),
            _ => plan_err!("_pg_expandarray takes one array"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [array] = args.args.as_slice() else {
            return exec_err!("_pg_expandarray takes one array");
        };
        let array = array.to_array(args.number_rows)?;
        let Some(lists) = array.as_list_opt::<i32>() else {
            return exec_err!("_pg_expandarray needs an array, not {}", array.data_type());
        };
        Ok(ColumnarValue::Array(expand(lists)?))
    }
}

/// Each list's elements paired with their 1-based positions, on the same offsets.
fn expand(lists: &ListArray) -> Result<ArrayRef> {
    let offsets = lists.offsets();
    let first = offsets.first().copied().unwrap_or(0);
    let last = offsets.last().copied().unwrap_or(0);
    let values = lists
        .values()
        .slice(first as usize, (last - first) as usize);
    let mut positions = Vec::with_capacity(values.len());
    for window in offsets.windows(2) {
        positions.extend(1..=(window[1] - window[0]));
    }
    let element = values.data_type().clone();
    let records = StructArray::try_new(
        record_fields(&element),
        vec![values, Arc::new(Int32Array::from(positions))],
        None,
    )?;
    let rebased = offsets.iter().map(|o| o - first);
    let list = ListArray::try_new(
        Arc::new(Field::new_list_field(
            DataType::Struct(record_fields(&element)),
            true,
        )),
        datafusion::arrow::buffer::OffsetBuffer::new(rebased.collect::<Vec<i32>>().into()),
        Arc::new(records),
        lists.nulls().cloned(),
    )?;
    Ok(Arc::new(list))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int16Array, ListArray};
    use datafusion::arrow::datatypes::Int16Type;

    use super::*;

    #[test]
    fn elements_come_with_their_positions() {
        let lists = ListArray::from_iter_primitive::<Int16Type, _, _>(vec![
            Some(vec![Some(3), Some(1)]),
            None,
            Some(vec![]),
            Some(vec![Some(7)]),
        ]);
        // A slice, as DataFusion hands over batches: the offsets do not start at 0.
        let expanded = expand(&lists.slice(0, 4)).expect("expand");
        let expanded = expanded.as_list::<i32>();
        assert_eq!(expanded.len(), 4);
        assert!(expanded.is_null(1));
        assert_eq!(expanded.value(2).len(), 0);
        let first = expanded.value(0);
        let records = first.as_struct();
        let x = records.column(0).as_any().downcast_ref::<Int16Array>();
        assert_eq!(x.map(|x| x.values().to_vec()), Some(vec![3, 1]));
        let n = records.column(1).as_any().downcast_ref::<Int32Array>();
        assert_eq!(n.map(|n| n.values().to_vec()), Some(vec![1, 2]));
        let last = expanded.value(3);
        let n = last
            .as_struct()
            .column(1)
            .as_any()
            .downcast_ref::<Int32Array>();
        assert_eq!(n.map(|n| n.values().to_vec()), Some(vec![1]));
        let sliced = expand(&lists.slice(3, 1)).expect("expand a slice");
        assert_eq!(sliced.as_list::<i32>().value(0).len(), 1);
    }
}
