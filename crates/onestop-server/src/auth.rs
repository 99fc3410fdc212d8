//! Authentication: `Authorization: Bearer <token>` names an institution, agency or auditor.
//! Tokens are stored only as SHA-256 hashes; resolved credentials are cached in memory. On a
//! request a peer node forwarded, the actor is the one the peer authenticated.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use onestop_api::ServiceCode;
use onestop_store::{Institution, people};

use crate::AppState;
use crate::error::ApiError;
use crate::gateway::Forwarded;

/// The authenticated caller of a request.
pub struct Actor(pub Institution);

fn unauthorized() -> ApiError {
    ApiError::code(
        ServiceCode::Unauthorized,
        "send `Authorization: Bearer <token>` with a valid token",
    )
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Actor, ApiError> {
        if let Some(Forwarded(actor)) = parts.extensions.get::<Forwarded>() {
            return Ok(Actor(actor.clone()));
        }
        authenticate(&parts.headers, state).await.map(Actor)
    }
}

/// The institution, agency or auditor a request's bearer token names.
pub async fn authenticate(headers: &HeaderMap, state: &AppState) -> Result<Institution, ApiError> {
    let header = headers.get(axum::http::header::AUTHORIZATION).ok_or_else(unauthorized)?;
    let token = header
        .to_str()
        .ok()
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
        .map(str::trim)
        .filter(|token| !token.is_empty() && token.len() <= 128)
        .ok_or_else(unauthorized)?;
    let hash = people::token_sha256(token);
    if let Some(found) = state.cached_actor(&hash) {
        return Ok(found);
    }
    let token = token.to_owned();
    let generation = state.actors_generation();
    let found = state.store.read(move |tx| people::authenticate(tx, &token)).await?;
    let found = found.ok_or_else(unauthorized)?;
    state.cache_actor(hash, found.clone(), generation);
    Ok(found)
}
