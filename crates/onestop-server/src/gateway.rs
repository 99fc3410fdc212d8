//! The gateway in front of every route: finds whose region a request is about, refuses it at
//! once inside that region's maintenance window, and, in a federation, forwards it to the node
//! that holds the region's people.
//!
//! A forwarded settle is one transaction on the insured region's node; this node writes nothing
//! before the answer, so a failure here half-settles nothing. A settle whose answer is lost
//! (timeout) is resolved by retrying the same `Idempotency-Key`, which replays the first answer
//! or settles once. Every settlement answer that passes through is recorded here as a visitor
//! settlement, the place of treatment's record for reconciliation and clearing.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use onestop_api::service::SettlementRecordDto;
use onestop_api::{ServiceCode, ServiceError};
use onestop_core::{Fen, Region, VisitType};
use onestop_store::model::{
    IdKind, MaintenanceWindow, PendingForward, VisitorSettlement, parse_id,
};
use onestop_store::{Institution, Role};

use crate::error::{ApiError, error_response};
use crate::federation::{
    ACTOR_HEADER, FROM_HEADER, Federation, Peer, Route, SECRET_HEADER, actor_header, parse_actor,
};
use crate::{AppState, BODY_BYTES_MAX};

/// The actor a peer node authenticated, on a request it forwarded here.
#[derive(Clone)]
pub struct Forwarded(pub Institution);

/// The region of the person a request is about, if it is about one.
pub fn target_region(method: &Method, path: &str, body: &[u8]) -> Option<Region> {
    let mut segments = path.trim_start_matches('/').split('/');
    if segments.next() != Some("v1") {
        return None;
    }
    let id_region = |id: Option<&str>| id.and_then(parse_id).map(|(_, key)| key.region);
    match (segments.next(), segments.next()) {
        (Some("visits"), None) if method == Method::POST => {
            let value: serde_json::Value = serde_json::from_slice(body).ok()?;
            match value.get("insured_region")? {
                serde_json::Value::String(text) => Region::parse(text),
                serde_json::Value::Number(number) => Region::parse(&number.to_string()),
                _ => None,
            }
        }
        (Some("visits" | "settlements"), id) => id_region(id),
        (Some("filings"), Some(id)) => id_region(Some(id)),
        (Some("persons"), Some(region)) => Region::parse(region),
        _ => None,
    }
}

fn now(state: &AppState) -> jiff::Timestamp {
    (state.clock)().timestamp()
}

fn in_window(
    windows: &[MaintenanceWindow],
    region: Region,
    at: jiff::Timestamp,
) -> Option<&MaintenanceWindow> {
    windows.iter().find(|w| w.region == region && w.starts_at <= at && at < w.ends_at)
}

/// What an institution is told inside a window (over `/v1` and the national interface alike).
pub(crate) fn maintenance_message(window: &MaintenanceWindow) -> String {
    let ends = onestop_store::maintenance::dto(window).ends_at;
    format!(
        "参保地 region {} 系统维护中 is in maintenance until {ends} ({}); settlement for its \
         people resumes then",
        window.region, window.reason
    )
}

fn maintenance(window: &MaintenanceWindow, at: jiff::Timestamp) -> Response {
    let message = maintenance_message(window);
    let mut response =
        error_response(&ServiceError::new(ServiceCode::RegionInMaintenance, message));
    let seconds = (window.ends_at.as_second() - at.as_second()).max(1);
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The window of this node that `region` is in now, if any.
pub(crate) async fn window_now(state: &AppState, region: Region) -> Option<MaintenanceWindow> {
    in_window(&state.windows().await, region, now(state)).cloned()
}

/// Refuses an institution's request about a person of `region` inside a window of this node.
async fn local_window(
    state: &AppState,
    headers: &HeaderMap,
    actor: Option<&Institution>,
    region: Region,
) -> Option<Response> {
    let window = window_now(state, region).await?;
    let role = match actor {
        Some(actor) => actor.role,
        None => crate::auth::authenticate(headers, state).await.ok()?.role,
    };
    (role == Role::Institution).then(|| maintenance(&window, now(state)))
}

pub async fn gateway(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.headers().contains_key(SECRET_HEADER) {
        return accept_forwarded(state, request, next).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, BODY_BYTES_MAX).await else {
        let message = format!("the body exceeds {BODY_BYTES_MAX} bytes");
        return ApiError::code(ServiceCode::BodyTooLarge, message).into_response();
    };
    let target = target_region(&parts.method, parts.uri.path(), &bytes);
    let (method, uri, headers) = (parts.method.clone(), parts.uri.clone(), parts.headers.clone());
    let request = Request::from_parts(parts, Body::from(bytes.clone()));
    let Some(region) = target else {
        // A new visit naming no insured region is of a person of the hospital's own region.
        let new_visit = method == Method::POST && uri.path().trim_end_matches('/') == "/v1/visits";
        if new_visit
            && let Ok(actor) = crate::auth::authenticate(&headers, &state).await
            && let Some(refused) = local_window(&state, &headers, Some(&actor), actor.region).await
        {
            return refused;
        }
        return next.run(request).await;
    };
    let federation = state.federation();
    let route = federation.as_deref().map_or(Route::Local, |f| f.route(region));
    match route {
        Route::Local => match local_window(&state, &headers, None, region).await {
            Some(refused) => refused,
            None => next.run(request).await,
        },
        Route::Unknown => not_served(region),
        Route::Peer(peer) => {
            let federation = federation.as_deref().expect("a peer route comes from a federation");
            let actor = match crate::auth::authenticate(&headers, &state).await {
                Ok(actor) => actor,
                Err(error) => return error.into_response(),
            };
            if let Some(refused) = peer_window(&state, federation, peer, &actor, region) {
                return refused;
            }
            let call = Call { method, uri, headers, bytes };
            forward(&state, federation, peer, &actor, region, call).await
        }
    }
}

fn not_served(region: Region) -> Response {
    let message = format!("统筹区 region {region} is not served by this node or any of its peers");
    ApiError::code(ServiceCode::RegionNotServed, message).into_response()
}

/// A request a peer forwarded: checked, then handled as the peer's authenticated actor.
async fn accept_forwarded(state: AppState, request: Request, next: Next) -> Response {
    let unauthorized = || {
        ApiError::code(ServiceCode::Unauthorized, "the federation secret or actor is not valid")
            .into_response()
    };
    let Some(federation) = state.federation() else { return unauthorized() };
    let headers = request.headers();
    let secret = headers.get(SECRET_HEADER).map(HeaderValue::as_bytes).unwrap_or_default();
    let actor = headers.get(ACTOR_HEADER).and_then(|v| v.to_str().ok()).and_then(parse_actor);
    let Some(actor) = actor.filter(|_| federation.secret_matches(secret)) else {
        return unauthorized();
    };
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, BODY_BYTES_MAX).await else {
        let message = format!("the body exceeds {BODY_BYTES_MAX} bytes");
        return ApiError::code(ServiceCode::BodyTooLarge, message).into_response();
    };
    // A forwarded request is answered here or not at all: it is never forwarded again.
    if let Some(region) = target_region(&parts.method, parts.uri.path(), &bytes) {
        if !federation.local.contains(&region) {
            return not_served(region);
        }
        if let Some(refused) = local_window(&state, &parts.headers, Some(&actor), region).await {
            return refused;
        }
    }
    parts.extensions.insert(Forwarded(actor));
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// Refuses at once when the insured region's node last said it is in a window now.
fn peer_window(
    state: &AppState,
    federation: &Federation,
    peer: &Peer,
    actor: &Institution,
    region: Region,
) -> Option<Response> {
    if actor.role != Role::Institution {
        return None;
    }
    let window = peer_window_now(state, federation, peer, region)?;
    Some(maintenance(&window, now(state)))
}

/// The window `region` is in now, as its node last published it.
pub(crate) fn peer_window_now(
    state: &AppState,
    federation: &Federation,
    peer: &Peer,
    region: Region,
) -> Option<MaintenanceWindow> {
    let status = federation.peer_status(&peer.name)?;
    let at = now(state);
    let known = status.regions.iter().find(|r| r.region == region.to_string())?;
    known.windows.iter().find_map(|w| {
        let window = MaintenanceWindow {
            window_id: w.window_id.clone(),
            region,
            starts_at: w.starts_at.parse().ok()?,
            ends_at: w.ends_at.parse().ok()?,
            reason: w.reason.clone(),
            created_by: String::new(),
            created_at: String::new(),
            cancelled_at: None,
        };
        (window.starts_at <= at && at < window.ends_at).then_some(window)
    })
}

/// What is forwarded of a request.
struct Call {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    bytes: Bytes,
}

/// A request to a peer as `actor`, bounded by the federation's timeout.
pub(crate) fn peer_request(
    federation: &Federation,
    peer: &Peer,
    actor: &Institution,
    method: Method,
    path: &str,
) -> reqwest::RequestBuilder {
    let url = format!("{}{path}", peer.url.trim_end_matches('/'));
    federation
        .client()
        .request(method, url)
        .timeout(federation.timeout)
        .header(SECRET_HEADER, federation.secret())
        .header(ACTOR_HEADER, actor_header(actor))
        .header(FROM_HEADER, federation.node.as_str())
}

async fn forward(
    state: &AppState,
    federation: &Federation,
    peer: &Peer,
    actor: &Institution,
    region: Region,
    call: Call,
) -> Response {
    let path = call.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = peer_request(federation, peer, actor, call.method.clone(), path);
    for name in [header::CONTENT_TYPE.as_str(), "idempotency-key"] {
        if let Some(value) = call.headers.get(name) {
            request = request.header(name, value);
        }
    }
    let answer = async {
        let response = request.body(call.bytes.clone()).send().await?;
        let status = response.status();
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        Ok::<_, reqwest::Error>((status, content_type, response.bytes().await?))
    }
    .await;
    match answer {
        Ok((status, content_type, body)) => {
            if status == StatusCode::OK {
                journal(state, federation, actor, &call.method, call.uri.path(), &body).await;
            }
            let mut response = (status, body).into_response();
            if let Some(value) = content_type {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            response
        }
        Err(error) if error.is_connect() => {
            tracing::warn!(peer = %peer.name, %error, "insured region unreachable");
            let message = format!(
                "参保地 region {region} 的节点 {} 无法连接 cannot be reached: nothing was sent and \
                 nothing was settled; retry later",
                peer.name
            );
            error_response(&ServiceError::new(ServiceCode::InsuredRegionUnavailable, message))
        }
        Err(error) => {
            tracing::warn!(peer = %peer.name, %error, "insured region did not answer in time");
            remember_unknown(state, actor, &call).await;
            // A read changes nothing: it is simply asked again. A write's outcome is unknown.
            let advice = if call.method == Method::GET {
                "nothing was changed; retry"
            } else {
                "the outcome is unknown; retry with the same Idempotency-Key to learn it (it \
                 never settles twice), then cancel it if it is not wanted"
            };
            let message = format!(
                "参保地 region {region} 的节点 {} 未在 {} ms 内应答 did not answer in time: {advice}",
                peer.name,
                federation.timeout.as_millis()
            );
            error_response(&ServiceError::new(ServiceCode::InsuredRegionTimeout, message))
        }
    }
}

/// Records a settlement or reversal the insured region's node answered for one of this node's
/// institutions (idempotent: a replayed answer is recorded once). False if it could not be
/// written.
pub(crate) async fn journal(
    state: &AppState,
    federation: &Federation,
    actor: &Institution,
    method: &Method,
    path: &str,
    body: &[u8],
) -> bool {
    let settles =
        method == Method::POST && (path.ends_with("/settle") || path.ends_with("/cancel"));
    let reads = method == Method::GET && path.starts_with("/v1/settlements/");
    if !(settles || reads) || actor.role != Role::Institution {
        return true;
    }
    let Ok(record) = serde_json::from_slice::<SettlementRecordDto>(body) else { return true };
    let Some(row) = visitor_row(&record, state.now().0) else {
        tracing::error!(settlement = %record.settlement_id, "unreadable settlement answer");
        return true;
    };
    if !federation.local.contains(&row.treatment) || row.institution_id != actor.institution_id {
        return true;
    }
    let (institution, visit) = (row.institution_id.clone(), record.visit_id.clone());
    let written = state
        .store
        .write(move |tx| {
            tx.insert_visitor_settlement(&row)?;
            tx.delete_pending_forwards(&institution, &visit)
        })
        .await;
    if let Err(error) = &written {
        let settlement = record.settlement_id.as_str();
        tracing::error!(%error, settlement, "visitor settlement not recorded");
    }
    written.is_ok()
}

fn visitor_row(record: &SettlementRecordDto, recorded_at: String) -> Option<VisitorSettlement> {
    let yuan = |text: &str| Fen::parse_yuan(text).ok();
    let reversal = record.status == "reversal";
    let sign = |fen: Fen| if reversal { -fen } else { fen };
    let tiers = record
        .settlement
        .tiers
        .iter()
        .filter_map(|t| Some((t.id.clone(), sign(yuan(&t.amount)?))))
        .filter(|(_, amount)| !amount.is_zero())
        .collect();
    Some(VisitorSettlement {
        settlement_id: record.settlement_id.clone(),
        institution_id: record.institution_id.clone(),
        insured: Region::parse(&record.insured_region)?,
        treatment: Region::parse(&record.settlement.treatment_region)?,
        visit_type: VisitType::parse(&record.settlement.visit)?,
        reverses: if reversal { record.reverses.clone() } else { None },
        booked_on: record.booked_at.get(..10)?.parse().ok()?,
        total: yuan(&record.total)?,
        fund_total: yuan(&record.fund_total)?,
        personal_account: yuan(&record.personal_account)?,
        cash: yuan(&record.cash)?,
        tiers,
        scheme: onestop_core::Scheme::parse(&record.settlement.scheme),
        recorded_at,
    })
}

/// Remembers a settle or a cancel whose outcome is unknown, for `resolve_pending` to ask
/// about: a settle by its visit, a cancel by its settlement.
async fn remember_unknown(state: &AppState, actor: &Institution, call: &Call) {
    if call.method != Method::POST {
        return;
    }
    let path = call.uri.path();
    let key = call.headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    let settle = path.strip_prefix("/v1/visits/").and_then(|rest| rest.strip_suffix("/settle"));
    let cancel =
        path.strip_prefix("/v1/settlements/").and_then(|rest| rest.strip_suffix("/cancel"));
    match (settle, cancel) {
        (Some(visit), _) => {
            let Some(key) = key else { return };
            remember_pending(state, actor, visit, key).await;
        }
        (_, Some(settlement)) => {
            // Without a key, the settlement id is the cancel's key (`routes::cancel`).
            let key = key.map_or_else(|| format!("cancel:{settlement}"), str::to_owned);
            remember_pending(state, actor, settlement, &key).await;
        }
        (None, None) => {}
    }
}

/// Remembers that a request about `id` (with `key`, an idempotency key or a msgid) was
/// forwarded and its outcome is not known here: a settle of a visit, a cancel of a settlement,
/// or a settlement or reversal whose record could not be fetched.
pub(crate) async fn remember_pending(state: &AppState, actor: &Institution, id: &str, key: &str) {
    let pending = PendingForward {
        institution_id: actor.institution_id.clone(),
        visit_id: id.to_owned(),
        idempotency_key: key.to_owned(),
        forwarded_at: state.now().0,
    };
    if let Err(error) = state.store.write(move |tx| tx.insert_pending_forward(&pending)).await {
        tracing::error!(%error, "pending forward not recorded");
    }
}

/// How long a lost request is asked about before it is given up as never having taken effect.
pub const PENDING_DAYS_MAX: i64 = 2;

/// Asks the insured nodes about every request whose answer was lost: a visit found settled,
/// a settlement found cancelled, a settlement or reversal found, is recorded here as if the
/// answer had arrived; what is still not there after `PENDING_DAYS_MAX` days is given up
/// (the request never took effect). Runs in the background of a federation node.
pub async fn resolve_pending(state: &AppState) {
    let Some(federation) = state.federation() else { return };
    let Ok(pending) = state.store.read(|tx| tx.pending_forwards()).await else { return };
    for forward in pending {
        if let Err(error) = resolve_one(state, &federation, &forward).await {
            tracing::warn!(id = %forward.visit_id, %error, "outcome still unknown");
        }
    }
}

async fn resolve_one(
    state: &AppState,
    federation: &Federation,
    forward: &PendingForward,
) -> Result<(), String> {
    let (kind, key) = parse_id(&forward.visit_id).ok_or("bad id")?;
    let Route::Peer(peer) = federation.route(key.region) else { return Err("not a peer's".into()) };
    let id = forward.institution_id.clone();
    let actor = state.store.read(move |tx| tx.institution(&id)).await.map_err(|e| e.to_string())?;
    let actor = actor.ok_or("the institution is gone")?;
    let get = |path: String| async {
        let response = peer_request(federation, peer, &actor, Method::GET, &path)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match response.status() {
            StatusCode::OK => Ok(Some((path, response.bytes().await.map_err(|e| e.to_string())?))),
            StatusCode::NOT_FOUND => Ok(None),
            status => Err(format!("{path}: {status}")),
        }
    };
    // The record to keep, if the request took effect.
    let found = match kind {
        IdKind::Visit => match get(format!("/v1/visits/{}", forward.visit_id)).await? {
            Some((path, body)) => {
                let visit: onestop_api::service::VisitDto =
                    serde_json::from_slice(&body).map_err(|e| format!("{path}: {e}"))?;
                match visit.settlement_id {
                    Some(settlement) => get(format!("/v1/settlements/{settlement}")).await?,
                    None => None,
                }
            }
            None => None,
        },
        IdKind::Settlement => match get(format!("/v1/settlements/{}", forward.visit_id)).await? {
            Some((path, body)) => {
                let record: SettlementRecordDto =
                    serde_json::from_slice(&body).map_err(|e| format!("{path}: {e}"))?;
                match record.reversed_by {
                    Some(reversal) => get(format!("/v1/settlements/{reversal}")).await?,
                    None => None,
                }
            }
            None => None,
        },
        IdKind::Reversal => get(format!("/v1/settlements/{}", forward.visit_id)).await?,
        IdKind::Filing | IdKind::Credit => {
            return Err("a filing or an account credit is not a settlement's".into());
        }
    };
    let (institution, id) = (forward.institution_id.clone(), forward.visit_id.clone());
    match found {
        Some((path, body)) => {
            if !journal(state, federation, &actor, &Method::GET, &path, &body).await {
                return Err("not recorded".into());
            }
        }
        None => {
            let since =
                forward.forwarded_at.parse::<jiff::Timestamp>().map_err(|e| e.to_string())?;
            if now(state).as_second() - since.as_second() <= PENDING_DAYS_MAX * 86_400 {
                return Ok(());
            }
        }
    }
    // Recorded (`journal` clears what names the visit; this clears what names the settlement),
    // or given up.
    let cleared = state.store.write(move |tx| tx.delete_pending_forwards(&institution, &id));
    cleared.await.map_err(|e| e.to_string())
}
