//! Shifts across clock changes: wall-clock handovers, real-hour lengths,
//! and shifts starting in a skipped or repeated hour.

use super::*;

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
