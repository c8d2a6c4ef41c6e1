//! The archive's copy in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, Cloudflare
//! R2, ...), through the `object_store` crate.
//!
//! The object store is the archive of record; the local archive directory is its working copy,
//! the one DuckDB reads in place (this build has no network Parquet reader). Objects mirror
//! the directory layout under the URL's prefix:
//!
//! ```text
//! s3://BUCKET/PREFIX/<org>/<kind>/<YYYY-MM-DD>/part-<position>.parquet
//! s3://BUCKET/PREFIX/<org>/<kind>/<YYYY-MM-DD>/part-<position>.json
//! ```
//! A part is uploaded before its manifest, and the manifest before the local manifest that
//! lets the hot rows go: an object without its manifest is a leftover the next run deletes.
//! Credentials come from the standard AWS environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, or an instance/container role), or from
//! `access_key_id` and a `secret_access_key_file` readable only by Signet; the secret itself
//! is never in signet.toml, and never logged.

use std::path::Path;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::{io_err, Result, StoreError};

/// Where an archive or an export goes in an object store (a signet.toml table).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStoreSettings {
    /// `s3://BUCKET` or `s3://BUCKET/PREFIX`.
    pub url: String,
    /// Endpoint of an S3-compatible service (`https://minio.example.net:9000`); default AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Default: `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Allow an `http://` endpoint (credentials and data in clear): for a loopback test server.
    #[serde(default)]
    pub allow_http: bool,
    /// The access key id, when not taken from the environment.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// A file holding the secret access key (with `access_key_id`).
    #[serde(default)]
    pub secret_access_key_file: Option<std::path::PathBuf>,
}

impl ObjectStoreSettings {
    /// The bucket and the key prefix (without surrounding slashes) of `url`.
    fn bucket_and_prefix(&self) -> std::result::Result<(String, String), String> {
        let rest = self
            .url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("object store url {:?}: expected s3://BUCKET[/PREFIX]", self.url))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("object store url {:?}: no bucket", self.url));
        }
        Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
    }

    /// Checks the settings without connecting.
    pub fn check(&self) -> std::result::Result<(), String> {
        self.bucket_and_prefix()?;
        if let Some(endpoint) = &self.endpoint {
            if endpoint.starts_with("http://") && !self.allow_http {
                return Err(format!(
                    "object store endpoint {endpoint}: plain http needs allow_http = true (credentials and data \
                     travel in clear)"
                ));
            }
            if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
                return Err(format!("object store endpoint {endpoint:?}: expected http:// or https://"));
            }
        }
        if self.access_key_id.is_some() != self.secret_access_key_file.is_some() {
            return Err("object store: access_key_id and secret_access_key_file go together".into());
        }
        Ok(())
    }
}

fn remote_err(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Io { path: what.to_string(), source: std::io::Error::other(err.to_string()) }
}

/// An object store with a key prefix, driven from synchronous code (the archive runs on
/// blocking threads) through a small runtime of its own.
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("url", &self.url).finish()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is not allowed on an async thread.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Remote {
    pub fn open(settings: &ObjectStoreSettings) -> Result<Remote> {
        settings.check().map_err(|e| remote_err(&settings.url, e))?;
        let (bucket, prefix) = settings.bucket_and_prefix().map_err(|e| remote_err(&settings.url, e))?;
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&bucket).with_allow_http(settings.allow_http);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
        }
        if let Some(region) = &settings.region {
            builder = builder.with_region(region);
        }
        if let (Some(id), Some(file)) = (&settings.access_key_id, &settings.secret_access_key_file) {
            let secret = std::fs::read_to_string(file).map_err(io_err(file))?;
            builder = builder.with_access_key_id(id).with_secret_access_key(secret.trim());
        }
        let store = builder.build().map_err(|e| remote_err(&settings.url, e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("signet-object-store")
            .enable_all()
            .build()
            .map_err(|e| remote_err(&settings.url, e))?;
        Ok(Remote { store: Arc::new(store), prefix, url: settings.url.clone(), runtime: Some(runtime) })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The object's URL, for messages.
    pub fn describe(&self, rel: &str) -> String {
        format!("{}/{rel}", self.url.trim_end_matches('/'))
    }

    fn key(&self, rel: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(rel)
        } else {
            ObjectPath::from(format!("{}/{rel}", self.prefix))
        }
    }

    /// Runs `work` on the store's runtime and waits for it: callable from any thread that may
    /// block (not from inside an async task).
    fn block<T: Send + 'static>(&self, work: impl std::future::Future<Output = T> + Send + 'static) -> T {
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(work.await);
        });
        rx.recv().expect("object store task ended without an answer")
    }

    /// Uploads a local file (multipart above 10 MiB).
    pub fn put_file(&self, rel: &str, local: &Path) -> Result<()> {
        let (store, key, local, what) = (self.store.clone(), self.key(rel), local.to_path_buf(), self.describe(rel));
        self.block(async move {
            let mut file = tokio::fs::File::open(&local).await.map_err(io_err(&local))?;
            let mut writer = BufWriter::new(store, key);
            if let Err(err) = tokio::io::copy(&mut file, &mut writer).await {
                let _ = writer.abort().await;
                return Err(remote_err(&what, err));
            }
            writer.shutdown().await.map_err(|e| remote_err(&what, e))
        })
    }

    pub fn put_bytes(&self, rel: &str, bytes: Vec<u8>) -> Result<()> {
        let (store, key, what) = (self.store.clone(), self.key(rel), self.describe(rel));
        self.block(async move {
            store.put(&key, PutPayload::from(bytes)).await.map(|_| ()).map_err(|e| remote_err(&what, e))
        })
    }

    /// An object's bytes, `None` if there is no such object.
    pub fn get_bytes(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        let (store, key, what) = (self.store.clone(), self.key(rel), self.describe(rel));
        self.block(async move {
            match store.get(&key).await {
                Ok(result) => result.bytes().await.map(|b| Some(b.to_vec())).map_err(|e| remote_err(&what, e)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(err) => Err(remote_err(&what, err)),
            }
        })
    }

    /// Downloads an object to `local` durably (temporary file, fsync, rename) and returns the
    /// SHA-256 of what was written.
    pub fn download(&self, rel: &str, local: &Path) -> Result<String> {
        let (store, key, local, what) = (self.store.clone(), self.key(rel), local.to_path_buf(), self.describe(rel));
        self.block(async move {
            let tmp = local.with_extension("download.tmp");
            let mut file = tokio::fs::File::create(&tmp).await.map_err(io_err(&tmp))?;
            let mut stream = store.get(&key).await.map_err(|e| remote_err(&what, e))?.into_stream();
            let mut hasher = Sha256::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| remote_err(&what, e))?;
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(io_err(&tmp))?;
            }
            file.sync_all().await.map_err(io_err(&tmp))?;
            tokio::fs::rename(&tmp, &local).await.map_err(io_err(&local))?;
            Ok(hex::encode(hasher.finalize()))
        })
    }

    /// The SHA-256 of an object's content, `None` if there is no such object.
    pub fn sha256(&self, rel: &str) -> Result<Option<String>> {
        let (store, key, what) = (self.store.clone(), self.key(rel), self.describe(rel));
        self.block(async move {
            let mut stream = match store.get(&key).await {
                Ok(result) => result.into_stream(),
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(err) => return Err(remote_err(&what, err)),
            };
            let mut hasher = Sha256::new();
            while let Some(chunk) = stream.next().await {
                hasher.update(&chunk.map_err(|e| remote_err(&what, e))?);
            }
            Ok(Some(hex::encode(hasher.finalize())))
        })
    }

    /// Every object under the prefix, as paths relative to it, sorted.
    pub fn list(&self) -> Result<Vec<String>> {
        let (store, what) = (self.store.clone(), self.url.clone());
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        let strip = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        self.block(async move {
            let metas: Vec<_> = store.list(prefix.as_ref()).try_collect().await.map_err(|e| remote_err(&what, e))?;
            let mut out: Vec<String> = metas
                .into_iter()
                .filter_map(|m| m.location.as_ref().strip_prefix(strip.as_str()).map(str::to_string))
                .collect();
            out.sort();
            Ok(out)
        })
    }

    /// Deletes an object; one that is not there is not an error.
    pub fn delete(&self, rel: &str) -> Result<()> {
        let (store, key, what) = (self.store.clone(), self.key(rel), self.describe(rel));
        self.block(async move {
            match store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(err) => Err(remote_err(&what, err)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> ObjectStoreSettings {
        ObjectStoreSettings { url: url.into(), ..ObjectStoreSettings::default() }
    }

    #[test]
    fn urls_name_a_bucket_and_a_prefix() {
        assert_eq!(settings("s3://audit").bucket_and_prefix().unwrap(), ("audit".into(), "".into()));
        assert_eq!(
            settings("s3://audit/signet/prod/").bucket_and_prefix().unwrap(),
            ("audit".into(), "signet/prod".into())
        );
        assert!(settings("s3:///x").check().unwrap_err().contains("no bucket"));
        assert!(settings("gs://audit").check().unwrap_err().contains("expected s3://"));
    }

    #[test]
    fn plain_http_needs_consent() {
        let mut s = settings("s3://audit");
        s.endpoint = Some("http://127.0.0.1:9000".into());
        assert!(s.check().unwrap_err().contains("allow_http"));
        s.allow_http = true;
        s.check().unwrap();
        s.endpoint = Some("minio:9000".into());
        assert!(s.check().unwrap_err().contains("expected http"));
    }
}
