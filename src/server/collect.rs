//! The public tracking endpoints: the script at `/js/jetrack.js` (SPEC 3.1) and
//! `POST /api/collect` (SPEC 3.2), both callable from any origin.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::LazyLock;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use warp::Filter;
use warp::reply::Response;

use super::RouteTemplate;
use super::api::{BodyStream, body, error_response};
use super::pages::Assets;
use crate::app::App;
use crate::error::Error;
use crate::ingest::pipeline::{COLLECT_LIMIT, Outcome};
use crate::net::PeerAddr;

pub fn filter(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let script = warp::path!("js" / "jetrack.js")
        .and(warp::get().or(warp::head()).unify())
        .and(warp::header::headers_cloned())
        .map(|headers: HeaderMap| tracker(&headers));
    let collect = warp::path!("api" / "collect")
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<PeerAddr>())
        .and(warp::body::stream().map(super::api::boxed_body))
        .then(
            move |method: Method, headers: HeaderMap, peer: Option<PeerAddr>, body: BodyStream| {
                let app = app.clone();
                let peer = peer.map_or(SocketAddr::from(([127, 0, 0, 1], 0)), |p| p.0);
                async move { collect(app, method, headers, peer, body).await }
            },
        );
    script.or(collect).unify()
}

async fn collect(
    app: App,
    method: Method,
    headers: HeaderMap,
    peer: SocketAddr,
    stream: BodyStream,
) -> Response {
    let mut resp = match method {
        Method::OPTIONS => preflight(),
        Method::POST => {
            let ip = app.config.trusted_proxies.client_ip(peer.ip(), &headers);
            let user_agent = headers
                .get(header::USER_AGENT)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            let outcome = async {
                let bytes = body::read_limited(&headers, stream, COLLECT_LIMIT).await?;
                app.ingest.check_rate(ip, &user_agent)?;
                app.ingest.collect(&app.db, ip, &user_agent, &bytes).await
            }
            .await;
            match outcome {
                Ok(outcome) => accepted(outcome),
                Err(e) => error_response(&e),
            }
        }
        _ => {
            let mut resp = error_response(&Error::MethodNotAllowed);
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
            resp
        }
    };
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("X-Jetrack-Dropped, Retry-After"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.extensions_mut()
        .insert(RouteTemplate::fixed("/api/collect"));
    resp
}

/// 202 with an empty body; a deliberate drop says why.
fn accepted(outcome: Outcome) -> Response {
    let mut resp = Response::new(Vec::<u8>::new().into());
    *resp.status_mut() = StatusCode::ACCEPTED;
    if let Outcome::Dropped(reason) = outcome {
        resp.headers_mut().insert(
            "x-jetrack-dropped",
            HeaderValue::from_static(reason.as_str()),
        );
    }
    resp
}

fn preflight() -> Response {
    let mut resp = Response::new(Vec::<u8>::new().into());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    resp
}

/// The tracker as embedded, its gzip form, and their ETag, made once.
struct Script {
    plain: Vec<u8>,
    gzip: Vec<u8>,
    etag: String,
}

static SCRIPT: LazyLock<Option<Script>> = LazyLock::new(|| {
    let file = Assets::get("tracker/jetrack.js")?;
    let plain = file.data.into_owned();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&plain).ok()?;
    let gzip = gz.finish().ok()?;
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    Some(Script { plain, gzip, etag })
});

/// `GET /js/jetrack.js`: gzip when the client takes it, an ETag, cached for a day.
fn tracker(headers: &HeaderMap) -> Response {
    let Some(script) = SCRIPT.as_ref() else {
        let mut resp = Response::new("script missing from this build".into());
        *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        return resp;
    };
    let gzip = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| p.replace(' ', "") == "q=0");
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        });
    let etag = if gzip {
        format!("{}-gz\"", script.etag.trim_end_matches('"'))
    } else {
        script.etag.clone()
    };
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if unchanged {
        let mut r = Response::new(Vec::<u8>::new().into());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let body = if gzip { &script.gzip } else { &script.plain };
        let mut r = Response::new(body.clone().into());
        if gzip {
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        );
        r
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp.extensions_mut()
        .insert(RouteTemplate::fixed("/js/jetrack.js"));
    resp
}
