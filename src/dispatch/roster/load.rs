//! Reading and validating the roster file and the lawyers' phone numbers.
//!
//! Every problem names its file and key (`config/roster.toml:
//! rotations[0].lawyers[2] = "zed": no such lawyer`). A phone number never
//! appears in a problem: only the lawyer's id and where the number was
//! looked for.

mod cities;
mod lawyers;
mod shifts;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use jiff::civil::DateTime;
use serde::Deserialize;

use super::{City, LawyerId, Roster};
use crate::config::Env;
use crate::problem::{Problem, quoted};
use cities::cities;
use lawyers::lawyers;
use shifts::{local_value, overrides, rotations};

/// Language codes names and lawyers may use.
const LANGUAGES: [&str; 6] = ["ru", "ky", "uk", "en", "uz", "ka"];
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
    route_by_country: Option<BTreeMap<String, String>>,
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
