//! The `/v1` routes: each reads its input, runs one store operation and answers.

use axum::Router;
use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use onestop_api::service::{
    AccountCreditRequest, AddLinesRequest, FilingRequest, OpenVisitRequest,
    RegisterInstitutionRequest, RegisterPersonRequest, SettleRequest, UpdateVisitRequest,
};
use onestop_api::{Format, ServiceCode, ServiceError, read_document};
use onestop_store::audit::Channel;
use onestop_store::model::FilingStatus;
use onestop_store::model::StoredResponse;
use onestop_store::{
    Env, Idempotency, PersonKey, accounts, filings, import, ops, people, reports, visits,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tower::ServiceBuilder;

use crate::auth::Actor;
use crate::error::{ApiError, error_response, json_response};
use crate::extract::{Path, Query};
use crate::{AppState, BODY_BYTES_MAX, REQUESTS_IN_FLIGHT_MAX};

/// Every route, for the OpenAPI document's test: (method, path).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/health"),
    ("get", "/v1/openapi.json"),
    ("post", "/v1/institutions"),
    ("put", "/v1/institutions/{institution_id}/nhsa-keys"),
    ("post", "/v1/persons"),
    ("get", "/v1/persons/{region}/{person_id}"),
    ("post", "/v1/assistance-lists"),
    ("post", "/v1/filings"),
    ("post", "/v1/filings/{filing_id}/approve"),
    ("post", "/v1/filings/{filing_id}/withdraw"),
    ("get", "/v1/persons/{region}/{person_id}/filings"),
    ("post", "/v1/visits"),
    ("get", "/v1/visits/{visit_id}"),
    ("post", "/v1/visits/{visit_id}/lines"),
    ("delete", "/v1/visits/{visit_id}/lines/{line_no}"),
    ("post", "/v1/visits/{visit_id}/pre-settle"),
    ("post", "/v1/visits/{visit_id}/settle"),
    ("get", "/v1/settlements/{settlement_id}"),
    ("post", "/v1/settlements/{settlement_id}/cancel"),
    ("get", "/v1/invariants"),
    ("get", "/v1/audit-log"),
    ("get", "/v1/reconciliation"),
    ("post", "/v1/reconciliation"),
    ("get", "/v1/clearing"),
    ("put", "/v1/prepayments/{month}"),
    ("get", "/v1/statistics"),
    ("get", "/v1/status"),
    ("post", "/v1/maintenance-windows"),
    ("delete", "/v1/maintenance-windows/{window_id}"),
    ("post", "/fsi/api/rsfComIfsService/callService"),
    ("post", "/fsi/api/rsfComIfsService/callService/{infno}"),
];

pub fn router(state: AppState) -> Router {
    let limits = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
            error_response(&ServiceError::new(
                ServiceCode::ServerBusy,
                "the service is at its limit of requests in flight; retry",
            ))
        }))
        .load_shed()
        .concurrency_limit(REQUESTS_IN_FLIGHT_MAX);
    let gateway = axum::middleware::from_fn_with_state(state.clone(), crate::gateway::gateway);
    crate::status::add(crate::money_routes::add(crate::audit_routes::add(Router::new())))
        .route("/v1/health", get(health))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/institutions", post(register_institution))
        .route("/v1/institutions/{institution_id}/nhsa-keys", axum::routing::put(set_nhsa_keys))
        .route("/v1/persons", post(register_person))
        .route("/v1/persons/{region}/{person_id}", get(person))
        .route("/v1/assistance-lists", post(import_list))
        .route("/v1/filings", post(file))
        .route("/v1/filings/{filing_id}/approve", post(approve_filing))
        .route("/v1/filings/{filing_id}/withdraw", post(withdraw_filing))
        .route("/v1/persons/{region}/{person_id}/filings", get(person_filings))
        .route("/v1/persons/{region}/{person_id}/account-credits", post(credit_account))
        .route("/v1/visits", post(open_visit))
        .route("/v1/visits/{visit_id}", get(get_visit).patch(update_visit))
        .route("/v1/visits/{visit_id}/lines", post(add_lines))
        .route("/v1/visits/{visit_id}/lines/{line_no}", delete(delete_line))
        .route("/v1/visits/{visit_id}/pre-settle", post(presettle))
        .route("/v1/visits/{visit_id}/settle", post(settle))
        .route("/v1/settlements/{settlement_id}", get(get_settlement))
        .route("/v1/settlements/{settlement_id}/cancel", post(cancel))
        .route("/v1/invariants", get(invariants))
        .route(crate::nhsa::CALL_SERVICE, post(crate::nhsa::call_service))
        .route(
            &format!("{}/{{infno}}", crate::nhsa::CALL_SERVICE),
            post(crate::nhsa::call_service_with_infno),
        )
        .fallback(|| async {
            ApiError::code(ServiceCode::RouteNotFound, "no such route; see /v1/openapi.json")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::code(ServiceCode::MethodNotAllowed, "this path does not take that method")
        })
        .layer(gateway)
        .layer(limits)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            error_response(&ServiceError::new(
                ServiceCode::InternalError,
                "an invariant failed; nothing was written",
            ))
        }))
        .with_state(state)
}

/// A request body, read up to `BODY_BYTES_MAX` (past it: `body_too_large`).
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Body, ApiError> {
        axum::body::to_bytes(request.into_body(), BODY_BYTES_MAX).await.map(Body).map_err(|_| {
            ApiError::code(
                ServiceCode::BodyTooLarge,
                format!("the body exceeds {BODY_BYTES_MAX} bytes"),
            )
        })
    }
}

/// Reads a JSON body with the wire formats' checks; an empty body is the default request.
pub(crate) fn parse<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::code(ServiceCode::BodyMalformed, "the body is not UTF-8"))?;
    Ok(read_document(text, Format::Json)?)
}

pub(crate) fn ok_json<T: serde::Serialize>(status: u16, value: &T) -> Response {
    json_response(status, serde_json::to_string(value).unwrap_or_default())
}

pub(crate) fn answer<T: serde::Serialize>(
    status: u16,
    answer: Result<T, ServiceError>,
) -> Response {
    match answer {
        Ok(value) => ok_json(status, &value),
        Err(error) => error_response(&error),
    }
}

/// The response as stored; a settlement's record was built before its commit was acknowledged.
fn stored(response: StoredResponse) -> Result<Response, ApiError> {
    Ok(json_response(response.status, response.body.into_inner()?))
}

/// Runs `work` in one write transaction with the request's environment (a request of the JSON
/// API: the national interface names its own channel).
pub(crate) async fn write<T, F>(state: &AppState, mut work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnMut(&mut dyn onestop_store::Tx, &Env<'_>) -> onestop_store::tx::Result<T> + Send + 'static,
{
    let (now, today) = state.now();
    let book = state.book.clone();
    let write = move |tx: &mut dyn onestop_store::Tx| {
        work(tx, &Env { book: &book, now: now.clone(), today, channel: Channel::Api })
    };
    Ok(state.store.write(write).await?)
}

pub(crate) async fn read<T, F>(state: &AppState, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut dyn onestop_store::Tx, &Env<'_>) -> onestop_store::tx::Result<T>
        + Send
        + 'static,
{
    let (now, today) = state.now();
    let book = state.book.clone();
    let read = move |tx: &mut dyn onestop_store::Tx| {
        work(tx, &Env { book: &book, now, today, channel: Channel::Api })
    };
    Ok(state.store.read(read).await?)
}

/// `ok`, or `degraded` (503) for a minute after the store failed, with its error: what a
/// load balancer or a monitor checks.
async fn health(State(state): State<AppState>) -> Response {
    match state.store.recent_failure(crate::STORE_FAILURE_SHOWN) {
        None => ok_json(200, &serde_json::json!({ "status": "ok", "store": state.store.kind() })),
        Some((ago, error)) => ok_json(
            503,
            &serde_json::json!({
                "status": "degraded",
                "status_zh": "存储故障",
                "store": state.store.kind(),
                "last_store_error": error,
                "seconds_ago": ago.as_secs(),
            }),
        ),
    }
}

async fn openapi() -> Response {
    ok_json(200, &crate::openapi::document())
}

async fn register_institution(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let request: RegisterInstitutionRequest = parse(&body)?;
    let done =
        write(&state, move |tx, env| people::register_institution(tx, env, &actor, &request))
            .await?;
    // A registration again replaces the institution's token: the old one stops at once.
    state.forget_actors();
    Ok(answer(201, done))
}

/// The keys of an institution for the national interface's encrypted and signed mode.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NhsaKeysRequest {
    encrypted: bool,
    sm4_key: String,
    sm2_public_key: Option<String>,
}

async fn set_nhsa_keys(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(institution_id): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let request: NhsaKeysRequest = parse(&body)?;
    if onestop_nhsa::crypto::sm4_key(&request.sm4_key).is_err() {
        return Err(ApiError::code(
            ServiceCode::IdInvalid,
            "an SM4 key is 16 characters or 32 hex digits",
        ));
    }
    let done = write(&state, move |tx, _| {
        let target = tx.institution(&institution_id)?;
        let allowed = actor.role == onestop_store::Role::Agency
            && target.as_ref().is_some_and(|t| t.region == actor.region);
        if !allowed {
            return Ok(Err(ServiceError::new(
                ServiceCode::Forbidden,
                "only the agency of the institution's region sets its keys",
            )));
        }
        let keys = onestop_store::model::NhsaKeys {
            encrypted: request.encrypted,
            sm4_key: request.sm4_key.clone(),
            sm2_public_key: request.sm2_public_key.clone(),
        };
        tx.set_nhsa_keys(&institution_id, &keys)?;
        Ok(Ok(serde_json::json!({ "institution_id": institution_id, "encrypted": keys.encrypted })))
    })
    .await?;
    Ok(answer(200, done))
}

async fn register_person(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let request: RegisterPersonRequest = parse(&body)?;
    let done =
        write(&state, move |tx, env| people::register_person(tx, env, &actor, &request)).await?;
    Ok(answer(200, done))
}

#[derive(Deserialize)]
struct YearQuery {
    year: Option<i16>,
}

async fn person(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path((region, person_id)): Path<(String, String)>,
    Query(query): Query<YearQuery>,
) -> Result<Response, ApiError> {
    let region = people::region_of(&region)?;
    let key = PersonKey::new(region, &person_id).ok_or_else(|| {
        ApiError::code(ServiceCode::IdInvalid, format!("`{person_id}` is not a person id"))
    })?;
    let year = query.year.unwrap_or_else(|| state.now().1.year());
    if !(1900..=2100).contains(&year) {
        let error = ServiceError::new(
            ServiceCode::QueryInvalid,
            format!("year {year} is not between 1900 and 2100 (查询参数错误)"),
        );
        return Err(ApiError::Service(error.field("year")));
    }
    // A read of a person's data is written to the audit log, so it goes through the writer.
    let done =
        write(&state, move |tx, env| people::person_view(tx, env, &actor, &key, year)).await?;
    Ok(answer(200, done))
}

/// `POST /v1/persons/{region}/{person_id}/account-credits`: the agency credits the person's
/// personal account (个人账户划入), exactly once under its `Idempotency-Key`.
async fn credit_account(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path((region, person_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let idempotency_key = idempotency_key(&headers)?.ok_or_else(|| {
        ApiError::code(
            ServiceCode::IdempotencyKeyRequired,
            "a credit needs an `Idempotency-Key` header, so that a retry never credits twice",
        )
    })?;
    let key = person_key(&region, &person_id)?;
    let request: AccountCreditRequest = parse(&body)?;
    // The request as read, as for settle: a rebuilt body is the same request.
    let canonical = Bytes::from(serde_json::to_vec(&request).expect("a credit request serializes"));
    let sha = request_sha256(&method, &uri, &canonical);
    let response = write(&state, move |tx, env| {
        let idempotency = Idempotency { key: &idempotency_key, request_sha256: &sha, also: None };
        accounts::credit_account(tx, env, &actor, &key, &request, &idempotency)
    })
    .await?;
    stored(response)
}

fn person_key(region: &str, person_id: &str) -> Result<PersonKey, ApiError> {
    let region = people::region_of(region)?;
    PersonKey::new(region, person_id).ok_or_else(|| {
        ApiError::code(ServiceCode::IdInvalid, format!("`{person_id}` is not a person id"))
    })
}

async fn file(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let request: FilingRequest = parse(&body)?;
    let done = write(&state, move |tx, env| filings::file(tx, env, &actor, &request)).await?;
    Ok(answer(201, done))
}

async fn approve_filing(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(filing_id): Path<String>,
) -> Result<Response, ApiError> {
    let to = FilingStatus::Approved;
    let done =
        write(&state, move |tx, env| filings::set_status(tx, env, &actor, &filing_id, to)).await?;
    Ok(answer(200, done))
}

async fn withdraw_filing(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(filing_id): Path<String>,
) -> Result<Response, ApiError> {
    let to = FilingStatus::Withdrawn;
    let done =
        write(&state, move |tx, env| filings::set_status(tx, env, &actor, &filing_id, to)).await?;
    Ok(answer(200, done))
}

async fn person_filings(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path((region, person_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let key = person_key(&region, &person_id)?;
    // Reads of a person's data are audited, so they go through the writer.
    let done = write(&state, move |tx, env| filings::list(tx, env, &actor, &key)).await?;
    Ok(answer(200, done))
}

#[derive(Deserialize)]
struct ListQuery {
    file_name: Option<String>,
}

async fn import_list(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let file_name = query.file_name.unwrap_or_else(|| "list".to_owned());
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let lower = file_name.to_ascii_lowercase();
    let is_xlsx = import::is_spreadsheet(&body)
        || content_type.contains("spreadsheetml")
        || content_type.contains("ms-excel")
        || content_type.contains("opendocument.spreadsheet")
        || [".xlsx", ".xls", ".ods"].iter().any(|ext| lower.ends_with(ext));
    let cells = if is_xlsx { import::xlsx_cells(&body) } else { import::csv_cells(&body) }?;
    let rows = import::parse_rows(&cells)?;
    let done =
        write(&state, move |tx, env| people::import_assistance(tx, env, &actor, &file_name, &rows))
            .await?;
    Ok(answer(200, done))
}

async fn open_visit(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let request: OpenVisitRequest = parse(&body)?;
    let done = write(&state, move |tx, env| visits::open_visit(tx, env, &actor, &request)).await?;
    Ok(answer(201, done))
}

async fn get_visit(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(visit_id): Path<String>,
) -> Result<Response, ApiError> {
    // Reads of a person's data are audited, so they go through the writer.
    let done = write(&state, move |tx, env| visits::get_visit(tx, env, &actor, &visit_id)).await?;
    Ok(answer(200, done))
}

async fn add_lines(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(visit_id): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let request: AddLinesRequest = parse(&body)?;
    let done =
        write(&state, move |tx, env| visits::add_lines(tx, env, &actor, &visit_id, &request))
            .await?;
    Ok(answer(200, done))
}

async fn update_visit(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(visit_id): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let request: UpdateVisitRequest = parse(&body)?;
    let done =
        write(&state, move |tx, env| visits::update_visit(tx, env, &actor, &visit_id, &request))
            .await?;
    Ok(answer(200, done))
}

async fn delete_line(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path((visit_id, line_no)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    let done =
        write(&state, move |tx, env| visits::delete_line(tx, env, &actor, &visit_id, line_no))
            .await?;
    Ok(answer(200, done))
}

async fn presettle(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(visit_id): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let request: SettleRequest = parse(&body)?;
    let presettle = move |tx: &mut dyn onestop_store::Tx, env: &Env<'_>| {
        ops::presettle_json(tx, env, &actor, &visit_id, &request)
    };
    match read(&state, presettle).await? {
        Ok(json) => Ok(json_response(200, json)),
        Err(error) => Ok(error_response(&error)),
    }
}

/// The idempotency key of a request: required for settle, optional for cancel.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 64 && k.bytes().all(|b| b.is_ascii_graphic()));
    key.map(|k| Some(k.to_owned())).ok_or_else(|| {
        ApiError::code(
            ServiceCode::IdempotencyKeyInvalid,
            "an idempotency key is 1 to 64 printable ASCII characters",
        )
    })
}

fn request_sha256(method: &Method, uri: &Uri, body: &Bytes) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(uri.path().as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    hex::encode(hasher.finalize())
}

async fn settle(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(visit_id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?.ok_or_else(|| {
        ApiError::code(
            ServiceCode::IdempotencyKeyRequired,
            "settle needs an `Idempotency-Key` header",
        )
    })?;
    let request: SettleRequest = parse(&body)?;
    // The request as read, not its bytes: a retry that rebuilt its JSON (other whitespace or
    // key order, or `{}` for an empty body) is the same request. A record stored by an earlier
    // version under the hash of the bytes sent still replays (`also`).
    let canonical = if request == SettleRequest::default() {
        Bytes::new()
    } else {
        Bytes::from(serde_json::to_vec(&request).expect("a settle request serializes"))
    };
    let sha = request_sha256(&method, &uri, &canonical);
    let as_sent = request_sha256(&method, &uri, &body);
    let response = write(&state, move |tx, env| {
        let also = Some(as_sent.as_str());
        let idempotency = Idempotency { key: &key, request_sha256: &sha, also };
        ops::settle(tx, env, &actor, &visit_id, &request, &idempotency)
    })
    .await?;
    stored(response)
}

/// `POST /v1/settlements/{id}/cancel`: a full reversal, nothing to choose.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CancelRequest {}

async fn cancel(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(settlement_id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    // Without a key, the settlement id is the key: cancelling twice replays the reversal.
    let key = idempotency_key(&headers)?.unwrap_or_else(|| format!("cancel:{settlement_id}"));
    // A cancel takes no fields: a body, if any, is `{}`, and it is no part of the request.
    let CancelRequest {} = parse(&body)?;
    let sha = request_sha256(&method, &uri, &Bytes::new());
    let as_sent = request_sha256(&method, &uri, &body);
    let response = write(&state, move |tx, env| {
        let also = Some(as_sent.as_str());
        let idempotency = Idempotency { key: &key, request_sha256: &sha, also };
        ops::cancel(tx, env, &actor, &settlement_id, &idempotency)
    })
    .await?;
    stored(response)
}

async fn get_settlement(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // Reads of a person's data are audited, so they go through the writer.
    let done = write(&state, move |tx, env| ops::get_settlement(tx, env, &actor, &id)).await?;
    Ok(answer(200, done))
}

#[derive(Deserialize)]
pub(crate) struct DayQuery {
    day: Option<String>,
    institution_id: Option<String>,
}

pub(crate) async fn reconciliation(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Query(query): Query<DayQuery>,
) -> Result<Response, ApiError> {
    let day = match &query.day {
        Some(text) => onestop_api::claim::parse_date_as(text, "day", ServiceCode::PeriodInvalid)?,
        None => state.now().1,
    };
    let institution = match query.institution_id {
        Some(id) => id,
        None if actor.role == onestop_store::Role::Institution => actor.institution_id.clone(),
        None => {
            let message = "an agency or auditor names the institution whose day it reads: \
                           ?institution_id=... (查询参数错误)";
            let error = ServiceError::new(ServiceCode::QueryInvalid, message);
            return Err(ApiError::Service(error.field("institution_id")));
        }
    };
    let done =
        read(&state, move |tx, _| reports::reconciliation(tx, &actor, &institution, day)).await?;
    Ok(answer(200, done))
}

async fn invariants(
    State(state): State<AppState>,
    Actor(actor): Actor,
) -> Result<Response, ApiError> {
    if actor.role == onestop_store::Role::Institution {
        return Err(ServiceError::new(
            ServiceCode::Forbidden,
            "only agencies and auditors check the store",
        )
        .into());
    }
    let violations = read(&state, |tx, _| ops::violations(tx)).await?;
    Ok(ok_json(200, &serde_json::json!({ "violations": violations })).into_response())
}
