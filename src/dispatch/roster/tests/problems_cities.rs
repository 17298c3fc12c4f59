//! Problems with cities, lawyers, escalation chains and routes, and with
//! the file's syntax: each named by file and key.

use super::*;

#[test]
fn the_base_fixture_only_warns_about_missing_rotations() {
    assert_eq!(
        problems(BASE),
        [
            "config/roster.toml: cities.bishkek: no [[rotations]] for this city: nobody is ever on call",
            "config/roster.toml: cities.poltava: no [[rotations]] for this city: nobody is ever on call",
        ]
    );
    assert_eq!(
        problems(&format!("{BASE}{ROT_BISHKEK}{ROT_POLTAVA}")),
        Vec::<String>::new()
    );
}

#[test]
fn unknown_lawyer_ids_are_named_wherever_they_appear() {
    let text = format!(
        "{BASE}{ROT_BISHKEK}[[overrides]]\ncity = \"poltava\"\nstart = \"2026-05-01\"\nend = \"2026-05-02\"\nlawyers = [\"iryna\", \"olha\"]\n"
    )
    .replace(
        r#"team = ["aida", "bakyt", "cholpon"]"#,
        r#"team = ["aida", "zed", "cholpon"]"#,
    )
    .replace(r#"coordinator = "larysa""#, r#"coordinator = "larisa""#)
    .replace(
        r#"lawyers = ["aida", "bakyt", "cholpon"]"#,
        r#"lawyers = ["aida", "bakyt", "cholpn"]"#,
    );
    let p = problems(&text);
    has(
        &p,
        r#"config/roster.toml: cities.bishkek.team[1] = "zed": no such lawyer in [lawyers]"#,
    );
    has(
        &p,
        r#"config/roster.toml: cities.poltava.coordinator = "larisa": no such lawyer in [lawyers]"#,
    );
    has(
        &p,
        r#"config/roster.toml: rotations[0].lawyers[2] = "cholpn": no such lawyer in [lawyers]"#,
    );
    has(
        &p,
        r#"config/roster.toml: overrides[0].lawyers[1] = "olha": no such lawyer in [lawyers]"#,
    );
}

#[test]
fn unknown_zones_countries_and_cities_are_named() {
    let text = format!("{BASE}{ROT_BISHKEK}")
        .replace("Europe/Kyiv", "Europe/Kiyv")
        .replace(r#"country = "KG""#, r#"country = "KZ""#)
        .replace(r#"route_to = "bishkek""#, r#"route_to = "bishek""#)
        .replace(r#"cities = ["poltava"]"#, r#"cities = ["poltava", "lviv"]"#)
        .replace(r#"city = "bishkek""#, r#"city = "bishkk""#);
    let p = problems(&text);
    has(
        &p,
        r#"config/roster.toml: cities.poltava.time_zone = "Europe/Kiyv": unknown time zone: use an IANA name like "Asia/Bishkek" or "Europe/Kyiv""#,
    );
    has(
        &p,
        r#"config/roster.toml: cities.bishkek.country = "KZ": unknown country (known: KG, UA, GE)"#,
    );
    has(
        &p,
        r#"config/roster.toml: cities.other.route_to = "bishek": no such city in [cities]"#,
    );
    has(
        &p,
        r#"config/roster.toml: lawyers.larysa.cities[1] = "lviv": no such city in [cities]"#,
    );
    has(
        &p,
        r#"config/roster.toml: rotations[0].city = "bishkk": no such city in [cities]"#,
    );
}

/// The level kinds in the table of `docs/roster.md` ("| Level `kind` |").
fn documented_level_kinds(doc: &str) -> Vec<&str> {
    doc.lines()
        .skip_while(|l| !l.starts_with("| Level `kind` |"))
        .skip(2) // the heading and its |---|---|
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
        .collect()
}

#[test]
fn the_level_kinds_documented_are_the_ones_the_loader_accepts() {
    let doc = include_str!("../../../../docs/roster.md");
    let documented = documented_level_kinds(doc);
    let known: Vec<&str> = LevelKind::ALL.iter().map(|(n, _)| *n).collect();
    assert_eq!(documented, known, "docs/roster.md and LevelKind::ALL");
    // Each is accepted by the loader, and means its own kind.
    for (name, kind) in LevelKind::ALL {
        let text = BASE.replace(
            r#"{ kind = "team", wait_minutes = 5 }"#,
            &format!(r#"{{ kind = "{name}", wait_minutes = 5 }}"#),
        );
        let r = roster(&text);
        assert_eq!(r.chain("poltava").unwrap().levels[1].kind, kind, "{name}");
        assert_eq!(kind.as_str(), name);
    }
    // docs/dispatch.md and the shipped roster's comment name every kind too.
    let dispatch = include_str!("../../../../docs/dispatch.md");
    let shipped = include_str!("../../../../config/roster.toml");
    for name in known {
        assert!(
            dispatch.contains(&format!("`{name}`")),
            "docs/dispatch.md: {name}"
        );
        assert!(
            shipped.contains(&format!("#   {name} ")),
            "config/roster.toml: {name}"
        );
    }
    // What the docs promise of a gap is what on_call does: nobody.
    assert!(doc.contains("In a gap (nobody on call) the `on_call` level has nobody to ask"));
    let r = roster(&format!("{BASE}{ROT_BISHKEK}"));
    assert!(r.on_call("bishkek", utc("2026-03-02T02:59:59Z")).is_empty());
}

#[test]
fn a_city_without_a_chain_or_with_a_bad_one_is_named() {
    let no_chain = BASE.replace(
        "[cities.poltava.escalation]\nlevels = [{ kind = \"on_call\", wait_minutes = 5 }, { kind = \"team\", wait_minutes = 5 }]\nunanswered_after_minutes = 10\n",
        "",
    );
    has(
        &problems(&no_chain),
        "config/roster.toml: cities.poltava.escalation: missing: add levels (on_call, next_on_call, team, coordinator), repeats and unanswered_after_minutes",
    );
    let bad = BASE
        .replace(
            r#"{ kind = "team", wait_minutes = 5 },"#,
            r#"{ kind = "everyone", wait_minutes = 5 },"#,
        )
        .replace(
            r#"{ kind = "coordinator", wait_minutes = 6 },"#,
            r#"{ kind = "coordinator", wait_minutes = 0 },"#,
        )
        .replace("repeats = 1", "repeats = 50")
        .replace("unanswered_after_minutes = 10", "");
    let p = problems(&bad);
    has(
        &p,
        r#"config/roster.toml: cities.bishkek.escalation.levels[2].kind = "everyone": unknown kind (known: on_call, next_on_call, team, coordinator)"#,
    );
    has(
        &p,
        "config/roster.toml: cities.bishkek.escalation.levels[3].wait_minutes = 0: must be between 1 and 1440",
    );
    has(
        &p,
        "config/roster.toml: cities.bishkek.escalation.repeats = 50: must be between 0 and 10",
    );
    has(
        &p,
        "config/roster.toml: cities.poltava.escalation.unanswered_after_minutes: missing: minutes after which she is sent the fallback number",
    );
    let long = format!("{BASE}{ROT_BISHKEK}{ROT_POLTAVA}").replace(
        "unanswered_after_minutes = 10",
        "unanswered_after_minutes = 60",
    );
    assert_eq!(
        problems(&long),
        [
            "config/roster.toml: cities.poltava.escalation.unanswered_after_minutes = 60: longer than the whole chain (10 minutes with repeats): she would wait with nobody being asked"
        ]
    );
}

#[test]
fn a_route_takes_nothing_of_its_own_and_cannot_chain() {
    let text = format!("{BASE}{ROT_BISHKEK}")
        .replace(
            "route_to = \"bishkek\"\n",
            "route_to = \"bishkek\"\ntime_zone = \"Asia/Bishkek\"\n[cities.elsewhere]\nroute_to = \"other\"\n",
        )
        + "[[overrides]]\ncity = \"other\"\nstart = \"2026-05-01\"\nend = \"2026-05-02\"\nlawyers = [\"aida\"]\n";
    let p = problems(&text);
    has(
        &p,
        "config/roster.toml: cities.other.time_zone: a city with route_to takes this from cities.bishkek: remove it",
    );
    has(
        &p,
        r#"config/roster.toml: cities.elsewhere.route_to = "other": routes to a city that itself routes on: route to a city with its own lawyers"#,
    );
    has(
        &p,
        r#"config/roster.toml: overrides[0].city = "other": this city routes to cities.bishkek: put it there"#,
    );
}

#[test]
fn missing_fields_and_bad_ids_are_named() {
    let text = format!("{BASE}{ROT_BISHKEK}")
        .replace("name = \"Bakyt\"\n", "")
        .replace("languages = [\"uk\", \"en\"]", "languages = [\"ua\"]")
        .replace("[lawyers.cholpon]", "[lawyers.Cholpon]")
        .replace("country = \"UA\"\n", "")
        .replace(
            "names = { en = \"Poltava\", uk = \"Полтава\" }",
            "names = { en = \"Poltava\", pl = \"Połtawa\" }",
        );
    let p = problems(&text);
    has(
        &p,
        "config/roster.toml: lawyers.bakyt.name: missing: the name people know her by",
    );
    has(
        &p,
        r#"config/roster.toml: lawyers.iryna.languages[0] = "ua": unknown language (known: ru, ky, uk, en, uz, ka)"#,
    );
    has(
        &p,
        "config/roster.toml: lawyers.Cholpon: an id uses lowercase letters, digits, `_` or `-`",
    );
    has(
        &p,
        "config/roster.toml: cities.poltava.country: missing: the ISO code, like \"KG\"",
    );
    has(
        &p,
        "config/roster.toml: cities.poltava.names.pl: unknown language (known: ru, ky, uk, en, uz, ka)",
    );
}

#[test]
fn a_team_member_not_working_in_the_city_is_a_warning() {
    let text = format!("{BASE}{ROT_BISHKEK}{ROT_POLTAVA}").replace(
        r#"team = ["halyna", "iryna"]"#,
        r#"team = ["halyna", "iryna", "aida"]"#,
    );
    assert_eq!(
        problems(&text),
        [
            r#"config/roster.toml: lawyers.aida.cities: she is in cities.poltava.team but "poltava" is not in her cities"#
        ]
    );
}

#[test]
fn toml_syntax_errors_name_the_line() {
    let p = problems("[cities.bishkek\nname = 1\n");
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("config/roster.toml: line 1: "), "{}", p[0]);
}
