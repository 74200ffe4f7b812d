//! Reading and writing Amoeba's own files in the warehouse (the ledger, cubes, manifests)
//! through its object store, local or S3 alike.

use amoeba_catalog::Warehouse;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use crate::error::{EngineError, Result};

/// The object path of `rel` (`ledger/v1/_manifest.json`) under the warehouse's prefix.
pub(crate) fn path(warehouse: &Warehouse, rel: &str) -> Path {
    rel.split('/')
        .filter(|p| !p.is_empty())
        .fold(warehouse.prefix().clone(), |p, part| p.join(part))
}

/// The URL of the folder `rel`, for DataFusion (`file:///…/ledger/v1/`, `s3://b/…/`).
pub(crate) fn dir_url(warehouse: &Warehouse, rel: &str) -> String {
    format!(
        "{}{}/",
        warehouse.store_url().as_str(),
        path(warehouse, rel)
    )
}

/// The URL of the file `rel`.
pub(crate) fn file_url(warehouse: &Warehouse, rel: &str) -> String {
    format!("{}{}", warehouse.store_url().as_str(), path(warehouse, rel))
}

/// Turns a store error into one naming the object.
pub(crate) fn store_err(location: &Path) -> impl Fn(object_store::Error) -> EngineError + '_ {
    move |source| EngineError::Store {
        location: location.to_string(),
        source,
    }
}

/// The bytes of `rel`, or `None` when it does not exist.
pub(crate) async fn read(warehouse: &Warehouse, rel: &str) -> Result<Option<Vec<u8>>> {
    let at = path(warehouse, rel);
    match warehouse.store().get(&at).await {
        Ok(got) => Ok(Some(got.bytes().await.map_err(store_err(&at))?.to_vec())),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(store_err(&at)(e)),
    }
}

/// Writes `bytes` to `rel` (one put: an object is either absent or whole).
pub(crate) async fn write(warehouse: &Warehouse, rel: &str, bytes: Vec<u8>) -> Result<()> {
    let at = path(warehouse, rel);
    warehouse
        .store()
        .put(&at, PutPayload::from(bytes))
        .await
        .map_err(store_err(&at))?;
    Ok(())
}

/// The sub-folders of `rel` named `v<number>`, by number.
pub(crate) async fn versions(warehouse: &Warehouse, rel: &str) -> Result<Vec<(u128, Path)>> {
    let dir = path(warehouse, rel);
    let listing = warehouse
        .store()
        .list_with_delimiter(Some(&dir))
        .await
        .map_err(store_err(&dir))?;
    let mut versions: Vec<(u128, Path)> = listing
        .common_prefixes
        .into_iter()
        .filter_map(|p| {
            let n = version_number(p.filename()?)?;
            Some((n, p))
        })
        .collect();
    versions.sort();
    Ok(versions)
}

/// `v123` → 123.
pub(crate) fn version_number(version: &str) -> Option<u128> {
    version.strip_prefix('v')?.parse().ok()
}

/// Unix time in milliseconds.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A new version name: the time in milliseconds, and always after `after`.
pub(crate) fn next_version(after: Option<&str>) -> String {
    let millis = u128::from(now_ms());
    let floor = after.and_then(version_number).map_or(0, |n| n + 1);
    format!("v{}", millis.max(floor))
}

/// Deletes every object under the folder `dir`.
pub(crate) async fn remove_dir(warehouse: &Warehouse, dir: &Path) -> Result<()> {
    for f in list(warehouse, dir).await? {
        delete(warehouse, &f).await?;
    }
    // A local file system keeps the emptied folders; object stores have none.
    if warehouse.store_url().as_str().starts_with("file://") {
        let _ = std::fs::remove_dir_all(format!("/{dir}"));
    }
    Ok(())
}

/// The objects under the folder `dir`.
pub(crate) async fn list(warehouse: &Warehouse, dir: &Path) -> Result<Vec<Path>> {
    use futures::TryStreamExt;
    let files: Vec<_> = warehouse
        .store()
        .list(Some(dir))
        .try_collect()
        .await
        .map_err(store_err(dir))?;
    Ok(files.into_iter().map(|f| f.location).collect())
}

/// Deletes one object.
pub(crate) async fn delete(warehouse: &Warehouse, at: &Path) -> Result<()> {
    warehouse.store().delete(at).await.map_err(store_err(at))
}

/// Copies one object to `to` (within the warehouse's store).
pub(crate) async fn copy(warehouse: &Warehouse, from: &Path, to: &Path) -> Result<()> {
    warehouse
        .store()
        .copy(from, to)
        .await
        .map_err(store_err(from))
}
