//! Reading and validating the roster file and the lawyers' phone numbers.
//!
//! Every problem names its file and key (`config/roster.toml:
//! rotations[0].lawyers[2] = "zed": no such lawyer`). A phone number never
//! appears in a problem: only the lawyer's id and where the number was
//! looked for.

mod lawyers;
mod shifts;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde::Deserialize;

use super::{City, Escalation, LawyerId, Level, LevelKind, MAX_REPEATS, Roster, Route};
use crate::config::Env;
use crate::problem::{Problem, quoted};
use lawyers::lawyers;
use shifts::{local_value, overrides, rotations};

/// Language codes names and lawyers may use.
const LANGUAGES: [&str; 5] = ["ru", "ky", "uk", "en", "ka"];
/// Longest wait of a level, and latest fallback message, in minutes.
const MAX_MINUTES: i64 = 24 * 60;

// ---------------------------------------------------------------- raw file

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoster {
    phones_file: Option<String>,
    #[serde(default)]
    cities: BTreeMap<String, RawCity>,
    #[serde(default)]
    lawyers: BTreeMap<String, RawLawyer>,
    #[serde(default)]
    rotations: Vec<RawRotation>,
    #[serde(default)]
    overrides: Vec<RawOverride>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCity {
    #[serde(default)]
    names: BTreeMap<String, String>,
    route_to: Option<String>,
    time_zone: Option<String>,
    country: Option<String>,
    coordinator: Option<String>,
    team: Option<Vec<String>>,
    escalation: Option<RawEscalation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalation {
    #[serde(default)]
    levels: Vec<RawLevel>,
    #[serde(default)]
    repeats: i64,
    unanswered_after_minutes: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLevel {
    kind: String,
    wait_minutes: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLawyer {
    name: Option<String>,
    phone_env: Option<String>,
    #[serde(default)]
    languages: Vec<String>,
    #[serde(default)]
    cities: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRotation {
    city: String,
    start: Option<toml::Value>,
    shift_hours: Option<i64>,
    daily: Option<String>,
    days: Option<Vec<String>>,
    end: Option<toml::Value>,
    #[serde(default)]
    lawyers: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)] // for people reading the file
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverride {
    city: String,
    start: toml::Value,
    end: toml::Value,
    #[serde(default)]
    lawyers: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)] // for people reading the file
    note: Option<String>,
}

// ---------------------------------------------------------------- helpers

fn id_ok(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn minutes(m: i64) -> Duration {
    Duration::from_secs(u64::try_from(m.max(0)).unwrap_or(0) * 60)
}

// ---------------------------------------------------------------- loader

struct Loader<'a> {
    file: &'a str,
    problems: Vec<Problem>,
}

impl Loader<'_> {
    fn error(&mut self, key: impl Into<String>, msg: impl Into<String>) {
        self.problems.push(Problem::error(self.file, key, msg));
    }

    fn warning(&mut self, key: impl Into<String>, msg: impl Into<String>) {
        self.problems.push(Problem::warning(self.file, key, msg));
    }

    /// Check a list of lawyer ids; returns the known ones, in order.
    fn lawyer_list(
        &mut self,
        key: &str,
        ids: &[String],
        known: &BTreeMap<String, RawLawyer>,
    ) -> Vec<LawyerId> {
        let mut out = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            if known.contains_key(id) {
                out.push(LawyerId(id.clone()));
            } else {
                self.error(
                    quoted(&format!("{key}[{i}]"), id),
                    "no such lawyer in [lawyers]",
                );
            }
        }
        out
    }

    /// Check one lawyer id.
    fn lawyer_ref(
        &mut self,
        key: &str,
        id: &str,
        known: &BTreeMap<String, RawLawyer>,
    ) -> Option<LawyerId> {
        if known.contains_key(id) {
            Some(LawyerId(id.to_owned()))
        } else {
            self.error(quoted(key, id), "no such lawyer in [lawyers]");
            None
        }
    }

    fn names(&mut self, key: &str, names: &BTreeMap<String, String>) {
        for (lang, name) in names {
            if !LANGUAGES.contains(&lang.as_str()) {
                self.error(
                    format!("{key}.{lang}"),
                    format!("unknown language (known: {})", LANGUAGES.join(", ")),
                );
            }
            if name.trim().is_empty() {
                self.error(format!("{key}.{lang}"), "name is empty");
            }
        }
    }

    fn local_time(&mut self, key: &str, v: &toml::Value) -> Option<(DateTime, bool)> {
        local_value(v)
            .map_err(|msg| self.error(quoted(key, &show(v)), msg))
            .ok()
    }
}

/// Load and validate the roster at `path`; lawyers' numbers come from `env`
/// and the phones file it names (relative to the roster's folder).
///
/// # Errors
/// Every problem found, when at least one is an error (an unreadable file
/// included). `Ok` carries the warnings.
pub fn load(path: &Path, env: &dyn Env) -> Result<(Roster, Vec<Problem>), Vec<Problem>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![Problem::error(&file, "", format!("cannot read: {e}"))])?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    parse(&text, &file, base, env)
}

/// Parse and validate roster text (`file` names it in problems; the phones
/// file resolves against `base`).
///
/// # Errors
/// As [`load`].
pub fn parse(
    text: &str,
    file: &str,
    base: &Path,
    env: &dyn Env,
) -> Result<(Roster, Vec<Problem>), Vec<Problem>> {
    let raw: RawRoster = toml::from_str(text).map_err(|e| {
        let mut msg = e.message().to_owned();
        if msg.contains("unknown field `phone`") {
            msg.push_str(" (numbers never go in this file: use phone_env or phones_file)");
        }
        let key = e.span().map_or(String::new(), |span| {
            let line = text
                .get(..span.start.min(text.len()))
                .map_or(0, |t| t.matches('\n').count())
                + 1;
            format!("line {line}")
        });
        vec![Problem::error(file, key, msg)]
    })?;
    let mut l = Loader {
        file,
        problems: Vec::new(),
    };
    let lawyers = lawyers(&mut l, &raw, base, env);
    let (mut cities, routes) = cities(&mut l, &raw);
    rotations(&mut l, &raw, &mut cities);
    overrides(&mut l, &raw, &mut cities);
    cross_checks(&mut l, &raw, &cities);

    if l.problems.iter().any(Problem::is_error) {
        return Err(l.problems);
    }
    let by_phone = lawyers
        .values()
        .map(|x| (x.phone.clone(), x.id.clone()))
        .collect();
    Ok((
        Roster {
            source: file.to_owned(),
            cities,
            routes,
            lawyers,
            by_phone,
        },
        l.problems,
    ))
}

// ---------------------------------------------------------------- cities

fn cities(
    l: &mut Loader<'_>,
    raw: &RawRoster,
) -> (BTreeMap<String, City>, BTreeMap<String, Route>) {
    let mut cities = BTreeMap::new();
    let mut routes = BTreeMap::new();
    if raw.cities.is_empty() {
        l.error("cities", "no cities: add a [cities.ID] table for each");
    }
    for (id, c) in &raw.cities {
        let key = format!("cities.{id}");
        if !id_ok(id) {
            l.error(
                key.clone(),
                "an id uses lowercase letters, digits, `_` or `-` (the flow's `city` value)",
            );
        }
        l.names(&format!("{key}.names"), &c.names);
        if let Some(to) = &c.route_to {
            let rk = format!("{key}.route_to");
            match raw.cities.get(to) {
                None => l.error(quoted(&rk, to), "no such city in [cities]"),
                Some(t) if t.route_to.is_some() => l.error(
                    quoted(&rk, to),
                    "routes to a city that itself routes on: route to a city with its own lawyers",
                ),
                Some(_) => {}
            }
            let extra = [
                ("time_zone", c.time_zone.is_some()),
                ("country", c.country.is_some()),
                ("coordinator", c.coordinator.is_some()),
                ("team", c.team.is_some()),
                ("escalation", c.escalation.is_some()),
            ];
            for (field, present) in extra {
                if present {
                    l.error(
                        format!("{key}.{field}"),
                        format!("a city with route_to takes this from cities.{to}: remove it"),
                    );
                }
            }
            routes.insert(
                id.clone(),
                Route {
                    to: to.clone(),
                    names: c.names.clone(),
                },
            );
            continue;
        }
        if let Some(city) = full_city(l, raw, id, c) {
            cities.insert(id.clone(), city);
        }
    }
    (cities, routes)
}

fn full_city(l: &mut Loader<'_>, raw: &RawRoster, id: &str, c: &RawCity) -> Option<City> {
    let key = format!("cities.{id}");
    if c.names.is_empty() {
        l.error(
            format!("{key}.names"),
            "missing: the city's name per language, like { ru = \"Ош\", en = \"Osh\" }",
        );
    }
    let zone = match &c.time_zone {
        None => {
            l.error(
                format!("{key}.time_zone"),
                "missing: an IANA time zone like \"Asia/Bishkek\" or \"Europe/Kyiv\"",
            );
            None
        }
        Some(z) => match TimeZone::get(z) {
            Ok(tz) => Some((z.clone(), tz)),
            Err(_) => {
                l.error(
                    quoted(&format!("{key}.time_zone"), z),
                    "unknown time zone: use an IANA name like \"Asia/Bishkek\" or \"Europe/Kyiv\"",
                );
                None
            }
        },
    };
    let country = match &c.country {
        None => {
            l.error(
                format!("{key}.country"),
                "missing: the ISO code, like \"KG\"",
            );
            None
        }
        Some(iso) => {
            let found = crate::phone::country_by_iso(iso);
            if found.is_none() {
                let known: Vec<&str> = crate::phone::COUNTRIES.iter().map(|c| c.iso).collect();
                l.error(
                    quoted(&format!("{key}.country"), iso),
                    format!("unknown country (known: {})", known.join(", ")),
                );
            }
            found
        }
    };
    let coordinator = match &c.coordinator {
        None => {
            l.error(
                format!("{key}.coordinator"),
                "missing: the lawyer id of the city's coordinator",
            );
            None
        }
        Some(x) => l.lawyer_ref(&format!("{key}.coordinator"), x, &raw.lawyers),
    };
    let team = match &c.team {
        None => {
            l.error(
                format!("{key}.team"),
                "missing: the lawyer ids of the city's team",
            );
            Vec::new()
        }
        Some(ids) => {
            let team = l.lawyer_list(&format!("{key}.team"), ids, &raw.lawyers);
            let mut seen = BTreeSet::new();
            for (i, x) in ids.iter().enumerate() {
                if !seen.insert(x) {
                    l.warning(quoted(&format!("{key}.team[{i}]"), x), "listed twice");
                }
            }
            team
        }
    };
    let escalation = escalation(l, &key, c.escalation.as_ref(), &team);
    let (time_zone_name, time_zone) = zone?;
    Some(City {
        id: id.to_owned(),
        names: c.names.clone(),
        time_zone_name,
        time_zone,
        country: country?,
        coordinator: coordinator?,
        team,
        escalation: escalation?,
        rotations: Vec::new(),
        overrides: Vec::new(),
    })
}

fn escalation(
    l: &mut Loader<'_>,
    city_key: &str,
    raw: Option<&RawEscalation>,
    team: &[LawyerId],
) -> Option<Escalation> {
    let key = format!("{city_key}.escalation");
    let known: Vec<&str> = LevelKind::ALL.iter().map(|(n, _)| *n).collect();
    let Some(e) = raw else {
        l.error(
            key,
            format!(
                "missing: add levels ({}), repeats and unanswered_after_minutes",
                known.join(", ")
            ),
        );
        return None;
    };
    if e.levels.is_empty() {
        l.error(
            format!("{key}.levels"),
            "list at least one level, like { kind = \"on_call\", wait_minutes = 3 }",
        );
    }
    let mut levels = Vec::new();
    for (i, lv) in e.levels.iter().enumerate() {
        let lk = format!("{key}.levels[{i}]");
        let kind = LevelKind::ALL
            .iter()
            .find(|(n, _)| *n == lv.kind)
            .map(|(_, k)| *k);
        if kind.is_none() {
            l.error(
                quoted(&format!("{lk}.kind"), &lv.kind),
                format!("unknown kind (known: {})", known.join(", ")),
            );
        }
        if kind == Some(LevelKind::Team) && team.is_empty() {
            l.warning(
                quoted(&format!("{lk}.kind"), &lv.kind),
                "the team is empty: this level reaches nobody",
            );
        }
        let wait = match lv.wait_minutes {
            None => {
                l.error(
                    format!("{lk}.wait_minutes"),
                    "missing: minutes to wait for an answer before the next level",
                );
                None
            }
            Some(m) if !(1..=MAX_MINUTES).contains(&m) => {
                l.error(
                    format!("{lk}.wait_minutes = {m}"),
                    format!("must be between 1 and {MAX_MINUTES}"),
                );
                None
            }
            Some(m) => Some(minutes(m)),
        };
        if let (Some(kind), Some(wait)) = (kind, wait) {
            levels.push(Level { kind, wait });
        }
    }
    let repeats = match u32::try_from(e.repeats) {
        Ok(r) if r <= MAX_REPEATS => Some(r),
        _ => {
            l.error(
                format!("{key}.repeats = {}", e.repeats),
                format!("must be between 0 and {MAX_REPEATS}"),
            );
            None
        }
    };
    let unanswered = match e.unanswered_after_minutes {
        None => {
            l.error(
                format!("{key}.unanswered_after_minutes"),
                "missing: minutes after which she is sent the fallback number",
            );
            None
        }
        Some(m) if !(1..=MAX_MINUTES).contains(&m) => {
            l.error(
                format!("{key}.unanswered_after_minutes = {m}"),
                format!("must be between 1 and {MAX_MINUTES}"),
            );
            None
        }
        Some(m) => Some(minutes(m)),
    };
    let out = Escalation {
        levels,
        repeats: repeats?,
        unanswered_after: unanswered?,
    };
    if out.levels.len() != e.levels.len() || out.levels.is_empty() {
        return None;
    }
    if out.unanswered_after > out.total() {
        l.warning(
            format!(
                "{key}.unanswered_after_minutes = {}",
                out.unanswered_after.as_secs() / 60
            ),
            format!(
                "longer than the whole chain ({} minutes with repeats): she would wait with nobody being asked",
                out.total().as_secs() / 60
            ),
        );
    }
    Some(out)
}

// ---------------------------------------------------------------- cross checks

/// Warnings about consistency between cities, lawyers and rotations.
fn cross_checks(l: &mut Loader<'_>, raw: &RawRoster, cities: &BTreeMap<String, City>) {
    for (id, c) in cities {
        if c.rotations.is_empty() && c.overrides.is_empty() {
            l.warning(
                format!("cities.{id}"),
                "no [[rotations]] for this city: nobody is ever on call",
            );
        }
    }
    for (i, r) in raw.rotations.iter().enumerate() {
        let Some(team) = raw.cities.get(&r.city).and_then(|c| c.team.as_ref()) else {
            continue;
        };
        for (j, x) in r.lawyers.iter().enumerate() {
            if raw.lawyers.contains_key(x) && !team.contains(x) {
                l.warning(
                    quoted(&format!("rotations[{i}].lawyers[{j}]"), x),
                    format!(
                        "not in cities.{}.team: the team level will not reach her",
                        r.city
                    ),
                );
            }
        }
    }
    for (id, c) in &raw.cities {
        for x in c.team.iter().flatten() {
            if let Some(lawyer) = raw.lawyers.get(x)
                && !lawyer.cities.contains(id)
            {
                l.warning(
                    format!("lawyers.{x}.cities"),
                    format!("she is in cities.{id}.team but {id:?} is not in her cities"),
                );
            }
        }
    }
}
