//! `GET /websites/{id}/export` (SPEC 2.5): the stored events of a period as a download,
//! streamed: pieces are read on the reader pool and sent as the client takes them, so the
//! body is never held whole.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use warp::Reply;

use super::{Answer, Ctx};
use crate::db::Db;
use crate::error::Result;
use crate::export::{Export, Target, file_name};
use crate::time::now_ms;
use crate::websites;

pub const PATH: &str = "/websites/{id}/export";
pub const QUERY: &[&str] = &["from", "to", "timezone", "format"];
pub const DESCRIPTION: &str = "The website's stored pageviews and custom events whose time is in the period, in time order, as a download (`Content-Disposition: attachment`), streamed, not wrapped in the envelope. `format=ndjson` (default): one JSON object per line, each an event of `POST /websites/{id}/events` (`type`, `timestamp`, `visitorId`, `url` with the path and the session's UTM tags, `hostname`, `referrer`, `country`, `browser`, `os`, `device`, `language`, `screen`, `name`, `props`), so that importing the lines into another website gives the same figures; a session whose last activity (a heartbeat) came after its last pageview or event gets a `heartbeat` line at that time. `format=csv`: a header row and the columns timestamp, type, visitorId, sessionId, hostname, path, referrer (host), utmSource, utmMedium, utmCampaign, utmTerm, utmContent, country, browser, os, device, language, screen, name, props (JSON). Each line carries its session's attributes (those of its first pageview). Never an IP address or a User-Agent. `from`/`to` are inclusive dates in the website's time zone (or `timezone=`), default the last 30 days; at most 3,660 days.";
/// What the success answer holds, for the OpenAPI document.
pub const MEDIA: [(&str, &str); 2] = [
    (
        "application/x-ndjson",
        "One JSON object per line: an event of POST /websites/{id}/events",
    ),
    (
        "text/csv",
        "A header row, then one row per pageview, event or closing heartbeat",
    ),
];

/// Pieces read ahead of the client.
const AHEAD: usize = 4;

pub async fn download(ctx: Ctx) -> Result<Answer> {
    let account_id = ctx.account_id()?;
    let id = ctx.param("id").to_string();
    let target = ctx
        .app
        .db
        .read(move |c| Target::of(c, &websites::owned(c, &account_id, &id)?))
        .await?;
    let (period, format) = target.request(&ctx.query, ctx.query_errors.clone(), now_ms())?;
    let name = file_name(
        &target.domain,
        &period.from.to_string(),
        &period.to.to_string(),
        format,
    );
    let export = Export::new(&target, &period, format);
    let db = ctx.app.db.clone();
    // The first piece before the answer: a failure here is still an error envelope.
    let (export, first) = next_piece(&db, export).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(AHEAD);
    tokio::spawn(async move {
        let mut export = export;
        let mut piece = first;
        while let Some(bytes) = piece.take() {
            if tx.send(Ok(Bytes::from(bytes))).await.is_err() {
                return; // The client went away.
            }
            match next_piece(&db, export).await {
                Ok((e, next)) => {
                    export = e;
                    piece = next;
                }
                Err(e) => {
                    tracing::error!(error = %e, "an export failed midway");
                    // An error ends the body early, so the client sees a broken download.
                    let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
                    return;
                }
            }
        }
    });
    let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut resp = warp::reply::stream(body).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(Answer::stream(resp))
}

/// The next piece of `export`, read on the reader pool.
async fn next_piece(db: &Db, mut export: Export) -> Result<(Export, Option<Vec<u8>>)> {
    db.read(move |c| {
        let piece = export.next_chunk(c)?;
        Ok((export, piece))
    })
    .await
}
