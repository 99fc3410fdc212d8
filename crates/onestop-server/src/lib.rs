//! onestop-server: the settlement service over HTTP.
//!
//! A thin layer: it authenticates the caller, reads the request with the wire formats of
//! `onestop-api`, and runs one operation of `onestop-store` in one transaction. Limits are
//! enforced here (body size, requests in flight, connections), a panic in a request answers
//! 500 without writing anything, and logs never carry an identity number.

mod audit_routes;
mod auth;
mod error;
pub mod extract;
pub mod federation;
mod gateway;
mod listener;
mod money_routes;
mod nhsa;
mod nhsa_forward;
mod nhsa_reports;
mod nhsa_tx;
pub mod openapi;
mod routes;
mod status;
pub mod tls;

pub use routes::ROUTES;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::Router;
use onestop_core::PolicyBook;
use onestop_store::model::MaintenanceWindow;
use onestop_store::{Institution, Store};

pub use error::ApiError;
pub use listener::{CONNECTIONS_MAX, LimitedListener};

/// A request body larger than this is refused with `body_too_large`.
pub const BODY_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Requests handled at once; more are refused at once with `server_busy`.
pub const REQUESTS_IN_FLIGHT_MAX: usize = 1024;

/// What time it is, in China Standard Time. Tests and simulations pass their own clock.
pub type Clock = Arc<dyn Fn() -> jiff::Zoned + Send + Sync>;

/// The real clock: now, at UTC+8 (China has one time zone and no daylight saving).
pub fn system_clock() -> Clock {
    Arc::new(|| {
        let offset = jiff::tz::Offset::constant(8);
        jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::fixed(offset))
    })
}

/// Now as RFC 3339 text (to the millisecond), and today's date, by `clock`.
pub fn timestamp(clock: &Clock) -> (String, onestop_core::Date) {
    let now = clock();
    (now.strftime("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string(), now.date())
}

/// How the national interface (`/fsi/api/...`) behaves for this deployment.
#[derive(Clone, Debug, Default)]
pub struct NhsaConfig {
    /// Regions whose institutions must sign in (9001) before any other transaction.
    pub sign_in_regions: std::collections::HashSet<onestop_core::Region>,
    /// The service's SM2 private key (hex): responses to encrypted calls carry its signature.
    pub service_key: Option<String>,
}

/// Maintenance windows are read from the store at most this often (and at once after a
/// change through this process).
pub const WINDOWS_REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// A resolved credential is trusted this long before the store is asked again, so that a token
/// replaced by another process (`onestop token`) stops working within it; one replaced through
/// this process stops at once.
pub const ACTORS_CACHED_FOR: std::time::Duration = std::time::Duration::from_secs(60);
/// At most this many resolved credentials are held.
pub const ACTORS_CACHED_MAX: usize = 100_000;

type WindowCache = Option<(std::time::Instant, Arc<Vec<MaintenanceWindow>>)>;

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub book: Arc<PolicyBook>,
    pub clock: Clock,
    pub nhsa: Arc<NhsaConfig>,
    /// This node's place in a federation; `None`: it serves every region itself. The slot's
    /// content is replaced whole when the federation file is read again
    /// ([`AppState::replace_federation`]); a request works with the one it started with.
    federation: Option<Arc<RwLock<Arc<federation::Federation>>>>,
    /// Resolved credentials by their token's SHA-256, and when each was read from the store.
    actors: Arc<RwLock<HashMap<String, (std::time::Instant, Institution)>>>,
    /// Counts the times the credentials were forgotten: a credential read from the store before
    /// the last time is not cached (it may be the one just replaced).
    actors_generation: Arc<std::sync::atomic::AtomicU64>,
    windows: Arc<tokio::sync::RwLock<WindowCache>>,
}

/// How long after a failure of the store `/v1/health` reports it degraded.
pub const STORE_FAILURE_SHOWN: std::time::Duration = std::time::Duration::from_secs(60);

impl AppState {
    pub fn new(store: Arc<Store>, book: Arc<PolicyBook>, clock: Clock) -> AppState {
        let nhsa = Arc::new(NhsaConfig::default());
        AppState {
            store,
            book,
            clock,
            nhsa,
            federation: None,
            actors: Arc::default(),
            actors_generation: Arc::default(),
            windows: Arc::default(),
        }
    }

    /// The same state as one node of a federation.
    pub fn with_federation(mut self, federation: federation::Federation) -> AppState {
        self.federation = Some(Arc::new(RwLock::new(Arc::new(federation))));
        self
    }

    /// This node's federation as it is now, if it is a node of one.
    pub fn federation(&self) -> Option<Arc<federation::Federation>> {
        let slot = self.federation.as_ref()?;
        // A poisoned lock still holds a federation that was built whole.
        Some(Arc::clone(&slot.read().unwrap_or_else(std::sync::PoisonError::into_inner)))
    }

    /// Puts `next` (the federation file read again) in the place of the running federation,
    /// if it may take it ([`federation::Federation::may_become`]); otherwise nothing changes.
    /// Requests under way finish with the federation they started with.
    pub fn replace_federation(&self, next: federation::Federation) -> Result<(), String> {
        let Some(slot) = &self.federation else {
            return Err("this node was started without --federation".to_owned());
        };
        let mut current = slot.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        current.may_become(&next)?;
        current.hand_statuses_to(&next);
        *current = Arc::new(next);
        Ok(())
    }

    /// The maintenance windows not cancelled, at most `WINDOWS_REFRESH` old.
    pub async fn windows(&self) -> Arc<Vec<MaintenanceWindow>> {
        if let Some((at, windows)) = self.windows.read().await.as_ref()
            && at.elapsed() < WINDOWS_REFRESH
        {
            return Arc::clone(windows);
        }
        let mut cache = self.windows.write().await;
        match self.store.read(|tx| tx.windows()).await {
            Ok(windows) => {
                let windows = Arc::new(windows);
                *cache = Some((std::time::Instant::now(), Arc::clone(&windows)));
                windows
            }
            Err(error) => {
                tracing::error!(%error, "maintenance windows unreadable");
                cache.as_ref().map(|(_, w)| Arc::clone(w)).unwrap_or_default()
            }
        }
    }

    /// Forgets the cached windows (after a change).
    pub async fn windows_changed(&self) {
        *self.windows.write().await = None;
    }

    /// The same state with the national interface configured.
    pub fn with_nhsa(mut self, config: NhsaConfig) -> AppState {
        self.nhsa = Arc::new(config);
        self
    }

    /// Now as RFC 3339 text, and today's date.
    pub fn now(&self) -> (String, onestop_core::Date) {
        timestamp(&self.clock)
    }

    fn cached_actor(&self, token_sha256: &str) -> Option<Institution> {
        let actors = self.actors.read().ok()?;
        let (at, actor) = actors.get(token_sha256)?;
        (at.elapsed() < ACTORS_CACHED_FOR).then(|| actor.clone())
    }

    /// The credentials' generation, read before a credential is read from the store.
    fn actors_generation(&self) -> u64 {
        self.actors_generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Caches a credential read from the store in `generation`, unless the credentials were
    /// forgotten since (under the lock, so that a forget cannot fall between check and insert).
    fn cache_actor(&self, token_sha256: String, actor: Institution, generation: u64) {
        if let Ok(mut actors) = self.actors.write() {
            if self.actors_generation() != generation {
                return;
            }
            if actors.len() >= ACTORS_CACHED_MAX {
                actors.retain(|_, (at, _)| at.elapsed() < ACTORS_CACHED_FOR);
                if actors.len() >= ACTORS_CACHED_MAX {
                    actors.clear();
                }
            }
            actors.insert(token_sha256, (std::time::Instant::now(), actor));
        }
    }

    /// Forgets every resolved credential (after one was replaced through this process).
    pub(crate) fn forget_actors(&self) {
        let mut actors = self.actors.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.actors_generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        actors.clear();
    }
}

/// The whole `/v1` API with its limits.
pub fn router(state: AppState) -> Router {
    routes::router(state)
}

/// Serves the API over plain HTTP on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, None, shutdown).await
}

/// Serves the API on `listener`, over TLS when `tls` is given (`tls::server_config`), until
/// `shutdown` completes.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if state.federation.is_some() {
        let state = state.clone();
        tokio::spawn(async move {
            // The federation is taken anew each round: a reload's peers are asked from then on.
            while let Some(federation) = state.federation() {
                federation.refresh_statuses().await;
                gateway::resolve_pending(&state).await;
                tokio::time::sleep(federation.status_refresh).await;
            }
        });
    }
    let app = router(state).into_make_service();
    let listener = LimitedListener::new(listener, CONNECTIONS_MAX);
    match tls {
        None => axum::serve(listener, app).with_graceful_shutdown(shutdown).await,
        Some(config) => {
            let listener = tls::TlsListener::new(listener, config)?;
            axum::serve(listener, app).with_graceful_shutdown(shutdown).await
        }
    }
}
