//! The API enforcement points call (token scope `lookup`): role lookups, AuthZEN access
//! evaluation, signed role tokens, and the public discovery documents.

use std::borrow::Cow;

use actix_web::error::JsonPayloadError;
use actix_web::http::header::{self, Header, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::error::{json_problem, ApiError};
use super::health::not_allowed;
use super::State;
use crate::access::LookupError;
use crate::roles::evaluate::Decision;

pub fn routes(cfg: &mut web::ServiceConfig, json: web::JsonConfig, body_limit: usize) {
    // `/v1/users/{user}/roles` and `/v1/users/{user}/token` are matched by hand under a
    // static prefix: the router matches a pattern with a parameter by regular expression,
    // which cost more per lookup than answering it
    cfg.service(web::scope("/v1/users").default_service(web::to(user_endpoint)))
        .service(
            web::resource("/access/v1/evaluation")
                .route(
                    web::post()
                        .to(move |state, req, payload| evaluation(state, req, payload, body_limit)),
                )
                .default_service(not_allowed("POST")),
        )
        .service(
            web::resource("/access/v1/evaluations")
                .app_data(json)
                .route(web::post().to(evaluations))
                .default_service(not_allowed("POST")),
        )
        .service(
            web::resource("/.well-known/authzen-configuration")
                .route(web::get().to(authzen_configuration))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource("/.well-known/jwks.json")
                .route(web::get().to(jwks))
                .default_service(not_allowed("GET")),
        );
}

/// The public base URL: configured, or the request's own scheme and host.
pub fn public_base(state: &State, req: &HttpRequest) -> String {
    match &state.settings.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    }
}

const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

fn json_response(body: &Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.to_string())
}

fn lookup_error(e: LookupError) -> ApiError {
    match e {
        LookupError::UnknownUser => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
        LookupError::UnknownScope(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
        LookupError::Serialize(m) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, m),
    }
}

/// The endpoints under `/v1/users/{user}/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserAction {
    Roles,
    Token,
}

impl UserAction {
    /// The route label, for the request log and metrics.
    fn pattern(self) -> &'static str {
        match self {
            UserAction::Roles => "/v1/users/{user}/roles",
            UserAction::Token => "/v1/users/{user}/token",
        }
    }
}

/// `/v1/users/{user}/roles` or `…/token`: `{user}` as it is in the path (not yet
/// percent-decoded) and the endpoint; `None` for any other path.
fn user_route(path: &str) -> Option<(&str, UserAction)> {
    let (user, action) = path.strip_prefix("/v1/users/")?.split_once('/')?;
    let action = match action {
        "roles" => UserAction::Roles,
        "token" => UserAction::Token,
        _ => return None,
    };
    (!user.is_empty()).then_some((user, action))
}

/// The route label of a hand-matched endpoint (the router only knows their prefix), for the
/// request log and metrics.
pub fn hand_matched_route(path: &str) -> Option<&'static str> {
    user_route(path).map(|(_, action)| action.pattern())
}

/// `/v1/users/{user}/roles` (GET) and `/v1/users/{user}/token` (POST); `{user}` is
/// percent-decoded.
async fn user_endpoint(state: State, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (user, action) = user_route(req.path())
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such endpoint"))?;
    let (allow, method) = match action {
        UserAction::Roles => ("GET", actix_web::http::Method::GET),
        UserAction::Token => ("POST", actix_web::http::Method::POST),
    };
    if req.method() != method {
        let mut res = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method not allowed; this endpoint allows {allow}"),
        )
        .error_response();
        res.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        return Ok(res);
    }
    let user = percent_encoding::percent_decode_str(user)
        .decode_utf8()
        .map_err(|_| bad("the user in the path is not valid UTF-8"))?;
    if action == UserAction::Roles {
        let (workspace, project) = scope_params(req.query_string());
        roles(
            &state,
            &req,
            &user,
            workspace.as_deref(),
            project.as_deref(),
        )
    } else {
        role_token(&state, &req, &user)
    }
}

/// `workspace` and `project` of a query string read as `application/x-www-form-urlencoded`
/// (as `web::Query` reads it: `+` is a space, `%XX` a byte, invalid UTF-8 is replaced, the last
/// of a repeated name counts), without copying what needs no decoding.
fn scope_params(query: &str) -> (Option<Cow<'_, str>>, Option<Cow<'_, str>>) {
    fn decode(s: &str) -> Cow<'_, str> {
        if !s.bytes().any(|b| b == b'+' || b == b'%') {
            return Cow::Borrowed(s);
        }
        let spaced = s.replace('+', " ");
        Cow::Owned(
            percent_encoding::percent_decode_str(&spaced)
                .decode_utf8_lossy()
                .into_owned(),
        )
    }
    let (mut workspace, mut project) = (None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match decode(name).as_ref() {
            "workspace" => workspace = Some(decode(value)),
            "project" => project = Some(decode(value)),
            _ => {}
        }
    }
    (workspace, project)
}

fn roles(
    state: &State,
    req: &HttpRequest,
    user: &str,
    workspace: Option<&str>,
    project: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let body = state
        .access
        .roles(user, workspace, project)
        .map_err(lookup_error)?;
    let etag = weak_etag(content_hash(&body));
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        // weak comparison (RFC 9110 §13.1.2): the tag matches with or without its `W/`
        .is_some_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.trim_start_matches("W/") == etag.trim_start_matches("W/"))
        });
    let etag = HeaderValue::try_from(etag)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if matches {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, APPLICATION_JSON))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .body(body))
}

/// The hash an answer's `ETag` is made of: the same bytes give the same tag in every process
/// of one build, so replicas agree. Not a security measure: whoever could make two answers
/// collide writes the answers (the IdP, an admin), and a lookup's body costs it a few tens of
/// nanoseconds where SipHash took ~150.
fn content_hash(body: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    // any fixed seed; changing it changes every ETag once
    const SEED: u64 = 0x726f_6c65_6361_6c6c;
    foldhash::quality::FixedState::with_seed(SEED).hash_one(body)
}

/// `W/"<16 hex digits>"`, as `format!("W/\"{hash:016x}\"")` writes it.
fn weak_etag(hash: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(20);
    s.push_str("W/\"");
    for shift in (0..16).rev() {
        s.push(char::from(HEX[(hash >> (shift * 4)) as usize & 0xf]));
    }
    s.push('"');
    s
}

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, detail)
}

fn str_field<'a>(obj: Option<&'a Value>, key: &str) -> Option<&'a str> {
    obj.and_then(|o| o.get(key)).and_then(Value::as_str)
}

/// The fields of one AuthZEN evaluation request that a decision depends on.
struct EvalInput<'a> {
    subject_type: &'a str,
    subject_id: &'a str,
    action: &'a str,
    resource_type: &'a str,
    resource_id: Option<&'a str>,
    /// `resource.properties.workspace` / `.project`.
    workspace: Option<&'a str>,
    project: Option<&'a str>,
    max_tokens: Option<u64>,
}

/// One AuthZEN evaluation request (already merged with batch defaults) → a decision.
fn decide(state: &State, req: &Map<String, Value>) -> Result<Decision, ApiError> {
    decide_fields(state, |name| req.get(name))
}

/// [`decide`] over a request whose top-level members `get` returns (a batch item falls back
/// to the batch's defaults this way, without copying them per item).
fn decide_fields<'a>(
    state: &State,
    get: impl Fn(&str) -> Option<&'a Value>,
) -> Result<Decision, ApiError> {
    let req = get;
    let subject = req("subject")
        .filter(|v| v.is_object())
        .ok_or_else(|| bad("\"subject\" (an object) is required"))?;
    let action = req("action")
        .filter(|v| v.is_object())
        .ok_or_else(|| bad("\"action\" (an object) is required"))?;
    let resource = req("resource")
        .filter(|v| v.is_object())
        .ok_or_else(|| bad("\"resource\" (an object) is required"))?;
    let props = resource.get("properties");
    // a scope named by anything but a string would otherwise be no scope at all, and the
    // question would be answered at the organization (found by an audit)
    if let Some(p) = props.filter(|p| !p.is_null()) {
        let Some(p) = p.as_object() else {
            return Err(bad("\"resource.properties\" must be an object"));
        };
        for key in ["workspace", "project"] {
            if p.get(key).is_some_and(|v| !v.is_null() && !v.is_string()) {
                return Err(bad(format!(
                    "\"resource.properties.{key}\" must be a string"
                )));
            }
        }
    }
    let input = EvalInput {
        subject_type: str_field(Some(subject), "type")
            .ok_or_else(|| bad("\"subject.type\" is required"))?,
        subject_id: str_field(Some(subject), "id")
            .ok_or_else(|| bad("\"subject.id\" is required"))?,
        action: str_field(Some(action), "name")
            .ok_or_else(|| bad("\"action.name\" is required"))?,
        resource_type: str_field(Some(resource), "type")
            .ok_or_else(|| bad("\"resource.type\" is required"))?,
        resource_id: str_field(Some(resource), "id"),
        workspace: str_field(props, "workspace"),
        project: str_field(props, "project"),
        max_tokens: match req("context").and_then(|c| c.get("max_tokens")) {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| bad("\"context.max_tokens\" must be a non-negative integer"))?,
            ),
        },
    };
    decide_input(state, &input)
}

fn decide_input(state: &State, i: &EvalInput<'_>) -> Result<Decision, ApiError> {
    let deny = |reason: String| Decision {
        allowed: false,
        role: None,
        max_tokens: None,
        rpm: None,
        reason: Some(reason),
    };
    if i.subject_type != "user" {
        return Ok(deny(format!(
            "subject type \"{}\" is not supported; use \"user\"",
            i.subject_type
        )));
    }
    let resource_type = i.resource_type;
    let need_id = || {
        i.resource_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| bad(format!("a {resource_type} resource needs \"id\"")))
    };
    let (workspace, project, model) = match resource_type {
        "organization" => (None, None, None),
        // the workspace itself: a project named beside it would silently narrow the question
        // to that project (where the user may hold more than in the workspace)
        "workspace" if i.project.is_some() => {
            return Err(bad(
                "a workspace resource takes no properties.project; to ask about a project use \
                 {\"type\":\"project\",\"id\":P,\"properties\":{\"workspace\":W}}",
            ))
        }
        "workspace" => (Some(need_id()?), None, None),
        "project" => (i.workspace, Some(need_id()?), None),
        "model" => (i.workspace, i.project, Some(need_id()?)),
        other => {
            return Ok(deny(format!(
                "resource type \"{other}\" is not supported; use organization, workspace, project or model"
            )))
        }
    };
    if workspace.is_some_and(str::is_empty) || project.is_some_and(str::is_empty) {
        return Err(bad("a workspace or project name must not be empty"));
    }
    if resource_type == "project" && workspace.is_none() {
        return Err(bad("a project resource needs properties.workspace"));
    }
    Ok(state.access.decide(
        i.subject_id,
        i.action,
        workspace,
        project,
        model,
        i.max_tokens,
    ))
}

/// The common shape of a single evaluation, read straight into borrowed fields (no
/// `Value` tree). Anything else (a missing member, a wrong type) does not fit and goes the
/// general way, which names the problem.
mod fast {
    use std::borrow::Cow;

    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Request<'a> {
        #[serde(borrow)]
        pub subject: Entity<'a>,
        #[serde(borrow)]
        pub action: Action<'a>,
        #[serde(borrow)]
        pub resource: Entity<'a>,
        #[serde(default)]
        pub context: Option<Context>,
    }

    #[derive(Deserialize)]
    pub struct Entity<'a> {
        #[serde(rename = "type", borrow)]
        pub kind: Cow<'a, str>,
        #[serde(default, borrow)]
        pub id: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub properties: Option<Properties<'a>>,
    }

    #[derive(Deserialize)]
    pub struct Properties<'a> {
        #[serde(default, borrow)]
        pub workspace: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub project: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    pub struct Action<'a> {
        #[serde(borrow)]
        pub name: Cow<'a, str>,
    }

    #[derive(Deserialize)]
    pub struct Context {
        #[serde(default)]
        pub max_tokens: Option<u64>,
    }
}

/// A decision as AuthZEN returns it: `decision`, and `context` with what was granted or
/// why not.
#[derive(serde::Serialize)]
struct DecisionOut<'a> {
    decision: bool,
    context: DecisionContext<'a>,
}

#[derive(serde::Serialize)]
struct DecisionContext<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rpm: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason_admin: Option<ReasonAdmin<'a>>,
}

#[derive(serde::Serialize)]
struct ReasonAdmin<'a> {
    en: &'a str,
}

fn decision_out(d: &Decision) -> DecisionOut<'_> {
    DecisionOut {
        decision: d.allowed,
        context: DecisionContext {
            role: d.role.as_deref(),
            max_tokens: d.max_tokens,
            rpm: d.rpm,
            reason: d.reason.as_deref(),
            reason_admin: d.reason.as_deref().map(|en| ReasonAdmin { en }),
        },
    }
}

fn decision_json(d: &Decision) -> Value {
    serde_json::to_value(decision_out(d)).unwrap_or(Value::Null)
}

/// Is this `Content-Type` exactly `application/json` (in any case)? What most clients send,
/// told without parsing it into a `Mime` (~0.07 µs per evaluation); anything else (parameters
/// included) is parsed as before.
fn plain_json(content_type: Option<&header::HeaderValue>) -> bool {
    content_type.is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"application/json"))
}

/// The body of a JSON request, read as `web::Json` with [`problem_json_config`] reads it (the
/// same checks, in the same order, with the same errors): a JSON content type (`application/json`
/// or any `…/json` or `…+json`), at most `limit` bytes (by `Content-Length` first). A body that
/// comes in one chunk, as a small one does, is not copied.
///
/// [`problem_json_config`]: super::error::problem_json_config
async fn json_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, JsonPayloadError> {
    let is_json = plain_json(req.headers().get(header::CONTENT_TYPE))
        || match req.mime_type() {
            Ok(Some(mime)) => mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON),
            _ => false,
        };
    if !is_json {
        return Err(JsonPayloadError::ContentType);
    }
    if let Ok(header::ContentLength(length)) = header::ContentLength::parse(req) {
        if length > limit {
            return Err(JsonPayloadError::OverflowKnownLength { length, limit });
        }
    }
    let mut body = web::Bytes::new();
    let mut more: Option<web::BytesMut> = None;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk?;
        let so_far = more.as_ref().map_or(body.len(), |b| b.len());
        if so_far + chunk.len() > limit {
            return Err(JsonPayloadError::Overflow { limit });
        }
        match &mut more {
            Some(buf) => buf.extend_from_slice(&chunk),
            None if body.is_empty() => body = chunk,
            None => {
                let mut buf = web::BytesMut::with_capacity(so_far + chunk.len());
                buf.extend_from_slice(&body);
                buf.extend_from_slice(&chunk);
                more = Some(buf);
            }
        }
    }
    Ok(more.map_or(body, web::BytesMut::freeze))
}

/// `POST /access/v1/evaluation`. The body is read once, straight into the common request shape
/// ([`fast::Request`]); anything else goes the way `web::Json<Box<RawValue>>` took it before
/// (a body that is not JSON is refused with serde's reason), then the general way.
async fn evaluation(
    state: State,
    req: HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<HttpResponse, ApiError> {
    let body = json_body(&req, payload, limit)
        .await
        .map_err(|e| json_problem(&e))?;
    // only a body that is UTF-8 as a whole is read the short way: serde_json skips unknown
    // members without checking their UTF-8, which `RawValue` checked
    let fast = std::str::from_utf8(&body)
        .ok()
        .and_then(|text| serde_json::from_str::<fast::Request<'_>>(text).ok());
    let d = match fast {
        Some(r) => {
            let props = r.resource.properties.as_ref();
            decide_input(
                &state,
                &EvalInput {
                    subject_type: &r.subject.kind,
                    subject_id: r
                        .subject
                        .id
                        .as_deref()
                        .ok_or_else(|| bad("\"subject.id\" is required"))?,
                    action: &r.action.name,
                    resource_type: &r.resource.kind,
                    resource_id: r.resource.id.as_deref(),
                    workspace: props.and_then(|p| p.workspace.as_deref()),
                    project: props.and_then(|p| p.project.as_deref()),
                    max_tokens: r.context.as_ref().and_then(|c| c.max_tokens),
                },
            )?
        }
        None => {
            let raw = serde_json::from_slice::<Box<RawValue>>(&body)
                .map_err(|e| json_problem(&JsonPayloadError::Deserialize(e)))?;
            // RawValue does not nest; a body that is valid JSON but too deeply nested to read
            // into values fails here, and says so
            let req = match serde_json::from_str::<Value>(raw.get()) {
                Ok(Value::Object(req)) => req,
                Ok(_) => return Err(bad("the request body must be a JSON object")),
                Err(e) => return Err(json_problem(&JsonPayloadError::Deserialize(e))),
            };
            decide(&state, &req)?
        }
    };
    // an allowed decision's answer is ~80 bytes, a denial's ~200: one allocation, no regrowth
    let mut body = Vec::with_capacity(256);
    serde_json::to_writer(&mut body, &decision_out(&d))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, APPLICATION_JSON))
        .body(body))
}

/// AuthZEN batch: top-level subject/action/resource/context are defaults for each item of
/// `evaluations`; `options.evaluations_semantic` is execute_all (default), deny_on_first_deny
/// or permit_on_first_permit (evaluation stops at the first deny / permit).
/// The most evaluations one `/access/v1/evaluations` request may carry (its answer grows with
/// them; a gateway with more splits them).
pub const MAX_EVALUATIONS: usize = 1000;

async fn evaluations(state: State, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    let Value::Object(mut req) = body.into_inner() else {
        return Err(bad("the request body must be a JSON object"));
    };
    let items = match req.remove("evaluations") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(a),
        Some(_) => return Err(bad("\"evaluations\" must be an array")),
    };
    let semantic = match req.get("options") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => match o.get("evaluations_semantic") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(bad("\"options.evaluations_semantic\" must be a string")),
        },
        Some(_) => return Err(bad("\"options\" must be an object")),
    }
    .unwrap_or_else(|| "execute_all".to_string());
    if ![
        "execute_all",
        "deny_on_first_deny",
        "permit_on_first_permit",
    ]
    .contains(&semantic.as_str())
    {
        return Err(bad(format!("unknown evaluations_semantic \"{semantic}\"")));
    }
    let Some(items) = items.filter(|a| !a.is_empty()) else {
        // no evaluations array: a single evaluation
        let d = decide(&state, &req)?;
        return Ok(json_response(&decision_json(&d)));
    };
    if items.len() > MAX_EVALUATIONS {
        return Err(bad(format!(
            "at most {MAX_EVALUATIONS} evaluations per request; this one has {}",
            items.len()
        )));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        // an error in one evaluation is that evaluation's answer, a denial carrying the error
        // (AuthZEN 1.0, Access Evaluations API); the others are still evaluated
        let decided = match item {
            // an item's members replace the request's defaults (read in place, not copied)
            Value::Object(item) => {
                decide_fields(&state, |name| item.get(name).or_else(|| req.get(name)))
            }
            _ => Err(bad("an evaluation must be an object")),
        };
        let (allowed, answer) = match decided {
            Ok(d) => (d.allowed, decision_json(&d)),
            Err(e) => {
                let message = format!("evaluations[{i}]: {}", e.detail);
                let answer = json!({"decision": false, "context": {
                    "error": {"status": e.status.as_u16(), "message": message},
                    "reason": message,
                }});
                (false, answer)
            }
        };
        out.push(answer);
        let stop = (semantic == "deny_on_first_deny" && !allowed)
            || (semantic == "permit_on_first_permit" && allowed);
        if stop {
            break;
        }
    }
    Ok(json_response(&json!({ "evaluations": out })))
}

fn role_token(state: &State, req: &HttpRequest, user: &str) -> Result<HttpResponse, ApiError> {
    let (user, grants) = state.access.token_claims(user).map_err(lookup_error)?;
    if !user.active {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("user {} is deactivated", user.user_name),
        ));
    }
    let now = chrono::Utc::now().timestamp();
    let ttl = state.settings.role_token_ttl_secs as i64;
    let claims = json!({
        "iss": public_base(state, req),
        "aud": state.settings.role_token_audience,
        "sub": user.id,
        "user_name": user.user_name,
        "roles": grants.iter().map(|g| json!({"scope": g.scope, "role": g.role})).collect::<Vec<_>>(),
        "iat": now,
        "exp": now + ttl,
    });
    let token = state.access.keys().sign(&claims).map_err(|e| {
        tracing::error!(error = %e, "signing a role token failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    })?;
    Ok(json_response(
        &json!({"token": token, "token_type": "JWT", "expires_in": ttl}),
    ))
}

async fn jwks(state: State) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "max-age=60"))
        .body(state.access.keys().jwks().to_string())
}

async fn authzen_configuration(state: State, req: HttpRequest) -> HttpResponse {
    let base = public_base(&state, &req);
    json_response(&json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}/access/v1/evaluation"),
        "access_evaluations_endpoint": format!("{base}/access/v1/evaluations"),
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// The short way takes only what the `Mime` check would take too, and leaves everything
    /// else (parameters, suffixes, near misses) to it.
    #[test]
    fn plain_json_is_only_application_json() {
        let is = |v: &str| plain_json(Some(&header::HeaderValue::from_str(v).unwrap()));
        for v in ["application/json", "APPLICATION/JSON", "Application/Json"] {
            assert!(is(v), "{v}");
            let mime: mime::Mime = v.parse().unwrap();
            assert_eq!(mime.subtype(), mime::JSON, "{v}");
        }
        for v in [
            "application/json; charset=utf-8",
            "application/json;",
            "application/jsonx",
            "application/json ",
            "application/scim+json",
            "text/json",
            "",
        ] {
            assert!(!is(v), "{v}");
        }
        assert!(!plain_json(None));
    }

    #[test]
    fn weak_etags_are_sixteen_hex_digits() {
        for hash in [0, 1, 0xdead_beef, u64::MAX, 0x0123_4567_89ab_cdef] {
            assert_eq!(weak_etag(hash), format!("W/\"{hash:016x}\""));
        }
    }

    /// Replicas must agree on a body's tag: the hash is fixed by the build, not seeded per
    /// process (this value would change if it were), and it tells bodies apart.
    #[test]
    fn content_hashes_are_fixed_and_tell_bodies_apart() {
        let body = br#"{"user":{"id":"1","userName":"alice","active":true},"groups":[]}"#;
        assert_eq!(content_hash(body), 0x09fd_36a6_8367_2d3f);
        let mut seen = std::collections::HashSet::new();
        let mut other = body.to_vec();
        for i in 0..other.len() {
            other[i] ^= 1;
            assert!(seen.insert(content_hash(&other)), "byte {i}");
            other[i] ^= 1;
        }
        assert!(!seen.contains(&content_hash(body)));
        assert_ne!(content_hash(b""), content_hash(b"\0"));
        assert_ne!(content_hash(b"ab"), content_hash(b"ba"));
    }

    #[test]
    fn user_routes_are_matched_by_hand() {
        assert_eq!(
            user_route("/v1/users/alice%40example.com/roles"),
            Some(("alice%40example.com", UserAction::Roles))
        );
        assert_eq!(
            user_route("/v1/users/u-1/token"),
            Some(("u-1", UserAction::Token))
        );
        for path in [
            "/v1/users//roles",
            "/v1/users/alice",
            "/v1/users/alice/",
            "/v1/users/alice/roles/",
            "/v1/users/a/b/roles",
            "/v1/users/alice/Roles",
            "/v1/user/alice/roles",
        ] {
            assert_eq!(user_route(path), None, "{path}");
        }
        assert_eq!(
            hand_matched_route("/v1/users/bob/roles"),
            Some("/v1/users/{user}/roles")
        );
        assert_eq!(hand_matched_route("/healthz"), None);
    }

    #[test]
    fn scope_params_read_a_query_as_web_query_does() {
        for q in [
            "",
            "workspace=engineering",
            "workspace=Legal&project=contracts",
            "project=a&workspace=b&workspace=c",
            "workspace=sales+%22EU%22&x=1",
            "workspace=%E2%82%AC%ff&project",
            "&&workspace&project=",
            "work%73pace=w%2",
            "workspace==a=b",
        ] {
            let want = web::Query::<HashMap<String, String>>::from_query(q).unwrap();
            let (w, p) = scope_params(q);
            assert_eq!(
                w.as_deref(),
                want.get("workspace").map(String::as_str),
                "{q}"
            );
            assert_eq!(p.as_deref(), want.get("project").map(String::as_str), "{q}");
        }
    }
}
