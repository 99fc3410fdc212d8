//! Routes about money between parties: monthly clearing between regions (清算), prepayment
//! balances, a hospital's reconciliation of its day (对账), and statistics.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use onestop_api::service::ReconcileRequest;
use onestop_api::{ServiceCode, ServiceError};
use onestop_store::{clearing, reports};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Actor;
use crate::error::{ApiError, error_response};
use crate::extract::{Path, Query};
use crate::routes::{Body, answer, parse, read, write};

pub fn add(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/v1/clearing", get(statement))
        .route("/v1/prepayments/{month}", put(set_prepayment))
        .route("/v1/reconciliation", post(reconcile).get(crate::routes::reconciliation))
        .route("/v1/statistics", get(statistics))
}

#[derive(Deserialize)]
struct ClearingQuery {
    month: Option<String>,
    format: Option<String>,
}

async fn statement(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Query(query): Query<ClearingQuery>,
) -> Result<Response, ApiError> {
    let month = query.month.unwrap_or_default();
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            let message = format!("format `{other}` is not one of: json, csv");
            let error = ServiceError::new(ServiceCode::QueryInvalid, message).field("format");
            return Err(ApiError::Service(error));
        }
    };
    let done = read(&state, move |tx, _| clearing::statement(tx, &actor, &month)).await?;
    let statement = match done {
        Ok(statement) => statement,
        Err(error) => return Ok(error_response(&error)),
    };
    if !csv {
        return Ok(answer(200, Ok::<_, ServiceError>(statement)));
    }
    let name = format!("clearing-{}-{}.csv", statement.region, statement.month);
    let mut response = onestop_clearing::statement_csv(&statement).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PrepaymentRequest {
    balance: onestop_api::wire::Scalar,
}

async fn set_prepayment(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(month): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let request: PrepaymentRequest = parse(&body)?;
    let balance = request.balance.as_str().to_owned();
    let done =
        write(&state, move |tx, env| clearing::set_prepayment(tx, env, &actor, &month, &balance))
            .await?;
    Ok(answer(200, done))
}

async fn reconcile(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let request: ReconcileRequest = parse(&body)?;
    let done = read(&state, move |tx, _| reports::reconcile(tx, &actor, &request)).await?;
    Ok(answer(200, done))
}

#[derive(Deserialize)]
struct PeriodQuery {
    from: Option<String>,
    to: Option<String>,
}

async fn statistics(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Query(query): Query<PeriodQuery>,
) -> Result<Response, ApiError> {
    let today = state.now().1;
    let date = |text: Option<String>, field: &str, default| match text {
        Some(text) => onestop_api::claim::parse_date_as(&text, field, ServiceCode::PeriodInvalid)
            .map_err(ApiError::from),
        None => Ok(default),
    };
    let first_of_month = today.first_of_month();
    let from = date(query.from, "from", first_of_month)?;
    let to = date(query.to, "to", today)?;
    let region = actor.region;
    let done =
        read(&state, move |tx, _| clearing::statistics(tx, &actor, region, from, to)).await?;
    Ok(answer(200, done))
}
