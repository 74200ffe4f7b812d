//! Mapping files: how one platform's exports (or the company's own files) become the unified
//! views. A mapping is data — a TOML file per platform — so a new platform is a new file.
//!
//! ```text
//! name = "tmall"                      platform id (the exports/<platform>/ folder)
//! layout = "platform"                 exports/<name>/<kind>/shop=<id>/dt=<date>/*.parquet
//!                                     ("company": files below each source's `path`)
//! [sources.orders]                    one source kind per export kind
//! key = ["订单编号"]                   natural key (within the shop, for platform layouts):
//!                                     the newest delivery of a key wins
//! columns = { "订单编号" = "string", "总金额" = "decimal(18,2)", … }
//!
//! [maps.status]                       value maps, joined as {map.status}(key, value)
//! "交易成功" = "completed"
//!
//! [[views.order_lines]]               one part of a unified view (parts are UNION ALLed)
//! from = '{order_items} i JOIN {orders} o ON …'   SQL relation; {kind} = de-duplicated source
//! where = 'o."订单付款时间 " IS NOT NULL'           optional
//! delivery = "i._delivery"                        which source's delivery a row comes from
//! joined_delivery = "o._delivery"                 a part that reads two sources: the other's
//! columns = { order_id = 'i."订单编号"', … }       unified column = SQL expression
//! ```
//!
//! Every expression is cast to the unified type (`crate::unified`); the catalog adds
//! `platform` for platform layouts. Declared source columns are checked against every file's
//! Parquet schema before the file is served.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use serde::Deserialize;

use crate::error::{CatalogError, Result};
use crate::unified::unified_view;

/// The mappings compiled into the binary: the four platforms of the spec and the company side.
pub const BUILTIN_MAPPINGS: &[(&str, &str)] = &[
    ("tmall.toml", include_str!("../mappings/tmall.toml")),
    ("jd.toml", include_str!("../mappings/jd.toml")),
    ("pdd.toml", include_str!("../mappings/pdd.toml")),
    ("douyin.toml", include_str!("../mappings/douyin.toml")),
    ("company.toml", include_str!("../mappings/company.toml")),
];

/// Where a mapping's files live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `exports/<name>/<kind>/shop=<id>/dt=<YYYY-MM-DD>/<file>.parquet`.
    Platform,
    /// `<path>/…/<file>.parquet` for each source's `path`.
    Company,
}

/// A parsed, validated mapping file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Platform id (`tmall`) or `company`.
    pub name: String,
    /// File layout.
    pub layout: Layout,
    /// Source kinds by name.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceDef>,
    /// Value maps by name.
    #[serde(default)]
    pub maps: BTreeMap<String, BTreeMap<String, String>>,
    /// Unified view parts by view name.
    #[serde(default)]
    pub views: BTreeMap<String, Vec<ViewPart>>,
    /// The file this mapping came from (set by [`Mapping::parse`]).
    #[serde(skip)]
    pub file: String,
}

/// One source kind: a set of files with the same columns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceDef {
    /// Natural key columns.
    pub key: Vec<String>,
    /// Folder below the warehouse, for the company layout (`erp/skus`).
    #[serde(default)]
    pub path: Option<String>,
    /// Expected columns and their types (`string`, `int`, `double`, `decimal(p,s)`,
    /// `timestamp`, `date`).
    pub columns: BTreeMap<String, String>,
}

/// One part of a unified view.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewPart {
    /// SQL relation, with `{source}` and `{map.name}` placeholders.
    pub from: String,
    /// Optional SQL predicate: rows that belong to the view.
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    /// Expression giving the delivery number of the row's source file.
    #[serde(default = "default_delivery")]
    pub delivery: String,
    /// For a part that reads two sources (items joined to their order header): the delivery
    /// number of the other source's row. A row changes when either side is delivered again,
    /// and the incremental build finds changed rows by their deliveries, so a joined part
    /// must name both (the mapping check rejects one that does not).
    #[serde(default)]
    pub joined_delivery: Option<String>,
    /// For a part whose rows are computed across source rows (a join of two sources, a
    /// window): the columns, present in every source it reads and unambiguous in its `from`,
    /// by which they are computed together (tmall's order lines: `["订单编号"]`, an order's
    /// header and items). A refresh by delta maps such a part again for every group an added
    /// file touches, and every other part row by row; the mapping check asks for it where a
    /// part reads two sources, and the catalog where its plan computes across rows.
    #[serde(default)]
    pub group: Option<Vec<String>>,
    /// Unified column name → SQL expression.
    pub columns: BTreeMap<String, String>,
}

fn default_delivery() -> String {
    "_delivery".to_string()
}

/// A declared source column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Any Arrow string type; served as `Utf8`.
    String,
    /// Any Arrow integer; served as `Int64`.
    Int,
    /// Float32/Float64; served as `Float64`.
    Double,
    /// A decimal (any precision/scale, or an integer); served as `Decimal128(p, s)`.
    Decimal(u8, i8),
    /// A timestamp without zone; served as `Timestamp(Microsecond, None)`.
    Timestamp,
    /// A date (or timestamp); served as `Date32`.
    Date,
}

impl ColumnType {
    /// Parses `string`, `int`, `double`, `decimal(18,2)`, `timestamp`, `date`.
    pub fn parse(s: &str) -> Option<ColumnType> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "string" => Some(ColumnType::String),
            "int" => Some(ColumnType::Int),
            "double" => Some(ColumnType::Double),
            "timestamp" => Some(ColumnType::Timestamp),
            "date" => Some(ColumnType::Date),
            _ => {
                let inner = s.strip_prefix("decimal(")?.strip_suffix(')')?;
                let (p, sc) = inner.split_once(',')?;
                let p: u8 = p.trim().parse().ok()?;
                let sc: i8 = sc.trim().parse().ok()?;
                (1..=38).contains(&p).then_some(())?;
                (0..=p as i8)
                    .contains(&sc)
                    .then_some(ColumnType::Decimal(p, sc))
            }
        }
    }

    /// The Arrow type the column is served as.
    pub fn served_type(self) -> DataType {
        match self {
            ColumnType::String => DataType::Utf8,
            ColumnType::Int => DataType::Int64,
            ColumnType::Double => DataType::Float64,
            ColumnType::Decimal(p, s) => DataType::Decimal128(p, s),
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ColumnType::Date => DataType::Date32,
        }
    }

    /// Whether a file column of type `found` can be served as this type without changing
    /// its meaning. A mismatch rejects the file: a renamed or re-typed export column must be
    /// noticed, not silently cast.
    pub fn accepts(self, found: &DataType) -> bool {
        match self {
            ColumnType::String => {
                matches!(
                    found,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) || matches!(found, DataType::Dictionary(_, v) if matches!(v.as_ref(), DataType::Utf8 | DataType::LargeUtf8))
            }
            ColumnType::Int => found.is_integer(),
            ColumnType::Double => matches!(found, DataType::Float32 | DataType::Float64),
            ColumnType::Decimal(_, _) => {
                matches!(
                    found,
                    DataType::Decimal128(_, _) | DataType::Decimal256(_, _)
                ) || found.is_integer()
            }
            ColumnType::Timestamp => matches!(found, DataType::Timestamp(_, None)),
            ColumnType::Date => {
                matches!(
                    found,
                    DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, None)
                )
            }
        }
    }
}

impl Mapping {
    /// Parses and validates a mapping file. `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Mapping> {
        let mut mapping: Mapping = toml::from_str(text)
            .map_err(|e| CatalogError::mapping(file, e.to_string().trim_end().to_string()))?;
        mapping.file = file.to_string();
        mapping.validate()?;
        Ok(mapping)
    }

    /// The built-in mappings.
    pub fn builtin() -> Result<Vec<Mapping>> {
        BUILTIN_MAPPINGS
            .iter()
            .map(|(file, text)| Mapping::parse(file, text))
            .collect()
    }

    /// The name of the raw (de-duplicated) table of one source kind, in schema `raw`.
    pub fn raw_table(&self, source: &str) -> String {
        format!("{}_{}", self.name, source)
    }

    fn validate(&self) -> Result<()> {
        let err = |reason: String| CatalogError::mapping(&self.file, reason);
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(err(format!(
                "name '{}' must be lower-case letters, digits and '_'",
                self.name
            )));
        }
        for (kind, source) in &self.sources {
            if source.key.is_empty() {
                return Err(err(format!("sources.{kind}.key is empty")));
            }
            for key in &source.key {
                if !source.columns.contains_key(key) {
                    return Err(err(format!(
                        "sources.{kind}.key names '{key}', which is not in sources.{kind}.columns"
                    )));
                }
            }
            for (column, ty) in &source.columns {
                if ColumnType::parse(ty).is_none() {
                    return Err(err(format!(
                        "sources.{kind}.columns.\"{column}\": unknown type '{ty}' \
                         (string, int, double, decimal(p,s), timestamp, date)"
                    )));
                }
                if column.starts_with('_') || column == "shop_id" || column == "dt" {
                    return Err(err(format!(
                        "sources.{kind}.columns.\"{column}\": the name is reserved for the catalog"
                    )));
                }
            }
            match (self.layout, &source.path) {
                (Layout::Company, None) => {
                    return Err(err(format!(
                        "sources.{kind}.path is required for layout = \"company\""
                    )));
                }
                (Layout::Platform, Some(_)) => {
                    return Err(err(format!(
                        "sources.{kind}.path is only for layout = \"company\" (platform files live in exports/{}/{kind}/)",
                        self.name
                    )));
                }
                _ => {}
            }
        }
        for (view, parts) in &self.views {
            let Some(unified) = unified_view(view) else {
                return Err(err(format!(
                    "views.{view}: there is no unified view of that name"
                )));
            };
            for (i, part) in parts.iter().enumerate() {
                for column in part.columns.keys() {
                    if unified.column(column).is_none() {
                        return Err(err(format!(
                            "views.{view}[{i}].columns.{column}: the unified view {view} has no such column"
                        )));
                    }
                }
                for column in unified.columns {
                    let implied = column.name == "platform" && self.layout == Layout::Platform;
                    if !column.nullable && !implied && !part.columns.contains_key(column.name) {
                        return Err(err(format!(
                            "views.{view}[{i}].columns: the required column '{}' is not mapped",
                            column.name
                        )));
                    }
                }
                for text in [Some(&part.from), part.filter.as_ref()]
                    .into_iter()
                    .flatten()
                {
                    self.expand(text).map_err(&err)?;
                }
                let read = self.sources_read_by(part);
                match (read.as_slice(), &part.joined_delivery) {
                    ([_, _], None) => {
                        return Err(err(format!(
                            "views.{view}[{i}] reads two sources ({}): set joined_delivery to \
                             the delivery of the one `delivery` does not name (e.g. \
                             \"o._delivery\"), so that a new delivery of either is seen",
                            read.join(", ")
                        )));
                    }
                    ([_, _, _, ..], _) => {
                        return Err(err(format!(
                            "views.{view}[{i}] reads {} sources ({}): a part may join at most \
                             two; make a part per pair, or join in a wider source",
                            read.len(),
                            read.join(", ")
                        )));
                    }
                    ([] | [_], Some(_)) => {
                        return Err(err(format!(
                            "views.{view}[{i}].joined_delivery: the part reads one source only"
                        )));
                    }
                    _ => {}
                }
                match &part.group {
                    None if read.len() == 2 => {
                        return Err(err(format!(
                            "views.{view}[{i}] reads two sources ({}): set group to the \
                             columns both have by which its rows are made together (e.g. \
                             [\"订单编号\"]), so that a new delivery of either maps the group again",
                            read.join(", ")
                        )));
                    }
                    Some(columns) => {
                        if columns.is_empty() {
                            return Err(err(format!("views.{view}[{i}].group: no column")));
                        }
                        for kind in &read {
                            let has = |c: &String| {
                                self.sources
                                    .get(*kind)
                                    .is_some_and(|s| s.columns.contains_key(c))
                            };
                            if let Some(missing) = columns.iter().find(|c| !has(c)) {
                                return Err(err(format!(
                                    "views.{view}[{i}].group: source {kind} has no column \
                                     '{missing}'"
                                )));
                            }
                        }
                    }
                    None => {}
                }
            }
        }
        Ok(())
    }

    /// The distinct sources one part reads (`{source}` in its `from` and `where`), by name.
    pub fn sources_read_by(&self, part: &ViewPart) -> Vec<&str> {
        self.sources
            .keys()
            .filter(|kind| {
                let placeholder = format!("{{{kind}}}");
                part.from.contains(&placeholder)
                    || part
                        .filter
                        .as_deref()
                        .is_some_and(|f| f.contains(&placeholder))
            })
            .map(String::as_str)
            .collect()
    }

    /// How many times the view parts read each source (`{source}` in their `from` and
    /// `where`): the de-duplication of a source read more than once runs once per read unless
    /// its rows are materialized first (what the ledger build does).
    pub fn source_reads(&self) -> BTreeMap<&str, usize> {
        let mut reads = BTreeMap::new();
        for part in self.views.values().flatten() {
            let texts = std::iter::once(part.from.as_str()).chain(part.filter.as_deref());
            for text in texts {
                for kind in self.sources.keys() {
                    let n = text.matches(&format!("{{{kind}}}")).count();
                    if n > 0 {
                        *reads.entry(kind.as_str()).or_insert(0) += n;
                    }
                }
            }
        }
        reads
    }

    /// Replaces `{source}` with the de-duplicated raw table and `{map.name}` with the value
    /// map as a `(key, value)` relation.
    pub fn expand(&self, text: &str) -> std::result::Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                return Ok(out);
            };
            let name = &after[..end];
            if let Some(map) = name.strip_prefix("map.") {
                let Some(entries) = self.maps.get(map) else {
                    return Err(format!("{{{name}}}: there is no [maps.{map}]"));
                };
                out.push_str(&values_relation(entries));
            } else if self.sources.contains_key(name) {
                out.push_str(&format!("raw.\"{}\"", self.raw_table(name)));
            } else if name.chars().all(|c| c.is_alphanumeric() || c == '_') && !name.is_empty() {
                return Err(format!("{{{name}}}: there is no [sources.{name}]"));
            } else {
                out.push('{');
                out.push_str(name);
                out.push('}');
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// A value map as an inline relation with columns `key` and `value`.
fn values_relation(entries: &BTreeMap<String, String>) -> String {
    if entries.is_empty() {
        return "(SELECT arrow_cast(NULL, 'Utf8') AS key, arrow_cast(NULL, 'Utf8') AS value WHERE false)"
            .to_string();
    }
    let rows: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("({}, {})", sql_string(k), sql_string(v)))
        .collect();
    format!(
        "(SELECT arrow_cast(column1, 'Utf8') AS key, arrow_cast(column2, 'Utf8') AS value FROM (VALUES {}))",
        rows.join(", ")
    )
}

/// A SQL string literal.
pub fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A SQL quoted identifier.
pub(crate) fn sql_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_mappings_are_valid() {
        let mappings = Mapping::builtin().expect("built-in mappings parse");
        assert_eq!(mappings.len(), BUILTIN_MAPPINGS.len());
    }

    #[test]
    fn errors_name_the_key() {
        let text = "name = \"x\"\nlayout = \"platform\"\n[sources.orders]\nkey = [\"id\"]\ncolumns = { id = \"strnig\" }\n";
        let e = Mapping::parse("x.toml", text)
            .expect_err("bad type")
            .to_string();
        assert!(
            e.contains("x.toml") && e.contains("sources.orders.columns.\"id\""),
            "{e}"
        );
        let e = Mapping::parse("x.toml", "name = \"x\"\nlayout = \"sideways\"\n")
            .expect_err("bad layout")
            .to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn a_part_that_joins_two_sources_names_both_deliveries() {
        let mapping = |part: &str| {
            format!(
                "name = \"x\"\nlayout = \"platform\"\n\
                 [sources.orders]\nkey = [\"id\"]\ncolumns = {{ id = \"string\" }}\n\
                 [sources.items]\nkey = [\"lid\"]\ncolumns = {{ lid = \"string\", id = \"string\" }}\n\
                 [[views.refunds]]\n{part}\n\
                 columns = {{ shop_id = \"i.shop_id\", order_id = \"i.id\", line_id = \"i.lid\", \
                 amount = \"0\", refunded_at = \"NULL\", kind = \"'x'\" }}\n"
            )
        };
        let joined = "from = \"{items} i JOIN {orders} o ON o.id = i.id\"";
        let e = Mapping::parse("x.toml", &mapping(joined))
            .expect_err("no joined_delivery")
            .to_string();
        assert!(
            e.contains("views.refunds[0] reads two sources (items, orders)")
                && e.contains("joined_delivery"),
            "{e}"
        );
        let named =
            format!("{joined}\ndelivery = \"i._delivery\"\njoined_delivery = \"o._delivery\"");
        let e = Mapping::parse("x.toml", &mapping(&named))
            .expect_err("no group")
            .to_string();
        assert!(e.contains("set group"), "{e}");
        let e = Mapping::parse("x.toml", &mapping(&format!("{named}\ngroup = [\"lid\"]")))
            .expect_err("a group column one source lacks")
            .to_string();
        assert!(e.contains("source orders has no column 'lid'"), "{e}");
        let named = format!("{named}\ngroup = [\"id\"]");
        let parsed = Mapping::parse("x.toml", &mapping(&named)).expect("both named");
        assert_eq!(
            parsed.views["refunds"][0].joined_delivery.as_deref(),
            Some("o._delivery")
        );
        let single = "from = \"{items} i\"\njoined_delivery = \"i._delivery\"";
        let e = Mapping::parse("x.toml", &mapping(single))
            .expect_err("one source")
            .to_string();
        assert!(e.contains("reads one source only"), "{e}");
    }

    #[test]
    fn column_types_parse() {
        assert_eq!(
            ColumnType::parse("decimal(18, 2)"),
            Some(ColumnType::Decimal(18, 2))
        );
        assert_eq!(ColumnType::parse("decimal(2, 3)"), None);
        assert_eq!(ColumnType::parse("Timestamp"), Some(ColumnType::Timestamp));
    }
}
