//! Problems with rotations and overrides: each named by its key.

use super::*;

/// Eight rotations, each wrong in its own way (appended to [`BASE`]).
const BAD_ROTATIONS: &str = r#"
[[rotations]]
city = "bishkek"
start = "2026-03-02 09:00"
shift_hours = 24
daily = "20:00-08:00"
lawyers = ["aida"]
[[rotations]]
city = "bishkek"
start = "2026-03-02 09:00"
lawyers = ["aida"]
[[rotations]]
city = "bishkek"
start = "2026-03-02"
daily = "20:00 to 08:00"
lawyers = ["aida"]
[[rotations]]
city = "bishkek"
start = "2026-03-02 20:00"
daily = "20:00-08:00"
lawyers = ["aida"]
[[rotations]]
city = "bishkek"
start = "2026-03-02"
daily = "20:00-08:00"
days = ["fri", "пт"]
lawyers = []
[[rotations]]
city = "bishkek"
start = "02.03.2026 09:00"
shift_hours = 0
lawyers = ["aida"]
[[rotations]]
city = "bishkek"
start = "2026-03-02 09:00"
end = "2026-03-01"
shift_hours = 12
lawyers = ["aida"]
[[rotations]]
city = "bishkek"
start = "2026-03-02 09:00"
shift_hours = 168
days = ["tue"]
lawyers = ["aida"]
"#;

/// What the loader says about each of [`BAD_ROTATIONS`], by key.
const BAD_ROTATION_PROBLEMS: [&str; 10] = [
    "config/roster.toml: rotations[0].shift_hours: use either shift_hours (back-to-back shifts) or daily (one window a day), not both",
    r#"config/roster.toml: rotations[1]: missing shift_hours (back-to-back shifts) or daily (one window a day, like "20:00-08:00")"#,
    r#"config/roster.toml: rotations[2].daily = "20:00 to 08:00": not a window like "20:00-08:00" (local time; may run past midnight)"#,
    r#"config/roster.toml: rotations[3].start = "2026-03-02 20:00": with `daily`, start is just the first date, like "2026-03-02""#,
    r#"config/roster.toml: rotations[4].days[1] = "пт": not a weekday: use mon, tue, wed, thu, fri, sat, sun"#,
    r#"config/roster.toml: rotations[4].lawyers: list the lawyers who take turns, like ["aida", "bakyt"]"#,
    r#"config/roster.toml: rotations[5].start = "02.03.2026 09:00": not a local date-time like "2026-03-02 09:00" (or a date like "2026-03-02")"#,
    "config/roster.toml: rotations[5].shift_hours = 0: must be between 1 and 672",
    r#"config/roster.toml: rotations[6].end = "2026-03-01": must be after start"#,
    "config/roster.toml: rotations[7].days: no shift of this rotation ever starts on these days",
];

#[test]
fn bad_rotations_are_named_by_key() {
    let p = problems(&format!("{BASE}{BAD_ROTATIONS}"));
    for want in BAD_ROTATION_PROBLEMS {
        has(&p, want);
    }
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
