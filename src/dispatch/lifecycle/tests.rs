use std::collections::BTreeMap;

use super::*;
use crate::dispatch::roster::{self, Roster};

pub(crate) const ROSTER: &str = include_str!("../../../tests/fixtures/dispatch/roster.toml");

pub(crate) fn roster() -> Roster {
    roster_from(ROSTER)
}

fn roster_from(text: &str) -> Roster {
    let env: BTreeMap<&str, &str> = [
        ("P_NURGUL", "+996555000100"),
        ("P_AIDA", "+996555000101"),
        ("P_BAKYT", "+996555000102"),
        ("P_CHOLPON", "+996555000103"),
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

#[test]
fn the_time_constant_is_aidas_shift() {
    let r = roster();
    let at = jiff::Timestamp::from_millisecond(T0 as i64).unwrap();
    assert_eq!(
        r.on_call("bishkek", at)
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>(),
        ["aida", "bakyt"]
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
        "aida is off: the next available lawyer is on call"
    );
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
        close(&mut d, &ctx(&r, &off, T0), "aida", 100),
        [Action::Reply("aida".into(), Reply::NotOffered)]
    );
    accept(&mut d, &ctx(&r, &off, T0 + MIN), "aida");
    assert_eq!(
        close(&mut d, &ctx(&r, &off, T0), "bakyt", 100),
        [Action::Reply(
            "bakyt".into(),
            Reply::AlreadyTaken("aida".into())
        )]
    );
    let a = close(&mut d, &ctx(&r, &off, T0 + 10 * MIN), "aida", 72 * 60 * MIN);
    assert!(a.contains(&Action::Timer(Timer::Erase, T0 + 10 * MIN + 72 * 60 * MIN)));
    assert_eq!(d.status, Status::Closed);
    assert_eq!(
        close(&mut d, &ctx(&r, &off, T0), "nurgul", 100),
        [Action::Reply("nurgul".into(), Reply::IsClosed)]
    );
    // The coordinator may accept a case nobody offered her, and close it.
    let (mut d2, _) = open(&ctx(&r, &off, T0), 1 << 40);
    assert!(accept(&mut d2, &ctx(&r, &off, T0), "nurgul").contains(&Action::Confirm));
    assert!(
        close(&mut d2, &ctx(&r, &off, T0), "nurgul", 100)
            .contains(&Action::Reply("nurgul".into(), Reply::Closed))
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
    assert_eq!(a, [Action::Timer(Timer::Erase, T0 + 150)]);
    assert_eq!(d.closed_by.as_deref(), Some("auto"));
    assert!(auto_close(&mut d, &ctx(&r, &off, T0 + 200), 50).is_empty());
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
                    Event::Close(w) => close(&mut d, &c, WHO[*w], 100),
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
    }
}
