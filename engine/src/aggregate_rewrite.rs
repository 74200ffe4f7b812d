//! What the rewrites of an aggregate share ([`crate::eager_aggregate`],
//! [`crate::rollup_aggregate`] and the cube router, [`crate::cube`]): which functions an
//! aggregate of partial results computes exactly, and the projection that gives a rewritten
//! aggregate the names, qualifiers and types of the one it replaces.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, DFSchema};
use datafusion::error::Result;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Aggregate, Expr, ExprSchemable, LogicalPlan, Projection, cast};

/// Whether an aggregate over rows is the same aggregate over its own results on parts of
/// them: a `SUM` (of an integer or a decimal: a float sum would depend on the order of its
/// terms), a `MIN` or a `MAX` of one argument, without `DISTINCT`, `ORDER BY` or null
/// treatment (a `FILTER` is kept by the inner aggregate).
pub(crate) fn rolls_up(function: &AggregateFunction, input: &DFSchema) -> Result<bool> {
    let name = function.func.name().to_ascii_lowercase();
    let params = &function.params;
    let [arg] = params.args.as_slice() else {
        return Ok(false);
    };
    if !matches!(name.as_str(), "sum" | "min" | "max")
        || params.distinct
        || !params.order_by.is_empty()
        || params.null_treatment.is_some()
    {
        return Ok(false);
    }
    Ok(name != "sum"
        || matches!(
            arg.get_type(input)?,
            DataType::Decimal128(..)
                | DataType::Decimal256(..)
                | DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
                | DataType::UInt64
        ))
}

/// `regrouped` (an aggregate with the same groups and functions as `original`, over other
/// input) under a projection that gives it `original`'s names, qualifiers and types: a sum of
/// sums is one precision wider than the sum it replaces, and cast back.
pub(crate) fn as_before(regrouped: Aggregate, original: &Aggregate) -> Result<LogicalPlan> {
    let exprs: Vec<Expr> = regrouped
        .schema
        .iter()
        .zip(original.schema.iter())
        .map(|((nq, nf), (oq, of))| {
            let c = Expr::Column(Column::new(nq.cloned(), nf.name()));
            let c = if nf.data_type() == of.data_type() {
                c
            } else {
                cast(c, of.data_type().clone())
            };
            c.alias_qualified(oq.cloned(), of.name())
        })
        .collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        exprs,
        Arc::new(LogicalPlan::Aggregate(regrouped)),
    )?))
}
