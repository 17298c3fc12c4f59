//! The on-call roster: cities, lawyers, rotations, overrides and each city's
//! escalation chain, loaded from `config/roster.toml` (documented in
//! `docs/roster.md`).
//!
//! Everything after [`load()`] is a pure function of the roster and an instant
//! passed in: nothing here reads the clock, does I/O or logs. Resolution is
//! correct across daylight-saving changes: shifts are laid out on the city's
//! wall clock, not counted in elapsed hours, and an override always wins
//! over the rotations for its whole window.
//!
//! Lawyers' phone numbers come from environment variables or a phones file
//! kept out of git; they are [`PhoneNumber`]s (redacted `Debug`, no
//! `Display`) and never appear in a [`Problem`](crate::problem::Problem).
//!
//! A city may be a *route* to another (`[cities.other] route_to = "bishkek"`),
//! by the caller's country where it says so (`route_by_country = { UA =
//! "poltava" }`): dispatch asks [`Roster::resolve`] first; every other query
//! about a route answers for its default target.

mod load;
mod production;
mod shift;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

pub use load::{load, parse};

use crate::phone::{Country, PhoneNumber};
use shift::{Override, Rotation};

/// Longest window [`Roster::schedule`] and [`Roster::gaps`] report on (a
/// leap year); longer requests are cut to this.
pub const MAX_REPORT_HOURS: u32 = 366 * 24;

/// How far ahead [`Roster::on_call_at`] looks for the next lawyer on call.
pub const NEXT_HORIZON_HOURS: i64 = 35 * 24;

/// Bound on change points walked in one query, whatever the roster's shape.
const MAX_STEPS: usize = 200_000;

/// A lawyer's id in the roster (`aida`). Lowercase letters, digits, `_`, `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LawyerId(String);

impl LawyerId {
    /// The id as written in the roster.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LawyerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for LawyerId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for LawyerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for LawyerId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for LawyerId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// One lawyer. `Debug` never shows the number.
#[derive(Debug, Clone)]
pub struct Lawyer {
    /// The id other entries refer to.
    pub id: LawyerId,
    /// The name coordinators and other lawyers know her by.
    pub name: String,
    /// Where offers are sent; replies are matched to her by it.
    pub phone: PhoneNumber,
    /// Languages she speaks (`ru`, `ky`, `uk`, `en`, `ka`): offers are
    /// written in the first one.
    pub languages: Vec<String>,
    /// City ids she works in.
    pub cities: Vec<String>,
}

/// What one level of an escalation chain offers the case to.
///
/// `docs/roster.md` lists the same kinds, with the same meaning (a test
/// holds the two together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelKind {
    /// The lawyer on call now (`on_call`): the first of [`Roster::on_call`].
    /// In a gap nobody, so the level is skipped: it never reaches ahead to
    /// the next shift.
    OnCall,
    /// The next lawyer in line (`next_on_call`): the first of
    /// [`Roster::next_on_call`] — a second lawyer on call now, else whoever's
    /// shift starts next. In a gap, the lawyer whose shift starts next: a
    /// city that lists this level chooses to wake her.
    NextOnCall,
    /// Everyone in the city's team at once (`team`).
    Team,
    /// The city's coordinator (`coordinator`).
    Coordinator,
}

impl LevelKind {
    /// Every kind with its name in the roster file.
    pub const ALL: [(&'static str, LevelKind); 4] = [
        ("on_call", LevelKind::OnCall),
        ("next_on_call", LevelKind::NextOnCall),
        ("team", LevelKind::Team),
        ("coordinator", LevelKind::Coordinator),
    ];

    /// The name in the roster file.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("on_call", |(n, _)| n)
    }
}

/// One level of an escalation chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// Who the case is offered to.
    pub kind: LevelKind,
    /// How long to wait for an answer before the next level.
    pub wait: Duration,
}

/// How a city escalates a case nobody has accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    /// The levels, in order (never empty).
    pub levels: Vec<Level>,
    /// How many more times the whole chain runs after the first pass
    /// (0 = once; at most [`MAX_REPEATS`]).
    pub repeats: u32,
    /// How long after the case opened the woman is sent the fallback-number
    /// message if nobody has accepted.
    pub unanswered_after: Duration,
}

/// Upper bound on [`Escalation::repeats`].
pub const MAX_REPEATS: u32 = 10;

impl Escalation {
    /// The time one pass of the chain takes (the sum of its waits).
    pub fn pass(&self) -> Duration {
        self.levels.iter().map(|l| l.wait).sum()
    }

    /// The time every pass together takes, after which escalation stops.
    pub fn total(&self) -> Duration {
        self.pass() * (self.repeats + 1)
    }
}

/// A city whose cases the roster routes: its zone, people and rules.
#[derive(Debug, Clone)]
pub struct City {
    /// The id the flow sets (`city = "bishkek"`).
    pub id: String,
    /// Its name per language (`ru`, `ky`, `uk`, `en`, …).
    pub names: BTreeMap<String, String>,
    /// Its IANA time zone name (`Asia/Bishkek`).
    pub time_zone_name: String,
    /// Its time zone: rotation and override times are local to it.
    pub time_zone: TimeZone,
    /// The country it is in.
    pub country: &'static Country,
    /// Who the `coordinator` level reaches.
    pub coordinator: LawyerId,
    /// Who the `team` level reaches.
    pub team: Vec<LawyerId>,
    /// What happens when nobody accepts.
    pub escalation: Escalation,
    /// Rotations, in file order (the first one's lawyer is primary when
    /// several are on call at once).
    rotations: Vec<Rotation>,
    /// Overrides, sorted by start, never overlapping.
    overrides: Vec<Override>,
}

impl City {
    /// The city's name in `lang`, else in English, else any, else its id.
    pub fn name(&self, lang: &str) -> &str {
        name_in(&self.names, lang).unwrap_or(&self.id)
    }

    /// Whether an override decides who is on call at `t`.
    fn overridden(&self, t: Timestamp) -> bool {
        self.overrides.iter().any(|o| o.start <= t && t < o.end)
    }

    /// Who is on call at `t`: an override's lawyers, else each rotation's.
    fn now(&self, t: Timestamp) -> Vec<LawyerId> {
        if let Some(o) = self.overrides.iter().find(|o| o.start <= t && t < o.end) {
            return dedup(o.lawyers.iter());
        }
        dedup(
            self.rotations
                .iter()
                .filter_map(|r| r.shift_at(&self.time_zone, t).and_then(|k| r.lawyer(k))),
        )
    }

    /// The first instant after `t` at which who is on call may change.
    fn next_change(&self, t: Timestamp) -> Option<Timestamp> {
        let rotations = self
            .rotations
            .iter()
            .filter_map(|r| r.next_boundary(&self.time_zone, t));
        let overrides = self
            .overrides
            .iter()
            .flat_map(|o| [o.start, o.end])
            .filter(|b| *b > t);
        rotations.chain(overrides).min()
    }
}

fn name_in<'a>(names: &'a BTreeMap<String, String>, lang: &str) -> Option<&'a str> {
    names
        .get(lang)
        .or_else(|| names.get("en"))
        .or_else(|| names.values().next())
        .map(String::as_str)
}

fn dedup<'a>(ids: impl Iterator<Item = &'a LawyerId>) -> Vec<LawyerId> {
    let mut out: Vec<LawyerId> = Vec::new();
    for id in ids {
        if !out.contains(id) {
            out.push(id.clone());
        }
    }
    out
}

/// A city id that answers for another city (`other` → `bishkek`), which
/// may depend on the caller's country (`other` → `poltava` for `UA`).
#[derive(Debug, Clone)]
struct Route {
    /// The city it routes to (always a full city) for callers from a
    /// country not in `by_country`.
    to: String,
    /// The city it routes to by the caller's ISO country code.
    by_country: BTreeMap<String, String>,
    /// Its own names, for messages (`Other city`).
    names: BTreeMap<String, String>,
}

/// Who is on call at an instant, and who comes next.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OnCall {
    /// On call now, primary first (empty in a gap).
    pub now: Vec<LawyerId>,
    /// Whoever comes on call next and is not in `now` (empty when nobody
    /// new comes on within [`NEXT_HORIZON_HOURS`]).
    pub next: Vec<LawyerId>,
    /// When `next` comes on call.
    pub next_from: Option<Timestamp>,
}

/// A stretch of time with the same people on call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// First instant.
    pub start: Timestamp,
    /// First instant after it.
    pub end: Timestamp,
    /// On call throughout, primary first (empty: nobody).
    pub lawyers: Vec<LawyerId>,
    /// Whether an override decides it (not the rotations).
    pub overridden: bool,
}

/// The loaded, validated roster.
#[derive(Debug, Clone)]
pub struct Roster {
    /// The file it came from, as named.
    pub source: String,
    cities: BTreeMap<String, City>,
    routes: BTreeMap<String, Route>,
    lawyers: BTreeMap<LawyerId, Lawyer>,
    by_phone: HashMap<PhoneNumber, LawyerId>,
    /// Gaps the roster says are known (`[[acknowledged_gaps]]`).
    pub acknowledged_gaps: Vec<AcknowledgedGap>,
}

/// Hours a city is known to have nobody on call, and why
/// (`[[acknowledged_gaps]]`): `hotline check` does not fail on a gap one
/// of these covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcknowledgedGap {
    /// The city.
    pub city: String,
    /// From.
    pub start: Timestamp,
    /// Until.
    pub end: Timestamp,
    /// Why, as written.
    pub reason: String,
}

impl Roster {
    /// The city `id` answers for (following a route), if the roster has it.
    pub fn city(&self, id: &str) -> Option<&City> {
        match self.routes.get(id) {
            Some(route) => self.cities.get(&route.to),
            None => self.cities.get(id),
        }
    }

    /// The city whose lawyers answer a case for city `id` from a caller in
    /// `country` (ISO code): a route's target for her country, or `id`.
    /// Every other query takes the id this returns.
    pub fn resolve<'a>(&'a self, id: &'a str, country: Option<&str>) -> &'a str {
        match self.routes.get(id) {
            Some(route) => country
                .and_then(|c| route.by_country.get(c))
                .unwrap_or(&route.to),
            None => id,
        }
    }

    /// Whether `id` is answered by another city's lawyers (`route_to`).
    pub fn is_route(&self, id: &str) -> bool {
        self.routes.contains_key(id)
    }

    /// Whether route `id` names a city for callers from `country`.
    pub fn routes_country(&self, id: &str, country: &str) -> bool {
        self.routes
            .get(id)
            .is_some_and(|r| r.by_country.contains_key(country))
    }

    /// Every city id the roster accepts (routes included), sorted.
    pub fn city_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .cities
            .keys()
            .chain(self.routes.keys())
            .map(String::as_str)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The name of city `id` in `lang` (a route's own name when it has one).
    pub fn city_name(&self, id: &str, lang: &str) -> Option<&str> {
        if let Some(name) = self.routes.get(id).and_then(|r| name_in(&r.names, lang)) {
            return Some(name);
        }
        self.city(id).map(|c| c.name(lang))
    }

    /// Everyone on call in `city` at `at`, primary first: empty in a gap
    /// and for an unknown city. Never anyone whose shift has not started
    /// (see [`Roster::next_on_call`] for them).
    pub fn on_call(&self, city: &str, at: Timestamp) -> Vec<LawyerId> {
        self.city(city).map(|c| c.now(at)).unwrap_or_default()
    }

    /// The line the `next_on_call` level asks from, in order: everyone on
    /// call in `city` at `at` after the primary (an override's backup, a
    /// second rotation), then whoever comes on call next (see
    /// [`OnCall::next`]). In a gap, just whoever comes on call next.
    pub fn next_on_call(&self, city: &str, at: Timestamp) -> Vec<LawyerId> {
        let OnCall { now, next, .. } = self.on_call_at(city, at);
        now.into_iter().skip(1).chain(next).collect()
    }

    /// Who is on call in `city` at `at`, and who comes on next.
    pub fn on_call_at(&self, city: &str, at: Timestamp) -> OnCall {
        let Some(c) = self.city(city) else {
            return OnCall::default();
        };
        let now = c.now(at);
        let horizon = at
            .checked_add(jiff::SignedDuration::from_hours(NEXT_HORIZON_HOURS))
            .unwrap_or(Timestamp::MAX);
        let mut cur = at;
        for _ in 0..MAX_STEPS {
            let Some(change) = c.next_change(cur).filter(|t| *t <= horizon) else {
                break;
            };
            let fresh: Vec<LawyerId> = c
                .now(change)
                .into_iter()
                .filter(|l| !now.contains(l))
                .collect();
            if !fresh.is_empty() {
                return OnCall {
                    now,
                    next: fresh,
                    next_from: Some(change),
                };
            }
            cur = change;
        }
        OnCall {
            now,
            ..OnCall::default()
        }
    }

    /// Who is on call in `city` over `hours` from `from` (at most
    /// [`MAX_REPORT_HOURS`]), as consecutive slots covering the whole window:
    /// a new slot wherever who is on call changes, or an override starts or
    /// ends. An unknown city is one slot with nobody.
    pub fn schedule(&self, city: &str, from: Timestamp, hours: u32) -> Vec<Slot> {
        let hours = i64::from(hours.min(MAX_REPORT_HOURS));
        let to = from
            .checked_add(jiff::SignedDuration::from_hours(hours))
            .unwrap_or(Timestamp::MAX);
        let c = self.city(city);
        let mut slots: Vec<Slot> = Vec::new();
        let mut cur = from;
        for _ in 0..MAX_STEPS {
            if cur >= to {
                break;
            }
            let lawyers = c.map(|c| c.now(cur)).unwrap_or_default();
            let overridden = c.is_some_and(|c| c.overridden(cur));
            let end = c.and_then(|c| c.next_change(cur)).map_or(to, |t| t.min(to));
            match slots.last_mut() {
                Some(last) if last.lawyers == lawyers && last.overridden == overridden => {
                    last.end = end;
                }
                _ => slots.push(Slot {
                    start: cur,
                    end,
                    lawyers,
                    overridden,
                }),
            }
            cur = end;
        }
        slots
    }

    /// The acknowledged gap covering all of `start..end` in `city`, if any.
    pub fn acknowledged(
        &self,
        city: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> Option<&AcknowledgedGap> {
        let city = self.routes.get(city).map_or(city, |r| r.to.as_str());
        self.acknowledged_gaps
            .iter()
            .find(|g| g.city == city && g.start <= start && end <= g.end)
    }

    /// Every stretch within `hours` of `from` with nobody on call in `city`
    /// (what `hotline check` reports for the next 14 days).
    pub fn gaps(&self, city: &str, from: Timestamp, hours: u32) -> Vec<(Timestamp, Timestamp)> {
        self.schedule(city, from, hours)
            .into_iter()
            .filter(|s| s.lawyers.is_empty())
            .map(|s| (s.start, s.end))
            .collect()
    }

    /// The team of `city` (empty for an unknown city).
    pub fn team(&self, city: &str) -> &[LawyerId] {
        self.city(city).map_or(&[], |c| &c.team)
    }

    /// The coordinator of `city`.
    pub fn coordinator(&self, city: &str) -> Option<&LawyerId> {
        self.city(city).map(|c| &c.coordinator)
    }

    /// The escalation chain of `city`.
    pub fn chain(&self, city: &str) -> Option<&Escalation> {
        self.city(city).map(|c| &c.escalation)
    }

    /// When a case for a city the roster does not know (a flow version
    /// from before a reload removed it) gives her the fallback number: the
    /// shortest `unanswered_after` of any city (15 minutes with none).
    pub fn shortest_unanswered_after(&self) -> std::time::Duration {
        self.cities
            .values()
            .map(|c| c.escalation.unanswered_after)
            .min()
            .unwrap_or(std::time::Duration::from_secs(15 * 60))
    }

    /// Whether lawyer `id` works in `city` (following a route): the city
    /// is one of her `cities`, or she is in its team or its coordinator.
    /// Only such a lawyer can be put on call there (`COVER`) or be
    /// offered its cases (`ASSIGN`).
    pub fn works_in(&self, id: &str, city: &str) -> bool {
        let Some(c) = self.city(city) else {
            return false;
        };
        self.lawyer(id).is_some_and(|l| l.cities.contains(&c.id))
            || c.team.iter().any(|l| l.as_str() == id)
            || c.coordinator.as_str() == id
    }

    /// A lawyer by id.
    pub fn lawyer(&self, id: &str) -> Option<&Lawyer> {
        self.lawyers.get(id)
    }

    /// Every lawyer, by id.
    pub fn lawyers(&self) -> impl Iterator<Item = &Lawyer> {
        self.lawyers.values()
    }

    /// The lawyer whose number this is (an SMS from her is a command, not a
    /// new conversation).
    pub fn lawyer_by_phone(&self, phone: &PhoneNumber) -> Option<&Lawyer> {
        self.by_phone.get(phone).and_then(|id| self.lawyers.get(id))
    }

    /// Problems for city ids the flows can set but the roster lacks (their
    /// cases would reach nobody); `file` names the flows for the message.
    pub fn check_cities<'a>(
        &self,
        flow_cities: impl IntoIterator<Item = &'a str>,
        file: &str,
    ) -> Vec<crate::problem::Problem> {
        flow_cities
            .into_iter()
            .filter(|c| self.city(c).is_none())
            .map(|c| {
                crate::problem::Problem::error(
                    file,
                    crate::problem::quoted("city", c),
                    format!(
                        "the flows can open a case for this city but {} has no [cities.{c}]",
                        self.source
                    ),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
