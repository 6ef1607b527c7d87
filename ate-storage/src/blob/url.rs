//! Blob stores named by URL: conveniences that build an OpenDAL operator and hand it to
//! [`BlobStore::from_operator`].
//!
//! S3 credentials come from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and
//! `AWS_SESSION_TOKEN`), read once when the store is opened, or from
//! [`BlobStore::open_s3_with_credentials`]. ATE never reads AWS profile files or queries the
//! EC2 instance-metadata service on its own: a host that wants instance credentials adds
//! `ec2_metadata=true` to the URL.

use super::{BlobStore, backend_error};
use crate::error::StorageError;
use opendal::Operator;

/// Static S3 credentials.
#[derive(Clone)]
pub struct S3Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: zeroize::Zeroizing<String>,
    /// Session token, for temporary credentials.
    pub session_token: Option<zeroize::Zeroizing<String>>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

impl S3Credentials {
    /// Reads `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`; `None` if
    /// the first two are not both set.
    pub fn from_env() -> Option<Self> {
        let id = std::env::var("AWS_ACCESS_KEY_ID").ok()?;
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY").ok()?;
        Some(S3Credentials {
            access_key_id: id,
            secret_access_key: zeroize::Zeroizing::new(secret),
            session_token: std::env::var("AWS_SESSION_TOKEN")
                .ok()
                .map(zeroize::Zeroizing::new),
        })
    }
}

fn invalid_url(reason: impl Into<String>) -> StorageError {
    StorageError::invalid("blob storage URL", reason)
}

impl BlobStore {
    /// Opens the backend named by `url` (see the [module docs](super)). No request is made
    /// yet.
    pub fn open(url: &str) -> Result<Self, StorageError> {
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
        match scheme {
            "memory" => Self::memory(),
            "fs" => Self::fs(url),
            "s3" => Self::s3(url, S3Credentials::from_env()),
            _ => Err(invalid_url(format!(
                "unknown scheme {:?}; expected memory://, fs:///path or s3://bucket/prefix",
                scheme.chars().take(32).collect::<String>()
            ))),
        }
    }

    /// Opens an `s3://` URL with explicit credentials.
    pub fn open_s3_with_credentials(
        url: &str,
        credentials: S3Credentials,
    ) -> Result<Self, StorageError> {
        if !url.starts_with("s3://") {
            return Err(invalid_url("expected an s3:// URL"));
        }
        Self::s3(url, Some(credentials))
    }

    fn memory() -> Result<Self, StorageError> {
        let op = Operator::new(opendal::services::Memory::default())
            .map_err(|e| backend_error("memory backend", e))?;
        Self::from_operator(op)
    }

    fn fs(url: &str) -> Result<Self, StorageError> {
        let parsed = url::Url::parse(url).map_err(|e| invalid_url(e.to_string()))?;
        if parsed.host_str().is_some_and(|h| !h.is_empty()) || !parsed.path().starts_with('/') {
            return Err(invalid_url(
                "fs URLs name an absolute directory: fs:///absolute/path",
            ));
        }
        let path = percent_decode(parsed.path())?;
        // No `atomic_write_dir`: the store stages uploads itself on every file system (see
        // the module docs), so OpenDAL's own staging would only add a second rename.
        let op = Operator::new(opendal::services::Fs::default().root(&path))
            .map_err(|e| backend_error("fs backend", e))?;
        Self::from_operator(op)
    }

    #[cfg(feature = "s3")]
    fn s3(url: &str, credentials: Option<S3Credentials>) -> Result<Self, StorageError> {
        let parsed = url::Url::parse(url).map_err(|e| invalid_url(e.to_string()))?;
        let bucket = parsed
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| invalid_url("s3 URLs name a bucket: s3://bucket/prefix"))?;
        let mut builder = opendal::services::S3::default()
            .bucket(bucket)
            .root(&percent_decode(parsed.path())?)
            .region("us-east-1")
            .disable_config_load();
        let mut ec2_metadata = false;
        for (key, value) in parsed.query_pairs() {
            match &*key {
                "endpoint" => {
                    url::Url::parse(&value)
                        .map_err(|e| invalid_url(format!("endpoint {value:?}: {e}")))?;
                    builder = builder.endpoint(&value);
                }
                "region" => builder = builder.region(&value),
                "ec2_metadata" => ec2_metadata = value == "true",
                other => {
                    return Err(invalid_url(format!(
                        "unknown s3 parameter {other:?} (known: endpoint, region, ec2_metadata)"
                    )));
                }
            }
        }
        if !ec2_metadata {
            builder = builder.disable_ec2_metadata();
        }
        if let Some(c) = credentials {
            builder = builder
                .access_key_id(&c.access_key_id)
                .secret_access_key(&c.secret_access_key);
            if let Some(token) = &c.session_token {
                builder = builder.session_token(token);
            }
        }
        // The HTTP client is attached to this operator only; ATE installs no process-wide
        // default transport.
        let transport = opendal::HttpTransporter::new(
            opendal_http_transport_reqwest::ReqwestTransport::default(),
        );
        // Transient failures (connection resets, 500/503, throttling) are retried with
        // exponential backoff and jitter, as the AWS SDKs do: up to 4 more attempts, 25 ms
        // to 800 ms apart. What still fails is `Unavailable` (retryable by the caller).
        let retry = opendal::layers::RetryLayer::new()
            .with_max_times(4)
            .with_min_delay(std::time::Duration::from_millis(25))
            .with_max_delay(std::time::Duration::from_millis(800))
            .with_jitter();
        let op = Operator::new(builder)
            .map_err(|e| backend_error("s3 backend", e))?
            .with_context(opendal::OperationContext::new().with_http_transport(transport))
            .layer(retry);
        Self::from_operator(op)
    }

    #[cfg(not(feature = "s3"))]
    fn s3(_url: &str, _credentials: Option<S3Credentials>) -> Result<Self, StorageError> {
        Err(StorageError::Core(ate_core::CoreError::Unsupported(
            "this build of ate-storage has no S3 support (enable the `s3` feature)".into(),
        )))
    }
}

fn percent_decode(path: &str) -> Result<String, StorageError> {
    percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map(|p| p.into_owned())
        .map_err(|_| invalid_url("path is not UTF-8 after percent-decoding"))
}
