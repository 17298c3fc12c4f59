use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::clock::Clock;
use crate::dispatch::lifecycle::tests::roster;
use crate::phone::PhoneNumber;
use crate::privacy::Privacy;

fn dispatcher(texts: &str) -> Dispatcher {
    dispatcher_with(texts, roster())
}

fn dispatcher_with(texts: &str, roster: crate::dispatch::roster::Roster) -> Dispatcher {
    let settings = DispatchSettings {
        roster,
        texts: LawyerTexts::parse(texts, "lawyer_texts.toml").expect("texts"),
        sms_channel: "at".into(),
        sending_channels: BTreeSet::new(),
        flows: Arc::new(FlowSet::default()),
        retention_ms: 1,
        auto_close_ms: 1,
    };
    let privacy = Privacy::new(b"0123456789abcdef0123456789abcdef");
    Dispatcher::new(settings, Deps::detached(privacy, Clock::manual(0)))
}

fn case(location: &str) -> CaseData {
    let mut vars = BTreeMap::new();
    vars.insert("situation".to_owned(), "detained_self".to_owned());
    vars.insert("location".to_owned(), location.to_owned());
    CaseData {
        id: "c_1".into(),
        flow: "legal_help".into(),
        lang: "ru".into(),
        channel: "at".into(),
        caller: PhoneNumber::parse_international("+996555123456").ok(),
        country: Some("KG".into()),
        city: "bishkek".into(),
        vars,
        opened_at_ms: 0,
        dispatch: lifecycle::Dispatch::default(),
    }
}

const SHIPPED: &str = include_str!("../../config/lawyer_texts.toml");

#[test]
fn offers_fit_two_parts_by_cutting_the_location_and_the_shipped_texts_pass() {
    use super::render::{OfferSize, SEND_MARGIN_MINUTES};
    let d = dispatcher(SHIPPED);
    let aida = d.roster.lawyer("aida").unwrap();
    let size = OfferSize::new(None, 0);
    let short = d.offer_text(&case("ТЦ Дордой"), aida, size);
    assert!(
        short.contains("ТЦ Дордой") && short.contains("+996555123456 (her phone)"),
        "{short}"
    );
    let long = d.offer_text(
        &case(&"Октябрьский район, ул. Токтогула ".repeat(4)),
        aida,
        size,
    );
    let minutes = SEND_MARGIN_MINUTES.to_string();
    let sent = crate::template::render(&long, &[("code", "4821"), ("minutes", &minutes)]);
    let m = crate::text::measure(&sent);
    assert!(long.contains('…'), "the location was cut: {long}");
    assert_eq!(
        m.units, 134,
        "cut by exactly what the code and minutes need: {sent}"
    );
    assert!(d.check_offers("lawyer_texts.toml").is_empty());
}

#[test]
fn an_offer_names_her_language_and_whether_the_number_is_her_own_phone() {
    use super::render::OfferSize;
    let d = dispatcher(SHIPPED);
    let nurgul = d.roster.lawyer("nurgul").unwrap();
    let mut c = case("ТЦ Дордой");
    c.lang = "ky".into();
    let own = d.offer_text(&c, nurgul, OfferSize::new(Some("4821"), 3));
    assert!(
        own.contains("яз. кырг.") && own.contains("+996555123456 (её тел.)"),
        "{own}"
    );
    c.vars.insert("callback".into(), "+996700111222".into());
    let other = d.offer_text(&c, nurgul, OfferSize::new(Some("4821"), 3));
    assert!(
        other.contains("+996700111222 (не её)") && !other.contains("+996555123456"),
        "{other}"
    );
    // She typed the number she called from: still her own phone.
    c.vars.insert("callback".into(), "+996555123456".into());
    let typed_own = d.offer_text(&c, nurgul, OfferSize::new(Some("4821"), 3));
    assert!(typed_own.contains("(её тел.)"), "{typed_own}");
}

/// A case whose flow never set `situation`: the offer says so (the texts'
/// `unknown`) instead of leaving ": ," where the lawyer looks first.
#[test]
fn an_offer_without_a_situation_says_unknown() {
    use super::render::OfferSize;
    let d = dispatcher(SHIPPED);
    let nurgul = d.roster.lawyer("nurgul").unwrap();
    let mut c = case("ТЦ Дордой");
    c.vars.remove("situation");
    let offer = d.offer_text(&c, nurgul, OfferSize::new(Some("4821"), 3));
    assert!(offer.contains("мин назад: не указано, яз."), "{offer}");
    c.vars.insert("situation".into(), "no_such_id".into());
    let offer = d.offer_text(&c, nurgul, OfferSize::new(Some("4821"), 3));
    assert!(offer.contains("мин назад: не указано, яз."), "{offer}");
}

#[test]
fn the_longest_real_offer_in_every_language_fits_two_parts_keeping_what_room_allows() {
    let d = dispatcher(SHIPPED);
    let offers = d.longest_offers();
    assert!(!offers.is_empty());
    for (lang, city, text, kept) in offers {
        let m = crate::text::measure(&text);
        assert!(m.sms_segments() <= 2, "{lang} {city}: {text}");
        // Cut by exactly what was needed: not one character more.
        assert!(
            kept == 80 || m.units == 134 || m.units == 306,
            "{lang} {city} kept {kept}: {} units: {text}",
            m.units
        );
        println!("{lang} {city} {} kept {kept}: {text}", m.units);
    }
}

#[test]
fn an_offer_template_too_long_to_fit_is_reported() {
    let long = SHIPPED.replacen(
        "offer = \"{code} {city}, {minutes} мүн мурун:",
        "offer = \"Көңүл буруңуз, бул өтө маанилүү жана шашылыш иш, сураныч, тез арада жооп бериңиз: {code} {city}, {minutes} мүн мурун:",
        1,
    );
    let p = dispatcher(&long).check_offers("lawyer_texts.toml");
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].to_string()
            .starts_with("lawyer_texts.toml: ky.offer: an offer for bishkek is"),
        "{}",
        p[0]
    );
}

/// 2026-12-01 10:00 in Bishkek: aida's shift; bakyt is next.
const T0: u64 = 1_796_097_600_000;

#[tokio::test(start_paused = true)]
async fn the_timer_worker_escalates_on_tokio_time_without_sleeping() {
    use crate::conversation::CasePlanner;
    use crate::store::{NewCase, Queue, code_candidates};

    let clock = Clock::tokio(T0);
    let privacy = Privacy::new(b"0123456789abcdef0123456789abcdef");
    let deps = Deps::detached(privacy, clock.clone());
    let mut d = dispatcher(SHIPPED);
    d.deps = deps.clone();
    d.auto_close_ms = 24 * 3600 * 1000;
    let d = Arc::new(d);
    let mut c = case("Station 5");
    c.opened_at_ms = T0;
    let jobs = d.plan(&mut c, 3);
    let offered = |c: &CaseData| -> Vec<String> {
        c.dispatch.offers.iter().map(|o| o.lawyer.clone()).collect()
    };
    assert_eq!(offered(&c), ["aida"]);
    let new = NewCase {
        id: c.id.clone(),
        code_candidates: code_candidates(3, &c.id, 8),
        data: deps.privacy.seal_json(&c).unwrap(),
        jobs,
    };
    deps.store.record_case(3, new, T0).await.unwrap();
    let worker = timers::TimerWorker::new(d.clone(), std::time::Duration::from_secs(1));
    assert_eq!(worker.tick(clock.now_ms()).await, 0, "nothing is due yet");
    // The offer to aida waits in the outbox.
    let queued = deps
        .store
        .claim(3, Queue::Outbox, clock.now_ms(), 60_000, 10)
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    // Her level's wait passes on tokio's clock: the next tick escalates.
    tokio::time::advance(std::time::Duration::from_secs(3 * 60 + 1)).await;
    assert_eq!(worker.tick(clock.now_ms()).await, 1);
    let rec = deps.store.case(3, &c.id).await.unwrap().unwrap();
    let now: CaseData = deps.privacy.open_json(&rec.data).unwrap();
    assert_eq!(offered(&now), ["aida", "bakyt"]);
    assert_eq!(worker.tick(clock.now_ms()).await, 0, "a timer fires once");
}

/// The timers `jobs` schedule, by name, with when they are due.
fn timers(jobs: &[(crate::store::Queue, crate::store::Job)]) -> BTreeMap<String, u64> {
    jobs.iter()
        .filter(|(q, _)| *q == crate::store::Queue::Timers)
        .filter_map(|(_, j)| Some((j.id.rsplit('.').next()?.to_owned(), j.due_ms)))
        .collect()
}

#[test]
fn a_chain_exhausted_as_the_case_opens_is_counted_at_once() {
    use crate::conversation::CasePlanner;
    use crate::dispatch::lifecycle::tests::{ROSTER, roster_from};
    // A chain without its coordinator level (the coordinator is reached
    // even when off call).
    let no_coordinator = ROSTER.replace("  { kind = \"coordinator\", wait_minutes = 5 },\n", "");
    assert_ne!(no_coordinator, ROSTER);
    let d = dispatcher_with(SHIPPED, roster_from(&no_coordinator));
    // Everyone off call: no level of Bishkek's chain reaches anyone.
    d.set_off(
        ["nurgul", "aida", "bakyt", "cholpon"]
            .map(String::from)
            .into(),
    );
    let mut c = case("Station 5");
    c.opened_at_ms = T0;
    let jobs = d.plan(&mut c, 3);
    assert!(c.dispatch.exhausted);
    let exhausted = |city: &str| {
        d.deps
            .metrics
            .cases_exhausted
            .with_label_values(&[city])
            .get()
    };
    // HotlineChainExhausted pages on this counter: before, only the
    // coordinator's SMS said so (the counter moved on a timer's firing).
    assert_eq!(exhausted("bishkek"), 1);
    assert_eq!(timers(&jobs)["unanswered"], T0 + 15 * 60_000);
}

#[test]
fn a_case_for_a_city_the_roster_lacks_pages_and_gives_her_the_fallback_number() {
    use crate::conversation::CasePlanner;
    let d = dispatcher(SHIPPED);
    // Her session began on a flow version that set a city a reload has
    // since taken out of the roster.
    let mut c = case("Station 5");
    c.city = "karakol".into();
    c.opened_at_ms = T0;
    let jobs = d.plan(&mut c, 3);
    assert!(c.dispatch.exhausted, "nobody can be offered it");
    assert!(c.dispatch.offers.is_empty());
    let exhausted = |city: &str| {
        d.deps
            .metrics
            .cases_exhausted
            .with_label_values(&[city])
            .get()
    };
    assert_eq!(exhausted("other"), 1, "paged at once, under a fixed label");
    // She is not left with "we will call you soon": the fallback number
    // after the roster's shortest unanswered wait (Bishkek's 15 minutes).
    assert_eq!(timers(&jobs)["unanswered"], T0 + 15 * 60_000);
    assert!(timers(&jobs).contains_key("autoclose"));
}
