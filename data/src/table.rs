//! Column-wise table building.
//!
//! A table is declared once as a static list of [`Col`]s (name, type, nullability) — the
//! export layouts of exports.md and the unified views of docs/unified.md are such lists. Rows
//! are pushed value by value, in column order, straight into Arrow builders; `finish` hands
//! back a `RecordBatch`. There is no intermediate row representation, which is what keeps the
//! one-million-line year fast.
//!
//! A value of the wrong type is a generator bug: it is remembered and reported by `finish` as
//! [`DataError::Internal`] rather than panicking in the middle of a run.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{DataError, Result};

/// Column types used by the exports and the views.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    Str,
    I64,
    F64,
    /// `Decimal128(18,2)`: yuan with two decimals (also hours).
    Money,
    /// `Decimal128(18,4)`: unit costs.
    Cost4,
    /// `Decimal128(18,3)`: kilograms.
    Kg,
    /// `Timestamp(Microsecond, None)`, local time without zone.
    Ts,
    /// `Date32`.
    Date,
}

impl Ty {
    fn data_type(self) -> DataType {
        match self {
            Ty::Str => DataType::Utf8,
            Ty::I64 => DataType::Int64,
            Ty::F64 => DataType::Float64,
            Ty::Money => DataType::Decimal128(18, 2),
            Ty::Cost4 => DataType::Decimal128(18, 4),
            Ty::Kg => DataType::Decimal128(18, 3),
            Ty::Ts => DataType::Timestamp(TimeUnit::Microsecond, None),
            Ty::Date => DataType::Date32,
        }
    }
}

/// One column of a table layout.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Col {
    pub(crate) name: &'static str,
    pub(crate) ty: Ty,
    pub(crate) nullable: bool,
}

/// A nullable column (every export column: platforms leave cells empty).
pub(crate) const fn col(name: &'static str, ty: Ty) -> Col {
    Col {
        name,
        ty,
        nullable: true,
    }
}

/// A non-null column (unified view columns not marked `null` in docs/unified.md).
pub(crate) const fn req(name: &'static str, ty: Ty) -> Col {
    Col {
        name,
        ty,
        nullable: false,
    }
}

pub(crate) fn schema_of(cols: &[Col]) -> SchemaRef {
    Arc::new(Schema::new(
        cols.iter()
            .map(|c| Field::new(c.name, c.ty.data_type(), c.nullable))
            .collect::<Vec<_>>(),
    ))
}

enum Builder {
    Str(StringBuilder),
    I64(Int64Builder),
    F64(Float64Builder),
    Dec(Decimal128Builder),
    Ts(TimestampMicrosecondBuilder),
    Date(Date32Builder),
}

/// Builds one record batch of a static layout, value by value in column order.
pub(crate) struct TableBuilder {
    name: &'static str,
    cols: &'static [Col],
    builders: Vec<Builder>,
    pos: usize,
    rows: usize,
    error: Option<String>,
}

impl TableBuilder {
    pub(crate) fn new(name: &'static str, cols: &'static [Col]) -> Result<Self> {
        let builders = cols
            .iter()
            .map(|c| {
                Ok(match c.ty {
                    Ty::Str => Builder::Str(StringBuilder::new()),
                    Ty::I64 => Builder::I64(Int64Builder::new()),
                    Ty::F64 => Builder::F64(Float64Builder::new()),
                    Ty::Money => {
                        Builder::Dec(Decimal128Builder::new().with_precision_and_scale(18, 2)?)
                    }
                    Ty::Cost4 => {
                        Builder::Dec(Decimal128Builder::new().with_precision_and_scale(18, 4)?)
                    }
                    Ty::Kg => {
                        Builder::Dec(Decimal128Builder::new().with_precision_and_scale(18, 3)?)
                    }
                    Ty::Ts => Builder::Ts(TimestampMicrosecondBuilder::new()),
                    Ty::Date => Builder::Date(Date32Builder::new()),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if cols.is_empty() {
            return Err(DataError::internal(name, "a table needs columns"));
        }
        Ok(TableBuilder {
            name,
            cols,
            builders,
            pos: 0,
            rows: 0,
            error: None,
        })
    }

    fn advance(&mut self) -> usize {
        let i = self.pos;
        self.pos += 1;
        if self.pos == self.cols.len() {
            self.pos = 0;
            self.rows += 1;
        }
        i
    }

    fn mismatch(&mut self, i: usize, got: &str) {
        if self.error.is_none() {
            let c = self.cols.get(i);
            self.error = Some(format!(
                "column {:?} ({:?}) was given {got} at row {}",
                c.map_or("?", |c| c.name),
                c.map(|c| c.ty),
                self.rows
            ));
        }
    }

    /// A string cell.
    pub(crate) fn s(&mut self, v: &str) {
        self.os(Some(v));
    }

    /// A nullable string cell.
    pub(crate) fn os(&mut self, v: Option<&str>) {
        let i = self.advance();
        match self.builders.get_mut(i) {
            Some(Builder::Str(b)) => b.append_option(v),
            _ => self.mismatch(i, "a string"),
        }
    }

    /// An integer cell.
    pub(crate) fn i(&mut self, v: i64) {
        self.oi(Some(v));
    }

    /// A nullable integer cell.
    pub(crate) fn oi(&mut self, v: Option<i64>) {
        let i = self.advance();
        match self.builders.get_mut(i) {
            Some(Builder::I64(b)) => b.append_option(v),
            _ => self.mismatch(i, "an integer"),
        }
    }

    /// A float cell.
    pub(crate) fn f(&mut self, v: f64) {
        self.of(Some(v));
    }

    /// A nullable float cell.
    pub(crate) fn of(&mut self, v: Option<f64>) {
        let i = self.advance();
        match self.builders.get_mut(i) {
            Some(Builder::F64(b)) => b.append_option(v),
            _ => self.mismatch(i, "a float"),
        }
    }

    /// A decimal cell, given as the scaled integer (cents for money, 1/10 000 for costs,
    /// grams for kilograms).
    pub(crate) fn d(&mut self, v: i64) {
        self.od(Some(v));
    }

    /// A nullable decimal cell.
    pub(crate) fn od(&mut self, v: Option<i64>) {
        let i = self.advance();
        match self.builders.get_mut(i) {
            Some(Builder::Dec(b)) => b.append_option(v.map(i128::from)),
            _ => self.mismatch(i, "a decimal"),
        }
    }

    /// A timestamp cell, given in seconds (the exports have second precision).
    pub(crate) fn t(&mut self, secs: i64) {
        self.ot(Some(secs));
    }

    /// A nullable timestamp cell.
    pub(crate) fn ot(&mut self, secs: Option<i64>) {
        let i = self.advance();
        match self.builders.get_mut(i) {
            Some(Builder::Ts(b)) => b.append_option(secs.map(|s| s * 1_000_000)),
            _ => self.mismatch(i, "a timestamp"),
        }
    }

    /// A date cell (days since 1970-01-01).
    pub(crate) fn date(&mut self, days: i32) {
        let i = self.advance();
        match self.builders.get_mut(i) {
            Some(Builder::Date(b)) => b.append_value(days),
            _ => self.mismatch(i, "a date"),
        }
    }

    /// The finished batch; fails on a type mismatch, an incomplete last row, or a null in a
    /// non-null column.
    pub(crate) fn finish(mut self) -> Result<RecordBatch> {
        if let Some(e) = self.error.take() {
            return Err(DataError::internal(self.name, e));
        }
        if self.pos != 0 {
            return Err(DataError::internal(
                self.name,
                format!(
                    "incomplete last row ({} of {} cells)",
                    self.pos,
                    self.cols.len()
                ),
            ));
        }
        let arrays: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(|b| -> ArrayRef {
                match b {
                    Builder::Str(b) => Arc::new(b.finish()),
                    Builder::I64(b) => Arc::new(b.finish()),
                    Builder::F64(b) => Arc::new(b.finish()),
                    Builder::Dec(b) => Arc::new(b.finish()),
                    Builder::Ts(b) => Arc::new(b.finish()),
                    Builder::Date(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        Ok(RecordBatch::try_new(schema_of(self.cols), arrays)?)
    }
}
