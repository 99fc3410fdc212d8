//! `onestop serve` and `onestop token`: run the service, and issue credentials from the
//! command line (the first agency of a region has no one to ask over HTTP).

use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};

use onestop_core::{HospitalLevel, PolicyBook, Region};
use onestop_server::AppState;
use onestop_server::federation::Federation;
use onestop_server::tls::ServerCertificate;
use onestop_store::{Env, Institution, Role, Store, people};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// `sqlite:PATH` (embedded, the default) or `postgres://user@host:port/db`.
    #[arg(long, default_value = "sqlite:onestop.sqlite")]
    pub database: String,
    /// Directory of policy files.
    #[arg(long, default_value = "policies")]
    pub policies: PathBuf,
    /// A region whose institutions must sign in (9001) on the national interface (repeatable).
    #[arg(long = "nhsa-sign-in")]
    pub nhsa_sign_in: Vec<String>,
    /// The service's SM2 private key (hex): signs encrypted responses of the national interface.
    #[arg(long = "nhsa-service-key")]
    pub nhsa_service_key: Option<String>,
    /// Run as one node of a federation described by this TOML file (the shared secret comes from
    /// the environment variable ONESTOP_FEDERATION_SECRET).
    #[arg(long)]
    pub federation: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long = "tls-cert", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long = "tls-key", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// The environment variable that carries a federation's shared secret.
pub const FEDERATION_SECRET_VAR: &str = "ONESTOP_FEDERATION_SECRET";

fn federation(path: &std::path::Path) -> Result<Federation, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the federation file {}: {e}", path.display()))?;
    let secret = std::env::var(FEDERATION_SECRET_VAR)
        .map_err(|_| format!("--federation needs the shared secret in {FEDERATION_SECRET_VAR}"))?;
    let dir = path.parent().unwrap_or(std::path::Path::new(""));
    Federation::from_toml(&text, &secret, dir)
        .map_err(|e| format!("federation file {}: {e}", path.display()))
}

#[derive(clap::Args)]
pub struct TokenArgs {
    /// `sqlite:PATH` or `postgres://...`, as given to `serve`.
    #[arg(long, default_value = "sqlite:onestop.sqlite")]
    pub database: String,
    /// The id the credential is for, such as A110000 or H11010500001.
    #[arg(long)]
    pub id: String,
    /// The region (six digits).
    #[arg(long)]
    pub region: String,
    /// agency, auditor or institution.
    #[arg(long, default_value = "agency")]
    pub role: String,
    /// For an institution: community, 1, 2 or 3.
    #[arg(long)]
    pub level: Option<String>,
    #[arg(long, default_value = "")]
    pub name: String,
}

pub fn load_book(dir: &std::path::Path) -> Result<Arc<PolicyBook>, String> {
    let (book, _) = onestop_policy::load_dir(dir).map_err(|e| e.to_string())?;
    Ok(Arc::new(book))
}

pub fn open_store(url: &str) -> Result<Arc<Store>, String> {
    Store::open(url)
        .map(Arc::new)
        .map_err(|e| format!("cannot open the database {}: {e}", without_password(url)))
}

/// As [`open_store`], with the database as an operator needs to see it: a SQLite file by its
/// full path, and whether it was created just now (a service started in another directory
/// than meant makes a new, empty database, which should not go unnoticed).
pub fn open_store_described(url: &str) -> Result<(Arc<Store>, String, bool), String> {
    let file = url.strip_prefix("sqlite:").map(PathBuf::from);
    let created = file.as_ref().is_some_and(|path| !path.exists());
    let store = open_store(url)?;
    let described = match file {
        Some(path) => {
            let full = std::fs::canonicalize(&path).unwrap_or(path);
            let new = if created { " (新建 a new, empty database)" } else { "" };
            format!("sqlite:{}{new}", full.display())
        }
        None => without_password(url),
    };
    Ok((store, described, created))
}

/// Logs of the service (store failures, unreachable peers, ...) to standard error: warnings
/// and errors unless `ONESTOP_LOG` says otherwise (`info`, `debug`, `onestop_server=debug`).
pub fn log_to_stderr() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ONESTOP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // A second call (the demo's server in the same process) keeps the first.
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// A connection string as it may be shown in an error or a log: its password replaced by `***`
/// (`postgres://user:***@host/db`, `password=***`).
fn without_password(url: &str) -> String {
    if let Some(scheme_end) = url.find("://").map(|at| at + 3) {
        let rest = &url[scheme_end..];
        let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
        if let Some((user_info, host)) = authority.rsplit_once('@')
            && let Some((user, _)) = user_info.split_once(':')
        {
            let tail = &rest[authority.len()..];
            return format!("{}{user}:***@{host}{tail}", &url[..scheme_end]);
        }
        return url.to_owned();
    }
    // key=value words: the value after `password=`, quoted or not, up to its end.
    let Some(at) = url.find("password=").map(|at| at + "password=".len()) else {
        return url.to_owned();
    };
    let value = &url[at..];
    let end = if let Some(quoted) = value.strip_prefix('\'') {
        let mut escaped = false;
        let close = quoted.char_indices().find(|&(_, c)| {
            let closes = c == '\'' && !escaped;
            escaped = c == '\\' && !escaped;
            closes
        });
        close.map_or(value.len(), |(index, _)| index + 2)
    } else {
        value.find(char::is_whitespace).unwrap_or(value.len())
    };
    format!("{}***{}", &url[..at], &value[end..])
}

pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())
}

/// Registers `who` and returns its new token.
pub async fn issue(
    store: &Store,
    book: Arc<PolicyBook>,
    who: Institution,
) -> Result<String, String> {
    let (now, today) = onestop_server::timestamp(&onestop_server::system_clock());
    let credential = store
        .write(move |tx| {
            let channel = onestop_store::audit::Channel::Local;
            people::register(tx, &Env { book: &book, now: now.clone(), today, channel }, &who)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|refused| format!("{} ({})", refused.body.message, refused.body.code))?;
    Ok(credential.token)
}

pub fn token(args: &TokenArgs) -> Result<(), String> {
    let region = Region::parse(&args.region).ok_or("--region is a six-digit division code")?;
    let role = Role::parse(&args.role).ok_or("--role is agency, auditor or institution")?;
    let level = match (&args.level, role) {
        (Some(level), _) => {
            Some(HospitalLevel::parse(level).ok_or("--level is community, 1, 2 or 3")?)
        }
        (None, Role::Institution) => return Err("an institution needs --level".into()),
        (None, _) => None,
    };
    if !onestop_store::model::person_id_is_valid(&args.id) {
        return Err("--id is 1 to 30 letters and digits".into());
    }
    let name = if args.name.is_empty() { args.id.clone() } else { args.name.clone() };
    let who = Institution { institution_id: args.id.clone(), region, name, level, role };
    let runtime = runtime()?;
    let (store, described, created) = open_store_described(&args.database)?;
    if created {
        eprintln!("onestop token: {described}");
    }
    let book = Arc::new(PolicyBook::default());
    let token = runtime.block_on(issue(&store, book, who))?;
    println!("{token}");
    Ok(())
}

pub fn run(args: &ServeArgs) -> Result<(), String> {
    let book = load_book(&args.policies)?;
    let federation = args.federation.as_deref().map(federation).transpose()?;
    let certificate = match (&args.tls_cert, &args.tls_key) {
        (Some(certificate), Some(key)) => Some(ServerCertificate::load(certificate, key)?),
        _ => None,
    };
    let tls = certificate.clone().map(ServerCertificate::server_config).transpose()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let runtime = runtime()?;
    log_to_stderr();
    runtime.block_on(async {
        let (store, described, _) = open_store_described(&args.database)?;
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        eprintln!(
            "onestop serving {scheme}://{address}/v1 on {described} ({} policy regions); Ctrl-C \
             or SIGTERM stops{}",
            book.regions().count(),
            if certificate.is_some() { ", SIGHUP reads the certificate again" } else { "" }
        );
        let mut sign_in_regions = std::collections::HashSet::new();
        for region in &args.nhsa_sign_in {
            sign_in_regions
                .insert(Region::parse(region).ok_or("--nhsa-sign-in takes a six-digit region")?);
        }
        let nhsa = onestop_server::NhsaConfig {
            sign_in_regions,
            service_key: args.nhsa_service_key.clone(),
        };
        let mut state = AppState::new(store, book, onestop_server::system_clock()).with_nhsa(nhsa);
        if let Some(federation) = federation {
            eprintln!("a federation's {}; SIGHUP reads its file again", describe(&federation));
            state = state.with_federation(federation);
        }
        let file = args.federation.clone().filter(|_| state.federation().is_some());
        reload_on_hangup(certificate, file, state.clone())?;
        let mut terminate = signal(SignalKind::terminate())
            .map_err(|e| format!("cannot watch for SIGTERM: {e}"))?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            eprintln!("onestop stopping: answering the requests under way, taking no new ones");
        };
        onestop_server::serve_with(listener, state, tls, shutdown).await.map_err(|e| e.to_string())
    })
}

/// On SIGHUP, reads the HTTPS certificate and key again (a renewed certificate is served
/// without a restart), and the federation file `federation` (its peers, the bound, and the CA
/// file peers are verified by, from then on). What does not load, or may not change while the
/// node runs, leaves what it had in place, and says so. With neither, SIGHUP is noted and
/// changes nothing (rather than stopping the service, its default).
fn reload_on_hangup(
    certificate: Option<Arc<ServerCertificate>>,
    federation: Option<PathBuf>,
    state: AppState,
) -> Result<(), String> {
    let mut hangups =
        signal(SignalKind::hangup()).map_err(|e| format!("cannot watch for SIGHUP: {e}"))?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            if let Some(path) = &federation {
                match self::federation(path).and_then(|next| {
                    let said = describe(&next);
                    state.replace_federation(next).map(|()| said)
                }) {
                    Ok(said) => {
                        eprintln!("SIGHUP: federation file {} read again: {said}", path.display())
                    }
                    Err(error) => eprintln!(
                        "SIGHUP: federation NOT changed, still the one read before: {error}"
                    ),
                }
            }
            let Some(certificate) = &certificate else {
                if federation.is_none() {
                    eprintln!("SIGHUP: no certificate to read again (not serving HTTPS)");
                }
                continue;
            };
            let shown = certificate.path().display();
            match certificate.reload() {
                Ok(()) => eprintln!(
                    "SIGHUP: certificate read again from {shown}; new \
                    connections get it"
                ),
                Err(error) => eprintln!(
                    "SIGHUP: certificate NOT changed, still serving the \
                    one read before: {error}"
                ),
            }
        }
    });
    Ok(())
}

/// A federation in a line, as the service says it at start and at each reload.
fn describe(federation: &Federation) -> String {
    let peers: Vec<String> = federation
        .peers
        .iter()
        .map(|peer| {
            let regions: Vec<String> = peer.regions.iter().map(ToString::to_string).collect();
            format!("{} [{}] at {}", peer.name, regions.join(", "), peer.url)
        })
        .collect();
    let ca = federation.ca().map(|path| format!(", peers verified by {}", path.display()));
    let peers = if peers.is_empty() {
        "no peers".to_owned()
    } else {
        format!("{} peers ({})", peers.len(), peers.join("; "))
    };
    format!(
        "node {}, regions [{}] here; {peers}; {} ms bound{}",
        federation.node,
        federation.local.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        federation.timeout.as_millis(),
        ca.unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn a_shown_connection_string_has_no_password() {
        let cases = [
            (
                "postgres://u:s3cret@db:5432/x?sslmode=require",
                "postgres://u:***@db:5432/x?sslmode=require",
            ),
            ("postgres://u@db/x", "postgres://u@db/x"),
            ("postgres://u:p@ss@db/x", "postgres://u:***@db/x"),
            ("sqlite:onestop.sqlite", "sqlite:onestop.sqlite"),
            ("host=db password=s3cret user=u", "host=db password=*** user=u"),
            ("host=db password='a \\' b' user=u", "host=db password=*** user=u"),
        ];
        for (given, shown) in cases {
            assert_eq!(without_password(given), shown, "{given}");
        }
    }
}
