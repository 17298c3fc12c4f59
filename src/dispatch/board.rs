//! The case board: what operators and coordinators may see of the cases —
//! `hotline cases`, the admin listener's status page and `/cases.json`, and
//! the case gauges.
//!
//! A [`CaseRow`] is built from a case's *anonymous* fields only: its code,
//! city, times and dispatch history (lawyers' roster ids and names). It
//! has no field for the caller's number, the callback number, the location
//! or any text she typed, so nothing that renders a row can show them.
//!
//! [`CaseRow::of`] and [`OpenGauges::of`] are pure; [`collect`] reads the
//! store, bounded by [`MAX_READ`] case reads per call.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lifecycle::Status;
use super::roster::Roster;
use crate::case::CaseData;
use crate::privacy::Privacy;
use crate::store::{BUCKETS, CODE_QUARANTINE_MS, Store, StoreError};

/// How far back `--all` looks: cases opened, accepted or closed in the
/// last 72 hours (as long as a closed case's code stays reserved).
pub const RECENT_MS: u64 = CODE_QUARANTINE_MS;

/// Most cases read from the store by one [`collect`] (every bucket
/// together): the cost of a page view, a CLI call or a gauge refresh is
/// bounded whatever the store holds. Open cases are far fewer; `--all`
/// reads closed ones too, and says when it stopped at the bound.
pub const MAX_READ: usize = 5000;

/// One offer of a case, as the board shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferRow {
    /// The lawyer's roster id.
    pub lawyer: String,
    /// Her name in the roster (`None`: no longer in it).
    pub name: Option<String>,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
    /// The chain level, from 1.
    pub level: u32,
    /// The pass through the chain, from 1.
    pub pass: u32,
    /// Whether she declined it (or it was never delivered).
    pub declined: bool,
    /// Whether it was never delivered to her: counted as declined.
    #[serde(default)]
    pub undelivered: bool,
}

/// One case, as the board shows it: nothing that identifies the woman.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseRow {
    /// The short code lawyers answer with; a case with an alias shows
    /// both (`8516/2356`, [`crate::store::named_code`]).
    pub code: String,
    /// The city id.
    pub city: String,
    /// `open` (nobody has accepted), `accepted` or `closed`.
    pub status: Status,
    /// When it opened (ms).
    pub opened_at_ms: u64,
    /// Seconds since it opened, at the board's instant.
    pub age_secs: u64,
    /// The current chain level, from 1.
    pub level: u32,
    /// What that level asks (`on_call`, `next_on_call`, `team`,
    /// `coordinator`), when the roster knows the city.
    pub level_kind: Option<String>,
    /// The current pass through the chain, from 1.
    pub pass: u32,
    /// How many passes the city's chain makes in all, when known.
    pub passes: Option<u32>,
    /// Every offer, in order.
    pub offers: Vec<OfferRow>,
    /// Who accepted (roster id).
    pub accepted_by: Option<String>,
    /// Her name in the roster.
    pub accepted_by_name: Option<String>,
    /// Seconds from opening to acceptance.
    pub accept_secs: Option<u64>,
    /// When it closed (ms).
    pub closed_at_ms: Option<u64>,
    /// Every pass of the chain went unanswered.
    pub exhausted: bool,
}

impl CaseRow {
    /// The row of `case` (code `code`) at `now_ms`; `roster` names the
    /// lawyers and the chain levels.
    pub fn of(case: &CaseData, code: &str, roster: Option<&Roster>, now_ms: u64) -> CaseRow {
        let d = &case.dispatch;
        let name = |id: &str| roster.and_then(|r| r.lawyer(id)).map(|l| l.name.clone());
        let chain = roster.and_then(|r| r.chain(&case.city));
        CaseRow {
            code: code.to_owned(),
            city: case.city.clone(),
            status: d.status,
            opened_at_ms: case.opened_at_ms,
            age_secs: now_ms.saturating_sub(case.opened_at_ms) / 1000,
            level: d.level + 1,
            level_kind: chain
                .and_then(|c| c.levels.get(d.level as usize))
                .map(|l| l.kind.as_str().to_owned()),
            pass: d.round + 1,
            passes: chain.map(|c| c.repeats + 1),
            offers: d
                .offers
                .iter()
                .map(|o| OfferRow {
                    lawyer: o.lawyer.clone(),
                    name: name(&o.lawyer),
                    at_ms: o.at_ms,
                    level: o.level + 1,
                    pass: o.round + 1,
                    declined: o.declined,
                    undelivered: o.undelivered,
                })
                .collect(),
            accepted_by: d.accepted_by.clone(),
            accepted_by_name: d.accepted_by.as_deref().and_then(name),
            accept_secs: d
                .accepted_at_ms
                .map(|a| a.saturating_sub(case.opened_at_ms) / 1000),
            closed_at_ms: d.closed_at_ms,
            exhausted: d.exhausted,
        }
    }

    /// Whether it belongs on a board of open cases (`all` false) or of the
    /// last [`RECENT_MS`] (`all` true: open, or opened, accepted or closed
    /// since then).
    fn shown(&self, all: bool, accepted_at_ms: Option<u64>, now_ms: u64) -> bool {
        if self.status != Status::Closed {
            return true;
        }
        let since = now_ms.saturating_sub(RECENT_MS);
        all && [Some(self.opened_at_ms), accepted_at_ms, self.closed_at_ms]
            .into_iter()
            .flatten()
            .any(|t| t >= since)
    }
}

/// Which cases to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Closed cases of the last 72 hours too.
    #[serde(default)]
    pub all: bool,
    /// Only this city.
    #[serde(default)]
    pub city: Option<String>,
}

/// The cases a filter selects, at an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Board {
    /// The instant (ms) ages are computed at.
    pub now_ms: u64,
    /// What was asked for.
    pub filter: Filter,
    /// By city, then oldest first.
    pub cases: Vec<CaseRow>,
    /// Reading stopped at [`MAX_READ`] cases: some may be missing.
    pub truncated: bool,
    /// Cases that could not be opened (wrong key, damaged), skipped.
    pub unreadable: usize,
}

/// What the status page, `hotline cases` and the runbook say of cases that
/// cannot be opened: `{n}` of them.
pub fn unreadable_note(n: usize) -> String {
    format!(
        "{n} case(s) in the store cannot be read: sealed under another HOTLINE_PII_KEY (after a rotation, set the old key as HOTLINE_PII_KEY_PREVIOUS) or damaged; no lawyer can be offered them"
    )
}

/// Read the cases `filter` selects from every bucket of `store`.
///
/// # Errors
/// [`StoreError`] when the store fails.
pub async fn collect(
    store: &dyn Store,
    privacy: &Privacy,
    roster: Option<&Roster>,
    filter: &Filter,
    now_ms: u64,
) -> Result<Board, StoreError> {
    let mut board = Board {
        now_ms,
        filter: filter.clone(),
        cases: Vec::new(),
        truncated: false,
        unreadable: 0,
    };
    let mut read = 0;
    'buckets: for bucket in 0..BUCKETS {
        for id in store.case_ids(bucket, !filter.all).await? {
            if read == MAX_READ {
                board.truncated = true;
                break 'buckets;
            }
            read += 1;
            // The embedded store answers without waiting: thousands of
            // reads and decryptions in a row would hold this worker thread
            // (and the requests queued on it) for tens of ms.
            if read % 64 == 0 {
                tokio::task::yield_now().await;
            }
            let Some(rec) = store.case(bucket, &id).await? else {
                continue;
            };
            let Ok(case) = privacy.open_json::<CaseData>(&rec.data) else {
                board.unreadable += 1;
                continue;
            };
            if filter.city.as_ref().is_some_and(|c| *c != case.city) {
                continue;
            }
            let row = CaseRow::of(&case, &rec.named_code(), roster, now_ms);
            if row.shown(filter.all, case.dispatch.accepted_at_ms, now_ms) {
                board.cases.push(row);
            }
        }
    }
    board
        .cases
        .sort_by(|a, b| (&a.city, a.opened_at_ms).cmp(&(&b.city, b.opened_at_ms)));
    Ok(board)
}

/// What the case gauges show, computed from a board of open cases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenGauges {
    /// Cases not closed, by city and level (`accepted` for a case a lawyer
    /// has; else the kind of the chain level it is at, `unknown` when the
    /// roster does not know the city).
    pub open: BTreeMap<(String, String), i64>,
    /// Seconds the oldest case nobody has accepted has waited, by city.
    pub oldest_unaccepted_secs: BTreeMap<String, i64>,
}

/// The `level` label of a case a lawyer has accepted.
pub const ACCEPTED: &str = "accepted";

impl OpenGauges {
    /// The gauges of `rows` (the closed ones are ignored).
    pub fn of(rows: &[CaseRow]) -> OpenGauges {
        let mut g = OpenGauges::default();
        for r in rows.iter().filter(|r| r.status != Status::Closed) {
            let level = if r.status == Status::Accepted {
                ACCEPTED.to_owned()
            } else {
                r.level_kind.clone().unwrap_or_else(|| "unknown".into())
            };
            *g.open.entry((r.city.clone(), level)).or_default() += 1;
            if r.status == Status::Open {
                let age = i64::try_from(r.age_secs).unwrap_or(i64::MAX);
                let oldest = g.oldest_unaccepted_secs.entry(r.city.clone()).or_default();
                *oldest = (*oldest).max(age);
            }
        }
        g
    }
}

/// A duration for people: `45 s`, `7 min`, `2 h 05 min`, `3 d 4 h`.
pub fn duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => format!("{} h {:02} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} d {} h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// An instant (ms since the Unix epoch); out of range: the epoch.
pub fn timestamp(ms: u64) -> jiff::Timestamp {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// An instant as `2026-12-01 10:00 UTC`.
pub fn utc(ms: u64) -> String {
    timestamp(ms).strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// The roster's cities that are not routes to another city, sorted.
pub fn full_cities(roster: &Roster) -> Vec<&str> {
    roster
        .city_ids()
        .into_iter()
        .filter(|id| roster.city(id).is_some_and(|c| c.id == *id))
        .collect()
}

/// Read the open cases and set the case gauges (`hotline_cases_open`,
/// `hotline_case_oldest_unaccepted_seconds`, `hotline_cases_unreadable`);
/// the timer worker calls it
/// with the rest of its refresh, every 10 s — never a scrape. Costs one
/// set read per bucket and one read per open case (at most [`MAX_READ`]).
/// On a store failure the gauges keep their last values.
pub async fn refresh_gauges(d: &super::Dispatcher) {
    let deps = d.deps();
    let now = deps.clock.now_ms();
    let filter = Filter::default();
    match collect(
        deps.store.as_ref(),
        &deps.privacy,
        Some(&d.roster),
        &filter,
        now,
    )
    .await
    {
        Ok(board) => {
            deps.metrics.set_open_cases(&OpenGauges::of(&board.cases));
            deps.metrics
                .cases_unreadable
                .set(i64::try_from(board.unreadable).unwrap_or(i64::MAX));
        }
        Err(e) => tracing::debug!(error = %e, "case gauges not refreshed"),
    }
}

#[cfg(test)]
mod tests;
