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
mod stats;
mod websites;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

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
pub type Handler = fn(Ctx) -> HandlerFuture;

/// One route of the API: how it is matched, who may call it, and what the OpenAPI document
/// says of it. The router and the document are both built from this table.
pub struct Route {
    pub method: Method,
    /// Template relative to `/api/v1`, with `{name}` segments.
    pub path: &'static str,
    pub access: Access,
    /// Query parameters the route takes; anything else is refused.
    pub query: &'static [&'static str],
    /// The handler refuses unknown parameters itself, together with its other problems
    /// (`Ctx::query_errors`), instead of the dispatcher before it.
    pub checks_query: bool,
    /// Status of a successful answer.
    pub status: StatusCode,
    pub summary: &'static str,
    pub description: &'static str,
    /// JSON schema of the request body, for routes that take one.
    pub body: Option<fn() -> Value>,
    /// JSON schema of `data` in a successful answer.
    pub data: fn() -> Value,
    pub handler: Handler,
}

impl Route {
    fn new(
        method: Method,
        path: &'static str,
        access: Access,
        summary: &'static str,
        handler: Handler,
    ) -> Route {
        Route {
            method,
            path,
            access,
            query: &[],
            checks_query: false,
            status: StatusCode::OK,
            summary,
            description: "",
            body: None,
            data: schema::object,
            handler,
        }
    }

    fn query(mut self, names: &'static [&'static str]) -> Route {
        self.query = names;
        self
    }

    /// Like [`Route::query`], for a handler that reports unknown parameters itself.
    fn own_query(mut self, names: &'static [&'static str]) -> Route {
        self.query = names;
        self.checks_query = true;
        self
    }

    fn created(mut self) -> Route {
        self.status = StatusCode::CREATED;
        self
    }

    fn describe(mut self, text: &'static str) -> Route {
        self.description = text;
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

/// What every statistics answer means (SPEC 4), said once for the OpenAPI descriptions.
macro_rules! session_rules {
    () => {
        "A session is a visitor's activity (pageviews, events, heartbeats) with no gap of 30 minutes or more; only sessions with a pageview count, and a session belongs to the hour, day and range of its first pageview, whose attributes it keeps (its exit page is its last pageview). Filters select sessions: attribute filters (entryPage, exitPage, referrer, utm*, country, browser, os, device, language, screen) by the session's attribute, `path`/`hostname` sessions with a pageview of that path/hostname (and then only those pageviews count), `event` sessions with such an event (`event=(none)`: without any event); the value `(none)` selects the empty value. `from`/`to` are inclusive dates in the website's time zone (or `timezone=`), default the last 30 days; at most 3,660 days."
    };
}

/// A statistics route's own description followed by the session rules.
macro_rules! concat_rules {
    ($own:literal) => {
        concat!($own, " ", session_rules!())
    };
}

macro_rules! h {
    ($handler:path) => {
        |ctx| Box::pin($handler(ctx)) as HandlerFuture
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
            .own_query(export::QUERY),
    ];
    routes.extend(stats_routes());
    routes
}

/// The statistics routes (SPEC 2.6).
fn stats_routes() -> Vec<Route> {
    use Access::Account;
    use Method as M;
    const MAIN: &[&str] = &crate::stats_params!("from", "to", "timezone"; "compare");
    const SERIES: &[&str] = &crate::stats_params!("from", "to", "timezone"; "interval");
    const BREAKDOWN: &[&str] = &crate::stats_params!("from", "to", "timezone"; "limit", "page");
    const EVENT_PROPS: &[&str] =
        &crate::stats_params!("from", "to", "timezone"; "prop", "limit", "page");
    const REALTIME: &[&str] = &["from", "to", "timezone"];
    const ACTIVE: &[&str] = &crate::stats_params!("date", "timezone";);
    let mut routes = vec![
        Route::new(M::GET, "/websites/{id}/stats/main", Account, "Headline figures of a period", h!(stats::main))
            .describe(concat_rules!("uniqueVisitors: distinct visitors among the counted pageviews. totalPageviews: pageviews whose time is in the range and whose session is selected. totalSessions: selected sessions whose time is in the range. bounceRate: of those, the share with exactly one pageview in the whole session, in percent with 2 decimals. avgSessionDuration: their mean duration (last activity − first activity, heartbeats included) in seconds with 1 decimal. viewsPerSession: all pageviews of those sessions (also after the range) ÷ totalSessions, 2 decimals. Rates are 0 when there is no session. `compare=previous` adds `previous` with the same figures for the equally long period just before."))
            .own_query(MAIN)
            .data(schema::stats_main),
        Route::new(M::GET, "/websites/{id}/stats/timeseries", Account, "Figures per hour, day, week or month", h!(stats::timeseries))
            .describe(concat_rules!("`interval` is hour, day, week or month (default hour for at most 2 days, else day; hour for at most 31 days). Every bucket is present, zero-filled. Per bucket: totalPageviews, the counted pageviews whose time is in it; uniqueVisitors, the distinct visitors among them; totalSessions, the selected sessions whose first pageview is in it; bounceRate, the share of those with exactly one pageview in percent (2 decimals); avgSessionDuration, their mean duration (last activity − first activity) in seconds (1 decimal). `date` is YYYY-MM-DD (week: its Monday, month: the 1st) or, for hours, the local time with its offset; a daylight-saving day has 23 or 25 hours. With interval=day, uniqueVisitors is the DAU."))
            .own_query(SERIES)
            .data(schema::stats_series),
    ];
    /// A breakdown's route: its path, summary, what it groups, parameters and row schema.
    macro_rules! breakdown {
        ($name:literal, $summary:literal, $shape:literal, $query:expr, $data:ident) => {
            Route::new(M::GET, concat!("/websites/{id}/stats/", $name), Account, $summary, h!(stats::breakdown))
                .describe(concat!($shape, " Rows sort by uniqueVisitors descending, then value ascending (null first), and are paginated. percentage = the row's uniqueVisitors ÷ main's uniqueVisitors with the same filters × 100, 2 decimals. ", session_rules!()))
                .own_query($query)
                .data(schema::$data)
        };
    }
    routes.extend([
        breakdown!("pages", "Pages by unique visitors", "Groups the counted pageviews by path: uniqueVisitors and totalPageviews per path.", BREAKDOWN, stats_pages),
        breakdown!("hostnames", "Hostnames by unique visitors", "Groups the counted pageviews by hostname.", BREAKDOWN, stats_pages),
        breakdown!("entry-pages", "Entry pages", "Groups the counted sessions by their first pageview's path: uniqueVisitors (distinct visitors of the group's sessions), totalSessions and bounceRate per value.", BREAKDOWN, stats_sessions),
        breakdown!("exit-pages", "Exit pages", "Groups the counted sessions by their last pageview's path.", BREAKDOWN, stats_sessions),
        breakdown!("referrers", "Referrers", "Groups the counted sessions by referrer host; null is direct traffic.", BREAKDOWN, stats_sessions),
        breakdown!("utm-sources", "UTM sources", "Groups the counted sessions by utm_source; null is not set.", BREAKDOWN, stats_sessions),
        breakdown!("utm-mediums", "UTM mediums", "Groups the counted sessions by utm_medium; null is not set.", BREAKDOWN, stats_sessions),
        breakdown!("utm-campaigns", "UTM campaigns", "Groups the counted sessions by utm_campaign; null is not set.", BREAKDOWN, stats_sessions),
        breakdown!("utm-terms", "UTM terms", "Groups the counted sessions by utm_term; null is not set.", BREAKDOWN, stats_sessions),
        breakdown!("utm-contents", "UTM contents", "Groups the counted sessions by utm_content; null is not set.", BREAKDOWN, stats_sessions),
        breakdown!("countries", "Countries", "Groups the counted sessions by country (ISO 3166-1 alpha-2); null is unknown.", BREAKDOWN, stats_sessions),
        breakdown!("browsers", "Browsers", "Groups the counted sessions by browser.", BREAKDOWN, stats_sessions),
        breakdown!("os", "Operating systems", "Groups the counted sessions by operating system.", BREAKDOWN, stats_sessions),
        breakdown!("devices", "Devices", "Groups the counted sessions by device: desktop, mobile, tablet.", BREAKDOWN, stats_sessions),
        breakdown!("languages", "Languages", "Groups the counted sessions by browser language.", BREAKDOWN, stats_sessions),
        breakdown!("screens", "Screen sizes", "Groups the counted sessions by screen class: xs (< 576 px), sm (576–767), md (768–991), lg (992–1439), xl (≥ 1440).", BREAKDOWN, stats_sessions),
        breakdown!("events", "Custom events", "Groups the events whose time is in the range by name: totalEvents and uniqueVisitors (distinct visitors who sent them). Without filters every event counts (also of visitors without a pageview, such as server-side events); with filters only those of selected sessions.", BREAKDOWN, stats_events),
        breakdown!("event-props", "Values of one property of one event", "`event` (the event's name) and `prop` (a property key) are required; groups that event's events (counted as for `events`) by the property's value, null for events without it. Here `event` selects no sessions.", EVENT_PROPS, stats_events),
    ]);
    routes.push(
        Route::new(M::GET, "/websites/{id}/stats/realtime", Account, "Visitors active right now", h!(stats::realtime))
            .describe("activeVisitors: distinct visitors with any activity (pageview, event, heartbeat) in the last 30 seconds (an activity exactly 30 s old counts). pages: the top 10 paths by active visitors, each visitor under the path of their session's latest pageview. Ignores `from` and `to`; takes no filters.")
            .own_query(REALTIME)
            .data(schema::stats_realtime),
    );
    routes.push(
        Route::new(
            M::GET,
            live::PATH,
            Access::Session,
            "The realtime figures, pushed as they change",
            h!(live::stream),
        )
        .describe(live::DESCRIPTION)
        .data(schema::stats_realtime),
    );
    routes.push(
        Route::new(M::GET, "/websites/{id}/stats/active-users", Account, "Daily, weekly and monthly active visitors", h!(stats::active_users))
            .describe(concat_rules!("dau, wau, mau: distinct visitors with a counted pageview on `date` (default today), in the 7 and in the 30 days ending on it. In cookieless mode a visitor's id changes at local midnight, so wau and mau count a person once per day they came; cookie mode gives true figures."))
            .own_query(ACTIVE)
            .data(schema::stats_active),
    );
    routes
}

/// A handler's successful answer; the dispatcher wraps `data` in the envelope.
pub struct Answer {
    pub status: StatusCode,
    pub data: Value,
    /// Extra `meta` members, such as `pagination`.
    pub meta: Map<String, Value>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Sent as it is, without the envelope (the OpenAPI document).
    pub bare: bool,
    /// A response streamed as it is (the live stream); `data` is then unused.
    pub stream: Option<Response>,
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
            meta: Map::new(),
            headers: Vec::new(),
            bare: false,
            stream: None,
        })
    }

    pub fn bare(document: Value) -> Answer {
        Answer {
            status: StatusCode::OK,
            data: document,
            meta: Map::new(),
            headers: Vec::new(),
            bare: true,
            stream: None,
        }
    }

    pub fn stream(response: Response) -> Answer {
        Answer {
            stream: Some(response),
            ..Answer::bare(Value::Null)
        }
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
    /// The route's path template, such as `/websites/{id}/stats/pages`.
    pub route: &'static str,
    pub params: Vec<(&'static str, String)>,
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

    /// `limit` (default 10, 1–1000) and `page` (1-based) of a paginated list (SPEC 2.3).
    pub fn pagination(&self) -> Result<(i64, i64)> {
        let mut errors = Vec::new();
        let limit = match self.query_value("limit") {
            None => 10,
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => {
                    errors.push("limit: must be an integer between 1 and 1000".to_string());
                    10
                }
            },
        };
        let page = match self.query_value("page") {
            None => 1,
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (1..=1_000_000).contains(&n) => n,
                _ => {
                    errors.push("page: must be an integer between 1 and 1000000".to_string());
                    1
                }
            },
        };
        if errors.is_empty() {
            Ok((limit, page))
        } else {
            Err(Error::invalid_all(errors))
        }
    }

    /// A query parameter's value (the last one wins).
    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
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

pub(crate) fn boxed_body<S, B>(stream: S) -> BodyStream
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
        Ok(Answer {
            stream: Some(resp), ..
        }) => resp,
        Ok(answer) if answer.bare => json_response(answer.status, &answer.data),
        Ok(answer) => {
            let mut meta = answer.meta;
            meta.insert("status".into(), json!(answer.status.as_u16()));
            let body = json!({"success": true, "data": answer.data, "meta": meta});
            let mut resp = json_response(answer.status, &body);
            for (name, value) in answer.headers {
                resp.headers_mut().append(name, value);
            }
            resp
        }
        Err(err) => {
            // A refusal (503) is expected and logged where it arises, once per interval.
            if err.status() == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::error!(route = route.path, error = %err, "request failed");
            }
            error_response(&err)
        }
    };
    rate_headers(&mut resp, budget);
    resp.extensions_mut().insert(RouteTemplate(route.path));
    resp
}

/// The order matters: credentials before anything that would tell an anonymous caller more
/// (so every protected route answers 401 without a key), the budget before any work.
#[allow(clippy::too_many_arguments)]
async fn handle(
    route: &'static Route,
    params: Vec<(&'static str, String)>,
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
        read_query(&raw_query, route.query)
    } else {
        (parse_query(&raw_query, route.query)?, Vec::new())
    };
    let ctx = Ctx {
        app: app.clone(),
        headers,
        route: route.path,
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
