//! The API's one error type, answered in the upstream's envelope so
//! integrators parse a single shape:
//! `{"error": {"requestId": "...", "code": "422-01", "message": "..."}}`.

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::upstream::error::retry_secs;
use crate::upstream::{ErrorBody, ErrorEnvelope};

/// Retry-After on a storage fault: long enough for an operator or a log
/// rotation to free space, short enough that clients resume promptly.
pub const STORAGE_RETRY_AFTER: Duration = Duration::from_secs(5);

/// `Retry-After` when asking again soon helps (overloaded, shutting down,
/// a `?wait=` that ran out): at once, really, but it counts whole seconds.
pub const RETRY_SOON_SECS: u64 = 1;

tokio::task_local! {
    /// The current request's id, set by the request-id middleware.
    pub static REQUEST_ID: String;
}

pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| uuid::Uuid::new_v4().to_string())
}

/// Each variant documents its status. Internal details are logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON, or a query/path is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing or wrong bearer token.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// 404
    #[error("{0}")]
    NotFound(String),
    /// 405
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 408: the body did not arrive within `http.body_read_timeout`.
    #[error("request body not received within http.body_read_timeout")]
    BodyTimeout,
    /// 409: same id registered with a different body.
    #[error("{0}")]
    Conflict(String),
    /// 413: body over `http.max_body_bytes`.
    #[error("request body is larger than http.max_body_bytes allows")]
    TooLarge,
    /// 415: body is not `application/json` (or another accepted type).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed JSON that breaks the contract.
    #[error("{0}")]
    Invalid(String),
    /// 429: per-token registration limit.
    #[error("too many requests; retry after {0:?}")]
    TooMany(Duration),
    /// 502: the upstream failed or refused.
    #[error("{0}")]
    Upstream(String),
    /// 503 with Retry-After as given: the upstream is rate-limiting, or the
    /// bridge's upstream budget holds requests back for that long.
    #[error("{0}")]
    UpstreamLater(String, Duration),
    /// 503 with Retry-After: shutting down, too many held requests, or a
    /// dependency is down.
    #[error("{0}")]
    Unavailable(String),
    /// 202 with Retry-After: a `?wait=` ran out while the transfer was still
    /// TRACKING: accepted, not done. Unlike 404 ("no instruction will
    /// come"), asking again helps. Not a 5xx: nothing failed.
    #[error("{0}")]
    StillTracking(String),
    /// 503 with Retry-After: the store cannot write (disk full or failing).
    /// Nothing of this request was kept; a retry after the hint is safe.
    #[error("storage is unavailable (disk full or failing); retry later")]
    StorageUnavailable,
    /// 500: logged with detail, answered without.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::Unavailable(_) | Self::StorageUnavailable | Self::UpstreamLater(..) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::StillTracking(_) => StatusCode::ACCEPTED,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let request_id = current_request_id();
        if let Self::Internal(detail) = &self {
            tracing::error!(request_id = %request_id, error = %detail, "request failed");
        }
        let envelope = ErrorEnvelope {
            error: ErrorBody {
                request_id,
                message: self.to_string(),
                code: Some(format!("{}-01", status.as_u16())),
            },
        };
        let mut response = (status, axum::Json(envelope)).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::TooMany(after) | Self::UpstreamLater(_, after) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_secs(after)));
            }
            Self::Unavailable(_) | Self::StillTracking(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_SOON_SECS));
            }
            Self::StorageUnavailable => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(STORAGE_RETRY_AFTER.as_secs()),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => Self::Invalid(e.body_text()),
            JsonRejection::JsonSyntaxError(e) => Self::BadRequest(e.body_text()),
            JsonRejection::MissingJsonContentType(_) => {
                Self::UnsupportedMediaType("expected Content-Type: application/json".into())
            }
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::TooLarge,
            other => Self::BadRequest(other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "storage unavailable; answering 503");
            return Self::StorageUnavailable;
        }
        Self::internal(e)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::from(crate::store::StoreError::from(e))
    }
}
