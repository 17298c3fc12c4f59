//! Tests of the roster: shared fixtures (two cities and a route, lawyers
//! with numbers from the environment) and helpers here; the tests, by topic,
//! in `tests/`.

use std::collections::BTreeMap;
use std::path::Path;

use jiff::civil::DateTime;
use jiff::{SignedDuration, Timestamp, tz::TimeZone};

use super::*;
use crate::problem::Problem;

mod lookups;
mod problems_cities;
mod problems_phones;
mod problems_shifts;
mod props;
mod schedule;
mod shipped;
mod zones;

/// Two cities and a route, lawyers with numbers from the environment, no
/// rotations (tests add their own).
const BASE: &str = r#"
[cities.bishkek]
names = { en = "Bishkek", ru = "Бишкек" }
time_zone = "Asia/Bishkek"
country = "KG"
coordinator = "nurgul"
team = ["aida", "bakyt", "cholpon"]
[cities.bishkek.escalation]
levels = [
  { kind = "on_call", wait_minutes = 3 },
  { kind = "next_on_call", wait_minutes = 4 },
  { kind = "team", wait_minutes = 5 },
  { kind = "coordinator", wait_minutes = 6 },
]
repeats = 1
unanswered_after_minutes = 15

[cities.poltava]
names = { en = "Poltava", uk = "Полтава" }
time_zone = "Europe/Kyiv"
country = "UA"
coordinator = "larysa"
team = ["halyna", "iryna"]
[cities.poltava.escalation]
levels = [{ kind = "on_call", wait_minutes = 5 }, { kind = "team", wait_minutes = 5 }]
unanswered_after_minutes = 10

[cities.other]
names = { en = "Other city" }
route_to = "bishkek"

[lawyers.nurgul]
name = "Nurgul"
languages = ["ru", "ky"]
cities = ["bishkek"]
phone_env = "P_NURGUL"
[lawyers.aida]
name = "Aida"
languages = ["ky", "ru"]
cities = ["bishkek"]
phone_env = "P_AIDA"
[lawyers.bakyt]
name = "Bakyt"
languages = ["ru"]
cities = ["bishkek"]
phone_env = "P_BAKYT"
[lawyers.cholpon]
name = "Cholpon"
languages = ["ky"]
cities = ["bishkek"]
phone_env = "P_CHOLPON"
[lawyers.larysa]
name = "Larysa"
languages = ["uk"]
cities = ["poltava"]
phone_env = "P_LARYSA"
[lawyers.halyna]
name = "Halyna"
languages = ["uk"]
cities = ["poltava"]
phone_env = "P_HALYNA"
[lawyers.iryna]
name = "Iryna"
languages = ["uk", "en"]
cities = ["poltava"]
phone_env = "P_IRYNA"
"#;

/// Bishkek: 24-hour shifts handed over at 09:00 (03:00 UTC), in turn.
const ROT_BISHKEK: &str = r#"
[[rotations]]
city = "bishkek"
start = "2026-03-02 09:00"
shift_hours = 24
lawyers = ["aida", "bakyt", "cholpon"]
"#;

/// Poltava: 12-hour shifts from 08:00; Halyna takes days, Iryna nights.
const ROT_POLTAVA: &str = r#"
[[rotations]]
city = "poltava"
start = "2026-03-02 08:00"
shift_hours = 12
lawyers = ["halyna", "iryna"]
"#;

const PHONES: [(&str, &str); 7] = [
    ("P_NURGUL", "+996 555 000 001"),
    ("P_AIDA", "+996 555 000 011"),
    ("P_BAKYT", "+996 555 000 012"),
    ("P_CHOLPON", "+996 555 000 013"),
    ("P_LARYSA", "+380 50 000 00 01"),
    ("P_HALYNA", "+380 50 000 00 11"),
    ("P_IRYNA", "+380 50 000 00 12"),
];

fn env() -> BTreeMap<&'static str, &'static str> {
    PHONES.iter().copied().collect()
}

fn parse_with(
    text: &str,
    e: &BTreeMap<&str, &str>,
) -> Result<(Roster, Vec<Problem>), Vec<Problem>> {
    parse(text, "config/roster.toml", Path::new("config"), e)
}

fn roster(text: &str) -> Roster {
    match parse_with(text, &env()) {
        Ok((r, _)) => r,
        Err(p) => panic!("{p:#?}"),
    }
}

fn problems_with(text: &str, e: &BTreeMap<&str, &str>) -> Vec<String> {
    match parse_with(text, e) {
        Ok((_, warnings)) => warnings.iter().map(ToString::to_string).collect(),
        Err(p) => p.iter().map(ToString::to_string).collect(),
    }
}

fn problems(text: &str) -> Vec<String> {
    problems_with(text, &env())
}

fn utc(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A local wall-clock time in a zone (`"2026-03-29T08:00"`).
fn local(zone: &str, s: &str) -> Timestamp {
    let dt: DateTime = s.parse().unwrap();
    TimeZone::get(zone).unwrap().to_timestamp(dt).unwrap()
}

fn ids(v: &[LawyerId]) -> Vec<&str> {
    v.iter().map(LawyerId::as_str).collect()
}

fn has(problems: &[String], want: &str) {
    assert!(
        problems.iter().any(|p| p == want),
        "missing\n  {want}\nin\n  {}",
        problems.join("\n  ")
    );
}

/// `chmod 600`, as the docs ask for the phones file.
fn private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    #[cfg(not(unix))]
    let _ = path;
}
