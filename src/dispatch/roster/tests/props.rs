//! Property tests: resolution never panics, agrees with the schedule and
//! the gap report (nobody is on call in a gap, never the next shift), and an
//! override always wins for its window — for rosters of many shapes, in
//! zones with and without clock changes (including a 30-minute one).

use jiff::civil::{Date, DateTime, date};
use jiff::{SignedDuration, Span, Timestamp, tz::TimeZone};
use proptest::prelude::*;

use super::super::{LawyerId, Roster, parse};

const ZONES: [&str; 6] = [
    "Asia/Bishkek",
    "Europe/Kyiv",
    "Asia/Tbilisi",
    "America/New_York",
    "Australia/Lord_Howe",
    "UTC",
];
const POOL: [&str; 4] = ["aida", "bakyt", "cholpon", "dinara"];
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[derive(Debug, Clone)]
enum Shape {
    /// Shift hours.
    Rolling(u32),
    /// Window start and end, as (hour, minute).
    Daily((u32, u32), (u32, u32)),
}

#[derive(Debug, Clone)]
struct GenRotation {
    start_day: i64,
    start_time: (u32, u32),
    shape: Shape,
    days: Option<Vec<usize>>,
    lawyers: Vec<usize>,
    end_after_days: Option<i64>,
}

#[derive(Debug, Clone)]
struct GenOverride {
    gap_hours: i64,
    len_hours: i64,
    lawyers: Vec<usize>,
}

#[derive(Debug, Clone)]
struct GenRoster {
    zone: usize,
    rotations: Vec<GenRotation>,
    first_override_day: i64,
    overrides: Vec<GenOverride>,
}

/// Whole and half hours: a boundary at :30 can fall inside a repeated or
/// skipped hour.
fn hour_minute() -> impl Strategy<Value = (u32, u32)> {
    (0u32..24, prop_oneof![Just(0u32), Just(30)])
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        prop_oneof![Just(24u32), Just(12), Just(8), 1u32..=72].prop_map(Shape::Rolling),
        (hour_minute(), hour_minute()).prop_map(|(a, b)| Shape::Daily(a, b)),
    ]
}

fn rotation() -> impl Strategy<Value = GenRotation> {
    (
        -200i64..400,
        hour_minute(),
        shape(),
        proptest::option::of(proptest::collection::vec(0usize..7, 1..4)),
        proptest::collection::vec(0usize..POOL.len(), 1..6),
        proptest::option::of(1i64..400),
    )
        .prop_map(
            |(start_day, start_time, shape, days, lawyers, end_after_days)| GenRotation {
                start_day,
                start_time,
                shape,
                days,
                lawyers,
                end_after_days,
            },
        )
}

fn an_override() -> impl Strategy<Value = GenOverride> {
    (
        0i64..300,
        1i64..100,
        proptest::collection::vec(0usize..POOL.len(), 1..4),
    )
        .prop_map(|(gap_hours, len_hours, lawyers)| GenOverride {
            gap_hours,
            len_hours,
            lawyers,
        })
}

fn roster_shape() -> impl Strategy<Value = GenRoster> {
    (
        0usize..ZONES.len(),
        proptest::collection::vec(rotation(), 0..4),
        -100i64..400,
        proptest::collection::vec(an_override(), 0..4),
    )
        .prop_map(
            |(zone, rotations, first_override_day, overrides)| GenRoster {
                zone,
                rotations,
                first_override_day,
                overrides,
            },
        )
}

fn day(offset: i64) -> Date {
    date(2026, 1, 1)
        .checked_add(Span::new().days(offset))
        .unwrap()
}

fn quoted_list(ids: &[usize]) -> String {
    let v: Vec<String> = ids.iter().map(|&i| format!("{:?}", POOL[i])).collect();
    format!("[{}]", v.join(", "))
}

/// An override's local window.
fn windows(g: &GenRoster) -> Vec<(DateTime, DateTime, &GenOverride)> {
    let mut at = day(g.first_override_day).at(0, 0, 0, 0);
    let mut out = Vec::new();
    for o in &g.overrides {
        let start = at.checked_add(Span::new().hours(o.gap_hours)).unwrap();
        let end = start.checked_add(Span::new().hours(o.len_hours)).unwrap();
        out.push((start, end, o));
        at = end;
    }
    out
}

fn text(g: &GenRoster) -> String {
    let mut t = format!(
        "[cities.c]\nnames = {{ en = \"C\" }}\ntime_zone = {:?}\ncountry = \"KG\"\ncoordinator = \"aida\"\nteam = {}\n\
         [cities.c.escalation]\nlevels = [{{ kind = \"on_call\", wait_minutes = 1 }}]\nunanswered_after_minutes = 1\n\
         [cities.r]\nroute_to = \"c\"\n",
        ZONES[g.zone],
        quoted_list(&[0, 1, 2, 3]),
    );
    for (i, name) in POOL.iter().enumerate() {
        t.push_str(&format!(
            "[lawyers.{name}]\nname = \"{name}\"\nlanguages = [\"ru\"]\ncities = [\"c\"]\nphone_env = \"P{i}\"\n"
        ));
    }
    for r in &g.rotations {
        let d = day(r.start_day);
        t.push_str("[[rotations]]\ncity = \"c\"\n");
        match r.shape {
            Shape::Rolling(h) => t.push_str(&format!(
                "start = \"{d} {:02}:{:02}\"\nshift_hours = {h}\n",
                r.start_time.0, r.start_time.1
            )),
            Shape::Daily((ah, am), (bh, bm)) => t.push_str(&format!(
                "start = \"{d}\"\ndaily = \"{ah:02}:{am:02}-{bh:02}:{bm:02}\"\n"
            )),
        }
        if let Some(days) = &r.days {
            let v: Vec<String> = days.iter().map(|&i| format!("{:?}", DAYS[i])).collect();
            t.push_str(&format!("days = [{}]\n", v.join(", ")));
        }
        if let Some(n) = r.end_after_days {
            t.push_str(&format!("end = \"{}\"\n", day(r.start_day + n)));
        }
        t.push_str(&format!("lawyers = {}\n", quoted_list(&r.lawyers)));
    }
    for (s, e, o) in windows(g) {
        t.push_str(&format!(
            "[[overrides]]\ncity = \"c\"\nstart = \"{}\"\nend = \"{}\"\nlawyers = {}\n",
            s.strftime("%Y-%m-%d %H:%M"),
            e.strftime("%Y-%m-%d %H:%M"),
            quoted_list(&o.lawyers)
        ));
    }
    t
}

/// The roster for a generated shape, or `None` for the rare shapes the
/// loader rightly refuses (a weekly shift never on a listed day; a window
/// that a clock change makes empty).
fn build(g: &GenRoster) -> Option<Roster> {
    let env: std::collections::HashMap<String, String> = (0..POOL.len())
        .map(|i| (format!("P{i}"), format!("+99655500001{i}")))
        .collect();
    match parse(&text(g), "r.toml", std::path::Path::new("."), &env) {
        Ok((r, _)) => Some(r),
        Err(p) => {
            let benign = p.iter().filter(|p| p.is_error()).all(|p| {
                p.message.contains("ever starts on these days")
                    || p.message.contains("must be after start")
            });
            assert!(benign, "{p:#?}\n{}", text(g));
            None
        }
    }
}

fn dedup(ids: &[usize]) -> Vec<&'static str> {
    let mut out: Vec<&str> = Vec::new();
    for &i in ids {
        if !out.contains(&POOL[i]) {
            out.push(POOL[i]);
        }
    }
    out
}

fn names(v: &[LawyerId]) -> Vec<&str> {
    v.iter().map(LawyerId::as_str).collect()
}

fn any_instant() -> impl Strategy<Value = Timestamp> {
    (Timestamp::MIN.as_second()..=Timestamp::MAX.as_second())
        .prop_map(|s| Timestamp::from_second(s).unwrap())
}

fn near_instant() -> impl Strategy<Value = Timestamp> {
    // 2025-06-01 .. 2027-06-01, where the generated rosters live.
    (1_748_736_000i64..1_811_808_000).prop_map(|s| Timestamp::from_second(s).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn resolution_never_panics_and_agrees_with_the_schedule(
        g in roster_shape(),
        far in any_instant(),
        near in near_instant(),
        (which, offset) in (0usize..4, 0i64..60 * 3600),
    ) {
        let Some(r) = build(&g) else { return Ok(()) };
        let city = r.city("c").unwrap();
        // Up to 30 hours before one of the zone's clock changes in 2026-27.
        let tz = TimeZone::get(ZONES[g.zone]).unwrap();
        let around = tz
            .following(Timestamp::from_second(1_767_225_600).unwrap())
            .nth(which)
            .map_or(near, |tr| {
                tr.timestamp()
                    .checked_add(SignedDuration::from_secs(offset - 30 * 3600))
                    .unwrap()
            });
        for t in [far, near, around, Timestamp::MIN, Timestamp::MAX] {
            // on_call is who is on call now, nobody else (a route answers
            // for its city); next_on_call is the rest of the line.
            let oc = r.on_call_at("c", t);
            prop_assert_eq!(&r.on_call("r", t), &oc.now);
            prop_assert_eq!(&city.now(t), &oc.now);
            let line: Vec<LawyerId> = oc.now.iter().skip(1).chain(&oc.next).cloned().collect();
            prop_assert_eq!(r.next_on_call("r", t), line);
            prop_assert!(oc.next.iter().all(|l| !oc.now.contains(l)));
            if let Some(from) = oc.next_from {
                prop_assert!(from > t);
                let then = city.now(from);
                prop_assert!(oc.next.iter().all(|l| then.contains(l)));
            }
            // In a gap, and only in one, nobody is on call.
            let in_gap = r.gaps("c", t, 48).iter().any(|(s, e)| *s <= t && t < *e);
            let to = t.checked_add(SignedDuration::from_hours(48)).unwrap_or(Timestamp::MAX);
            if t < to {
                prop_assert_eq!(in_gap, oc.now.is_empty());
            }

            // The schedule tiles the window, and every instant in it has
            // exactly the slot's lawyers on call.
            let slots = r.schedule("c", t, 48);
            if t < to {
                prop_assert_eq!(slots.first().map(|s| s.start), Some(t));
                prop_assert_eq!(slots.last().map(|s| s.end), Some(to));
            }
            for w in slots.windows(2) {
                prop_assert_eq!(w[0].end, w[1].start);
                // Slots split where the lawyers change, or where an override
                // starts or ends (it may name the same lawyer).
                prop_assert!(
                    w[0].lawyers != w[1].lawyers || w[0].overridden != w[1].overridden
                );
            }
            for s in &slots {
                prop_assert!(s.start < s.end);
                for probe in [s.start, s.end.checked_sub(SignedDuration::from_secs(1)).unwrap_or(s.start)] {
                    prop_assert_eq!(&city.now(probe), &s.lawyers);
                }
            }
            for i in 0..349i64 {
                let Ok(u) = t.checked_add(SignedDuration::from_secs(i * 499)) else { break };
                if u >= to { break; }
                let slot = slots.iter().find(|s| s.start <= u && u < s.end).unwrap();
                prop_assert_eq!(&city.now(u), &slot.lawyers, "at {}", u);
            }
        }
    }

    #[test]
    fn an_override_always_wins_during_its_window(
        g in roster_shape(),
        fraction in 0.0f64..1.0,
    ) {
        let Some(r) = build(&g) else { return Ok(()) };
        let tz = TimeZone::get(ZONES[g.zone]).unwrap();
        for (s, e, o) in windows(&g) {
            let start = tz.to_timestamp(s).unwrap();
            let end = tz.to_timestamp(e).unwrap();
            let len = end.duration_since(start).as_secs_f64();
            let inside = start
                .checked_add(SignedDuration::from_secs_f64(len * fraction))
                .unwrap();
            let last = end.checked_sub(SignedDuration::from_secs(1)).unwrap();
            for t in [start, inside, last] {
                let want = dedup(&o.lawyers);
                let now_c = r.on_call_at("c", t).now;
                let now_r = r.on_call_at("r", t).now;
                prop_assert_eq!(names(&now_c), want.clone(), "at {}", t);
                prop_assert_eq!(names(&now_r), want.clone());
                let on = r.on_call("c", t);
                prop_assert_eq!(names(&on), want.clone());
            }
        }
    }
}
