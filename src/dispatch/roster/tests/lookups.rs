//! Lookups by city, route and phone; no number in debug output; flow
//! cities missing from the roster.

use super::*;

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
