//! `POST /websites/{id}/events`: server-side and historical events (SPEC 3.5).

use uuid::Uuid;

use super::{Answer, Ctx};
use crate::error::{Error, Result};
use crate::ingest::pipeline::IMPORT_LIMIT;
use crate::websites;

/// Longest `Idempotency-Key` kept.
const MAX_IDEMPOTENCY_KEY: usize = 200;

pub async fn import(mut ctx: Ctx) -> Result<Answer> {
    let key = match ctx.headers.get("idempotency-key") {
        None => None,
        Some(v) => match v.to_str().map(str::trim) {
            Ok(k) if !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY => Some(k.to_string()),
            _ => {
                return Err(Error::invalid(format!(
                    "Idempotency-Key: must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
                )));
            }
        },
    };
    let account_id = ctx.account_id()?;
    let id = ctx.param("id").to_string();
    // Whose website it is (403, 404) before the body is read.
    ctx.app
        .db
        .read(move |c| websites::owned(c, &account_id, &id).map(|_| ()))
        .await?;
    let website = Uuid::parse_str(ctx.param("id"))
        .map_err(|_| Error::NotFound("Website not found".into()))?;
    let body = ctx.bytes(IMPORT_LIMIT).await?;
    let ingest = &ctx.app.ingest;
    let site = ingest
        .sites
        .get(&ctx.app.db, website)
        .await?
        .ok_or_else(|| Error::NotFound("Website not found".into()))?;
    let answer = ingest.import(&ctx.app.db, site, &body, key).await?;
    Answer::ok(answer)
}
