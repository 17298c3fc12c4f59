//! Who is on call, and who is next: rotations handing over, daily
//! windows, gaps, rotation ends, and overrides winning for their window.

use super::*;

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
fn the_schedule_marks_an_override_even_when_it_names_the_same_lawyer() {
    // Aida's rotation shift, and an override naming Aida for part of it:
    // the schedule still shows where the override starts and ends.
    let text = format!(
        "{BASE}{ROT_BISHKEK}\n[[overrides]]\ncity = \"bishkek\"\nstart = \"2026-03-02 12:00\"\nend = \"2026-03-02 18:00\"\nlawyers = [\"aida\"]\n"
    );
    let r = roster(&text);
    let l = |s| local("Asia/Bishkek", s);
    let slots = r.schedule("bishkek", l("2026-03-02T09:00"), 24);
    let shape: Vec<_> = slots
        .iter()
        .map(|s| (s.start, s.end, ids(&s.lawyers), s.overridden))
        .collect();
    assert_eq!(
        shape,
        vec![
            (
                l("2026-03-02T09:00"),
                l("2026-03-02T12:00"),
                vec!["aida"],
                false
            ),
            (
                l("2026-03-02T12:00"),
                l("2026-03-02T18:00"),
                vec!["aida"],
                true
            ),
            (
                l("2026-03-02T18:00"),
                l("2026-03-03T09:00"),
                vec!["aida"],
                false
            ),
        ]
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
