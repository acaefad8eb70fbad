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
/// bounds the time to the end of the headers, not of the body).
///
/// The timer is set only once the body has kept the reader waiting twice. actix calls the
/// handler before it hands over a body that came in the same read as the headers, so the
/// first wait is nearly always that: the reader wakes itself (the body's arrival wakes the
/// same task anyway) instead of setting a timer, and on the next poll the body is there.
/// A body that is really late finds the timer set on that next poll, counted from the
/// request's start as before.
struct BodyDeadline {
    inner: actix_web::dev::Payload,
    deadline: Instant,
    /// Whether the body has kept the reader waiting once already.
    waited: bool,
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
        if !this.waited {
            this.waited = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
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
            waited: false,
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
    let route: std::borrow::Cow<'static, str> =
        match super::gateway::hand_matched_route(res.request().path()) {
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

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll};
    use std::time::Duration;

    use actix_web::web::Bytes;
    use futures_util::{Stream, StreamExt};

    use super::*;

    fn deadline_over(
        body: impl Stream<Item = Result<Bytes, actix_web::error::PayloadError>> + 'static,
        after: Duration,
    ) -> BodyDeadline {
        BodyDeadline {
            inner: actix_web::dev::Payload::Stream {
                payload: Box::pin(body),
            },
            deadline: Instant::now() + after,
            waited: false,
            timer: None,
        }
    }

    /// A body that keeps the reader waiting once (as one that came with the headers does
    /// under actix) is read without a timer.
    #[tokio::test]
    async fn a_body_that_waits_once_sets_no_timer() {
        let mut pending_once = true;
        let body = futures_util::stream::poll_fn(move |cx: &mut Context<'_>| {
            if std::mem::take(&mut pending_once) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(Some(Ok(Bytes::from_static(b"{}"))))
        });
        let mut timed = deadline_over(body, Duration::from_secs(30));
        let chunk = timed.next().await.expect("a chunk").expect("no error");
        assert_eq!(&chunk[..], b"{}");
        assert!(timed.waited, "the first wait is counted");
        assert!(
            timed.timer.is_none(),
            "no timer for a body that waited once"
        );
    }

    /// A body that never comes ends in the timeout error, at the deadline and not before.
    #[tokio::test]
    async fn a_body_that_never_comes_times_out_at_the_deadline() {
        let started = Instant::now();
        let mut timed = deadline_over(futures_util::stream::pending(), Duration::from_millis(200));
        let err = timed.next().await.expect("an item").expect_err("a timeout");
        assert!(body_timed_out(&err), "{err:?}");
        assert!(timed.timer.is_some());
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
    }

    /// A body that keeps coming in slow pieces is still cut at the deadline, counted from
    /// the start and not from the last piece.
    #[tokio::test]
    async fn a_slow_body_is_cut_at_the_deadline() {
        let started = Instant::now();
        let body = futures_util::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Some((Ok(Bytes::from_static(b"x")), ()))
        });
        let mut timed = Box::pin(deadline_over(body, Duration::from_millis(350)));
        let mut chunks = 0;
        let err = loop {
            match timed.next().await.expect("an item") {
                Ok(_) => chunks += 1,
                Err(e) => break e,
            }
        };
        assert!(body_timed_out(&err), "{err:?}");
        assert!(
            chunks <= 3,
            "{chunks} chunks of one per 100 ms before a 350 ms deadline"
        );
        assert!(started.elapsed() >= Duration::from_millis(350));
    }
}
