use super::*;
use crate::flow::parse;
use crate::phone::country_by_iso;
use proptest::prelude::*;

const FALLBACK: &str = "+996 555 000 000";

/// A small flow using every node kind.
const TOY: &str = r#"
id = "toy"
languages = ["en", "ru"]
default_language = "en"
keywords = ["HELP"]
start = "lang"

[messages]
invalid = { en = "Not an option.", ru = "Нет такого." }
too_many_invalid = { en = "Call {fallback}", ru = "Звоните {fallback}" }
unavailable = "Call {fallback}"

[nodes.lang]
kind = "language"
text = "Language"
options = [ { language = "en", label = "English" }, { language = "ru", label = "Русский" } ]
next = "city"

[nodes.city]
kind = "menu"
text = { en = "City?", ru = "Город?" }
[[nodes.city.options]]
label = { en = "Bishkek", ru = "Бишкек" }
set = { city = "bishkek" }
when = { country = ["KG"] }
next = "what"
[[nodes.city.options]]
label = { en = "Poltava" }
set = { city = "poltava" }
when = { country = ["UA"] }
next = "what"
[[nodes.city.options]]
label = { en = "Other", ru = "Другой" }
set = { city = "other" }
next = "what"

[nodes.what]
kind = "menu"
text = { en = "What?", ru = "Что?" }
[[nodes.what.options]]
label = { en = "Now", ru = "Сейчас" }
set = { situation = "now" }
next = "where"
[[nodes.what.options]]
label = { en = "Report", ru = "Сообщить" }
set = { situation = "report" }
next = "where"
[[nodes.what.options]]
key = "9"
label = { en = "Only for KG now-callers" }
when = { var = "city", in = ["bishkek"] }
next = "where"

[nodes.where]
kind = "input"
text = { en = "Where?", ru = "Где?" }
var = "location"
max_len = 5
skip = { key = "0", label = { en = "Skip", ru = "Пропустить" } }
next = "phone"

[nodes.phone]
kind = "input"
text = { en = "Number?", ru = "Номер?" }
var = "callback"
pattern = "phone"
skip = { key = "0", label = { en = "This one", ru = "Этот" } }
next = "route"

[nodes.route]
kind = "route"
routes = [ { when = { var = "situation", in = ["report"] }, next = "end_report" } ]
default = "end_now"

[nodes.end_now]
kind = "end"
text = { en = "Code {code}.", ru = "Код {code}." }
open_case = true

[nodes.end_report]
kind = "end"
text = { en = "Thanks, code {code}. {fallback}", ru = "Спасибо, код {code}." }
open_case = true
"#;

fn toy() -> Flow {
    parse(TOY, "toy.toml", FALLBACK)
        .expect("toy flow is valid")
        .0
}

fn kg() -> Caller {
    Caller {
        country: country_by_iso("KG"),
    }
}

fn walk(flow: &Flow, caller: &Caller, inputs: &[&str]) -> Step {
    let mut s = start(flow, caller, None, 0);
    for input in inputs {
        assert!(!s.end, "session ended before input {input:?}");
        s = step(flow, &s.state, caller, input, 1_000);
    }
    s
}

#[test]
fn language_node_shows_labels_and_sets_the_language() {
    let f = toy();
    let s = start(&f, &kg(), None, 0);
    assert_eq!(s.reply, "Language\n1 English\n2 Русский");
    assert_eq!(s.state.node, "lang");
    let s = step(&f, &s.state, &kg(), "2", 0);
    assert_eq!(s.state.lang.as_deref(), Some("ru"));
    assert_eq!(s.reply, "Город?\n1 Бишкек\n2 Другой");
}

#[test]
fn country_conditions_hide_other_countries_cities() {
    let f = toy();
    let ua = Caller {
        country: country_by_iso("UA"),
    };
    let unknown = Caller::default();
    assert_eq!(walk(&f, &kg(), &["1"]).reply, "City?\n1 Bishkek\n2 Other");
    assert_eq!(walk(&f, &ua, &["1"]).reply, "City?\n1 Poltava\n2 Other");
    assert_eq!(
        walk(&f, &unknown, &["1"]).reply,
        "City?\n1 Bishkek\n2 Poltava\n3 Other",
        "a caller from an unnamed country sees every option"
    );
    let ge = Caller {
        country: country_by_iso("GE"),
    };
    assert_eq!(
        walk(&f, &ge, &["1"]).reply,
        "City?\n1 Bishkek\n2 Poltava\n3 Other"
    );
    // Numbering follows what is shown: "2" is Other for KG, Poltava for unknown.
    assert_eq!(walk(&f, &kg(), &["1", "2"]).state.vars["city"], "other");
    assert_eq!(
        walk(&f, &unknown, &["1", "2"]).state.vars["city"],
        "poltava"
    );
}

#[test]
fn variable_conditions_show_options_and_explicit_keys_keep_their_key() {
    let f = toy();
    let s = walk(&f, &kg(), &["1", "1"]);
    assert_eq!(s.reply, "What?\n1 Now\n2 Report\n9 Only for KG now-callers");
    let s = walk(&f, &kg(), &["1", "2"]);
    assert_eq!(s.reply, "What?\n1 Now\n2 Report");
    let s = step(&f, &s.state, &kg(), "9", 0);
    assert_eq!(s.state.node, "what", "a hidden option cannot be chosen");
    assert_eq!(s.state.invalid, 1);
}

#[test]
fn input_saves_truncates_and_skips() {
    let f = toy();
    let s = walk(&f, &kg(), &["1", "1", "1", "  Station 12  "]);
    assert_eq!(s.state.vars["location"], "Stati", "cut to max_len");
    assert_eq!(s.reply, "Number?\n0 This one");
    let s = walk(&f, &kg(), &["1", "1", "1", "0"]);
    assert!(!s.state.vars.contains_key("location"));
}

#[test]
fn phone_inputs_are_normalised_with_the_callers_country() {
    let f = toy();
    let s = walk(&f, &kg(), &["1", "1", "1", "0", "0555 123 456"]);
    assert!(s.end);
    match &s.effects[..] {
        [Effect::OpenCase(c)] => assert_eq!(c.vars["callback"], "+996555123456"),
        other => panic!("expected one case, got {other:?}"),
    }
    let s = walk(&f, &kg(), &["1", "1", "1", "0", "12"]);
    assert!(!s.end, "a bad number re-prompts");
    assert_eq!(s.reply, "Not an option.\nNumber?\n0 This one");
}

#[test]
fn end_opens_a_case_with_every_variable_and_the_time_given() {
    let f = toy();
    let s = walk(&f, &kg(), &["1", "1", "2", "Kiev", "0"]);
    assert!(s.end);
    assert_eq!(s.outcome, Some(Outcome::Completed));
    assert_eq!(s.reply, "Thanks, code {code}. +996 555 000 000");
    let Effect::OpenCase(case) = &s.effects[0];
    assert_eq!(case.flow, "toy");
    assert_eq!(case.lang, "en");
    assert_eq!(case.opened_at_ms, 1_000);
    assert_eq!(case.vars["city"], "bishkek");
    assert_eq!(case.vars["situation"], "report");
    assert_eq!(case.vars["location"], "Kiev");
    assert!(!case.vars.contains_key("callback"));
}

#[test]
fn route_nodes_pick_the_end_by_variable() {
    let f = toy();
    assert_eq!(
        walk(&f, &kg(), &["1", "1", "1", "0", "0"]).reply,
        "Code {code}."
    );
    assert_eq!(
        walk(&f, &kg(), &["1", "1", "2", "0", "0"]).reply,
        "Thanks, code {code}. +996 555 000 000"
    );
}

#[test]
fn invalid_answers_reprompt_then_end_after_three() {
    let f = toy();
    let s = walk(&f, &kg(), &["1", "7"]);
    assert_eq!(
        s.reply, "Not an option.\nCity?\n1 Bishkek\n2 Other",
        "the question is shown again under the hint"
    );
    assert!(!s.end);
    let s = walk(&f, &kg(), &["1", "7", ""]);
    assert_eq!(s.state.invalid, 2);
    let s = walk(&f, &kg(), &["1", "7", "", "x"]);
    assert!(s.end);
    assert_eq!(s.outcome, Some(Outcome::TooManyInvalid));
    assert_eq!(s.reply, "Call +996 555 000 000");
    assert!(s.effects.is_empty());
    // A valid answer resets the count.
    let s = walk(&f, &kg(), &["1", "7", "7", "1", "7"]);
    assert_eq!(s.state.invalid, 1);
}

#[test]
fn digits_from_other_scripts_and_spaces_count() {
    let f = toy();
    assert_eq!(walk(&f, &kg(), &[" １ "]).state.node, "city");
    assert_eq!(walk(&f, &kg(), &["٢"]).state.lang.as_deref(), Some("ru"));
}

#[test]
fn missing_translation_falls_back_to_the_default_language() {
    let f = toy();
    let ua = Caller {
        country: country_by_iso("UA"),
    };
    // "Poltava" has only English; the session is Russian.
    let s = walk(&f, &ua, &["2"]);
    assert_eq!(s.reply, "Город?\n1 Poltava\n2 Другой");
}

#[test]
fn a_preselected_language_skips_nothing_but_applies() {
    let f = toy();
    let s = start(&f, &kg(), Some("ru"), 0);
    assert_eq!(s.state.lang.as_deref(), Some("ru"));
    let s = start(&f, &kg(), Some("xx"), 0);
    assert_eq!(s.state.lang, None, "unknown languages are ignored");
}

#[test]
fn a_state_on_a_missing_node_starts_over() {
    let f = toy();
    let state = State {
        node: "gone".into(),
        lang: None,
        vars: Default::default(),
        invalid: 0,
        steps: 3,
    };
    let s = step(&f, &state, &kg(), "1", 0);
    assert_eq!(s.state.node, "lang");
    assert_eq!(s.state.steps, 0);
}

#[test]
fn state_serialises_compactly() {
    let f = toy();
    let s = walk(&f, &kg(), &["1", "1"]);
    let json = serde_json::to_string(&s.state).unwrap();
    assert_eq!(
        json,
        r#"{"n":"what","l":"en","v":{"city":"bishkek"},"s":2}"#
    );
    let back: State = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s.state);
}

fn legal_help() -> Flow {
    let fallbacks = crate::flow::Fallbacks {
        default: FALLBACK.to_owned(),
        by_country: [("UA".to_owned(), "+380 50 000 0000".to_owned())].into(),
    };
    parse(
        include_str!("../../../flows/legal_help.toml"),
        "flows/legal_help.toml",
        &fallbacks,
    )
    .expect("the shipped flow is valid")
    .0
}

#[test]
fn legal_help_urgent_path_asks_at_most_five_questions() {
    let f = legal_help();
    for lang in ["1", "2", "3", "4"] {
        for situation in ["1", "2"] {
            let s = walk(&f, &kg(), &[lang, "1", situation, "Somewhere", "0"]);
            assert!(s.end, "language {lang}, situation {situation}");
            assert_eq!(s.state.steps, 5);
            let Effect::OpenCase(case) = &s.effects[0];
            assert_eq!(case.vars["city"], "bishkek");
        }
    }
}

#[test]
fn legal_help_report_path_records_the_abuse() {
    let f = legal_help();
    let s = walk(&f, &kg(), &["4", "2", "3", "2", "0", "0"]);
    assert!(s.end);
    let Effect::OpenCase(case) = &s.effects[0];
    assert_eq!(case.vars["city"], "osh");
    assert_eq!(case.vars["situation"], "report");
    assert_eq!(case.vars["abuse"], "sex");
    assert!(s.reply.contains("{code}"));
}

fn any_state(flow: &Flow) -> impl Strategy<Value = State> + use<> {
    let nodes: Vec<String> = flow
        .spec
        .nodes
        .keys()
        .cloned()
        .chain(["missing".to_owned()])
        .collect();
    let langs = vec![
        None,
        Some("en".to_owned()),
        Some("ru".to_owned()),
        Some("zz".to_owned()),
    ];
    (
        prop::sample::select(nodes),
        prop::sample::select(langs),
        0u8..5,
        prop::collection::btree_map("[a-z]{1,8}", "[a-z]{0,8}", 0..4),
    )
        .prop_map(|(node, lang, invalid, vars)| State {
            node,
            lang,
            vars,
            invalid,
            steps: 0,
        })
}

fn any_caller() -> impl Strategy<Value = Caller> {
    prop::sample::select(vec![None, Some("KG"), Some("UA"), Some("GE")]).prop_map(|iso| Caller {
        country: iso.and_then(country_by_iso),
    })
}

proptest! {
    #[test]
    fn no_input_sequence_panics_or_leaves_the_flow(
        caller in any_caller(),
        inputs in prop::collection::vec(
            prop_oneof![
                "[0-9]{1,2}",
                "\\PC{0,40}",
                Just("0".to_owned()),
                Just("*".to_owned()),
                Just("١".to_owned()),
            ],
            0..20,
        ),
    ) {
        for f in [toy(), legal_help()] {
            let mut s = start(&f, &caller, None, 0);
            for input in &inputs {
                if s.end {
                    break;
                }
                s = step(&f, &s.state, &caller, input, 0);
                let node = f.node(&s.state.node);
                prop_assert!(node.is_some(), "state names a node that does not exist");
                if !s.end {
                    prop_assert!(
                        matches!(node, Some(Node::Menu(_) | Node::Input(_) | Node::Language(_))),
                        "an open session rests on a screen"
                    );
                    prop_assert!(!s.reply.is_empty());
                }
            }
        }
    }

    #[test]
    fn any_stored_state_is_safe_to_step(state in any_state(&toy()), input in "\\PC{0,20}", caller in any_caller()) {
        let f = toy();
        let s = step(&f, &state, &caller, &input, 0);
        prop_assert!(f.node(&s.state.node).is_some());
    }
}

fn ua() -> Caller {
    Caller {
        country: country_by_iso("UA"),
    }
}

#[test]
fn each_country_gets_its_own_language_menu_and_language_before_choosing() {
    let f = legal_help();
    let kg_start = start(&f, &kg(), None, 0);
    assert_eq!(
        kg_start.reply,
        "Язык/Тил/Мова/Language\n1 Кыргызча\n2 Русский\n3 Ўзбекча\n4 English"
    );
    let ua_start = start(&f, &ua(), None, 0);
    assert_eq!(
        ua_start.reply,
        "Язык/Тил/Мова/Language\n1 Українська\n2 Русский\n3 English"
    );
    // Before she chooses, a wrong answer is answered in her country's
    // language, with the same menu under it.
    let s = walk(&f, &ua(), &["9"]);
    assert!(
        s.reply
            .starts_with("Не те. Ще раз:\nЯзык/Тил/Мова/Language\n1 Українська"),
        "{}",
        s.reply
    );
    let s = walk(&f, &kg(), &["9"]);
    assert!(s.reply.starts_with("Туура эмес.\nЯзык"), "{}", s.reply);
    let s = walk(&f, &ua(), &["9", "9", "9"]);
    assert!(s.end);
    assert_eq!(s.reply, "Не вийшло. Подзвоніть нам: +380 50 000 0000");
    // Callers from elsewhere see every language, as written.
    let other = start(&f, &Caller::default(), None, 0);
    assert!(
        other.reply.contains("1 Русский\n2 Кыргызча\n3 Українська"),
        "{}",
        other.reply
    );
}

#[test]
fn a_ukrainian_callers_last_screen_and_case_carry_her_country() {
    let f = legal_help();
    // Українська, Полтава? No: "Інше місто" (2), help now, don't know, this number.
    let s = walk(&f, &ua(), &["1", "2", "1", "0", "0"]);
    assert!(s.end);
    assert!(
        s.reply.ends_with("+380 50 000 0000") && !s.reply.contains("+996"),
        "{}",
        s.reply
    );
    let Some(Effect::OpenCase(draft)) = s.effects.first() else {
        panic!("no case")
    };
    assert_eq!(draft.country.as_deref(), Some("UA"));
    assert_eq!(draft.vars["city"], "other");
    assert_eq!(draft.lang, "uk");
}
