//! `/auth/*`: the first account, logging in and out, the current session (SPEC 2.7).

use http::StatusCode;
use http::header::SET_COOKIE;
use serde_json::json;

use super::{Answer, Ctx};
use crate::accounts::{self, NewAccount};
use crate::audit::{self, Action};
use crate::auth::{device, password, session, token::constant_time_eq};
use crate::db::Durability;
use crate::error::{Error, Result};
use crate::time::now_ms;

pub async fn setup_needed(ctx: Ctx) -> Result<Answer> {
    let n = ctx.app.db.read(accounts::count).await?;
    Answer::ok(json!({ "needed": n == 0 }))
}

pub async fn setup(mut ctx: Ctx) -> Result<Answer> {
    let mut body = ctx.json_object().await?;
    let token = body.required_string("token");
    let email = body.required_string("email");
    let pass = body.required_string("password");
    let first = body.string("firstName");
    let last = body.string("lastName");
    let mut problems = Vec::new();
    let email = email.and_then(|e| {
        accounts::validate_email(&e)
            .map_err(|m| problems.push(m))
            .ok()
    });
    if let Some(Err(m)) = pass
        .as_deref()
        .map(|p| accounts::validate_password("password", p))
    {
        problems.push(m);
    }
    let first = first.map_or(Ok(None), |v| accounts::validate_name("firstName", &v));
    let last = last.map_or(Ok(None), |v| accounts::validate_name("lastName", &v));
    let first = first.map_err(|m| problems.push(m)).ok().flatten();
    let last = last.map_err(|m| problems.push(m)).ok().flatten();
    body.finish_with(problems)?;
    let (Some(token), Some(email), Some(pass)) = (token, email, pass) else {
        return Err(Error::invalid("body: incomplete"));
    };

    let expected = ctx.app.setup_token.lock().expect("not poisoned").clone();
    let Some(expected) = expected else {
        return Err(Error::Forbidden(
            "Setup is already complete; log in instead".into(),
        ));
    };
    if !constant_time_eq(expected.as_bytes(), token.as_bytes()) {
        return Err(Error::Forbidden(
            "The setup link is invalid or was already used".into(),
        ));
    }
    let hash = password::hash_async(pass).await?;
    let now = now_ms();
    let ip = ctx.client_ip;
    let (account, session_token) = ctx
        .app
        .db
        .write(Durability::Full, move |c| {
            if accounts::count(c)? > 0 {
                return Err(Error::Forbidden(
                    "Setup is already complete; log in instead".into(),
                ));
            }
            let new = NewAccount {
                email,
                first_name: first,
                last_name: last,
            };
            let account = accounts::insert(c, new, hash, now)?;
            let token = session::create(c, &account.id, now)?;
            audit::record(c, &account.id, Action::Login, Some(ip), Some("setup"), now)?;
            Ok((account, token))
        })
        .await?;
    ctx.app.setup_token.lock().expect("not poisoned").take();
    tracing::info!(account = %account.id, "first account created through the setup page");
    Ok(Answer::with_status(
        StatusCode::CREATED,
        json!({ "account": account.view(), "csrfToken": session::csrf_token(&session_token) }),
    )?
    .header(SET_COOKIE, &ctx.app.cookie().set(&session_token)))
}

pub async fn login(mut ctx: Ctx) -> Result<Answer> {
    if let Err(wait) = ctx.app.login_limits.attempt(ctx.client_ip) {
        return Err(Error::TooManyRequests {
            message: "Too many login attempts; try again later".into(),
            retry_after: wait,
        });
    }
    let mut body = ctx.json_object().await?;
    let email = body.required_string("email");
    let pass = body.required_string("password");
    body.finish()?;
    let (Some(email), Some(pass)) = (email, pass) else {
        return Err(Error::invalid("body: incomplete"));
    };
    let lookup = email.clone();
    let account = ctx
        .app
        .db
        .read(move |c| accounts::by_email(c, &lookup))
        .await?;
    let limits = &ctx.app.login_limits;
    let now = now_ms();
    // A browser that logged in to this account before passes the email's wait (device.rs).
    let presented = ctx.app.device_cookie().read(&ctx.headers);
    let device = match (&presented, &account) {
        (Some(token), Some(account)) if limits.device_trusted(token) => {
            let (token, id) = (token.clone(), account.id.clone());
            let known = ctx
                .app
                .db
                .read(move |c| device::belongs_to(c, &token, &id, now))
                .await?;
            known.then(|| presented.clone()).flatten()
        }
        _ => None,
    };
    if device.is_none()
        && let Err(wait) = limits.email_gate(&email)
    {
        return Err(Error::TooManyRequests {
            message: "Too many failed logins for this email; try again later".into(),
            retry_after: wait,
        });
    }
    let ok = password::verify_async(pass, account.as_ref().map(|a| a.password_hash.clone())).await;
    let ip = ctx.client_ip;
    let account = match account {
        Some(account) if ok => account,
        known => {
            limits.failed(&email);
            if let Some(token) = device.clone() {
                limits.device_failed(&token);
                if !limits.device_trusted(&token) {
                    ctx.app
                        .db
                        .write_detached(move |c| device::forget(c, &token));
                }
            }
            if let Some(account) = known {
                let id = account.id;
                ctx.app.db.write_detached(move |c| {
                    audit::record(c, &id, Action::LoginFailed, Some(ip), None, now)
                });
            }
            return Err(Error::BadCredentials);
        }
    };
    // A success through the wait leaves the email's failures standing: the wait still holds
    // back whoever else is guessing.
    if device.is_none() {
        limits.succeeded(&email);
    }
    let id = account.id.clone();
    let remembered = device.is_some();
    let (token, new_device) = ctx
        .app
        .db
        .write(Durability::Full, move |c| {
            let token = session::create(c, &id, now)?;
            let new_device = if remembered {
                None
            } else {
                Some(device::create(c, &id, now)?)
            };
            audit::record(c, &id, Action::Login, Some(ip), None, now)?;
            Ok((token, new_device))
        })
        .await?;
    let mut answer = Answer::ok(json!({
        "account": account.view(),
        "csrfToken": session::csrf_token(&token),
    }))?
    .header(SET_COOKIE, &ctx.app.cookie().set(&token));
    if let Some(device) = new_device {
        answer = answer.header(SET_COOKIE, &ctx.app.device_cookie().set(&device));
    }
    Ok(answer)
}

pub async fn logout(ctx: Ctx) -> Result<Answer> {
    let (_, live) = ctx.session()?;
    let hash = live.hash;
    let id = live.account.id.clone();
    let ip = ctx.client_ip;
    let now = now_ms();
    ctx.app
        .db
        .write(Durability::Full, move |c| {
            session::delete(c, &hash)?;
            audit::record(c, &id, Action::Logout, Some(ip), None, now)
        })
        .await?;
    Ok(Answer::ok(json!({ "loggedOut": true }))?.header(SET_COOKIE, &ctx.app.cookie().clear()))
}

pub async fn current(ctx: Ctx) -> Result<Answer> {
    let (token, live) = ctx.session()?;
    Answer::ok(json!({
        "account": live.account.view(),
        "csrfToken": session::csrf_token(token),
    }))
}
