use std::collections::BTreeMap;
use std::path::Path;

use jiff::civil::DateTime;
use jiff::{SignedDuration, Timestamp, tz::TimeZone};

use super::*;
use crate::problem::Problem;

mod props;

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

// ---------------------------------------------------------------- shipped files

/// Copy the shipped roster into a folder with the example phones file
/// installed the way the docs say.
fn shipped(dir: &Path, with_phones: bool) -> std::path::PathBuf {
    let path = dir.join("roster.toml");
    std::fs::write(&path, include_str!("../../../config/roster.toml")).unwrap();
    if with_phones {
        let phones = dir.join("roster.phones.toml");
        std::fs::write(
            &phones,
            include_str!("../../../config/roster.phones.example.toml"),
        )
        .unwrap();
        private(&phones);
    }
    path
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

#[cfg(unix)]
#[test]
fn a_phones_file_others_can_read_is_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = shipped(dir.path(), true);
    let phones = dir.path().join("roster.phones.toml");
    std::fs::set_permissions(&phones, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_, warnings) = load(&path, &BTreeMap::new()).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0].key, r#"phones_file = "roster.phones.toml""#);
    assert!(warnings[0].message.contains("chmod 600"));
}

#[test]
fn the_shipped_roster_loads_clean_and_covers_every_city_of_the_flows() {
    let dir = tempfile::tempdir().unwrap();
    let path = shipped(dir.path(), true);
    let (r, warnings) = load(&path, &BTreeMap::new()).unwrap_or_else(|p| panic!("{p:#?}"));
    assert!(warnings.is_empty(), "{warnings:#?}");

    let (flows, fp) = crate::flow::load_dir(Path::new("flows"), "flows", "112");
    assert!(fp.iter().all(|p| !p.is_error()), "{fp:?}");
    let cities = flows.cities();
    assert!(cities.contains("other"));
    assert_eq!(
        r.check_cities(cities.iter().map(String::as_str), "flows"),
        vec![]
    );

    // Nobody is ever missing in the 14 days `hotline check` looks at.
    let from = utc("2026-03-03T00:00:00Z");
    for city in ["bishkek", "osh", "poltava", "other"] {
        assert_eq!(r.gaps(city, from, 14 * 24), vec![], "{city}");
    }
    assert_eq!(
        ids(&r.on_call("other", from)),
        ids(&r.on_call("bishkek", from))
    );
    // The May holidays override in Poltava: Halyna backs Oksana up, so
    // next_on_call asks her before the next shift's lawyer.
    let may = local("Europe/Kyiv", "2026-05-02T12:00");
    assert_eq!(ids(&r.on_call_at("poltava", may).now), ["oksana", "halyna"]);
    assert_eq!(ids(&r.next_on_call("poltava", may))[0], "halyna");
    // Every city chooses explicitly to wake the next shift's lawyer after
    // the one on call (and, in a gap, at once).
    for city in ["bishkek", "osh", "poltava", "other"] {
        let kinds: Vec<_> = r
            .chain(city)
            .unwrap()
            .levels
            .iter()
            .map(|l| l.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                LevelKind::OnCall,
                LevelKind::NextOnCall,
                LevelKind::Team,
                LevelKind::Coordinator
            ],
            "{city}"
        );
    }
    // Osh nights are Gulnara's first (2026-03-02 20:00).
    assert_eq!(
        ids(&r
            .on_call_at("osh", local("Asia/Bishkek", "2026-03-02T23:00"))
            .now),
        ["gulnara"]
    );
    let aida = PhoneNumber::parse_international("+996555000011").unwrap();
    assert_eq!(r.lawyer_by_phone(&aida).unwrap().id, "aida");
}

#[test]
fn the_shipped_roster_without_its_phones_file_names_the_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = shipped(dir.path(), false);
    let p = load(&path, &BTreeMap::new()).unwrap_err();
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].key, r#"phones_file = "roster.phones.toml""#);
    assert!(p[0].message.starts_with("cannot read "), "{}", p[0].message);
}

#[test]
fn an_unreadable_roster_is_one_problem() {
    let p = load(Path::new("config/no-such-roster.toml"), &BTreeMap::new()).unwrap_err();
    assert_eq!(p.len(), 1);
    assert!(p[0].message.starts_with("cannot read"));
}

// ---------------------------------------------------------------- rotations

#[test]
fn a_rolling_rotation_hands_over_at_the_shift_boundary() {
    let r = roster(&format!("{BASE}{ROT_BISHKEK}"));
    let at = |s| r.on_call_at("bishkek", utc(s));
    // 09:00 in Bishkek is 03:00 UTC.
    assert_eq!(ids(&at("2026-03-02T03:00:00Z").now), ["aida"]);
    assert_eq!(ids(&at("2026-03-03T02:59:59Z").now), ["aida"]);
    assert_eq!(ids(&at("2026-03-03T03:00:00Z").now), ["bakyt"]);
    assert_eq!(ids(&at("2026-03-04T12:00:00Z").now), ["cholpon"]);
    assert_eq!(ids(&at("2026-03-05T03:00:00Z").now), ["aida"]);
    // A year on, still in turn: day 365 → 365 % 3 = 2 → cholpon.
    assert_eq!(ids(&at("2027-03-02T03:00:00Z").now), ["cholpon"]);

    // On call means now; whoever the rotation gives next is next.
    assert_eq!(
        ids(&r.on_call("bishkek", utc("2026-03-02T10:00:00Z"))),
        ["aida"]
    );
    assert_eq!(
        ids(&r.next_on_call("bishkek", utc("2026-03-02T10:00:00Z"))),
        ["bakyt"]
    );
    let oc = at("2026-03-04T12:00:00Z");
    assert_eq!(ids(&oc.next), ["aida"]);
    assert_eq!(oc.next_from, Some(utc("2026-03-05T03:00:00Z")));
}

#[test]
fn before_a_rotation_starts_nobody_is_on_call_but_the_first_is_next() {
    let r = roster(&format!("{BASE}{ROT_BISHKEK}"));
    let oc = r.on_call_at("bishkek", utc("2026-03-02T02:59:59Z"));
    assert_eq!(oc.now, Vec::<LawyerId>::new());
    assert_eq!(ids(&oc.next), ["aida"]);
    assert_eq!(oc.next_from, Some(utc("2026-03-02T03:00:00Z")));
    // A gap: nobody on call, and on_call never reaches ahead.
    assert!(r.on_call("bishkek", utc("2026-03-02T02:59:59Z")).is_empty());
    assert_eq!(
        ids(&r.next_on_call("bishkek", utc("2026-03-02T02:59:59Z"))),
        ["aida"]
    );
    // Long before: nobody now, and nobody within the look-ahead.
    let oc = r.on_call_at("bishkek", utc("2025-01-01T00:00:00Z"));
    assert_eq!(oc, OnCall::default());
}

#[test]
fn a_rotation_with_one_lawyer_looks_past_her_own_next_shift() {
    let text = format!(
        "{BASE}{ROT_BISHKEK}\n[[rotations]]\ncity = \"poltava\"\nstart = \"2026-03-02\"\ndaily = \"08:00-20:00\"\nlawyers = [\"halyna\"]\n[[rotations]]\ncity = \"poltava\"\nstart = \"2026-03-02\"\ndaily = \"20:00-08:00\"\ndays = [\"sun\"]\nlawyers = [\"iryna\"]\n"
    );
    let r = roster(&text);
    // Monday: Halyna now; the next new face is Iryna on Sunday night.
    let oc = r.on_call_at("poltava", local("Europe/Kyiv", "2026-03-02T09:00"));
    assert_eq!(ids(&oc.now), ["halyna"]);
    assert_eq!(ids(&oc.next), ["iryna"]);
    assert_eq!(oc.next_from, Some(local("Europe/Kyiv", "2026-03-08T20:00")));
}

#[test]
fn a_night_window_runs_past_midnight_and_skipped_days_use_no_turn() {
    let text = format!(
        "{BASE}\n[[rotations]]\ncity = \"bishkek\"\nstart = \"2026-03-02\"\ndaily = \"20:00-08:00\"\ndays = [\"fri\", \"Saturday\"]\nlawyers = [\"aida\", \"bakyt\"]\n"
    );
    let r = roster(&text);
    let now = |s: &str| ids(&r.on_call_at("bishkek", local("Asia/Bishkek", s)).now).join(",");
    assert_eq!(now("2026-03-02T21:00"), ""); // Monday: not a listed day
    assert_eq!(now("2026-03-06T19:59"), ""); // Friday, before the window
    assert_eq!(now("2026-03-06T20:00"), "aida");
    assert_eq!(now("2026-03-07T07:59"), "aida"); // Saturday morning, Friday's shift
    assert_eq!(now("2026-03-07T08:00"), "");
    assert_eq!(now("2026-03-07T20:00"), "bakyt");
    assert_eq!(now("2026-03-08T07:00"), "bakyt");
    assert_eq!(now("2026-03-08T21:00"), ""); // Sunday
    assert_eq!(now("2026-03-13T23:00"), "aida"); // next Friday: turns continue
    assert_eq!(now("2026-03-14T23:00"), "bakyt");
}

#[test]
fn gaps_are_exact_stretches_with_nobody_on_call() {
    let text = format!(
        "{BASE}\n[[rotations]]\ncity = \"bishkek\"\nstart = \"2026-03-02\"\ndaily = \"20:00-08:00\"\ndays = [\"fri\", \"sat\"]\nlawyers = [\"aida\", \"bakyt\"]\n"
    );
    let r = roster(&text);
    let l = |s| local("Asia/Bishkek", s);
    assert_eq!(
        r.gaps("bishkek", l("2026-03-06T00:00"), 72),
        vec![
            (l("2026-03-06T00:00"), l("2026-03-06T20:00")),
            (l("2026-03-07T08:00"), l("2026-03-07T20:00")),
            (l("2026-03-08T08:00"), l("2026-03-09T00:00")),
        ]
    );
    let slots = r.schedule("bishkek", l("2026-03-06T00:00"), 72);
    assert_eq!(slots.len(), 5);
    assert_eq!(ids(&slots[1].lawyers), ["aida"]);
    assert_eq!(ids(&slots[3].lawyers), ["bakyt"]);
    // A covered city has none; an unknown one is all gap.
    let full = roster(&format!("{BASE}{ROT_BISHKEK}"));
    let from = utc("2026-03-10T00:00:00Z");
    assert_eq!(full.gaps("bishkek", from, 14 * 24), vec![]);
    assert_eq!(full.gaps("other", from, 14 * 24), vec![]);
    assert_eq!(
        full.gaps("nowhere", from, 1),
        vec![(from, utc("2026-03-10T01:00:00Z"))]
    );
}

#[test]
fn a_rotation_end_cuts_the_running_shift() {
    let text = format!("{BASE}{ROT_BISHKEK}end = \"2026-03-05 21:00\"\n");
    let r = roster(&text);
    let l = |s| local("Asia/Bishkek", s);
    assert_eq!(
        ids(&r.on_call_at("bishkek", l("2026-03-05T20:59")).now),
        ["aida"]
    );
    assert!(
        r.on_call_at("bishkek", l("2026-03-05T21:00"))
            .now
            .is_empty()
    );
    assert!(
        r.on_call_at("bishkek", l("2026-04-05T10:00"))
            .now
            .is_empty()
    );
}

#[test]
fn two_rotations_at_once_put_the_first_written_first() {
    let text = format!(
        "{BASE}{ROT_BISHKEK}\n[[rotations]]\ncity = \"bishkek\"\nstart = \"2026-03-02 00:00\"\nshift_hours = 168\nlawyers = [\"nurgul\"]\n"
    );
    let (r, warnings) = parse_with(&text, &env()).unwrap();
    // Nurgul is the coordinator, not in the team: said so, but allowed.
    has(
        &warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        r#"config/roster.toml: rotations[1].lawyers[0] = "nurgul": not in cities.bishkek.team: the team level will not reach her"#,
    );
    assert_eq!(
        ids(&r.on_call("bishkek", utc("2026-03-02T04:00:00Z"))),
        ["aida", "nurgul"]
    );
    // Next in line: the second lawyer on call now, then the next shift's.
    assert_eq!(
        ids(&r.next_on_call("bishkek", utc("2026-03-02T04:00:00Z"))),
        ["nurgul", "bakyt"]
    );
}

// ---------------------------------------------------------------- overrides

#[test]
fn an_override_wins_over_the_rotation_for_its_window_only() {
    let text = format!(
        "{BASE}{ROT_BISHKEK}\n[[overrides]]\ncity = \"bishkek\"\nstart = \"2026-03-10 12:00\"\nend = \"2026-03-11 12:00\"\nlawyers = [\"nurgul\", \"bakyt\"]\n"
    );
    let r = roster(&text);
    let l = |s| local("Asia/Bishkek", s);
    // 2026-03-10 is shift 8 of the rotation: Cholpon's.
    assert_eq!(
        ids(&r.on_call_at("bishkek", l("2026-03-10T11:59")).now),
        ["cholpon"]
    );
    let oc = r.on_call_at("bishkek", l("2026-03-10T12:00"));
    assert_eq!(ids(&oc.now), ["nurgul", "bakyt"]);
    // At its end the rotation is back: shift 9, Aida's.
    assert_eq!(ids(&oc.next), ["aida"]);
    assert_eq!(oc.next_from, Some(l("2026-03-11T12:00")));
    assert_eq!(
        ids(&r.on_call_at("bishkek", l("2026-03-11T12:00")).now),
        ["aida"]
    );
    // The routed city sees the same override.
    assert_eq!(
        ids(&r.on_call_at("other", l("2026-03-10T18:00")).now),
        ["nurgul", "bakyt"]
    );
}

#[test]
fn an_override_fills_a_gap_with_whole_days() {
    let text = format!(
        "{BASE}\n[[overrides]]\ncity = \"poltava\"\nstart = \"2026-05-01\"\nend = \"2026-05-03\"\nlawyers = [\"iryna\"]\n"
    );
    let r = roster(&text);
    let l = |s| local("Europe/Kyiv", s);
    assert_eq!(
        r.gaps("poltava", l("2026-04-30T00:00"), 4 * 24),
        vec![
            (l("2026-04-30T00:00"), l("2026-05-01T00:00")),
            (l("2026-05-03T00:00"), l("2026-05-04T00:00")),
        ]
    );
}

#[test]
fn in_a_gap_nobody_is_on_call_and_the_next_shift_is_only_next() {
    // The issue's case: 05:09 in Poltava, evening shifts from 20:00. The
    // gap report, on_call and next_on_call agree: nobody now, Halyna next.
    let text = format!(
        "{BASE}\n[[rotations]]\ncity = \"poltava\"\nstart = \"2026-03-02\"\ndaily = \"20:00-02:00\"\nlawyers = [\"halyna\", \"iryna\"]\n"
    );
    let r = roster(&text);
    let l = |s: &str| local("Europe/Kyiv", s);
    for day in ["2026-03-28", "2026-03-29", "2026-10-25", "2026-07-06"] {
        let t = l(&format!("{day}T05:09"));
        assert!(r.on_call("poltava", t).is_empty(), "{day}");
        let oc = r.on_call_at("poltava", t);
        assert_eq!(oc.next_from, Some(l(&format!("{day}T20:00"))), "{day}");
        assert_eq!(r.next_on_call("poltava", t), oc.next, "{day}");
        assert_eq!(oc.next.len(), 1, "{day}");
        assert!(
            r.gaps("poltava", t, 1)
                .iter()
                .any(|(s, e)| *s <= t && t < *e),
            "{day}"
        );
    }
    // 2026-03-29 is shift 27 (iryna's); at 20:00 she is on call and the
    // next shift's lawyer is next.
    let t = l("2026-03-29T05:09");
    assert_eq!(ids(&r.next_on_call("poltava", t)), ["iryna"]);
    let t = l("2026-03-29T20:00");
    assert_eq!(ids(&r.on_call("poltava", t)), ["iryna"]);
    assert_eq!(ids(&r.next_on_call("poltava", t)), ["halyna"]);
}

// ---------------------------------------------------------------- time zones

#[test]
fn a_kyiv_night_shift_is_eleven_hours_when_clocks_spring_forward() {
    let r = roster(&format!("{BASE}{ROT_POLTAVA}"));
    let slots = r.schedule("poltava", utc("2026-03-28T12:00:00Z"), 36);
    let night = slots
        .iter()
        .find(|s| s.start == utc("2026-03-28T18:00:00Z")) // 20:00 EET
        .expect("a shift from 20:00 local");
    assert_eq!(ids(&night.lawyers), ["iryna"]);
    assert_eq!(night.end, utc("2026-03-29T05:00:00Z")); // 08:00 EEST
    assert_eq!(
        night.end.duration_since(night.start),
        SignedDuration::from_hours(11)
    );
    // The next day shift keeps local times: 08:00–20:00 EEST, 12 real hours.
    let day = slots.iter().find(|s| s.start == night.end).unwrap();
    assert_eq!(ids(&day.lawyers), ["halyna"]);
    assert_eq!(day.end, utc("2026-03-29T17:00:00Z"));
    // Inside the skipped hour's neighbourhood Iryna stays on call.
    for t in [
        "2026-03-29T00:59:59Z",
        "2026-03-29T01:00:00Z",
        "2026-03-29T04:59:59Z",
    ] {
        assert_eq!(ids(&r.on_call_at("poltava", utc(t)).now), ["iryna"], "{t}");
    }
}

#[test]
fn a_kyiv_night_shift_is_thirteen_hours_when_clocks_fall_back() {
    let r = roster(&format!("{BASE}{ROT_POLTAVA}"));
    let slots = r.schedule("poltava", utc("2026-10-24T12:00:00Z"), 36);
    let night = slots
        .iter()
        .find(|s| s.start == utc("2026-10-24T17:00:00Z")) // 20:00 EEST
        .expect("a shift from 20:00 local");
    assert_eq!(ids(&night.lawyers), ["iryna"]);
    assert_eq!(night.end, utc("2026-10-25T06:00:00Z")); // 08:00 EET
    assert_eq!(
        night.end.duration_since(night.start),
        SignedDuration::from_hours(13)
    );
    // 03:30 happens twice that night; both are Iryna's.
    for t in ["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"] {
        assert_eq!(ids(&r.on_call_at("poltava", utc(t)).now), ["iryna"], "{t}");
    }
    assert_eq!(
        ids(&r.on_call_at("poltava", utc("2026-10-25T06:00:00Z")).now),
        ["halyna"]
    );
}

#[test]
fn bishkek_has_no_clock_changes_so_shifts_stay_24_real_hours() {
    let r = roster(&format!("{BASE}{ROT_BISHKEK}"));
    for (from, who) in [
        // Shift 27 and shift 237: both 27 % 3 and 237 % 3 are 0.
        ("2026-03-29T03:00:00Z", "aida"),
        ("2026-10-25T03:00:00Z", "aida"),
    ] {
        let slots = r.schedule("bishkek", utc(from), 24);
        assert_eq!(slots.len(), 1, "{from}");
        assert_eq!(ids(&slots[0].lawyers), [who]);
        let next = r.on_call_at("bishkek", utc(from));
        assert_eq!(
            next.next_from.unwrap().duration_since(utc(from)),
            SignedDuration::from_hours(24)
        );
    }
}

#[test]
fn a_shift_starting_in_the_skipped_hour_starts_when_the_clocks_resume() {
    // 03:30 does not exist in Kyiv on 2026-03-29: the shift starts at the
    // first instant after the gap ends, 04:30 EEST (01:30 UTC).
    let text = format!(
        "{BASE}\n[[rotations]]\ncity = \"poltava\"\nstart = \"2026-03-28\"\ndaily = \"03:30-06:00\"\nlawyers = [\"halyna\"]\n"
    );
    let r = roster(&text);
    let slots = r.schedule("poltava", utc("2026-03-29T00:00:00Z"), 6);
    let on: Vec<_> = slots.iter().filter(|s| !s.lawyers.is_empty()).collect();
    assert_eq!(on.len(), 1);
    assert_eq!(on[0].start, utc("2026-03-29T01:30:00Z"));
    assert_eq!(on[0].end, utc("2026-03-29T03:00:00Z")); // 06:00 EEST
}

#[test]
fn a_shift_starting_in_the_repeated_hour_starts_at_its_first_occurrence() {
    // 03:30 happens twice in Kyiv on 2026-10-25 (00:30 and 01:30 UTC): the
    // shift starts at the first, and she stays on call through the second.
    let text = format!(
        "{BASE}\n[[rotations]]\ncity = \"poltava\"\nstart = \"2026-10-24\"\ndaily = \"03:30-05:00\"\nlawyers = [\"halyna\"]\n"
    );
    let r = roster(&text);
    let slots = r.schedule("poltava", utc("2026-10-25T00:00:00Z"), 4);
    let on: Vec<_> = slots.iter().filter(|s| !s.lawyers.is_empty()).collect();
    assert_eq!(on.len(), 1);
    assert_eq!(on[0].start, utc("2026-10-25T00:30:00Z"));
    assert_eq!(on[0].end, utc("2026-10-25T03:00:00Z")); // 05:00 EET
    for t in [
        "2026-10-25T00:30:00Z",
        "2026-10-25T01:15:00Z",
        "2026-10-25T02:59:59Z",
    ] {
        assert_eq!(ids(&r.on_call_at("poltava", utc(t)).now), ["halyna"], "{t}");
    }
}

// ---------------------------------------------------------------- lookups

#[test]
fn lookups_by_city_route_and_phone() {
    let r = roster(&format!("{BASE}{ROT_BISHKEK}"));
    assert_eq!(ids(r.team("bishkek")), ["aida", "bakyt", "cholpon"]);
    assert_eq!(ids(r.team("other")), ["aida", "bakyt", "cholpon"]);
    assert!(r.team("nowhere").is_empty());
    assert_eq!(r.coordinator("other").unwrap(), "nurgul");
    assert_eq!(r.coordinator("poltava").unwrap(), "larysa");
    assert_eq!(r.city("other").unwrap().id, "bishkek");
    assert_eq!(r.city_name("other", "en"), Some("Other city"));
    assert_eq!(r.city_name("bishkek", "ru"), Some("Бишкек"));
    assert_eq!(r.city_name("poltava", "ky"), Some("Poltava")); // falls back to en
    assert_eq!(r.city_ids(), ["bishkek", "other", "poltava"]);
    assert!(r.on_call("nowhere", utc("2026-03-10T00:00:00Z")).is_empty());

    let chain = r.chain("other").unwrap();
    let kinds: Vec<_> = chain.levels.iter().map(|l| l.kind.as_str()).collect();
    assert_eq!(kinds, ["on_call", "next_on_call", "team", "coordinator"]);
    assert_eq!(chain.levels[1].wait, Duration::from_secs(4 * 60));
    assert_eq!(chain.repeats, 1);
    assert_eq!(chain.unanswered_after, Duration::from_secs(15 * 60));
    assert_eq!(chain.pass(), Duration::from_secs(18 * 60));
    assert_eq!(chain.total(), Duration::from_secs(36 * 60));
    assert_eq!(r.chain("poltava").unwrap().repeats, 0);

    let iryna = r.lawyer("iryna").unwrap();
    assert_eq!(iryna.name, "Iryna");
    assert_eq!(iryna.languages, ["uk", "en"]);
    assert_eq!(iryna.phone.as_str(), "+380500000012");
    // Aggregators write numbers in several ways; all find her.
    for raw in ["+380500000012", "380500000012", "00380500000012"] {
        let n = PhoneNumber::parse_international(raw).unwrap();
        assert_eq!(r.lawyer_by_phone(&n).unwrap().id, "iryna", "{raw}");
    }
    let stranger = PhoneNumber::parse_international("+380500000099").unwrap();
    assert!(r.lawyer_by_phone(&stranger).is_none());
}

#[test]
fn no_number_shows_in_debug_output() {
    let r = roster(&format!("{BASE}{ROT_BISHKEK}"));
    let debug = format!("{r:?}");
    for (_, number) in PHONES {
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        assert!(!debug.contains(&digits), "{debug}");
    }
    assert!(debug.contains("PhoneNumber(<redacted>)"));
}

#[test]
fn flow_cities_missing_from_the_roster_are_errors() {
    let r = roster(&format!("{BASE}{ROT_BISHKEK}"));
    let p = r.check_cities(["bishkek", "osh", "other"], "flows");
    assert_eq!(p.len(), 1);
    assert_eq!(
        p[0].to_string(),
        r#"flows: city = "osh": the flows can open a case for this city but config/roster.toml has no [cities.osh]"#
    );
}

// ---------------------------------------------------------------- problems

#[test]
fn the_base_fixture_only_warns_about_missing_rotations() {
    assert_eq!(
        problems(BASE),
        [
            "config/roster.toml: cities.bishkek: no [[rotations]] for this city: nobody is ever on call",
            "config/roster.toml: cities.poltava: no [[rotations]] for this city: nobody is ever on call",
        ]
    );
    assert_eq!(
        problems(&format!("{BASE}{ROT_BISHKEK}{ROT_POLTAVA}")),
        Vec::<String>::new()
    );
}

#[test]
fn unknown_lawyer_ids_are_named_wherever_they_appear() {
    let text = format!(
        "{BASE}{ROT_BISHKEK}[[overrides]]\ncity = \"poltava\"\nstart = \"2026-05-01\"\nend = \"2026-05-02\"\nlawyers = [\"iryna\", \"olha\"]\n"
    )
    .replace(
        r#"team = ["aida", "bakyt", "cholpon"]"#,
        r#"team = ["aida", "zed", "cholpon"]"#,
    )
    .replace(r#"coordinator = "larysa""#, r#"coordinator = "larisa""#)
    .replace(
        r#"lawyers = ["aida", "bakyt", "cholpon"]"#,
        r#"lawyers = ["aida", "bakyt", "cholpn"]"#,
    );
    let p = problems(&text);
    has(
        &p,
        r#"config/roster.toml: cities.bishkek.team[1] = "zed": no such lawyer in [lawyers]"#,
    );
    has(
        &p,
        r#"config/roster.toml: cities.poltava.coordinator = "larisa": no such lawyer in [lawyers]"#,
    );
    has(
        &p,
        r#"config/roster.toml: rotations[0].lawyers[2] = "cholpn": no such lawyer in [lawyers]"#,
    );
    has(
        &p,
        r#"config/roster.toml: overrides[0].lawyers[1] = "olha": no such lawyer in [lawyers]"#,
    );
}

#[test]
fn unknown_zones_countries_and_cities_are_named() {
    let text = format!("{BASE}{ROT_BISHKEK}")
        .replace("Europe/Kyiv", "Europe/Kiyv")
        .replace(r#"country = "KG""#, r#"country = "KZ""#)
        .replace(r#"route_to = "bishkek""#, r#"route_to = "bishek""#)
        .replace(r#"cities = ["poltava"]"#, r#"cities = ["poltava", "lviv"]"#)
        .replace(r#"city = "bishkek""#, r#"city = "bishkk""#);
    let p = problems(&text);
    has(
        &p,
        r#"config/roster.toml: cities.poltava.time_zone = "Europe/Kiyv": unknown time zone: use an IANA name like "Asia/Bishkek" or "Europe/Kyiv""#,
    );
    has(
        &p,
        r#"config/roster.toml: cities.bishkek.country = "KZ": unknown country (known: KG, UA, GE)"#,
    );
    has(
        &p,
        r#"config/roster.toml: cities.other.route_to = "bishek": no such city in [cities]"#,
    );
    has(
        &p,
        r#"config/roster.toml: lawyers.larysa.cities[1] = "lviv": no such city in [cities]"#,
    );
    has(
        &p,
        r#"config/roster.toml: rotations[0].city = "bishkk": no such city in [cities]"#,
    );
}

/// The level kinds in the table of `docs/roster.md` ("| Level `kind` |").
fn documented_level_kinds(doc: &str) -> Vec<&str> {
    doc.lines()
        .skip_while(|l| !l.starts_with("| Level `kind` |"))
        .skip(2) // the heading and its |---|---|
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
        .collect()
}

#[test]
fn the_level_kinds_documented_are_the_ones_the_loader_accepts() {
    let doc = include_str!("../../../docs/roster.md");
    let documented = documented_level_kinds(doc);
    let known: Vec<&str> = LevelKind::ALL.iter().map(|(n, _)| *n).collect();
    assert_eq!(documented, known, "docs/roster.md and LevelKind::ALL");
    // Each is accepted by the loader, and means its own kind.
    for (name, kind) in LevelKind::ALL {
        let text = BASE.replace(
            r#"{ kind = "team", wait_minutes = 5 }"#,
            &format!(r#"{{ kind = "{name}", wait_minutes = 5 }}"#),
        );
        let r = roster(&text);
        assert_eq!(r.chain("poltava").unwrap().levels[1].kind, kind, "{name}");
        assert_eq!(kind.as_str(), name);
    }
    // docs/dispatch.md and the shipped roster's comment name every kind too.
    let dispatch = include_str!("../../../docs/dispatch.md");
    let shipped = include_str!("../../../config/roster.toml");
    for name in known {
        assert!(
            dispatch.contains(&format!("`{name}`")),
            "docs/dispatch.md: {name}"
        );
        assert!(
            shipped.contains(&format!("#   {name} ")),
            "config/roster.toml: {name}"
        );
    }
    // What the docs promise of a gap is what on_call does: nobody.
    assert!(doc.contains("In a gap (nobody on call) the `on_call` level has nobody to ask"));
    let r = roster(&format!("{BASE}{ROT_BISHKEK}"));
    assert!(r.on_call("bishkek", utc("2026-03-02T02:59:59Z")).is_empty());
}

#[test]
fn a_city_without_a_chain_or_with_a_bad_one_is_named() {
    let no_chain = BASE.replace(
        "[cities.poltava.escalation]\nlevels = [{ kind = \"on_call\", wait_minutes = 5 }, { kind = \"team\", wait_minutes = 5 }]\nunanswered_after_minutes = 10\n",
        "",
    );
    has(
        &problems(&no_chain),
        "config/roster.toml: cities.poltava.escalation: missing: add levels (on_call, next_on_call, team, coordinator), repeats and unanswered_after_minutes",
    );
    let bad = BASE
        .replace(
            r#"{ kind = "team", wait_minutes = 5 },"#,
            r#"{ kind = "everyone", wait_minutes = 5 },"#,
        )
        .replace(
            r#"{ kind = "coordinator", wait_minutes = 6 },"#,
            r#"{ kind = "coordinator", wait_minutes = 0 },"#,
        )
        .replace("repeats = 1", "repeats = 50")
        .replace("unanswered_after_minutes = 10", "");
    let p = problems(&bad);
    has(
        &p,
        r#"config/roster.toml: cities.bishkek.escalation.levels[2].kind = "everyone": unknown kind (known: on_call, next_on_call, team, coordinator)"#,
    );
    has(
        &p,
        "config/roster.toml: cities.bishkek.escalation.levels[3].wait_minutes = 0: must be between 1 and 1440",
    );
    has(
        &p,
        "config/roster.toml: cities.bishkek.escalation.repeats = 50: must be between 0 and 10",
    );
    has(
        &p,
        "config/roster.toml: cities.poltava.escalation.unanswered_after_minutes: missing: minutes after which she is sent the fallback number",
    );
    let long = format!("{BASE}{ROT_BISHKEK}{ROT_POLTAVA}").replace(
        "unanswered_after_minutes = 10",
        "unanswered_after_minutes = 60",
    );
    assert_eq!(
        problems(&long),
        [
            "config/roster.toml: cities.poltava.escalation.unanswered_after_minutes = 60: longer than the whole chain (10 minutes with repeats): she would wait with nobody being asked"
        ]
    );
}

#[test]
fn a_route_takes_nothing_of_its_own_and_cannot_chain() {
    let text = format!("{BASE}{ROT_BISHKEK}")
        .replace(
            "route_to = \"bishkek\"\n",
            "route_to = \"bishkek\"\ntime_zone = \"Asia/Bishkek\"\n[cities.elsewhere]\nroute_to = \"other\"\n",
        )
        + "[[overrides]]\ncity = \"other\"\nstart = \"2026-05-01\"\nend = \"2026-05-02\"\nlawyers = [\"aida\"]\n";
    let p = problems(&text);
    has(
        &p,
        "config/roster.toml: cities.other.time_zone: a city with route_to takes this from cities.bishkek: remove it",
    );
    has(
        &p,
        r#"config/roster.toml: cities.elsewhere.route_to = "other": routes to a city that itself routes on: route to a city with its own lawyers"#,
    );
    has(
        &p,
        r#"config/roster.toml: overrides[0].city = "other": this city routes to cities.bishkek: put it there"#,
    );
}

#[test]
fn phone_numbers_from_the_environment_are_checked_and_never_echoed() {
    let mut e = env();
    e.remove("P_AIDA");
    e.insert("P_BAKYT", "0555 000 012"); // national form: ambiguous
    e.insert("P_CHOLPON", "+996 555 0x0 013");
    e.insert("P_HALYNA", "+380 50 000 00 01"); // Larysa's number
    let text = format!("{BASE}{ROT_BISHKEK}")
        .replace(r#"phone_env = "P_IRYNA""#, r#"phone_env = "p-iryna""#);
    let p = problems_with(&text, &e);
    has(
        &p,
        r#"config/roster.toml: lawyers.aida.phone_env = "P_AIDA": environment variable P_AIDA is not set"#,
    );
    has(
        &p,
        r#"config/roster.toml: lawyers.bakyt.phone_env = "P_BAKYT": P_BAKYT does not hold a number in international form: must start with + and the country code"#,
    );
    has(
        &p,
        r#"config/roster.toml: lawyers.cholpon.phone_env = "P_CHOLPON": P_CHOLPON does not hold a number in international form: phone number has a character that is not a digit"#,
    );
    has(
        &p,
        "config/roster.toml: lawyers.larysa: has the same number as lawyers.halyna: replies are matched to a lawyer by number",
    );
    has(
        &p,
        r#"config/roster.toml: lawyers.iryna.phone_env = "p-iryna": not an environment variable name (capitals, digits and _)"#,
    );
    for line in &p {
        assert!(!line.contains("555") && !line.contains("00 01"), "{line}");
    }
}

#[test]
fn phone_numbers_from_the_phones_file_are_checked_and_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("phones_file = \"phones.toml\"\n{BASE}{ROT_BISHKEK}{ROT_POLTAVA}")
        .replace("phone_env = \"P_AIDA\"\n", "")
        .replace("phone_env = \"P_BAKYT\"\n", "")
        .replace("phone_env = \"P_CHOLPON\"\n", "");
    std::fs::write(
        dir.path().join("phones.toml"),
        "aida = \"+996 555 000 011\"\nbakyt = \"0555 000 012\"\ncholpon = 996555000013\nzarina = \"+996 555 000 099\"\n",
    )
    .unwrap();
    private(&dir.path().join("phones.toml")); // rewrites below keep the mode
    let display = dir.path().join("phones.toml").display().to_string();
    let p: Vec<String> = match parse(&text, "config/roster.toml", dir.path(), &env()) {
        Ok(_) => panic!("should fail"),
        Err(p) => p.iter().map(ToString::to_string).collect(),
    };
    has(
        &p,
        &format!(
            "{display}: bakyt: not a number in international form: must start with + and the country code"
        ),
    );
    has(
        &p,
        &format!(
            "{display}: cholpon: must be a quoted number in international form, like \"+996 …\""
        ),
    );
    has(
        &p,
        &format!("{display}: zarina: no lawyer with this id in config/roster.toml"),
    );
    for line in &p {
        assert!(!line.contains("555"), "{line}");
    }

    // A syntax error reports the line, never the text around it.
    std::fs::write(
        dir.path().join("phones.toml"),
        "aida = \"+996 555 000 011\"\nbakyt = +996 555 000 012\n",
    )
    .unwrap();
    let p = parse(&text, "config/roster.toml", dir.path(), &env()).unwrap_err();
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].key, "line 2");
    assert!(!p[0].to_string().contains("555"));

    // Fixed, it loads; a lawyer missing from the file is named.
    std::fs::write(
        dir.path().join("phones.toml"),
        "aida = \"+996 555 000 011\"\nbakyt = \"+996 555 000 012\"\n",
    )
    .unwrap();
    let p = parse(&text, "config/roster.toml", dir.path(), &env()).unwrap_err();
    assert_eq!(
        p.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [format!(
            "config/roster.toml: lawyers.cholpon: no number: add `cholpon = \"+…\"` to {display}, or set phone_env"
        )]
    );
}

#[test]
fn a_number_written_in_the_roster_is_refused_with_a_hint() {
    let text = BASE.replace("phone_env = \"P_AIDA\"", "phone = \"+996555000011\"");
    let p = problems(&text);
    assert_eq!(p.len(), 1);
    assert!(p[0].contains("unknown field `phone`"), "{}", p[0]);
    assert!(p[0].contains("numbers never go in this file"), "{}", p[0]);
    assert!(!p[0].contains("555"), "{}", p[0]);
}

#[test]
fn bad_rotations_are_named_by_key() {
    let text = format!(
        "{BASE}
[[rotations]]
city = \"bishkek\"
start = \"2026-03-02 09:00\"
shift_hours = 24
daily = \"20:00-08:00\"
lawyers = [\"aida\"]
[[rotations]]
city = \"bishkek\"
start = \"2026-03-02 09:00\"
lawyers = [\"aida\"]
[[rotations]]
city = \"bishkek\"
start = \"2026-03-02\"
daily = \"20:00 to 08:00\"
lawyers = [\"aida\"]
[[rotations]]
city = \"bishkek\"
start = \"2026-03-02 20:00\"
daily = \"20:00-08:00\"
lawyers = [\"aida\"]
[[rotations]]
city = \"bishkek\"
start = \"2026-03-02\"
daily = \"20:00-08:00\"
days = [\"fri\", \"пт\"]
lawyers = []
[[rotations]]
city = \"bishkek\"
start = \"02.03.2026 09:00\"
shift_hours = 0
lawyers = [\"aida\"]
[[rotations]]
city = \"bishkek\"
start = \"2026-03-02 09:00\"
end = \"2026-03-01\"
shift_hours = 12
lawyers = [\"aida\"]
[[rotations]]
city = \"bishkek\"
start = \"2026-03-02 09:00\"
shift_hours = 168
days = [\"tue\"]
lawyers = [\"aida\"]
"
    );
    let p = problems(&text);
    has(
        &p,
        "config/roster.toml: rotations[0].shift_hours: use either shift_hours (back-to-back shifts) or daily (one window a day), not both",
    );
    has(
        &p,
        r#"config/roster.toml: rotations[1]: missing shift_hours (back-to-back shifts) or daily (one window a day, like "20:00-08:00")"#,
    );
    has(
        &p,
        r#"config/roster.toml: rotations[2].daily = "20:00 to 08:00": not a window like "20:00-08:00" (local time; may run past midnight)"#,
    );
    has(
        &p,
        r#"config/roster.toml: rotations[3].start = "2026-03-02 20:00": with `daily`, start is just the first date, like "2026-03-02""#,
    );
    has(
        &p,
        r#"config/roster.toml: rotations[4].days[1] = "пт": not a weekday: use mon, tue, wed, thu, fri, sat, sun"#,
    );
    has(
        &p,
        r#"config/roster.toml: rotations[4].lawyers: list the lawyers who take turns, like ["aida", "bakyt"]"#,
    );
    has(
        &p,
        r#"config/roster.toml: rotations[5].start = "02.03.2026 09:00": not a local date-time like "2026-03-02 09:00" (or a date like "2026-03-02")"#,
    );
    has(
        &p,
        "config/roster.toml: rotations[5].shift_hours = 0: must be between 1 and 672",
    );
    has(
        &p,
        r#"config/roster.toml: rotations[6].end = "2026-03-01": must be after start"#,
    );
    has(
        &p,
        "config/roster.toml: rotations[7].days: no shift of this rotation ever starts on these days",
    );
}

#[test]
fn toml_dates_without_quotes_are_accepted_but_offsets_are_not() {
    let ok = format!("{BASE}{ROT_BISHKEK}").replace("\"2026-03-02 09:00\"", "2026-03-02T09:00:00");
    let r = roster(&ok);
    assert_eq!(
        ids(&r.on_call_at("bishkek", utc("2026-03-02T03:00:00Z")).now),
        ["aida"]
    );
    let bad =
        format!("{BASE}{ROT_BISHKEK}").replace("\"2026-03-02 09:00\"", "2026-03-02T09:00:00+06:00");
    has(
        &problems(&bad),
        r#"config/roster.toml: rotations[0].start = "2026-03-02T09:00:00+06:00": write local time in the city, without an offset or Z"#,
    );
}

#[test]
fn overlapping_or_backwards_overrides_are_named() {
    let text = format!(
        "{BASE}{ROT_BISHKEK}{ROT_POLTAVA}
[[overrides]]
city = \"bishkek\"
start = \"2026-05-01 08:00\"
end = \"2026-05-03 08:00\"
lawyers = [\"aida\"]
[[overrides]]
city = \"poltava\"
start = \"2026-05-02 08:00\"
end = \"2026-05-04 08:00\"
lawyers = [\"iryna\"]
[[overrides]]
city = \"bishkek\"
start = \"2026-05-03 07:00\"
end = \"2026-05-05 08:00\"
lawyers = [\"bakyt\"]
[[overrides]]
city = \"bishkek\"
start = \"2026-05-03 08:00\"
end = \"2026-05-03 08:00\"
lawyers = [\"bakyt\"]
[[overrides]]
city = \"bishkek\"
start = \"2026-06-01\"
end = \"2026-06-02\"
lawyers = []
"
    );
    assert_eq!(
        problems(&text),
        [
            "config/roster.toml: overrides[2]: overlaps overrides[0] in bishkek: only one override can hold at a time, merge them or move one",
            r#"config/roster.toml: overrides[3].end = "2026-05-03 08:00": must be after start"#,
            r#"config/roster.toml: overrides[4].lawyers: list who is on call instead, like ["bakyt"]"#,
        ]
    );
    // Touching is not overlapping.
    let touching = text.replace("2026-05-03 07:00", "2026-05-03 08:00");
    assert!(!problems(&touching).iter().any(|p| p.contains("overlaps")));
}

#[test]
fn missing_fields_and_bad_ids_are_named() {
    let text = format!("{BASE}{ROT_BISHKEK}")
        .replace("name = \"Bakyt\"\n", "")
        .replace("languages = [\"uk\", \"en\"]", "languages = [\"ua\"]")
        .replace("[lawyers.cholpon]", "[lawyers.Cholpon]")
        .replace("country = \"UA\"\n", "")
        .replace(
            "names = { en = \"Poltava\", uk = \"Полтава\" }",
            "names = { en = \"Poltava\", pl = \"Połtawa\" }",
        );
    let p = problems(&text);
    has(
        &p,
        "config/roster.toml: lawyers.bakyt.name: missing: the name people know her by",
    );
    has(
        &p,
        r#"config/roster.toml: lawyers.iryna.languages[0] = "ua": unknown language (known: ru, ky, uk, en, ka)"#,
    );
    has(
        &p,
        "config/roster.toml: lawyers.Cholpon: an id uses lowercase letters, digits, `_` or `-`",
    );
    has(
        &p,
        "config/roster.toml: cities.poltava.country: missing: the ISO code, like \"KG\"",
    );
    has(
        &p,
        "config/roster.toml: cities.poltava.names.pl: unknown language (known: ru, ky, uk, en, ka)",
    );
}

#[test]
fn a_team_member_not_working_in_the_city_is_a_warning() {
    let text = format!("{BASE}{ROT_BISHKEK}{ROT_POLTAVA}").replace(
        r#"team = ["halyna", "iryna"]"#,
        r#"team = ["halyna", "iryna", "aida"]"#,
    );
    assert_eq!(
        problems(&text),
        [
            r#"config/roster.toml: lawyers.aida.cities: she is in cities.poltava.team but "poltava" is not in her cities"#
        ]
    );
}

#[test]
fn toml_syntax_errors_name_the_line() {
    let p = problems("[cities.bishkek\nname = 1\n");
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("config/roster.toml: line 1: "), "{}", p[0]);
}
