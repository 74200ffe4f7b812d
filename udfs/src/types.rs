//! Argument types: how each function's arguments are coerced, and the documentation record
//! shared by every function (and listed by `amoeba_functions`).

use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{DocSection, Documentation};

use crate::error::{Result, UdfError};

/// What a numeric argument is, for coercion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Numeric {
    /// An untyped NULL (a literal NULL or an unbound parameter).
    Null,
    /// Any integer type: an exact value at scale 0.
    Integer,
    /// A decimal at this scale.
    Decimal(i8),
    /// A binary floating-point number.
    Float,
}

/// The scale text arguments are read at: DECIMAL(38,10) holds any amount with up to 28
/// integer digits exactly.
pub(crate) const TEXT_SCALE: i8 = 10;

/// Classifies `data_type`, or explains why argument `position` of `function` cannot have it.
pub(crate) fn classify(
    function: &'static str,
    position: usize,
    name: &'static str,
    data_type: &DataType,
) -> Result<Numeric> {
    use DataType::*;
    Ok(match data_type {
        Null => Numeric::Null,
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => Numeric::Integer,
        Decimal32(_, s) | Decimal64(_, s) | Decimal128(_, s) => Numeric::Decimal((*s).max(0)),
        Decimal256(_, s) => Numeric::Decimal((*s).clamp(0, 38)),
        Float16 | Float32 | Float64 => Numeric::Float,
        // Text is what an untyped parameter (`$1` sent as PostgreSQL's `unknown`) or a quoted
        // literal arrives as: like PostgreSQL, read it as a number — exactly, as a DECIMAL;
        // text that is not a number fails the cast with an error naming the value.
        Utf8 | Utf8View | LargeUtf8 => Numeric::Decimal(TEXT_SCALE),
        other => {
            return Err(UdfError::ArgType {
                function,
                position: position + 1,
                name,
                data_type: other.clone(),
                expected: "a number (integer, DECIMAL or DOUBLE)",
            });
        }
    })
}

/// `DECIMAL(38, scale)`, the one decimal type the kernels compute on.
pub(crate) fn decimal(scale: i8) -> DataType {
    DataType::Decimal128(38, scale)
}

/// The scale of a `Decimal128` (0 for anything else).
pub(crate) fn scale_of(data_type: &DataType) -> i8 {
    match data_type {
        DataType::Decimal128(_, s) => *s,
        _ => 0,
    }
}

/// What kind of function, as listed in `amoeba_functions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// Row by row.
    Scalar,
    /// Over a window partition (`OVER (PARTITION BY … ORDER BY …)`).
    Window,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Scalar => "scalar",
            Kind::Window => "window",
        }
    }
}

/// The documentation of one function: the single source for DataFusion's
/// [`Documentation`] (`SHOW FUNCTIONS`, `information_schema.routines`) and `amoeba_functions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Spec {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    /// `(name, description)` of each argument, in order.
    pub(crate) args: &'static [(&'static str, &'static str)],
    /// The result type, in words (it may depend on the argument types).
    pub(crate) returns: &'static str,
    pub(crate) description: &'static str,
    /// A runnable SQL example.
    pub(crate) example: &'static str,
}

impl Spec {
    /// `name(arg1, arg2)`, plus `OVER (…)` for window functions.
    pub(crate) fn signature(&self) -> String {
        let args: Vec<&str> = self.args.iter().map(|(n, _)| *n).collect();
        let call = format!("{}({})", self.name, args.join(", "));
        match self.kind {
            Kind::Scalar => call,
            Kind::Window => format!("{call} OVER (PARTITION BY … ORDER BY …)"),
        }
    }

    pub(crate) fn documentation(&self) -> Documentation {
        let section = DocSection {
            include: true,
            label: "Amoeba Functions",
            description: Some("KPIs, exact allocation and costing (amoeba-udfs)"),
        };
        let mut b = Documentation::builder(
            section,
            format!("{} Returns {}.", self.description, self.returns),
            self.signature(),
        )
        .with_sql_example(self.example);
        for (name, desc) in self.args {
            b = b.with_argument(*name, *desc);
        }
        b.build()
    }

    /// Checks the number of arguments.
    pub(crate) fn arity(&self, got: usize) -> Result<()> {
        if got == self.args.len() {
            Ok(())
        } else {
            Err(UdfError::ArgCount {
                function: self.name,
                expected: self.args.len(),
                got,
            })
        }
    }

    pub(crate) fn classify_all(&self, arg_types: &[DataType]) -> Result<Vec<Numeric>> {
        self.arity(arg_types.len())?;
        arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| classify(self.name, i, self.args[i].0, t))
            .collect()
    }
}
