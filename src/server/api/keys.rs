//! `/account/api-keys`: the account's API keys, managed from a dashboard session only.

use http::StatusCode;
use serde_json::{Value, json};

use super::{Answer, Ctx};
use crate::db::Durability;
use crate::error::Result;
use crate::keys::{self, NewKey, NewKeyView, Scope};
use crate::time::now_ms;

pub async fn list(ctx: Ctx) -> Result<Answer> {
    let (_, live) = ctx.session()?;
    let id = live.account.id.clone();
    let list = ctx.app.db.read(move |c| keys::list(c, Some(&id))).await?;
    Answer::ok(list.iter().map(|k| k.view()).collect::<Vec<_>>())
}

pub async fn create(mut ctx: Ctx) -> Result<Answer> {
    let mut body = ctx.json_object().await?;
    let mut problems = Vec::new();
    let name = match body.nullable_string("name").flatten() {
        Some(raw) => keys::validate_name(&raw)
            .map_err(|m| problems.push(m))
            .ok()
            .flatten(),
        None => None,
    };
    let scope = match body.nullable_string("scope").flatten() {
        None => Scope::Full,
        Some(raw) => Scope::parse(&raw).unwrap_or_else(|| {
            problems.push("scope: must be \"full\" or \"read\"".into());
            Scope::Full
        }),
    };
    let expires_in_days = match body.take("expiresInDays") {
        None | Some(Value::Null) => None,
        Some(v) => match super::body::whole_number(&v).map(keys::validate_expires_in_days) {
            Some(Ok(days)) => Some(days),
            Some(Err(m)) => {
                problems.push(m);
                None
            }
            None => {
                problems.push(format!(
                    "expiresInDays: must be an integer between 1 and {}",
                    keys::MAX_EXPIRES_IN_DAYS
                ));
                None
            }
        },
    };
    body.finish_with(problems)?;
    let (_, live) = ctx.session()?;
    let account_id = live.account.id.clone();
    let ip = ctx.client_ip;
    let now = now_ms();
    let new = NewKey {
        name,
        scope,
        expires_in_days,
    };
    let (key, secret) = ctx
        .app
        .db
        .write(Durability::Full, move |c| {
            keys::issue(c, &account_id, new, Some(ip), now)
        })
        .await?;
    Answer::with_status(
        StatusCode::CREATED,
        NewKeyView {
            key: secret,
            view: key.view(),
        },
    )
}

pub async fn regenerate(ctx: Ctx) -> Result<Answer> {
    let (_, live) = ctx.session()?;
    let account_id = live.account.id.clone();
    let key_id = ctx.param("keyId").to_string();
    let ip = ctx.client_ip;
    let now = now_ms();
    let (key, secret) = ctx
        .app
        .db
        .write(Durability::Full, move |c| {
            let old = keys::owned(c, &account_id, &key_id)?;
            keys::rotate(c, &old, None, Some(ip), now)
        })
        .await?;
    Answer::ok(NewKeyView {
        key: secret,
        view: key.view(),
    })
}

pub async fn revoke(ctx: Ctx) -> Result<Answer> {
    let (_, live) = ctx.session()?;
    let account_id = live.account.id.clone();
    let key_id = ctx.param("keyId").to_string();
    let ip = ctx.client_ip;
    let now = now_ms();
    let id = ctx
        .app
        .db
        .write(Durability::Full, move |c| {
            let key = keys::owned(c, &account_id, &key_id)?;
            keys::revoke_recorded(c, &key, Some(ip), now)?;
            Ok(key.id)
        })
        .await?;
    Answer::ok(json!({"id": id, "revoked": true}))
}
