//! `/scim/v2/Groups`.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::{
    base_url, if_match, list_params, meta, meta_location, method_not_allowed, not_modified,
    page_response, projection, resource_response, resource_text_response,
};
use crate::http::error::ScimError;
use crate::http::{AppState, Caller, State};
use crate::provision;
use crate::scim::projection::Projection;
use crate::scim::resource::ResourceKind;
use crate::store::{Actor, GroupRow, MemberList, MemberRow, StoreError};

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
            .iter()
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
fn render_parts(group: GroupRow, base: &str) -> (Map<String, Value>, Option<MemberList>) {
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

fn member_path(m: &MemberRow<'_>) -> &'static str {
    if m.kind == "Group" {
        "Groups"
    } else {
        "Users"
    }
}

/// A single group's response. Without `attributes`/`excludedAttributes` the members are
/// written straight from their rows, the same text [`render`] and `to_string` give, as
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
    let body = group_body(&doc, members.as_ref(), base)
        .map_err(|e| ScimError::from(StoreError::Corrupt(e.to_string())))?;
    Ok(resource_text_response(
        status,
        body,
        meta_location(&doc),
        version,
    ))
}

/// `doc` as JSON text, its `members` entry written from `members`: the bytes
/// `serde_json::to_string` gives for [`render`]'s answer (keys in the map's order, sorted;
/// strings escaped as serde_json does), without a JSON value per member.
fn group_body(
    doc: &Map<String, Value>,
    members: Option<&MemberList>,
    base: &str,
) -> Result<String, serde_json::Error> {
    let estimate = members.map_or(0, |m| m.text_len() + m.len() * (base.len() + 60));
    let mut out = Vec::with_capacity(512 + estimate);
    out.push(b'{');
    for (i, (k, v)) in doc.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_str(&mut out, &[k]);
        out.push(b':');
        match members {
            Some(list) if k == "members" => write_members(&mut out, list, base),
            _ => serde_json::to_writer(&mut out, v)?,
        }
    }
    out.push(b'}');
    String::from_utf8(out).map_err(|e| serde_json::Error::io(std::io::Error::other(e)))
}

/// `[{"$ref": …, "display": …, "type": …, "value": …}, …]`: the keys in the order a
/// `serde_json::Map` keeps them (sorted), as [`render`] gives.
fn write_members(out: &mut Vec<u8>, members: &MemberList, base: &str) {
    out.push(b'[');
    for (i, m) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"$ref\":");
        json_str(out, &[base, "/", member_path(&m), "/", m.value]);
        if let Some(d) = m.display {
            out.extend_from_slice(b",\"display\":");
            json_str(out, &[d]);
        }
        out.extend_from_slice(b",\"type\":");
        json_str(out, &[m.kind]);
        out.extend_from_slice(b",\"value\":");
        json_str(out, &[m.value]);
        out.push(b'}');
    }
    out.push(b']');
}

/// Whether `s` holds a byte serde_json escapes. Checked 16 bytes at a time without an early
/// exit inside a block, which the compiler turns into vector instructions.
fn needs_escape(s: &[u8]) -> bool {
    s.chunks(16).any(|block| {
        block.iter().fold(false, |bad, &b| {
            bad | (b < 0x20) | (b == b'"') | (b == b'\\')
        })
    })
}

/// One JSON string made of `parts`, escaped exactly as serde_json escapes (control
/// characters, `"` and `\`; nothing else). Parts with nothing to escape, such as ids, are
/// copied as they are.
fn json_str(out: &mut Vec<u8>, parts: &[&str]) {
    out.push(b'"');
    for p in parts {
        if !needs_escape(p.as_bytes()) {
            out.extend_from_slice(p.as_bytes());
        } else {
            // serde_json's own escaping, its quotes taken off
            let quoted = Value::String((*p).to_string()).to_string();
            out.extend_from_slice(&quoted.as_bytes()[1..quoted.len() - 1]);
        }
    }
    out.push(b'"');
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

    fn group(members: Option<MemberList>) -> GroupRow {
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
        group_body(&doc, members.as_ref(), base).unwrap()
    }

    #[test]
    fn escaping_is_found_anywhere() {
        assert!(!needs_escape(b""));
        assert!(!needs_escape(
            "plain ascii and é ü / 日本 ~\u{7f}".as_bytes()
        ));
        for bad in ["\"", "\\", "\n", "\u{1f}", "\u{0}"] {
            for at in [0, 5, 15, 16, 17, 40] {
                let s = format!("{}{bad}{}", "a".repeat(at), "b".repeat(20));
                assert!(needs_escape(s.as_bytes()), "{s:?}");
            }
        }
    }

    #[test]
    fn members_written_directly_read_as_rendered() {
        let mut members = MemberList::default();
        members.push("u1", "User", Some("Ä \\ \"q\"\n\u{1} \u{7f} / é"));
        members.push("g2", "Group", None);
        members.push("u\"3", "User", Some(""));
        members.sort();
        for base in ["http://h:1/scim/v2", "http://h:1/\"odd\\"] {
            for g in [
                group(Some(members.clone())),
                group(Some(MemberList::default())),
                group(None),
            ] {
                let rendered = Value::Object(render(g.clone(), base)).to_string();
                assert_eq!(direct(g, base), rendered);
            }
        }
    }
}
