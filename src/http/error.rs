//! The error boundary: [`ScimError`] answers in SCIM form (`application/scim+json`,
//! RFC 7644 §3.12) under `/scim/v2`; [`ApiError`] answers with a JSON problem body
//! (RFC 9457) elsewhere. Store and protocol errors map to statuses in exactly one place.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::auth::AuthError;
use crate::scim::error::{ProtocolError, ScimType};
use crate::scim::schema::ERROR_SCHEMA;
use crate::store::StoreError;

pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

#[derive(Debug, Clone)]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl std::fmt::Display for ScimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.detail)
    }
}

impl ScimError {
    pub fn new(
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
        }
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, detail)
    }
    pub fn bad_request(scim_type: ScimType, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type.as_str()), detail)
    }
    /// The error body (RFC 7644 §3.12), also used inside a bulk response.
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        body
    }
}

impl ResponseError for ScimError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let body = self.body();
        let mut res = HttpResponse::build(self.status);
        res.insert_header((header::CONTENT_TYPE, SCIM_CONTENT_TYPE));
        if self.status == StatusCode::UNAUTHORIZED {
            res.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rolecall\""),
            ));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        res.body(body.to_string())
    }
}

impl From<ProtocolError> for ScimError {
    fn from(e: ProtocolError) -> Self {
        Self::bad_request(e.scim_type, e.detail)
    }
}

impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found("resource not found"),
            StoreError::Conflict(d) => {
                Self::new(StatusCode::CONFLICT, Some(ScimType::Uniqueness.as_str()), d)
            }
            StoreError::PreconditionFailed(_) => Self::new(
                StatusCode::PRECONDITION_FAILED,
                Some("invalidVers"),
                "the resource has changed: its version no longer matches If-Match",
            ),
            StoreError::Invalid(p) => p.into(),
            StoreError::Unavailable(cause) => {
                tracing::error!(error = %cause, "database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    "the database is unavailable; retry later",
                )
            }
            StoreError::Database(cause) => {
                tracing::error!(error = %cause, "database error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, None, "internal error")
            }
            StoreError::Contended | StoreError::Deadlock(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "the resource is being changed concurrently; retry",
            ),
            StoreError::Corrupt(cause) => {
                tracing::error!(error = %cause, "corrupt stored data");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, None, "internal error")
            }
        }
    }
}

impl From<crate::access::AccessError> for ScimError {
    fn from(e: crate::access::AccessError) -> Self {
        match e {
            crate::access::AccessError::Store(s) => s.into(),
            other => {
                tracing::error!(error = %other, "in-memory directory");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, None, "internal error")
            }
        }
    }
}

impl From<AuthError> for ScimError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing | AuthError::Invalid => {
                Self::new(StatusCode::UNAUTHORIZED, None, e.to_string())
            }
            AuthError::WrongScope { .. } => Self::new(StatusCode::FORBIDDEN, None, e.to_string()),
            AuthError::Store(s) => s.into(),
        }
    }
}

/// A JSON problem body (RFC 9457) for endpoints outside `/scim/v2`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    /// Extra members of the problem body (e.g. `problems` for a 422).
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.detail)
    }
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            extra: None,
        }
    }
    pub fn with(mut self, key: &str, value: serde_json::Value) -> Self {
        self.extra
            .get_or_insert_with(Default::default)
            .insert(key.to_string(), value);
        self
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let scim = ScimError::from(e);
        ApiError::new(scim.status, scim.detail)
    }
}

/// Body parsing for JSON endpoints outside `/scim/v2`: errors as problem bodies.
pub fn problem_json_config(limit: usize) -> actix_web::web::JsonConfig {
    actix_web::web::JsonConfig::default()
        .limit(limit)
        .error_handler(|e, _| json_problem(&e).into())
}

/// A JSON body that could not be read (see [`problem_json_config`]), as a problem body.
pub fn json_problem(e: &actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::JsonPayloadError;
    match e {
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {limit} bytes"),
        ),
        JsonPayloadError::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the request body must be application/json",
        ),
        JsonPayloadError::Payload(p) if crate::http::middleware::body_timed_out(p) => {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                crate::http::middleware::BODY_TIMED_OUT,
            )
        }
        JsonPayloadError::Deserialize(d) => ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the request body is not valid JSON: {d}"),
        ),
        other => ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("could not read the request body: {other}"),
        ),
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            res.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rolecall\""),
            ));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // as on /scim/v2: the database is expected back; retry shortly
            res.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        let mut body = json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let (Some(extra), Some(obj)) = (&self.extra, body.as_object_mut()) {
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        res.body(body.to_string())
    }
}
