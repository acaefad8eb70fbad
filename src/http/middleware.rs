//! The request span, the access log line, per-request metrics and `X-Request-Id`.
//!
//! The span records the method and the path without its query string, so a secret that a
//! client puts in a query string never reaches the logs; headers are never recorded.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::Error;
use tracing::Instrument;

use super::State;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The caller's `X-Request-Id` when it is short and plain, else a new UUID.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

fn method_label(m: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

pub async fn observe(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let state = req.app_data::<State>().cloned();
    // a fixed set: the method becomes a metrics label, and a client can send any token as a
    // method (each new label value would be a new series kept for the process's life)
    let method = method_label(req.method()).to_owned();
    // HEAD is answered as GET without the body (RFC 9110 §9.3.2): routed as a GET here, and
    // the HTTP/1 codec, which saw the request line, sends the headers only
    if req.method() == actix_web::http::Method::HEAD {
        req.head_mut().method = actix_web::http::Method::GET;
    }
    let id = request_id(&req);
    actix_web::HttpMessage::extensions_mut(&req).insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
        path = %req.path(),
        client = %req.peer_addr().map_or_else(|| "-".to_string(), |a| a.ip().to_string()),
    );
    let result = next.call(req).instrument(span.clone()).await;
    let mut res = match result {
        Ok(res) => res,
        Err(e) => {
            span.in_scope(|| tracing::warn!(error = %e, "request failed"));
            return Err(e);
        }
    };
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    let hand_matched = actix_web::HttpMessage::extensions(res.request())
        .get::<super::gateway::RoutePattern>()
        .map(|p| p.0);
    let route: std::borrow::Cow<'static, str> = match hand_matched {
        Some(p) => p.into(),
        None => res
            .request()
            .match_pattern()
            .map_or("unmatched".into(), Into::into),
    };
    span.in_scope(|| {
        tracing::info!(
            status,
            route = %route,
            latency_us = elapsed.as_micros() as u64,
            "request"
        )
    });
    if let Some(state) = state {
        state
            .metrics
            .observe_request(&route, &method, status, elapsed.as_secs_f64());
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    Ok(res)
}

/// The request id, for handlers (the audit log records it).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The authenticated caller as an audit-log actor: token name and scope, request id, client.
pub struct Caller(pub crate::store::Actor);

impl actix_web::FromRequest for Caller {
    type Error = Error;
    type Future = std::future::Ready<Result<Self, Error>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        use actix_web::HttpMessage;
        let ext = req.extensions();
        let (name, kind) = match ext.get::<crate::auth::Principal>() {
            Some(p) => (p.token_name.to_string(), p.scope.as_str().to_string()),
            None => ("anonymous".to_string(), "none".to_string()),
        };
        std::future::ready(Ok(Caller(crate::store::Actor {
            name,
            kind,
            request_id: ext.get::<RequestId>().map(|r| r.0.clone()),
            // the TCP peer, not X-Forwarded-For: a client must not be able to choose what the audit log records
            client: req.peer_addr().map(|a| a.ip().to_string()),
        })))
    }
}
