//! A cube as SQL: the leaf aggregate over the ledger, then each grouping set over the leaf.
//!
//! ```text
//!  pnl_ledger (month IN rebuilt)  [+ hours]
//!        │ narrow: GROUP BY dimensions, account → amount, qty, rows     (one pass over the ledger)
//!        ▼
//!  leaf: GROUP BY dimensions → one column per measure                   (pivot of the narrow rows)
//!        │ for each grouping set: GROUP BY its dimensions                (over the small leaf)
//!        ▼
//!  _set │ month │ dimensions (NULL where rolled up) │ measures
//! ```
//!
//! DataFusion's `GROUPING SETS` over raw ledger rows expands every row once per set; aggregating
//! to the leaf first and rolling the sets up from it reads the ledger once.

use std::sync::Arc;

use amoeba_catalog::cube::{CubeDef, Dimension, DimensionSource, MeasureKind};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::ledger::LEDGER_TABLE;

/// The column naming a row's grouping set (`month,unit_id`).
pub const SET_COLUMN: &str = "_set";
/// The build session's SKU master table.
pub(crate) const SKUS_TABLE: &str = "cube_skus";
/// The build session's unit tree table.
pub(crate) const UNITS_TABLE: &str = "cube_units";
/// The build session's hours table.
pub(crate) const HOURS_TABLE: &str = "cube_hours";
/// The build session's leaf table.
pub(crate) const LEAF_TABLE: &str = "cube_leaf";

/// The Arrow type of a dimension column.
pub(crate) fn dimension_type(d: Dimension) -> DataType {
    match d {
        Dimension::Date => DataType::Date32,
        _ => DataType::Utf8,
    }
}

/// The Arrow type of a measure column.
pub(crate) fn measure_type(kind: &MeasureKind) -> DataType {
    match kind {
        MeasureKind::UnitsSold | MeasureKind::LedgerRows => DataType::Int64,
        _ => DataType::Decimal128(38, 2),
    }
}

fn sql_type(t: &DataType) -> &'static str {
    match t {
        DataType::Date32 => "DATE",
        DataType::Int64 => "BIGINT",
        DataType::Decimal128(..) => "DECIMAL(38,2)",
        _ => "VARCHAR",
    }
}

/// The stored schema: `_set`, the dimensions, the measures.
pub(crate) fn schema(def: &CubeDef) -> SchemaRef {
    let mut fields = vec![Field::new(SET_COLUMN, DataType::Utf8, false)];
    fields.extend(
        def.dimensions
            .iter()
            .map(|d| Field::new(d.column(), dimension_type(*d), *d != Dimension::Month)),
    );
    fields.extend(
        def.measures
            .iter()
            .map(|m| Field::new(&m.name, measure_type(&m.kind), true)),
    );
    Arc::new(Schema::new(fields))
}

fn in_list(values: &[String]) -> String {
    let quoted: Vec<String> = values
        .iter()
        .map(|v| amoeba_catalog::mapping::sql_string(v))
        .collect();
    quoted.join(", ")
}

/// How a dimension is computed from a fact row `f` (and the SKU `k` and unit `u` joins).
fn dimension_expr(d: Dimension) -> &'static str {
    match d {
        Dimension::Date => "f.date",
        Dimension::Week => "to_char(f.date, '%G-W%V')",
        Dimension::Month => "f.month",
        Dimension::Quarter => {
            "concat(substr(f.month, 1, 4), '-Q', CAST((CAST(substr(f.month, 6, 2) AS INT) + 2) / 3 AS VARCHAR))"
        }
        Dimension::Year => "substr(f.month, 1, 4)",
        Dimension::Platform => "f.platform",
        Dimension::ShopId => "f.shop_id",
        Dimension::Brand => "k.brand",
        Dimension::Category => "k.category",
        Dimension::Spu => "k.spu",
        Dimension::Sku => "f.sku",
        Dimension::Campaign => "f.campaign",
        Dimension::UnitId => "f.unit_id",
        Dimension::ParentUnitId => "u.parent_id",
    }
}

/// A measure's aggregate over rows with `account`, `amount`, `qty`, `n` (rows) and `hours`.
pub(crate) fn measure_expr(kind: &MeasureKind) -> String {
    let money = |cond: String| {
        format!("CAST(SUM(CASE WHEN {cond} THEN amount ELSE 0 END) AS DECIMAL(38,2))")
    };
    match kind {
        MeasureKind::Accounts(accounts) => money(format!("account IN ({})", in_list(accounts))),
        MeasureKind::AllAccountsExcept(except) if except.is_empty() => {
            money("account IS NOT NULL".into())
        }
        MeasureKind::AllAccountsExcept(except) => money(format!(
            "account IS NOT NULL AND account NOT IN ({})",
            in_list(except)
        )),
        MeasureKind::UnitsSold => {
            "CAST(SUM(CASE WHEN account = 'gross_sales' THEN qty ELSE 0 END) AS BIGINT)".into()
        }
        MeasureKind::Hours => "CAST(SUM(COALESCE(hours, 0)) AS DECIMAL(38,2))".into(),
        MeasureKind::LedgerRows => "CAST(SUM(n) AS BIGINT)".into(),
    }
}

/// The leaf aggregate of `def` over the ledger months `months`.
pub(crate) fn leaf_sql(def: &CubeDef, months: &[String]) -> String {
    let months = in_list(months);
    let mut facts = format!(
        "SELECT month, date, platform, shop_id, sku, campaign, unit_id, account, amount, qty, \
                CAST(NULL AS DECIMAL(38,2)) AS hours \
         FROM {LEDGER_TABLE} WHERE month IN ({months})"
    );
    if def.has_measure("hours") {
        facts.push_str(&format!(
            " UNION ALL SELECT month, CAST(NULL AS DATE), CAST(NULL AS VARCHAR), \
                CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), unit_id, \
                CAST(NULL AS VARCHAR), CAST(NULL AS DECIMAL(38,2)), CAST(NULL AS BIGINT), \
                CAST(hours AS DECIMAL(38,2)) \
              FROM {HOURS_TABLE} WHERE month IN ({months})"
        ));
    }
    let mut joins = String::new();
    if def.uses(DimensionSource::SkuMaster) {
        joins.push_str(&format!(" LEFT JOIN {SKUS_TABLE} k ON k.sku = f.sku"));
    }
    if def.uses(DimensionSource::UnitTree) {
        joins.push_str(&format!(
            " LEFT JOIN {UNITS_TABLE} u ON u.unit_id = f.unit_id"
        ));
    }
    let dims: Vec<String> = def
        .dimensions
        .iter()
        .map(|d| format!("{} AS {}", dimension_expr(*d), d.column()))
        .collect();
    let dim_cols: Vec<&str> = def.dimensions.iter().map(|d| d.column()).collect();
    let group_narrow: Vec<String> = (1..=def.dimensions.len() + 1)
        .map(|i| i.to_string())
        .collect();
    let measures: Vec<String> = def
        .measures
        .iter()
        .map(|m| format!("{} AS {}", measure_expr(&m.kind), m.name))
        .collect();
    format!(
        "WITH facts AS ({facts}), \
         narrow AS (SELECT {dims}, f.account AS account, SUM(f.amount) AS amount, \
                    SUM(f.qty) AS qty, COUNT(f.account) AS n, SUM(f.hours) AS hours \
                    FROM facts f{joins} GROUP BY {group_narrow}) \
         SELECT {dim_cols}, {measures} FROM narrow GROUP BY {dim_cols}",
        dims = dims.join(", "),
        group_narrow = group_narrow.join(", "),
        dim_cols = dim_cols.join(", "),
        measures = measures.join(", "),
    )
}

/// Every grouping set of `def`, rolled up from the leaf, sorted (month, set, dimensions).
pub(crate) fn sets_sql(def: &CubeDef) -> String {
    let parts: Vec<String> = def
        .grouping_sets
        .iter()
        .map(|set| {
            let dims: Vec<String> = def
                .dimensions
                .iter()
                .map(|d| {
                    if set.contains(d) {
                        d.column().to_string()
                    } else {
                        format!(
                            "CAST(NULL AS {}) AS {}",
                            sql_type(&dimension_type(*d)),
                            d.column()
                        )
                    }
                })
                .collect();
            let measures: Vec<String> = def
                .measures
                .iter()
                .map(|m| {
                    format!(
                        "CAST(SUM({n}) AS {t}) AS {n}",
                        n = m.name,
                        t = sql_type(&measure_type(&m.kind))
                    )
                })
                .collect();
            let group: Vec<&str> = set.iter().map(|d| d.column()).collect();
            format!(
                "SELECT {label} AS {SET_COLUMN}, {dims}, {measures} FROM {LEAF_TABLE} GROUP BY {group}",
                label = amoeba_catalog::mapping::sql_string(&CubeDef::set_label(set)),
                dims = dims.join(", "),
                measures = measures.join(", "),
                group = group.join(", "),
            )
        })
        .collect();
    let order: Vec<String> = std::iter::once("month".to_string())
        .chain(std::iter::once(SET_COLUMN.to_string()))
        .chain(
            def.dimensions
                .iter()
                .filter(|d| **d != Dimension::Month)
                .map(|d| format!("{} NULLS FIRST", d.column())),
        )
        .collect();
    format!(
        "SELECT * FROM ({}) ORDER BY {}",
        parts.join(" UNION ALL "),
        order.join(", ")
    )
}

/// The KPI columns of `def`, as `expr AS name` over the stored columns.
pub(crate) fn kpi_exprs(def: &CubeDef) -> Vec<String> {
    def.kpis
        .iter()
        .map(|k| format!("{} AS {}", k.sql, k.name))
        .collect()
}
