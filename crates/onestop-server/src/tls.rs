//! HTTPS. The service serves TLS itself when given a certificate and its key (`onestop serve
//! --tls-cert --tls-key`), and the HTTP clients of the project (the federation's links to its
//! peers, the demo, the load generator, the tests) verify servers against the roots they are
//! given, never against nothing: with no roots a client cannot reach an `https://` URL at all.
//! The cryptography is rustls with the `ring` provider, passed explicitly, never installed as a
//! process-wide default.
//!
//! The server's certificate is read again from its files on demand ([`ServerCertificate::reload`];
//! `onestop serve` does it on SIGHUP), so that a renewed certificate is served without a
//! restart: handshakes after the reload present the new one, connections already open keep
//! theirs, and files that do not load leave the current certificate in place.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::serve::Listener;
pub use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::listener::{Counted, LimitedListener};

/// A handshake not done by then is dropped (a client that opens a connection and stalls).
const HANDSHAKE_MAX: Duration = Duration::from_secs(10);
/// Connections whose handshake is done, waiting for the server to take them.
const READY_MAX: usize = 256;

/// An HTTP client builder whose TLS verifies servers against `roots` (none: plain HTTP only).
pub fn client_builder(roots: Option<RootCertStore>) -> reqwest::ClientBuilder {
    let config = onestop_store::client_config(roots.unwrap_or_else(RootCertStore::empty));
    reqwest::Client::builder().use_preconfigured_tls(config)
}

/// The server's TLS from a PEM certificate chain and its PEM private key.
pub fn server_config(certificate: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    ServerCertificate::load(certificate, key)?.server_config()
}

/// The server's certificate and key as read from their files, until read again.
#[derive(Debug)]
pub struct ServerCertificate {
    certificate: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerCertificate {
    /// Reads a PEM certificate chain and its PEM private key; the error names the file at fault.
    pub fn load(certificate: &Path, key: &Path) -> Result<Arc<ServerCertificate>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = read_pair(certificate, key, &provider)?;
        Ok(Arc::new(ServerCertificate {
            certificate: certificate.to_owned(),
            key: key.to_owned(),
            provider,
            current: RwLock::new(Arc::new(current)),
        }))
    }

    /// Reads the files again; on success later handshakes present what they now hold, on
    /// failure the certificate served stays as it was.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = read_pair(&self.certificate, &self.key, &self.provider)?;
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(fresh);
        Ok(())
    }

    /// The certificate file, for messages.
    pub fn path(&self) -> &Path {
        &self.certificate
    }

    /// A server configuration that presents whatever this holds at each handshake.
    pub fn server_config(self: Arc<Self>) -> Result<Arc<ServerConfig>, String> {
        let provider = Arc::clone(&self.provider);
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(self);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for ServerCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner)))
    }
}

/// A certificate chain and the key that matches its first certificate.
fn read_pair(
    certificate: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    let chain =
        onestop_store::certificate_chain(certificate).map_err(|e| format!("--tls-cert {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    // Checks that the key matches the first certificate, as `with_single_cert` does.
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| format!("--tls-cert and --tls-key do not make a pair: {e}"))
}

/// Connections of `LimitedListener` after their TLS handshake, which runs on a task of its own
/// so that a slow client holds up no one else.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<Counted>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(mut tcp: LimitedListener, config: Arc<ServerConfig>) -> io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (done, ready) = mpsc::channel(READY_MAX);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (stream, address) = tokio::select! {
                    accepted = tcp.accept() => accepted,
                    () = done.closed() => return,
                };
                let (acceptor, done) = (acceptor.clone(), done.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_MAX, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = done.send((tls, address)).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%error, %address, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%address, "TLS handshake too slow"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<Counted>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task ended (it does only once this listener is gone).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate and its key as PEM.
    fn pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("names");
        (params.self_signed(&key).expect("signed").pem(), key.serialize_pem())
    }

    #[test]
    fn a_certificate_and_key_that_are_not_a_pair_are_refused_with_the_file_at_fault() {
        let dir = tempfile::tempdir().expect("dir");
        let path = |name: &str| dir.path().join(name);
        let ((certificate, key), (_, other_key)) = (pair(), pair());
        for (name, text) in
            [("cert.pem", &certificate), ("key.pem", &key), ("other.pem", &other_key)]
        {
            std::fs::write(path(name), text).expect("written");
        }
        std::fs::write(path("empty.pem"), "").expect("written");
        assert!(server_config(&path("cert.pem"), &path("key.pem")).is_ok());
        let cases = [
            (path("missing.pem"), path("key.pem"), "--tls-cert"),
            (path("empty.pem"), path("key.pem"), "no certificate in it"),
            (path("cert.pem"), path("missing.pem"), "--tls-key"),
            (path("cert.pem"), path("other.pem"), "do not make a pair"),
        ];
        for (certificate, key, says) in cases {
            let error = server_config(&certificate, &key).expect_err(says);
            assert!(error.contains(says), "{error}");
        }
    }
}
