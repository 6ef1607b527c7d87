//! HTTPS with rustls: TLS 1.3 only unless `tls.allow_tls12`, HTTP/2 and HTTP/1.1 by ALPN,
//! and the certificate reloaded on SIGHUP or when its files change (checked every 2 s).
//! A reload that fails (a half-written file, a key that does not match) keeps the current
//! certificate and logs why.

use crate::config::TlsSection;
use crate::host::BoxError;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// How often the certificate files are checked for changes.
const WATCH_EVERY: Duration = Duration::from_secs(2);
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The current server configuration, swapped on reload.
#[derive(Debug, Clone)]
pub(crate) struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    allow_tls12: bool,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl Certificates {
    /// Loads the configured files (failing when they are unusable).
    pub(crate) fn load(tls: &TlsSection) -> Result<Option<Certificates>, BoxError> {
        let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) else {
            return Ok(None);
        };
        let config = server_config(cert, key, tls.allow_tls12)?;
        Ok(Some(Certificates {
            cert: cert.clone(),
            key: key.clone(),
            allow_tls12: tls.allow_tls12,
            current: Arc::new(RwLock::new(Arc::new(config))),
        }))
    }

    fn get(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the files again; keeps the current configuration when they are unusable.
    pub(crate) fn reload(&self) {
        match server_config(&self.cert, &self.key, self.allow_tls12) {
            Ok(config) => {
                if let Ok(mut c) = self.current.write() {
                    *c = Arc::new(config);
                }
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate reload failed; keeping the current one");
            }
        }
    }

    /// Reloads on SIGHUP and when either file's modification time changes.
    pub(crate) fn watch(self) {
        tokio::spawn(async move {
            let stamp = |c: &Certificates| (mtime(&c.cert), mtime(&c.key));
            let mut seen = stamp(&self);
            #[cfg(unix)]
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                #[cfg(unix)]
                let hangup = async {
                    match hup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let hangup = std::future::pending::<Option<()>>();
                tokio::select! {
                    _ = hangup => self.reload(),
                    () = tokio::time::sleep(WATCH_EVERY) => {
                        let now = stamp(&self);
                        if now != seen {
                            seen = now;
                            self.reload();
                        }
                    }
                }
            }
        });
    }
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// A rustls configuration from PEM files: TLS 1.3 (and 1.2 when allowed), ALPN h2 and
/// http/1.1.
fn server_config(cert: &Path, key: &Path, allow_tls12: bool) -> Result<ServerConfig, BoxError> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("TLS certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("TLS certificate {} holds no certificate", cert.display()).into());
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("TLS key {}: {e}", key.display()))?;
    let versions: &[&rustls::SupportedProtocolVersion] = if allow_tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves `app` over TLS on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish for up to `grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    certs: Certificates,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
) -> Result<(), BoxError> {
    certs.clone().watch();
    let graceful = GracefulShutdown::new();
    let builder = Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(certs.get());
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = app.map_request(
                move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                    req.map(axum::body::Body::new)
                },
            );
            let conn = builder.serve_connection_with_upgrades(
                TokioIo::new(tls),
                TowerToHyperService::new(service),
            );
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "in-flight requests did not finish within the grace period"
        );
    }
    Ok(())
}
