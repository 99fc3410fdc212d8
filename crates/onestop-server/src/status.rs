//! `GET /v1/status` (public: the national app shows it to people) and the maintenance windows an
//! agency announces and cancels.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{delete, get, post};
use onestop_api::service::{MaintenanceWindowRequest, RegionStatusDto, StatusDto};
use onestop_core::Region;
use onestop_store::maintenance;
use onestop_store::model::MaintenanceWindow;

use crate::AppState;
use crate::auth::Actor;
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::routes::{Body, answer, ok_json, parse, write};

pub fn add(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/v1/status", get(status))
        .route("/v1/maintenance-windows", post(announce))
        .route("/v1/maintenance-windows/{window_id}", delete(cancel))
}

fn region_status(
    region: Region,
    name: Option<String>,
    windows: &[MaintenanceWindow],
    at: jiff::Timestamp,
) -> RegionStatusDto {
    let mine: Vec<&MaintenanceWindow> =
        windows.iter().filter(|w| w.region == region && w.ends_at > at).collect();
    let current = mine.iter().find(|w| w.starts_at <= at).map(|w| maintenance::dto(w));
    let next = mine.iter().find(|w| w.starts_at > at).map(|w| maintenance::dto(w));
    let (state, state_zh) =
        if current.is_some() { ("maintenance", "维护中") } else { ("up", "正常") };
    RegionStatusDto {
        region: region.to_string(),
        name,
        served_by: "local".to_owned(),
        state: state.to_owned(),
        state_zh: state_zh.to_owned(),
        current_window: current,
        next_window: next,
        windows: mine.iter().map(|w| maintenance::dto(w)).collect(),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusQuery {
    /// `cached`: peers' regions as last known, without asking them again (what a peer's own
    /// refresh asks for, so that two nodes asking for each other's status never recurse).
    peers: Option<String>,
}

async fn status(State(state): State<AppState>, Query(query): Query<StatusQuery>) -> Response {
    let (now, _) = state.now();
    let at = (state.clock)().timestamp();
    let windows = state.windows().await;
    let name = |region: Region| state.book.timeline(region).last().map(|p| p.name.clone());
    let federation = state.federation();
    let local: Vec<Region> = match &federation {
        Some(federation) => federation.local.clone(),
        None => state.book.regions().collect(),
    };
    let mut regions: Vec<RegionStatusDto> =
        local.iter().map(|r| region_status(*r, name(*r), &windows, at)).collect();
    if let Some(federation) = &federation {
        if query.peers.as_deref() != Some("cached") {
            federation.refresh_statuses().await;
        }
        for peer in &federation.peers {
            let known = federation.peer_status(&peer.name);
            for region in &peer.regions {
                let text = region.to_string();
                let found =
                    known.as_ref().and_then(|s| s.regions.iter().find(|r| r.region == text));
                let mut entry = found.cloned().unwrap_or_else(|| RegionStatusDto {
                    state: "unreachable".to_owned(),
                    state_zh: "无法连接".to_owned(),
                    ..region_status(*region, name(*region), &[], at)
                });
                // A peer that does not answer inside a window it announced is in maintenance,
                // as it said it would be, not merely unreachable.
                if entry.state == "unreachable"
                    && let Some(window) = entry.windows.iter().find(|w| covers(w, at)).cloned()
                {
                    entry.state = "maintenance".to_owned();
                    entry.state_zh = "维护中".to_owned();
                    entry.current_window = Some(window);
                }
                entry.served_by = peer.name.clone();
                regions.push(entry);
            }
        }
    }
    regions.sort_by(|a, b| a.region.cmp(&b.region));
    let node = federation.as_ref().map_or("onestop".to_owned(), |f| f.node.clone());
    ok_json(200, &StatusDto { node, now, regions })
}

async fn announce(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let request: MaintenanceWindowRequest = parse(&body)?;
    let at = (state.clock)().timestamp();
    let done =
        write(&state, move |tx, env| maintenance::announce(tx, env, &actor, at, &request)).await?;
    state.windows_changed().await;
    Ok(answer(201, done))
}

async fn cancel(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(window_id): Path<String>,
) -> Result<Response, ApiError> {
    let done =
        write(&state, move |tx, env| maintenance::cancel(tx, env, &actor, &window_id)).await?;
    state.windows_changed().await;
    Ok(answer(200, done))
}

/// Whether a window (times as RFC 3339 text) holds the instant `at`.
fn covers(window: &onestop_api::service::MaintenanceWindowDto, at: jiff::Timestamp) -> bool {
    let time = |text: &str| text.parse::<jiff::Timestamp>().ok();
    match (time(&window.starts_at), time(&window.ends_at)) {
        (Some(starts), Some(ends)) => starts <= at && at < ends,
        _ => false,
    }
}
