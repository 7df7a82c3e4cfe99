//! `/websites/{id}/stats/*`: the statistics (SPEC 2.6). Parameters are checked here, all
//! problems at once; the figures come from `crate::stats`.

use serde_json::{Value, json};

use super::{Answer, Ctx};
use crate::error::{Error, Result};
use crate::stats::{self, EventProp, Request, param, period};
use crate::time::now_ms;
use crate::websites;

/// The website's number and time zone, after checking the caller may see it.
fn website(ctx: &Ctx) -> Result<impl Future<Output = Result<(i64, String)>> + Send + use<>> {
    let account_id = ctx.account_id()?;
    let id = ctx.param("id").to_string();
    let db = ctx.app.db.clone();
    Ok(async move {
        db.read(move |c| {
            let site = websites::owned(c, &account_id, &id)?;
            let num = stats::site_number(c, &site.id)?
                .ok_or_else(|| Error::NotFound("Website not found".into()))?;
            Ok((num, site.timezone))
        })
        .await
    })
}

/// Checks the common parameters; answers the problems found for the handler to add its own.
async fn request(
    website: impl Future<Output = Result<(i64, String)>>,
    query: &[(String, String)],
    unknown: &[String],
) -> Result<(Request, Vec<String>)> {
    let (site, zone) = website.await?;
    let mut errors = unknown.to_vec();
    let req = Request::parse(site, &zone, query, now_ms(), &mut errors);
    Ok((req, errors))
}

fn answer(data: Value, req: &Request) -> Result<Answer> {
    let mut answer = Answer::ok(data)?;
    answer.meta.extend(req.meta());
    Ok(answer)
}

fn done(errors: Vec<String>) -> Result<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid_all(errors))
    }
}

pub async fn main(ctx: Ctx) -> Result<Answer> {
    let (req, mut errors) = request(website(&ctx)?, &ctx.query, &ctx.query_errors).await?;
    let compare = match param(&ctx.query, "compare") {
        None => false,
        Some("previous") => true,
        Some(_) => {
            errors.push("compare: must be \"previous\"".into());
            false
        }
    };
    done(errors)?;
    let r = req.clone();
    let data = ctx
        .app
        .db
        .read(move |c| stats::main(c, &r, compare))
        .await?;
    answer(data, &req)
}

pub async fn timeseries(ctx: Ctx) -> Result<Answer> {
    let (req, mut errors) = request(website(&ctx)?, &ctx.query, &ctx.query_errors).await?;
    let interval = stats::interval(param(&ctx.query, "interval"), &req.period, &mut errors);
    done(errors)?;
    let r = req.clone();
    let data = ctx
        .app
        .db
        .read(move |c| stats::timeseries(c, &r, interval))
        .await?;
    Ok(answer(data, &req)?.meta("interval", json!(interval.as_str())))
}

pub async fn breakdown(ctx: Ctx) -> Result<Answer> {
    let (req, mut errors) = request(website(&ctx)?, &ctx.query, &ctx.query_errors).await?;
    let (limit, page) = match ctx.pagination() {
        Ok(p) => p,
        Err(Error::Invalid { errors: e, .. }) => {
            errors.extend(e);
            (10, 1)
        }
        Err(e) => return Err(e),
    };
    let name = ctx.route.rsplit('/').next().unwrap_or_default().to_string();
    let event_prop = if name == "event-props" {
        let mut required = |field: &str| {
            let value = param(&ctx.query, field).unwrap_or_default().to_string();
            if value.is_empty() {
                errors.push(format!("{field}: is required"));
            }
            value
        };
        let event = required("event");
        let prop = required("prop");
        Some(EventProp { event, prop })
    } else {
        None
    };
    done(errors)?;
    let mut r = req.clone();
    if event_prop.is_some() {
        // Here `event` names the event to break down; it selects no sessions.
        r.filters.retain(|(k, _)| k != "event");
    }
    let (data, more) = ctx
        .app
        .db
        .read(move |c| stats::breakdown(c, &r, &name, event_prop.as_ref(), limit, page))
        .await?;
    Ok(answer(data, &req)?.meta(
        "pagination",
        json!({"page": page, "limit": limit, "hasMore": more}),
    ))
}

pub async fn realtime(ctx: Ctx) -> Result<Answer> {
    let (req, errors) = request(website(&ctx)?, &ctx.query, &ctx.query_errors).await?;
    done(errors)?;
    let store = ctx.app.ingest.store.clone();
    let site = req.site;
    let data = ctx
        .app
        .db
        .read(move |c| stats::realtime::realtime(c, &store.recent, site, now_ms()))
        .await?;
    Answer::ok(data)
}

pub async fn active_users(ctx: Ctx) -> Result<Answer> {
    let (site, zone) = website(&ctx)?.await?;
    let mut errors = ctx.query_errors.clone();
    let (tz, timezone) = stats::zone(&ctx.query, &zone, &mut errors);
    let date = match param(&ctx.query, "date") {
        None => Some(period::today(&tz, now_ms())),
        Some(raw) => {
            let d = stats::parse_date(raw);
            if d.is_none() {
                errors.push("date: must be a date YYYY-MM-DD".into());
            }
            d
        }
    };
    let filters = stats::given_filters(&ctx.query, &mut errors);
    done(errors)?;
    let date = date.unwrap_or_default();
    let given = filters.clone();
    let zone = tz.clone();
    let data = ctx
        .app
        .db
        .read(move |c| stats::active_users(c, site, date, &zone, &given))
        .await?;
    Ok(Answer::ok(data)?
        .meta("date", json!(date.to_string()))
        .meta("timezone", json!(timezone))
        .meta("filters", stats::filters_meta(&filters)))
}
