//! `ApiError` and the only writer of the JSON error envelope
//! `{"error":{"code","message","request_id"}}`.

use serde::Serialize;
use std::convert::Infallible;
use utoipa::ToSchema;

use warp::http::{HeaderValue, StatusCode, header};
use warp::reject::Rejection;
use warp::reply::Response;

/// The error body of every non-2xx API response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// Inside the envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `not_found`, `invalid_json`, `rate_limited`.
    pub code: String,
    /// What went wrong, for humans.
    pub message: String,
    /// Same as the `x-request-id` response header.
    pub request_id: String,
}

/// Every error an HTTP client can see, with its status and stable code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// No route for this path.
    #[error("no such resource")]
    NotFound,
    /// The path exists but not with this method.
    #[error("method not allowed for this resource")]
    MethodNotAllowed,
    /// Malformed or wrongly typed JSON; the message names the field.
    #[error("{0}")]
    InvalidJson(String),
    /// Malformed query string.
    #[error("{0}")]
    InvalidQuery(String),
    /// Well-formed but unacceptable input, with a stable code.
    #[error("{message}")]
    BadRequest {
        /// Stable machine-readable code.
        code: &'static str,
        /// What to fix.
        message: String,
    },
    /// Body over the route's limit.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The upload is not audio Veza can read.
    #[error("{0}")]
    NotAudio(String),
    /// Wrong `content-type`.
    #[error("content-type must be {expected}")]
    UnsupportedMediaType {
        /// What the route accepts.
        expected: String,
    },
    /// No valid credentials (or a revoked, expired or unknown token).
    #[error("{0}")]
    Unauthorized(String),
    /// Refused by policy (role, CORS origin).
    #[error("{0}")]
    Forbidden(String),
    /// Credentials fine, request refused with a specific code (e.g. CSRF).
    #[error("{message}")]
    Denied {
        /// Stable machine-readable code.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// The request conflicts with the current state.
    #[error("{message}")]
    Conflict {
        /// Stable machine-readable code.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// The track was taken down; its URLs and objects are gone for legal reasons.
    #[error("this track was taken down and is unavailable for legal reasons")]
    TakenDown,
    /// A `Range` that selects no byte of the object.
    #[error("range not satisfiable: the object has {size} bytes")]
    RangeNotSatisfiable {
        /// Size of the whole object, for `Content-Range: bytes */{size}`.
        size: u64,
    },
    /// Too many requests from this client.
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until a retry can succeed.
        retry_after_secs: u64,
    },
    /// A dependency is down.
    #[error("{0}")]
    Unavailable(String),
    /// The request body stopped arriving (`server.body_timeout_secs`).
    #[error("the request body sent nothing for {secs} s")]
    BodyTimeout {
        /// The limit that was reached.
        secs: u64,
    },
    /// The blob store cannot be reached (or answers 5xx); nothing was stored.
    #[error(
        "the media store is unavailable, so nothing was stored; retry in {STORE_RETRY_AFTER_SECS} s"
    )]
    StoreUnavailable,
    /// No space left where the request had to write; nothing was kept. The reason says where
    /// (never a path).
    #[error("{0}")]
    InsufficientStorage(&'static str),
    /// Bounded work (password hashing) is at capacity; retry after a second.
    #[error("the server is busy; retry in a second")]
    Busy,
    /// A bug or an unexpected failure; details are in the log, not the response.
    #[error("internal error; the request id in this response finds it in the log")]
    Internal,
}

impl warp::reject::Reject for ApiError {}

impl ApiError {
    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::InvalidJson(_) | Self::InvalidQuery(_) | Self::BadRequest { .. } => {
                StatusCode::BAD_REQUEST
            }
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } | Self::NotAudio(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::Denied { .. } => StatusCode::FORBIDDEN,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::TakenDown => StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
            Self::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::Busy | Self::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InvalidJson(_) => "invalid_json",
            Self::InvalidQuery(_) => "invalid_query",
            Self::BadRequest { code, .. } => code,
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::NotAudio(_) => "not_audio",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::Denied { code, .. } | Self::Conflict { code, .. } => code,
            Self::TakenDown => "taken_down",
            Self::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Busy => "busy",
            Self::StoreUnavailable => "store_unavailable",
            Self::InsufficientStorage(_) => "insufficient_storage",
            Self::BodyTimeout { .. } => "body_timeout",
            Self::Internal => "internal",
        }
    }

    /// Maps warp's own rejections (and ours) to an `ApiError`.
    pub fn from_rejection(rej: &Rejection) -> ApiError {
        if let Some(e) = rej.find::<ApiError>() {
            return e.clone();
        }
        if rej.is_not_found() {
            return ApiError::NotFound;
        }
        if rej.find::<warp::reject::MethodNotAllowed>().is_some() {
            return ApiError::MethodNotAllowed;
        }
        if let Some(e) = rej.find::<warp::reject::InvalidQuery>() {
            return ApiError::InvalidQuery(e.to_string());
        }
        if rej.find::<warp::reject::PayloadTooLarge>().is_some() {
            return ApiError::PayloadTooLarge { limit: 0 };
        }
        if rej.find::<warp::reject::UnsupportedMediaType>().is_some() {
            return ApiError::UnsupportedMediaType {
                expected: "application/json".into(),
            };
        }
        if let Some(e) = rej.find::<warp::reject::InvalidHeader>() {
            return ApiError::BadRequest {
                code: "invalid_header",
                message: format!("invalid {} header", e.name()),
            };
        }
        if let Some(e) = rej.find::<warp::reject::MissingHeader>() {
            return ApiError::BadRequest {
                code: "missing_header",
                message: format!("missing {} header", e.name()),
            };
        }
        if let Some(e) = rej.find::<warp::filters::cors::CorsForbidden>() {
            return ApiError::Forbidden(e.to_string());
        }
        tracing::error!(rejection = ?rej, "unhandled rejection");
        ApiError::Internal
    }

    /// A response carrying this error; [`finish`] writes its body with the request id.
    pub fn into_response(self) -> Response {
        let mut resp = Response::new("".into());
        *resp.status_mut() = self.status();
        match &self {
            ApiError::RateLimited { retry_after_secs } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::Busy => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            // Refused mid-body (the spool hit a full disk) or before it (the store is known to
            // be down): the rest of the body is never read, so the connection cannot carry
            // another request; say so, or a client's pool reuses it and its next request fails.
            ApiError::InsufficientStorage(_) => {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            ApiError::StoreUnavailable => {
                resp.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(STORE_RETRY_AFTER_SECS),
                );
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            ApiError::RangeNotSatisfiable { size } => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
            }
            ApiError::Unauthorized(_) => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"veza\""),
                );
            }
            _ => {}
        }
        resp.extensions_mut().insert(self);
        resp
    }
}

impl From<crate::accounts::HashBusy> for ApiError {
    fn from(_: crate::accounts::HashBusy) -> Self {
        ApiError::Busy
    }
}

/// `retry-after` of a 503 `store_unavailable`: about how long a retried job waits too.
pub const STORE_RETRY_AFTER_SECS: u64 = 30;

/// 507's reason when the data dir's disk (upload spool, work dir) is full.
const DISK_FULL: &str = "the server's disk is full, so there is no room to receive this upload; \
    nothing was kept (an administrator must free space in the data dir)";
/// 507's reason when the blob store is full.
const STORE_FULL: &str = "the media store is full, so there is no room to keep this file; \
    nothing was kept (an administrator must free space or raise the store's quota)";
/// 507's reason when SQLite could not write.
const DATABASE_FULL: &str = "the server's disk is full, so the database cannot record this \
    change; nothing was changed (an administrator must free space in the data dir)";

impl From<crate::storage::StoreError> for ApiError {
    fn from(e: crate::storage::StoreError) -> ApiError {
        use crate::storage::{Fault, StoreError as S};
        match (&e, e.fault()) {
            // The database names an object the store lacks: ours to fix, not the client's.
            (S::NotFound(_), _) => {
                tracing::error!(error = %e, "blob store error");
                ApiError::Internal
            }
            (S::TooLarge { limit }, _) => ApiError::PayloadTooLarge { limit: *limit },
            (_, Fault::Unavailable) => {
                tracing::warn!(error = %e, "blob store unavailable");
                ApiError::StoreUnavailable
            }
            (_, Fault::Full) => {
                tracing::warn!(error = %e, "blob store full");
                ApiError::InsufficientStorage(STORE_FULL)
            }
            (_, Fault::Other) => {
                tracing::error!(error = %e, "blob store error");
                ApiError::Internal
            }
        }
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> ApiError {
        if e.is_full() {
            tracing::warn!(error = %e, "database write refused: disk full");
            return ApiError::InsufficientStorage(DATABASE_FULL);
        }
        tracing::error!(error = %e, "database error");
        ApiError::Internal
    }
}

impl From<crate::accounts::AccountsError> for ApiError {
    fn from(e: crate::accounts::AccountsError) -> ApiError {
        use crate::accounts::AccountsError as A;
        match e {
            A::InvalidUsername(m) => ApiError::BadRequest {
                code: "invalid_username",
                message: m,
            },
            A::WeakPassword(m) => ApiError::BadRequest {
                code: "weak_password",
                message: m,
            },
            e @ A::UsernameTaken(_) => ApiError::Conflict {
                code: "username_taken",
                message: e.to_string(),
            },
            A::NotFound(_) => ApiError::NotFound,
            e @ A::LastAdmin => ApiError::Conflict {
                code: "last_admin",
                message: e.to_string(),
            },
            e @ A::AlreadySetUp => ApiError::Conflict {
                code: "already_set_up",
                message: e.to_string(),
            },
            e @ (A::Db(_) | A::Hash(_) | A::Task(_) | A::Key(_)) => {
                tracing::error!(error = %e, "accounts error");
                ApiError::Internal
            }
        }
    }
}

impl From<crate::library::LibraryError> for ApiError {
    fn from(e: crate::library::LibraryError) -> ApiError {
        use crate::library::LibraryError as L;
        use crate::storage::Fault;
        match e {
            L::NotAudio(m) => ApiError::NotAudio(format!("not an audio file Veza can read ({m})")),
            L::TooLarge { limit } => ApiError::PayloadTooLarge { limit },
            L::Invalid { field, message } => ApiError::BadRequest {
                code: "invalid_field",
                message: format!("{field}: {message}"),
            },
            L::NotFound => ApiError::NotFound,
            e @ L::Body(_) => ApiError::BadRequest {
                code: "invalid_body",
                message: e.to_string(),
            },
            L::Store(e) => e.into(),
            L::Task(e) => e.into(),
            L::Db(e) => crate::db::DbError::Sqlite(e).into(),
            L::Io { source, .. } if crate::storage::io_fault(&source) == Fault::Full => {
                tracing::warn!(error = %source, "local write refused: disk full");
                ApiError::InsufficientStorage(DISK_FULL)
            }
            e => {
                tracing::error!(error = %e, "library error");
                ApiError::Internal
            }
        }
    }
}

impl From<crate::tracks::TrackError> for ApiError {
    fn from(e: crate::tracks::TrackError) -> ApiError {
        use crate::tracks::TrackError as T;
        match e {
            T::Library(e) => e.into(),
            // The library API and the stream API say nothing about tracks a caller may not see.
            T::Hidden(_) => ApiError::NotFound,
            T::TakenDown => ApiError::TakenDown,
            T::Conflict { code, message } => ApiError::Conflict { code, message },
            T::HlsNotReady => ApiError::Conflict {
                code: "hls_not_ready",
                message: "this track has no HLS renditions yet; ask for format=original, or retry once it is packaged".into(),
            },
            T::Signing(e) => e.into(),
        }
    }
}

impl From<crate::jobs::JobError> for ApiError {
    fn from(e: crate::jobs::JobError) -> ApiError {
        use crate::jobs::JobError as J;
        match e {
            J::NotFound => ApiError::NotFound,
            e @ J::NotRetryable { .. } => ApiError::Conflict {
                code: "job_not_retryable",
                message: e.to_string(),
            },
            e @ J::AlreadyPending { .. } => ApiError::Conflict {
                code: "job_pending",
                message: e.to_string(),
            },
            e @ (J::Db(_) | J::Task(_)) => {
                tracing::error!(error = %e, "job queue error");
                ApiError::Internal
            }
        }
    }
}

impl From<crate::signing::SigningError> for ApiError {
    fn from(e: crate::signing::SigningError) -> ApiError {
        // Signing errors never carry key material, but they name configuration: log, don't show.
        tracing::error!(error = %e, "could not sign a stream URL");
        ApiError::Unavailable("no signing provider could sign this URL; see the server log".into())
    }
}

/// Recovers any rejection into a response, for the outermost `recover`.
pub async fn recover(rej: Rejection) -> Result<Response, Infallible> {
    Ok(ApiError::from_rejection(&rej).into_response())
}

/// The last step of every response: writes the error envelope (if the response carries an
/// `ApiError`) and the `x-request-id` header.
pub fn finish(request_id: &str, mut resp: Response) -> Response {
    if let Some(err) = resp.extensions_mut().remove::<ApiError>() {
        if matches!(err, ApiError::Internal) {
            tracing::error!(request_id, "internal error answered with 500");
        }
        let body = ErrorEnvelope {
            error: ErrorBody {
                code: err.code().to_owned(),
                message: err.to_string(),
                request_id: request_id.to_owned(),
            },
        };
        *resp.body_mut() = serde_json::to_string(&body)
            .expect("plain strings serialise")
            .into();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}
