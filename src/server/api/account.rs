//! `/account`: the caller's own account (SPEC 2.4).

use serde_json::json;

use super::{Answer, Ctx};
use crate::accounts::{self, ProfileChange};
use crate::audit::{self, Action};
use crate::auth::{password, session};
use crate::db::Durability;
use crate::error::{Error, Result};
use crate::time::{iso_ms, month_bounds_utc, now_ms};
use crate::websites;

pub async fn get(ctx: Ctx) -> Result<Answer> {
    let id = ctx.caller()?.account().id.clone();
    let account = ctx
        .app
        .db
        .read(move |c| accounts::by_id(c, &id))
        .await?
        .ok_or(Error::Unauthorized)?;
    Answer::ok(account.view())
}

pub async fn update(mut ctx: Ctx) -> Result<Answer> {
    let mut body = ctx.json_object().await?;
    let mut problems = Vec::new();
    let mut change = ProfileChange::default();
    for (field, slot) in [
        ("firstName", &mut change.first_name),
        ("lastName", &mut change.last_name),
    ] {
        if let Some(value) = body.nullable_string(field) {
            match value.map_or(Ok(None), |v| accounts::validate_name(field, &v)) {
                Ok(v) => *slot = Some(v),
                Err(m) => problems.push(m),
            }
        }
    }
    if let Some(value) = body.nullable_string("picture") {
        match value.map_or(Ok(None), |v| accounts::validate_picture(&v)) {
            Ok(v) => change.picture = Some(v),
            Err(m) => problems.push(m),
        }
    }
    body.finish_with(problems)?;
    let id = ctx.caller()?.account().id.clone();
    let account = ctx
        .app
        .db
        .write(Durability::Full, move |c| {
            accounts::update_profile(c, &id, change)
        })
        .await?;
    Answer::ok(account.view())
}

pub async fn change_password(mut ctx: Ctx) -> Result<Answer> {
    let mut body = ctx.json_object().await?;
    let current = body.required_string("currentPassword");
    let new = body.required_string("newPassword");
    let mut problems = Vec::new();
    if let Some(Err(m)) = new
        .as_deref()
        .map(|p| accounts::validate_password("newPassword", p))
    {
        problems.push(m);
    }
    body.finish_with(problems)?;
    let (Some(current), Some(new)) = (current, new) else {
        return Err(Error::invalid("body: incomplete"));
    };
    let (_, live) = ctx.session()?;
    let account_id = live.account.id.clone();
    let keep = live.hash;
    // Re-authentication is limited like a login: per client address, and a growing wait for
    // the session after wrong passwords (someone holding a stolen session must not guess fast).
    let limits = &ctx.app.login_limits;
    if let Err(wait) = limits
        .attempt(ctx.client_ip)
        .and_then(|()| limits.reauth_gate(&keep))
    {
        return Err(Error::TooManyRequests {
            message: "Too many password attempts; try again later".into(),
            retry_after: wait,
        });
    }
    let id = account_id.clone();
    let stored = ctx
        .app
        .db
        .read(move |c| accounts::by_id(c, &id))
        .await?
        .map(|a| a.password_hash);
    if !password::verify_async(current, stored).await {
        ctx.app.login_limits.reauth_failed(&keep);
        return Err(Error::invalid("currentPassword: is incorrect"));
    }
    ctx.app.login_limits.reauth_succeeded(&keep);
    let hash = password::hash_async(new).await?;
    let ip = ctx.client_ip;
    let now = now_ms();
    let ended = ctx
        .app
        .db
        .write(Durability::Full, move |c| {
            accounts::set_password_hash(c, &account_id, &hash)?;
            let ended = session::delete_for_account(c, &account_id, Some(&keep))?;
            audit::record(c, &account_id, Action::PasswordChanged, Some(ip), None, now)?;
            Ok(ended)
        })
        .await?;
    Answer::ok(json!({ "passwordChanged": true, "otherSessionsEnded": ended }))
}

pub async fn subscription(ctx: Ctx) -> Result<Answer> {
    let account = ctx.caller()?.account();
    let (start, end) = month_bounds_utc(now_ms());
    Answer::ok(json!({
        "plan": "self-hosted",
        "status": "active",
        "currentPeriodStart": iso_ms(start),
        "currentPeriodEnd": iso_ms(end),
        "limits": {
            "pageviewsPerMonth": account.limit_pageviews_per_month,
            "websites": account.limit_websites,
        },
    }))
}

pub async fn usage(ctx: Ctx) -> Result<Answer> {
    let account = ctx.caller()?.account().clone();
    let (start, end) = month_bounds_utc(now_ms());
    let id = account.id.clone();
    let (pageviews, sites) = ctx
        .app
        .db
        .read(move |c| {
            Ok((
                accounts::pageviews_between(c, &id, start, end)?,
                websites::count_for(c, &id)?,
            ))
        })
        .await?;
    let percentage = account
        .limit_pageviews_per_month
        .map(|limit| (pageviews as f64 / limit as f64 * 10_000.0).round() / 100.0);
    Answer::ok(json!({
        "currentPeriod": {"start": iso_ms(start), "end": iso_ms(end)},
        "pageviews": {
            "used": pageviews,
            "limit": account.limit_pageviews_per_month,
            "percentage": percentage,
        },
        "websites": {"used": sites, "limit": account.limit_websites},
    }))
}

pub async fn audit_log(ctx: Ctx) -> Result<Answer> {
    let (limit, page) = ctx.pagination()?;
    let (_, live) = ctx.session()?;
    let id = live.account.id.clone();
    let (entries, more) = ctx
        .app
        .db
        .read(move |c| audit::page(c, &id, limit, page))
        .await?;
    Ok(Answer::ok(entries)?.meta(
        "pagination",
        json!({"page": page, "limit": limit, "hasMore": more}),
    ))
}
