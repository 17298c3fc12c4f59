use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::clock::Clock;
use crate::dispatch::lifecycle::tests::roster;
use crate::phone::PhoneNumber;
use crate::privacy::Privacy;

fn dispatcher(texts: &str) -> Dispatcher {
    let settings = DispatchSettings {
        roster: roster(),
        texts: LawyerTexts::parse(texts, "lawyer_texts.toml").expect("texts"),
        sms_channel: "at".into(),
        sending_channels: BTreeSet::new(),
        flows: Arc::new(FlowSet::default()),
        fallback: "112".into(),
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
        city: "bishkek".into(),
        vars,
        opened_at_ms: 0,
        dispatch: lifecycle::Dispatch::default(),
    }
}

const SHIPPED: &str = include_str!("../../config/lawyer_texts.toml");

#[test]
fn offers_fit_two_parts_by_cutting_the_location_and_the_shipped_texts_pass() {
    let d = dispatcher(SHIPPED);
    let aida = d.roster.lawyer("aida").unwrap();
    let short = d.offer_text(&case("ТЦ Дордой"), aida);
    assert!(
        short.contains("ТЦ Дордой") && short.contains("+996555123456"),
        "{short}"
    );
    let long = d.offer_text(&case(&"Октябрьский район, ул. Токтогула ".repeat(4)), aida);
    let sent = crate::template::render(&long, &[("code", "482101"), ("minutes", "999")]);
    assert!(crate::text::measure(&sent).sms_segments() <= 2, "{sent}");
    assert!(long.contains('…'), "the location was cut: {long}");
    assert!(d.check_offers("lawyer_texts.toml").is_empty());
}

#[test]
fn an_offer_template_too_long_to_fit_is_reported() {
    let long = SHIPPED.replacen(
        "offer = \"{code} {city}: {situation}{abuse}. Кайда:",
        "offer = \"Көңүл буруңуз, бул өтө маанилүү жана шашылыш иш, сураныч, тез арада жооп бериңиз: {code} {city}: {situation}{abuse}. Кайда:",
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
