//! Cubes at rest: versions, manifests, the atomic publish, recovery and retention.
//!
//! ```text
//!  <warehouse>/cubes/<name>/v<N>/2025-01.parquet        months rebuilt by version N
//!                          v<N>/_manifest.json          every month of version N → its file,
//!                                                       possibly one written by an older version
//!                          _current                     "v<N>"  ◄── written last: the publish
//! ```
//!
//! A refresh writes the months it rebuilds into a new version folder, then the manifest, then
//! `_current`: a reader following `_current` sees a whole cube, the old version or the new one.
//! A build that dies before `_current` leaves a folder newer than the current version, which the
//! next refresh deletes before it starts (recovery). A replaced version stays readable for the
//! cube's retention window (queries running on it finish); then its manifest and every file of
//! it that no retained manifest uses are deleted.

use std::collections::{BTreeMap, BTreeSet};

use amoeba_catalog::Warehouse;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::objects::{self, now_ms, version_number};

/// Where cubes live in the warehouse.
pub const CUBES_DIR: &str = "cubes";
const CURRENT: &str = "_current";
const MANIFEST: &str = "_manifest.json";

/// One month of a cube version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// `YYYY-MM`.
    pub month: String,
    /// The file, relative to the cube's folder (`v17/2025-01.parquet`).
    pub file: String,
    /// Its rows.
    pub rows: u64,
    /// Its rows per grouping set (label → rows): the router reads the smallest set that
    /// answers a query. (Empty in manifests written before it was kept.)
    #[serde(default)]
    pub sets: BTreeMap<String, u64>,
    /// The fingerprint of the inputs it was built from.
    pub input: String,
}

/// What a cube version holds and how it was built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CubeManifest {
    /// The cube.
    pub cube: String,
    /// `v<millis>`.
    pub version: String,
    /// The fingerprint of the definition and dimension tables it was built with.
    pub definition: String,
    /// The ledger version it was built from.
    pub ledger_version: String,
    /// When it was published (Unix milliseconds).
    pub built_at_ms: u64,
    /// How long the refresh took.
    pub build_ms: u64,
    /// The months this version rebuilt (the others are carried over).
    pub rebuilt: Vec<String>,
    /// Every month, in order.
    pub partitions: Vec<Partition>,
}

impl CubeManifest {
    /// Rows over every month.
    pub fn rows(&self) -> u64 {
        self.partitions.iter().map(|p| p.rows).sum()
    }

    /// Rows per grouping set over every month (empty if the manifest does not say).
    pub fn set_rows(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for p in &self.partitions {
            for (set, rows) in &p.sets {
                *out.entry(set.clone()).or_insert(0) += rows;
            }
        }
        out
    }
}

fn cube_dir(cube: &str) -> String {
    format!("{CUBES_DIR}/{cube}")
}

/// The path of a file of a cube, relative to the warehouse.
pub(crate) fn cube_file(cube: &str, file: &str) -> String {
    format!("{}/{file}", cube_dir(cube))
}

/// The current version of `cube`, if any.
pub(crate) async fn current_version(warehouse: &Warehouse, cube: &str) -> Result<Option<String>> {
    Ok(
        objects::read(warehouse, &format!("{}/{CURRENT}", cube_dir(cube)))
            .await?
            .map(|b| String::from_utf8_lossy(&b).trim().to_string()),
    )
}

async fn read_manifest(
    warehouse: &Warehouse,
    cube: &str,
    version: &str,
) -> Result<Option<CubeManifest>> {
    let rel = format!("{}/{version}/{MANIFEST}", cube_dir(cube));
    match objects::read(warehouse, &rel).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| EngineError::Cube {
                cube: cube.to_string(),
                reason: format!("{rel}: {e}"),
            }),
    }
}

/// The manifest of the current version of `cube`, if one is published.
pub async fn current_manifest(warehouse: &Warehouse, cube: &str) -> Result<Option<CubeManifest>> {
    match current_version(warehouse, cube).await? {
        Some(v) => read_manifest(warehouse, cube, &v).await,
        None => Ok(None),
    }
}

/// Deletes the folders of builds that never published (newer than the current version);
/// returns their names.
pub(crate) async fn recover(warehouse: &Warehouse, cube: &str) -> Result<Vec<String>> {
    let current = current_version(warehouse, cube)
        .await?
        .and_then(|v| version_number(&v))
        .unwrap_or(0);
    let mut removed = Vec::new();
    for (n, dir) in objects::versions(warehouse, &cube_dir(cube)).await? {
        if n > current {
            objects::remove_dir(warehouse, &dir).await?;
            removed.push(format!("v{n}"));
        }
    }
    Ok(removed)
}

/// Writes a month's Parquet file into `version`; returns its path relative to the cube.
pub(crate) async fn write_partition(
    warehouse: &Warehouse,
    cube: &str,
    version: &str,
    month: &str,
    parquet: Vec<u8>,
) -> Result<String> {
    let file = format!("{version}/{month}.parquet");
    objects::write(warehouse, &cube_file(cube, &file), parquet).await?;
    Ok(file)
}

/// Publishes `manifest`: the manifest, then `_current`.
pub(crate) async fn publish(warehouse: &Warehouse, manifest: &CubeManifest) -> Result<()> {
    let dir = cube_dir(&manifest.cube);
    let json = serde_json::to_vec_pretty(manifest).map_err(|e| EngineError::Cube {
        cube: manifest.cube.clone(),
        reason: format!("manifest: {e}"),
    })?;
    objects::write(
        warehouse,
        &format!("{dir}/{}/{MANIFEST}", manifest.version),
        json,
    )
    .await?;
    objects::write(
        warehouse,
        &format!("{dir}/{CURRENT}"),
        manifest.version.clone().into_bytes(),
    )
    .await
}

/// Removes what the retention window no longer keeps: versions replaced more than `retention`
/// ago, except the files a kept version still uses. Returns the versions removed.
pub(crate) async fn apply_retention(
    warehouse: &Warehouse,
    cube: &str,
    retention: std::time::Duration,
) -> Result<Vec<String>> {
    let Some(current) = current_version(warehouse, cube).await? else {
        return Ok(Vec::new());
    };
    let current_n = version_number(&current).unwrap_or(0);
    let versions = objects::versions(warehouse, &cube_dir(cube)).await?;
    let now = u128::from(now_ms());
    // A version is replaced when the next one is published (its number is its publish time).
    let mut expired = Vec::new();
    let mut kept = Vec::new();
    for (i, (n, dir)) in versions.iter().enumerate() {
        let replaced_at = versions.get(i + 1).map(|(next, _)| *next);
        let keep = *n >= current_n
            || replaced_at.is_some_and(|r| now.saturating_sub(r) < retention.as_millis());
        if keep {
            kept.push(format!("v{n}"));
        } else {
            expired.push((format!("v{n}"), dir.clone()));
        }
    }
    let mut used: BTreeSet<String> = BTreeSet::new();
    for v in &kept {
        if let Some(m) = read_manifest(warehouse, cube, v).await? {
            used.extend(m.partitions.into_iter().map(|p| p.file));
        }
    }
    let mut removed = Vec::new();
    for (version, dir) in expired {
        let files = objects::list(warehouse, &dir).await?;
        let mut all_gone = true;
        for f in files {
            let name = f.filename().unwrap_or_default().to_string();
            if used.contains(&format!("{version}/{name}")) {
                all_gone = false;
            } else {
                objects::delete(warehouse, &f).await?;
            }
        }
        if all_gone {
            objects::remove_dir(warehouse, &dir).await?;
            removed.push(version);
        }
    }
    Ok(removed)
}

/// Month → input fingerprint of a manifest.
pub(crate) fn inputs(manifest: &CubeManifest) -> BTreeMap<String, String> {
    manifest
        .partitions
        .iter()
        .map(|p| (p.month.clone(), p.input.clone()))
        .collect()
}
