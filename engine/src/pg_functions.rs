//! Amoeba's functions in the PostgreSQL system catalog, so that psql's `\df` and BI tools'
//! function browsers list them like any database function.
//!
//! ```text
//!  amoeba_functions (udfs) ──► rows of pg_catalog.pg_proc (namespace public, oids ≥ FIRST_OID)
//!                              pg_function_is_visible(oid)      → true
//!                              pg_get_function_result(oid)      → "double precision" / "numeric"
//!                              pg_get_function_arguments(oid)   → "net_profit numeric, …"
//! ```
//!
//! `datafusion-pg-catalog` serves `pg_proc` from a static export of PostgreSQL's built-ins; the
//! session's `pg_catalog` schema is wrapped so that `pg_proc` is that table plus our rows, every
//! other table coming from the original schema unchanged.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Int16Array, Int32Array, RecordBatch,
    StringArray, new_null_array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int32Type, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;

use crate::error::{EngineError, Result};
use crate::pg_compat::CatalogOverrides;
use crate::session::CATALOG_NAME;

/// The first oid given to Amoeba's functions (above PostgreSQL's built-ins and the
/// namespaces' oids).
const FIRST_OID: i32 = 900_000;
const NUMERIC_OID: i32 = 1700;
const FLOAT8_OID: i32 = 701;

/// One function as PostgreSQL describes it.
struct PgFunction {
    oid: i32,
    name: String,
    window: bool,
    result: &'static str,
    arguments: String,
    nargs: i16,
}

/// Adds Amoeba's functions to `pg_catalog.pg_proc` and registers the functions psql's `\df`
/// calls. Run after `setup_pg_catalog`.
pub(crate) async fn register(ctx: &SessionContext) -> Result<()> {
    let functions = functions(ctx).await?;
    let catalog = ctx
        .catalog(CATALOG_NAME)
        .ok_or_else(|| EngineError::setup(format!("no catalog {CATALOG_NAME}")))?;
    let Some(inner) = catalog.schema("pg_catalog") else {
        return Ok(());
    };
    let Some(builtin) = inner.table("pg_proc").await? else {
        return Ok(());
    };
    let schema = builtin.schema();
    let mut batches = ctx.read_table(builtin)?.collect().await?;
    let public_oid = public_namespace_oid(ctx).await?;
    batches.push(rows(&schema, &functions, public_oid)?);
    let pg_proc: Arc<dyn TableProvider> = Arc::new(MemTable::try_new(schema, vec![batches])?);
    let tables = HashMap::from([("pg_proc".to_string(), pg_proc)]);
    catalog.register_schema("pg_catalog", Arc::new(CatalogOverrides { inner, tables }))?;

    let results: HashMap<i32, String> = functions
        .iter()
        .map(|f| (f.oid, f.result.to_string()))
        .collect();
    let arguments: HashMap<i32, String> = functions
        .iter()
        .map(|f| (f.oid, f.arguments.clone()))
        .collect();
    ctx.register_udf(lookup_udf("pg_get_function_result", results));
    ctx.register_udf(lookup_udf("pg_get_function_arguments", arguments));
    ctx.register_udf(create_udf(
        "pg_function_is_visible",
        vec![DataType::Int32],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let args = ColumnarValue::values_to_arrays(args)?;
            let n = args.first().map_or(1, |a| a.len());
            Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(vec![
                true;
                n
            ]))))
        }),
    ));
    Ok(())
}

/// Amoeba's functions, from `amoeba_functions`.
async fn functions(ctx: &SessionContext) -> Result<Vec<PgFunction>> {
    let batches = ctx
        .sql("SELECT name, kind, signature, return_type FROM amoeba_functions ORDER BY name")
        .await?
        .collect()
        .await?;
    let mut out = Vec::new();
    for batch in &batches {
        let text = |i: usize| -> Result<StringArray> {
            let c = batch
                .columns()
                .get(i)
                .ok_or_else(|| EngineError::setup("amoeba_functions: missing column"))?;
            Ok(cast(c, &DataType::Utf8)?.as_string::<i32>().clone())
        };
        let (name, kind, signature, returns) = (text(0)?, text(1)?, text(2)?, text(3)?);
        for i in 0..batch.num_rows() {
            // `roi(net_profit, ad_spend)` → "net_profit numeric, ad_spend numeric"; a window
            // function's `… OVER (…)` is not an argument.
            let args: Vec<String> = signature
                .value(i)
                .split_once('(')
                .and_then(|(_, rest)| rest.split_once(')'))
                .map_or("", |(args, _)| args)
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(|a| format!("{a} numeric"))
                .collect();
            let oid = FIRST_OID + i32::try_from(out.len()).unwrap_or(0);
            out.push(PgFunction {
                oid,
                name: name.value(i).to_string(),
                window: kind.value(i) == "window",
                result: if returns.value(i).starts_with("DOUBLE") {
                    "double precision"
                } else {
                    "numeric"
                },
                nargs: i16::try_from(args.len()).unwrap_or(0),
                arguments: args.join(", "),
            });
        }
    }
    Ok(out)
}

async fn public_namespace_oid(ctx: &SessionContext) -> Result<i32> {
    let batches = ctx
        .sql("SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'public'")
        .await?
        .collect()
        .await?;
    for batch in &batches {
        if let Some(c) = batch.columns().first()
            && !c.is_empty()
        {
            let c = cast(c, &DataType::Int32)?;
            return Ok(c.as_primitive::<Int32Type>().value(0));
        }
    }
    Err(EngineError::setup("pg_namespace has no 'public'"))
}

/// `pg_proc` rows for `functions`, in the built-in table's schema (columns not set are NULL).
fn rows(schema: &SchemaRef, functions: &[PgFunction], namespace: i32) -> Result<RecordBatch> {
    let n = functions.len();
    let text = |f: &dyn Fn(&PgFunction) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(functions.iter().map(f)))
    };
    let int = |v: i32| -> ArrayRef { Arc::new(Int32Array::from(vec![v; n])) };
    let flag = |v: bool| -> ArrayRef { Arc::new(BooleanArray::from(vec![v; n])) };
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column: ArrayRef = match field.name().as_str() {
            "oid" => Arc::new(Int32Array::from_iter_values(
                functions.iter().map(|f| f.oid),
            )),
            "proname" | "prosrc" => text(&|f| f.name.clone()),
            "pronamespace" => int(namespace),
            "proowner" => int(10),
            "prolang" => int(12),
            "procost" => Arc::new(Float32Array::from(vec![1.0; n])),
            "prorows" => Arc::new(Float32Array::from(vec![0.0; n])),
            "provariadic" => int(0),
            "prosupport" => text(&|_| "-".to_string()),
            "prokind" => text(&|f| if f.window { "w" } else { "f" }.to_string()),
            "prosecdef" | "proleakproof" | "proisstrict" | "proretset" => flag(false),
            "provolatile" => text(&|_| "i".to_string()),
            "proparallel" => text(&|_| "s".to_string()),
            "pronargs" => Arc::new(Int16Array::from_iter_values(
                functions.iter().map(|f| f.nargs),
            )),
            "pronargdefaults" => Arc::new(Int16Array::from(vec![0; n])),
            "prorettype" => Arc::new(Int32Array::from_iter_values(functions.iter().map(|f| {
                if f.result == "numeric" {
                    NUMERIC_OID
                } else {
                    FLOAT8_OID
                }
            }))),
            "proargtypes" => text(&|f| vec![NUMERIC_OID.to_string(); f.nargs as usize].join(" ")),
            _ => new_null_array(field.data_type(), n),
        };
        // The built-in table's own types win (e.g. an oid column typed otherwise).
        columns.push(if column.data_type() == field.data_type() {
            column
        } else {
            cast(&column, field.data_type())?
        });
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// A function `oid → text` answering from `values` (NULL for other oids).
fn lookup_udf(name: &str, values: HashMap<i32, String>) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Int32],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |args: &[ColumnarValue]| {
            let args = ColumnarValue::values_to_arrays(args)?;
            let oids = args
                .first()
                .ok_or_else(|| DataFusionError::Plan("expected an oid".to_string()))?;
            let oids = cast(oids, &DataType::Int32)?;
            let oids = oids.as_primitive::<Int32Type>();
            let out: StringArray = oids
                .iter()
                .map(|oid| oid.and_then(|o| values.get(&o).cloned()))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}
