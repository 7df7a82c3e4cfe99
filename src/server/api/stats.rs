//! `/websites/{id}/stats/*`: the statistics (docs/api.md, "Statistics"). The query string
//! becomes typed values here (`query.rs`), every problem at once; the figures come from
//! `crate::stats`.

use serde_json::json;

use super::query::{self, Pairs};
use super::{Answer, Ctx};
use crate::error::{Error, Result};
use crate::stats::dimension::Report;
use crate::stats::{self, query::Query};
use crate::time::now_ms;
use crate::websites::{self, SiteNum};

/// The website's number and time zone, after checking the caller may see it.
fn website(ctx: &Ctx) -> Result<impl Future<Output = Result<(SiteNum, String)>> + Send + use<>> {
    let account_id = ctx.account_id()?;
    let id = ctx.param("id").to_string();
    let db = ctx.app.db.clone();
    Ok(async move {
        db.read(move |c| {
            let site = websites::owned(c, &account_id, &id)?;
            let num = websites::site_number(c, site.id)?
                .ok_or_else(|| Error::NotFound("Website not found".into()))?;
            Ok((num, site.timezone))
        })
        .await
    })
}

/// The website and the common parameters; the problems found so far for the handler to add
/// its own to.
fn request(
    ctx: &Ctx,
) -> Result<impl Future<Output = Result<(SiteNum, Query, Vec<String>)>> + Send + use<>> {
    let website = website(ctx)?;
    let (pairs, mut errors) = (ctx.query.clone(), ctx.query_errors.clone());
    Ok(async move {
        let (site, zone) = website.await?;
        let q = query::query(&pairs, &zone, now_ms(), &mut errors);
        Ok((site, q, errors))
    })
}

fn answer(data: impl serde::Serialize, q: &Query) -> Result<Answer> {
    let mut answer = Answer::ok(data)?;
    answer.meta.extend(query::meta(q));
    Ok(answer)
}

fn done(errors: Vec<String>) -> Result<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid_all(errors))
    }
}

fn pairs(ctx: &Ctx) -> &Pairs {
    &ctx.query
}

pub async fn main(ctx: Ctx) -> Result<Answer> {
    let (site, q, mut errors) = request(&ctx)?.await?;
    let compare = query::compare(pairs(&ctx), &mut errors);
    done(errors)?;
    let r = q.clone();
    let data = ctx
        .app
        .db
        .read(move |c| stats::main(c, site, &r, compare))
        .await?;
    answer(data, &q)
}

pub async fn timeseries(ctx: Ctx) -> Result<Answer> {
    let (site, q, mut errors) = request(&ctx)?.await?;
    let interval = query::interval(pairs(&ctx), &q.period, &mut errors);
    done(errors)?;
    let r = q.clone();
    let data = ctx
        .app
        .db
        .read(move |c| stats::timeseries(c, site, &r, interval))
        .await?;
    Ok(answer(data, &q)?.meta("interval", json!(interval.as_str())))
}

pub async fn breakdown(ctx: Ctx, report: Report) -> Result<Answer> {
    let (site, mut q, mut errors) = request(&ctx)?.await?;
    let page = query::page(pairs(&ctx), &mut errors);
    let echo = q.clone();
    let event_prop =
        (report == Report::EventProps).then(|| query::event_prop(pairs(&ctx), &mut q, &mut errors));
    done(errors)?;
    let rows = ctx
        .app
        .db
        .read(move |c| stats::breakdown(c, site, &q, report, event_prop.as_ref(), page))
        .await?;
    Ok(answer(rows.rows, &echo)?.meta(
        "pagination",
        json!({"page": page.number, "limit": page.limit, "hasMore": rows.has_more}),
    ))
}

pub async fn realtime(ctx: Ctx) -> Result<Answer> {
    let (site, _, errors) = request(&ctx)?.await?;
    done(errors)?;
    let recent = ctx.app.recent.clone();
    let data = ctx
        .app
        .db
        .read(move |c| stats::realtime::realtime(c, &recent, site, now_ms()))
        .await?;
    Answer::ok(data)
}

pub async fn active_users(ctx: Ctx) -> Result<Answer> {
    let (site, zone) = website(&ctx)?.await?;
    let mut errors = ctx.query_errors.clone();
    let (tz, timezone) = query::zone(pairs(&ctx), &zone, &mut errors);
    let date = query::date(pairs(&ctx), &tz, now_ms(), &mut errors);
    let filters = query::filters(pairs(&ctx), &mut errors);
    done(errors)?;
    let given = filters.clone();
    let data = ctx
        .app
        .db
        .read(move |c| stats::active_users(c, site, date, &tz, &given))
        .await?;
    Ok(Answer::ok(data)?
        .meta("date", json!(date.to_string()))
        .meta("timezone", json!(timezone))
        .meta("filters", query::filters_meta(&filters)))
}
