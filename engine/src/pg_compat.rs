//! The PostgreSQL system catalog as BI tools and drivers read it.
//!
//! ```text
//!  setup_pg_catalog (datafusion-pg-catalog: static pg_catalog tables, information_schema)
//!     │  roles: the model's users (pg_roles, pg_user)                      ModelRoles
//!     ▼
//!  pg_functions::register: Amoeba's functions in pg_proc                   pg_functions.rs
//!     ▼
//!  CatalogOverrides over pg_catalog:
//!     pg_index, pg_constraint   typed like PostgreSQL's (int2vector keys as smallint[]), empty
//!     pg_policies               empty (no row-level policies are declared in SQL)
//!     pg_settings               the settings Amoeba answers (SETTINGS)
//!     pg_class                  a view adding reloptions (NULL)
//!     amoeba_is_columns         information_schema.columns with udt_schema, udt_name
//!     amoeba_is_*               information_schema's constraint tables, empty
//!                               (the SQL rewrite in server/sql_compat.rs points to them)
//!     ▼
//!  functions drivers call: version(), current_setting(), pg_type_is_visible(), …
//! ```
//!
//! Drivers decide what a server can do from what it says it is: SQLAlchemy parses
//! `version()` for `"PostgreSQL <major>.<minor>"`, pgjdbc reads `server_version` at startup,
//! Grafana `current_setting('server_version_num')`. Amoeba speaks PostgreSQL 16's protocol
//! and catalog, so it says PostgreSQL 16.6 and names itself after it.

use std::collections::HashMap;
use std::sync::Arc;

use amoeba_catalog::{Model, Role as UserRole};
use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, StringArray, new_null_array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::exec_err;
use datafusion::config::{ConfigEntry, ConfigOptions};
use datafusion::datasource::{MemTable, ViewTable};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, SimpleScalarUDF,
    TypeSignature, Volatility, create_udf,
};
use datafusion::prelude::SessionContext;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::{
    PgCatalogContextProvider, Role,
};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;

use crate::cube::AmoebaOptions;
use crate::error::{EngineError, Result};
use crate::pg_functions;
use crate::session::CATALOG_NAME;

/// The PostgreSQL version Amoeba answers as (protocol 3, PostgreSQL 16's catalog).
pub(crate) const PG_VERSION: &str = "16.6";

/// What `version()` returns: PostgreSQL's form first (drivers parse it), then what it is.
pub(crate) fn version_text() -> String {
    format!(
        "PostgreSQL {PG_VERSION} (Amoeba {} on Apache DataFusion {}) on {}-linux, 64-bit",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION,
        std::env::consts::ARCH
    )
}

/// The server settings that `SHOW`, `current_setting()` and `pg_settings` answer, beyond
/// those a client sets for its connection.
const SETTINGS: &[(&str, &str)] = &[
    ("server_version", PG_VERSION),
    ("server_version_num", "160006"),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("standard_conforming_strings", "on"),
    ("integer_datetimes", "on"),
    ("TimeZone", "UTC"),
    ("log_timezone", "UTC"),
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "postgres"),
    ("search_path", "\"$user\", public"),
    ("max_identifier_length", "63"),
    ("max_index_keys", "32"),
    ("max_function_args", "100"),
    ("block_size", "8192"),
    ("lc_collate", "C"),
    ("lc_ctype", "C"),
    ("lc_messages", "C"),
    ("lc_monetary", "C"),
    ("lc_numeric", "C"),
    ("lc_time", "C"),
    ("default_transaction_isolation", "read committed"),
    ("transaction_isolation", "read committed"),
    ("default_transaction_read_only", "off"),
    ("transaction_read_only", "off"),
    ("in_hot_standby", "off"),
    ("application_name", ""),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
    ("statement_timeout", "0"),
    ("idle_session_timeout", "0"),
    ("lock_timeout", "0"),
    ("max_connections", "100"),
    ("ssl", "off"),
];

/// A server setting by name (any case).
pub(crate) fn setting(name: &str) -> Option<String> {
    SETTINGS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.to_string())
}

/// The model's users as PostgreSQL roles (`pg_roles`); admins are superusers.
#[derive(Debug, Clone, Default)]
struct ModelRoles {
    users: Arc<Vec<(String, bool)>>,
}

#[async_trait]
impl PgCatalogContextProvider for ModelRoles {
    async fn roles(&self) -> Vec<String> {
        self.users.iter().map(|(name, _)| name.clone()).collect()
    }

    async fn role(&self, name: &str) -> Option<Role> {
        let (name, admin) = self.users.iter().find(|(n, _)| n == name)?;
        Some(Role {
            name: name.clone(),
            is_superuser: *admin,
            can_login: true,
            can_create_db: false,
            can_create_role: false,
            can_create_user: false,
            can_replication: false,
            grants: Vec::new(),
            inherited_roles: Vec::new(),
        })
    }
}

/// Sets up `pg_catalog`, `information_schema` and the functions drivers call, for a session
/// whose users come from `model` (none: no roles listed).
pub(crate) async fn setup(ctx: &SessionContext, model: Option<&Model>) -> Result<()> {
    let roles = ModelRoles {
        users: Arc::new(
            model
                .map(|m| {
                    m.users
                        .iter()
                        .map(|u| (u.name.clone(), u.role == UserRole::Admin))
                        .collect()
                })
                .unwrap_or_default(),
        ),
    };
    // By value: datafusion-pg-catalog's provider impl for `Arc<T>` calls itself.
    setup_pg_catalog(ctx, CATALOG_NAME, roles)?;
    pg_functions::register(ctx).await?;
    override_tables(ctx).await?;
    register_functions(ctx);
    Ok(())
}

/// Tables of `pg_catalog` replaced or added (names the SQL rewrite uses for
/// `information_schema`'s constraint tables start with `amoeba_is_`).
async fn override_tables(ctx: &SessionContext) -> Result<()> {
    let catalog = ctx
        .catalog(CATALOG_NAME)
        .ok_or_else(|| EngineError::setup(format!("no catalog {CATALOG_NAME}")))?;
    let Some(inner) = catalog.schema("pg_catalog") else {
        return Ok(());
    };
    let mut tables: HashMap<String, Arc<dyn TableProvider>> = HashMap::new();
    let smallints = DataType::new_list(DataType::Int16, true);
    let oids = DataType::new_list(DataType::Int32, true);
    // int2vector/oidvector columns are text in datafusion-pg-catalog's export; drivers index
    // and unnest them as arrays. Amoeba declares no indexes or constraints: both are empty.
    for (table, arrays) in [
        (
            "pg_index",
            vec![
                ("indkey", smallints.clone()),
                ("indclass", oids.clone()),
                ("indcollation", oids.clone()),
                ("indoption", smallints.clone()),
            ],
        ),
        (
            "pg_constraint",
            vec![
                ("conkey", smallints.clone()),
                ("confkey", smallints.clone()),
                ("conpfeqop", oids.clone()),
                ("conppeqop", oids.clone()),
                ("conffeqop", oids.clone()),
                ("conexclop", oids.clone()),
                ("confdelsetcols", smallints.clone()),
            ],
        ),
    ] {
        let Some(builtin) = inner.table(table).await? else {
            continue;
        };
        let fields: Vec<Field> = builtin
            .schema()
            .fields()
            .iter()
            .map(|f| match arrays.iter().find(|(name, _)| name == f.name()) {
                Some((_, ty)) => Field::new(f.name(), ty.clone(), true),
                None => f.as_ref().clone(),
            })
            .collect();
        tables.insert(table.to_string(), empty(Arc::new(Schema::new(fields)))?);
    }
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let texts = |names: &[&str]| {
        Arc::new(Schema::new(
            names.iter().map(|n| text(n)).collect::<Vec<_>>(),
        ))
    };
    tables.insert(
        "pg_policies".to_string(),
        empty(Arc::new(Schema::new(vec![
            text("schemaname"),
            text("tablename"),
            text("policyname"),
            text("permissive"),
            Field::new("roles", DataType::new_list(DataType::Utf8, true), true),
            text("cmd"),
            text("qual"),
            text("with_check"),
        ])))?,
    );
    let constraint = ["constraint_catalog", "constraint_schema", "constraint_name"];
    let table = ["table_catalog", "table_schema", "table_name"];
    tables.insert(
        "amoeba_is_table_constraints".to_string(),
        empty(texts(
            &[
                &constraint[..],
                &table[..],
                &[
                    "constraint_type",
                    "is_deferrable",
                    "initially_deferred",
                    "enforced",
                    "nulls_distinct",
                ],
            ]
            .concat(),
        ))?,
    );
    let mut key_columns: Vec<Field> = [&constraint[..], &table[..], &["column_name"]]
        .concat()
        .iter()
        .map(|n| text(n))
        .collect();
    key_columns.push(Field::new("ordinal_position", DataType::Int32, true));
    key_columns.push(Field::new(
        "position_in_unique_constraint",
        DataType::Int32,
        true,
    ));
    tables.insert(
        "amoeba_is_key_column_usage".to_string(),
        empty(Arc::new(Schema::new(key_columns)))?,
    );
    tables.insert(
        "amoeba_is_referential_constraints".to_string(),
        empty(texts(
            &[
                &constraint[..],
                &[
                    "unique_constraint_catalog",
                    "unique_constraint_schema",
                    "unique_constraint_name",
                    "match_option",
                    "update_rule",
                    "delete_rule",
                ],
            ]
            .concat(),
        ))?,
    );
    tables.insert(
        "amoeba_is_constraint_column_usage".to_string(),
        empty(texts(
            &[&table[..], &["column_name"], &constraint[..]].concat(),
        ))?,
    );
    let character_sets = Arc::new(Schema::new(
        [
            "character_set_catalog",
            "character_set_schema",
            "character_set_name",
            "character_repertoire",
            "form_of_use",
            "default_collate_catalog",
            "default_collate_schema",
            "default_collate_name",
        ]
        .iter()
        .map(|n| text(n))
        .collect::<Vec<_>>(),
    ));
    let utf8 = |v: Option<&str>| Arc::new(StringArray::from(vec![v])) as ArrayRef;
    let row = datafusion::arrow::array::RecordBatch::try_new(
        Arc::clone(&character_sets),
        vec![
            utf8(None),
            utf8(None),
            utf8(Some("UTF8")),
            utf8(Some("UCS")),
            utf8(Some("UTF8")),
            utf8(Some(CATALOG_NAME)),
            utf8(Some("pg_catalog")),
            utf8(Some("C")),
        ],
    )?;
    tables.insert(
        "amoeba_is_character_sets".to_string(),
        Arc::new(MemTable::try_new(character_sets, vec![vec![row]])?),
    );
    tables.insert("pg_settings".to_string(), pg_settings()?);
    // Columns drivers select that the built-in tables lack, as views over them (planned now,
    // so they read the original tables; their rows stay current).
    for (name, sql) in [
        (
            "pg_class",
            "SELECT *, CAST(NULL AS VARCHAR) AS reloptions FROM pg_catalog.pg_class",
        ),
        ("amoeba_is_columns", INFORMATION_SCHEMA_COLUMNS),
    ] {
        let plan = ctx.sql(sql).await?.into_unoptimized_plan();
        tables.insert(
            name.to_string(),
            Arc::new(ViewTable::new(plan, Some(sql.to_string()))),
        );
    }
    catalog.register_schema("pg_catalog", Arc::new(CatalogOverrides { inner, tables }))?;
    Ok(())
}

/// `information_schema.columns` with PostgreSQL's `udt_*` and identity columns (Metabase
/// reads the column types from `udt_name`).
const INFORMATION_SCHEMA_COLUMNS: &str = "SELECT *, \
    CAST(NULL AS VARCHAR) AS udt_catalog, 'pg_catalog' AS udt_schema, \
    CASE \
      WHEN data_type LIKE 'Decimal%' THEN 'numeric' \
      WHEN data_type LIKE 'Timestamp%' THEN 'timestamp' \
      WHEN data_type IN ('Int64', 'UInt64', 'UInt32') THEN 'int8' \
      WHEN data_type IN ('Int32', 'UInt16') THEN 'int4' \
      WHEN data_type IN ('Int16', 'Int8', 'UInt8') THEN 'int2' \
      WHEN data_type = 'Float64' THEN 'float8' \
      WHEN data_type IN ('Float32', 'Float16') THEN 'float4' \
      WHEN data_type = 'Boolean' THEN 'bool' \
      WHEN data_type LIKE 'Date%' THEN 'date' \
      ELSE 'text' \
    END AS udt_name, \
    'NO' AS is_identity, CAST(NULL AS VARCHAR) AS identity_generation, \
    'NEVER' AS is_generated, CAST(NULL AS VARCHAR) AS generation_expression, \
    'YES' AS is_updatable \
    FROM information_schema.columns";

/// `pg_settings`: the settings of [`SETTINGS`] (pgjdbc reads `max_index_keys` there).
fn pg_settings() -> Result<Arc<dyn TableProvider>> {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let names = [
        "name",
        "setting",
        "unit",
        "category",
        "short_desc",
        "extra_desc",
        "context",
        "vartype",
        "source",
        "min_val",
        "max_val",
        "enumvals",
        "boot_val",
        "reset_val",
        "sourcefile",
    ];
    let mut fields: Vec<Field> = names.iter().map(|n| text(n)).collect();
    fields.push(Field::new("sourceline", DataType::Int32, true));
    fields.push(Field::new("pending_restart", DataType::Boolean, true));
    let schema = Arc::new(Schema::new(fields));
    let n = SETTINGS.len();
    let column = |name: &str| -> ArrayRef {
        match name {
            "name" => Arc::new(StringArray::from_iter_values(
                SETTINGS.iter().map(|(k, _)| *k),
            )),
            "setting" | "boot_val" | "reset_val" => Arc::new(StringArray::from_iter_values(
                SETTINGS.iter().map(|(_, v)| *v),
            )),
            "context" => Arc::new(StringArray::from(vec!["internal"; n])),
            "vartype" => Arc::new(StringArray::from(vec!["string"; n])),
            "source" => Arc::new(StringArray::from(vec!["default"; n])),
            _ => new_null_array(&DataType::Utf8, n),
        }
    };
    let mut columns: Vec<ArrayRef> = names.iter().map(|n| column(n)).collect();
    columns.push(new_null_array(&DataType::Int32, n));
    columns.push(Arc::new(BooleanArray::from(vec![false; n])));
    let batch = datafusion::arrow::array::RecordBatch::try_new(Arc::clone(&schema), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

fn empty(schema: SchemaRef) -> Result<Arc<dyn TableProvider>> {
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![]])?))
}

/// A schema with some tables replaced or added, every other from the schema it wraps.
#[derive(Debug)]
pub(crate) struct CatalogOverrides {
    pub(crate) inner: Arc<dyn SchemaProvider>,
    pub(crate) tables: HashMap<String, Arc<dyn TableProvider>>,
}

#[async_trait]
impl SchemaProvider for CatalogOverrides {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        names.extend(
            self.tables
                .keys()
                .filter(|name| !self.inner.table_exist(name))
                .cloned(),
        );
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        match self.tables.get(name) {
            Some(table) => Ok(Some(Arc::clone(table))),
            None => self.inner.table(name).await,
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.contains_key(name) || self.inner.table_exist(name)
    }
}

/// `session_user` and `current_user` of a connection's session: its user (datafusion-pg-catalog
/// answers "postgres" for everyone).
pub(crate) fn register_user_functions(ctx: &SessionContext, user: &str) {
    for name in ["session_user", "current_user"] {
        ctx.register_udf(constant_udf(name, vec![], Some(user)));
    }
}

/// A function of one or more arguments whose value does not depend on them.
fn constant_udf(name: &str, args: Vec<DataType>, value: Option<&str>) -> ScalarUDF {
    let value = value.map(str::to_string);
    create_udf(
        name,
        args,
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |args: &[ColumnarValue]| {
            let n = rows(args);
            Ok(ColumnarValue::Array(match &value {
                Some(v) => Arc::new(StringArray::from(vec![v.as_str(); n])),
                None => new_null_array(&DataType::Utf8, n),
            }))
        }),
    )
}

fn rows(args: &[ColumnarValue]) -> usize {
    args.iter()
        .find_map(|a| match a {
            ColumnarValue::Array(array) => Some(array.len()),
            ColumnarValue::Scalar(_) => None,
        })
        .unwrap_or(1)
}

fn visible_udf(name: &str) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Int32],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(vec![
                true;
                rows(
                    args
                )
            ]))))
        }),
    )
}

/// The functions drivers call that datafusion-pg-catalog lacks or answers unlike PostgreSQL.
fn register_functions(ctx: &SessionContext) {
    ctx.register_udf(constant_udf("version", vec![], Some(&version_text())));
    ctx.register_udf(visible_udf("pg_type_is_visible"));
    ctx.register_udf(visible_udf("pg_collation_is_visible"));
    ctx.register_udf(visible_udf("pg_opclass_is_visible"));
    ctx.register_udf(constant_udf(
        "pg_tablespace_location",
        vec![DataType::Int32],
        Some(""),
    ));
    // No sequences, no view definitions in SQL, no extension types (hstore): NULL, as
    // PostgreSQL answers for a column without a sequence or an unknown type name.
    ctx.register_udf(constant_udf(
        "pg_get_serial_sequence",
        vec![DataType::Utf8, DataType::Utf8],
        None,
    ));
    ctx.register_udf(constant_udf("pg_get_viewdef", vec![DataType::Int32], None));
    ctx.register_udf(constant_udf("to_regtype", vec![DataType::Utf8], None));
    // No rules, indexes or constraints are declared: their definitions are NULL; no comments
    // are kept on tables or columns either.
    for name in [
        "pg_get_ruledef",
        "pg_get_indexdef",
        "pg_get_constraintdef",
        "pg_get_triggerdef",
        "col_description",
        "obj_description",
        "shobj_description",
    ] {
        ctx.register_udf(variadic_text_udf(name, |_, _| Ok(None)));
    }
    ctx.register_udf(current_setting_udf());
    ctx.register_udf(crate::pg_expandarray::expandarray_udf());
    ctx.register_udf(format_udf());
    ctx.register_udf(json_build_object_udf());
}

/// The session's options by the names `SET` takes: DataFusion's (`datafusion.…`) and those of
/// its extensions, Amoeba's among them (`amoeba.cube_routing`). DataFusion lists an
/// extension's options without its prefix; here they get it.
pub(crate) fn session_options(options: &ConfigOptions) -> Vec<ConfigEntry> {
    let mut entries: Vec<ConfigEntry> = options
        .entries()
        .into_iter()
        .filter(|entry| entry.key.starts_with("datafusion."))
        .collect();
    for (prefix, extension) in options.extensions.iter() {
        entries.extend(extension.entries().into_iter().map(|entry| ConfigEntry {
            key: format!("{prefix}.{}", entry.key),
            ..entry
        }));
    }
    entries
}

/// Amoeba's session options with their descriptions (what `SHOW ALL` lists).
pub(crate) fn amoeba_options() -> Vec<ConfigEntry> {
    let mut options = ConfigOptions::new();
    options.extensions.insert(AmoebaOptions::default());
    session_options(&options)
        .into_iter()
        .filter(|entry| !entry.key.starts_with("datafusion."))
        .collect()
}

/// `current_setting(name [, missing_ok])`: the server's settings, and the session's
/// DataFusion and Amoeba options by their dotted names (`amoeba.cube_routing`, as `SET`
/// them); an unknown name is an error (or NULL with `missing_ok`), as in PostgreSQL.
fn current_setting_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(CurrentSetting {
        signature: Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Utf8]),
                TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean]),
            ],
            Volatility::Stable,
        ),
    })
}

/// `current_setting`: a UDF of its own because it reads the session's options, which a
/// function sees only through its arguments at execution.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSetting {
    signature: Signature,
}

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(names) = arrays
            .first()
            .and_then(|a| a.as_any().downcast_ref::<StringArray>())
        else {
            return exec_err!("current_setting needs a setting name");
        };
        let missing_ok = arrays
            .get(1)
            .and_then(|a| a.as_any().downcast_ref::<BooleanArray>())
            .is_some_and(|a| !a.is_empty() && a.value(0));
        let mut options: Option<Vec<ConfigEntry>> = None;
        let mut values = Vec::with_capacity(names.len());
        for name in names.iter() {
            let Some(name) = name else {
                values.push(None);
                continue;
            };
            let value = match setting(name) {
                Some(value) => Some(value),
                None if name.contains('.') => options
                    .get_or_insert_with(|| session_options(&args.config_options))
                    .iter()
                    .find(|entry| entry.key.eq_ignore_ascii_case(name))
                    .map(|entry| entry.value.clone().unwrap_or_default()),
                None => None,
            };
            match value {
                Some(value) => values.push(Some(value)),
                None if missing_ok => values.push(None),
                None => return exec_err!("unrecognized configuration parameter \"{name}\""),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(values))))
    }
}

/// The arguments of a variadic text function, each cast to text, row by row.
fn text_arguments(args: &[ColumnarValue]) -> DfResult<(usize, Vec<StringArray>)> {
    let n = rows(args);
    let mut columns = Vec::with_capacity(args.len());
    for arg in args {
        let array = arg.to_array(n)?;
        let text = datafusion::arrow::compute::cast(&array, &DataType::Utf8)?;
        match text.as_any().downcast_ref::<StringArray>() {
            Some(strings) => columns.push(strings.clone()),
            None => return exec_err!("an argument cannot be read as text"),
        }
    }
    Ok((n, columns))
}

fn variadic_text_udf(
    name: &str,
    fun: impl Fn(&[Option<&str>], &[&DataType]) -> DfResult<Option<String>> + Send + Sync + 'static,
) -> ScalarUDF {
    ScalarUDF::from(SimpleScalarUDF::new_with_signature(
        name,
        Signature::variadic_any(Volatility::Immutable),
        DataType::Utf8,
        Arc::new(move |args: &[ColumnarValue]| {
            let types: Vec<DataType> = args.iter().map(ColumnarValue::data_type).collect();
            let types: Vec<&DataType> = types.iter().collect();
            let (n, columns) = text_arguments(args)?;
            let mut out = Vec::with_capacity(n);
            for row in 0..n {
                let values: Vec<Option<&str>> = columns
                    .iter()
                    .map(|c| (!c.is_null(row)).then(|| c.value(row)))
                    .collect();
                out.push(fun(&values, &types)?);
            }
            Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
        }),
    ))
}

/// `format(template, args…)` with `%s`, `%I` (identifier, quoted when needed), `%L` (literal,
/// NULL unquoted) and `%%`, as PostgreSQL's (positions like `%1$s` are not supported).
fn format_udf() -> ScalarUDF {
    variadic_text_udf("format", |values, _| {
        let Some(Some(template)) = values.first() else {
            return Ok(None);
        };
        let mut args = values[1..].iter();
        let mut out = String::with_capacity(template.len());
        let mut chars = template.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let spec = chars.next();
            if spec == Some('%') {
                out.push('%');
                continue;
            }
            let Some(value) = args.next() else {
                return exec_err!("format: too few arguments for \"{template}\"");
            };
            match (spec, value) {
                (Some('s'), v) => out.push_str(v.unwrap_or("")),
                (Some('I'), Some(v)) => {
                    let plain = v
                        .chars()
                        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
                        && !v.starts_with(|ch: char| ch.is_ascii_digit());
                    if plain && !v.is_empty() {
                        out.push_str(v);
                    } else {
                        out.push('"');
                        out.push_str(&v.replace('"', "\"\""));
                        out.push('"');
                    }
                }
                (Some('I'), None) => return exec_err!("format: a NULL identifier (%I)"),
                (Some('L'), Some(v)) => {
                    out.push('\'');
                    out.push_str(&v.replace('\'', "''"));
                    out.push('\'');
                }
                (Some('L'), None) => out.push_str("NULL"),
                (other, _) => {
                    return exec_err!("format: unsupported conversion %{}", other.unwrap_or(' '));
                }
            }
        }
        Ok(Some(out))
    })
}

/// `json_build_object(key, value, …)` as JSON text: numbers and booleans bare, NULL as null.
fn json_build_object_udf() -> ScalarUDF {
    variadic_text_udf("json_build_object", |values, types| {
        if values.len() % 2 != 0 {
            return exec_err!("json_build_object: an even number of arguments is needed");
        }
        let quoted = |s: &str| {
            let mut q = String::with_capacity(s.len() + 2);
            q.push('"');
            for ch in s.chars() {
                match ch {
                    '"' => q.push_str("\\\""),
                    '\\' => q.push_str("\\\\"),
                    '\n' => q.push_str("\\n"),
                    c if (c as u32) < 0x20 => q.push_str(&format!("\\u{:04x}", c as u32)),
                    c => q.push(c),
                }
            }
            q.push('"');
            q
        };
        let mut parts = Vec::with_capacity(values.len() / 2);
        for (i, pair) in values.chunks(2).enumerate() {
            let key = pair[0].unwrap_or("");
            let value = match (pair[1], types.get(2 * i + 1)) {
                (None, _) => "null".to_string(),
                (Some(v), Some(t)) if t.is_numeric() || **t == DataType::Boolean => v.to_string(),
                (Some(v), _) => quoted(v),
            };
            parts.push(format!("{} : {value}", quoted(key)));
        }
        Ok(Some(format!("{{{}}}", parts.join(", "))))
    })
}
