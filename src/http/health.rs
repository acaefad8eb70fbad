//! Liveness, readiness and metrics (no authentication).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use super::error::ApiError;
use super::State;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

pub async fn readyz(state: State) -> Result<HttpResponse, ApiError> {
    match state.store.ready().await {
        Ok(()) => Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"{"status":"ready"}"#)),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unreachable, not migrated, or not writable",
            ))
        }
    }
}

pub async fn metrics(state: State) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(
            state
                .metrics
                .render(&state.store, state.access.feed_stats()),
        )
}

/// 405 as a JSON problem body, with the `Allow` header.
pub fn not_allowed(allow: &'static str) -> actix_web::Route {
    actix_web::web::to(move || {
        let mut res = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method not allowed; this endpoint allows {allow}"),
        )
        .error_response();
        res.headers_mut().insert(
            actix_web::http::header::ALLOW,
            actix_web::http::header::HeaderValue::from_static(allow),
        );
        std::future::ready(res)
    })
}
