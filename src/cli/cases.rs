//! `hotline cases`: the open cases (with `--all`, those of the last 72
//! hours too) by city — code, age, level and pass, who was offered and
//! when, who accepted and after how long. Never a number, a location or a
//! callback: rows are [`crate::dispatch::board`] rows.
//!
//! On Redis it reads the store directly. The memory store's cases live
//! inside the running gateway, so then it asks that gateway's admin
//! listener (`GET /cases.json`, at `server.admin_listen` or
//! `HOTLINE_ADMIN_LISTEN`, with `HOTLINE_ADMIN_TOKEN` as bearer token when
//! set).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::error::fail;
use super::{CliError, build_store, load_config};
use crate::config::{ADMIN_TOKEN_VAR, Config, Env, ProcessEnv, StoreKind};
use crate::dispatch::board::{self, Board, CaseRow, Filter};
use crate::dispatch::lifecycle::Status;
use crate::dispatch::roster::Roster;

/// How long the admin listener may take to answer.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn cases(flag: Option<PathBuf>, filter: Filter) -> ExitCode {
    let config = match load_config(flag.as_deref(), &ProcessEnv) {
        Ok((c, _)) => c,
        Err(e) => return fail(&CliError::Config(e)),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&CliError::Runtime(e)),
    };
    match runtime.block_on(read(&config, &filter)) {
        Ok(b) => {
            print!("{}", to_text(&b));
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

async fn read(config: &Config, filter: &Filter) -> Result<Board, CliError> {
    if config.store.kind == StoreKind::Memory {
        return from_admin(config, filter, &ProcessEnv).await;
    }
    let roster = load_roster(config)?;
    let store = build_store(config).await?;
    let privacy = crate::privacy::Privacy::from_config(&config.privacy);
    let now = crate::clock::Clock::System.now_ms();
    board::collect(store.as_ref(), &privacy, roster.as_ref(), filter, now)
        .await
        .map_err(CliError::ReadCases)
}

/// The roster, when dispatch is configured (for names and levels).
pub(super) fn load_roster(config: &Config) -> Result<Option<Roster>, CliError> {
    let Some(d) = &config.dispatch else {
        return Ok(None);
    };
    crate::dispatch::roster::load(&d.roster, &ProcessEnv)
        .map(|(r, _)| Some(r))
        .map_err(CliError::Build)
}

async fn from_admin(config: &Config, filter: &Filter, env: &dyn Env) -> Result<Board, CliError> {
    let addr = config.server.admin_listen;
    let mut url = format!("http://{addr}/cases.json?all={}", u8::from(filter.all));
    if let Some(city) = &filter.city {
        let q = serde_urlencoded::to_string([("city", city)]).unwrap_or_default();
        let _ = write!(url, "&{q}");
    }
    let client = reqwest::Client::builder()
        .timeout(ADMIN_TIMEOUT)
        .no_proxy()
        .build()
        .map_err(|e| CliError::Admin(e.to_string()))?;
    let mut req = client.get(&url);
    if let Some(token) = env.var(ADMIN_TOKEN_VAR) {
        req = req.bearer_auth(token);
    }
    let unreachable = |e: reqwest::Error| {
        CliError::Admin(format!(
            "no gateway answers at {addr} ({e}); the memory store's cases live only inside the running gateway: start it, or point HOTLINE_ADMIN_LISTEN at it"
        ))
    };
    let resp = req.send().await.map_err(unreachable)?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        // Refused for want of the token: the operator's to fix (64), as
        // `test-sms` says it; anything else may pass (69).
        if matches!(status.as_u16(), 401 | 403) {
            return Err(CliError::Usage(format!(
                "the gateway refused: {status}: {}",
                body.trim()
            )));
        }
        return Err(CliError::Admin(format!("{status}: {}", body.trim())));
    }
    resp.json::<Board>()
        .await
        .map_err(|e| CliError::Admin(format!("unreadable answer: {e}")))
}

/// The board as text, a block per city.
pub(super) fn to_text(b: &Board) -> String {
    let mut out = String::new();
    let what = if b.filter.all {
        "open and last 72 h"
    } else {
        "open"
    };
    let _ = writeln!(out, "Cases ({what}) at {}", board::utc(b.now_ms));
    if b.cases.is_empty() {
        out.push_str("none\n");
    }
    let mut city: Option<&str> = None;
    for r in &b.cases {
        if city != Some(r.city.as_str()) {
            city = Some(&r.city);
            let n = b.cases.iter().filter(|c| c.city == r.city).count();
            let _ = writeln!(out, "\n{} ({n})", r.city);
            let _ = writeln!(
                out,
                "  {:<11} {:<9} {:<10} {:<36} {:<32} ACCEPTED",
                "CODE", "AGE", "STATUS", "LEVEL", "OFFERED TO"
            );
        }
        row(&mut out, r, b.now_ms);
    }
    if b.unreadable > 0 {
        let _ = writeln!(out, "\nWARNING: {}", board::unreadable_note(b.unreadable));
    }
    if b.truncated {
        let _ = writeln!(
            out,
            "\n(only the first {} cases were read)",
            board::MAX_READ
        );
    }
    out
}

fn row(out: &mut String, r: &CaseRow, now_ms: u64) {
    let status = match r.status {
        Status::Open if r.exhausted => "exhausted",
        Status::Open => "waiting",
        Status::Accepted => "accepted",
        Status::Closed => "closed",
    };
    let kind = r.level_kind.as_deref().unwrap_or("?").replace('_', " ");
    let passes = r.passes.map_or(String::new(), |p| format!("/{p}"));
    let level = format!("{kind} · level {} · pass {}{passes}", r.level, r.pass);
    let offers: Vec<String> = r
        .offers
        .iter()
        .map(|o| {
            let name = o.name.as_deref().unwrap_or(&o.lawyer);
            let ago = board::duration(now_ms.saturating_sub(o.at_ms) / 1000);
            let declined = match (o.declined, o.undelivered) {
                (_, true) => ", undelivered",
                (true, false) => ", declined",
                (false, false) => "",
            };
            format!("{name} ({ago} ago{declined})")
        })
        .collect();
    let accepted = match (&r.accepted_by, r.accept_secs) {
        (Some(id), Some(s)) => format!(
            "{} after {}",
            r.accepted_by_name.as_deref().unwrap_or(id),
            board::duration(s)
        ),
        _ => "-".to_owned(),
    };
    let mut offers = offers.into_iter();
    let _ = writeln!(
        out,
        "  {:<11} {:<9} {:<10} {:<36} {:<32} {accepted}",
        r.code,
        board::duration(r.age_secs),
        status,
        level,
        offers.next().unwrap_or_else(|| "nobody yet".into()),
    );
    for more in offers {
        let _ = writeln!(out, "  {:<11} {:<9} {:<10} {:<36} {more}", "", "", "", "");
    }
}
