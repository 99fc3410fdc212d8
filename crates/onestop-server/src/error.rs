//! Every error the HTTP layer answers, as `{code, message, field}` JSON with its status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use onestop_api::{ErrorBody, ServiceCode, ServiceError};
use onestop_store::StoreError;

/// An error on its way to the client.
#[derive(Debug)]
pub enum ApiError {
    /// A business answer: the request was refused for a reason the client can act on.
    Service(ServiceError),
    /// The store failed: 503 when it is saturated, otherwise 500 (and logged).
    Store(StoreError),
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> ApiError {
        ApiError::Service(error)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        ApiError::Store(error)
    }
}

impl From<onestop_core::Rejection> for ApiError {
    fn from(rejection: onestop_core::Rejection) -> ApiError {
        ApiError::Service(rejection.into())
    }
}

impl ApiError {
    pub fn code(code: ServiceCode, message: impl Into<String>) -> ApiError {
        ApiError::Service(ServiceError::new(code, message))
    }
}

/// A JSON response with a status.
pub fn json_response(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    response
}

pub fn error_response(error: &ServiceError) -> Response {
    let body = serde_json::to_string(&error.body).unwrap_or_default();
    json_response(error.status, body)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Service(error) => error_response(&error),
            ApiError::Store(StoreError::Busy) => error_response(&ServiceError::new(
                ServiceCode::ServerBusy,
                "the store is at its limit of waiting requests; retry",
            )),
            ApiError::Store(error) => {
                tracing::error!(%error, "store failure");
                error_response(&ServiceError::new(
                    ServiceCode::InternalError,
                    format!(
                        "the store failed ({}): retry with the same idempotency key, which \
                         settles once whether or not the failed attempt was written",
                        error.kind()
                    ),
                ))
            }
        }
    }
}

/// The body of an error, for responses built outside the router (the connection limit).
pub fn error_json(code: ServiceCode, message: &str) -> String {
    let body = ErrorBody { code: code.code().to_owned(), message: message.to_owned(), field: None };
    serde_json::to_string(&body).unwrap_or_default()
}
