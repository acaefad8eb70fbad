//! `POST /scim/v2/Bulk` (RFC 7644 §3.7). The envelope is read (at most maxPayloadSize bytes)
//! and checked whole by [`crate::scim::bulk`]: a bad envelope, or more than maxOperations
//! operations, performs nothing. Then every operation goes through the same writes as the
//! single-resource endpoints (validation, the audit entry with the caller's actor, metrics),
//! dependencies first, and reports its own status; `failOnErrors` stops the run early. POSTs
//! on a cycle of references are created without the references that cannot be resolved yet
//! and completed by a replace as soon as the rest of the cycle exists (RFC 7644 §3.7.1).

use actix_web::error::JsonPayloadError;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use std::collections::HashSet;

use serde_json::{json, Map, Value};

use super::{
    base_url, etag, groups, is_json, json_error, method_not_allowed, parse_if_match, users,
};
use crate::http::error::{ScimError, SCIM_CONTENT_TYPE};
use crate::http::{AppState, Caller, State};
use crate::scim::bulk::{self, BulkError, Method, Operation, Outcomes};
use crate::scim::resource::ResourceKind;
use crate::store::Actor;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/Bulk")
            .route(web::post().to(post))
            .default_service(method_not_allowed("POST")),
    );
}

/// A performed operation: the resource's id, its new version (none after a DELETE) and the
/// status a single request would have had.
struct Done {
    id: String,
    version: Option<i64>,
    status: StatusCode,
}

/// The result of one operation, and the id of its target when there is one (for `location`).
struct Outcome {
    target: Option<String>,
    result: Result<Done, ScimError>,
}

#[tracing::instrument(skip_all, fields(operations = tracing::field::Empty))]
async fn post(
    state: State,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ScimError> {
    let limit = state.settings.bulk_max_payload_bytes;
    let body: Value = web::JsonBody::new(&req, &mut payload.into_inner(), Some(&is_json), true)
        .limit(limit)
        .await
        .map_err(|e| match e {
            JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
                ScimError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    None,
                    format!("the size of the bulk request exceeds maxPayloadSize ({limit} bytes)"),
                )
            }
            other => json_error(&other),
        })?;
    let request =
        bulk::parse_request(body, state.settings.bulk_max_operations).map_err(|e| match e {
            BulkError::Invalid(p) => ScimError::from(p),
            e @ BulkError::TooManyOperations { .. } => {
                ScimError::new(StatusCode::PAYLOAD_TOO_LARGE, None, e.to_string())
            }
        })?;
    tracing::Span::current().record("operations", request.operations.len());
    let base = base_url(&state, &req);
    let mut results: Vec<Option<Map<String, Value>>> = vec![None; request.operations.len()];
    let mut outcomes = Outcomes::new();
    let mut errors = 0;
    let steps = bulk::plan(&request.operations);
    // RFC 7644 §3.7.1: a POST on a cycle of references is created without what refers to
    // the cycle's POSTs not performed yet, and completed by a replace once they all exist
    let mut pending: HashSet<String> = steps
        .iter()
        .filter(|s| s.circular)
        .filter_map(|s| request.operations.get(s.index)?.bulk_id.clone())
        .collect();
    let mut deferred: Vec<(usize, String)> = Vec::new();
    // count a failed operation; true when failOnErrors says to stop
    let failed = |errors: &mut usize, failed: bool| {
        if failed {
            *errors += 1;
        }
        request.fail_on_errors.is_some_and(|max| *errors >= max)
    };
    'steps: for step in steps {
        let Some(op) = request.operations.get(step.index) else {
            continue;
        };
        let resolved = if step.circular {
            bulk::resolve_without(op, &outcomes, &pending)
        } else {
            bulk::resolve(op, &outcomes)
        };
        let outcome = perform(&state, &caller.0, op, resolved).await;
        if let (Method::Post, Some(b)) = (op.method, &op.bulk_id) {
            let created = outcome.result.as_ref().ok().map(|d| d.id.clone());
            if let (true, Some(id)) = (step.circular, &created) {
                deferred.push((step.index, id.clone()));
            }
            pending.remove(b);
            outcomes.insert(b.clone(), created);
        }
        let is_err = outcome.result.is_err();
        if let Some(slot) = results.get_mut(step.index) {
            *slot = Some(entry(op, &base, outcome));
        }
        if failed(&mut errors, is_err) {
            break;
        }
        // complete the cycle members whose references all exist now
        let (ready, waiting): (Vec<_>, Vec<_>) = deferred.into_iter().partition(|(i, _)| {
            request
                .operations
                .get(*i)
                .is_none_or(|op| op.references().iter().all(|b| !pending.contains(b)))
        });
        deferred = waiting;
        for (index, id) in ready {
            let Some(op) = request.operations.get(index) else {
                continue;
            };
            let outcome = complete(&state, &caller.0, op, id, &outcomes).await;
            let is_err = outcome.result.is_err();
            if let Some(slot) = results.get_mut(index) {
                *slot = Some(entry(op, &base, outcome));
            }
            if failed(&mut errors, is_err) {
                break 'steps;
            }
        }
    }
    let body = bulk::response(results.into_iter().flatten().collect());
    Ok(HttpResponse::Ok()
        .content_type(SCIM_CONTENT_TYPE)
        .body(body.to_string()))
}

/// The second half of a POST on a cycle of references: the resource `id` it created gets
/// its complete data (every reference resolved now) by a replace; the operation reports 201
/// with the version after it.
async fn complete(
    state: &AppState,
    actor: &Actor,
    op: &Operation,
    id: String,
    outcomes: &Outcomes,
) -> Outcome {
    let data = match bulk::resolve(op, outcomes) {
        Ok(r) => r.data.unwrap_or_default(),
        Err(e) => {
            return Outcome {
                target: Some(id),
                result: Err(e.into()),
            }
        }
    };
    let version = match op.kind {
        ResourceKind::User => users::replace_one(state, &id, data, None, actor)
            .await
            .map(|u| u.version),
        ResourceKind::Group => groups::replace_one(state, &id, data, None, false, actor)
            .await
            .map(|g| g.version),
    };
    Outcome {
        target: Some(id.clone()),
        result: version.map(|v| Done {
            id,
            version: Some(v),
            status: StatusCode::CREATED,
        }),
    }
}

/// Perform the operation (its references resolved) as the single-resource endpoint would.
async fn perform(
    state: &AppState,
    actor: &Actor,
    op: &Operation,
    resolved: Result<bulk::Resolved, crate::scim::error::ProtocolError>,
) -> Outcome {
    let resolved = match resolved {
        Ok(r) => r,
        Err(e) => {
            let target = op.id.clone().filter(|id| bulk::reference(id).is_none());
            return Outcome {
                target,
                result: Err(e.into()),
            };
        }
    };
    let target = resolved.id;
    let if_match = match op.version.as_deref().map(parse_if_match).transpose() {
        Ok(v) => v.flatten(),
        Err(e) => {
            return Outcome {
                target,
                result: Err(e),
            }
        }
    };
    // parse_request guarantees an id for PUT, PATCH, DELETE and data for POST, PUT, PATCH
    let id = target.clone().unwrap_or_default();
    let data = resolved.data.unwrap_or_default();
    let (ok, created) = (StatusCode::OK, StatusCode::CREATED);
    let user = |u: crate::store::UserRow, status| Done {
        id: u.id,
        version: Some(u.version),
        status,
    };
    let group = |g: crate::store::GroupRow, status| Done {
        id: g.id,
        version: Some(g.version),
        status,
    };
    let deleted = |()| Done {
        id: id.clone(),
        version: None,
        status: StatusCode::NO_CONTENT,
    };
    let result = match (op.kind, op.method) {
        (ResourceKind::User, Method::Post) => users::create_one(state, data, actor)
            .await
            .map(|u| user(u, created)),
        (ResourceKind::User, Method::Put) => users::replace_one(state, &id, data, if_match, actor)
            .await
            .map(|u| user(u, ok)),
        (ResourceKind::User, Method::Patch) => users::patch_one(state, &id, data, if_match, actor)
            .await
            .map(|u| user(u, ok)),
        (ResourceKind::User, Method::Delete) => users::delete_one(state, &id, if_match, actor)
            .await
            .map(deleted),
        (ResourceKind::Group, Method::Post) => groups::create_one(state, data, actor)
            .await
            .map(|g| group(g, created)),
        (ResourceKind::Group, Method::Put) => {
            groups::replace_one(state, &id, data, if_match, false, actor)
                .await
                .map(|g| group(g, ok))
        }
        (ResourceKind::Group, Method::Patch) => {
            groups::patch_one(state, &id, data, if_match, false, actor)
                .await
                .map(|g| group(g, ok))
        }
        (ResourceKind::Group, Method::Delete) => groups::delete_one(state, &id, if_match, actor)
            .await
            .map(deleted),
    };
    Outcome { target, result }
}

/// One operation of the BulkResponse.
fn entry(op: &Operation, base: &str, outcome: Outcome) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("method".into(), json!(op.method.as_str()));
    if let Some(b) = &op.bulk_id {
        m.insert("bulkId".into(), json!(b));
    }
    let location = |id: &str| json!(format!("{base}/{}/{id}", op.kind.endpoint()));
    match outcome.result {
        Ok(done) => {
            m.insert("location".into(), location(&done.id));
            if let Some(v) = done.version {
                m.insert("version".into(), json!(etag(v)));
            }
            m.insert("status".into(), json!(done.status.as_u16().to_string()));
        }
        Err(e) => {
            if let Some(id) = &outcome.target {
                m.insert("location".into(), location(id));
            }
            m.insert("status".into(), json!(e.status.as_u16().to_string()));
            m.insert("response".into(), e.body());
        }
    }
    m
}
