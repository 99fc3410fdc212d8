//! TLS to PostgreSQL. `sslmode=require` in the URL (or `verify-ca`, `verify-full`, as libpq
//! spells them) makes every pooled connection TLS, and the server's certificate is always
//! verified, chain and host name, against the root certificates of `sslrootcert=PATH` (a PEM
//! file; libpq's parameter, read from a URL only), else of `$PGSSLROOTCERT`, else of
//! `~/.postgresql/root.crt`.
//! Without any of them the store does not open: a connection that cannot tell the server from
//! an impostor is not "required TLS". Without `sslmode` (or with `disable`) connections are in
//! the clear, as before; a production deployment says `require`. libpq's `prefer` and `allow`
//! (TLS without verifying the server when the server offers it) are refused: a connection here
//! is either verified or plainly in the clear, never something in between that looks safe.
//!
//! A client certificate authenticates the store to the server (`cert` in `pg_hba.conf`):
//! `sslcert=PATH&sslkey=PATH` (PEM), else `$PGSSLCERT` and `$PGSSLKEY`, else
//! `~/.postgresql/postgresql.crt` and `.key` when both exist, as libpq looks for them. Only with
//! `sslmode=require`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::tx::{Result, StoreError};

/// A connection URL split into what the PostgreSQL client parses and what it does not know.
#[derive(Debug, PartialEq)]
pub(crate) struct Options {
    /// The URL as the client parses it: `sslrootcert` removed, `verify-*` spelt `require`.
    pub(crate) url: String,
    /// `sslrootcert`, when the URL gives it.
    pub(crate) root: Option<PathBuf>,
    /// `sslcert` and `sslkey`, when the URL gives them.
    pub(crate) cert: Option<PathBuf>,
    pub(crate) key: Option<PathBuf>,
}

/// The TLS parameters read from a URL only (the client does not know them).
const URL_ONLY: [&str; 3] = ["sslrootcert", "sslcert", "sslkey"];

/// Takes out of a URL (`postgres://...?sslmode=require&sslrootcert=%2Fetc%2Fca.pem`) the TLS
/// options the client does not parse itself. A connection string of key=value words is passed
/// on untouched (its quoting is the client's to read); `sslrootcert` in one is refused with
/// what to use instead.
pub(crate) fn options(url: &str) -> Result<Options> {
    if !url.contains("://") {
        if let Some(name) = URL_ONLY.iter().find(|name| url.contains(**name)) {
            return Err(config(format!(
                "{name} is read from a postgres:// URL only: write the connection as a URL \
                 (postgres://user@host/db?sslmode=require&{name}=PATH) or set PG{}",
                name.to_uppercase()
            )));
        }
        for word in url.split_whitespace() {
            if let Some(("sslmode", mode)) = word.split_once('=') {
                unverified_refused(mode.trim_matches('\''))?;
            }
        }
        return Ok(Options { url: url.to_owned(), root: None, cert: None, key: None });
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let base = format!("{base}?");
    let mut options = Options { url: String::new(), root: None, cert: None, key: None };
    let mut kept = Vec::new();
    for param in query.split('&').filter(|param| !param.is_empty()) {
        match param.split_once('=') {
            Some((name @ ("sslrootcert" | "sslcert" | "sslkey"), path)) => {
                let path = percent_decode_str(path)
                    .decode_utf8()
                    .map_err(|_| config(format!("{name} `{path}` is not UTF-8 once decoded")))?;
                let path = Some(PathBuf::from(path.as_ref()));
                match name {
                    "sslrootcert" => options.root = path,
                    "sslcert" => options.cert = path,
                    _ => options.key = path,
                }
            }
            Some(("sslmode", "verify-ca" | "verify-full")) => kept.push("sslmode=require"),
            Some(("sslmode", mode)) => {
                unverified_refused(mode)?;
                kept.push(param);
            }
            _ => kept.push(param),
        }
    }
    let joined = kept.join("&");
    options.url = match base.strip_suffix('?') {
        Some(base) if joined.is_empty() => base.to_owned(),
        _ => format!("{base}{joined}"),
    };
    Ok(options)
}

/// libpq's modes that encrypt without verifying the server.
fn unverified_refused(mode: &str) -> Result<()> {
    if mode == "prefer" || mode == "allow" {
        return Err(config(format!(
            "sslmode={mode} would use TLS without verifying the server: say sslmode=require \
             (with sslrootcert=PATH, the server's CA) for TLS, or leave sslmode out for a \
             connection in the clear"
        )));
    }
    Ok(())
}

/// The connector for `sslmode=require`: rustls, verifying the server against the roots found,
/// and presenting the client certificate found, if any.
pub(crate) fn connector(options: &Options) -> Result<MakeRustlsConnect> {
    let root = match &options.root {
        Some(path) => path.clone(),
        None => default_root().ok_or_else(|| {
            config(
                "sslmode=require needs the certificate of the server's CA to verify it: add \
                 sslrootcert=PATH (PEM) to the URL, or set PGSSLROOTCERT"
                    .into(),
            )
        })?,
    };
    let roots = root_certificates(&root).map_err(|e| config(format!("sslrootcert {e}")))?;
    let tls = match identity(options)? {
        None => client_config(roots),
        Some((cert, key)) => {
            let certificates =
                certificate_chain(&cert).map_err(|e| config(format!("sslcert {e}")))?;
            let private = PrivateKeyDer::from_pem_file(&key)
                .map_err(|e| config(format!("sslkey {}: {e}", key.display())))?;
            client_builder(roots).with_client_auth_cert(certificates, private).map_err(|e| {
                config(format!("sslcert {} with sslkey {}: {e}", cert.display(), key.display()))
            })?
        }
    };
    Ok(MakeRustlsConnect::new(tls))
}

/// Refuses a client certificate where no TLS would carry it.
pub(crate) fn identity_needs_tls(options: &Options) -> Result<()> {
    if options.cert.is_some() || options.key.is_some() {
        return Err(config(
            "sslcert and sslkey are presented over TLS only: add sslmode=require (with \
             sslrootcert=PATH)"
                .into(),
        ));
    }
    Ok(())
}

/// The client certificate and key: the URL's, else `$PGSSLCERT` and `$PGSSLKEY`, else libpq's
/// default files when both exist. Given one without the other is an error.
fn identity(options: &Options) -> Result<Option<(PathBuf, PathBuf)>> {
    let from_env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let cert = options.cert.clone().or_else(|| from_env("PGSSLCERT"));
    let key = options.key.clone().or_else(|| from_env("PGSSLKEY"));
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some((cert, key))),
        (None, None) => {
            let Some(home) = std::env::var_os("HOME") else { return Ok(None) };
            let dir = Path::new(&home).join(".postgresql");
            let (cert, key) = (dir.join("postgresql.crt"), dir.join("postgresql.key"));
            Ok((cert.is_file() && key.is_file()).then_some((cert, key)))
        }
        (Some(_), None) => Err(config("sslcert needs its sslkey (or PGSSLKEY)".into())),
        (None, Some(_)) => Err(config("sslkey needs its sslcert (or PGSSLCERT)".into())),
    }
}

/// The TLS of every client of the project (PostgreSQL, federation peers): rustls with the ring
/// provider, passed explicitly (never installed process-wide), verifying servers against
/// `roots` and nothing else.
pub fn client_config(roots: RootCertStore) -> rustls::ClientConfig {
    client_builder(roots).with_no_client_auth()
}

fn client_builder(
    roots: RootCertStore,
) -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports rustls's default protocol versions")
        .with_root_certificates(roots)
}

/// The certificates of a PEM file, as roots to verify a server against; the error names the
/// file.
pub fn root_certificates(path: &Path) -> std::result::Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certificate_chain(path)?);
    if added == 0 {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(roots)
}

/// The certificates of a PEM file, in their order (a chain: the end entity's first); the error
/// names the file, and a file without any is one.
pub fn certificate_chain(path: &Path) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certificates)
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

    fn url_options(
        url: &str,
        root: Option<&str>,
        cert: Option<&str>,
        key: Option<&str>,
    ) -> Options {
        let path = |path: Option<&str>| path.map(PathBuf::from);
        Options { url: url.to_owned(), root: path(root), cert: path(cert), key: path(key) }
    }

    #[test]
    fn the_certificates_and_libpq_modes_are_taken_out_of_a_url_only() {
        let cases = [
            ("postgres://u@h/db", url_options("postgres://u@h/db", None, None, None)),
            (
                "postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&port=5",
                url_options(
                    "postgres://u@h/db?sslmode=require&port=5",
                    Some("/etc/ca.pem"),
                    None,
                    None,
                ),
            ),
            (
                "postgres://u@h/db?sslrootcert=/ca.pem",
                url_options("postgres://u@h/db", Some("/ca.pem"), None, None),
            ),
            (
                "postgres://u@h/db?sslmode=require&sslcert=/me.crt&sslkey=%2Fme.key",
                url_options(
                    "postgres://u@h/db?sslmode=require",
                    None,
                    Some("/me.crt"),
                    Some("/me.key"),
                ),
            ),
            (
                "host=h password='a  b' sslmode=require",
                url_options("host=h password='a  b' sslmode=require", None, None, None),
            ),
        ];
        for (given, expected) in cases {
            assert_eq!(options(given).expect("parsed"), expected, "{given}");
        }
        for (words, name) in [
            ("host=h sslmode=require sslrootcert=/ca.pem", "sslrootcert"),
            ("host=h sslmode=require sslcert=/me.crt sslkey=/me.key", "sslcert"),
        ] {
            let error = options(words).expect_err("refused").to_string();
            assert!(
                error.contains(&format!("{name} is read from a postgres:// URL only")),
                "{error}"
            );
        }
    }

    #[test]
    fn modes_that_would_not_verify_the_server_are_refused_with_what_to_say() {
        for given in [
            "postgres://u@h/db?sslmode=prefer",
            "postgres://u@h/db?port=5&sslmode=allow",
            "host=h sslmode=prefer",
            "host=h sslmode='allow'",
        ] {
            let error = options(given).expect_err("refused").to_string();
            assert!(error.contains("without verifying the server"), "{given}: {error}");
            assert!(error.contains("sslmode=require"), "{given}: {error}");
        }
        assert!(options("postgres://u@h/db?sslmode=disable").is_ok());
    }

    #[test]
    fn required_tls_without_a_root_certificate_is_refused_with_what_to_do() {
        let with_root = |root: &Path| url_options("", Some(&root.to_string_lossy()), None, None);
        let missing = Path::new("/nonexistent/ca.pem");
        let error = connector(&with_root(missing)).err().expect("refused").to_string();
        assert!(error.contains("sslrootcert /nonexistent/ca.pem"), "{error}");
        let dir = tempfile::tempdir().expect("dir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("written");
        let error = connector(&with_root(&empty)).err().expect("refused").to_string();
        assert!(error.contains("no certificate in it"), "{error}");
    }

    #[test]
    fn a_client_certificate_must_come_with_its_key_and_over_tls() {
        let dir = tempfile::tempdir().expect("dir");
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        let certificate = params.self_signed(&key).expect("signed");
        let (ca, cert, key_file) =
            (dir.path().join("ca.pem"), dir.path().join("me.crt"), dir.path().join("me.key"));
        std::fs::write(&ca, certificate.pem()).expect("written");
        std::fs::write(&cert, certificate.pem()).expect("written");
        std::fs::write(&key_file, key.serialize_pem()).expect("written");
        let shown = |path: &Path| path.to_string_lossy().into_owned();
        let (ca, cert, key_file) = (shown(&ca), shown(&cert), shown(&key_file));

        let both = url_options("", Some(&ca), Some(&cert), Some(&key_file));
        assert!(connector(&both).is_ok(), "a certificate with its own key");
        let alone = url_options("", Some(&ca), Some(&cert), None);
        if std::env::var_os("PGSSLKEY").is_none() {
            let error = connector(&alone).err().expect("refused").to_string();
            assert!(error.contains("sslcert needs its sslkey"), "{error}");
        }
        if std::env::var_os("PGSSLCERT").is_none() {
            let key_alone = url_options("", Some(&ca), None, Some(&key_file));
            let error = connector(&key_alone).err().expect("refused").to_string();
            assert!(error.contains("sslkey needs its sslcert"), "{error}");
        }
        let not_a_certificate = url_options("", Some(&ca), Some(&key_file), Some(&key_file));
        let error = connector(&not_a_certificate).err().expect("refused").to_string();
        assert!(error.contains("sslcert") && error.contains("no certificate in it"), "{error}");
        let other = rcgen::KeyPair::generate().expect("key");
        let other_file = dir.path().join("other.key");
        std::fs::write(&other_file, other.serialize_pem()).expect("written");
        let mismatched = url_options("", Some(&ca), Some(&cert), Some(&shown(&other_file)));
        let error = connector(&mismatched).err().expect("refused").to_string();
        assert!(error.contains("with sslkey"), "{error}");
        let no_key = url_options("", Some(&ca), Some(&cert), Some("/nonexistent/me.key"));
        let error = connector(&no_key).err().expect("refused").to_string();
        assert!(error.contains("sslkey /nonexistent/me.key"), "{error}");

        let error = identity_needs_tls(&both).expect_err("refused").to_string();
        assert!(error.contains("over TLS only"), "{error}");
        assert!(identity_needs_tls(&url_options("", Some(&ca), None, None)).is_ok());
    }
}
