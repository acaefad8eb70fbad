//! `/scim/v2/Groups`.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::{
    base_url, if_match, list_params, meta, method_not_allowed, not_modified, page_response,
    projection, resource_response,
};
use crate::http::error::ScimError;
use crate::http::{AppState, Caller, State};
use crate::provision;
use crate::scim::resource::ResourceKind;
use crate::scim::schema::GROUP_SCHEMA;
use crate::store::{Actor, GroupRow};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/Groups")
            .route(web::get().to(list))
            .route(web::post().to(create))
            .default_service(method_not_allowed("GET, POST")),
    )
    .service(
        web::resource("/Groups/.search")
            .route(web::post().to(search))
            .default_service(method_not_allowed("POST")),
    )
    .service(
        web::resource("/Groups/{id}")
            .route(web::get().to(get))
            .route(web::put().to(replace))
            .route(web::patch().to(patch))
            .route(web::delete().to(delete))
            .default_service(method_not_allowed("GET, PUT, PATCH, DELETE")),
    );
}

pub fn render(group: GroupRow, base: &str) -> Map<String, Value> {
    let mut doc = group.doc;
    doc.insert("schemas".into(), json!([GROUP_SCHEMA]));
    doc.insert("id".into(), json!(group.id));
    if let Some(members) = group.members {
        let members = members
            .into_iter()
            .map(|m| {
                let path = if m.kind == "Group" { "Groups" } else { "Users" };
                let mut o = json!({"value": m.value, "type": m.kind, "$ref": format!("{base}/{path}/{}", m.value)});
                if let Some(d) = m.display {
                    o["display"] = json!(d);
                }
                o
            })
            .collect();
        doc.insert("members".into(), Value::Array(members));
    }
    let location = format!("{base}/Groups/{}", group.id);
    doc.insert(
        "meta".into(),
        meta(
            "Group",
            location,
            &group.created,
            &group.last_modified,
            group.version,
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
    let group = create_one(&state, body.into_inner(), &caller.0).await?;
    let version = group.version;
    Ok(resource_response(
        StatusCode::CREATED,
        proj.apply(ResourceKind::Group, render(group, &base_url(&state, &req))),
        version,
    ))
}

async fn get(
    state: State,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ScimError> {
    let proj = projection(&req)?;
    let group = state
        .store
        .get_group(&id, proj.returns(ResourceKind::Group, "members"))
        .await?;
    if not_modified(&req, group.version) {
        return Ok(HttpResponse::NotModified()
            .insert_header(("ETag", super::etag(group.version)))
            .finish());
    }
    let version = group.version;
    Ok(resource_response(
        StatusCode::OK,
        proj.apply(ResourceKind::Group, render(group, &base_url(&state, &req))),
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
    let group = replace_one(
        &state,
        &id,
        body.into_inner(),
        if_match(&req)?,
        proj.returns(ResourceKind::Group, "members"),
        &caller.0,
    )
    .await?;
    let version = group.version;
    Ok(resource_response(
        StatusCode::OK,
        proj.apply(ResourceKind::Group, render(group, &base_url(&state, &req))),
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
    let group = patch_one(
        &state,
        &id,
        body.into_inner(),
        if_match(&req)?,
        proj.returns(ResourceKind::Group, "members"),
        &caller.0,
    )
    .await?;
    let version = group.version;
    Ok(resource_response(
        StatusCode::OK,
        proj.apply(ResourceKind::Group, render(group, &base_url(&state, &req))),
        version,
    ))
}

async fn delete(
    state: State,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ScimError> {
    delete_one(&state, &id, if_match(&req)?, &caller.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

// The writes, shared by the handlers above and `/Bulk`: the provisioning call and its metric.

pub(super) async fn create_one(
    state: &AppState,
    body: Value,
    actor: &Actor,
) -> Result<GroupRow, ScimError> {
    let group = provision::create_group(&state.store, body, actor).await?;
    state.metrics.scim_op("Group", "create");
    Ok(group)
}

pub(super) async fn replace_one(
    state: &AppState,
    id: &str,
    body: Value,
    if_match: Option<i64>,
    with_members: bool,
    actor: &Actor,
) -> Result<GroupRow, ScimError> {
    let group =
        provision::replace_group(&state.store, id, body, if_match, with_members, actor).await?;
    state.metrics.scim_op("Group", "replace");
    Ok(group)
}

pub(super) async fn patch_one(
    state: &AppState,
    id: &str,
    body: Value,
    if_match: Option<i64>,
    with_members: bool,
    actor: &Actor,
) -> Result<GroupRow, ScimError> {
    let group =
        provision::patch_group(&state.store, id, body, if_match, with_members, actor).await?;
    state.metrics.scim_op("Group", "patch");
    Ok(group)
}

pub(super) async fn delete_one(
    state: &AppState,
    id: &str,
    if_match: Option<i64>,
    actor: &Actor,
) -> Result<(), ScimError> {
    state.store.delete_group(id, if_match, actor).await?;
    state.metrics.scim_op("Group", "delete");
    Ok(())
}

async fn list(
    state: State,
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ScimError> {
    list_with(&state, &req, &q).await
}

/// `POST /Groups/.search`: the same as a GET with these parameters.
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
    let p = list_params(state, q, Some(ResourceKind::Group))?;
    let members = p.projection.returns(ResourceKind::Group, "members");
    let page = state.store.list_groups(&p.query, members).await?;
    let base = base_url(state, req);
    let resources = page
        .items
        .into_iter()
        .map(|g| Value::Object(p.projection.apply(ResourceKind::Group, render(g, &base))))
        .collect();
    Ok(page_response(
        ResourceKind::Group,
        &p,
        page.total,
        page.next,
        resources,
    ))
}
