//! `POST /scim/v2/.search` (RFC 7644 §3.4.3): one search across every resource type.
//!
//! The answer lists the matching Users, then the matching Groups, each in the requested
//! order (or insertion order); `startIndex`/`count` page over that concatenation and
//! `totalResults` is the sum. The filter and `sortBy` are checked against both types: an
//! attribute only one type has is absent on the other (so `userName eq "x"` matches no
//! Group), and a name neither type has is 400 as usual. Cursor paging is refused here.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::{base_url, list_params, list_response, method_not_allowed, search_params};
use crate::http::error::ScimError;
use crate::http::State;
use crate::scim::resource::ResourceKind;
use crate::store::ListQuery;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/.search")
            .route(web::post().to(search))
            .default_service(method_not_allowed("POST")),
    );
}

async fn search(
    state: State,
    req: HttpRequest,
    body: web::Json<Value>,
) -> Result<HttpResponse, ScimError> {
    let q: HashMap<String, String> = search_params(body.into_inner())?;
    let p = list_params(&state, &q, None)?;
    let base = base_url(&state, &req);
    let users = state.store.list_users(&p.query).await?;
    let mut resources: Vec<Value> = users
        .items
        .into_iter()
        .map(|u| {
            Value::Object(
                p.projection
                    .apply(ResourceKind::User, super::users::render(u, &base)),
            )
        })
        .collect();
    // the groups' part of the page: what is left of `count`, from where the users end
    let groups_query = ListQuery {
        start_index: (p.query.start_index - users.total).max(1),
        count: (p.query.count - resources.len() as i64).max(0),
        ..p.query.clone()
    };
    let members = p.projection.returns(ResourceKind::Group, "members");
    let groups = state.store.list_groups(&groups_query, members).await?;
    resources.extend(groups.items.into_iter().map(|g| {
        Value::Object(
            p.projection
                .apply(ResourceKind::Group, super::groups::render(g, &base)),
        )
    }));
    Ok(list_response(
        users.total + groups.total,
        p.query.start_index,
        resources,
    ))
}
