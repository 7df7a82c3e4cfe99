//! `/websites`: the account's websites (SPEC 2.5).

use http::StatusCode;
use serde_json::{Value, json};

use super::body::Fields;
use super::{Answer, Ctx};
use crate::db::Durability;
use crate::error::Result;
use crate::time::now_ms;
use crate::websites::{self, NewWebsite, WebsiteChange};

pub async fn list(ctx: Ctx) -> Result<Answer> {
    let id = ctx.account_id()?;
    let list = ctx
        .app
        .db
        .read(move |c| websites::list(c, Some(&id)))
        .await?;
    let public = &ctx.app.config.public_url;
    Answer::ok(list.iter().map(|w| w.view(public)).collect::<Vec<_>>())
}

/// `retentionDays`: absent → `None`, `null` → `Some(None)`, else 1–3650.
fn retention(body: &mut Fields, problems: &mut Vec<String>) -> Option<Option<i64>> {
    match body.take("retentionDays") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => match super::body::whole_number(&v).map(websites::validate_retention) {
            Some(Ok(days)) => Some(Some(days)),
            Some(Err(m)) => {
                problems.push(m);
                None
            }
            None => {
                problems.push(format!(
                    "retentionDays: must be between 1 and {}, or null",
                    websites::MAX_RETENTION_DAYS
                ));
                None
            }
        },
    }
}

fn check<T>(result: std::result::Result<T, String>, problems: &mut Vec<String>) -> Option<T> {
    result.map_err(|m| problems.push(m)).ok()
}

pub async fn create(mut ctx: Ctx) -> Result<Answer> {
    let mut body = ctx.json_object().await?;
    let mut problems = Vec::new();
    let name = body.required_string("name");
    let domain = body.required_string("domain");
    let timezone = body.nullable_string("timezone").flatten();
    let cookie_mode = body.boolean("cookieMode");
    let retention_days = retention(&mut body, &mut problems);
    let name = name.and_then(|n| check(websites::validate_name(&n), &mut problems));
    let domain = domain.and_then(|d| check(websites::normalize_domain(&d), &mut problems));
    let timezone = match timezone {
        None => Some("UTC".to_string()),
        Some(tz) => check(websites::validate_timezone(&tz), &mut problems),
    };
    body.finish_with(problems)?;
    let (Some(name), Some(domain), Some(timezone)) = (name, domain, timezone) else {
        return Err(crate::error::Error::invalid("body: incomplete"));
    };
    let account = ctx.caller()?.account().clone();
    let ip = ctx.client_ip;
    let now = now_ms();
    let new = NewWebsite {
        name,
        domain,
        timezone,
        cookie_mode: cookie_mode.unwrap_or(false),
        retention_days: retention_days.flatten(),
    };
    let site = ctx
        .app
        .db
        .write(Durability::Full, move |c| {
            websites::add(c, &account, new, Some(ip), now)
        })
        .await?;
    ctx.app.ingest.sites.clear();
    Answer::with_status(StatusCode::CREATED, site.view(&ctx.app.config.public_url))
}

pub async fn get(ctx: Ctx) -> Result<Answer> {
    let account_id = ctx.account_id()?;
    let id = ctx.param("id").to_string();
    let site = ctx
        .app
        .db
        .read(move |c| websites::owned(c, &account_id, &id))
        .await?;
    Answer::ok(site.view(&ctx.app.config.public_url))
}

pub async fn update(mut ctx: Ctx) -> Result<Answer> {
    let mut body = ctx.json_object().await?;
    let mut problems = Vec::new();
    let mut change = WebsiteChange::default();
    if let Some(name) = body.string("name") {
        change.name = check(websites::validate_name(&name), &mut problems);
    }
    if let Some(domain) = body.string("domain") {
        change.domain = check(websites::normalize_domain(&domain), &mut problems);
    }
    if let Some(tz) = body.string("timezone") {
        change.timezone = check(websites::validate_timezone(&tz), &mut problems);
    }
    change.cookie_mode = body.boolean("cookieMode");
    change.retention_days = retention(&mut body, &mut problems);
    body.finish_with(problems)?;
    let account_id = ctx.account_id()?;
    let id = ctx.param("id").to_string();
    let site = ctx
        .app
        .db
        .write(Durability::Full, move |c| {
            let site = websites::owned(c, &account_id, &id)?;
            websites::update(c, site, change)
        })
        .await?;
    ctx.app.ingest.sites.clear();
    Answer::ok(site.view(&ctx.app.config.public_url))
}

pub async fn delete(ctx: Ctx) -> Result<Answer> {
    let account_id = ctx.account_id()?;
    let id = ctx.param("id").to_string();
    let ip = ctx.client_ip;
    let now = now_ms();
    let id = ctx
        .app
        .db
        .write(Durability::Full, move |c| {
            let site = websites::owned(c, &account_id, &id)?;
            websites::delete(c, &site, Some(ip), now)?;
            Ok(site.id)
        })
        .await?;
    ctx.app.ingest.sites.clear();
    Answer::ok(json!({"id": id, "deleted": true}))
}
