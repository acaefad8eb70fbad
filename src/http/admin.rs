//! The admin API (token scope `admin`): the mapping document (read, replace with If-Match,
//! preview), the audit log, and API tokens.

use std::collections::HashMap;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::error::ApiError;
use super::health::not_allowed;
use super::{Caller, State};
use crate::access::mappings::ApplyError;
use crate::auth::{self, Scope};
use crate::roles::document::{parse_json, MappingDocument};
use crate::store::{AuditQuery, StoreError};

pub fn routes(cfg: &mut web::ServiceConfig, json: web::JsonConfig) {
    cfg.service(
        web::resource("/admin/v1/mappings")
            .app_data(json.clone())
            .route(web::get().to(get_mappings))
            .route(web::put().to(put_mappings))
            .default_service(not_allowed("GET, PUT")),
    )
    .service(
        web::resource("/admin/v1/mappings/preview")
            .app_data(json.clone())
            .route(web::post().to(preview))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/admin/v1/audit")
            .route(web::get().to(audit))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/admin/v1/tokens")
            .app_data(json)
            .route(web::get().to(list_tokens))
            .route(web::post().to(create_token))
            .default_service(not_allowed("GET, POST")),
    )
    .service(
        web::resource("/admin/v1/tokens/{name}")
            .route(web::delete().to(revoke_token))
            .default_service(not_allowed("DELETE")),
    );
}

fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

fn ok(body: &Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.to_string())
}

/// Admin reads of the mapping see every change committed before them, by any process (a
/// `PUT` through another replica, a `rolecall mappings apply`): a read barrier on the change
/// feed, as single-user SCIM reads on PostgreSQL have. Its `ETag` is then current for the
/// `If-Match` of the `PUT` that follows, whichever replica serves it.
async fn current(state: &State) -> Result<(), ApiError> {
    state
        .access
        .barrier()
        .await
        .map_err(|e| apply_error(ApplyError::Access(e)))
}

async fn get_mappings(state: State) -> Result<HttpResponse, ApiError> {
    current(&state).await?;
    let mapping = state.access.mapping();
    let body = json!({
        "version": mapping.version,
        "document": mapping.compiled.document(),
        "unmatched_rules": state.access.unmatched_rules(),
    });
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::ETAG, etag(mapping.version)))
        .body(body.to_string()))
}

/// The mapping document of a PUT or preview: the document itself, or `GET`'s answer sent
/// back edited (`{"version", "document", "unmatched_rules"}`: the `document` is taken; the
/// version to replace is `If-Match`'s, not the body's). A document never has a `document` key.
fn parse_document(body: Value) -> Result<MappingDocument, ApiError> {
    let body = match body {
        Value::Object(mut o) if o.get("document").is_some_and(Value::is_object) => {
            o.remove("document").unwrap_or_default()
        }
        other => other,
    };
    parse_json(body).map_err(|problems| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the mapping document has {} problem(s)", problems.len()),
        )
        .with("problems", json!(problems))
    })
}

fn apply_error(e: ApplyError) -> ApiError {
    match e {
        ApplyError::Invalid(problems) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the mapping document has {} problem(s)", problems.len()),
        )
        .with("problems", json!(problems)),
        ApplyError::Stale(v) => ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            format!(
                "the mapping is no longer at version {v}; GET it again and re-apply your change"
            ),
        ),
        ApplyError::Access(crate::access::AccessError::Store(s)) => s.into(),
        ApplyError::Access(other) => {
            tracing::error!(error = %other, "applying a mapping failed");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

async fn put_mappings(
    state: State,
    req: HttpRequest,
    caller: Caller,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let Some(tag) = req
        .headers()
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_REQUIRED,
            "If-Match is required: send the ETag of GET /admin/v1/mappings",
        ));
    };
    // `*` matches whatever version is current (RFC 9110 §13.1.1): an explicit "replace
    // regardless"; a list matches when any of its tags is current, which apply() checks
    // against the one that is (a version read now, required again when writing)
    let tags: Vec<&str> = tag.split(',').map(str::trim).collect();
    let expected = if tags.contains(&"*") {
        None
    } else {
        let listed: Vec<i64> = tags
            .iter()
            .filter_map(|t| t.trim_start_matches("W/").trim_matches('"').parse().ok())
            .collect();
        let current = state.access.mapping().version;
        let named = if listed.len() == 1 {
            listed.first().copied()
        } else {
            listed.iter().copied().find(|v| *v == current)
        };
        Some(named.ok_or_else(|| {
            ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "If-Match does not name the current mapping version",
            )
        })?)
    };
    let doc = parse_document(body.into_inner())?;
    let (version, diff) = state
        .access
        .apply(doc, expected, &caller.0)
        .await
        .map_err(apply_error)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::ETAG, etag(version)))
        .body(json!({"version": version, "diff": diff}).to_string()))
}

async fn preview(state: State, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    let doc = parse_document(body.into_inner())?;
    current(&state).await?;
    let diff = state.access.preview(doc).map_err(apply_error)?;
    Ok(ok(
        &json!({"version": state.access.mapping().version, "diff": diff}),
    ))
}

const AUDIT_PAGE: i64 = 100;
const AUDIT_MAX_PAGE: i64 = 1000;

async fn audit(
    state: State,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let get = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let limit = match get("limit") {
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "\"limit\" must be an integer"))?
            .clamp(1, AUDIT_MAX_PAGE),
        None => AUDIT_PAGE,
    };
    let before = match get("cursor") {
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid \"cursor\""))?,
        ),
        None => None,
    };
    for key in ["since", "until"] {
        if let Some(t) = get(key) {
            chrono::DateTime::parse_from_rfc3339(&t).map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("\"{key}\" must be an RFC 3339 time, e.g. 2026-01-31T00:00:00Z"),
                )
            })?;
        }
    }
    // entries are stamped to the millisecond: `at >= since` and `at < until` hold exactly when
    // they hold against the first stored millisecond at or after the bound
    let normalize = |t: Option<String>| {
        t.and_then(|t| crate::store::time_bounds(&t))
            .map(|b| b.at_or_after().to_string())
    };
    let query = AuditQuery {
        since: normalize(get("since")),
        until: normalize(get("until")),
        actor: get("actor"),
        action: get("action"),
        target: get("target"),
        before,
        limit,
    };
    let entries = state.store.list_audit(&query).await?;
    let next = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.seq.to_string()))
        .flatten();
    Ok(ok(&json!({"entries": entries, "next_cursor": next})))
}

async fn list_tokens(state: State) -> Result<HttpResponse, ApiError> {
    let tokens: Vec<Value> = state
        .store
        .list_tokens()
        .await?
        .into_iter()
        .map(|t| json!({"name": t.name, "scope": t.scope, "created": t.created, "id": t.id}))
        .collect();
    Ok(ok(&json!({ "tokens": tokens })))
}

async fn create_token(
    state: State,
    caller: Caller,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let name = body.get("name").and_then(Value::as_str).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "\"name\" (a non-empty string) is required",
        )
    })?;
    auth::check_token_name(name).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    let scope: Scope = body
        .get("scope")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "\"scope\" is required: scim, lookup or admin",
            )
        })?
        .parse()
        .map_err(|e: String| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    let (row, secret) = auth::generate(name, scope).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not generate a token: {e}"),
        )
    })?;
    state.store.create_token(&row, &caller.0).await?;
    Ok(HttpResponse::Created().content_type("application/json").body(
        json!({"name": row.name, "scope": row.scope, "created": row.created, "id": row.id, "token": secret}).to_string(),
    ))
}

async fn revoke_token(
    state: State,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    match state.store.revoke_token(&name, &caller.0).await {
        Ok(()) => Ok(HttpResponse::NoContent().finish()),
        Err(StoreError::NotFound) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no token named \"{name}\""),
        )),
        Err(e) => Err(e.into()),
    }
}
