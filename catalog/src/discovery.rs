//! Discovery: which files of the warehouse are served, and which are rejected and why.
//!
//! ```text
//! list the warehouse ──► classify by path ──► read each Parquet footer ──► number deliveries
//!                         │ exports/<platform>/<kind>/shop=<id>/dt=<date>/…   (platform mappings)
//!                         │ <source path>/…                                   (company mapping)
//!                         └ anything else under exports/, erp/, logistics/, finance/: rejected
//! ```
//!
//! A file is rejected — left out, with a reason naming the file and the column — when its
//! platform or kind has no mapping, its path does not follow the layout, its footer cannot be
//! read, or a declared column is missing or of another type. Everything else stays served.
//!
//! Deliveries are numbered once for the whole warehouse after sorting by (mapping, kind, `dt`,
//! file name, path), so within a kind a larger number is a newer delivery (exports.md: "delivery
//! order is the file's dt, then its file name"), and the number also names the file.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStore};

use crate::error::{CatalogError, Result};
use crate::mapping::{ColumnType, Layout, Mapping};
use crate::warehouse::Warehouse;

/// Top-level folders of the warehouse whose files must all be understood.
const DATA_ROOTS: &[&str] = &["exports", "erp", "logistics", "finance"];

/// How many footers are read at once (object stores are latency-bound).
const FOOTER_CONCURRENCY: usize = 16;

/// A data file that is served.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Mapping name (`tmall`, `company`).
    pub mapping: String,
    /// Source kind (`orders`).
    pub source: String,
    /// The object.
    pub meta: ObjectMeta,
    /// Path below the warehouse root.
    pub path: String,
    /// `shop=` partition (platform layout).
    pub shop_id: Option<String>,
    /// `dt=` partition as days since 1970-01-01 (platform layout).
    pub dt: Option<i32>,
    /// Delivery number: unique in the warehouse, increasing with delivery order within a kind.
    pub delivery: i64,
}

/// A file that is not served, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rejection {
    /// Path below the warehouse root.
    pub path: String,
    /// What is wrong, naming the column where one is at fault.
    pub reason: String,
}

/// What discovery found.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// Served files, in delivery order.
    pub files: Vec<SourceFile>,
    /// Rejected files, by path.
    pub rejections: Vec<Rejection>,
}

struct Candidate {
    mapping: usize,
    source: String,
    meta: ObjectMeta,
    path: String,
    shop_id: Option<String>,
    dt: Option<i32>,
}

enum Classified {
    Candidate(Candidate),
    Rejected(Rejection),
    Ignored,
}

/// Lists and validates every data file of the warehouse.
pub async fn discover(warehouse: &Warehouse, mappings: &[Mapping]) -> Result<Discovery> {
    let store = Arc::clone(warehouse.store());
    let mut objects: Vec<ObjectMeta> = store
        .list(Some(warehouse.prefix()))
        .try_collect()
        .await
        .map_err(|source| CatalogError::ObjectStore {
            location: warehouse.location().to_string(),
            source,
        })?;
    objects.sort_by(|a, b| a.location.cmp(&b.location));

    let mut rejections = Vec::new();
    let mut candidates = Vec::new();
    for meta in objects {
        match classify(warehouse, mappings, meta) {
            Classified::Candidate(c) => candidates.push(c),
            Classified::Rejected(r) => rejections.push(r),
            Classified::Ignored => {}
        }
    }

    let checked: Vec<(Candidate, std::result::Result<(), String>)> =
        futures::stream::iter(candidates)
            .map(|candidate| {
                let store = Arc::clone(&store);
                let source = &mappings[candidate.mapping].sources[&candidate.source];
                async move {
                    let verdict = match read_schema(store, &candidate.meta).await {
                        Ok(schema) => check_columns(&source.columns, &schema),
                        Err(e) => Err(format!("not a readable Parquet file: {e}")),
                    };
                    (candidate, verdict)
                }
            })
            .buffered(FOOTER_CONCURRENCY)
            .collect()
            .await;

    let mut served = Vec::new();
    for (candidate, verdict) in checked {
        match verdict {
            Ok(()) => served.push(candidate),
            Err(reason) => rejections.push(Rejection {
                path: candidate.path,
                reason,
            }),
        }
    }
    served.sort_by(|a, b| {
        let key = |c: &Candidate| {
            let name = c.path.rsplit('/').next().unwrap_or_default().to_string();
            (
                mappings[c.mapping].name.clone(),
                c.source.clone(),
                c.dt,
                name,
                c.path.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    let files = served
        .into_iter()
        .zip(1i64..)
        .map(|(c, delivery)| SourceFile {
            mapping: mappings[c.mapping].name.clone(),
            source: c.source,
            meta: c.meta,
            path: c.path,
            shop_id: c.shop_id,
            dt: c.dt,
            delivery,
        })
        .collect();
    rejections.sort();
    Ok(Discovery { files, rejections })
}

fn classify(warehouse: &Warehouse, mappings: &[Mapping], meta: ObjectMeta) -> Classified {
    // The path parts borrow the location, and `meta` moves into the candidate below.
    let location = meta.location.clone();
    let Some(parts) = warehouse.relative(&location) else {
        return Classified::Ignored;
    };
    let path = parts.join("/");
    let file_name = parts.last().copied().unwrap_or_default();
    // Writers' markers and temporary files (_SUCCESS, .part-….crc) are not data.
    if file_name.starts_with('_') || file_name.starts_with('.') {
        return Classified::Ignored;
    }
    let Some(&root) = parts.first() else {
        return Classified::Ignored;
    };
    if !DATA_ROOTS.contains(&root) {
        return Classified::Ignored;
    }
    let reject = |reason: String| {
        Classified::Rejected(Rejection {
            path: path.clone(),
            reason,
        })
    };
    if !file_name.ends_with(".parquet") {
        return reject("not a .parquet file".to_string());
    }

    if root == "exports" {
        let layout = "expected exports/<platform>/<kind>/shop=<id>/dt=<YYYY-MM-DD>/<file>.parquet";
        let [_, platform, kind, shop, dt, _file] = parts.as_slice() else {
            return reject(format!("unexpected path: {layout}"));
        };
        let Some((index, mapping)) = mappings
            .iter()
            .enumerate()
            .find(|(_, m)| m.layout == Layout::Platform && m.name == *platform)
        else {
            return reject(format!(
                "unknown platform '{platform}': no mapping for it (add model/mappings/{platform}.toml)"
            ));
        };
        if !mapping.sources.contains_key(*kind) {
            let known: Vec<&str> = mapping.sources.keys().map(String::as_str).collect();
            return reject(format!(
                "platform '{platform}' has no export kind '{kind}' (known: {})",
                known.join(", ")
            ));
        }
        let Some(shop_id) = shop.strip_prefix("shop=").filter(|s| !s.is_empty()) else {
            return reject(format!("missing shop=<id> partition: {layout}"));
        };
        let Some(dt_text) = dt.strip_prefix("dt=") else {
            return reject(format!("missing dt=<YYYY-MM-DD> partition: {layout}"));
        };
        let dt = match ScalarValue::try_from_string(dt_text.to_string(), &DataType::Date32) {
            Ok(ScalarValue::Date32(Some(days))) if dt_text.len() == 10 => days,
            _ => return reject(format!("dt={dt_text} is not a date (YYYY-MM-DD)")),
        };
        return Classified::Candidate(Candidate {
            mapping: index,
            source: kind.to_string(),
            meta,
            path: path.clone(),
            shop_id: Some(shop_id.to_string()),
            dt: Some(dt),
        });
    }

    for (index, mapping) in mappings
        .iter()
        .enumerate()
        .filter(|(_, m)| m.layout == Layout::Company)
    {
        for (kind, source) in &mapping.sources {
            let Some(dir) = &source.path else { continue };
            let dir = dir.trim_matches('/');
            if path.starts_with(dir) && path[dir.len()..].starts_with('/') {
                return Classified::Candidate(Candidate {
                    mapping: index,
                    source: kind.clone(),
                    meta,
                    path: path.clone(),
                    shop_id: None,
                    dt: None,
                });
            }
        }
    }
    reject(format!(
        "no source in the company mapping reads files under {root}/ like this one"
    ))
}

async fn read_schema(store: Arc<dyn ObjectStore>, meta: &ObjectMeta) -> Result<SchemaRef, String> {
    let schema = DFParquetMetadata::new(store.as_ref(), meta)
        .fetch_schema()
        .await
        .map_err(|e| e.strip_backtrace())?;
    Ok(Arc::new(schema))
}

/// Checks a file's schema against the declared columns. A missing declared column is reported
/// together with the file's unexpected columns, which is what a renamed column looks like.
fn check_columns(declared: &BTreeMap<String, String>, schema: &SchemaRef) -> Result<(), String> {
    let mut missing = Vec::new();
    for (name, ty) in declared {
        let Some(ty) = ColumnType::parse(ty) else {
            return Err(format!(
                "column '{name}' has an invalid declared type '{ty}'"
            ));
        };
        match schema.field_with_name(name) {
            Ok(field) if ty.accepts(field.data_type()) => {}
            Ok(field) => {
                return Err(format!(
                    "column '{name}' is {}, expected {} (as declared in the mapping)",
                    field.data_type(),
                    ty.served_type()
                ));
            }
            Err(_) => missing.push(name.as_str()),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let unexpected: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| !declared.contains_key(n))
        .collect();
    let mut reason = format!("missing column(s) {}", quoted(&missing));
    if !unexpected.is_empty() {
        let unexpected: Vec<&str> = unexpected.iter().map(String::as_str).collect();
        reason.push_str(&format!(
            "; the file has unexpected column(s) {} — renamed?",
            quoted(&unexpected)
        ));
    }
    Err(reason)
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}
