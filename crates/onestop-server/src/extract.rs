//! Path and query extractors whose rejections are the API's JSON errors (`{code, message,
//! field}`), not axum's plain-text ones.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use onestop_api::{ServiceCode, ServiceError};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The path's parameters; a segment that does not parse is `id_invalid`.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Path<T>, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(ApiError::code(
                ServiceCode::IdInvalid,
                format!("the path `{}` is not valid: {}", parts.uri.path(), rejection.body_text()),
            )),
        }
    }
}

/// The query's parameters; one that does not parse is `query_invalid`, naming it.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Query<T>, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        match serde_path_to_error::deserialize::<_, T>(deserializer) {
            Ok(value) => Ok(Query(value)),
            Err(error) => {
                let field = error.path().to_string();
                let message =
                    format!("the query `{query}` is not valid: {} (查询参数错误)", error.inner());
                let error = ServiceError::new(ServiceCode::QueryInvalid, message);
                Err(ApiError::Service(if field == "." { error } else { error.field(field) }))
            }
        }
    }
}
