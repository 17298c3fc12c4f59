use std::collections::BTreeMap;

use super::*;
use crate::dispatch::roster::{self, Roster};

pub(crate) const ROSTER: &str = include_str!("../../../tests/fixtures/dispatch/roster.toml");

pub(crate) fn roster() -> Roster {
    roster_from(ROSTER)
}

pub(crate) fn roster_from(text: &str) -> Roster {
    let env: BTreeMap<&str, &str> = [
        ("P_NURGUL", "+996555000100"),
        ("P_AIDA", "+996555000101"),
        ("P_BAKYT", "+996555000102"),
        ("P_CHOLPON", "+996555000103"),
        ("P_LARYSA", "+380500000001"),
        ("P_OKSANA", "+380500000011"),
        ("P_HALYNA", "+380500000012"),
    ]
    .into_iter()
    .collect();
    roster::parse(text, "roster.toml", std::path::Path::new("."), &env)
        .expect("test roster")
        .0
}

/// 2026-12-01 10:00 in Bishkek: aida's shift; bakyt is next.
const T0: u64 = 1_796_097_600_000;
const MIN: u64 = 60_000;

fn ctx<'a>(r: &'a Roster, off: &'a BTreeSet<String>, now: u64) -> Ctx<'a> {
    Ctx {
        roster: r,
        city: "bishkek",
        now_ms: now,
        opened_at_ms: T0,
        off,
        covers: &crate::dispatch::cover::NONE,
        caller_lawyer: None,
    }
}

fn offers(actions: &[Action]) -> Vec<&str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Offer(l) => Some(l.as_str()),
            _ => None,
        })
        .collect()
}

fn escalate_timer(actions: &[Action]) -> Option<(u32, u64)> {
    actions.iter().find_map(|a| match a {
        Action::Timer(Timer::Escalate { seq }, due) => Some((*seq, *due)),
        _ => None,
    })
}

fn names(v: &[LawyerId]) -> Vec<&str> {
    v.iter().map(LawyerId::as_str).collect()
}

#[test]
fn the_time_constant_is_aidas_shift() {
    let r = roster();
    let at = jiff::Timestamp::from_millisecond(T0 as i64).unwrap();
    assert_eq!(names(&r.on_call("bishkek", at)), ["aida"]);
    assert_eq!(names(&r.next_on_call("bishkek", at)), ["bakyt"]);
}

// ---------------------------------------------------------------- gaps

/// Poltava with evening shifts only (20:00-04:00 Kyiv time, Halyna and
/// Oksana in turn): from 04:00 to 20:00 nobody is on call. `{levels}` is
/// the chain.
const GAP_ROSTER: &str = r#"
[cities.poltava]
names = { en = "Poltava" }
time_zone = "Europe/Kyiv"
country = "UA"
coordinator = "larysa"
team = ["oksana", "halyna"]
[cities.poltava.escalation]
levels = [{levels}]
repeats = 1
unanswered_after_minutes = 15
[lawyers.larysa]
name = "Larysa"
languages = ["uk"]
cities = ["poltava"]
phone_env = "P_LARYSA"
[lawyers.oksana]
name = "Oksana"
languages = ["uk"]
cities = ["poltava"]
phone_env = "P_OKSANA"
[lawyers.halyna]
name = "Halyna"
languages = ["uk"]
cities = ["poltava"]
phone_env = "P_HALYNA"
[[rotations]]
city = "poltava"
start = "2026-03-01"
daily = "20:00-04:00"
lawyers = ["halyna", "oksana"]
"#;

/// 2026-03-29 05:09 in Kyiv (02:09 UTC: summer time began at 03:00 that
/// night): a gap; Halyna's shift starts at 20:00 (17:00 UTC).
const GAP_T: u64 = 1_774_750_140_000;
const SHIFT_T: u64 = 1_774_803_600_000;

fn gap_roster(levels: &str) -> Roster {
    roster_from(&GAP_ROSTER.replace("{levels}", levels))
}

fn gap_ctx<'a>(r: &'a Roster, off: &'a BTreeSet<String>, now: u64) -> Ctx<'a> {
    Ctx {
        roster: r,
        city: "poltava",
        now_ms: now,
        opened_at_ms: GAP_T,
        off,
        covers: &crate::dispatch::cover::NONE,
        caller_lawyer: None,
    }
}

fn ts(ms: u64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms as i64).unwrap()
}

#[test]
fn the_gap_constants_are_a_gap_before_halyna_s_20_00_shift() {
    let r = gap_roster(r#"{ kind = "on_call", wait_minutes = 3 }"#);
    let kyiv = |ms| ts(ms).to_zoned(jiff::tz::TimeZone::get("Europe/Kyiv").unwrap());
    assert_eq!(
        kyiv(GAP_T).strftime("%F %T").to_string(),
        "2026-03-29 05:09:00"
    );
    assert_eq!(
        kyiv(SHIFT_T).strftime("%F %T").to_string(),
        "2026-03-29 20:00:00"
    );
    let oc = r.on_call_at("poltava", ts(GAP_T));
    assert!(oc.now.is_empty());
    assert_eq!(names(&oc.next), ["halyna"]);
    assert_eq!(oc.next_from, Some(ts(SHIFT_T)));
}

#[test]
fn in_a_gap_the_on_call_level_asks_nobody_and_the_chain_ends_at_once() {
    // The issue's case: opened at 05:09, chain `on_call` only. Nobody is
    // woken; the coordinator is alerted at once, the woman still gets the
    // fallback number at 15 minutes.
    let r = gap_roster(r#"{ kind = "on_call", wait_minutes = 3 }"#);
    let off = BTreeSet::new();
    let (mut d, a) = open(&gap_ctx(&r, &off, GAP_T), 1 << 40);
    assert!(offers(&a).is_empty(), "{a:?}");
    assert!(d.offers.is_empty());
    assert_eq!(escalate_timer(&a), None);
    assert!(a.contains(&Action::Exhausted));
    assert!(a.contains(&Action::CoordinatorAlert(
        r.coordinator("poltava").unwrap().clone()
    )));
    assert!(a.contains(&Action::Timer(Timer::Unanswered, GAP_T + 15 * MIN)));
    assert!(d.exhausted);
    assert_eq!(unanswered(&mut d), [Action::Unanswered]);
    // The coordinator can still take it.
    assert!(
        accept(&mut d, &gap_ctx(&r, &off, GAP_T + 20 * MIN), "larysa").contains(&Action::Confirm)
    );
}

#[test]
fn in_a_gap_on_call_is_skipped_and_the_next_level_is_asked_at_once() {
    let r = gap_roster(
        r#"{ kind = "on_call", wait_minutes = 3 }, { kind = "team", wait_minutes = 5 }, { kind = "coordinator", wait_minutes = 5 }"#,
    );
    let off = BTreeSet::new();
    let (mut d, a) = open(&gap_ctx(&r, &off, GAP_T), 1 << 40);
    assert_eq!(offers(&a), ["oksana", "halyna"]);
    assert!(a.contains(&Action::Escalated(LevelKind::Team)));
    assert_eq!(escalate_timer(&a), Some((1, GAP_T + 5 * MIN)));
    assert_eq!(d.level, 1);
    // The team's wait, then the coordinator; on the second pass on_call is
    // still empty (it is 05:19), so the team again.
    let a = escalate(&mut d, &gap_ctx(&r, &off, GAP_T + 5 * MIN), 1);
    assert_eq!(offers(&a), ["larysa"]);
    let (seq, _) = escalate_timer(&a).unwrap();
    let a = escalate(&mut d, &gap_ctx(&r, &off, GAP_T + 10 * MIN), seq);
    assert_eq!(offers(&a), ["oksana", "halyna"]);
    assert_eq!((d.level, d.round), (1, 1));
}

#[test]
fn next_on_call_wakes_the_next_shift_when_its_level_is_reached() {
    // A chain that asks the coordinator before waking the evening lawyer:
    // on_call is skipped, the coordinator waits 5 minutes, then Halyna,
    // whose shift starts at 20:00, is asked.
    let r = gap_roster(
        r#"{ kind = "on_call", wait_minutes = 3 }, { kind = "coordinator", wait_minutes = 5 }, { kind = "next_on_call", wait_minutes = 5 }"#,
    );
    let off = BTreeSet::new();
    let (mut d, a) = open(&gap_ctx(&r, &off, GAP_T), 1 << 40);
    assert_eq!(offers(&a), ["larysa"]);
    let (seq, due) = escalate_timer(&a).unwrap();
    assert_eq!(due, GAP_T + 5 * MIN);
    let a = escalate(&mut d, &gap_ctx(&r, &off, due), seq);
    assert_eq!(offers(&a), ["halyna"]);
    assert!(a.contains(&Action::Escalated(LevelKind::NextOnCall)));

    // With next_on_call right after on_call (the shipped chain), the city
    // has chosen to wake her: on_call is skipped at once, so she is asked
    // when the case opens.
    let r = gap_roster(
        r#"{ kind = "on_call", wait_minutes = 3 }, { kind = "next_on_call", wait_minutes = 3 }, { kind = "coordinator", wait_minutes = 5 }"#,
    );
    let (_, a) = open(&gap_ctx(&r, &off, GAP_T), 1 << 40);
    assert_eq!(offers(&a), ["halyna"]);
    assert!(a.contains(&Action::Escalated(LevelKind::NextOnCall)));
}

#[test]
fn next_on_call_asks_a_second_lawyer_on_call_now_before_the_next_shift() {
    // An override puts Oksana on call with Halyna as her backup.
    let text = GAP_ROSTER.replace(
        "{levels}",
        r#"{ kind = "on_call", wait_minutes = 3 }, { kind = "next_on_call", wait_minutes = 3 }, { kind = "next_on_call", wait_minutes = 3 }"#,
    ) + "[[overrides]]\ncity = \"poltava\"\nstart = \"2026-03-29 05:00\"\nend = \"2026-03-29 12:00\"\nlawyers = [\"oksana\", \"halyna\"]\n";
    let r = roster_from(&text);
    let off = BTreeSet::new();
    let (mut d, a) = open(&gap_ctx(&r, &off, GAP_T), 1 << 40);
    assert_eq!(offers(&a), ["oksana"]);
    let a = escalate(&mut d, &gap_ctx(&r, &off, GAP_T + 3 * MIN), 1);
    assert_eq!(offers(&a), ["halyna"], "the backup on call now");
    // A second next_on_call level: nobody new comes on call after them
    // (the evening shifts are theirs too), so it is skipped and the second
    // pass starts with on_call.
    let (seq, _) = escalate_timer(&a).unwrap();
    let a = escalate(&mut d, &gap_ctx(&r, &off, GAP_T + 6 * MIN), seq);
    assert_eq!(offers(&a), ["oksana"]);
    assert_eq!((d.level, d.round), (0, 1));
    // With Oksana off call, on_call asks Halyna; next_on_call has nobody
    // left who has not been asked in this pass.
    let off: BTreeSet<String> = ["oksana".to_owned()].into();
    let (mut d, a) = open(&gap_ctx(&r, &off, GAP_T), 1 << 40);
    assert_eq!(offers(&a), ["halyna"]);
    let a = escalate(&mut d, &gap_ctx(&r, &off, GAP_T + 3 * MIN), 1);
    assert_eq!(offers(&a), ["halyna"], "{a:?}");
    assert_eq!(
        (d.level, d.round),
        (0, 1),
        "both next_on_call levels skipped"
    );
}

#[test]
fn opening_offers_the_lawyer_on_call_and_sets_every_timer() {
    let r = roster();
    let off = BTreeSet::new();
    let (d, actions) = open(&ctx(&r, &off, T0), 7 * 24 * 60 * MIN);
    assert_eq!(offers(&actions), ["aida"]);
    assert_eq!(escalate_timer(&actions), Some((1, T0 + 3 * MIN)));
    assert!(actions.contains(&Action::Timer(Timer::Unanswered, T0 + 15 * MIN)));
    assert!(actions.contains(&Action::Timer(Timer::AutoClose, T0 + 7 * 24 * 60 * MIN)));
    assert_eq!(d.status, Status::Open);
    assert_eq!(d.offers.len(), 1);
}

#[test]
fn unanswered_offers_climb_the_chain_then_repeat_then_alert_the_coordinator() {
    let r = roster_from(&ROSTER.replace("repeats = 0", "repeats = 1"));
    let off = BTreeSet::new();
    let (mut d, a) = open(&ctx(&r, &off, T0), 1 << 40);
    let mut now = T0;
    let (mut seq, _) = escalate_timer(&a).unwrap();
    let mut steps = Vec::new();
    for _ in 0..20 {
        now += 5 * MIN;
        let a = escalate(&mut d, &ctx(&r, &off, now), seq);
        if a.contains(&Action::Exhausted) {
            assert!(a.contains(&Action::CoordinatorAlert(
                r.coordinator("bishkek").unwrap().clone()
            )));
            break;
        }
        steps.push(offers(&a).join("+"));
        seq = escalate_timer(&a).expect("a next timer").0;
    }
    // Pass 1: next on call (bakyt), team minus those asked (cholpon),
    // coordinator; pass 2 starts over with everyone.
    assert_eq!(
        steps,
        [
            "bakyt", "cholpon", "nurgul", "aida", "bakyt", "cholpon", "nurgul"
        ]
    );
    assert!(d.exhausted);
    // Nothing more happens after the chain is exhausted.
    let seq = d.seq;
    assert!(escalate(&mut d, &ctx(&r, &off, now), seq).is_empty());
}

#[test]
fn a_stale_timer_does_nothing() {
    let r = roster();
    let off = BTreeSet::new();
    let (mut d, _) = open(&ctx(&r, &off, T0), 1 << 40);
    let before = d.clone();
    assert!(escalate(&mut d, &ctx(&r, &off, T0 + MIN), 0).is_empty());
    assert_eq!(d, before);
}

#[test]
fn a_decline_moves_on_at_once() {
    let r = roster();
    let off = BTreeSet::new();
    let (mut d, _) = open(&ctx(&r, &off, T0), 1 << 40);
    let a = decline(&mut d, &ctx(&r, &off, T0 + MIN), "aida");
    assert!(a.contains(&Action::Reply("aida".into(), Reply::Declined)));
    assert_eq!(offers(&a), ["bakyt"], "next on call, without waiting");
    // A decline from someone not offered is refused and changes nothing.
    let before = d.clone();
    assert_eq!(
        decline(&mut d, &ctx(&r, &off, T0 + MIN), "cholpon"),
        [Action::Reply("cholpon".into(), Reply::NotOffered)]
    );
    assert_eq!(d, before);
}

#[test]
fn at_the_team_level_one_decline_waits_for_the_others() {
    let r = roster();
    let off = BTreeSet::new();
    let (mut d, a) = open(&ctx(&r, &off, T0), 1 << 40);
    let a = escalate(
        &mut d,
        &ctx(&r, &off, T0 + 3 * MIN),
        escalate_timer(&a).unwrap().0,
    );
    let a = escalate(
        &mut d,
        &ctx(&r, &off, T0 + 6 * MIN),
        escalate_timer(&a).unwrap().0,
    );
    assert_eq!(offers(&a), ["cholpon"]);
    // aida and bakyt were asked earlier in this pass and never declined:
    // cholpon declining leaves them considering it.
    let a = decline(&mut d, &ctx(&r, &off, T0 + 7 * MIN), "cholpon");
    assert!(offers(&a).is_empty());
}

#[test]
fn off_call_lawyers_are_skipped_but_the_coordinator_is_not() {
    let r = roster();
    let off: BTreeSet<String> = ["aida".to_owned(), "nurgul".to_owned()].into();
    let (_, a) = open(&ctx(&r, &off, T0), 1 << 40);
    assert_eq!(
        offers(&a),
        ["bakyt"],
        "aida is off: on_call is skipped, next_on_call asks bakyt at once"
    );
    assert!(a.contains(&Action::Escalated(LevelKind::NextOnCall)));
    let off_all: BTreeSet<String> = ["aida", "bakyt", "cholpon"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let (_, a) = open(&ctx(&r, &off_all, T0), 1 << 40);
    assert_eq!(
        offers(&a),
        ["nurgul"],
        "empty levels are skipped straight to the coordinator"
    );
}

#[test]
fn accepting_confirms_tells_the_others_and_stops_escalation() {
    let r = roster();
    let off = BTreeSet::new();
    let (mut d, a) = open(&ctx(&r, &off, T0), 1 << 40);
    let seq = escalate_timer(&a).unwrap().0;
    decline(&mut d, &ctx(&r, &off, T0 + MIN), "aida");
    let a = accept(&mut d, &ctx(&r, &off, T0 + 2 * MIN), "bakyt");
    assert!(a.contains(&Action::Reply("bakyt".into(), Reply::Accepted)));
    assert!(a.contains(&Action::Confirm));
    assert!(a.contains(&Action::AcceptedAfter(2 * MIN)));
    assert!(a.contains(&Action::Taken {
        to: "aida".into(),
        by: "bakyt".into()
    }));
    assert_eq!(d.status, Status::Accepted);
    assert!(escalate(&mut d, &ctx(&r, &off, T0 + 9 * MIN), seq).is_empty());
    let current = d.seq;
    assert!(escalate(&mut d, &ctx(&r, &off, T0 + 9 * MIN), current).is_empty());
    assert!(
        unanswered(&mut d).is_empty(),
        "no fallback message once accepted"
    );
    // The second lawyer to answer loses, cleanly.
    assert_eq!(
        accept(&mut d, &ctx(&r, &off, T0 + 3 * MIN), "aida"),
        [Action::Reply(
            "aida".into(),
            Reply::AlreadyTaken("bakyt".into())
        )]
    );
    assert_eq!(
        accept(&mut d, &ctx(&r, &off, T0 + 3 * MIN), "bakyt"),
        [Action::Reply("bakyt".into(), Reply::AlreadyYours)]
    );
    assert_eq!(
        accept(&mut d, &ctx(&r, &off, T0 + 3 * MIN), "cholpon"),
        [Action::Reply(
            "cholpon".into(),
            Reply::AlreadyTaken("bakyt".into())
        )]
    );
}

#[test]
fn only_the_lawyer_with_the_case_or_the_coordinator_closes_it() {
    let r = roster();
    let off = BTreeSet::new();
    let (mut d, _) = open(&ctx(&r, &off, T0), 1 << 40);
    assert_eq!(
        close(&mut d, &ctx(&r, &off, T0), "aida", 100, &[]),
        [Action::Reply("aida".into(), Reply::NotOffered)]
    );
    accept(&mut d, &ctx(&r, &off, T0 + MIN), "aida");
    assert_eq!(
        close(&mut d, &ctx(&r, &off, T0), "bakyt", 100, &[]),
        [Action::Reply(
            "bakyt".into(),
            Reply::AlreadyTaken("aida".into())
        )]
    );
    let a = close(
        &mut d,
        &ctx(&r, &off, T0 + 10 * MIN),
        "aida",
        72 * 60 * MIN,
        &[],
    );
    assert!(a.contains(&Action::Timer(Timer::Erase, T0 + 10 * MIN + 72 * 60 * MIN)));
    assert_eq!(d.status, Status::Closed);
    assert_eq!(
        close(&mut d, &ctx(&r, &off, T0), "nurgul", 100, &[]),
        [Action::Reply("nurgul".into(), Reply::IsClosed)]
    );
    // The coordinator may accept a case nobody offered her, and close it.
    let (mut d2, _) = open(&ctx(&r, &off, T0), 1 << 40);
    assert!(accept(&mut d2, &ctx(&r, &off, T0), "nurgul").contains(&Action::Confirm));
    assert!(
        close(&mut d2, &ctx(&r, &off, T0), "nurgul", 100, &[])
            .contains(&Action::Reply("nurgul".into(), Reply::Closed(vec![])))
    );
}

#[test]
fn the_fallback_message_goes_once_and_auto_close_closes_what_is_left() {
    let r = roster();
    let off = BTreeSet::new();
    let (mut d, _) = open(&ctx(&r, &off, T0), 1 << 40);
    assert_eq!(unanswered(&mut d), [Action::Unanswered]);
    assert!(unanswered(&mut d).is_empty());
    let a = auto_close(&mut d, &ctx(&r, &off, T0 + 100), 50);
    assert_eq!(
        a,
        [
            Action::Timer(Timer::Erase, T0 + 150),
            Action::Outcomes(vec![NOT_GIVEN.into()])
        ]
    );
    assert_eq!(d.closed_by.as_deref(), Some("auto"));
    assert!(auto_close(&mut d, &ctx(&r, &off, T0 + 200), 50).is_empty());
}

#[test]
fn an_outcome_is_recorded_on_close_and_corrected_until_erasure() {
    let r = roster();
    let off = BTreeSet::new();
    let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let (mut d, _) = open(&ctx(&r, &off, T0), 1 << 40);
    accept(&mut d, &ctx(&r, &off, T0 + MIN), "aida");
    let a = close(
        &mut d,
        &ctx(&r, &off, T0 + 9 * MIN),
        "aida",
        100,
        &ids(&["released"]),
    );
    assert!(a.contains(&Action::Reply(
        "aida".into(),
        Reply::Closed(ids(&["released"]))
    )));
    assert!(a.contains(&Action::Outcomes(ids(&["released"]))));
    assert_eq!(d.outcomes, ids(&["released"]));
    // A bare DONE never clears it; someone not involved cannot change it.
    let bare = close(&mut d, &ctx(&r, &off, T0 + 10 * MIN), "aida", 100, &[]);
    assert_eq!(bare, [Action::Reply("aida".into(), Reply::IsClosed)]);
    let other = close(
        &mut d,
        &ctx(&r, &off, T0 + 10 * MIN),
        "bakyt",
        100,
        &ids(&["complaint"]),
    );
    assert_eq!(other, [Action::Reply("bakyt".into(), Reply::IsClosed)]);
    assert_eq!(d.outcomes, ids(&["released"]));
    // She corrects it; the coordinator may too. Only new codes are counted.
    let fix = close(
        &mut d,
        &ctx(&r, &off, T0 + 11 * MIN),
        "aida",
        100,
        &ids(&["released", "complaint"]),
    );
    assert!(fix.contains(&Action::Outcomes(ids(&["complaint"]))));
    assert!(
        !fix.iter().any(|a| matches!(a, Action::Timer(..))),
        "no second erase timer"
    );
    assert_eq!(d.outcomes, ids(&["released", "complaint"]));
    assert_eq!(d.outcome_at_ms, Some(T0 + 11 * MIN));
    close(
        &mut d,
        &ctx(&r, &off, T0 + 12 * MIN),
        "nurgul",
        100,
        &ids(&["injuries"]),
    );
    assert_eq!(d.outcomes, ids(&["injuries"]));
    // After erasure it is final.
    d.erased = true;
    let late = close(
        &mut d,
        &ctx(&r, &off, T0 + 13 * MIN),
        "aida",
        100,
        &ids(&["released"]),
    );
    assert_eq!(late, [Action::Reply("aida".into(), Reply::IsClosed)]);
    assert_eq!(d.outcomes, ids(&["injuries"]));
    // Closed without an outcome: counted as not given.
    let (mut d2, _) = open(&ctx(&r, &off, T0), 1 << 40);
    accept(&mut d2, &ctx(&r, &off, T0), "aida");
    let a = close(&mut d2, &ctx(&r, &off, T0), "aida", 100, &[]);
    assert!(a.contains(&Action::Outcomes(ids(&[NOT_GIVEN]))));
    assert!(d2.outcomes.is_empty());
}

mod props {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Event {
        Timer(u32),
        Decline(usize),
        Accept(usize),
        Close(usize),
        Unanswered,
        AutoClose,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            (0u32..12).prop_map(Event::Timer),
            (0usize..4).prop_map(Event::Decline),
            (0usize..4).prop_map(Event::Accept),
            (0usize..4).prop_map(Event::Close),
            Just(Event::Unanswered),
            Just(Event::AutoClose),
        ]
    }

    const WHO: [&str; 4] = ["aida", "bakyt", "cholpon", "nurgul"];

    proptest! {
        #[test]
        fn any_sequence_keeps_the_case_consistent(events in prop::collection::vec(event(), 0..40), start in 0u64..(14 * 24 * 60)) {
            let r = roster();
            let off = BTreeSet::new();
            let t = T0 + start * MIN;
            let (mut d, _) = open(&ctx(&r, &off, t), 1 << 40);
            let mut accepted_by: Option<String> = None;
            let mut confirms = 0;
            for (i, e) in events.iter().enumerate() {
                let c = ctx(&r, &off, t + i as u64 * MIN);
                let actions = match e {
                    Event::Timer(s) => escalate(&mut d, &c, *s),
                    Event::Decline(w) => decline(&mut d, &c, WHO[*w]),
                    Event::Accept(w) => accept(&mut d, &c, WHO[*w]),
                    Event::Close(w) => close(&mut d, &c, WHO[*w], 100, &[]),
                    Event::Unanswered => unanswered(&mut d),
                    Event::AutoClose => auto_close(&mut d, &c, 100),
                };
                confirms += actions.iter().filter(|a| **a == Action::Confirm).count();
                // Once accepted, the acceptor never changes.
                if let Some(by) = &accepted_by {
                    prop_assert_eq!(d.accepted_by.as_ref(), Some(by));
                }
                accepted_by = d.accepted_by.clone();
                // No offers once accepted or closed.
                if d.status != Status::Open {
                    prop_assert!(!actions.iter().any(|a| matches!(a, Action::Offer(_))));
                }
                prop_assert!(d.offers.len() <= 4 * 4 * 3, "offers are bounded");
            }
            prop_assert!(confirms <= 1, "the woman is confirmed at most once");
        }

        #[test]
        fn on_call_never_reaches_ahead_to_the_next_shift(events in prop::collection::vec(event(), 0..30), start in 0u64..(3 * 24 * 60), off_oksana: bool) {
            // Three days from the gap at 05:09, in and out of the evening
            // shifts, any answers and timers.
            let r = gap_roster(
                r#"{ kind = "on_call", wait_minutes = 3 }, { kind = "next_on_call", wait_minutes = 3 }, { kind = "team", wait_minutes = 5 }, { kind = "coordinator", wait_minutes = 5 }"#,
            );
            let chain = r.chain("poltava").unwrap().clone();
            let who = ["oksana", "halyna", "larysa", "oksana"];
            let off: BTreeSet<String> = off_oksana.then(|| "oksana".to_owned()).into_iter().collect();
            let t = GAP_T + start * MIN;
            let (mut d, _) = open(&gap_ctx(&r, &off, t), 1 << 40);
            for (i, e) in events.iter().enumerate() {
                let c = gap_ctx(&r, &off, t + i as u64 * MIN);
                match e {
                    Event::Timer(s) => escalate(&mut d, &c, *s),
                    Event::Decline(w) => decline(&mut d, &c, who[*w]),
                    Event::Accept(w) => accept(&mut d, &c, who[*w]),
                    Event::Close(w) => close(&mut d, &c, who[*w], 100, &[]),
                    Event::Unanswered => unanswered(&mut d),
                    Event::AutoClose => auto_close(&mut d, &c, 100),
                };
            }
            for o in &d.offers {
                let at = ts(o.at_ms);
                let now = r.on_call("poltava", at);
                let kind = chain.levels[o.level as usize].kind;
                prop_assert!(!off.contains(&o.lawyer) || kind == LevelKind::Coordinator);
                match kind {
                    LevelKind::OnCall => prop_assert!(names(&now).contains(&o.lawyer.as_str()), "{:?} at {}", o, at),
                    LevelKind::NextOnCall => {
                        prop_assert!(now.first().is_none_or(|p| *p != o.lawyer.as_str()), "not the primary: {:?}", o);
                        if now.is_empty() {
                            let next = r.on_call_at("poltava", at).next;
                            prop_assert!(names(&next).contains(&o.lawyer.as_str()), "the next shift's: {:?}", o);
                        }
                    }
                    LevelKind::Team | LevelKind::Coordinator => {}
                }
            }
        }
    }
}

#[test]
fn the_coordinator_assigns_directly_and_nobody_else_can() {
    let r = roster();
    let off = BTreeSet::new();
    let (mut d, _) = open(&ctx(&r, &off, T0), 3_600_000);
    let cholpon = r.lawyer("cholpon").unwrap().id.clone();
    let before = d.clone();
    let refused = assign(&mut d, &ctx(&r, &off, T0 + MIN), "aida", &cholpon);
    assert_eq!(
        refused,
        vec![Action::Reply("aida".into(), Reply::NotCoordinator)]
    );
    assert_eq!(d, before, "nothing changes");
    let actions = assign(&mut d, &ctx(&r, &off, T0 + MIN), "nurgul", &cholpon);
    assert_eq!(offers(&actions), ["cholpon"]);
    assert_eq!(escalate_timer(&actions), Some((d.seq, T0 + 4 * MIN)));
    assert!(pending_for(&d, "cholpon"));
    let accepted = accept(&mut d, &ctx(&r, &off, T0 + 2 * MIN), "cholpon");
    assert!(accepted.contains(&Action::Reply("cholpon".into(), Reply::Accepted)));
    let late = assign(&mut d, &ctx(&r, &off, T0 + 3 * MIN), "nurgul", &cholpon);
    assert_eq!(
        late,
        vec![Action::Reply(
            "nurgul".into(),
            Reply::AlreadyTaken("cholpon".into())
        )]
    );
}

// ---------------------------------------------------------------- her own case

fn own_ctx<'a>(r: &'a Roster, off: &'a BTreeSet<String>, now: u64, caller: &'a str) -> Ctx<'a> {
    Ctx {
        caller_lawyer: Some(caller),
        ..ctx(r, off, now)
    }
}

/// A lawyer who asks for help herself (a USSD walk from her own number) is
/// never offered her own case — her phone may be in police hands — at any
/// level of any pass: the chain moves on as if she were off call.
#[test]
fn a_lawyer_who_asks_for_help_is_never_offered_her_own_case() {
    let r = roster_from(&ROSTER.replace("repeats = 0", "repeats = 1"));
    let off = BTreeSet::new();
    let (mut d, a) = open(&own_ctx(&r, &off, T0, "aida"), 1 << 40);
    assert_eq!(offers(&a), ["bakyt"], "aida's shift: on_call is skipped");
    let mut now = T0;
    let mut seq = escalate_timer(&a).unwrap().0;
    let mut steps = vec!["bakyt".to_owned()];
    loop {
        now += 5 * MIN;
        let a = escalate(&mut d, &own_ctx(&r, &off, now, "aida"), seq);
        if a.contains(&Action::Exhausted) {
            assert!(a.contains(&Action::CoordinatorAlert(
                r.coordinator("bishkek").unwrap().clone()
            )));
            break;
        }
        steps.push(offers(&a).join("+"));
        seq = escalate_timer(&a).unwrap().0;
    }
    assert_eq!(
        steps,
        ["bakyt", "cholpon", "nurgul", "bakyt", "cholpon", "nurgul"]
    );
    assert!(d.offers.iter().all(|o| o.lawyer != "aida"));
    // She cannot take it by its code either.
    let a = accept(&mut d, &own_ctx(&r, &off, now, "aida"), "aida");
    assert_eq!(a, [Action::Reply("aida".into(), Reply::NotOffered)]);
}

/// The coordinator's own request: skipped at the coordinator level, never
/// alerted about it, and she cannot take, close or assign it herself.
#[test]
fn a_coordinators_own_case_is_handled_by_the_others() {
    let r = roster();
    let off = BTreeSet::new();
    let c = |now| own_ctx(&r, &off, now, "nurgul");
    let (mut d, a) = open(&c(T0), 1 << 40);
    assert_eq!(offers(&a), ["aida"]);
    let mut now = T0;
    let mut seq = escalate_timer(&a).unwrap().0;
    loop {
        now += 5 * MIN;
        let a = escalate(&mut d, &c(now), seq);
        if a.contains(&Action::Exhausted) {
            assert!(
                !a.iter().any(|x| matches!(x, Action::CoordinatorAlert(_))),
                "no alert to her own phone: {a:?}"
            );
            break;
        }
        assert!(!offers(&a).contains(&"nurgul"), "{a:?}");
        seq = escalate_timer(&a).unwrap().0;
    }
    let before = d.clone();
    assert_eq!(
        accept(&mut d, &c(now), "nurgul"),
        [Action::Reply("nurgul".into(), Reply::NotOffered)]
    );
    assert_eq!(
        close(&mut d, &c(now), "nurgul", 1, &[]),
        [Action::Reply("nurgul".into(), Reply::NotOffered)]
    );
    let bakyt = r.lawyer("bakyt").unwrap().id.clone();
    assert_eq!(
        assign(&mut d, &c(now), "nurgul", &bakyt),
        [Action::Reply("nurgul".into(), Reply::NotCoordinator)]
    );
    assert_eq!(d, before);
}

/// `ASSIGN` of a case to the lawyer whose number opened it is refused;
/// a cover naming her does not reach her either.
#[test]
fn neither_assign_nor_a_cover_offers_a_lawyer_her_own_case() {
    let r = roster();
    let off = BTreeSet::new();
    let (mut d, _) = open(&own_ctx(&r, &off, T0, "cholpon"), 1 << 40);
    let before = d.clone();
    let cholpon = r.lawyer("cholpon").unwrap().id.clone();
    assert_eq!(
        assign(
            &mut d,
            &own_ctx(&r, &off, T0 + MIN, "cholpon"),
            "nurgul",
            &cholpon
        ),
        [Action::Reply(
            "nurgul".into(),
            Reply::OwnCase("cholpon".into())
        )]
    );
    assert_eq!(d, before, "nothing changes");
    let covers: crate::dispatch::cover::Covers = [(
        "bishkek".to_owned(),
        crate::dispatch::cover::Cover {
            city: "bishkek".into(),
            lawyer: "cholpon".into(),
            until_ms: T0 + 600 * MIN,
            by: "nurgul".into(),
        },
    )]
    .into();
    let covered = Ctx {
        covers: &covers,
        ..own_ctx(&r, &off, T0, "cholpon")
    };
    let (_, a) = open(&covered, 1 << 40);
    assert_eq!(
        offers(&a),
        ["bakyt"],
        "the cover's on_call is skipped; next_on_call asks the roster's next"
    );
}

/// `ASSIGN` of a case to a lawyer who does not work in its city is
/// refused and changes nothing (Halyna works in Poltava only).
#[test]
fn assign_to_a_lawyer_from_another_city_is_refused() {
    let r = roster_from(crate::dispatch::cover::tests::THREE_CITIES);
    let off = BTreeSet::new();
    let (mut d, _) = open(&ctx(&r, &off, T0), 1 << 40);
    let before = d.clone();
    let halyna = r.lawyer("halyna").unwrap().id.clone();
    assert_eq!(
        assign(&mut d, &ctx(&r, &off, T0 + MIN), "nurgul", &halyna),
        [Action::Reply(
            "nurgul".into(),
            Reply::NotInCity("halyna".into())
        )]
    );
    assert_eq!(d, before, "nothing changes");
    let bakyt = r.lawyer("bakyt").unwrap().id.clone();
    let a = assign(&mut d, &ctx(&r, &off, T0 + MIN), "nurgul", &bakyt);
    assert_eq!(offers(&a), ["bakyt"]);
}

/// The coordinator closes a case nobody accepted (a test, spam — or a
/// one-digit typo): the woman, told she would be called, is sent the
/// fallback number; it counts as unanswered; the lawyers still holding the
/// offer are told; the coordinator's reply says nobody had accepted it.
/// Once she was sent the fallback number, it is not sent (nor counted)
/// again.
#[test]
fn closing_a_case_nobody_accepted_leaves_a_trace() {
    let r = roster();
    let off = BTreeSet::new();
    let (mut d, a) = open(&ctx(&r, &off, T0), 1 << 40);
    let a = escalate(
        &mut d,
        &ctx(&r, &off, T0 + 3 * MIN),
        escalate_timer(&a).unwrap().0,
    );
    assert_eq!(offers(&a), ["bakyt"]);
    let a = escalate(
        &mut d,
        &ctx(&r, &off, T0 + 6 * MIN),
        escalate_timer(&a).unwrap().0,
    );
    assert_eq!(offers(&a), ["cholpon"]);
    decline(&mut d, &ctx(&r, &off, T0 + 7 * MIN), "bakyt");
    let a = close(&mut d, &ctx(&r, &off, T0 + 8 * MIN), "nurgul", 100, &[]);
    assert_eq!(d.status, Status::Closed);
    assert!(d.unanswered_sent);
    assert!(a.contains(&Action::Reply(
        "nurgul".into(),
        Reply::ClosedUnaccepted(vec![])
    )));
    assert!(a.contains(&Action::Unanswered), "{a:?}");
    let told: Vec<&str> = a
        .iter()
        .filter_map(|x| match x {
            Action::ClosedNotice { to, by } if by == "nurgul" => Some(to.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(told, ["aida", "cholpon"], "bakyt declined; {a:?}");
    // Later timers do nothing.
    assert!(unanswered(&mut d).is_empty());

    // She already had the fallback number: not sent, not counted again.
    let (mut d, _) = open(&ctx(&r, &off, T0), 1 << 40);
    assert_eq!(unanswered(&mut d), [Action::Unanswered]);
    let a = close(&mut d, &ctx(&r, &off, T0 + 20 * MIN), "nurgul", 100, &[]);
    assert!(!a.contains(&Action::Unanswered), "{a:?}");
    assert!(a.contains(&Action::ClosedNotice {
        to: "aida".into(),
        by: "nurgul".into()
    }));
}
