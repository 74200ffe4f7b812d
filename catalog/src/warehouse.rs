//! The warehouse: where exports land, as an object store.
//!
//! A local directory (`./warehouse`, `/data/wh`, `file:///data/wh`) or an S3 URL
//! (`s3://bucket/prefix`). S3 credentials, region and endpoint come from the usual AWS
//! environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL` for S3-compatible stores such as MinIO or moto).

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::prelude::SessionContext;
use std::str::FromStr;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use url::Url;

use crate::error::{CatalogError, Result};

/// An opened warehouse location.
#[derive(Debug, Clone)]
pub struct Warehouse {
    location: String,
    store: Arc<dyn ObjectStore>,
    store_url: ObjectStoreUrl,
    prefix: Path,
}

impl Warehouse {
    /// Opens `location`: a local path, `file://…` or `s3://bucket/prefix` (configured from
    /// the AWS environment variables).
    pub fn open(location: &str) -> Result<Warehouse> {
        Warehouse::open_with_options(location, &[])
    }

    /// Like [`Warehouse::open`], with S3 settings that override the environment, as
    /// `object_store` config keys (`aws_endpoint`, `aws_access_key_id`, `aws_secret_access_key`,
    /// `aws_region`, `aws_allow_http`, …).
    pub fn open_with_options(location: &str, s3_options: &[(&str, &str)]) -> Result<Warehouse> {
        let invalid = |reason: String| CatalogError::InvalidWarehouse {
            location: location.to_string(),
            reason,
        };
        if location.starts_with("s3://") {
            let url = Url::parse(location).map_err(|e| invalid(e.to_string()))?;
            let bucket = url
                .host_str()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| invalid("no bucket in the URL".to_string()))?
                .to_string();
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(&bucket);
            for var in ["AWS_ENDPOINT_URL", "AWS_ENDPOINT"] {
                if let Ok(endpoint) = std::env::var(var) {
                    builder = builder
                        .with_allow_http(endpoint.starts_with("http://"))
                        .with_endpoint(endpoint);
                    break;
                }
            }
            if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err()
            {
                builder = builder.with_region("us-east-1");
            }
            for (key, value) in s3_options {
                let key = AmazonS3ConfigKey::from_str(key)
                    .map_err(|e| invalid(format!("S3 option '{key}': {e}")))?;
                builder = builder.with_config(key, *value);
            }
            let store = builder.build().map_err(|e| invalid(e.to_string()))?;
            let store_url = ObjectStoreUrl::parse(format!("s3://{bucket}"))?;
            let prefix =
                Path::parse(url.path().trim_matches('/')).map_err(|e| invalid(e.to_string()))?;
            return Ok(Warehouse {
                location: location.to_string(),
                store: Arc::new(store),
                store_url,
                prefix,
            });
        }
        if let Some((scheme, _)) = location.split_once("://")
            && scheme != "file"
        {
            return Err(invalid(format!(
                "unsupported scheme '{scheme}' (use a local path, file:// or s3://)"
            )));
        }
        let path = PathBuf::from(location.strip_prefix("file://").unwrap_or(location));
        let path = path.canonicalize().map_err(|e| invalid(format!("{e}")))?;
        if !path.is_dir() {
            return Err(invalid("not a directory".to_string()));
        }
        let prefix = Path::from_absolute_path(&path).map_err(|e| invalid(e.to_string()))?;
        Ok(Warehouse {
            location: location.to_string(),
            store: Arc::new(LocalFileSystem::new()),
            store_url: ObjectStoreUrl::local_filesystem(),
            prefix,
        })
    }

    /// The location as given.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The URL DataFusion knows the store by.
    pub fn store_url(&self) -> &ObjectStoreUrl {
        &self.store_url
    }

    /// The warehouse root inside the store.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The parts of `path` below the warehouse root (`["exports", "tmall", …]`), or `None`
    /// when the path is not inside the warehouse.
    pub fn relative<'a>(&self, path: &'a Path) -> Option<Vec<&'a str>> {
        let parts: Vec<&'a str> = path.as_ref().split('/').collect();
        if self.prefix.as_ref().is_empty() {
            return Some(parts);
        }
        let root: Vec<&str> = self.prefix.as_ref().split('/').collect();
        (parts.len() > root.len() && parts[..root.len()] == root[..])
            .then(|| parts[root.len()..].to_vec())
    }

    /// Makes the store known to a session, so that scans can read it.
    pub fn register(&self, ctx: &SessionContext) {
        let url: &Url = self.store_url.as_ref();
        ctx.register_object_store(url, Arc::clone(&self.store));
    }
}
