//! `jetrack demo` (SPEC 6): a website "Demo" with 90 days of realistic generated traffic in
//! this data directory's database, so that a newcomer sees a full dashboard in one command.
//!
//! The website belongs to the account `--email` names, else to the oldest account; on a
//! fresh data directory an account `demo@example.com` is created with a random password,
//! printed once. Running it again refreshes the demo: the old "Demo" website (found by its
//! domain) is deleted with its data and made anew, with traffic up to now. The trace comes
//! from `crate::generate`, which writes the row tables directly, so no server may be writing
//! at the same time: like `restore`, the command takes the data directory's lock. Its
//! statistics blocks are built before it returns, so the first dashboard is as fast as any.

use std::io::Write;
use std::path::Path;

use clap::Args;

use crate::accounts::{self, Account, NewAccount};
use crate::auth::password;
use crate::config;
use crate::datadir;
use crate::db::{self, Db, Durability, migrations};
use crate::error::{Error, Result};
use crate::generate::{self, Summary};
use crate::stats::blocks;
use crate::time::now_ms;
use crate::websites::{self, NewWebsite, Website};

/// The demo website's domain: reserved for examples (RFC 2606), so never a real site.
pub const DOMAIN: &str = "demo.example";
pub const NAME: &str = "Demo";
/// The owner made on a data directory without accounts.
pub const DEMO_EMAIL: &str = "demo@example.com";
/// Days of traffic, ending now.
pub const DAYS: u32 = 90;
/// Pageviews in all: a busy small site (~2,200 a day), generated in a few seconds.
pub const PAGEVIEWS: u64 = 200_000;
/// Statistics blocks rebuilt per transaction.
const BLOCKS_PER_BATCH: usize = 500;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// The account that owns the demo website [default: the oldest account; on a fresh data dir, a new demo@example.com]
    #[arg(long)]
    pub email: Option<String>,
    /// The server's public URL, for the link printed at the end
    #[arg(
        long,
        env = "JETRACK_PUBLIC_URL",
        value_name = "URL",
        default_value = "http://127.0.0.1:8420"
    )]
    pub public_url: String,
}

/// Who owns the demo, and the password when the command made the account.
struct Owner {
    account: Account,
    new_password: Option<String>,
}

/// Runs `jetrack demo`: prints where to see the demo on stdout, progress on stderr.
pub async fn run(args: DemoArgs, data_dir: &Path) -> Result<()> {
    let public_url = config::parse_public_url(&args.public_url).map_err(Error::Internal)?;
    datadir::ensure(data_dir)?;
    let _lock = datadir::lock(data_dir)?;
    let db = Db::open(data_dir, 1024)?;
    let prepared = prepare(&db, args.email).await;
    db.shutdown().await;
    let (owner, website, site) = prepared?;

    eprintln!(
        "Generating {PAGEVIEWS} pageviews over {DAYS} days for {} ({DOMAIN})…",
        website.id
    );
    let path = data_dir.join(db::DB_FILE);
    let summary = tokio::task::spawn_blocking(move || fill(&path, site))
        .await
        .map_err(|e| Error::Internal(format!("the generator stopped: {e}")))??;

    let mut out = std::io::stdout().lock();
    let mut say = |line: String| {
        writeln!(out, "{line}")
            .map_err(|e| Error::Internal(format!("cannot write to stdout: {}", datadir::plain(&e))))
    };
    say(format!(
        "Demo website ready: {} pageviews, {} visits and {} events over the last {DAYS} days, owned by {}.",
        summary.pageviews, summary.visits, summary.events, owner.account.email
    ))?;
    if let Some(password) = &owner.new_password {
        say(format!(
            "Log in as {} with the password {password} (shown once; change it in Settings).",
            owner.account.email
        ))?;
    }
    say("See it: run `jetrack serve`, then open".into())?;
    say(format!("  {public_url}/websites/{}", website.id))?;
    Ok(())
}

/// Finds or creates the owner, and replaces any earlier demo website with a new one.
async fn prepare(db: &Db, email: Option<String>) -> Result<(Owner, Website, i64)> {
    let owner = owner(db, email).await?;
    let account = owner.account.clone();
    let now = now_ms();
    let (website, site) = db
        .write(Durability::Full, move |c| {
            let earlier = websites::list(c, Some(&account.id))?
                .into_iter()
                .find(|w| w.domain == DOMAIN);
            let timezone = earlier
                .as_ref()
                .map_or_else(|| "UTC".to_string(), |w| w.timezone.clone());
            if let Some(old) = &earlier {
                websites::delete(c, old, None, now)?;
            }
            let new = NewWebsite {
                name: NAME.into(),
                domain: DOMAIN.into(),
                timezone,
                cookie_mode: false,
                retention_days: None,
            };
            let website = websites::add(c, &account, new, None, now)?;
            let site = websites::site_number(c, website.id)?
                .ok_or_else(|| Error::Internal("the new website has no number".into()))?
                .0;
            Ok((website, site))
        })
        .await?;
    Ok((owner, website, site))
}

async fn owner(db: &Db, email: Option<String>) -> Result<Owner> {
    if let Some(email) = email {
        let lookup = email.clone();
        let account = db
            .read(move |c| accounts::by_email(c, &lookup))
            .await?
            .ok_or_else(|| Error::NotFound(format!("no account with the email {email}")))?;
        return Ok(Owner {
            account,
            new_password: None,
        });
    }
    if let Some(account) = db.read(accounts::list).await?.into_iter().next() {
        return Ok(Owner {
            account,
            new_password: None,
        });
    }
    let password = crate::auth::token::random_hex32()[..24].to_string();
    let hash = password::hash_async(password.clone()).await?;
    let now = now_ms();
    let new = NewAccount {
        email: DEMO_EMAIL.into(),
        first_name: Some("Demo".into()),
        last_name: None,
    };
    let account = db
        .write(Durability::Full, move |c| {
            accounts::insert(c, new, hash, now)
        })
        .await?;
    Ok(Owner {
        account,
        new_password: Some(password),
    })
}

/// Writes the trace for website number `site` and builds its statistics blocks.
fn fill(path: &Path, site: i64) -> Result<Summary> {
    let conn = db::open_connection(path, migrations::MIGRATIONS)?;
    let opts = generate::Options {
        pageviews: PAGEVIEWS,
        days: DAYS,
        end_ms: now_ms(),
        seed: 2025,
        domain: DOMAIN.into(),
    };
    let summary = generate::generate(&conn, site, &opts)?;
    loop {
        let tx = conn.unchecked_transaction()?;
        let done = blocks::refresh(&tx, Some(site), i64::MAX, BLOCKS_PER_BATCH)?;
        tx.commit()?;
        if done == 0 {
            break;
        }
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    Ok(summary)
}
