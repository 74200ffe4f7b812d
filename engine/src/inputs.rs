//! What a ledger build reads, as listed in the object store, and what changed since the
//! published version was built.
//!
//! ```text
//!  list the warehouse (everything but ledger/, cubes/, truth/)
//!        │
//!        ├─► InputListing::fingerprint ─► manifest.inputs   (equal: the published ledger is
//!        │                                                    served again, no build)
//!        └─► ledger/v<N>/_inputs.json  ◄── written with each version
//!                        │
//!  next refresh:  InputChanges::between(_inputs.json of the published version, new listing)
//!                        = added · replaced (same path, other size or time) · removed
//! ```
//!
//! Exports are delivered, not edited (spec/exports.md): a day's exports, a re-delivery or a
//! correction are *added* files. A replaced or removed input is rare (a fix by hand, a model
//! edit) and is reported as such. The change set says what a refresh has to take in, by source
//! kind (`exports/tmall/orders`, `erp/purchases`, `model`); it is what an incremental build
//! scopes its work by, and what `amoeba refresh` prints.

use std::collections::BTreeMap;

use amoeba_catalog::Warehouse;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Folders of the warehouse that are Amoeba's output, not inputs.
const OUTPUTS: [&str; 3] = ["ledger", "cubes", "truth"];

/// One input object as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ListedObject {
    /// Its size in bytes.
    pub size: u64,
    /// When it was last modified (Unix milliseconds).
    pub modified_ms: i64,
}

/// Every input object of a warehouse, by path below the warehouse root
/// (`exports/tmall/orders/shop=…/dt=…/part.parquet`, `model/model.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputListing {
    /// The objects, by path.
    pub objects: BTreeMap<String, ListedObject>,
}

impl InputListing {
    /// Lists every input object of `warehouse` (everything but Amoeba's own output and
    /// hidden folders).
    pub(crate) async fn of(warehouse: &Warehouse) -> Result<InputListing> {
        let prefix = warehouse.prefix();
        let listed: Vec<_> = warehouse
            .store()
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(crate::objects::store_err(prefix))?;
        let objects = listed
            .into_iter()
            .filter_map(|m| {
                let rel: Vec<String> = m
                    .location
                    .prefix_match(prefix)?
                    .map(|p| p.as_ref().to_string())
                    .collect();
                let first = rel.first()?;
                if OUTPUTS.contains(&first.as_str()) || first.starts_with('.') {
                    return None;
                }
                let object = ListedObject {
                    size: m.size,
                    modified_ms: m.last_modified.timestamp_millis(),
                };
                Some((rel.join("/"), object))
            })
            .collect();
        Ok(InputListing { objects })
    }

    /// A fingerprint of the listing and of the program that builds from it (its version and
    /// executable), so that another build of Amoeba never serves a ledger this one did not
    /// make.
    pub(crate) fn fingerprint(&self) -> String {
        let program = std::env::current_exe()
            .and_then(|exe| {
                let meta = std::fs::metadata(&exe)?;
                let modified = meta
                    .modified()?
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default();
                Ok(format!("{} {} {modified}", exe.display(), meta.len()))
            })
            // Not knowing the program makes the fingerprint unique: the ledger is always built.
            .unwrap_or_else(|e| format!("unknown program ({e}) at {}", crate::objects::now_ms()));
        let mut text = format!("amoeba {}\n{program}\n", env!("CARGO_PKG_VERSION"));
        for (path, o) in &self.objects {
            text.push_str(&format!("{path}\t{}\t{}\n", o.size, o.modified_ms));
        }
        crate::fingerprint::of_text(&text)
    }

    /// The listing as stored beside a ledger version (JSON).
    pub(crate) fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self)
            .map_err(|e| crate::error::EngineError::ledger(format!("input listing: {e}")))
    }

    /// A listing stored by [`InputListing::to_json`]; `at` names it in the error.
    pub(crate) fn from_json(bytes: &[u8], at: &str) -> Result<InputListing> {
        serde_json::from_slice(bytes)
            .map_err(|e| crate::error::EngineError::ledger(format!("{at}: {e}")))
    }
}

/// What changed between two listings of a warehouse's inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputChanges {
    /// The version whose listing is the "before".
    pub since: String,
    /// Paths that are new.
    pub added: Vec<String>,
    /// Paths listed before with another size or modification time.
    pub replaced: Vec<String>,
    /// Paths no longer listed.
    pub removed: Vec<String>,
}

impl InputChanges {
    /// The changes from `before` (the listing of version `since`) to `after`.
    pub fn between(since: &str, before: &InputListing, after: &InputListing) -> InputChanges {
        let mut changes = InputChanges {
            since: since.to_string(),
            ..InputChanges::default()
        };
        for (path, now) in &after.objects {
            match before.objects.get(path) {
                None => changes.added.push(path.clone()),
                Some(then) if then != now => changes.replaced.push(path.clone()),
                Some(_) => {}
            }
        }
        changes.removed = before
            .objects
            .keys()
            .filter(|p| !after.objects.contains_key(*p))
            .cloned()
            .collect();
        changes
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.replaced.is_empty() && self.removed.is_empty()
    }

    /// Whether inputs were only added (exports delivered), none replaced or removed.
    pub fn only_added(&self) -> bool {
        self.replaced.is_empty() && self.removed.is_empty()
    }

    /// How many paths of each kind (see [`source_kind`]) were added, replaced and removed.
    pub fn by_kind(&self) -> BTreeMap<String, [usize; 3]> {
        let mut out: BTreeMap<String, [usize; 3]> = BTreeMap::new();
        for (i, paths) in [&self.added, &self.replaced, &self.removed]
            .into_iter()
            .enumerate()
        {
            for path in paths {
                if let Some(count) = out.entry(source_kind(path)).or_default().get_mut(i) {
                    *count += 1;
                }
            }
        }
        out
    }

    /// One line for people: `since v…: 154 added (exports/jd/orders 12, …), 0 replaced, 0 removed`.
    pub fn summary(&self) -> String {
        let kinds = self.by_kind();
        let part = |i: usize, n: usize, what: &str| {
            if n == 0 {
                return format!("0 {what}");
            }
            let list: Vec<String> = kinds
                .iter()
                .filter_map(|(kind, counts)| {
                    let c = counts.get(i).copied().unwrap_or(0);
                    (c > 0).then(|| format!("{kind} {c}"))
                })
                .collect();
            format!("{n} {what} ({})", list.join(", "))
        };
        format!(
            "since {}: {}, {}, {}",
            self.since,
            part(0, self.added.len(), "added"),
            part(1, self.replaced.len(), "replaced"),
            part(2, self.removed.len(), "removed"),
        )
    }
}

/// The kind of input a path is: `exports/<platform>/<kind>` for platform exports, the first
/// two folders otherwise (`erp/purchases`, `finance/expenses`), `model` for the model's files.
pub fn source_kind(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    let depth = match parts.first() {
        Some(&"exports") => 3,
        Some(&"model") => 1,
        _ => 2,
    };
    parts
        .iter()
        .take(depth.min(parts.len().saturating_sub(1)).max(1))
        .copied()
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(items: &[(&str, u64, i64)]) -> InputListing {
        InputListing {
            objects: items
                .iter()
                .map(|(p, size, modified_ms)| {
                    let o = ListedObject {
                        size: *size,
                        modified_ms: *modified_ms,
                    };
                    (p.to_string(), o)
                })
                .collect(),
        }
    }

    #[test]
    fn changes_are_added_replaced_and_removed_paths_counted_by_kind() {
        let before = listing(&[
            ("exports/jd/orders/shop=J1/dt=2025-12-30/a.parquet", 10, 1),
            ("exports/jd/orders/shop=J1/dt=2025-12-31/a.parquet", 10, 1),
            ("erp/purchases/p.parquet", 5, 1),
            ("model/model.toml", 7, 1),
        ]);
        let after = listing(&[
            ("exports/jd/orders/shop=J1/dt=2025-12-30/a.parquet", 10, 1),
            ("exports/jd/orders/shop=J1/dt=2025-12-31/a.parquet", 10, 1),
            ("exports/jd/orders/shop=J1/dt=2026-01-01/a.parquet", 12, 2),
            ("exports/tmall/ads/shop=T1/dt=2026-01-01/a.parquet", 3, 2),
            ("erp/purchases/p.parquet", 6, 2),
        ]);
        let changes = InputChanges::between("v1", &before, &after);
        assert_eq!(
            changes.added,
            vec![
                "exports/jd/orders/shop=J1/dt=2026-01-01/a.parquet",
                "exports/tmall/ads/shop=T1/dt=2026-01-01/a.parquet"
            ]
        );
        assert_eq!(changes.replaced, vec!["erp/purchases/p.parquet"]);
        assert_eq!(changes.removed, vec!["model/model.toml"]);
        assert!(!changes.only_added());
        assert_eq!(
            changes.summary(),
            "since v1: 2 added (exports/jd/orders 1, exports/tmall/ads 1), \
             1 replaced (erp/purchases 1), 1 removed (model 1)"
        );
        assert!(InputChanges::between("v1", &after, &after).is_empty());
    }

    #[test]
    fn a_listing_survives_its_json() {
        let l = listing(&[("finance/hours/h.parquet", 1, -3)]);
        let back = InputListing::from_json(&l.to_json().expect("json"), "t").expect("read");
        assert_eq!(back, l);
        assert_eq!(source_kind("finance/hours/h.parquet"), "finance/hours");
        assert_eq!(source_kind("model/model.toml"), "model");
        assert_eq!(source_kind("model/mappings/x.toml"), "model");
        assert_eq!(source_kind("README"), "README");
    }
}
