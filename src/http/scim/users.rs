//! `/scim/v2/Users`.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::{
    base_url, if_match, list_params, list_response_text, meta, method_not_allowed, not_modified,
    page_response, projection, resource_response, resource_text_response,
};
use crate::access::{CachedUser, UserRead};
use crate::http::error::ScimError;
use crate::http::{AppState, Caller, State};
use crate::provision;
use crate::scim::key::{user_key, UserKey};
use crate::scim::resource::schemas_of;
use crate::scim::resource::ResourceKind;
use crate::store::{Actor, StoreError, UserRow};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/Users")
            .name("users")
            .route(web::get().to(list))
            .route(web::post().to(create))
            .default_service(method_not_allowed("GET, POST")),
    )
    .service(
        web::resource("/Users/.search")
            .route(web::post().to(search))
            .default_service(method_not_allowed("POST")),
    )
    .service(
        web::resource("/Users/{id}")
            .route(web::get().to(get))
            .route(web::put().to(replace))
            .route(web::patch().to(patch))
            .route(web::delete().to(delete))
            .default_service(method_not_allowed("GET, PUT, PATCH, DELETE")),
    );
}

/// A stored user as SCIM JSON.
pub fn render(user: UserRow, base: &str) -> Map<String, Value> {
    let mut doc = user.doc;
    let schemas = schemas_of(ResourceKind::User, &doc);
    doc.insert("schemas".into(), schemas);
    doc.insert("id".into(), json!(user.id));
    doc.insert("active".into(), json!(user.active));
    if !user.groups.is_empty() {
        let groups = user
            .groups
            .iter()
            .map(|g| json!({"value": g.id, "display": g.display, "type": "direct", "$ref": format!("{base}/Groups/{}", g.id)}))
            .collect();
        doc.insert("groups".into(), Value::Array(groups));
    }
    let location = format!("{base}/Users/{}", user.id);
    doc.insert(
        "meta".into(),
        meta(
            "User",
            location,
            &user.created,
            &user.last_modified,
            user.version,
        ),
    );
    doc
}

async fn create(
    state: State,
    caller: Caller,
    req: HttpRequest,
    body: web::Json<Value>,
) -> Result<HttpResponse, ScimError> {
    let proj = projection(&req)?;
    let user = create_one(&state, body.into_inner(), &caller.0).await?;
    let version = user.version;
    Ok(resource_response(
        StatusCode::CREATED,
        proj.apply(ResourceKind::User, render(user, &base_url(&state, &req))),
        version,
    ))
}

async fn get(
    state: State,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ScimError> {
    let proj = projection(&req)?;
    let user = match from_memory(&state, UserKey::Id(&id)).await? {
        // the whole resource, as rendered before
        Some(UserRead::Found(cached))
            if proj.is_identity() && !not_modified(&req, cached.row.version) =>
        {
            let text = rendered(&cached, &base_url(&state, &req));
            return Ok(resource_text_response(
                StatusCode::OK,
                text.to_string(),
                None,
                cached.row.version,
            ));
        }
        Some(UserRead::Found(cached)) => cached.row.clone(),
        Some(UserRead::Absent) => return Err(StoreError::NotFound.into()),
        None => {
            let user = state.store.get_user(&id).await?;
            state.access.remember_user(&user);
            user
        }
    };
    if not_modified(&req, user.version) {
        return Ok(HttpResponse::NotModified()
            .insert_header(("ETag", super::etag(user.version)))
            .finish());
    }
    let version = user.version;
    Ok(resource_response(
        StatusCode::OK,
        proj.apply(ResourceKind::User, render(user, &base_url(&state, &req))),
        version,
    ))
}

async fn replace(
    state: State,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ScimError> {
    let proj = projection(&req)?;
    let user = replace_one(
        &state,
        &id,
        body.into_inner(),
        if_match(&req, &state, ResourceKind::User, &id).await?,
        &caller.0,
    )
    .await?;
    let version = user.version;
    Ok(resource_response(
        StatusCode::OK,
        proj.apply(ResourceKind::User, render(user, &base_url(&state, &req))),
        version,
    ))
}

async fn patch(
    state: State,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ScimError> {
    let proj = projection(&req)?;
    let user = patch_one(
        &state,
        &id,
        body.into_inner(),
        if_match(&req, &state, ResourceKind::User, &id).await?,
        &caller.0,
    )
    .await?;
    let version = user.version;
    Ok(resource_response(
        StatusCode::OK,
        proj.apply(ResourceKind::User, render(user, &base_url(&state, &req))),
        version,
    ))
}

async fn delete(
    state: State,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ScimError> {
    delete_one(
        &state,
        &id,
        if_match(&req, &state, ResourceKind::User, &id).await?,
        &caller.0,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The whole resource as JSON (no `attributes`/`excludedAttributes`), rendered once per
/// cached row and base URL.
fn rendered(cached: &CachedUser, base: &str) -> std::sync::Arc<str> {
    cached.text_for(base, |row| {
        Value::Object(render(row.clone(), base)).to_string()
    })
}

/// A read of the one user `key` names, from memory where this server can answer it (see
/// `access::user_docs`); `None`: ask the database.
async fn from_memory(state: &AppState, key: UserKey<'_>) -> Result<Option<UserRead>, ScimError> {
    let read = state.access.user_from_memory(key).await?;
    state.metrics.user_read(read.is_some());
    Ok(read)
}

// The writes, shared by the handlers above and `/Bulk`: the provisioning call, the row kept
// for later reads, and the metric.

pub(super) async fn create_one(
    state: &AppState,
    body: Value,
    actor: &Actor,
) -> Result<UserRow, ScimError> {
    let user = provision::create_user(&state.store, body, actor).await?;
    state.access.remember_user(&user);
    state.metrics.scim_op("User", "create");
    Ok(user)
}

pub(super) async fn replace_one(
    state: &AppState,
    id: &str,
    body: Value,
    if_match: Option<i64>,
    actor: &Actor,
) -> Result<UserRow, ScimError> {
    let user = provision::replace_user(&state.store, id, body, if_match, actor).await?;
    state.access.remember_user(&user);
    state
        .metrics
        .scim_op("User", if user.active { "replace" } else { "deactivate" });
    Ok(user)
}

pub(super) async fn patch_one(
    state: &AppState,
    id: &str,
    body: Value,
    if_match: Option<i64>,
    actor: &Actor,
) -> Result<UserRow, ScimError> {
    let user = provision::patch_user(&state.store, id, body, if_match, actor).await?;
    state.access.remember_user(&user);
    state
        .metrics
        .scim_op("User", if user.active { "patch" } else { "deactivate" });
    Ok(user)
}

pub(super) async fn delete_one(
    state: &AppState,
    id: &str,
    if_match: Option<i64>,
    actor: &Actor,
) -> Result<(), ScimError> {
    state.store.delete_user(id, if_match, actor).await?;
    state.metrics.scim_op("User", "delete");
    Ok(())
}

async fn list(
    state: State,
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ScimError> {
    list_with(&state, &req, &q).await
}

/// `POST /Users/.search`: the same as a GET with these parameters.
async fn search(
    state: State,
    req: HttpRequest,
    body: web::Json<Value>,
) -> Result<HttpResponse, ScimError> {
    let q = super::search_params(body.into_inner())?;
    list_with(&state, &req, &q).await
}

async fn list_with(
    state: &State,
    req: &HttpRequest,
    q: &HashMap<String, String>,
) -> Result<HttpResponse, ScimError> {
    let p = list_params(state, q, Some(ResourceKind::User))?;
    // `id`, `userName` or `externalId eq "…"`: at most one user, maybe known in memory
    let key = match p.query.cursor {
        None => p.query.filter.as_ref().and_then(user_key),
        Some(_) => None,
    };
    if let Some(key) = key {
        if let Some(read) = from_memory(state, key).await? {
            let user = match read {
                UserRead::Found(cached) => Some(cached),
                UserRead::Absent => None,
            };
            let total = i64::from(user.is_some());
            let user = user.filter(|_| p.query.start_index <= 1 && p.query.count > 0);
            let base = base_url(state, req);
            if p.projection.is_identity() {
                let text = user.map(|cached| rendered(&cached, &base));
                let items: Vec<&str> = text.as_deref().into_iter().collect();
                return Ok(list_response_text(total, p.query.start_index, &items));
            }
            let resources = user
                .map(|cached| {
                    let doc = render(cached.row.clone(), &base);
                    Value::Object(p.projection.apply(ResourceKind::User, doc))
                })
                .into_iter()
                .collect();
            return Ok(page_response(
                ResourceKind::User,
                &p,
                total,
                None,
                resources,
            ));
        }
    }
    let page = state.store.list_users(&p.query).await?;
    if key.is_some() {
        for user in &page.items {
            state.access.remember_user(user);
        }
    }
    let base = base_url(state, req);
    let resources = page
        .items
        .into_iter()
        .map(|u| Value::Object(p.projection.apply(ResourceKind::User, render(u, &base))))
        .collect();
    Ok(page_response(
        ResourceKind::User,
        &p,
        page.total,
        page.next,
        resources,
    ))
}
