//! The dashboard's pages and static assets, embedded in the executable (read from the source
//! tree in debug builds), and the health check.

use std::convert::Infallible;

use http::StatusCode;
use http::header::{self, HeaderValue};
use rust_embed::RustEmbed;
use warp::Filter;
use warp::reply::Response;

use super::RouteTemplate;
use crate::app::App;

#[derive(RustEmbed)]
#[folder = "assets/"]
pub struct Assets;

pub fn filter(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let get = warp::get().or(warp::head()).unify();
    let healthz = warp::path("healthz")
        .and(warp::path::end())
        .and(get)
        .and(with_app(app))
        .then(healthz);
    let assets = warp::path("assets")
        .and(warp::path::tail())
        .and(get)
        .and(warp::header::optional::<String>("if-none-match"))
        .map(|tail: warp::path::Tail, etag: Option<String>| asset(tail.as_str(), etag));
    let setup = page("setup", "dashboard/setup.html", "/setup");
    let login = page("login", "dashboard/login.html", "/login");
    let home = warp::path::end()
        .and(get)
        .map(|| html_page("dashboard/app.html", "/"));
    let settings = page("settings", "dashboard/app.html", "/settings");
    // The dashboard's own router draws /websites and /websites/<id>[/…].
    let websites = warp::path("websites")
        .and(warp::path::tail())
        .and(get)
        .map(|_: warp::path::Tail| html_page("dashboard/app.html", "/websites/{…}"));
    healthz
        .or(assets)
        .unify()
        .or(setup)
        .unify()
        .or(login)
        .unify()
        .or(home)
        .unify()
        .or(settings)
        .unify()
        .or(websites)
        .unify()
}

fn with_app(app: App) -> impl Filter<Extract = (App,), Error = Infallible> + Clone {
    warp::any().map(move || app.clone())
}

fn page(
    segment: &'static str,
    file: &'static str,
    template: &'static str,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path(segment)
        .and(warp::path::end())
        .and(warp::get().or(warp::head()).unify())
        .map(move || html_page(file, template))
}

fn html_page(file: &str, template: &'static str) -> Response {
    let Some(content) = Assets::get(file) else {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "page missing from this build",
        );
    };
    let mut resp = Response::new(content.data.into_owned().into());
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if template == "/setup" {
        // The setup link carries a one-time token: never leak it in a Referer.
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    resp.extensions_mut().insert(RouteTemplate::fixed(template));
    resp
}

fn asset(path: &str, if_none_match: Option<String>) -> Response {
    let Some(content) = Assets::get(path) else {
        let mut resp = plain(StatusCode::NOT_FOUND, "Not found");
        resp.extensions_mut()
            .insert(RouteTemplate::fixed("/assets/{path}"));
        return resp;
    };
    let etag = format!("\"{}\"", hex::encode(&content.metadata.sha256_hash()[..16]));
    let mut resp = if if_none_match.as_deref() == Some(etag.as_str()) {
        let mut r = Response::new(Vec::<u8>::new().into());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(content.data.into_owned().into());
        let mime = mime_guess::from_path(path).first_or_octet_stream();
        let mime = match mime.essence_str() {
            "text/javascript" | "application/javascript" => {
                "text/javascript; charset=utf-8".to_string()
            }
            m if m.starts_with("text/") => format!("{m}; charset=utf-8"),
            m => m.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&mime) {
            r.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        r
    };
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp.extensions_mut()
        .insert(RouteTemplate::fixed("/assets/{path}"));
    resp
}

/// `GET /healthz`: 200 while the database answers and the latest write of the last minute
/// (if any) was committed; else 503 with the reason (docs/operations.md, "Health").
async fn healthz(app: App) -> Response {
    let read = app
        .db
        .read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
        .await;
    let problem = match read {
        Err(_) => Some("the database does not answer".to_string()),
        Ok(_) => app.db.write_health().err(),
    };
    let (status, body) = match problem {
        None => (StatusCode::OK, serde_json::json!({"status": "ok"})),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "unavailable", "reason": reason}),
        ),
    };
    let mut resp = Response::new(body.to_string().into());
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.extensions_mut()
        .insert(RouteTemplate::fixed("/healthz"));
    resp
}

/// A plain-text answer.
pub fn plain(status: StatusCode, text: impl Into<String>) -> Response {
    let mut resp = Response::new(text.into().into());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Whatever no route took: a small HTML page (API paths never get here; see `api`).
pub async fn not_found(_: warp::Rejection) -> Result<Response, Infallible> {
    let body = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found · Jetrack</title>\
        <link rel=\"stylesheet\" href=\"/assets/dashboard/css/app.css\"></head>\
        <body><main class=\"page-narrow\"><h1>Page not found</h1><p><a href=\"/\">Back to Jetrack</a></p></main></body></html>";
    let mut resp = Response::new(body.into());
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Ok(resp)
}
