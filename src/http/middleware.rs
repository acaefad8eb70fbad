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

/// A request body that must have arrived by `deadline` (the request's start plus
/// `--body-timeout`): a client that announces a body and sends it slowly, or never, would
/// otherwise hold its connection and the request's handler for as long as it likes (actix
/// bounds the time to the end of the headers, not of the body). The timer is only set when
/// the body is not already there, so a small body that came with the headers costs no timer.
struct BodyDeadline {
    inner: actix_web::dev::Payload,
    deadline: Instant,
    timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl futures_util::Stream for BodyDeadline {
    type Item = Result<actix_web::web::Bytes, actix_web::error::PayloadError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::future::Future;
        use std::task::Poll;
        let this = &mut *self;
        if let Poll::Ready(item) = std::pin::Pin::new(&mut this.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(actix_web::error::PayloadError::Io(
                std::io::Error::new(std::io::ErrorKind::TimedOut, BODY_TIMED_OUT),
            )))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The message of the error a [`BodyDeadline`] ends a body with.
pub const BODY_TIMED_OUT: &str = "the request body did not arrive within --body-timeout";

/// Whether a body-reading error is a [`BodyDeadline`] running out.
pub fn body_timed_out(e: &actix_web::error::PayloadError) -> bool {
    matches!(e, actix_web::error::PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut)
}

/// Whether the request announces a body (`Content-Length` above 0, or chunked).
fn has_body(req: &ServiceRequest) -> bool {
    use actix_web::http::header;
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
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
    if let Some(limit) = state
        .as_ref()
        .map(|s| s.settings.body_timeout_secs)
        .filter(|&secs| secs > 0 && has_body(&req))
    {
        let inner = actix_web::HttpMessage::take_payload(&mut req);
        let timed = BodyDeadline {
            inner,
            deadline: started + std::time::Duration::from_secs(limit),
            timer: None,
        };
        req.set_payload(actix_web::dev::Payload::Stream {
            payload: Box::pin(timed),
        });
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
