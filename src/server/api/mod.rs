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
pub mod caller;
mod events;
pub mod export;
mod keys;
pub mod live;
pub mod openapi;
pub mod query;
mod stats;
mod websites;

use std::borrow::Cow;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value, json};
use warp::Filter;
use warp::reply::Response;

use super::RouteTemplate;
use crate::app::App;
use crate::auth::ratelimit::Budget;
use crate::auth::session;
use crate::error::{Error, Result};
use crate::keys::Scope;
use crate::net::PeerAddr;
use crate::stats::dimension::Report;
pub use caller::Caller;
use openapi::schema;

pub const BASE: &str = "/api/v1";

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No credential needed.
    Public,
    /// The dashboard's session only: API keys get 403 (SPEC 2.1).
    Session,
    /// The request's own dashboard session (`/auth/session`, `/auth/logout`): without one,
    /// an API key included, the answer is 401.
    OwnSession,
    /// An API key or a session.
    Account,
}

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Answer>> + Send>>;
/// A route's handler: a function of the request, or a closure over what the route is (the
/// report of a breakdown), so that a route cannot name something that does not exist.
pub type Handler = Arc<dyn Fn(Ctx) -> HandlerFuture + Send + Sync>;

/// One route of the API: how it is matched, who may call it, and what the OpenAPI document
/// says of it. The router, the 405s, the document and the docs test are all built from the
/// table of these.
pub struct Route {
    pub method: Method,
    /// Template relative to `/api/v1`, with `{name}` segments.
    pub path: Cow<'static, str>,
    pub access: Access,
    /// Query parameters the route takes; anything else is refused.
    pub query: Vec<&'static str>,
    /// The handler refuses unknown parameters itself, together with its other problems
    /// (`Ctx::query_errors`), instead of the dispatcher before it.
    pub checks_query: bool,
    /// Status of a successful answer.
    pub status: StatusCode,
    pub summary: &'static str,
    pub description: Cow<'static, str>,
    /// JSON schema of the request body, for routes that take one.
    pub body: Option<fn() -> Value>,
    /// JSON schema of `data` in a successful answer.
    pub data: fn() -> Value,
    pub handler: Handler,
}

impl Route {
    fn new(
        method: Method,
        path: impl Into<Cow<'static, str>>,
        access: Access,
        summary: &'static str,
        handler: Handler,
    ) -> Route {
        Route {
            method,
            path: path.into(),
            access,
            query: Vec::new(),
            checks_query: false,
            status: StatusCode::OK,
            summary,
            description: Cow::Borrowed(""),
            body: None,
            data: schema::object,
            handler,
        }
    }

    fn query(mut self, names: &[&'static str]) -> Route {
        self.query = names.to_vec();
        self
    }

    /// Like [`Route::query`], for a handler that reports unknown parameters itself.
    fn own_query(mut self, names: impl IntoIterator<Item = &'static str>) -> Route {
        self.query = names.into_iter().collect();
        self.checks_query = true;
        self
    }

    fn created(mut self) -> Route {
        self.status = StatusCode::CREATED;
        self
    }

    fn describe(mut self, text: impl Into<Cow<'static, str>>) -> Route {
        self.description = text.into();
        self
    }

    fn body(mut self, schema: fn() -> Value) -> Route {
        self.body = Some(schema);
        self
    }

    fn data(mut self, schema: fn() -> Value) -> Route {
        self.data = schema;
        self
    }

    /// Whether the route changes state: `read` keys may not call it, sessions need CSRF.
    pub fn changes_state(&self) -> bool {
        is_state_changing(&self.method)
    }
}

/// What every statistics answer means (docs/definitions.md), said once for the OpenAPI
/// descriptions.
const SESSION_RULES: &str = "A session is a visitor's activity (pageviews, events, heartbeats) with no gap of 30 minutes or more; only sessions with a pageview count, and a session belongs to the hour, day and range of its first pageview, whose attributes it keeps (its exit page is its last pageview). Filters select sessions: attribute filters (entryPage, exitPage, referrer, utm*, country, browser, os, device, language, screen) by the session's attribute, `path`/`hostname` sessions with a pageview of that path/hostname (and then only those pageviews count), `event` sessions with such an event (`event=(none)`: without any event); the value `(none)` selects the empty value. `from`/`to` are inclusive dates in the website's time zone (or `timezone=`), default the last 30 days; at most 3,660 days.";

/// A statistics route's own description followed by the session rules.
fn with_rules(own: &str) -> String {
    format!("{own} {SESSION_RULES}")
}

macro_rules! h {
    ($handler:path) => {
        Arc::new(|ctx| Box::pin($handler(ctx)) as HandlerFuture) as Handler
    };
}

/// The API: every route, in one table.
pub fn table() -> Vec<Route> {
    use Access::{Account, OwnSession, Public, Session};
    use Method as M;
    const PAGE: &[&str] = &["limit", "page"];
    let mut routes = vec![
        Route::new(M::GET, "/openapi.json", Public, "This OpenAPI document", h!(openapi::serve))
            .describe("The OpenAPI 3.1 description of the whole API, generated from the same table as the routes. Not wrapped in the envelope.")
            .data(schema::object),
        Route::new(M::GET, "/auth/setup", Public, "Whether the first account still has to be created", h!(auth::setup_needed))
            .data(schema::setup_needed),
        Route::new(M::POST, "/auth/setup", Public, "Create the first account", h!(auth::setup))
            .describe("Only while no account exists, with the one-time token printed by `jetrack serve`. Answers with the account and the CSRF token of the new session, whose cookie it sets.")
            .created()
            .body(schema::setup_body)
            .data(schema::session),
        Route::new(M::POST, "/auth/login", Public, "Log in to the dashboard", h!(auth::login))
            .describe("Sets the session cookie. 10 attempts per minute per client address; the same 401 for an unknown email and a wrong password.")
            .body(schema::login_body)
            .data(schema::session),
        Route::new(M::POST, "/auth/logout", OwnSession, "End the current dashboard session", h!(auth::logout))
            .data(schema::logged_out),
        Route::new(M::GET, "/auth/session", OwnSession, "The current session's account and CSRF token", h!(auth::current))
            .data(schema::session),
        Route::new(M::GET, "/account", Account, "The caller's account", h!(account::get))
            .data(schema::account),
        Route::new(M::PATCH, "/account", Account, "Change the caller's name or picture", h!(account::update))
            .body(schema::account_patch)
            .data(schema::account),
        Route::new(M::POST, "/account/password", Session, "Change the password", h!(account::change_password))
            .describe("Dashboard session only. Ends the account's other sessions.")
            .body(schema::password_body)
            .data(schema::password_changed),
        Route::new(M::GET, "/account/subscription", Account, "The account's plan and limits", h!(account::subscription))
            .describe("The period is the current calendar month in UTC; its end is exclusive. A null limit means unlimited.")
            .data(schema::subscription),
        Route::new(M::GET, "/account/usage", Account, "What the account used this month", h!(account::usage))
            .describe("`pageviews.used` counts pageviews whose own timestamp is in the current calendar month (UTC), so imported history does not use it up. `percentage` is used ÷ limit × 100 with 2 decimals, null when unlimited.")
            .data(schema::usage),
        Route::new(M::GET, "/account/api-keys", Session, "List the account's API keys", h!(keys::list))
            .describe("Dashboard session only. Never shows a secret.")
            .data(schema::key_list),
        Route::new(M::POST, "/account/api-keys", Session, "Create an API key", h!(keys::create))
            .describe("Dashboard session only. The answer is the only time the full key is shown. At most 20 keys per account (409 beyond).")
            .created()
            .body(schema::key_body)
            .data(schema::new_key),
        Route::new(M::POST, "/account/api-keys/{keyId}/regenerate", Session, "Give an API key a new secret", h!(keys::regenerate))
            .describe("Dashboard session only. Keeps the id, name, scope and expiry; the old secret stops working at once.")
            .data(schema::new_key),
        Route::new(M::DELETE, "/account/api-keys/{keyId}", Session, "Revoke an API key", h!(keys::revoke))
            .describe("Dashboard session only. Irreversible.")
            .data(schema::revoked),
        Route::new(M::GET, "/account/audit-log", Session, "Recent security activity, newest first", h!(account::audit_log))
            .describe("Dashboard session only. Addresses are cut to their network (IPv4 /24, IPv6 /48); never a secret.")
            .query(PAGE)
            .data(schema::audit_list),
        Route::new(M::GET, "/websites", Account, "List the account's websites", h!(websites::list))
            .data(schema::website_list),
        Route::new(M::POST, "/websites", Account, "Add a website", h!(websites::create))
            .describe("409 when the account already has the domain; 403 over the account's website limit.")
            .created()
            .body(schema::website_create)
            .data(schema::website),
        Route::new(M::GET, "/websites/{id}", Account, "A website", h!(websites::get))
            .data(schema::website),
        Route::new(M::PATCH, "/websites/{id}", Account, "Change a website", h!(websites::update))
            .body(schema::website_patch)
            .data(schema::website),
        Route::new(M::DELETE, "/websites/{id}", Account, "Delete a website and its data", h!(websites::delete))
            .data(schema::deleted),
        Route::new(M::POST, "/websites/{id}/events", Account, "Send server-side or historical events", h!(events::import))
            .describe("For backends that track server-side and for importing history. Needs a `full` key (or a session with CSRF). Body at most 1 MiB with 1 to 1,000 events; each is checked on its own: the valid ones are stored and every other one is listed in `dropped` with its index and the reason (a validation problem, or `bot`, `hostname`, `spam`, `quota`). The answer comes after the accepted events are committed. Each event needs `timestamp` (ISO-8601, at most 5 minutes ahead) and `visitorId` (any stable string of at most 200 characters), or else `ip` and `userAgent` (neither is stored). `hostname`, `country`, `browser`, `os`, `device` and `screen` may be set directly; otherwise they are worked out from `url`, `ip`, `userAgent` and `screenWidth`. Events may arrive in any order and in many requests: sessions follow the 30-minute rule whatever the order. A request repeated with the same `Idempotency-Key` header within 24 hours gets the first answer and stores nothing more; the same key with a different body gets 409. Unknown fields in an event are reported, not ignored; a given `hostname` must be on the website's domain.")
            .body(schema::events_body)
            .data(schema::events_answer),
        Route::new(M::GET, export::PATH, Account, "Download the stored events of a period", h!(export::download))
            .describe(export::DESCRIPTION)
            .own_query(export::QUERY.iter().copied()),
    ];
    routes.extend(stats_routes(STATS_PREFIX, Access::Account));
    routes
}

/// Where the statistics routes are mounted for accounts.
pub const STATS_PREFIX: &str = "/websites/{id}/stats";

/// The statistics routes under `prefix` (which names the website as `{id}`), for callers
/// with `access`; mounted once for accounts, and again wherever another credential reads
/// the same figures.
pub fn stats_routes(prefix: &str, access: Access) -> Vec<Route> {
    use Method as M;
    let range = ["from", "to", "timezone"];
    let filters = query::filter_params;
    let with = |before: &[&'static str], after: &[&'static str]| {
        let mut names = before.to_vec();
        names.extend(filters());
        names.extend(after);
        names
    };
    let at = |name: &str| format!("{prefix}/{name}");
    let mut routes = vec![
        Route::new(M::GET, at("main"), access, "Headline figures of a period", h!(stats::main))
            .describe(with_rules("uniqueVisitors: distinct visitors among the counted pageviews. totalPageviews: pageviews whose time is in the range and whose session is selected. totalSessions: selected sessions whose time is in the range. bounceRate: of those, the share with exactly one pageview in the whole session, in percent with 2 decimals. avgSessionDuration: their mean duration (last activity − first activity, heartbeats included) in seconds with 1 decimal. viewsPerSession: all pageviews of those sessions (also after the range) ÷ totalSessions, 2 decimals. Rates are 0 when there is no session. `compare=previous` adds `previous` with the same figures for the equally long period just before."))
            .own_query(with(&range, &["compare"]))
            .data(openapi::schema_of::<crate::stats::Main>),
        Route::new(M::GET, at("timeseries"), access, "Figures per hour, day, week or month", h!(stats::timeseries))
            .describe(with_rules("`interval` is hour, day, week or month (default hour for at most 2 days, else day; hour for at most 31 days). Every bucket is present, zero-filled. Per bucket: totalPageviews, the counted pageviews whose time is in it; uniqueVisitors, the distinct visitors among them; totalSessions, the selected sessions whose first pageview is in it; bounceRate, the share of those with exactly one pageview in percent (2 decimals); avgSessionDuration, their mean duration (last activity − first activity) in seconds (1 decimal). `date` is YYYY-MM-DD (week: its Monday, month: the 1st) or, for hours, the local time with its offset; a daylight-saving day has 23 or 25 hours. With interval=day, uniqueVisitors is the DAU."))
            .own_query(with(&range, &["interval"]))
            .data(openapi::schema_of::<Vec<crate::stats::Bucket>>),
    ];
    for report in Report::ALL {
        let (summary, shape) = report.describe();
        let extra: &[&'static str] = if report == Report::EventProps {
            &["prop", "limit", "page"]
        } else {
            &["limit", "page"]
        };
        let handler: Handler = Arc::new(move |ctx| Box::pin(stats::breakdown(ctx, report)));
        routes.push(
            Route::new(M::GET, at(report.path()), access, summary, handler)
                .describe(format!("{shape} Rows sort by uniqueVisitors descending, then value ascending (null first), and are paginated. percentage = the row's uniqueVisitors ÷ main's uniqueVisitors with the same filters × 100, 2 decimals. {SESSION_RULES}"))
                .own_query(with(&range, extra))
                .data(openapi::rows_schema(report.counts())),
        );
    }
    routes.push(
        Route::new(M::GET, at("realtime"), access, "Visitors active right now", h!(stats::realtime))
            .describe("activeVisitors: distinct visitors with any activity (pageview, event, heartbeat) in the last 30 seconds (an activity exactly 30 s old counts). pages: the top 10 paths by active visitors, each visitor under the path of their session's latest pageview. Ignores `from` and `to`; takes no filters.")
            .own_query(range)
            .data(openapi::schema_of::<crate::stats::realtime::Realtime>),
    );
    routes.push(
        Route::new(
            M::GET,
            at("realtime/stream"),
            Access::Session,
            "The realtime figures, pushed as they change",
            h!(live::stream),
        )
        .describe(live::DESCRIPTION)
        .data(openapi::schema_of::<crate::stats::realtime::Realtime>),
    );
    routes.push(
        Route::new(M::GET, at("active-users"), access, "Daily, weekly and monthly active visitors", h!(stats::active_users))
            .describe(with_rules("dau, wau, mau: distinct visitors with a counted pageview on `date` (default today), in the 7 and in the 30 days ending on it. In cookieless mode a visitor's id changes at local midnight, so wau and mau count a person once per day they came; cookie mode gives true figures."))
            .own_query(with(&["date", "timezone"], &[]))
            .data(openapi::schema_of::<crate::stats::ActiveUsers>),
    );
    routes
}

/// What a successful answer sends.
pub enum Body {
    /// `data` of the envelope.
    Data(Value),
    /// A JSON document sent as it is, without the envelope (the OpenAPI document).
    Bare(Value),
    /// A response streamed as it is (the live stream, the export).
    Stream(Response),
}

/// A handler's successful answer; the dispatcher wraps `Data` in the envelope.
pub struct Answer {
    pub status: StatusCode,
    pub body: Body,
    /// Extra `meta` members, such as `pagination`.
    pub meta: Map<String, Value>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Answer {
    pub fn ok(data: impl Serialize) -> Result<Answer> {
        Self::with_status(StatusCode::OK, data)
    }

    pub fn with_status(status: StatusCode, data: impl Serialize) -> Result<Answer> {
        let data = serde_json::to_value(data)
            .map_err(|e| Error::Internal(format!("serialising an answer: {e}")))?;
        Ok(Self::of(status, Body::Data(data)))
    }

    fn of(status: StatusCode, body: Body) -> Answer {
        Answer {
            status,
            body,
            meta: Map::new(),
            headers: Vec::new(),
        }
    }

    pub fn bare(document: Value) -> Answer {
        Self::of(StatusCode::OK, Body::Bare(document))
    }

    pub fn stream(response: Response) -> Answer {
        Self::of(StatusCode::OK, Body::Stream(response))
    }

    pub fn header(mut self, name: HeaderName, value: &str) -> Answer {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    pub fn meta(mut self, key: &str, value: Value) -> Answer {
        self.meta.insert(key.to_string(), value);
        self
    }
}

pub type BodyStream = Pin<Box<dyn Stream<Item = std::result::Result<Bytes, warp::Error>> + Send>>;

/// Everything a handler gets.
pub struct Ctx {
    pub app: App,
    pub headers: HeaderMap,
    /// The path's `{name}` segments, percent-decoded.
    pub params: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    /// Unknown query parameters, for a route that lists them with its own problems.
    pub query_errors: Vec<String>,
    pub client_ip: IpAddr,
    pub caller: Option<Caller>,
    body: Option<BodyStream>,
}

impl Ctx {
    /// The authenticated caller; routes that are not public always have one.
    pub fn caller(&self) -> Result<&Caller> {
        self.caller.as_ref().ok_or(Error::Unauthorized)
    }

    /// The dashboard session of a session-only route, with its token.
    pub fn session(&self) -> Result<(&str, &crate::auth::session::LiveSession)> {
        match self.caller()? {
            Caller::Session { token, session } => Ok((token.as_str(), session)),
            Caller::Key { .. } => Err(Error::Forbidden("A dashboard session is required".into())),
        }
    }

    pub fn account_id(&self) -> Result<String> {
        Ok(self.caller()?.account().id.clone())
    }

    /// `limit` (default 10, 1–1000) and `page` (1-based) of a paginated list (docs/api.md,
    /// "Common rules").
    pub fn pagination(&self) -> Result<(i64, i64)> {
        let mut errors = Vec::new();
        let page = query::page(&self.query, &mut errors);
        if errors.is_empty() {
            Ok((i64::from(page.limit), i64::from(page.number)))
        } else {
            Err(Error::invalid_all(errors))
        }
    }

    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The request body as a JSON object, at most `body::JSON_LIMIT` bytes.
    pub async fn json_object(&mut self) -> Result<body::Fields> {
        let bytes = self.bytes(body::JSON_LIMIT).await?;
        body::Fields::parse(&bytes)
    }

    /// The raw request body, at most `limit` bytes.
    pub async fn bytes(&mut self, limit: usize) -> Result<Bytes> {
        let stream = self
            .body
            .take()
            .ok_or_else(|| Error::Internal("body read twice".into()))?;
        body::read_limited(&self.headers, stream, limit).await
    }
}

/// A path's `{name}` segments, decoded.
pub type Params = Vec<(String, String)>;

/// The API's routes and the router built from them.
pub struct Api {
    routes: Vec<Route>,
    /// Each path template to the indices of its routes (one per method).
    router: matchit::Router<Vec<usize>>,
}

impl Api {
    pub fn new(routes: Vec<Route>) -> Api {
        let mut by_path: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            match by_path.iter_mut().find(|(p, _)| p.as_str() == route.path) {
                Some((_, indices)) => indices.push(i),
                None => by_path.push((route.path.to_string(), vec![i])),
            }
        }
        let mut router = matchit::Router::new();
        for (path, indices) in by_path {
            if let Err(e) = router.insert(path.clone(), indices) {
                panic!("the route table has a conflicting path {path}: {e}");
            }
        }
        Api { routes, router }
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The routes of `path` (relative to `/api/v1`) and its decoded `{name}` segments; the
    /// path comes first, so an unknown path is never a 405.
    fn find(&self, path: &str) -> Option<(Vec<&Route>, Params)> {
        let found = self.router.at(path).ok()?;
        let params: Option<Vec<(String, String)>> = found
            .params
            .iter()
            .map(|(name, raw)| {
                let value = percent_encoding::percent_decode_str(raw)
                    .decode_utf8_lossy()
                    .into_owned();
                (!value.is_empty()).then(|| (name.to_string(), value))
            })
            .collect();
        let routes = found.value.iter().map(|&i| &self.routes[i]).collect();
        Some((routes, params?))
    }
}

pub fn filter(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let api = Arc::new(Api::new(table()));
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::path("api")
        .and(warp::path("v1"))
        .and(warp::path::full())
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(raw_query)
        .and(warp::ext::optional::<PeerAddr>())
        .and(warp::body::stream().map(boxed_body))
        .then(
            move |full: warp::path::FullPath,
                  method: Method,
                  headers: HeaderMap,
                  query: String,
                  peer: Option<PeerAddr>,
                  body: BodyStream| {
                let app = app.clone();
                let api = Arc::clone(&api);
                let peer = peer.map_or(SocketAddr::from(([127, 0, 0, 1], 0)), |p| p.0);
                let path = full.as_str().strip_prefix(BASE).unwrap_or("").to_string();
                async move { dispatch(&api, app, &path, method, headers, query, peer, body).await }
            },
        )
}

pub(crate) fn boxed_body<S, B>(stream: S) -> BodyStream
where
    S: Stream<Item = std::result::Result<B, warp::Error>> + Send + 'static,
    B: bytes::Buf,
{
    Box::pin(stream.map_ok(|mut buf| buf.copy_to_bytes(buf.remaining())))
}

fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    api: &Api,
    app: App,
    path: &str,
    method: Method,
    headers: HeaderMap,
    raw_query: String,
    peer: SocketAddr,
    body: BodyStream,
) -> Response {
    let (candidates, params) = api.find(path).unwrap_or_default();
    let Some(route) = candidates
        .iter()
        .copied()
        .find(|r| r.method == method || (method == Method::HEAD && r.method == Method::GET))
    else {
        let (template, err) = match candidates.first() {
            None => (
                Cow::Borrowed("(unmatched)"),
                Error::NotFound("No such API route".into()),
            ),
            Some(r) => (r.path.clone(), Error::MethodNotAllowed),
        };
        let mut resp = error_response(&err);
        if !candidates.is_empty() {
            let allow: Vec<&str> = candidates.iter().map(|r| r.method.as_str()).collect();
            if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
        }
        rate_headers(&mut resp, app.key_throttle.full());
        resp.extensions_mut().insert(RouteTemplate(template));
        return resp;
    };
    let client_ip = app.config.trusted_proxies.client_ip(peer.ip(), &headers);
    let mut budget = app.key_throttle.full();
    let outcome = handle(
        route,
        params,
        &app,
        method,
        headers,
        raw_query,
        client_ip,
        body,
        &mut budget,
    )
    .await;
    let mut resp = match outcome {
        Ok(answer) => match answer.body {
            Body::Stream(resp) => resp,
            Body::Bare(document) => json_response(answer.status, &document),
            Body::Data(data) => {
                let mut meta = answer.meta;
                meta.insert("status".into(), json!(answer.status.as_u16()));
                let body = json!({"success": true, "data": data, "meta": meta});
                let mut resp = json_response(answer.status, &body);
                for (name, value) in answer.headers {
                    resp.headers_mut().append(name, value);
                }
                resp
            }
        },
        Err(err) => {
            // A refusal (503) is expected and logged where it arises, once per interval.
            if err.status() == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::error!(route = %route.path, error = %err, "request failed");
            }
            error_response(&err)
        }
    };
    rate_headers(&mut resp, budget);
    resp.extensions_mut()
        .insert(RouteTemplate(route.path.clone()));
    resp
}

/// The order matters: credentials before anything that would tell an anonymous caller more
/// (so every protected route answers 401 without a key), the budget before any work.
#[allow(clippy::too_many_arguments)]
async fn handle(
    route: &Route,
    params: Vec<(String, String)>,
    app: &App,
    method: Method,
    headers: HeaderMap,
    raw_query: String,
    client_ip: IpAddr,
    body: BodyStream,
    budget: &mut Budget,
) -> Result<Answer> {
    let caller = match route.access {
        Access::Public => None,
        Access::OwnSession => match caller::authenticate(app, &headers, client_ip).await? {
            caller @ Caller::Session { .. } => Some(caller),
            Caller::Key { .. } => return Err(Error::Unauthorized),
        },
        Access::Session | Access::Account => {
            Some(caller::authenticate(app, &headers, client_ip).await?)
        }
    };
    if let Some(caller) = &caller {
        match caller::spend(app, caller) {
            Ok(b) => *budget = b,
            Err((b, retry_after)) => {
                *budget = b;
                return Err(Error::TooManyRequests {
                    message: "Rate limit exceeded; retry after the time in Retry-After".into(),
                    retry_after,
                });
            }
        }
        if route.access == Access::Session && !caller.is_session() {
            return Err(Error::Forbidden(
                "API keys cannot manage API keys, the password or the audit log; use the dashboard"
                    .into(),
            ));
        }
        if route.changes_state() && caller.scope() == Scope::Read {
            return Err(Error::Forbidden("This API key is read-only".into()));
        }
    }
    if is_state_changing(&method) && caller.as_ref().is_none_or(Caller::is_session) {
        check_origin(app, &headers)?;
    }
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
    // A route that checks its own parameters reports unknown ones with its other problems.
    let (query, query_errors) = if route.checks_query {
        read_query(&raw_query, &route.query)
    } else {
        (parse_query(&raw_query, &route.query)?, Vec::new())
    };
    let ctx = Ctx {
        app: app.clone(),
        headers,
        params,
        query,
        query_errors,
        client_ip,
        caller,
        body: Some(body),
    };
    (route.handler)(ctx).await
}

/// The rate-limit headers of SPEC 2.2, on every answer.
fn rate_headers(resp: &mut Response, b: Budget) {
    let h = resp.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    set("x-ratelimit-limit", b.limit.to_string());
    set("x-ratelimit-remaining", b.remaining.to_string());
    set("x-ratelimit-reset", b.reset_secs.to_string());
    set(
        "ratelimit-policy",
        format!("\"default\";q={};w=60", b.limit),
    );
    set(
        "ratelimit",
        format!("\"default\";r={};t={}", b.remaining, b.reset_secs),
    );
}

/// Unknown parameters are refused, each named (SPEC 2.3).
fn parse_query(raw: &str, allowed: &[&str]) -> Result<Vec<(String, String)>> {
    let (pairs, errors) = read_query(raw, allowed);
    if errors.is_empty() {
        Ok(pairs)
    } else {
        Err(Error::invalid_all(errors))
    }
}

/// The query's pairs, and a problem for each parameter `allowed` does not name.
pub fn read_query(raw: &str, allowed: &[&str]) -> (Vec<(String, String)>, Vec<String>) {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut errors: Vec<String> = Vec::new();
    for (i, (k, _)) in pairs.iter().enumerate() {
        let e = if !allowed.contains(&k.as_str()) {
            format!("{k}: unknown query parameter")
        } else if pairs[..i].iter().any(|(seen, _)| seen == k) {
            // Which of two values counts must never depend on their order.
            format!("{k}: given more than once")
        } else {
            continue;
        };
        if !errors.contains(&e) {
            errors.push(e);
        }
    }
    (pairs, errors)
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
    let origin = origin.to_ascii_lowercase();
    // With --public-url, that is the one origin of the dashboard, whatever Host a request
    // names; without it, the request's own origin, so localhost and 127.0.0.1 both work.
    let own_host = (!app.config.public_url_given)
        .then(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))
        .flatten()
        .map(|host| format!("http://{}", host.to_ascii_lowercase()));
    if origin == public || own_host.as_deref() == Some(origin.as_str()) {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "Cross-origin requests are not allowed".into(),
        ))
    }
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
        let api = Api::new(table());
        assert!(api.find("/nope").is_none());
        let (found, _) = api.find("/auth/login").unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].method, Method::POST);
        let (found, params) = api.find("/websites/a%20b%2Bc/stats/pages").unwrap();
        assert_eq!(found[0].path, "/websites/{id}/stats/pages");
        assert_eq!(params, [("id".to_string(), "a b+c".to_string())]);
        assert!(api.find("/websites/x/stats/no-such-report").is_none());
    }

    #[test]
    fn the_statistics_mount_again_under_another_prefix() {
        let api = Api::new(stats_routes("/elsewhere/{id}/figures", Access::Session));
        for report in Report::ALL {
            let (found, params) = api
                .find(&format!("/elsewhere/abc/figures/{}", report.path()))
                .expect("routed");
            assert_eq!(found[0].access, Access::Session);
            assert_eq!(params, [("id".to_string(), "abc".to_string())]);
        }
        assert!(api.find("/websites/abc/stats/pages").is_none());
    }

    #[test]
    fn unknown_query_parameters_are_each_named() {
        let err = parse_query("a=1&b=2&a=3&from=x", &["from"]).unwrap_err();
        assert_eq!(
            err.field_errors(),
            ["a: unknown query parameter", "b: unknown query parameter"]
        );
        let err = parse_query("from=1&to=2&from=3&from=4", &["from", "to"]).unwrap_err();
        assert_eq!(err.field_errors(), ["from: given more than once"]);
    }

    #[test]
    fn the_api_reference_lists_every_route() {
        let doc = include_str!("../../../docs/api.md");
        for r in table() {
            let row = format!("| {} | `/api/v1{}` |", r.method, r.path);
            assert!(doc.contains(&row), "docs/api.md lacks {row}");
        }
        let rows = doc.lines().filter(|l| l.contains("| `/api/v1/")).count();
        assert_eq!(
            rows,
            table().len(),
            "docs/api.md lists a route the table does not have"
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
