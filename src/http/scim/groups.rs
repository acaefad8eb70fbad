//! `/scim/v2/Groups`.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::{
    base_url, if_match, list_params, meta, meta_location, method_not_allowed, not_modified,
    page_response, projection, resource_response, resource_text_response,
};
use crate::http::error::ScimError;
use crate::http::{AppState, Caller, State};
use crate::provision;
use crate::scim::projection::Projection;
use crate::scim::resource::ResourceKind;
use crate::store::{Actor, GroupRow, MemberRow, StoreError};

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
    let (mut doc, members) = render_parts(group, base);
    if let Some(members) = members {
        let members = members
            .into_iter()
            .map(|m| {
                let path = member_path(&m);
                let mut o = json!({"value": m.value, "type": m.kind, "$ref": format!("{base}/{path}/{}", m.value)});
                if let Some(d) = m.display {
                    o["display"] = json!(d);
                }
                o
            })
            .collect();
        doc.insert("members".into(), Value::Array(members));
    }
    doc
}

/// The rendered group with `members: null` where the member list goes, and that list.
fn render_parts(group: GroupRow, base: &str) -> (Map<String, Value>, Option<Vec<MemberRow>>) {
    let mut doc = group.doc;
    let schemas = crate::scim::resource::schemas_of(ResourceKind::Group, &doc);
    doc.insert("schemas".into(), schemas);
    doc.insert("id".into(), json!(group.id));
    if group.members.is_some() {
        doc.insert("members".into(), Value::Null);
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
    (doc, group.members)
}

fn member_path(m: &MemberRow) -> &'static str {
    if m.kind == "Group" {
        "Groups"
    } else {
        "Users"
    }
}

/// A single group's response. Without `attributes`/`excludedAttributes` the members are
/// serialized straight from their rows, the same text [`render`] and `to_string` give, as
/// building 100,000 members as JSON values first cost more than reading them.
fn group_response(
    status: StatusCode,
    proj: &Projection,
    group: GroupRow,
    base: &str,
) -> Result<HttpResponse, ScimError> {
    let version = group.version;
    if !proj.is_identity() {
        let body = proj.apply(ResourceKind::Group, render(group, base));
        return Ok(resource_response(status, body, version));
    }
    let (doc, members) = render_parts(group, base);
    let body = serde_json::to_string(&GroupBody {
        doc: &doc,
        members: members.as_deref().unwrap_or_default(),
        base,
    })
    .map_err(|e| ScimError::from(StoreError::Corrupt(e.to_string())))?;
    Ok(resource_text_response(
        status,
        body,
        meta_location(&doc),
        version,
    ))
}

/// A rendered group whose `members` entry is written from `members`.
struct GroupBody<'a> {
    doc: &'a Map<String, Value>,
    members: &'a [MemberRow],
    base: &'a str,
}

impl Serialize for GroupBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.doc.len()))?;
        for (k, v) in self.doc {
            if k == "members" {
                map.serialize_entry(k, &Members(self.members, self.base))?;
            } else {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

struct Members<'a>(&'a [MemberRow], &'a str);

impl Serialize for Members<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for m in self.0 {
            seq.serialize_element(&Member(m, self.1))?;
        }
        seq.end()
    }
}

struct Member<'a>(&'a MemberRow, &'a str);

impl Serialize for Member<'_> {
    /// The keys in the order a `serde_json::Map` keeps them (sorted), as [`render`] gives.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Member(m, base) = *self;
        let mut map = s.serialize_map(Some(if m.display.is_some() { 4 } else { 3 }))?;
        let path = member_path(m);
        map.serialize_entry("$ref", &format_args!("{base}/{path}/{}", m.value))?;
        if let Some(d) = &m.display {
            map.serialize_entry("display", d)?;
        }
        map.serialize_entry("type", &m.kind)?;
        map.serialize_entry("value", &m.value)?;
        map.end()
    }
}

async fn create(
    state: State,
    caller: Caller,
    req: HttpRequest,
    body: web::Json<Value>,
) -> Result<HttpResponse, ScimError> {
    let proj = projection(&req)?;
    let group = create_one(&state, body.into_inner(), &caller.0).await?;
    group_response(StatusCode::CREATED, &proj, group, &base_url(&state, &req))
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
    group_response(StatusCode::OK, &proj, group, &base_url(&state, &req))
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
        if_match(&req, &state, ResourceKind::Group, &id).await?,
        proj.returns(ResourceKind::Group, "members"),
        &caller.0,
    )
    .await?;
    group_response(StatusCode::OK, &proj, group, &base_url(&state, &req))
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
        if_match(&req, &state, ResourceKind::Group, &id).await?,
        proj.returns(ResourceKind::Group, "members"),
        &caller.0,
    )
    .await?;
    group_response(StatusCode::OK, &proj, group, &base_url(&state, &req))
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
        if_match(&req, &state, ResourceKind::Group, &id).await?,
        &caller.0,
    )
    .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn group(members: Option<Vec<MemberRow>>) -> GroupRow {
        let doc = json!({"displayName": "Ops \"A\" é", "externalId": "x-1"});
        GroupRow {
            id: "g1".into(),
            doc: doc.as_object().cloned().unwrap_or_default(),
            version: 3,
            created: "2026-01-01T00:00:00.000Z".into(),
            last_modified: "2026-01-02T00:00:00.000Z".into(),
            members,
        }
    }

    fn direct(group: GroupRow, base: &str) -> String {
        let (doc, members) = render_parts(group, base);
        serde_json::to_string(&GroupBody {
            doc: &doc,
            members: members.as_deref().unwrap_or_default(),
            base,
        })
        .unwrap()
    }

    #[test]
    fn members_written_directly_read_as_rendered() {
        let base = "http://h:1/scim/v2";
        let members = vec![
            MemberRow {
                value: "u1".into(),
                kind: "User",
                display: Some("Ä \\ \"q\"\n".into()),
            },
            MemberRow {
                value: "g2".into(),
                kind: "Group",
                display: None,
            },
        ];
        for g in [group(Some(members)), group(Some(Vec::new())), group(None)] {
            let rendered = Value::Object(render(g.clone(), base)).to_string();
            assert_eq!(direct(g, base), rendered);
        }
    }
}
