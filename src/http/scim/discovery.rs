//! `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas` (RFC 7644 §4): what this server
//! really supports, nothing more.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{base_url, list_response, method_not_allowed};
use crate::http::error::{ScimError, SCIM_CONTENT_TYPE};
use crate::http::State;
use crate::scim::resource::ResourceKind;
use crate::scim::schema::{schema_by_id, schema_json, RESOURCE_TYPE_SCHEMA, SCHEMAS, SPC_SCHEMA};

pub fn routes(cfg: &mut web::ServiceConfig) {
    for (path, handler) in [
        (
            "/ServiceProviderConfig",
            web::get().to(service_provider_config),
        ),
        ("/ResourceTypes", web::get().to(resource_types)),
        ("/ResourceTypes/{id}", web::get().to(resource_type)),
        ("/Schemas", web::get().to(schemas)),
        ("/Schemas/{id}", web::get().to(schema)),
    ] {
        cfg.service(
            web::resource(path)
                .route(handler)
                .default_service(method_not_allowed("GET")),
        );
    }
}

/// RFC 7644 §4: a `filter` on a discovery endpoint SHOULD be answered 403, so that a client
/// does not take an unfiltered answer for a filtered one.
fn refuse_filter(req: &HttpRequest) -> Result<(), ScimError> {
    let query = web::Query::<Vec<(String, String)>>::from_query(req.query_string());
    let filtered = query.is_ok_and(|q| q.iter().any(|(name, _)| name == "filter"));
    if filtered {
        return Err(ScimError::new(
            StatusCode::FORBIDDEN,
            None,
            "discovery endpoints do not support \"filter\" (RFC 7644 §4)",
        ));
    }
    Ok(())
}

fn ok(body: Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(SCIM_CONTENT_TYPE)
        .body(body.to_string())
}

async fn service_provider_config(
    state: State,
    req: HttpRequest,
) -> Result<HttpResponse, ScimError> {
    refuse_filter(&req)?;
    let base = base_url(&state, &req);
    let max_page = state.settings.max_page_size;
    Ok(ok(json!({
        "schemas": [SPC_SCHEMA],
        "documentationUri": "https://github.com/rolecall/rolecall#readme",
        "patch": {"supported": true},
        "bulk": {
            "supported": true,
            "maxOperations": state.settings.bulk_max_operations,
            "maxPayloadSize": state.settings.bulk_max_payload_bytes,
        },
        "filter": {"supported": true, "maxResults": state.settings.max_page_size},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        // RFC 9865; cursor paging is not available on /.search across resource types
        "pagination": {
            "cursor": true,
            "index": true,
            "defaultPaginationMethod": "index",
            // what a list without `count` returns: the default, capped by the maximum
            "defaultPageSize": state.settings.default_page_size.min(max_page),
            "maxPageSize": max_page,
        },
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A rolecall API token of scope \"scim\" (rolecall token create --scope scim), sent as Authorization: Bearer.",
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
    })))
}

fn resource_type_json(kind: ResourceKind, base: &str) -> Value {
    let extensions: Vec<Value> = kind
        .extensions()
        .iter()
        .map(|(urn, _)| json!({"schema": urn, "required": false}))
        .collect();
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": kind.as_str(),
        "name": kind.as_str(),
        "endpoint": format!("/{}", kind.endpoint()),
        "description": match kind { ResourceKind::User => "User Account", ResourceKind::Group => "Group" },
        "schema": kind.core_schema(),
        "schemaExtensions": extensions,
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", kind.as_str())},
    })
}

const KINDS: [ResourceKind; 2] = [ResourceKind::User, ResourceKind::Group];

async fn resource_types(state: State, req: HttpRequest) -> Result<HttpResponse, ScimError> {
    refuse_filter(&req)?;
    let base = base_url(&state, &req);
    let all: Vec<Value> = KINDS
        .iter()
        .map(|k| resource_type_json(*k, &base))
        .collect();
    Ok(list_response(all.len() as i64, 1, all))
}

async fn resource_type(
    state: State,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ScimError> {
    let kind = KINDS
        .iter()
        .find(|k| k.as_str().eq_ignore_ascii_case(&id))
        .ok_or_else(|| {
            ScimError::new(
                StatusCode::NOT_FOUND,
                None,
                format!("no resource type \"{id}\""),
            )
        })?;
    Ok(ok(resource_type_json(*kind, &base_url(&state, &req))))
}

async fn schemas(state: State, req: HttpRequest) -> Result<HttpResponse, ScimError> {
    refuse_filter(&req)?;
    let base = base_url(&state, &req);
    let all: Vec<Value> = SCHEMAS.iter().map(|s| schema_json(s, &base)).collect();
    Ok(list_response(all.len() as i64, 1, all))
}

async fn schema(
    state: State,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ScimError> {
    let s = schema_by_id(&id).ok_or_else(|| {
        ScimError::new(StatusCode::NOT_FOUND, None, format!("no schema \"{id}\""))
    })?;
    Ok(ok(schema_json(s, &base_url(&state, &req))))
}
