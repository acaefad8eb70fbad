//! The HTTP edge: routes, shared state, authentication, metrics and the error boundary.

mod admin;
mod auth;
pub mod error;
mod gateway;
mod health;
mod middleware;
pub mod scim;

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::web;

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::store::Store;
use error::ApiError;

/// Shared by every worker.
pub struct AppState {
    pub store: Store,
    pub access: std::sync::Arc<crate::access::Access>,
    pub settings: Settings,
    pub metrics: Metrics,
}

pub type State = web::Data<Arc<AppState>>;

pub fn routes(cfg: &mut web::ServiceConfig, body_limit: usize) {
    let json = error::problem_json_config(body_limit);
    gateway::routes(cfg, json.clone(), body_limit);
    admin::routes(cfg, json);
    cfg.service(
        web::resource("/healthz")
            .route(web::get().to(health::healthz))
            .default_service(health::not_allowed("GET")),
    )
    .service(
        web::resource("/readyz")
            .route(web::get().to(health::readyz))
            .default_service(health::not_allowed("GET")),
    )
    .service(
        web::resource("/metrics")
            .route(web::get().to(health::metrics))
            .default_service(health::not_allowed("GET")),
    )
    .service(scim::scope());
}

pub async fn not_found() -> actix_web::HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::new(
        StatusCode::NOT_FOUND,
        "no such endpoint",
    ))
}

pub use auth::authenticate;
pub use middleware::{observe, Caller, RequestId};
