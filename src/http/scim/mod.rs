//! `/scim/v2`: authentication, request parsing shared by the endpoints, and rendering.

mod bulk;
mod discovery;
mod groups;
mod search;
mod users;

use std::collections::HashMap;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, Error, HttpRequest, HttpResponse, ResponseError};
use serde_json::{json, Map, Value};

use super::error::{ScimError, SCIM_CONTENT_TYPE};
use super::State;
use crate::scim::cursor::{fingerprint, Cursor, Position};
use crate::scim::error::ScimType;
use crate::scim::filter::Filter;
use crate::scim::projection::Projection;
use crate::scim::resource::ResourceKind;
use crate::scim::schema::LIST_RESPONSE_SCHEMA;
use crate::scim::sort::{parse_sort, SortSpec};
use crate::store::ListQuery;

pub fn scope() -> actix_web::Scope<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >,
> {
    web::scope("/scim/v2")
        .app_data(
            web::QueryConfig::default().error_handler(|e: QueryPayloadError, _| {
                ScimError::bad_request(ScimType::InvalidValue, format!("invalid query string: {e}"))
                    .into()
            }),
        )
        .configure(users::routes)
        .configure(groups::routes)
        .configure(discovery::routes)
        .configure(bulk::routes)
        .configure(search::routes)
        .default_service(web::to(|| async {
            ScimError::not_found("no such SCIM endpoint").error_response()
        }))
}

/// Body parsing for SCIM writes: JSON (`application/scim+json` or `application/json`),
/// at most `limit` bytes, every failure a SCIM error.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type(is_json)
        .error_handler(|e, _| json_error(&e).into())
}

/// The request body types SCIM writes accept.
pub fn is_json(mime: mime::Mime) -> bool {
    mime.type_() == mime::APPLICATION
        && (mime.subtype() == mime::JSON
            || mime.subtype().as_str() == "scim+json"
            || mime.suffix() == Some(mime::JSON))
}

/// A body that could not be read as JSON, as a SCIM error.
pub fn json_error(e: &JsonPayloadError) -> ScimError {
    match e {
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => ScimError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            format!("the request body is larger than the limit of {limit} bytes"),
        ),
        JsonPayloadError::ContentType => ScimError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            "the request body must be application/scim+json or application/json",
        ),
        JsonPayloadError::Payload(p) if crate::http::middleware::body_timed_out(p) => {
            ScimError::new(
                StatusCode::REQUEST_TIMEOUT,
                None,
                crate::http::middleware::BODY_TIMED_OUT,
            )
        }
        JsonPayloadError::Deserialize(d) => ScimError::bad_request(
            ScimType::InvalidSyntax,
            format!("the request body is not valid JSON: {d}"),
        ),
        other => ScimError::bad_request(
            ScimType::InvalidSyntax,
            format!("could not read the request body: {other}"),
        ),
    }
}

/// `https://host/scim/v2`: the configured public URL, else the request's own scheme and host.
pub fn base_url(state: &State, req: &HttpRequest) -> String {
    match &state.settings.public_url {
        Some(u) => format!("{}/scim/v2", u.trim_end_matches('/')),
        None => {
            let info = req.connection_info();
            format!("{}://{}/scim/v2", info.scheme(), info.host())
        }
    }
}

/// Query parameters of a list request.
pub struct ListParams {
    pub query: ListQuery,
    pub projection: Projection,
}

/// `attributes` / `excludedAttributes` of any request (names are case-insensitive).
pub fn projection(req: &HttpRequest) -> Result<Projection, ScimError> {
    let q = web::Query::<HashMap<String, String>>::from_query(req.query_string()).map_err(|e| {
        ScimError::bad_request(ScimType::InvalidValue, format!("invalid query string: {e}"))
    })?;
    projection_from(&q)
}

fn projection_from(q: &HashMap<String, String>) -> Result<Projection, ScimError> {
    let get = |name: &str| {
        q.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    Ok(Projection::parse(
        get("attributes"),
        get("excludedAttributes"),
    )?)
}

/// Parse a list request. `kind` is the resource type listed (`None`: `/.search` across
/// types, where cursor paging is refused).
pub fn list_params(
    state: &State,
    q: &HashMap<String, String>,
    kind: Option<ResourceKind>,
) -> Result<ListParams, ScimError> {
    let get = |name: &str| {
        q.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let int = |name: &str| -> Result<Option<i64>, ScimError> {
        get(name)
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    ScimError::bad_request(
                        ScimType::InvalidValue,
                        format!("\"{name}\" must be an integer, not \"{v}\""),
                    )
                })
            })
            .transpose()
    };
    let start_index = int("startIndex")?.unwrap_or(1).max(1);
    let count = int("count")?;
    let filter = match get("filter") {
        Some(f) if !f.trim().is_empty() => {
            Some(crate::scim::filter::parse_filter(f).map_err(|e| {
                ScimError::bad_request(ScimType::InvalidFilter, format!("invalid filter: {e}"))
            })?)
        }
        _ => None,
    };
    let sort = parse_sort(get("sortBy"), get("sortOrder"))?;
    let cursor = match (get("cursor"), kind) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(ScimError::bad_request(
                ScimType::InvalidValue,
                "cursor paging is not available on /.search across resource types; use \
                 startIndex, or /Users/.search and /Groups/.search",
            ))
        }
        (Some(_), Some(_)) if get("startIndex").is_some() => return Err(ScimError::bad_request(
            ScimType::InvalidValue,
            "\"startIndex\" and \"cursor\" cannot be used together: choose index or cursor paging",
        )),
        (Some(_), Some(_)) if count.is_some_and(|c| c < 1) => {
            return Err(ScimError::bad_request(
                ScimType::InvalidCount,
                format!(
                    "with cursor paging \"count\" must be between 1 and {}",
                    state.settings.max_page_size
                ),
            ))
        }
        (Some(token), Some(_)) if token.trim().is_empty() => Some(None),
        (Some(token), Some(kind)) => {
            let fp = fingerprint_of(kind, filter.as_ref(), sort.as_ref());
            Some(Some(Cursor::decode(token)?.check(fp)?))
        }
    };
    let count = count
        .unwrap_or(state.settings.default_page_size)
        .clamp(0, state.settings.max_page_size);
    Ok(ListParams {
        query: ListQuery {
            filter,
            start_index,
            count,
            sort,
            cursor,
            lenient: kind.is_none(),
        },
        projection: projection_from(q)?,
    })
}

/// What a cursor is bound to: the resource type, the filter and the sort.
fn fingerprint_of(kind: ResourceKind, filter: Option<&Filter>, sort: Option<&SortSpec>) -> u64 {
    let filter = filter.map(|f| f.to_string()).unwrap_or_default();
    let sort = sort.map(SortSpec::canonical).unwrap_or_default();
    fingerprint(&[kind.as_str(), &filter, &sort])
}

/// The ListResponse of one page: `startIndex` with index paging; with cursor paging
/// (RFC 9865) no `startIndex`, and `nextCursor` unless this is the last page.
pub fn page_response(
    kind: ResourceKind,
    p: &ListParams,
    total: i64,
    next: Option<Position>,
    resources: Vec<Value>,
) -> HttpResponse {
    if p.query.cursor.is_none() {
        return list_response(total, p.query.start_index, resources);
    }
    let mut body = json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    });
    if let Some(pos) = next {
        let c = Cursor {
            pos,
            fingerprint: fingerprint_of(kind, p.query.filter.as_ref(), p.query.sort.as_ref()),
        };
        body["nextCursor"] = json!(c.encode());
    }
    HttpResponse::Ok()
        .content_type(SCIM_CONTENT_TYPE)
        .body(body.to_string())
}

pub const SEARCH_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// A `POST .../.search` body (RFC 7644 §3.4.3) as the query parameters of the equivalent GET.
pub fn search_params(body: Value) -> Result<HashMap<String, String>, ScimError> {
    let bad = |d: String| ScimError::bad_request(ScimType::InvalidValue, d);
    let Value::Object(obj) = body else {
        return Err(ScimError::bad_request(
            ScimType::InvalidSyntax,
            "a search request must be a JSON object",
        ));
    };
    let mut q = HashMap::new();
    let mut schema_ok = false;
    for (k, v) in obj {
        match k.to_ascii_lowercase().as_str() {
            "schemas" => {
                schema_ok = v.as_array().is_some_and(|a| {
                    a.iter().any(|s| {
                        s.as_str()
                            .is_some_and(|s| s.eq_ignore_ascii_case(SEARCH_REQUEST_SCHEMA))
                    })
                });
            }
            "filter" => {
                let f = v
                    .as_str()
                    .ok_or_else(|| bad("\"filter\" must be a string".into()))?;
                q.insert("filter".to_string(), f.to_string());
            }
            key @ ("startindex" | "count") => {
                let n = v
                    .as_i64()
                    .ok_or_else(|| bad(format!("\"{k}\" must be an integer")))?;
                let name = if key == "count" {
                    "count"
                } else {
                    "startIndex"
                };
                q.insert(name.to_string(), n.to_string());
            }
            key @ ("attributes" | "excludedattributes") => {
                let list = match &v {
                    Value::String(s) => s.clone(),
                    Value::Array(items) => items
                        .iter()
                        .map(|i| {
                            i.as_str()
                                .map(str::to_owned)
                                .ok_or_else(|| bad(format!("\"{k}\" must list attribute names")))
                        })
                        .collect::<Result<Vec<_>, _>>()?
                        .join(","),
                    _ => return Err(bad(format!("\"{k}\" must be an array of attribute names"))),
                };
                let name = if key == "attributes" {
                    "attributes"
                } else {
                    "excludedAttributes"
                };
                q.insert(name.to_string(), list);
            }
            key @ ("sortby" | "sortorder" | "cursor") => {
                let text = v
                    .as_str()
                    .ok_or_else(|| bad(format!("\"{k}\" must be a string")))?;
                let name = match key {
                    "sortby" => "sortBy",
                    "sortorder" => "sortOrder",
                    _ => "cursor",
                };
                q.insert(name.to_string(), text.to_string());
            }
            _ => return Err(bad(format!("unknown search request attribute \"{k}\""))),
        }
    }
    if !schema_ok {
        return Err(ScimError::bad_request(
            ScimType::InvalidSyntax,
            format!("\"schemas\" must be [\"{SEARCH_REQUEST_SCHEMA}\"]"),
        ));
    }
    Ok(q)
}

/// A ListResponse.
pub fn list_response(total: i64, start_index: i64, resources: Vec<Value>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(SCIM_CONTENT_TYPE)
        .body(list_body(total, start_index, resources))
}

fn list_body(total: i64, start_index: i64, resources: Vec<Value>) -> String {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "itemsPerPage": resources.len(),
        "startIndex": start_index,
        "Resources": resources,
    })
    .to_string()
}

/// [`list_response`] of resources already serialized: the same text, without building and
/// serializing a `Value` tree.
pub fn list_response_text(total: i64, start_index: i64, resources: &[&str]) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(SCIM_CONTENT_TYPE)
        .body(list_body_text(total, start_index, resources))
}

fn list_body_text(total: i64, start_index: i64, resources: &[&str]) -> String {
    use std::fmt::Write;
    let len: usize = resources.iter().map(|r| r.len() + 1).sum();
    let mut body = String::with_capacity(len + 128);
    // the keys in serde_json's (sorted) order
    body.push_str("{\"Resources\":[");
    for (i, r) in resources.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(r);
    }
    let _ = write!(
        body,
        "],\"itemsPerPage\":{},\"schemas\":[\"{LIST_RESPONSE_SCHEMA}\"],\"startIndex\":{start_index},\
         \"totalResults\":{total}}}",
        resources.len()
    );
    body
}

pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// `If-Match`: `None` when absent or `*`; a version otherwise. A tag that is not one of ours
/// can never match, which is a 412. A list of tags (RFC 9110 §13.1.1: the condition holds when
/// any of them matches) is checked against the resource's current version, read here: the
/// version that matched is what the write then requires, so a change in between is still a
/// 412.
pub async fn if_match(
    req: &HttpRequest,
    state: &State,
    kind: ResourceKind,
    id: &str,
) -> Result<Option<i64>, ScimError> {
    let Some(value) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or("");
    if !value.contains(',') {
        return parse_if_match(value);
    }
    let tags: Vec<&str> = value.split(',').map(str::trim).collect();
    if tags.contains(&"*") {
        return Ok(None);
    }
    let listed: Vec<i64> = tags
        .iter()
        .filter_map(|t| parse_if_match(t).ok().flatten())
        .collect();
    let current = match kind {
        ResourceKind::User => state.store.get_user(id).await?.version,
        ResourceKind::Group => state.store.get_group(id, false).await?.version,
    };
    if listed.contains(&current) {
        Ok(Some(current))
    } else {
        Err(precondition_failed())
    }
}

fn precondition_failed() -> ScimError {
    ScimError::new(
        StatusCode::PRECONDITION_FAILED,
        Some("invalidVers"),
        "If-Match does not match the resource's version",
    )
}

/// One `If-Match` tag (or a bulk operation's `version`): `*` is `None`, `W/"n"` is `n`.
pub fn parse_if_match(v: &str) -> Result<Option<i64>, ScimError> {
    let v = v.trim();
    if v == "*" {
        return Ok(None);
    }
    v.trim_start_matches("W/")
        .trim_matches('"')
        .parse::<i64>()
        .map(Some)
        .map_err(|_| precondition_failed())
}

/// `If-None-Match` names the current version: answer 304.
pub fn not_modified(req: &HttpRequest, version: i64) -> bool {
    let tag = etag(version);
    req.headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == tag || t.trim() == "*" || t.trim() == &tag[2..])
        })
}

/// The `meta` block of a resource.
pub fn meta(
    resource_type: &str,
    location: String,
    created: &str,
    last_modified: &str,
    version: i64,
) -> Value {
    json!({
        "resourceType": resource_type,
        "created": created,
        "lastModified": last_modified,
        "location": location,
        "version": etag(version),
    })
}

/// A single resource: 200/201 with `ETag` (and `Location` on create).
pub fn resource_response(
    status: StatusCode,
    body: Map<String, Value>,
    version: i64,
) -> HttpResponse {
    let location = meta_location(&body);
    resource_text_response(status, Value::Object(body).to_string(), location, version)
}

/// `meta.location` of a rendered resource.
pub fn meta_location(body: &Map<String, Value>) -> Option<String> {
    body.get("meta")
        .and_then(|m| m.get("location"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// [`resource_response`] for a body already serialized.
pub fn resource_text_response(
    status: StatusCode,
    body: String,
    location: Option<String>,
    version: i64,
) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    res.content_type(SCIM_CONTENT_TYPE)
        .insert_header((header::ETAG, etag(version)));
    if status == StatusCode::CREATED {
        if let Some(l) = location {
            res.insert_header((header::LOCATION, l));
        }
    }
    res.body(body)
}

/// The fallback route of a resource: 405 in SCIM form, with the `Allow` header.
pub fn method_not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move || {
        let mut res = ScimError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            format!("method not allowed; this endpoint allows {allow}"),
        )
        .error_response();
        res.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        std::future::ready(res)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_serialized_resources_is_the_same_text() {
        let a = json!({"id": "a", "meta": {"version": "W/\"1\""}, "userName": "ä\"x"});
        let b = json!({"id": "b", "groups": [{"value": "g"}]});
        for (total, start, items) in [
            (0, 1, vec![]),
            (1, 1, vec![a.clone()]),
            (1, 2, vec![]),
            (7, 3, vec![a.clone(), b.clone()]),
        ] {
            let texts: Vec<String> = items.iter().map(Value::to_string).collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            assert_eq!(
                list_body_text(total, start, &refs),
                list_body(total, start, items),
                "{total} {start}"
            );
        }
    }
}
