//! The HTTP server: one accept loop, one service wrapper that adds the peer address, the
//! security headers and the access log, and the warp routes behind it.

pub mod api;
pub mod collect;
pub mod pages;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tower_service::Service;
use warp::Filter;

use crate::app::App;
use crate::metrics::{Gauges, Metrics};
use crate::net::PeerAddr;

/// Slow clients get this long to send their request headers, and an idle keep-alive
/// connection is closed after it too.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections at most; further clients wait in the listen backlog.
const MAX_CONNECTIONS: usize = 10_000;
/// In-flight requests get this long to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The route template a response came from, for the access log.
#[derive(Clone, Debug)]
pub struct RouteTemplate(pub std::borrow::Cow<'static, str>);

impl RouteTemplate {
    pub const fn fixed(template: &'static str) -> RouteTemplate {
        RouteTemplate(std::borrow::Cow::Borrowed(template))
    }
}

pub const CSP: &str =
    "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

pub fn routes(
    app: App,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone {
    collect::filter(app.clone())
        .or(api::filter(app.clone()))
        .unify()
        .or(pages::filter(app))
        .unify()
        .recover(pages::not_found)
        .unify()
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(app: App, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let metrics = Arc::clone(&app.ingest.metrics);
    let extra = Extra {
        metrics: Some(metrics),
        hsts: app
            .config
            .hsts()
            .and_then(|v| HeaderValue::from_str(&v).ok()),
    };
    serve_filter(routes(app), extra, listener, shutdown).await;
}

/// `GET /metrics` (SPEC 7.3), for the separate `--metrics-listen` address only.
pub fn metrics_routes(
    app: App,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone {
    warp::path("metrics")
        .and(warp::path::end())
        .and(warp::get().or(warp::head()).unify())
        .map(move || {
            let (queue_depth, queue_capacity) = app.db.queue();
            let (db_bytes, wal_bytes) = app.db.file_sizes();
            let text = app.ingest.metrics.render(&Gauges {
                queue_depth: queue_depth as u64,
                queue_capacity: queue_capacity as u64,
                db_bytes,
                wal_bytes,
            });
            let mut resp = warp::reply::Response::new(text.into());
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            resp.extensions_mut()
                .insert(RouteTemplate::fixed("/metrics"));
            resp
        })
        .recover(|_| async {
            let mut resp = warp::reply::Response::new("Not found\n".into());
            *resp.status_mut() = http::StatusCode::NOT_FOUND;
            Ok::<_, Infallible>(resp)
        })
        .unify()
}

/// What the accept loop adds to every request and response besides the routes.
#[derive(Clone, Default)]
pub struct Extra {
    /// Hears of every request.
    pub metrics: Option<Arc<Metrics>>,
    /// `Strict-Transport-Security` for every response (an https public URL).
    pub hsts: Option<HeaderValue>,
}

/// The accept loop around any set of routes.
pub async fn serve_filter<F>(
    filter: F,
    extra: Extra,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) where
    F: Filter<Extract = (warp::reply::Response,), Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers are small and go out at once: without this, Nagle's algorithm and the
        // client's delayed ACK can hold a response back for tens of milliseconds.
        let _ = stream.set_nodelay(true);
        let svc = warp::service(filter.clone());
        let extra = extra.clone();
        let conn_service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            let started = Instant::now();
            let method = req.method().clone();
            req.extensions_mut().insert(PeerAddr(peer));
            let mut svc = svc.clone();
            let extra = extra.clone();
            async move {
                let mut resp = match host_problem(&req) {
                    Some(problem) => bad_request(problem),
                    None => {
                        let Ok(resp) = svc.call(req).await;
                        resp
                    }
                };
                finish(&mut resp, &method, started, &extra);
                Ok::<_, Infallible>(resp)
            }
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .keep_alive(true);
        let builder = builder.http1_only();
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), conn_service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some requests did not finish in time at shutdown");
    }
}

/// HTTP/1.1 requires exactly one `Host` header (RFC 9112, 3.2); HTTP/1.0 may leave it out.
fn host_problem(req: &http::Request<Incoming>) -> Option<&'static str> {
    let hosts = req.headers().get_all(header::HOST).iter().count();
    match hosts {
        0 if req.version() >= http::Version::HTTP_11 => {
            Some("a request must name its host in one Host header")
        }
        0 | 1 => None,
        _ => Some("a request must have one Host header, not several"),
    }
}

/// A request refused before any route sees it.
fn bad_request(problem: &str) -> warp::reply::Response {
    let mut resp = pages::plain(
        http::StatusCode::BAD_REQUEST,
        format!("Bad request: {problem}\n"),
    );
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp.extensions_mut()
        .insert(RouteTemplate::fixed("(bad request)"));
    resp
}

/// Security headers on every response, and the access line. The line holds the method, the
/// route template, the status and the duration: never a client address, header or query.
fn finish(
    resp: &mut warp::reply::Response,
    method: &http::Method,
    started: Instant,
    extra: &Extra,
) {
    let is_html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let headers = resp.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(hsts) = &extra.hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    if is_html {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers
            .entry(header::REFERRER_POLICY)
            .or_insert(HeaderValue::from_static("strict-origin-when-cross-origin"));
    }
    let route = resp
        .extensions()
        .get::<RouteTemplate>()
        .map_or(std::borrow::Cow::Borrowed("(unmatched)"), |t| t.0.clone());
    let elapsed = started.elapsed();
    if let Some(metrics) = &extra.metrics {
        metrics.observe_request(route.clone(), resp.status().as_u16(), elapsed);
    }
    tracing::info!(
        target: "jetrack::access",
        method = %method,
        route = %route,
        status = resp.status().as_u16(),
        ms = format_args!("{:.1}", elapsed.as_secs_f64() * 1000.0),
        "request"
    );
}

/// Binds the listen address, reporting a clear error instead of panicking.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}
