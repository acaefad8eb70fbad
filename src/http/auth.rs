//! Authentication for every protected path, by prefix: `/scim/v2` needs a `scim` token,
//! `/v1` and `/access/v1` a `lookup` token, `/admin` an `admin` token. Tokens are checked
//! against the in-memory copy (kept current by the change feed); an id not yet known there
//! (a token just created by another process) is looked for again after a read barrier on
//! the change feed, never by a database query of its own.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse, ResponseError};

use super::error::{ApiError, ScimError};
use super::State;
use crate::auth::{self, AuthError, Scope};

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The scope a path needs, and whether errors there are in SCIM form.
fn needs(path: &str) -> Option<(Scope, bool)> {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if under("/scim/v2") {
        Some((Scope::Scim, true))
    } else if under("/v1") || under("/access/v1") {
        Some((Scope::Lookup, false))
    } else if under("/admin") {
        Some((Scope::Admin, false))
    } else {
        None
    }
}

fn error_response(e: AuthError, scim: bool) -> HttpResponse {
    if scim {
        return ScimError::from(e).error_response();
    }
    let status = match &e {
        AuthError::Missing | AuthError::Invalid => StatusCode::UNAUTHORIZED,
        AuthError::WrongScope { .. } => StatusCode::FORBIDDEN,
        AuthError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    if let AuthError::Store(s) = &e {
        tracing::warn!(error = %s, "token check failed");
        return ApiError::new(status, "the database is unavailable; retry later").error_response();
    }
    ApiError::new(status, e.to_string()).error_response()
}

fn unavailable(e: crate::access::AccessError) -> AuthError {
    match e {
        crate::access::AccessError::Store(s) => AuthError::Store(s),
        other => AuthError::Store(crate::store::StoreError::Corrupt(other.to_string())),
    }
}

async fn check(
    state: &State,
    presented: Option<&str>,
    need: Scope,
) -> Result<auth::Principal, AuthError> {
    // SCIM requests need only the tokens to be current; gateway and admin answers need all
    let fresh = if need == Scope::Scim {
        state.access.fresh_tokens().await
    } else {
        state.access.fresh().await
    };
    fresh.map_err(unavailable)?;
    let Some(id) = presented.and_then(auth::token_id).map(|(id, _)| id) else {
        return auth::verify(presented, None, need);
    };
    let known = |state: &State| {
        state
            .access
            .with_token(id, |row| auth::verify(presented, Some(row), need))
    };
    if let Some(verdict) = known(state) {
        return verdict;
    }
    // Not known here: perhaps created a moment ago by another process. A read barrier (a
    // catch-up with the change feed that started after this request arrived) brings in
    // every token committed before it; such barriers are paced, so a flood of made-up ids
    // costs the database a query or two per 20 ms, not one per request.
    state
        .access
        .paced_barrier(std::time::Duration::from_millis(20))
        .await
        .map_err(unavailable)?;
    known(state).unwrap_or_else(|| auth::verify(presented, None, need))
}

pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    // The router matches the path after percent-decoding it, so the scope is decided on the
    // decoded path too: `/%61dmin/...` is `/admin/...` (fully decoded, which also catches
    // anything the router might decode; a path it would not route is then a 404 after the
    // token check, never a way around it).
    let decoded = percent_encoding::percent_decode_str(req.path()).decode_utf8_lossy();
    let Some((need, scim)) = needs(&decoded) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let Some(state) = req.app_data::<State>().cloned() else {
        let res =
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").error_response();
        return Ok(req.into_response(res).map_into_right_body());
    };
    match check(&state, bearer(req.headers()), need).await {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(e) => Ok(req
            .into_response(error_response(e, scim))
            .map_into_right_body()),
    }
}
