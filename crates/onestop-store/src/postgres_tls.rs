//! TLS to PostgreSQL. `sslmode=require` in the URL (or `verify-ca`, `verify-full`, as libpq
//! spells them) makes every pooled connection TLS, and the server's certificate is always
//! verified, chain and host name, against the root certificates of `sslrootcert=PATH` (a PEM
//! file; libpq's parameter, read from a URL only), else of `$PGSSLROOTCERT`, else of
//! `~/.postgresql/root.crt`.
//! Without any of them the store does not open: a connection that cannot tell the server from
//! an impostor is not "required TLS". `sslmode=disable` or `prefer` (the default) connect in the
//! clear, as before; a production deployment says `require`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::tx::{Result, StoreError};

/// A connection URL split into what the PostgreSQL client parses and what it does not know.
#[derive(Debug, PartialEq)]
pub(crate) struct Options {
    /// The URL as the client parses it: `sslrootcert` removed, `verify-*` spelt `require`.
    pub(crate) url: String,
    /// `sslrootcert`, when the URL gives it.
    pub(crate) root: Option<PathBuf>,
}

/// Takes out of a URL (`postgres://...?sslmode=require&sslrootcert=%2Fetc%2Fca.pem`) the TLS
/// options the client does not parse itself. A connection string of key=value words is passed
/// on untouched (its quoting is the client's to read); `sslrootcert` in one is refused with
/// what to use instead.
pub(crate) fn options(url: &str) -> Result<Options> {
    if !url.contains("://") {
        if url.contains("sslrootcert") {
            return Err(config(
                "sslrootcert is read from a postgres:// URL only: write the connection as a URL \
                 (postgres://user@host/db?sslmode=require&sslrootcert=PATH) or set PGSSLROOTCERT"
                    .into(),
            ));
        }
        return Ok(Options { url: url.to_owned(), root: None });
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let base = format!("{base}?");
    let mut root = None;
    let mut kept = Vec::new();
    for param in query.split('&').filter(|param| !param.is_empty()) {
        match param.split_once('=') {
            Some(("sslrootcert", path)) => {
                let path = percent_decode_str(path).decode_utf8().map_err(|_| {
                    config(format!("sslrootcert `{path}` is not UTF-8 once decoded"))
                })?;
                root = Some(PathBuf::from(path.as_ref()));
            }
            Some(("sslmode", "verify-ca" | "verify-full")) => kept.push("sslmode=require"),
            _ => kept.push(param),
        }
    }
    let joined = kept.join("&");
    let url = match base.strip_suffix('?') {
        Some(base) if joined.is_empty() => base.to_owned(),
        _ => format!("{base}{joined}"),
    };
    Ok(Options { url, root })
}

/// The connector for `sslmode=require`: rustls, verifying the server against the roots found.
pub(crate) fn connector(root: Option<&Path>) -> Result<MakeRustlsConnect> {
    let root = match root {
        Some(path) => path.to_owned(),
        None => default_root().ok_or_else(|| {
            config(
                "sslmode=require needs the certificate of the server's CA to verify it: add \
                 sslrootcert=PATH (PEM) to the URL, or set PGSSLROOTCERT"
                    .into(),
            )
        })?,
    };
    let roots = root_certificates(&root).map_err(|e| config(format!("sslrootcert {e}")))?;
    Ok(MakeRustlsConnect::new(client_config(roots)))
}

/// The TLS of every client of the project (PostgreSQL, federation peers): rustls with the ring
/// provider, passed explicitly (never installed process-wide), verifying servers against
/// `roots` and nothing else.
pub fn client_config(roots: RootCertStore) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports rustls's default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// The certificates of a PEM file, as roots to verify a server against; the error names the
/// file.
pub fn root_certificates(path: &Path) -> std::result::Result<RootCertStore, String> {
    let shown = path.display();
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| format!("{shown}: {e}"))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(format!("{shown}: no certificate in it"));
    }
    Ok(roots)
}

/// libpq's fallbacks for the root certificates: `$PGSSLROOTCERT`, then `~/.postgresql/root.crt`.
fn default_root() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PGSSLROOTCERT").filter(|path| !path.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME")?;
    Some(Path::new(&home).join(".postgresql/root.crt")).filter(|path| path.is_file())
}

fn config(message: String) -> StoreError {
    StoreError::Config(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_certificate_and_libpq_modes_are_taken_out_of_a_url_only() {
        let cases = [
            ("postgres://u@h/db", "postgres://u@h/db", None),
            (
                "postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&port=5",
                "postgres://u@h/db?sslmode=require&port=5",
                Some("/etc/ca.pem"),
            ),
            ("postgres://u@h/db?sslrootcert=/ca.pem", "postgres://u@h/db", Some("/ca.pem")),
            (
                "host=h password='a  b' sslmode=require",
                "host=h password='a  b' sslmode=require",
                None,
            ),
        ];
        for (given, url, root) in cases {
            let expected = Options { url: url.to_owned(), root: root.map(PathBuf::from) };
            assert_eq!(options(given).expect("parsed"), expected, "{given}");
        }
        let words = options("host=h sslmode=require sslrootcert=/ca.pem").expect_err("refused");
        assert!(words.to_string().contains("from a postgres:// URL only"), "{words}");
    }

    #[test]
    fn required_tls_without_a_root_certificate_is_refused_with_what_to_do() {
        let missing = Path::new("/nonexistent/ca.pem");
        let error = connector(Some(missing)).err().expect("refused").to_string();
        assert!(error.contains("sslrootcert /nonexistent/ca.pem"), "{error}");
        let dir = tempfile::tempdir().expect("dir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("written");
        let error = connector(Some(&empty)).err().expect("refused").to_string();
        assert!(error.contains("no certificate in it"), "{error}");
    }
}
