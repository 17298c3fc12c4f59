//! The shipped roster and phones file: they load clean, cover every city
//! the shipped flows can open a case for, and fail the way the docs say.

use super::*;

/// Copy the shipped roster into a folder with the example phones file
/// installed the way the docs say.
fn shipped(dir: &Path, with_phones: bool) -> std::path::PathBuf {
    let path = dir.join("roster.toml");
    std::fs::write(&path, include_str!("../../../../config/roster.toml")).unwrap();
    if with_phones {
        let phones = dir.join("roster.phones.toml");
        std::fs::write(
            &phones,
            include_str!("../../../../config/roster.phones.example.toml"),
        )
        .unwrap();
        private(&phones);
    }
    path
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

    // Every country the flow serves has its number and its "other city";
    // without Ukraine's, check says so by key.
    let fallbacks = crate::flow::Fallbacks {
        default: "+996 000 000 000".into(),
        by_country: [("KG", "+996 000 000 000"), ("UA", "+380 53 000 0000")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
    };
    let (full, _) = crate::flow::load_dir(Path::new("flows"), "flows", &fallbacks);
    assert_eq!(
        crate::flow::countries::check(&full, "hotline.toml", Some(&r)),
        vec![]
    );
    assert_eq!(r.resolve("other", Some("UA")), "poltava");
    assert_eq!(r.resolve("other", Some("KG")), "bishkek");
    assert_eq!(r.resolve("other", None), "bishkek");
    let wrong = crate::flow::Fallbacks {
        by_country: [("KG", "+996 000 000 000"), ("UA", "+996 111 000 000")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
        ..fallbacks
    };
    let (bad, _) = crate::flow::load_dir(Path::new("flows"), "flows", &wrong);
    let found: Vec<String> = crate::flow::countries::check(&bad, "hotline.toml", Some(&r))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        vec!["hotline.toml: flows.fallback_phones.UA: the number is in KG, not in UA"]
    );
    let (one, _) = crate::flow::load_dir(Path::new("flows"), "flows", "112");
    let found: Vec<String> = crate::flow::countries::check(&one, "hotline.toml", None)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("hotline.toml: flows.fallback_phones.UA: ")),
        "{found:?}"
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
