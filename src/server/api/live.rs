//! `GET /websites/{id}/stats/realtime/stream`: the `realtime` figures pushed to the dashboard as
//! Server-Sent Events (SPEC 2.7).
//!
//! One task per open stream looks at the website's active visitors twice a second. The set is
//! in memory (`stats::realtime::Recent`), so an unchanged second costs no query; when it changed
//! (an activity arrived, or one left the 30-second window) the figures are computed as the
//! `realtime` route computes them and sent if they differ from the last ones. A comment keeps
//! quiet connections open through proxies. The stream ends when the client goes away, when
//! its session or its access to the website ends, when the same session opens more than
//! [`STREAMS_PER_SESSION`] (the oldest ends), and when the server shuts down.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use tokio::sync::{mpsc, oneshot};
use warp::Reply;
use warp::sse::Event;

use super::{Answer, Ctx};
use crate::app::App;
use crate::auth::session;
use crate::error::{Error, Result};
use crate::stats::realtime;
use crate::time::now_ms;
use crate::websites::{self, SiteNum};

/// The route, relative to `/api/v1`.
pub const PATH: &str = "/websites/{id}/stats/realtime/stream";
/// The route's description in the OpenAPI document.
pub const DESCRIPTION: &str = "Server-Sent Events for the dashboard: with `Accept: text/event-stream` (what EventSource sends) the answer is a stream whose events each carry the `realtime` object (activeVisitors and the top pages, as `GET /stats/realtime` answers), one at once and another whenever the figures change, at most two a second; a comment every 15 s without a change keeps the connection open. The server closes the stream when it shuts down, when the session ends and when the website is deleted; browsers reconnect by themselves after 3 s. Any other Accept gets the current figures once, in the usual envelope.";
/// What the events of the stream hold, for the OpenAPI document.
pub const EVENTS: &str = "text/event-stream: each event's `data` is a JSON realtime object {activeVisitors, pages: [{value, activeVisitors}]}";

/// How often a stream looks for a change: at most two events a second.
const PERIOD: Duration = Duration::from_millis(500);
/// A comment after this long without an event, so that proxies keep the connection.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often the session and the access to the website are checked again.
const RECHECK: Duration = Duration::from_secs(10);
/// How long a browser waits before it reconnects (sent in the first event).
const RETRY: Duration = Duration::from_secs(3);

/// Streams one dashboard session may hold open at once (one per tab, typically); a new one
/// beyond that closes the session's oldest, so a person with many tabs keeps working while
/// nobody can hold hundreds.
pub const STREAMS_PER_SESSION: usize = 10;

/// A holder's open streams, oldest first: each one's number and what tells it to close.
type Held = VecDeque<(u64, oneshot::Sender<()>)>;

/// The open streams per holder (a session's token hash).
#[derive(Default)]
pub struct OpenStreams {
    open: Mutex<HashMap<[u8; 32], Held>>,
    next: AtomicU64,
}

/// One open stream's place; its `closed` resolves when a newer stream took the place, and
/// dropping it frees the place.
pub struct Slot {
    streams: Arc<OpenStreams>,
    holder: [u8; 32],
    id: u64,
    closed: oneshot::Receiver<()>,
}

impl OpenStreams {
    /// A place for a new stream of `holder`, closing its oldest beyond `cap`.
    pub fn open(self: &Arc<Self>, holder: [u8; 32], cap: usize) -> Slot {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, closed) = oneshot::channel();
        let mut open = self.open.lock().expect("not poisoned");
        let held = open.entry(holder).or_default();
        while held.len() >= cap.max(1) {
            // Dropping the sender resolves the oldest stream's `closed`.
            held.pop_front();
        }
        held.push_back((id, tx));
        Slot {
            streams: Arc::clone(self),
            holder,
            id,
            closed,
        }
    }

    /// Streams `holder` has open.
    pub fn count(&self, holder: &[u8; 32]) -> usize {
        let open = self.open.lock().expect("not poisoned");
        open.get(holder).map_or(0, VecDeque::len)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock().expect("not poisoned");
        if let Some(held) = open.get_mut(&self.holder) {
            held.retain(|(id, _)| *id != self.id);
            if held.is_empty() {
                open.remove(&self.holder);
            }
        }
    }
}

/// Waits for `signal`, then ends every live stream of `app`'s server, so that a graceful
/// shutdown does not wait for connections that never finish by themselves.
pub async fn close_streams_after(app: App, signal: impl Future<Output = ()>) {
    signal.await;
    app.closing.send_replace(true);
}

/// The website's number, after checking that `account_id` may see it.
async fn site_of(app: &App, account_id: String, id: String) -> Result<SiteNum> {
    app.db
        .read(move |c| {
            let site = websites::owned(c, &account_id, &id)?;
            websites::site_number(c, site.id)?
                .ok_or_else(|| Error::NotFound("Website not found".into()))
        })
        .await
}

pub async fn stream(ctx: Ctx) -> Result<Answer> {
    let (token, live) = ctx.session()?;
    let holder = live.hash;
    let token = token.to_string();
    let account_id = ctx.account_id()?;
    let website_id = ctx.param("id").to_string();
    let site = site_of(&ctx.app, account_id.clone(), website_id.clone()).await?;
    if !wants_events(&ctx.headers) {
        let recent = ctx.app.recent.clone();
        let figures = ctx
            .app
            .db
            .read(move |c| realtime::realtime(c, &recent, site, now_ms()))
            .await?;
        return Answer::ok(figures);
    }

    let slot = ctx.app.live_streams.open(holder, STREAMS_PER_SESSION);
    let (tx, mut rx) = mpsc::channel::<Event>(4);
    tokio::spawn(push(
        ctx.app.clone(),
        Watched {
            site,
            account_id,
            website_id,
            token,
        },
        slot,
        tx,
    ));
    let events = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|event| event.map(Ok::<_, Infallible>))
    });
    let mut resp = warp::sse::reply(events).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // nginx would otherwise hold the events back in its buffer.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(Answer::stream(resp))
}

/// Whether the client asked for the stream (EventSource sends `Accept: text/event-stream`).
fn wants_events(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

/// What one stream shows, and to whom.
struct Watched {
    site: SiteNum,
    account_id: String,
    website_id: String,
    token: String,
}

impl Watched {
    /// Whether the session is still alive and its account still owns the website.
    async fn still_allowed(&self, app: &App) -> bool {
        let token = self.token.clone();
        let session = app
            .db
            .read(move |c| session::lookup(c, &token, now_ms()))
            .await;
        let Ok(Some(session)) = session else {
            return false;
        };
        session.account.id == self.account_id
            && site_of(app, self.account_id.clone(), self.website_id.clone())
                .await
                .is_ok_and(|site| site == self.site)
    }
}

/// Sends the figures whenever they change until the client leaves, the session or access
/// ends, or the server shuts down; dropping `tx` then ends the response.
async fn push(app: App, watched: Watched, mut slot: Slot, tx: mpsc::Sender<Event>) {
    let mut closing = app.closing.subscribe();
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut active_before: Option<Vec<(i64, i64)>> = None;
    let mut sent_before: Option<String> = None;
    let mut last_sent = Instant::now();
    let mut last_check = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = closing.wait_for(|closing| *closing) => return,
            () = tx.closed() => return,
            _ = &mut slot.closed => return,
        }
        if last_check.elapsed() >= RECHECK {
            if !watched.still_allowed(&app).await {
                return;
            }
            last_check = Instant::now();
        }
        let now = now_ms();
        let recent = app.recent.clone();
        let mut active = recent.active(watched.site, now);
        active.sort_unstable();
        let event = if active_before.as_ref() != Some(&active) {
            active_before = Some(active);
            let site = watched.site;
            let figures = app
                .db
                .read(move |c| realtime::realtime(c, &recent, site, now))
                .await
                .and_then(|r| {
                    serde_json::to_string(&r).map_err(|e| Error::Internal(e.to_string()))
                });
            match figures {
                Ok(json) if sent_before.as_deref() != Some(json.as_str()) => {
                    let mut event = Event::default().data(json.clone());
                    if sent_before.is_none() {
                        event = event.retry(RETRY);
                    }
                    sent_before = Some(json);
                    Some(event)
                }
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "live stream: could not read the figures");
                    return;
                }
            }
        } else {
            None
        };
        let event = event
            .or_else(|| (last_sent.elapsed() >= KEEP_ALIVE).then(|| Event::default().comment("")));
        if let Some(event) = event {
            if tx.send(event).await.is_err() {
                return;
            }
            last_sent = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[tokio::test]
    async fn a_stream_beyond_the_cap_closes_the_holders_oldest() {
        let streams = Arc::new(OpenStreams::default());
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let mut first = streams.open(a, 2);
        let second = streams.open(a, 2);
        let other = streams.open(b, 2);
        assert_eq!(streams.count(&a), 2);
        let third = streams.open(a, 2);
        assert_eq!(streams.count(&a), 2);
        assert!(
            (&mut first.closed).await.is_err(),
            "the oldest is told to close"
        );
        drop(first);
        assert_eq!(streams.count(&a), 2, "a closed slot frees nothing twice");
        drop((second, third));
        assert_eq!(streams.count(&a), 0);
        assert_eq!(streams.count(&b), 1);
        drop(other);
        assert!(streams.open.lock().unwrap().is_empty());
    }

    #[test]
    fn the_stream_is_for_clients_that_accept_event_streams() {
        assert!(wants_events(&accept("text/event-stream")));
        assert!(wants_events(&accept(
            "application/json, Text/Event-Stream;q=0.9"
        )));
        assert!(!wants_events(&accept("application/json")));
        assert!(!wants_events(&accept("*/*")));
        assert!(!wants_events(&http::HeaderMap::new()));
    }
}
