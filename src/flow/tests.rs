use super::*;

const BASE: &str = r#"
id = "t"
languages = ["en", "ru"]
default_language = "en"
start = "city"
[messages]
invalid = { en = "No.", ru = "Нет." }
too_many_invalid = { en = "Call {fallback}", ru = "Звоните {fallback}" }
unavailable = { en = "Call {fallback}", ru = "Звоните {fallback}" }
confirm = { en = "Request {code} taken.", ru = "Запрос {code} принят." }
unanswered = { en = "Call {fallback}", ru = "Звоните {fallback}" }
[nodes.city]
kind = "menu"
text = { en = "City?", ru = "Город?" }
[[nodes.city.options]]
label = { en = "A", ru = "А" }
set = { city = "a", situation = "detained_self" }
next = "end"
[[nodes.city.options]]
label = { en = "B", ru = "Б" }
set = { city = "b", situation = "detained_self" }
next = "end"
[nodes.end]
kind = "end"
text = { en = "Code {code}", ru = "Код {code}" }
open_case = true
"#;

fn problems(toml: &str) -> Vec<String> {
    match parse(toml, "flows/x.toml", "112") {
        Ok((_, warnings)) => warnings.iter().map(ToString::to_string).collect(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn errors(toml: &str) -> Vec<String> {
    match parse(toml, "flows/x.toml", "112") {
        Ok(_) => Vec::new(),
        Err(errors) => errors
            .iter()
            .filter(|p| p.is_error())
            .map(ToString::to_string)
            .collect(),
    }
}

#[test]
fn the_base_fixture_is_clean() {
    assert_eq!(problems(BASE), Vec::<String>::new());
}

#[test]
fn an_unknown_next_node_is_named_with_its_key() {
    let bad = BASE.replacen(
        "next = \"end\"\n[[nodes.city.options]]",
        "next = \"ned\"\n[[nodes.city.options]]",
        1,
    );
    assert_eq!(
        errors(&bad),
        vec![r#"flows/x.toml: nodes.city.options[0].next = "ned": no such node"#]
    );
}

#[test]
fn unreachable_nodes_are_errors() {
    let bad =
        format!("{BASE}\n[nodes.lost]\nkind = \"end\"\ntext = {{ en = \"x\", ru = \"х\" }}\n");
    assert_eq!(
        errors(&bad),
        vec![r#"flows/x.toml: nodes.lost: unreachable from start = "city""#]
    );
}

#[test]
fn a_loop_that_never_ends_is_an_error() {
    let bad = BASE.replace("next = \"end\"", "next = \"city\"");
    let e = errors(&bad);
    assert!(
        e.iter()
            .any(|p| p
                == "flows/x.toml: nodes.city: no path from this node ever reaches an end node"),
        "{e:?}"
    );
}

#[test]
fn route_cycles_are_errors() {
    let bad = format!(
        "{}\n[nodes.r1]\nkind = \"route\"\nroutes = []\ndefault = \"r2\"\n[nodes.r2]\nkind = \"route\"\nroutes = [{{ when = {{ var = \"city\", in = [\"a\"] }}, next = \"end\" }}]\ndefault = \"r1\"\n",
        BASE.replacen("next = \"end\"", "next = \"r1\"", 1)
    );
    let e = errors(&bad);
    assert!(
        e.iter()
            .any(|p| p.contains("nodes.r1: route nodes lead to each other in a circle")),
        "{e:?}"
    );
}

#[test]
fn duplicate_option_keys_are_errors() {
    let bad = BASE
        .replace("label = { en = \"A\"", "key = \"0\"\nlabel = { en = \"A\"")
        .replace("label = { en = \"B\"", "key = \"0\"\nlabel = { en = \"B\"");
    assert_eq!(
        errors(&bad),
        vec![
            r#"flows/x.toml: nodes.city.options[1].key = "0": duplicate key (also nodes.city.options[0])"#
        ]
    );
}

#[test]
fn empty_menus_are_errors() {
    let bad = r#"
id = "t"
languages = ["en"]
default_language = "en"
start = "m"
[messages]
invalid = "No."
too_many_invalid = "Call"
unavailable = "Call"
[nodes.m]
kind = "menu"
text = "Pick"
options = []
"#;
    let e = errors(bad);
    assert!(
        e.contains(&"flows/x.toml: nodes.m.options: a menu needs at least one option".to_owned()),
        "{e:?}"
    );
}

#[test]
fn missing_translations_warn_and_a_missing_default_is_an_error() {
    let warn = BASE.replace(
        "label = { en = \"B\", ru = \"Б\" }",
        "label = { en = \"B\" }",
    );
    assert_eq!(
        problems(&warn),
        vec![
            r#"flows/x.toml: nodes.city.options[1].label: missing translation "ru" (falls back to "en")"#
        ]
    );
    assert!(
        parse(&warn, "flows/x.toml", "112").is_ok(),
        "a warning does not stop the flow"
    );
    let err = BASE.replace(
        "label = { en = \"B\", ru = \"Б\" }",
        "label = { ru = \"Б\" }",
    );
    assert_eq!(
        errors(&err),
        vec![r#"flows/x.toml: nodes.city.options[1].label: missing the default language "en""#]
    );
}

#[test]
fn conditions_are_checked() {
    let bad = BASE.replacen(
        "next = \"end\"",
        "when = { country = [\"XX\"] }\nnext = \"end\"",
        1,
    );
    let e = errors(&bad);
    assert!(
        e[0].starts_with(
            r#"flows/x.toml: nodes.city.options[0].when.country = "XX": unknown country"#
        ),
        "{e:?}"
    );
    let bad = BASE.replacen(
        "next = \"end\"",
        "when = { var = \"x\" }\nnext = \"end\"",
        1,
    );
    assert_eq!(
        errors(&bad),
        vec![
            "flows/x.toml: nodes.city.options[0].when: a `var` condition needs exactly one of `in` or `not_in`"
        ]
    );
}

#[test]
fn a_case_needs_city_on_every_path() {
    let bad = BASE.replacen(
        "set = { city = \"a\", situation",
        "set = { town = \"a\", situation",
        1,
    );
    assert_eq!(
        errors(&bad),
        vec![
            "flows/x.toml: nodes.end.open_case: a path reaches this node without setting the variable `city`"
        ]
    );
}

/// The lawyers' offer shows `situation`: a path to a case without it is a
/// warning (the offer would say `unknown`), not an error.
#[test]
fn a_case_without_situation_on_some_path_is_a_warning() {
    let bad = BASE.replacen(
        "set = { city = \"b\", situation = \"detained_self\" }",
        "set = { city = \"b\" }",
        1,
    );
    assert_ne!(bad, BASE);
    assert_eq!(errors(&bad), Vec::<String>::new());
    assert_eq!(
        problems(&bad),
        vec![
            "flows/x.toml: nodes.end.open_case: a path reaches this node without setting the variable `situation`: the lawyers' offer shows it ({situation}), and would say `unknown` instead of what is happening. Set it with a menu option's `set = { situation = \"…\" }` (an id of the lawyer texts' [LANG.situations])"
        ]
    );
    // Typed in, it is set too.
    let typed = bad.replacen("set = { city = \"b\" }\nnext = \"end\"", "set = { city = \"b\" }\nnext = \"what\"", 1).replace(
        "[nodes.end]",
        "[nodes.what]\nkind = \"input\"\ntext = { en = \"What?\", ru = \"Что?\" }\nvar = \"situation\"\nnext = \"end\"\n[nodes.end]",
    );
    assert_eq!(problems(&typed), Vec::<String>::new());
}

#[test]
fn a_typed_city_is_refused() {
    // "Other city" leads to a free-text screen that sets `city` itself:
    // "Karakol" is no roster city, and its case would reach no lawyer.
    let bad = BASE
        .replacen(
            "set = { city = \"b\", situation = \"detained_self\" }\nnext = \"end\"",
            "next = \"town\"",
            1,
        )
        .replace(
            "[nodes.end]",
            "[nodes.town]\nkind = \"input\"\ntext = { en = \"Town?\", ru = \"Город?\" }\nvar = \"city\"\nnext = \"end\"\n[nodes.end]",
        );
    assert_ne!(bad, BASE);
    let e = errors(&bad);
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(
        e[0].starts_with("flows/x.toml: nodes.town.var: `city` cannot be typed in"),
        "{e:#?}"
    );
    assert_eq!(
        e[1],
        "flows/x.toml: nodes.end.open_case: a path reaches this node without setting the variable `city`"
    );
    // Typed into another variable, beside a menu's city: fine.
    let ok = bad.replace("var = \"city\"", "var = \"town\"").replacen(
        "next = \"town\"",
        "set = { city = \"b\" }\nnext = \"town\"",
        1,
    );
    assert_eq!(errors(&ok), Vec::<String>::new());
}

#[test]
fn code_without_a_case_is_an_error() {
    let bad = BASE.replace("open_case = true", "");
    assert_eq!(
        errors(&bad),
        vec![
            "flows/x.toml: nodes.end.text: `{code}` is only known on a node with open_case = true"
        ]
    );
}

#[test]
fn typos_and_bad_toml_are_reported_with_a_line() {
    let bad = BASE.replace("text = { en = \"City?\"", "txet = { en = \"City?\"");
    let e = errors(&bad);
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0],
        "flows/x.toml: line 12: unknown field `txet`, expected one of `text`, `options`, `discreet`"
    );
    let e = errors("id = ");
    assert!(e[0].starts_with("flows/x.toml: line 1"), "{e:?}");
}

#[test]
fn lint_flags_long_screens_and_sensitive_words() {
    let long = BASE.replace(
        "City?\", ru = \"Город?\"",
        &format!("City?\", ru = \"{}\"", "д".repeat(80)),
    );
    let (flow, _) = parse(&long, "flows/x.toml", "112").unwrap();
    let p: Vec<String> = lint::lint(&flow).iter().map(ToString::to_string).collect();
    assert!(
        p.contains(&"flows/x.toml: nodes.city.ru: screen for country * is 88 characters in UCS-2, over the USSD limit of 80".to_owned()),
        "{p:?}"
    );
    let police = BASE.replace("City?\", ru", "Are you at the police?\", ru");
    let (flow, _) = parse(&police, "flows/x.toml", "112").unwrap();
    let p: Vec<String> = lint::lint(&flow).iter().map(ToString::to_string).collect();
    assert_eq!(p.len(), 1);
    assert!(
        p[0].starts_with("flows/x.toml: nodes.city.text.en: names \"police\""),
        "{p:?}"
    );
    let allowed = police.replace("kind = \"menu\"", "kind = \"menu\"\ndiscreet = false");
    let (flow, _) = parse(&allowed, "flows/x.toml", "112").unwrap();
    assert!(lint::lint(&flow).is_empty());
}

#[test]
fn the_shipped_flow_passes_every_check_and_lint() {
    let text = include_str!("../../flows/legal_help.toml");
    let (flow, warnings) = parse(text, "flows/legal_help.toml", "+996 555 000 000").expect("valid");
    assert!(warnings.is_empty(), "{warnings:?}");
    let lints = lint::lint(&flow);
    assert!(
        lints.is_empty(),
        "{:#?}",
        lints.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
    // Every screen fits USSD; in every Cyrillic language, the language screen included.
    for s in lint::screens(&flow) {
        assert!(s.measure.fits_ussd(), "{} {} {}", s.key, s.lang, s.text);
    }
}

#[test]
fn a_cached_screen_is_the_screen_for_every_node_language_and_country() {
    let fallbacks = Fallbacks {
        default: "+996 000 000 000".into(),
        by_country: [("KG", "+996 312 000 000"), ("UA", "+380 53 000 0000")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
    };
    let (flows, problems) = load_dir(std::path::Path::new("flows"), "flows", &fallbacks);
    assert!(problems.iter().all(|p| !p.is_error()), "{problems:?}");
    let countries: Vec<Option<&'static crate::phone::Country>> = std::iter::once(None)
        .chain(crate::phone::COUNTRIES.iter().map(Some))
        .collect();
    let vars = BTreeMap::from([("city".to_owned(), "osh".to_owned())]);
    let mut shown = 0;
    for flow in flows.flows.values() {
        for (id, node) in &flow.spec.nodes {
            for lang in &flow.spec.languages {
                for &country in &countries {
                    for invalid in [false, true] {
                        let vis = Visibility {
                            country,
                            vars: Some(&vars),
                        };
                        let want = screen(flow, node, lang, &vis, invalid);
                        for _ in 0..2 {
                            let got = screen_of(flow, id, node, lang, country, &vars, invalid);
                            assert_eq!(
                                got,
                                want,
                                "{}: {id} {lang} {country:?} {invalid}",
                                flow.id()
                            );
                        }
                        shown += usize::from(want.is_some());
                    }
                }
            }
        }
        // Bounded: one entry per node, language, country and re-prompt.
        let bound = flow.spec.nodes.len() * flow.spec.languages.len() * countries.len() * 2;
        assert!(!flow.screens.is_empty() && flow.screens.len() <= bound);
        // A clone may be changed before use: it starts empty.
        assert!(Flow::clone(flow).screens.is_empty());
    }
    assert!(shown > 100, "{shown} screens compared");
}

#[test]
fn a_screen_that_reads_variables_is_never_cached() {
    let toml = BASE.replace(
        "label = { en = \"B\", ru = \"Б\" }",
        "label = { en = \"B\", ru = \"Б\" }\nwhen = { var = \"seen\", in = [\"yes\"] }",
    );
    let (flow, _) = parse(&toml, "flows/x.toml", "112").expect("valid");
    let node = flow.node("city").expect("node");
    let with = BTreeMap::from([("seen".to_owned(), "yes".to_owned())]);
    let without = BTreeMap::new();
    let a = screen_of(&flow, "city", node, "en", None, &with, false).unwrap();
    let b = screen_of(&flow, "city", node, "en", None, &without, false).unwrap();
    assert_eq!(a, "City?\n1 A\n2 B");
    assert_eq!(b, "City?\n1 A");
    assert!(flow.screens.is_empty());
    // A language the flow does not have is rendered (in the default
    // language), never kept.
    let end = screen_of(
        &flow,
        "end",
        flow.node("end").unwrap(),
        "xx",
        None,
        &without,
        false,
    );
    assert_eq!(end.as_deref(), Some("Code {code}"));
    assert!(flow.screens.is_empty());
}
