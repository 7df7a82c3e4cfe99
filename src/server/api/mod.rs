//! API v1: one route table, one dispatcher, one envelope (SPEC 2).
//!
//! Every request under `/api/v1` comes here. The path is matched before the method, so an
//! unknown path is a 404 and a known path with another method a 405. Then the query is checked
//! against the route's parameters, the caller authenticated, CSRF checked for a session that
//! changes state, and the handler called. Its answer, or its error, becomes the envelope here
//! and nowhere else.

mod account;
mod auth;
pub mod body;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};
use warp::Filter;
use warp::reply::Response;

use super::RouteTemplate;
use crate::app::App;
use crate::auth::session::{self, LiveSession};
use crate::error::{Error, Result};
use crate::net::PeerAddr;
use crate::time::now_ms;

pub const BASE: &str = "/api/v1";

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No credential needed.
    Public,
    /// The dashboard's session only.
    Session,
    /// Any authenticated caller.
    Account,
}

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Answer>> + Send>>;
pub type Handler = fn(Ctx) -> HandlerFuture;

pub struct Route {
    pub method: Method,
    /// Template relative to `/api/v1`, with `{name}` segments.
    pub path: &'static str,
    pub access: Access,
    /// Query parameters the route takes; anything else is refused.
    pub query: &'static [&'static str],
    pub summary: &'static str,
    pub handler: Handler,
}

macro_rules! route {
    ($method:ident $path:literal, $access:ident, $query:expr, $summary:literal, $handler:path) => {
        Route {
            method: Method::$method,
            path: $path,
            access: Access::$access,
            query: $query,
            summary: $summary,
            handler: |ctx| Box::pin($handler(ctx)),
        }
    };
}

/// The API: every route, in one table.
pub fn table() -> Vec<Route> {
    vec![
        route!(GET "/auth/setup", Public, &[], "Whether the first account still has to be created", auth::setup_needed),
        route!(POST "/auth/setup", Public, &[], "Create the first account with the token printed by `jetrack serve`", auth::setup),
        route!(POST "/auth/login", Public, &[], "Log in to the dashboard; sets the session cookie", auth::login),
        route!(POST "/auth/logout", Session, &[], "End the current dashboard session", auth::logout),
        route!(GET "/auth/session", Session, &[], "The current session's account and CSRF token", auth::current),
        route!(GET "/account", Account, &[], "The caller's account", account::get),
        route!(PATCH "/account", Account, &[], "Change the caller's name or picture", account::update),
        route!(POST "/account/password", Session, &[], "Change the password; ends the account's other sessions", account::change_password),
    ]
}

/// A handler's successful answer; the dispatcher wraps `data` in the envelope.
pub struct Answer {
    pub status: StatusCode,
    pub data: Value,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Answer {
    pub fn ok(data: impl Serialize) -> Result<Answer> {
        Self::with_status(StatusCode::OK, data)
    }

    pub fn with_status(status: StatusCode, data: impl Serialize) -> Result<Answer> {
        let data = serde_json::to_value(data)
            .map_err(|e| Error::Internal(format!("serialising an answer: {e}")))?;
        Ok(Answer {
            status,
            data,
            headers: Vec::new(),
        })
    }

    pub fn header(mut self, name: HeaderName, value: &str) -> Answer {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }
}

/// The authenticated caller of a request.
pub enum Caller {
    Session { token: String, session: LiveSession },
}

impl Caller {
    pub fn account(&self) -> &crate::accounts::Account {
        match self {
            Caller::Session { session, .. } => &session.account,
        }
    }
}

pub type BodyStream = Pin<Box<dyn Stream<Item = std::result::Result<Bytes, warp::Error>> + Send>>;

/// Everything a handler gets.
pub struct Ctx {
    pub app: App,
    pub headers: HeaderMap,
    pub params: Vec<(&'static str, String)>,
    pub query: Vec<(String, String)>,
    pub client_ip: IpAddr,
    pub caller: Option<Caller>,
    body: Option<BodyStream>,
}

impl Ctx {
    /// The authenticated caller; routes that are not public always have one.
    pub fn caller(&self) -> Result<&Caller> {
        self.caller.as_ref().ok_or(Error::Unauthorized)
    }

    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The request body as a JSON object, at most `body::JSON_LIMIT` bytes.
    pub async fn json_object(&mut self) -> Result<body::Fields> {
        let stream = self
            .body
            .take()
            .ok_or_else(|| Error::Internal("body read twice".into()))?;
        let bytes = body::read_limited(&self.headers, stream, body::JSON_LIMIT).await?;
        body::Fields::parse(&bytes)
    }
}

pub fn filter(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let table: &'static [Route] = Box::leak(table().into_boxed_slice());
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::path("api")
        .and(warp::path("v1"))
        .and(warp::path::tail())
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(raw_query)
        .and(warp::ext::optional::<PeerAddr>())
        .and(warp::body::stream().map(boxed_body))
        .then(
            move |tail: warp::path::Tail,
                  method: Method,
                  headers: HeaderMap,
                  query: String,
                  peer: Option<PeerAddr>,
                  body: BodyStream| {
                let app = app.clone();
                let peer = peer.map_or(SocketAddr::from(([127, 0, 0, 1], 0)), |p| p.0);
                async move {
                    dispatch(
                        table,
                        app,
                        tail.as_str().to_string(),
                        method,
                        headers,
                        query,
                        peer,
                        body,
                    )
                    .await
                }
            },
        )
}

fn boxed_body<S, B>(stream: S) -> BodyStream
where
    S: Stream<Item = std::result::Result<B, warp::Error>> + Send + 'static,
    B: bytes::Buf,
{
    Box::pin(stream.map_ok(|mut buf| buf.copy_to_bytes(buf.remaining())))
}

/// Finds the route for a path, matching `{name}` segments; the path comes first.
fn match_path<'t>(table: &'t [Route], path: &str) -> Vec<(&'t Route, Vec<(&'static str, String)>)> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    table
        .iter()
        .filter_map(|route| {
            let template: Vec<&'static str> =
                route.path.trim_start_matches('/').split('/').collect();
            if template.len() != segments.len() {
                return None;
            }
            let mut params = Vec::new();
            for (t, s) in template.iter().zip(&segments) {
                if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                    if s.is_empty() {
                        return None;
                    }
                    let value = percent_decode(s)?;
                    params.push((name, value));
                } else if t != s {
                    return None;
                }
            }
            Some((route, params))
        })
        .collect()
}

fn percent_decode(s: &str) -> Option<String> {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
}

fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    table: &'static [Route],
    app: App,
    path: String,
    method: Method,
    headers: HeaderMap,
    raw_query: String,
    peer: SocketAddr,
    body: BodyStream,
) -> Response {
    let candidates = match_path(table, &path);
    let Some((route, params)) = candidates
        .iter()
        .find(|(r, _)| r.method == method || (method == Method::HEAD && r.method == Method::GET))
        .map(|(r, p)| (*r, p.clone()))
    else {
        let (template, err) = if candidates.is_empty() {
            ("(unmatched)", Error::NotFound("No such API route".into()))
        } else {
            (candidates[0].0.path, Error::MethodNotAllowed)
        };
        let mut resp = error_response(&err);
        if !candidates.is_empty() {
            let allow: Vec<&str> = candidates.iter().map(|(r, _)| r.method.as_str()).collect();
            if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
        }
        resp.extensions_mut().insert(RouteTemplate(template));
        return resp;
    };
    let client_ip = app.config.trusted_proxies.client_ip(peer.ip(), &headers);
    let mut resp = match handle(
        route, params, app, method, headers, raw_query, client_ip, body,
    )
    .await
    {
        Ok(answer) => {
            let mut resp = envelope(answer.status, answer.data);
            for (name, value) in answer.headers {
                resp.headers_mut().append(name, value);
            }
            resp
        }
        Err(err) => {
            if err.status().is_server_error() {
                tracing::error!(route = route.path, error = %err, "request failed");
            }
            error_response(&err)
        }
    };
    resp.extensions_mut().insert(RouteTemplate(route.path));
    resp
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    route: &'static Route,
    params: Vec<(&'static str, String)>,
    app: App,
    method: Method,
    headers: HeaderMap,
    raw_query: String,
    client_ip: IpAddr,
    body: BodyStream,
) -> Result<Answer> {
    let query = parse_query(&raw_query, route.query)?;
    if is_state_changing(&method) {
        check_origin(&app, &headers)?;
    }
    let caller = match route.access {
        Access::Public => None,
        Access::Session | Access::Account => Some(authenticate(&app, &headers).await?),
    };
    if let Some(Caller::Session { token, .. }) = &caller
        && is_state_changing(&method)
    {
        let presented = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !session::csrf_matches(token, presented) {
            return Err(Error::Forbidden(
                "Missing or invalid CSRF token (send the X-CSRF-Token header)".into(),
            ));
        }
    }
    let ctx = Ctx {
        app,
        headers,
        params,
        query,
        client_ip,
        caller,
        body: Some(body),
    };
    (route.handler)(ctx).await
}

/// Unknown parameters are refused, each named (SPEC 2.3).
fn parse_query(raw: &str, allowed: &[&str]) -> Result<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut errors: Vec<String> = Vec::new();
    for (k, _) in &pairs {
        if !allowed.contains(&k.as_str()) {
            let e = format!("{k}: unknown query parameter");
            if !errors.contains(&e) {
                errors.push(e);
            }
        }
    }
    if errors.is_empty() {
        Ok(pairs)
    } else {
        Err(Error::invalid_all(errors))
    }
}

/// Refuses a state-changing request made by another site (SPEC 8.3).
fn check_origin(app: &App, headers: &HeaderMap) -> Result<()> {
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"));
    if cross_site {
        return Err(Error::Forbidden(
            "Cross-site requests are not allowed".into(),
        ));
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let public = app.config.public_url.as_str();
    let scheme = if app.config.is_https() {
        "https"
    } else {
        "http"
    };
    let own_host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(|host| format!("{scheme}://{}", host.to_ascii_lowercase()));
    let origin = origin.to_ascii_lowercase();
    if origin == public || own_host.as_deref() == Some(origin.as_str()) {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "Cross-origin requests are not allowed".into(),
        ))
    }
}

async fn authenticate(app: &App, headers: &HeaderMap) -> Result<Caller> {
    let Some(token) = app.cookie().read(headers) else {
        return Err(Error::Unauthorized);
    };
    let now = now_ms();
    let lookup_token = token.clone();
    let found = app
        .db
        .read(move |c| session::lookup(c, &lookup_token, now))
        .await?;
    let Some(live) = found else {
        return Err(Error::Unauthorized);
    };
    if now - live.last_seen_at >= session::TOUCH_EVERY_MS {
        let hash = live.hash;
        app.db
            .write_detached(move |c| session::touch(c, &hash, now));
    }
    Ok(Caller::Session {
        token,
        session: live,
    })
}

fn envelope(status: StatusCode, data: Value) -> Response {
    let body = json!({
        "success": true,
        "data": data,
        "meta": {"status": status.as_u16()},
    });
    json_response(status, &body)
}

/// The error envelope: status, one sentence, and every problem found.
pub fn error_response(err: &Error) -> Response {
    let status = err.status();
    let body = json!({
        "success": false,
        "data": null,
        "meta": {
            "status": status.as_u16(),
            "message": err.public_message(),
            "errors": err.field_errors(),
        },
    });
    let mut resp = json_response(status, &body);
    let headers = resp.headers_mut();
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"jetrack\""),
        );
    }
    if let Some(secs) = err.retry_after() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    resp
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = Response::new(body.to_string().into());
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_before_methods() {
        let table = table();
        assert!(match_path(&table, "/nope").is_empty());
        let found = match_path(&table, "/auth/login");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0.method, Method::POST);
    }

    #[test]
    fn unknown_query_parameters_are_each_named() {
        let err = parse_query("a=1&b=2&a=3&from=x", &["from"]).unwrap_err();
        assert_eq!(
            err.field_errors(),
            ["a: unknown query parameter", "b: unknown query parameter"]
        );
    }

    #[test]
    fn every_route_is_unique() {
        let table = table();
        for (i, a) in table.iter().enumerate() {
            for b in &table[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {}",
                    a.method,
                    a.path
                );
            }
        }
    }
}
